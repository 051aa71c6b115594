"""core.calcs: speck detection in mm, patches, visibility across low-pass radii, clusters, errors."""

from __future__ import annotations

import math

import numpy as np
import pytest

from core.calcs import (
    CalcError,
    Candidate,
    calcification_sweep,
    cluster_candidates,
    cut_patch,
    find_candidates,
    patch_shape,
    visibility,
    visibility_vs_radius,
)
from core.errors import ExplorerError
from tests.synthetic import powerlaw_noise


def add_discs(img, spacing, specks, contrast, ss=5):
    """Add anti-aliased discs (row, col, diameter_mm) of the given contrast: value = covered fraction."""
    out = img.astype(np.float64).copy()
    dy, dx = spacing
    off = (np.arange(ss) + 0.5) / ss - 0.5
    for r, c, d in specks:
        hr, hc = int(d / dy) + 2, int(d / dx) + 2
        for i in range(int(r) - hr, int(r) + hr + 1):
            for j in range(int(c) - hc, int(c) + hc + 1):
                yy = (i + off[:, None] - r) * dy
                xx = (j + off[None, :] - c) * dx
                out[i, j] += contrast * np.mean(yy**2 + xx**2 <= (d / 2) ** 2)
    return out


def background(shape, spacing, seed=0, texture=60.0, noise=20.0):
    rng = np.random.default_rng(seed)
    return 2000.0 + texture * powerlaw_noise(shape, spacing, 3.0, seed) + noise * rng.standard_normal(shape)


def speck_grid(shape, diameters):
    """Specks spread over the image, well apart: (row, col, diameter_mm)."""
    n = len(diameters)
    return [
        (shape[0] * (k + 0.7) / (n + 0.4), shape[1] * (0.3 + 0.4 * (k % 2)) + 0.37, d)
        for k, d in enumerate(diameters)
    ]


def nearest(cands, r, c, spacing):
    return min(cands, key=lambda q: math.hypot((q.row - r) * spacing[0], (q.col - c) * spacing[1]))


# -------------------------------------------------------------------------------------------- detection


@pytest.mark.parametrize("spacing", [(0.1, 0.1), (0.05, 0.1), (0.07, 0.07)], ids=["0.1mm", "aniso", "0.07mm"])
def test_specks_found_at_their_place_and_size(spacing):
    shape = (int(50 / spacing[0]), int(40 / spacing[1]))  # 50 x 40 mm
    specks = speck_grid(shape, [0.3, 0.4, 0.5, 0.65, 0.8])
    img = add_discs(background(shape, spacing), spacing, specks, contrast=300.0)
    found = find_candidates(img, spacing)
    assert len(found) == len(specks), [(q.row, q.col, q.diameter_mm) for q in found]
    for r, c, d in specks:
        q = nearest(found, r, c, spacing)
        assert math.hypot((q.row - r) * spacing[0], (q.col - c) * spacing[1]) < 0.06  # mm
        assert q.diameter_mm == pytest.approx(d, rel=0.15, abs=max(spacing))
        assert q.contrast == pytest.approx(300.0, rel=0.35)
        assert q.cnr > 5 and q.z >= 6
    assert [q.z for q in found] == sorted((q.z for q in found), reverse=True)


def test_fine_specks_are_found_at_one_pixel_accuracy():
    spacing = (0.1, 0.1)
    shape = (400, 400)
    specks = speck_grid(shape, [0.15, 0.2, 0.25])
    found = find_candidates(add_discs(background(shape, spacing, seed=1), spacing, specks, 400.0), spacing)
    assert len(found) == 3
    for r, c, _ in specks:
        q = nearest(found, r, c, spacing)
        assert abs(q.row - r) <= 1 and abs(q.col - c) <= 1
        assert q.diameter_mm <= 0.3  # at most a few pixels: sub-resolution sizes cannot be measured finer


def test_nothing_found_on_pure_noise():
    """41 cm^2 of white noise and of power-law texture with noise: no candidates at the default threshold."""
    spacing = (0.1, 0.1)
    rng = np.random.default_rng(7)
    white = 2000.0 + 40.0 * rng.standard_normal((640, 640))
    assert find_candidates(white, spacing) == []
    texture = background((640, 640), spacing, seed=7)
    assert find_candidates(texture, spacing) == []
    # The thresholds are what keeps it clean: lowered, the noise peaks come through.
    assert len(find_candidates(texture, spacing, z_min=4.5, min_cnr=1.5)) > 0


def test_only_the_breast_is_searched():
    spacing = (0.1, 0.1)
    shape = (400, 400)
    yy, xx = np.mgrid[0 : shape[0], 0 : shape[1]]
    breast = (yy - 200) ** 2 + xx**2 < 300**2  # chest wall at column 0
    img = np.where(breast, background(shape, spacing, seed=2), 0.0)
    inside, near_skin, label = (200.0, 150.0, 0.4), (200.0, 290.0, 0.4), (20.0, 380.0, 0.4)
    img = add_discs(img, spacing, [inside, near_skin], 400.0)
    img = add_discs(img, spacing, [label], 4000.0)  # a bright dot in the background, like a label
    found = find_candidates(img, spacing, edge_mm=3.0)
    assert len(found) == 1
    assert abs(found[0].row - 200) <= 1 and abs(found[0].col - 150) <= 1


def test_lines_are_not_specks():
    """A bright 0.3 mm wide fibre is rejected as line-like; a speck beside it is kept."""
    spacing = (0.1, 0.1)
    shape = (300, 300)
    img = background(shape, spacing, seed=3)
    img[:, 100:103] += 300.0
    img = add_discs(img, spacing, [(150.0, 220.0, 0.4)], 300.0)
    found = find_candidates(img, spacing)
    assert len(found) == 1 and abs(found[0].col - 220) <= 1


def test_max_count_keeps_the_strongest():
    spacing = (0.1, 0.1)
    shape = (500, 400)
    specks = speck_grid(shape, [0.4] * 6)
    img = background(shape, spacing, seed=4)
    for k, s in enumerate(specks):
        img = add_discs(img, spacing, [s], 150.0 + 60.0 * k)
    found = find_candidates(img, spacing, max_count=2)
    assert len(found) == 2
    brightest = {(round(r), round(c)) for r, c, _ in specks[-2:]}
    assert {(round(q.row), round(q.col)) for q in found} == brightest


# ----------------------------------------------------------------------------------------------- patches


def test_patch_shape_is_odd_and_in_mm():
    assert patch_shape(5.0, (0.1, 0.1)) == (51, 51)
    assert patch_shape(5.0, (0.05, 0.1)) == (101, 51)
    assert patch_shape((2.0, 3.0), (0.1, 0.07)) == (21, 43)
    assert patch_shape(0.01, (0.1, 0.1)) == (1, 1)


def test_cut_patch_is_native_and_padded_at_the_border():
    rng = np.random.default_rng(0)
    img = rng.random((60, 80)).astype(np.float64) * 4000 + 1
    p = cut_patch(img, (30, 40), 2.1, (0.1, 0.1))
    assert p.dtype == np.float32 and p.shape == (21, 21)
    np.testing.assert_array_equal(p, img[20:41, 30:51].astype(np.float32))
    p = cut_patch(img, (30.4, 39.6), 2.1, (0.1, 0.1))  # fractional centres round to the nearest pixel
    assert p[10, 10] == np.float32(img[30, 40])
    corner = cut_patch(img, (2, 3), (1.1, 1.1), (0.1, 0.1))
    assert corner.shape == (11, 11)
    assert np.all(corner[:3, :] == 0) and np.all(corner[:, :2] == 0)
    np.testing.assert_array_equal(corner[3:, 2:], img[:8, :9].astype(np.float32))
    assert not np.any(cut_patch(img, (-100, -100), 1.0, (0.1, 0.1)))
    aniso = cut_patch(img, (30, 40), 1.0, (0.05, 0.1))
    assert aniso.shape == (21, 11)


# -------------------------------------------------------------------------------------------- visibility


def test_visibility_is_contrast_over_annulus_noise():
    spacing = (0.1, 0.1)
    rng = np.random.default_rng(5)
    img = 2000.0 + 25.0 * rng.standard_normal((200, 200))
    img = add_discs(img, spacing, [(100.0, 100.0, 0.8)], 200.0)
    v = visibility(img, (100, 100), 0.8, spacing)
    assert v == pytest.approx(200.0 / 25.0 * 0.9, rel=0.2)  # disc edge pixels are partly covered
    # Away from the speck there is nothing to see.
    assert abs(visibility(img, (40, 40), 0.8, spacing)) < 1.5
    assert visibility(img, (100, 100), 0.8, spacing, noise=50.0) == pytest.approx(v * 25.0 / 50.0, rel=0.2)


def test_visibility_anisotropic_spacing_uses_mm():
    """The same 1 mm disc sampled at 0.1 x 0.1 mm and at 0.05 x 0.1 mm with the same pixel noise: the disc and
    annulus are laid out in mm, so the CNR (contrast / pixel noise) is the same."""
    vs, images = [], []
    for spacing in [(0.1, 0.1), (0.05, 0.1)]:
        shape = (int(20 / spacing[0]), int(20 / spacing[1]))
        img = 2000.0 + 20.0 * np.random.default_rng(6).standard_normal(shape)
        c = (shape[0] / 2, shape[1] / 2)
        images.append((add_discs(img, spacing, [(*c, 1.0)], 100.0), c))
        vs.append(visibility(*images[-1], 1.0, spacing))
    assert vs[0] == pytest.approx(100.0 / 20.0, rel=0.2)
    assert vs[1] == pytest.approx(vs[0], rel=0.15)
    # The square-pixel image read with the wrong spacing: the disc spans twice the speck's rows.
    assert visibility(*images[0], 1.0, (0.05, 0.1)) < 0.75 * vs[0]


def test_visibility_falls_with_the_lowpass_radius():
    """A 0.3 mm speck: under half its visibility at R = 1 cycle/mm, most of it at R = 4."""
    from core.perturb import FourierFilter, lowpass

    spacing = (0.1, 0.1)
    shape = (400, 400)
    specks = speck_grid(shape, [0.3, 0.3, 0.3])
    img = add_discs(background(shape, spacing, seed=8), spacing, specks, 300.0).astype(np.float32)
    radii = [math.inf, 8.0, 4.0, 2.0, 1.0, 0.5]
    v = visibility_vs_radius(img, spacing, specks, radii)
    assert v.shape == (3, 6)
    rel = v / v[:, :1]
    assert np.all(rel[:, 2] > 0.8)  # R = 4
    assert np.all(rel[:, 4] < 0.5)  # R = 1
    assert np.all(np.diff(rel, axis=1) < 0.05)  # falls (nearly monotonically) as R falls
    # The same numbers from the app's own low-pass filter, and from a FourierFilter given by the caller.
    r, c, d = specks[0]
    direct = visibility(
        lowpass(img, spacing, 1.0), (r, c), d, spacing, noise=visibility_noise(img, specks[0])
    )
    assert v[0, 4] == pytest.approx(direct, rel=1e-4)
    again = visibility_vs_radius(img, spacing, specks, radii, fourier=FourierFilter(img, spacing))
    np.testing.assert_allclose(again, v, rtol=1e-5)


def visibility_noise(img, speck):
    """Annulus noise of a speck in the unfiltered image: the ratio of unnormalised and CNR contrast."""
    r, c, d = speck
    raw = visibility(img, (r, c), d, (0.1, 0.1), noise=1.0)
    return raw / visibility(img, (r, c), d, (0.1, 0.1))


def test_local_noise_hides_the_loss():
    """With white detector noise, the filtered image's own annulus noise falls with R and props the CNR up."""
    spacing = (0.1, 0.1)
    rng = np.random.default_rng(9)
    img = add_discs(2000.0 + 30.0 * rng.standard_normal((300, 300)), spacing, [(150.0, 150.0, 0.3)], 300.0)
    ref = visibility_vs_radius(img, spacing, [(150.0, 150.0, 0.3)], [math.inf, 1.0])
    loc = visibility_vs_radius(img, spacing, [(150.0, 150.0, 0.3)], [math.inf, 1.0], noise="local")
    assert ref[0, 0] == pytest.approx(loc[0, 0])
    assert loc[0, 1] / loc[0, 0] > 2 * ref[0, 1] / ref[0, 0]


def test_sweep_patches_and_candidates_objects():
    spacing = (0.05, 0.1)
    shape = (400, 200)
    specks = speck_grid(shape, [0.4, 0.6])
    img = add_discs(background(shape, spacing, seed=10), spacing, specks, 300.0)
    found = find_candidates(img, spacing)
    sweep = calcification_sweep(img, spacing, found, [math.inf, 2.0, 0.5], patch_mm=3.0)
    assert sweep.patches.shape == (2, 3, 61, 31) and sweep.patches.dtype == np.float32
    np.testing.assert_array_equal(sweep.patches[0, 0], cut_patch(img, found[0].center_rc, 3.0, spacing))
    # The unfiltered visibility is the candidate's own cnr; the low-passed patch is smoother.
    assert sweep.visibility[0, 0] == pytest.approx(found[0].cnr, rel=1e-6)
    assert sweep.patches[0, 2].std() < sweep.patches[0, 0].std()
    assert sweep.reference_noise.shape == (2,)
    empty = calcification_sweep(img, spacing, [], [1.0, 2.0])
    assert empty.visibility.shape == (0, 2)


# ---------------------------------------------------------------------------------------------- clusters


def test_clusters_in_mm():
    spacing = (0.1, 0.1)
    group = [(100, 100), (120, 130), (140, 110), (110, 150)]  # within 5 mm of each other
    far = [(900, 900), (100, 900)]
    pair = [(600, 300), (620, 300)]
    cands = group + far + pair
    clusters = cluster_candidates(cands, spacing)
    assert len(clusters) == 1
    assert clusters[0].members == (0, 1, 2, 3) and clusters[0].count == 4
    assert clusters[0].span_mm == pytest.approx(math.hypot(1.0, 5.0))  # (100, 100) to (110, 150)
    assert (clusters[0].row, clusters[0].col) == pytest.approx((117.5, 122.5))
    assert [c.count for c in cluster_candidates(cands, spacing, min_count=2)] == [4, 2]
    # At 0.3 mm column spacing the same pixel positions lie 3x farther apart across: no cluster of 3.
    assert cluster_candidates(group, (0.1, 0.3), min_count=3) == []
    objs = [Candidate(row=r, col=c, diameter_mm=0.3, contrast=1.0, cnr=5.0) for r, c in group]
    assert cluster_candidates(objs, spacing)[0].members == (0, 1, 2, 3)
    assert cluster_candidates([], spacing) == []


# ------------------------------------------------------------------------------------------------ errors


@pytest.mark.parametrize(
    ("call", "match"),
    [
        (lambda: find_candidates(np.zeros((8, 8, 3)), (0.1, 0.1)), "2-D"),
        (lambda: find_candidates(np.full((64, 64), np.inf), (0.1, 0.1)), "infinite"),
        (lambda: find_candidates(np.ones((64, 64)), (0.1, -0.1)), "positive"),
        (lambda: find_candidates(np.ones((64, 64)), (0.1, 0.1), min_mm=1.0, max_mm=0.5), "exceeds"),
        (lambda: find_candidates(np.ones((64, 64)), (0.1, 0.1), max_count=-1), "max_count"),
        (lambda: find_candidates(np.ones((64, 64)), (0.1, 0.1), edge_mm=-1), "edge_mm"),
        (lambda: find_candidates(np.ones((64, 64)), (0.1, 0.1), mask=np.ones((3, 3))), "mask shape"),
        (lambda: cut_patch(np.ones((64, 64)), (1, 2), 0, (0.1, 0.1)), "size_mm"),
        (lambda: cut_patch(np.ones((64, 64)), (1, np.nan), 1, (0.1, 0.1)), "center_rc"),
        (lambda: cut_patch(np.ones((64, 64)), "middle", 1, (0.1, 0.1)), "center_rc"),
        (lambda: visibility(np.ones((64, 64)), (10, 10), -0.3, (0.1, 0.1)), "diameter_mm"),
        (lambda: visibility(np.ones((64, 64)), (100, 10), 0.3, (0.1, 0.1)), "outside"),
        (lambda: visibility_vs_radius(np.ones((64, 64)), (0.1, 0.1), [(10, 10, 0.3)], [0.0]), "radii"),
        (lambda: visibility_vs_radius(np.ones((64, 64)), (0.1, 0.1), [(10, 10)], [1.0]), "candidate 0"),
        (
            lambda: visibility_vs_radius(np.ones((64, 64)), (0.1, 0.1), [(10, 10, 0.3)], [1.0], noise="x"),
            "noise",
        ),
        (lambda: visibility_vs_radius(np.ones((64, 64)), (0.1, 0.1), [(99, 10, 0.3)], [1.0]), "outside"),
        (lambda: cluster_candidates([(1, 2)], (0.1, 0.1), min_count=0), "min_count"),
        (lambda: cluster_candidates([("a", 2)], (0.1, 0.1)), "candidate 0"),
    ],
)
def test_bad_input_raises_calc_error(call, match):
    with pytest.raises(CalcError, match=match) as info:
        call()
    assert isinstance(info.value, ExplorerError)


# ------------------------------------------------------------------------------------------- real image


@pytest.mark.slow
def test_real_malignant_breast(nyu_samples):
    """dmv_1_R_CC (malignant right breast; 0.1 mm assumed): specks found, and they fade under low-pass."""
    from core.imaging import load_mammogram

    m = load_mammogram(nyu_samples / "dmv_1_R_CC.png", spacing_mm=(0.1, 0.1))
    found = find_candidates(m.pixels, m.spacing_mm)
    assert 5 <= len(found) <= 100
    assert all(m.pixels[int(round(q.row)), int(round(q.col))] > 0 for q in found)
    assert all(0.05 < q.diameter_mm <= 1.25 and q.contrast > 0 for q in found)
    v = visibility_vs_radius(m.pixels, m.spacing_mm, found, [math.inf, 4.0, 2.0, 1.0])
    rel = v / v[:, :1]
    fine = np.array([q.diameter_mm <= 0.35 for q in found])
    med, med_fine = np.median(rel, axis=0), np.median(rel[fine], axis=0)
    print(f"{len(found)} candidates ({fine.sum()} of 0.35 mm or less); median visibility kept at R=4, 2, 1:")
    print(f"  all {np.round(med[1:], 2)}, fine {np.round(med_fine[1:], 2)}")
    assert fine.sum() >= 3
    assert med[1] > 0.8 and med[1] > med[2] > med[3]
    # Fine specks have most of their energy above 1 cycle/mm: they fade as in the study's Figure 3.
    assert med_fine[3] < 0.5
