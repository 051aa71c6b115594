"""core.display: windowing, display-size reduction, radius grid, colour maps, PNG composition."""

from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image

from core import display
from core.errors import ExplorerError


def test_apply_window_maps_ends_and_clips():
    px = np.array([[0.0, 1000.0, 2000.0, 3000.0, 4095.0]], np.float32)
    out = display.apply_window(px, centre=2000.0, width=2000.0)
    assert out.dtype == np.uint8
    assert out.tolist() == [[0, 0, 127, 255, 255]]
    inv = display.apply_window(px, 2000.0, 2000.0, invert=True)
    assert (inv.astype(int) + out.astype(int) == 255).all()


def test_apply_window_rejects_bad_width_and_shape():
    with pytest.raises(ExplorerError, match="width"):
        display.apply_window(np.zeros((2, 2)), 0.0, 0.0)
    with pytest.raises(ExplorerError, match="shape"):
        display.apply_window(np.zeros(5), 0.0, 10.0)


def test_auto_window_ignores_background():
    px = np.zeros((100, 100), np.float32)
    px[:, 50:] = np.linspace(1000, 3000, 50, dtype=np.float32)[None, :]
    centre, width = display.auto_window(px, 0.0, 100.0)
    assert centre == pytest.approx(2000.0, abs=1)
    assert width == pytest.approx(2000.0, abs=1)
    presets = display.window_presets(px, dicom_window=(1500.0, 800.0))
    assert list(presets)[:2] == ["Auto (breast 1-99 %)", "DICOM window"]
    assert presets["DICOM window"] == (1500.0, 800.0)
    assert "DICOM window" not in display.window_presets(px)


def test_downsample_is_area_mean_and_keeps_border():
    px = np.arange(35, dtype=np.float32).reshape(5, 7)
    out = display.downsample(px, max_side=4)  # factor 2
    assert out.shape == (3, 4)
    assert out[0, 0] == pytest.approx(px[:2, :2].mean())
    assert out[2, 3] == pytest.approx(px[4, 6])  # the lone corner pixel
    assert out.mean() == pytest.approx(np.mean(out))
    same = display.downsample(px, max_side=10)
    np.testing.assert_array_equal(same, px)


def test_display_spacing_scales_with_reduction():
    assert display.display_spacing((3328, 2560), (832, 640), (0.1, 0.1)) == pytest.approx((0.4, 0.4))


@pytest.mark.parametrize("spacing", [(0.1, 0.1), (0.07, 0.05), (0.2, 0.1)])
def test_radius_choices_log_spaced_with_landmarks(spacing):
    radii = display.radius_choices(spacing)
    corner = float(np.hypot(0.5 / spacing[0], 0.5 / spacing[1]))
    assert radii == sorted(radii) and len(set(radii)) == len(radii)
    assert 2.0 in radii
    assert round(display.nyquist_axis(spacing), 4) in radii
    assert radii[0] >= 0.05 - 1e-12 and radii[-1] == pytest.approx(corner, rel=1e-3)
    ratios = np.diff(np.log10(radii))
    assert ratios.max() < 0.1  # no gap wider than ~ a 16th of a decade plus rounding
    with pytest.raises(ExplorerError):
        display.radius_choices((0.0, 0.1))


def test_nearest_is_logarithmic():
    assert display.nearest([0.5, 1.0, 4.0], 2.1) == 4.0  # log-closer to 4 than to 1
    assert display.nearest([0.5, 1.0, 4.0], 1.9) == 1.0


def test_diverging_rgb_centre_is_white_and_signs_differ():
    vals = np.array([[-10.0, 0.0, 10.0]], np.float32)
    rgb = display.diverging_rgb(vals, 10.0)
    assert rgb.shape == (1, 3, 3)
    assert rgb[0, 1].min() > 230  # near white
    assert rgb[0, 0, 2] > rgb[0, 0, 0]  # blue for negative
    assert rgb[0, 2, 0] > rgb[0, 2, 2]  # red for positive
    assert display.symmetric_limit(vals, 100.0) == pytest.approx(10.0)


def test_compose_panels_png_layout():
    grey = np.full((50, 40), 128, np.uint8)
    rgb = np.zeros((100, 100, 3), np.uint8)
    png = display.compose_panels([("a", grey), ("b", rgb)], height=64, caption="lowpass R=2")
    img = Image.open(io.BytesIO(png))
    assert img.format == "PNG" and img.mode == "RGB"
    # two panels scaled to 64 px high: widths 51 and 64, plus three gaps of 8
    assert img.width == 51 + 64 + 3 * 8
    assert img.height > 64
    with pytest.raises(ExplorerError):
        display.compose_panels([])
    with pytest.raises(ExplorerError):
        display.compose_panels([("x", np.zeros((4, 4), np.float32))])


def test_patch_strip_common_window():
    a = np.full((4, 4), 1000.0, np.float32)
    b = np.full((4, 4), 3000.0, np.float32)
    strip = display.patch_strip([a, b], centre=2000.0, width=2000.0, gap=1)
    assert strip.shape == (4, 9)
    assert strip[0, 0] == 0 and strip[0, 8] == 255 and strip[0, 4] == 255
    with pytest.raises(ExplorerError, match="shape"):
        display.patch_strip([a, np.zeros((3, 3))], 0.0, 1.0)


def test_patch_strip_labels_each_patch():
    """Each patch of a calcification strip carries its R (issue 14)."""
    patches = [np.full((9, 9), v, np.float32) for v in (1000.0, 2000.0, 3000.0)]
    plain = display.patch_strip(patches, 2000.0, 2000.0, gap=2, scale=4)
    labelled = display.patch_strip(
        patches, 2000.0, 2000.0, gap=2, scale=4, labels=["original", "R = 2", "R = 1"]
    )
    band = labelled.shape[0] - plain.shape[0]
    assert plain.shape == (36, 3 * 36 + 4) and band >= 14
    assert np.array_equal(labelled[band:], plain)  # the patches, enlarged, under the labels
    for i in range(3):  # dark text above every patch, on white
        assert (labelled[:band, i * 38 : i * 38 + 36] < 128).any()
    with pytest.raises(ExplorerError, match="labels"):
        display.patch_strip(patches, 0.0, 1.0, labels=["one"])


def test_png_roundtrip():
    img = (np.arange(64, dtype=np.uint8).reshape(8, 8)) * 3
    back = np.asarray(Image.open(io.BytesIO(display.png_bytes(img))))
    np.testing.assert_array_equal(back, img)
    assert display.png_data_uri(img).startswith("data:image/png;base64,")


def test_upscale_nearest():
    img = np.array([[1, 2], [3, 4]], np.uint8)
    big = display.upscale(img, 3)
    assert big.shape == (6, 6) and (big[:3, :3] == 1).all() and (big[3:, 3:] == 4).all()
    assert display.upscale(img, 1) is img
    with pytest.raises(ExplorerError):
        display.upscale(img, 0)


def test_tissue_centre_mm():
    px = np.zeros((100, 200), np.float32)
    px[20:40, 150:170] = 1000.0
    y, x = display.tissue_centre_mm(px, (0.1, 0.2))
    assert y == pytest.approx(29.5 * 0.1, abs=0.15) and x == pytest.approx(159.5 * 0.2, abs=0.3)
    assert display.tissue_centre_mm(np.zeros((10, 20)), (1.0, 1.0)) == (5.0, 10.0)


def test_draw_ellipse_marks_the_outline_only():
    rgb = np.zeros((41, 41, 3), np.uint8)
    out = display.draw_ellipse(rgb, (20, 20), (10, 10), colour=(255, 0, 0), width=1)
    assert out[20, 30, 0] == 255 and out[20, 10, 0] == 255  # on the circle
    assert out[20, 20].tolist() == [0, 0, 0] and out[0, 0].tolist() == [0, 0, 0]
    assert rgb.max() == 0  # input untouched


def test_resample_aspect_makes_square_units():
    img = np.zeros((10, 20, 3), np.uint8)
    assert display.resample_aspect(img, 1.0, 0.5).shape == (10, 10, 3)
    assert display.resample_aspect(img, 1.0, 1.0) is img
