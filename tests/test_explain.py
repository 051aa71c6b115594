"""The model's eye: GMIC's saliency maps and regions mapped back onto the stored image, its probabilities
equal to the predictions, the score-versus-R curve, and ``mammo-robust explain`` on a real sample."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from PIL import Image

from core.imaging import Mammogram
from core.models import ModelError
from core.models.demo_weights import DEMO_SPACING_MM
from core.models.explain import explain_image, frame_of
from core.models.inputs import ImageInputs, crop_for_model, window_from_crop
from core.models.predict import predict_gmic
from core.models.registry import build_model

SMALL = {"input_size": [224, 160], "spacing_mm": 1.0, "crop_shape": [48, 48], "K": 3}


def _breast(laterality: str, spacing: float, shape=(150, 100), seed: int = 0) -> Mammogram:
    """A right-facing half ellipse of textured tissue (mirrored for right breasts); every tissue value
    differs, so a pixel can be told from its neighbours."""
    rng = np.random.default_rng(seed)
    h, w = shape
    yy, xx = np.mgrid[0:h, 0:w]
    inside = ((yy - h / 2) / (h * 0.42)) ** 2 + (xx / (w * 0.75)) ** 2 < 1
    img = np.where(inside, 1200 + 1500 * rng.random(shape), 0).astype(np.float32)
    if laterality == "R":
        img = img[:, ::-1].copy()
    return Mammogram(
        img, spacing_mm=(spacing, spacing), spacing_source="caller", laterality=laterality, view="CC"
    )


pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def gmic():
    torch.manual_seed(0)
    return build_model("gmic", config=SMALL).eval()


@pytest.mark.parametrize("laterality", ["L", "R"])
def test_window_pixels_map_back_to_the_image_pixels_they_came_from(gmic, laterality):
    """At the weights' own spacing (no resampling) the window is a copy of image pixels: every image pixel
    the frame maps into the window holds exactly the window's value there, for both lateralities."""
    m = _breast(laterality, 1.0)
    frame = frame_of(ImageInputs(m, gmic.spec))
    crop, geometry = crop_for_model(m, gmic.spec)
    window = window_from_crop(crop, geometry, gmic.spec, standardise=False)
    wr, _ = frame.image_to_window(np.arange(m.pixels.shape[0]), np.zeros(1))
    _, wc = frame.image_to_window(np.zeros(1), np.arange(m.pixels.shape[1]))
    assert np.allclose(wr, np.round(wr)) and np.allclose(wc, np.round(wc))
    rows = np.flatnonzero((wr >= 0) & (wr < window.shape[0]))
    cols = np.flatnonzero((wc >= 0) & (wc < window.shape[1]))
    assert len(rows) > 50 and len(cols) > 30  # the window covers most of the breast
    seen = window[np.ix_(wr[rows].astype(int), wc[cols].astype(int))]
    np.testing.assert_array_equal(seen, m.pixels[np.ix_(rows, cols)])
    assert (seen > 0).mean() > 0.3
    # the window's box on the image spans exactly those pixels (clipped to the image)
    row, col, height, width = frame.window_box
    assert (row, row + height) == (rows[0], rows[-1] + 1) and (col, col + width) == (cols[0], cols[-1] + 1)


@pytest.mark.parametrize("laterality", ["L", "R"])
def test_a_bright_spot_maps_back_to_where_it_lies_after_resampling(gmic, laterality):
    """Image at 0.25 mm, weights at 1 mm: the window's brightest pixel maps back onto a bright spot placed
    in the breast, within one window pixel (4 image pixels)."""
    m = _breast(laterality, 0.25, shape=(560, 380), seed=2)
    pixels = m.pixels.copy()
    spot = (300, 60 if laterality == "L" else 380 - 60 - 12)
    pixels[spot[0] : spot[0] + 12, spot[1] : spot[1] + 12] = 40000.0
    m = Mammogram(pixels, spacing_mm=m.spacing_mm, spacing_source="caller", laterality=laterality, view="CC")
    frame = frame_of(ImageInputs(m, gmic.spec))
    crop, geometry = crop_for_model(m, gmic.spec)
    window = window_from_crop(crop, geometry, gmic.spec, standardise=False)
    r, c = np.unravel_index(np.argmax(window), window.shape)
    rows, cols = frame.window_edges_to_image(np.array([r + 0.5]), np.array([c + 0.5]))
    assert abs(rows[0] - (spot[0] + 6)) <= 4 and abs(cols[0] - (spot[1] + 6)) <= 4


@pytest.mark.parametrize("laterality", ["L", "R"])
def test_explanations_equal_predictions_and_stay_inside_the_image(gmic, laterality):
    m = _breast(laterality, 0.5, shape=(300, 200), seed=3)
    changed = m.pixels * np.float32(0.7)
    original, perturbed = explain_image(gmic, m, {"o": m.pixels, "p": changed})
    expected = predict_gmic(
        gmic, [m, Mammogram(changed, m.spacing_mm, "caller", laterality, "CC")], batch_size=1
    )
    # exactly: the same window, the same forward pass, one image per pass
    assert (original.benign, original.malignant) == tuple(expected[0])
    assert (perturbed.benign, perturbed.malignant) == tuple(expected[1])
    assert original.version == "o" and perturbed.version == "p"
    h0, w0 = m.pixels.shape
    for e in (original, perturbed):
        assert 0 <= e.benign <= 1 and 0 <= e.malignant <= 1
        assert e.saliency.shape[0] == 2 and e.saliency.dtype == np.float32
        assert len(e.regions) == 3
        for r in e.regions:
            assert 0 <= r.row and r.row + r.height <= h0 and 0 <= r.col and r.col + r.width <= w0
            assert r.height <= 96 and r.width <= 96  # 48 window pixels of 1 mm = 96 image pixels of 0.5 mm
            assert 0 < r.attention < 1
        assert abs(sum(r.attention for r in e.regions) - 1) < 1e-5
        on_image = e.saliency_on_image("malignant")
        assert on_image.shape == (h0, w0)
        row, col, height, width = e.frame.window_box
        inside = on_image[row + 1 : row + height - 1, col + 1 : col + width - 1]
        assert np.isfinite(inside).all() and inside.min() >= 0 and inside.max() <= 1
        outside = np.ones((h0, w0), bool)
        outside[row : row + height, col : col + width] = False
        assert np.isnan(on_image[outside]).all()


@pytest.mark.parametrize("laterality", ["L", "R"])
def test_saliency_on_the_image_takes_each_cells_value_at_its_centre(gmic, laterality):
    m = _breast(laterality, 1.0, seed=4)
    (e,) = explain_image(gmic, m, [("o", m.pixels)])
    (wh, ww), (ch, cw) = e.frame.window_shape, e.saliency.shape[1:]
    centre_r = (np.arange(ch) + 0.5) * wh / ch - 0.5  # cell centres in window pixels
    centre_c = (np.arange(cw) + 0.5) * ww / cw - 0.5
    rows, _ = e.frame.window_edges_to_image(centre_r + 0.5, np.zeros(1))
    _, cols = e.frame.window_edges_to_image(np.zeros(1), centre_c + 0.5)
    for k, label in enumerate(("benign", "malignant")):
        got = e.saliency_at(label, rows - 0.5, cols - 0.5)
        mask = np.isfinite(got)
        assert mask.sum() >= 4
        np.testing.assert_allclose(got[mask], e.saliency[k][mask], atol=1e-5)


def test_bad_inputs_give_clear_errors(gmic):
    m = _breast("L", 1.0)
    dmv = build_model("dmv", "image-only", {"input_size": [96, 64], "spacing_mm": 1.0})
    with pytest.raises(ModelError, match="need GMIC"):
        explain_image(dmv, m, [("o", m.pixels)])
    with pytest.raises(ModelError, match="shape"):
        explain_image(gmic, m, [("o", m.pixels[:-1])])
    (e,) = explain_image(gmic, m, [("o", m.pixels)])
    with pytest.raises(ModelError, match="saliency label"):
        e.saliency_on_image("cancer")


def test_resolution_notes():
    from core.eye import ModelInput, resolution_note
    from core.models.resolution import nyquist_mm, spec_input_spacing

    demo = ModelInput(0.3, nyquist_mm(0.3), "demo weights resample every image to 0.3 mm")
    assert abs(demo.nyquist_mm - 5 / 3) < 1e-12 and "1.67 cycles/mm" in demo.describe()
    assert "cannot see what this filter removes" in resolution_note("lowpass", 2.0, demo)
    assert "finer than the model can see" in resolution_note("highpass", 2.0, demo)
    assert resolution_note("lowpass", 1.0, demo) is None and resolution_note("noise", 1600, demo) is None
    official = build_model("gmic").spec  # native pixels: the image's coarser spacing
    assert spec_input_spacing(official, (0.07, 0.1)) == 0.1 and spec_input_spacing(official) is None
    assert spec_input_spacing(build_model("gmic", config=SMALL).spec, (0.07, 0.1)) == 1.0


def test_curve_points_equal_the_perturbed_explanation_and_the_run_scores(gmic):
    from core.eye import curve_radii, look, score_curve
    from core.models.predict import score_image
    from core.perturb import PreparedImage

    m = _breast("R", 0.5, shape=(300, 200), seed=5)
    image = PreparedImage(m.pixels, m.spacing_mm)
    assert curve_radii("lowpass", [0.3]) == [0.25, 0.3, 0.5, 1.0, 2.0, 4.0]
    seen = []
    points = score_curve(
        gmic, m, image, radii=[0.3, 0.6], on_point=lambda p, i, n: seen.append((p.radius, i, n))
    )
    assert seen == [(0.3, 1, 2), (0.6, 2, 2)]
    _, perturbed = look(gmic, m, image.apply("lowpass", 0.6))
    assert (points[1].benign, points[1].malignant) == (perturbed.benign, perturbed.malignant)
    runs = score_image(gmic, m, {0.3: image.apply("lowpass", 0.3)}, batch_size=1)
    assert (points[0].benign, points[0].malignant) == (runs[0].benign, runs[0].malignant)
    high = score_curve(gmic, m, image, mode="highpass", radii=[0.6])
    assert high[0].mode == "highpass" and high[0].malignant != points[1].malignant


def test_picture_draws_the_saliency_over_the_image(gmic):
    from core.eye.pictures import picture, saliency_scale

    m = _breast("L", 0.5, shape=(300, 200), seed=6)
    (e,) = explain_image(gmic, m, [("o", m.pixels)])
    plain = picture(m.pixels, e, "malignant", max_side=150, regions=False, vmax=1e9)  # no colour at all
    rgb = picture(m.pixels, e, "malignant", max_side=150, vmax=saliency_scale([e]))
    assert rgb.shape == plain.shape == (150, 100, 3) and rgb.dtype == np.uint8
    assert np.array_equal(plain[..., 0], plain[..., 2])  # grey
    assert (np.abs(rgb.astype(int) - plain.astype(int)).sum(axis=2) > 30).mean() > 0.05  # colour on top
    cyan = (rgb[..., 0] < 60) & (rgb[..., 1] > 180) & (rgb[..., 2] > 200)
    assert cyan.any()  # the region boxes


@pytest.mark.slow
@pytest.mark.parametrize(("weights", "k", "crop"), [("demo", 6, 256), ("demo-fast", 4, 48)])
def test_explain_command_on_a_real_sample_with_demo_weights(nyu_samples, tmp_path, capsys, weights, k, crop):
    """``mammo-robust explain`` on dmv_1_R_CC.png with both demo weights at R = 2: probabilities in [0, 1],
    patches inside the image, the original's probabilities equal to ``mammo-robust predict gmic`` on the
    file (the CSV holds 6 decimals, so to 5e-7; the library call is compared exactly); the 0.1 mm weights
    see the band R = 2 removes, the 0.3 mm ones are told they cannot."""
    import pandas as pd

    from core.cli import main
    from core.imaging import load_mammogram
    from core.models import create_model

    path = nyu_samples / "dmv_1_R_CC.png"
    out = tmp_path / "eye"
    chosen = ["--weights", weights]
    assert main(["explain", str(path), "--model", "gmic", "--lowpass", "2", "--out", str(out), *chosen]) == 0
    data = json.loads((out / "explain.json").read_text())
    assert main(["predict", "gmic", str(path), "--out", str(tmp_path / "p.csv"), *chosen]) == 0
    csv = pd.read_csv(tmp_path / "p.csv")
    rows, cols = data["image_shape"]
    assert (rows, cols) == (3328, 2560)
    for which in ("original", "perturbed"):
        record = data[which]
        assert 0 <= record["benign"] <= 1 and 0 <= record["malignant"] <= 1
        assert len(record["patches"]) == k  # the weights' K
        for p in record["patches"]:
            assert p["row"] >= 0 and p["col"] >= 0 and p["height"] > 0 and p["width"] > 0
            assert p["row"] + p["height"] <= rows and p["col"] + p["width"] <= cols
            # the model's patch side in the image's 0.1 mm pixels
            assert abs(p["height"] - crop * DEMO_SPACING_MM[weights] / 0.1) <= 1
        for label, name in record["pictures"].items():
            with Image.open(out / name) as im:
                # the longer side reduced to --png-size (1024), the aspect kept
                assert im.size == (788, 1024) and im.mode == "RGB", (label, im.size)
    assert abs(data["original"]["benign"] - csv["benign_pred"][0]) <= 5e-7
    assert abs(data["original"]["malignant"] - csv["malignant_pred"][0]) <= 5e-7
    assert data["original"] != data["perturbed"]
    nyquist = 1 / (2 * DEMO_SPACING_MM[weights])
    assert abs(data["model_input"]["nyquist_cycles_per_mm"] - nyquist) < 1e-9
    if weights == "demo":
        assert not data["note"]
    else:
        assert "cannot see what this filter removes" in data["note"]
    assert data["image"].startswith("img-") and "dmv_1" not in (out / "explain.json").read_text()
    assert (out / "explain.png").is_file()
    # the library call behind it equals predict_gmic bit for bit
    m = load_mammogram(path)
    model = create_model("gmic", weights=weights)
    assert data["original"]["malignant"] == predict_gmic(model, [m])[0, 1]
    err = capsys.readouterr()
    assert f"Nyquist frequency is {nyquist:.3g} cycles/mm" in err.out


def test_explain_command_refuses_what_it_cannot_do(tmp_path, capsys):
    from core.cli import main
    from core.imaging import save_png

    m = _breast("L", 0.5, shape=(300, 200))
    f = save_png(m, tmp_path / "case_L-CC.png")
    assert main(["explain", str(f), "--model", "dmv", "--out", str(tmp_path / "o")]) == 2
    assert "only gmic" in capsys.readouterr().err
    dmv = "assets/weights/dmv-demo-fast.pt"
    assert main(["explain", str(f), "--weights", dmv, "--view", "L-CC", "--out", str(tmp_path / "o")]) == 2
    assert "dmv weights, not gmic" in capsys.readouterr().err
    assert main(["explain", str(tmp_path / "missing.png"), "--out", str(tmp_path / "o")]) == 2
    assert "missing.png" in capsys.readouterr().err
    assert not (tmp_path / "o" / "explain.json").exists()
