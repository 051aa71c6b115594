"""NYU preprocessing: the spec 0.5 reference tables on the real samples, and the pieces on small arrays."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import ndimage

from core.errors import ExplorerError
from core.models import ModelError
from core.models.preprocess import (
    DMV_MAX_CROP_NOISE,
    DMV_MAX_CROP_SIZE_NOISE,
    DMV_WINDOW,
    GMIC_WINDOW,
    PreprocessError,
    best_center,
    crop_breast,
    dilate_cross,
    erode_cross,
    extract_window,
    flip_for_model,
    largest_component,
    resize_bicubic,
    standardise,
)

# Spec section 0.5, computed by the official code with horizontal_flip='NO'.
DMV_TABLE = {
    "dmv_1_L_CC": ((233, 2825, 0, 1263), ((1336, 1356), 1212), (2541, (100, 103)), (2592, 1263), (1296, 240)),
    "dmv_1_R_CC": (
        (587, 3011, 1398, 2560),
        ((1215, 1221), 1112),
        (2373, (101, 101)),
        (2424, 1162),
        (1212, 140),
    ),
    "dmv_2_L_CC": ((290, 3154, 0, 1203), ((1406, 1410), 1152), (2813, (100, 100)), (2864, 1203), (1429, 180)),
    "dmv_2_R_CC": (
        (73, 2895, 1358, 2560),
        ((1518, 1519), 1152),
        (2771, (101, 102)),
        (2822, 1202),
        (1418, 180),
    ),
}
GMIC_TABLE = {
    "gmic_0_L-CC": (
        (0, 2023, 0, 801),
        ((948, 957), 750),
        (1972, (100, 100)),
        (1011, -211),
        (460, 2483, 0, 801),
    ),
    "gmic_0_R-CC": (
        (0, 2144, 0, 801),
        ((1232, 1249), 751),
        (2093, (101, 101)),
        (1072, -210),
        (400, 2519, 0, 751),
    ),
    "gmic_0_L-MLO": (
        (0, 2730, 0, 981),
        ((1733, 1749), 930),
        (2679, (100, 101)),
        (1206, -31),
        (12, 2730, 0, 981),
    ),
    "gmic_0_R-MLO": (
        (0, 2650, 0, 1006),
        ((1571, 1648), 956),
        (2599, (101, 102)),
        (1126, -5),
        (12, 2649, 0, 1006),
    ),
}


def _read(folder, stem):
    import imageio.v3 as iio

    return iio.imread(folder / f"{stem}.png")


def _lat_view(stem: str) -> tuple[str, str]:
    tail = stem.split("_", 2)[2].replace("_", "-")  # "1_L_CC" -> "L-CC"
    return tail[0], tail.split("-")[1]


@pytest.mark.slow
@pytest.mark.parametrize("stem", sorted(DMV_TABLE))
def test_dmv_crop_and_best_center_table(nyu_samples, stem):
    window, rightmost, bottommost, shape, center = DMV_TABLE[stem]
    img = _read(nyu_samples, stem)
    lat, view = _lat_view(stem)
    crop = crop_breast(img, lat)
    assert crop.window_location == window
    assert crop.rightmost_points == rightmost
    assert crop.bottommost_points == bottommost
    assert crop.pixels.shape == shape
    assert crop.distance_from_starting_side == 0
    np.testing.assert_array_equal(crop.pixels, img[window[0] : window[1], window[2] : window[3]])
    flipped = flip_for_model(crop.pixels, lat)
    got = best_center(flipped, view, DMV_WINDOW[view], rightmost_x=rightmost[1], bottommost_y=bottommost[0])
    assert got == center


@pytest.mark.parametrize("stem", sorted(GMIC_TABLE))
def test_gmic_table_and_window_bbox(nyu_samples, stem):
    window, rightmost, bottommost, center, bbox = GMIC_TABLE[stem]
    img = _read(nyu_samples, stem)
    lat, view = stem.split("_")[2].split("-")
    crop = crop_breast(img, lat)
    assert (crop.window_location, crop.rightmost_points, crop.bottommost_points) == (
        window,
        rightmost,
        bottommost,
    )
    flipped = flip_for_model(crop.pixels, lat).astype(np.float32)
    got = best_center(flipped, view, GMIC_WINDOW[view], rightmost_x=rightmost[1], bottommost_y=bottommost[0])
    assert got == center
    win = extract_window(flipped, view, GMIC_WINDOW[view], got)
    assert win.shape == GMIC_WINDOW[view]
    rows = np.flatnonzero((win > 0).any(axis=1))
    cols = np.flatnonzero((win > 0).any(axis=0))
    assert (rows[0], rows[-1] + 1, cols[0], cols[-1] + 1) == bbox


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_fast_erosion_dilation_equal_iterative_definition(seed):
    rng = np.random.default_rng(seed)
    mask = ndimage.binary_opening(rng.random((70, 53)) > 0.35)
    mask[10:40, 0:30] = True  # foreground touching the border
    for k in (1, 3, 7, 12):
        np.testing.assert_array_equal(erode_cross(mask, k), ndimage.binary_erosion(mask, iterations=k))
        np.testing.assert_array_equal(dilate_cross(mask, k), ndimage.binary_dilation(mask, iterations=k))


def test_largest_component_is_four_connected_and_first_on_ties():
    mask = np.zeros((9, 9), bool)
    mask[0:2, 0:2] = True  # 4 px, first in label order
    mask[5:7, 5:7] = True  # 4 px, tie
    mask[2, 2] = True  # touches the first block only diagonally: not part of it
    comp = largest_component(mask)
    assert comp.sum() == 4 and comp[0, 0] and not comp[5, 5] and not comp[2, 2]
    assert largest_component(np.zeros((4, 4), bool)) is None


def _synthetic_breast(h=300, w=200, facing="right"):
    yy, xx = np.mgrid[0:h, 0:w]
    img = np.where(((yy - h / 2) / (h * 0.42)) ** 2 + (xx / (w * 0.7)) ** 2 < 1, 1000.0 + xx, 0.0)
    img[5:9, w - 30 : w - 10] = 4000.0  # a burned-in label, removed by erosion
    img = img.astype(np.float32)
    return img if facing == "right" else img[:, ::-1].copy()


def test_crop_mirrors_for_right_breasts():
    left = crop_breast(_synthetic_breast(), "L", erosion_iterations=10, buffer=5)
    right = crop_breast(_synthetic_breast(facing="left"), "R", erosion_iterations=10, buffer=5)
    assert left.mode == "right" and right.mode == "left"
    assert left.window_location[2] == 0 and right.window_location[3] == 200
    np.testing.assert_array_equal(flip_for_model(right.pixels, "R"), left.pixels)
    # the label at rows 5..8 is not part of the breast, so the crop starts below it
    assert left.window_location[0] > 9
    # right-facing rightmost x is the last column; mirrored frame gives width - first column = same + 1
    assert right.rightmost_points[1] == left.rightmost_points[1] + 1
    yes = crop_breast(_synthetic_breast(facing="left"), "L", "YES", erosion_iterations=10, buffer=5)
    assert yes.window_location == right.window_location


@pytest.mark.parametrize(
    "pixels, match",
    [
        (np.zeros((50, 50), np.float32), "no pixel above 0"),
        (np.pad(np.ones((5, 5), np.float32), 20), "nothing is left"),
        (np.ones((3, 4, 5), np.float32), "2-D"),
        (np.full((20, 20), np.nan, np.float32), "NaN"),
    ],
)
def test_crop_failures_raise_preprocess_error(pixels, match):
    with pytest.raises(PreprocessError, match=match) as info:
        crop_breast(pixels, "L", erosion_iterations=10, name="case.png")
    assert isinstance(info.value, ModelError) and isinstance(info.value, ExplorerError)
    if match != "2-D":
        assert "case.png" in str(info.value)


def test_bad_laterality_and_view_raise():
    with pytest.raises(PreprocessError, match="laterality"):
        crop_breast(_synthetic_breast(), "X")
    with pytest.raises(PreprocessError, match="neither CC nor MLO"):
        extract_window(np.ones((10, 10)), "ML", (8, 8), (5, 5))


def _window_inputs():
    crop = crop_breast(_synthetic_breast(400, 260), "L", erosion_iterations=10, buffer=5)
    flipped = flip_for_model(crop.pixels, "L")
    return crop, flipped


def test_best_center_cc_and_mlo_constraints():
    crop, flipped = _window_inputs()
    rx, by = crop.rightmost_points[1], crop.bottommost_points[0]
    cy, cx = best_center(flipped, "CC", (100, 60), rightmost_x=rx, bottommost_y=by)
    assert cx == rx - 30 - 1
    # the window holding the most breast, closest to the centre: symmetric breast -> near the middle row
    assert abs(cy - flipped.shape[0] // 2) <= 2
    my, mx = best_center(flipped, "MLO", (100, 60), rightmost_x=rx, bottommost_y=by)
    # MLO: no search; bottom = the breast's last row within the right-most 60 columns (above the bottommost
    # row for this ellipse, whose far side is shorter)
    last = int(np.flatnonzero((flipped[:, -60:] > 0).any(axis=1))[-1])
    assert last < by
    assert (my, mx) == (last - 50 - 1, rx - 31)
    wide = best_center(flipped, "MLO", (100, 10 * flipped.shape[1]), rightmost_x=rx, bottommost_y=by)
    assert wide[0] == by - 50 - 1


def test_augmented_windows_are_seeded_and_vary():
    _, flipped = _window_inputs()
    kwargs = dict(max_crop_noise=(20, 20), max_crop_size_noise=20)
    center = (flipped.shape[0] // 2, 60)
    a = [
        extract_window(flipped, "CC", (200, 120), center, rng=np.random.RandomState(0), **kwargs)
        for _ in "ab"
    ]
    np.testing.assert_array_equal(a[0], a[1])
    rng = np.random.RandomState(0)
    seq = [extract_window(flipped, "CC", (200, 120), center, rng=rng, **kwargs) for _ in range(3)]
    np.testing.assert_array_equal(seq[0], a[0])
    assert not np.array_equal(seq[0], seq[1])
    assert all(w.shape == (200, 120) and w.dtype == np.float32 for w in seq)
    # consumption: uniform(2) then uniform(4) per window when location noise is on, uniform(4) only otherwise
    ref = np.random.RandomState(0)
    ref.uniform(size=6 * 3)
    assert rng.uniform() == ref.uniform()
    rng = np.random.RandomState(0)
    extract_window(flipped, "CC", (200, 120), center, rng=rng, max_crop_size_noise=5)
    ref = np.random.RandomState(0)
    ref.uniform(size=4)
    assert rng.uniform() == ref.uniform()


def test_window_without_noise_is_exact_copy():
    _, flipped = _window_inputs()
    win = extract_window(flipped, "CC", (100, 60), (150, 40))
    np.testing.assert_array_equal(win, flipped[100:200, 10:70])


def test_dmv_noise_constants():
    assert DMV_MAX_CROP_NOISE == (100, 100) and DMV_MAX_CROP_SIZE_NOISE == 100


def test_resize_bicubic_matches_keys_kernel():
    rng = np.random.default_rng(0)
    img = rng.random((13, 9)).astype(np.float32)
    same = resize_bicubic(img, img.shape)
    np.testing.assert_allclose(same, img, atol=1e-6)  # identity scale: weights (0, 1, 0, 0)
    # a linear ramp is reproduced exactly inside (cubic convolution reproduces linear functions)
    ramp = np.tile(np.arange(40, dtype=np.float32), (5, 1))
    out = resize_bicubic(ramp, (5, 20))
    np.testing.assert_allclose(out[0, 2:-2], (np.arange(20) + 0.5)[2:-2] * 2 - 0.5, atol=1e-4)
    pytest.importorskip("cv2")
    import cv2

    for shape in [(17, 11), (7, 5), (30, 4)]:
        np.testing.assert_allclose(
            resize_bicubic(img, shape), cv2.resize(img, shape[::-1], interpolation=cv2.INTER_CUBIC), atol=1e-5
        )


def test_standardise_population_std_and_floor():
    x = np.arange(12, dtype=np.float32).reshape(3, 4)
    s = standardise(x)
    assert s.dtype == np.float32
    np.testing.assert_allclose(s, (x - x.mean()) / x.std(ddof=0), rtol=1e-6)
    assert abs(float(s.mean())) < 1e-6 and abs(float(s.std()) - 1) < 1e-6
    const = standardise(np.full((4, 4), 7.0, np.float32))
    np.testing.assert_array_equal(const, np.zeros((4, 4), np.float32))
    assert x[0, 0] == 0  # input untouched
