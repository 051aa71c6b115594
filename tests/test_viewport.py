"""core.viewport: cutting the visible window and reducing it to the screen by area statistics."""

from __future__ import annotations

import math

import numpy as np
import pytest

from core.errors import ExplorerError
from core.viewport import (
    MIN_VIEW_PX,
    Viewport,
    area_mean,
    area_weights,
    pack_values,
    render_tile,
    tile_geometry,
)


def test_area_weights_rows_sum_to_one_and_cover_every_sample_equally():
    w = area_weights(10, 3).toarray()
    assert w.shape == (3, 10)
    assert np.allclose(w.sum(axis=1), 1.0)
    assert np.allclose(w.sum(axis=0), 0.3)  # each input sample carries m / n of the total weight
    with pytest.raises(ExplorerError):
        area_weights(3, 10)


def test_area_mean_is_the_exact_mean_over_fractional_footprints():
    ramp = np.tile(np.arange(10, dtype=np.float32), (4, 1))  # value = column index
    out = area_mean(ramp, (4, 3))
    # footprints [0, 10/3), [10/3, 20/3), [20/3, 10): the mean of x over [a, b) of unit cells is their
    # overlap-weighted average of the cell values.
    expected = []
    for i in range(3):
        a, b = i * 10 / 3, (i + 1) * 10 / 3
        cells = np.arange(10)
        overlap = np.clip(np.minimum(b, cells + 1) - np.maximum(a, cells), 0, None)
        expected.append((overlap * cells).sum() / (b - a))
    assert np.allclose(out, np.array(expected)[None, :], atol=1e-5)
    blocks = np.arange(36, dtype=np.float32).reshape(6, 6)
    assert np.allclose(area_mean(blocks, (3, 2)), blocks.reshape(3, 2, 2, 3).mean(axis=(1, 3)))
    assert area_mean(blocks, (6, 6)) is not blocks and np.array_equal(area_mean(blocks, (6, 6)), blocks)
    with pytest.raises(ExplorerError):
        area_mean(blocks, (7, 6))


def test_viewport_clamps_parses_and_goes_native():
    shape = (1000, 800)
    assert Viewport.parse(None, shape) == Viewport.full(shape)
    assert Viewport.parse({"top": "x"}, shape) == Viewport.full(shape)
    v = Viewport.parse({"top": -50, "left": 700, "bottom": 150, "right": 900}, shape)
    assert (v.top, v.bottom, v.left, v.right) == (0.0, 200.0, 600.0, 800.0)  # moved inside, size kept
    tiny = Viewport(10, 10, 11, 11).clamped(shape)
    assert tiny.height == MIN_VIEW_PX and tiny.width == MIN_VIEW_PX
    big = Viewport(-10, -10, 2000, 2000).clamped(shape)
    assert big.is_full(shape)
    native = Viewport.native(shape, (500, 400), (300, 200))
    assert (native.height, native.width) == (300, 200)
    bounds, out = tile_geometry(native, shape, (300, 200))
    assert bounds == (350, 650, 300, 500) and out == (300, 200)


def test_tile_is_native_when_zoomed_in_and_reduced_when_not():
    rng = np.random.default_rng(0)
    a = rng.normal(1000, 50, (600, 400)).astype(np.float32)
    b = a + 7.0
    zoomed = render_tile(a, b, Viewport(100.5, 50.5, 130.5, 70.5), (300, 200), (0.1, 0.1))
    assert zoomed.native and zoomed.bounds == (100, 131, 50, 71)
    assert np.array_equal(zoomed.original, a[100:131, 50:71])
    assert np.allclose(zoomed.diff_mean, 7.0) and np.allclose(zoomed.diff_rms, 7.0)
    assert zoomed.max_frequency_mm == pytest.approx(5.0)
    full = render_tile(a, b, Viewport.full(a.shape), (150, 100), (0.1, 0.1))
    assert full.shape == (150, 100) and full.footprint_px == (4.0, 4.0)
    assert full.pixel_mm == pytest.approx((0.4, 0.4)) and full.max_frequency_mm == pytest.approx(1.25)
    assert np.allclose(full.perturbed - full.original, 7.0, atol=1e-3)


@pytest.mark.parametrize("view", [None, (200.0, 100.0, 420.0, 260.0), (10.0, 10.0, 40.0, 30.0)])
def test_rms_of_a_noise_difference_is_its_std_over_any_footprint(view):
    """Gaussian noise of std 1600: the RMS per screen pixel stays ~1600 however many image pixels a screen
    pixel covers, while the mean per screen pixel falls as 1600 / sqrt(n)."""
    from core.perturb import gaussian_noise

    rng = np.random.default_rng(1)
    a = rng.uniform(0, 4095, (1200, 900)).astype(np.float32)
    b = gaussian_noise(a, 1600.0, seed=3)
    v = Viewport.full(a.shape) if view is None else Viewport(*view)
    tile = render_tile(a, b, v, (120, 90), (0.1, 0.1))
    r0, r1, c0, c1 = tile.bounds
    n_pixels = (r1 - r0) * (c1 - c0)
    rel = 4 / math.sqrt(2 * n_pixels)  # four standard errors of a sample RMS over that many pixels
    assert float(np.sqrt(np.mean(tile.diff_rms**2))) == pytest.approx(1600.0, rel=rel)
    n = tile.footprint_px[0] * tile.footprint_px[1]
    if n >= 8:  # many pixels per screen pixel: each one shows ~1600, while their mean hides most of it
        assert float(np.median(tile.diff_rms)) == pytest.approx(1600.0, rel=0.15)
        assert float(np.std(tile.diff_mean)) < 0.5 * 1600.0
    assert np.all(tile.diff_rms >= np.abs(tile.diff_mean) - 1e-3)


def test_identity_gives_a_zero_difference():
    a = np.arange(20000, dtype=np.float32).reshape(200, 100)
    tile = render_tile(a, a.copy(), Viewport.full(a.shape), (50, 25), (0.1, 0.1))
    assert not tile.diff_rms.any() and not tile.diff_mean.any()


def test_pack_values_round_trips_within_half_a_step():
    rng = np.random.default_rng(2)
    x = rng.normal(0, 300, (37, 23)).astype(np.float32)
    packed = pack_values(x, 0.5)
    assert packed.step >= 0.5 and packed.shape == (37, 23)
    assert np.max(np.abs(packed.decode() - x)) <= packed.step / 2 + 1e-4
    fine = pack_values(x)
    assert fine.step == pytest.approx((x.max() - x.min()) / 65535)
    flat = pack_values(np.full((3, 4), 12.5))
    assert np.array_equal(flat.decode(), np.full((3, 4), 12.5, np.float32))
    with pytest.raises(ExplorerError):
        pack_values(np.zeros(5))


@pytest.mark.slow
def test_real_sample_difference_at_r2_is_visible_at_the_default_view(nyu_samples):
    """The issue's case: dmv_1_R_CC.png at R = 2 cycles/mm. A display-size preview (what the panels showed
    before) has nothing left to show of the removed band; the RMS of the full-resolution difference per
    screen pixel does, across the breast."""
    from core.imaging import load_mammogram
    from core.perturb import FourierFilter

    m = load_mammogram(nyu_samples / "dmv_1_R_CC.png")
    fourier = FourierFilter(m.pixels, m.spacing_mm)
    low = fourier.lowpass(2.0)
    tile = render_tile(m.pixels, low, Viewport.full(m.pixels.shape), (768, 591), m.spacing_mm)
    assert tile.max_frequency_mm < 2.0  # the view itself cannot show 2 cycles/mm
    preview_change = fourier.preview(2.0, 768) - fourier.preview(math.inf, 768)
    breast = tile.original > 100
    assert float(np.abs(preview_change).max()) < 1.0  # the old difference panel: "±0"
    assert float(np.median(tile.diff_rms[breast])) > 30.0  # model units, in every part of the breast
    assert float(np.mean(tile.diff_rms[breast] > 10.0)) > 0.95
