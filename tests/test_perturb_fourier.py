"""Low-/high-pass filters and FourierFilter: checked against independent complex128 numpy references."""

from __future__ import annotations

import math

import numpy as np
import pytest
import scipy.fft
from hypothesis import given, settings
from hypothesis import strategies as st

from core.perturb import (
    FourierFilter,
    PerturbationError,
    frequency_grid,
    highpass,
    lowpass,
    preview_shape,
)

FEW = settings(max_examples=30, deadline=None)

sides = st.integers(min_value=2, max_value=24)
spacings = st.tuples(
    st.floats(min_value=0.05, max_value=0.5, allow_nan=False), st.floats(min_value=0.05, max_value=0.5)
)
kinds = st.sampled_from(["ideal", "gaussian"])
seeds = st.integers(min_value=0, max_value=2**31)


def random_image(rows: int, cols: int, seed: int) -> np.ndarray:
    return (np.random.default_rng(seed).random((rows, cols)) * 4095).astype(np.float32)


def reference_transfer(shape, spacing, radius, mode, kind):
    """Gain on the full (fft2) grid, computed independently of core.perturb."""
    fr = np.fft.fftfreq(shape[0], d=spacing[0])[:, None]
    fc = np.fft.fftfreq(shape[1], d=spacing[1])[None, :]
    freq = np.sqrt(fr**2 + fc**2)
    if kind == "ideal":
        gain = (freq <= radius).astype(float)
    else:
        with np.errstate(over="ignore", divide="ignore"):
            gain = np.exp(-0.5 * (freq / radius) ** 2) if radius > 0 else (freq == 0).astype(float)
    return gain if mode == "lowpass" else 1 - gain


def reference_filter(x, spacing, radius, mode, kind):
    """The naive filter: complex128 fft2, mask, ifft2."""
    spectrum = np.fft.fft2(x.astype(np.float64))
    return np.fft.ifft2(spectrum * reference_transfer(x.shape, spacing, radius, mode, kind)).real


def reference_resample(y, shape):
    """Band-limited resampling of y to `shape`: keep bins with |k| <= (n - 1) // 2, inverse DFT, rescale."""
    (rows, cols), (h, w) = y.shape, shape
    spectrum = np.fft.fft2(y.astype(np.float64))
    kr, kc = (h - 1) // 2, (w - 1) // 2
    big_r = list(range(kr + 1)) + list(range(rows - kr, rows)) if kr else [0]
    small_r = list(range(kr + 1)) + list(range(h - kr, h)) if kr else [0]
    big_c = list(range(kc + 1)) + list(range(cols - kc, cols)) if kc else [0]
    small_c = list(range(kc + 1)) + list(range(w - kc, w)) if kc else [0]
    small = np.zeros(shape, np.complex128)
    small[np.ix_(small_r, small_c)] = spectrum[np.ix_(big_r, big_c)]
    return np.fft.ifft2(small).real * (h * w) / (rows * cols)


def corner(spacing) -> float:
    return math.hypot(0.5 / spacing[0], 0.5 / spacing[1])


@FEW
@given(sides, sides, spacings, st.floats(0, 1.2), kinds, st.sampled_from(["lowpass", "highpass"]), seeds)
def test_filters_match_naive_complex128_reference(rows, cols, spacing, fraction, kind, mode, seed):
    x = random_image(rows, cols, seed)
    radius = fraction * corner(spacing)
    function = lowpass if mode == "lowpass" else highpass
    out = function(x, spacing, radius, kind=kind)
    assert out.dtype == np.float32 and out.shape == x.shape
    np.testing.assert_allclose(out, reference_filter(x, spacing, radius, mode, kind), atol=0.02)


@FEW
@given(sides, sides, spacings, st.floats(1.0, 100.0), seeds)
def test_radius_at_or_above_corner_frequency_is_identity(rows, cols, spacing, factor, seed):
    x = random_image(rows, cols, seed)
    fourier = FourierFilter(x, spacing)
    radius = factor * fourier.nyquist_mm
    assert fourier.max_frequency_mm <= fourier.nyquist_mm
    assert lowpass(x, spacing, radius).tobytes() == x.tobytes()
    assert not highpass(x, spacing, radius).any()
    # Just below the highest frequency on the grid something is removed (random images use every bin).
    below = np.nextafter(fourier.max_frequency_mm, 0)
    assert np.abs(fourier.lowpass(below) - x).max() > 1e-3


@FEW
@given(sides, sides, spacings, st.sampled_from(["lowpass", "highpass"]), seeds)
def test_ideal_masks_are_exact_at_radii_equal_to_grid_frequencies(rows, cols, spacing, mode, seed):
    """Radii that hit bins exactly: the result equals a plain full-grid mask product (|f| <= R kept)."""
    x = random_image(rows, cols, seed)
    fourier = FourierFilter(x, spacing)
    grid = frequency_grid(x.shape, spacing)
    spectrum = scipy.fft.rfft2(x)
    for radius in np.unique(grid)[:-1]:
        keep = grid <= radius if mode == "lowpass" else grid > radius
        expected = scipy.fft.irfft2(spectrum * keep, s=x.shape)
        np.testing.assert_allclose(getattr(fourier, mode)(radius), expected, atol=0.01)


@FEW
@given(sides, sides, spacings, seeds)
def test_inverse_fft_path_is_the_identity_when_every_bin_is_kept(rows, cols, spacing, seed):
    x = random_image(rows, cols, seed)
    wide = lowpass(x, spacing, 1e9 * corner(spacing), kind="gaussian")  # gain 1 everywhere, FFTs still run
    np.testing.assert_allclose(wide, x, atol=0.01)


@FEW
@given(sides, sides, spacings, st.floats(0, 1.2), kinds, seeds)
def test_lowpass_plus_highpass_is_the_input(rows, cols, spacing, fraction, kind, seed):
    x = random_image(rows, cols, seed)
    radius = fraction * corner(spacing)
    fourier = FourierFilter(x, spacing)
    np.testing.assert_allclose(fourier.lowpass(radius, kind) + fourier.highpass(radius, kind), x, atol=0.01)


@FEW
@given(sides, sides, spacings, st.lists(st.floats(0, 1.2), min_size=2, max_size=6), kinds, seeds)
def test_retained_energy_grows_with_radius(rows, cols, spacing, fractions, kind, seed):
    x = random_image(rows, cols, seed)
    fourier = FourierFilter(x, spacing)
    radii = sorted(f * corner(spacing) for f in fractions)
    energies = [float(np.sum(fourier.lowpass(r, kind).astype(np.float64) ** 2)) for r in radii]
    for smaller, larger in zip(energies, energies[1:], strict=False):
        assert smaller <= larger * (1 + 1e-6) + 1e-3
    assert energies[-1] <= float(np.sum(x.astype(np.float64) ** 2)) * (1 + 1e-6)


@FEW
@given(sides, sides, spacings, st.floats(0, 1.2), kinds, st.sampled_from(["lowpass", "highpass"]), seeds)
def test_transposing_image_and_spacing_transposes_the_result(rows, cols, spacing, fraction, kind, mode, seed):
    x = random_image(rows, cols, seed)
    radius = fraction * corner(spacing)
    function = lowpass if mode == "lowpass" else highpass
    straight = function(x, spacing, radius, kind)
    transposed = function(x.T, spacing[::-1], radius, kind)
    np.testing.assert_allclose(transposed, straight.T, atol=0.01)


@FEW
@given(
    st.integers(2, 6),
    st.integers(1, 4),
    st.integers(1, 4),
    st.floats(5.0, 50.0),
    st.floats(0.0, 1.0),
)
def test_impulse_response_is_isotropic_in_mm_under_anisotropic_spacing(g, p, q, extent_mm, fraction):
    """An image of rows = 2pg by cols = 2qg pixels spanning extent_mm along both axes (spacings
    extent/rows and extent/cols differ when p != q): the ideal low-pass response to an impulse at (0, 0)
    must be the same at equal distances in mm along the rows and along the columns. (Exact for the ideal
    disc, which fits inside both axes' bands; a Gaussian gain is cut differently by the two bands, so it is
    checked on a blob below.)"""
    rows, cols = p * g * 2, q * g * 2
    spacing = (extent_mm / rows, extent_mm / cols)
    radius = fraction * min(0.5 / spacing[0], 0.5 / spacing[1]) * 0.95  # inside both axes' bands
    impulse = np.zeros((rows, cols), np.float32)
    impulse[0, 0] = 1000.0
    response = lowpass(impulse, spacing, radius)
    steps = np.arange(g + 1)  # distances j * extent / (2 g) mm, up to half the field
    along_rows = response[steps * p, 0]
    along_cols = response[0, steps * q]
    np.testing.assert_allclose(along_rows, along_cols, atol=1e-3)


def test_gaussian_blob_stays_round_in_mm():
    """A blob round on the breast, sampled at 0.1 x 0.25 mm, keeps equal widths in mm after filtering."""
    spacing = (0.1, 0.25)
    rows, cols = 400, 160  # 40 x 40 mm
    r_mm = (np.arange(rows) - rows / 2)[:, None] * spacing[0]
    c_mm = (np.arange(cols) - cols / 2)[None, :] * spacing[1]
    blob = (2000 * np.exp(-(r_mm**2 + c_mm**2) / (2 * 1.5**2))).astype(np.float32)
    for kind, radius in (("ideal", 0.15), ("gaussian", 0.1)):
        out = lowpass(blob, spacing, radius, kind).astype(np.float64)
        weights = np.clip(out, 0, None)
        var_rows = float(np.sum(weights * r_mm**2) / weights.sum())
        var_cols = float(np.sum(weights * c_mm**2) / weights.sum())
        assert var_rows > 1.5**2 * 1.2  # it was blurred...
        assert var_rows == pytest.approx(var_cols, rel=0.01)  # ...equally in mm along both axes


@FEW
@given(
    st.integers(3, 40),
    st.integers(3, 40),
    spacings,
    st.floats(0, 1.2),
    kinds,
    st.sampled_from(["lowpass", "highpass"]),
    st.integers(1, 39),
    seeds,
)
def test_preview_is_the_band_limited_resampling_of_the_full_filter(
    rows, cols, spacing, fraction, kind, mode, max_side, seed
):
    x = random_image(rows, cols, seed)
    fourier = FourierFilter(x, spacing)
    radius = fraction * corner(spacing)
    shape = fourier.preview_shape(max_side)
    if max_side >= max(rows, cols):
        assert shape == x.shape
    else:
        assert max(shape) <= max_side
        for side, full in zip(shape, x.shape, strict=True):  # each side within 1 % (or rounding) of scale
            target = full * max_side / max(rows, cols)
            assert side == 1 or abs(side - target) <= max(0.5, 0.01 * target + 1e-9)
    full = fourier.lowpass(radius, kind) if mode == "lowpass" else fourier.highpass(radius, kind)
    preview = fourier.preview(radius, max_side, mode=mode, kind=kind)
    assert preview.dtype == np.float32 and preview.shape == shape
    expected = full if shape == x.shape else reference_resample(full, shape)
    np.testing.assert_allclose(preview, expected, atol=0.02)


def test_preview_keeps_the_mean_and_picks_fft_friendly_sides():
    x = random_image(300, 200, 1)
    fourier = FourierFilter(x, (0.1, 0.1))
    preview = fourier.preview(math.inf, 64)
    assert preview.shape == (64, 43)  # 42.67: no 11-smooth length within 1 %, so plain rounding
    # 787.7: 784 = 2**4 * 7**2 (0.5 % off) rather than 788 = 4 * 197, five times slower to transform.
    assert preview_shape((3328, 2560), 1024) == (1024, 784)
    assert float(preview.mean()) == pytest.approx(float(x.mean()), rel=1e-5)
    assert not fourier.preview(math.inf, 64, mode="highpass").any()


def test_preview_band_is_where_a_highpass_preview_goes_blank():
    x = random_image(333, 256, 8)
    fourier = FourierFilter(x, (0.1, 0.1))
    band = fourier.preview_band_mm(103)  # preview 103 x 79: (102 // 2) / 33.3 mm, (78 // 2) / 25.6 mm
    assert band == pytest.approx(min(51 / 33.3, 39 / 25.6))
    corner_of_preview = math.hypot(51 / 33.3, 39 / 25.6)
    assert not fourier.preview(corner_of_preview * 1.001, 103, mode="highpass").any()
    assert fourier.highpass(corner_of_preview * 1.001).std() > 100  # while the full image is far from blank
    assert np.abs(fourier.preview(band * 0.9, 103, mode="highpass")).max() > 1.0
    assert fourier.preview_band_mm(1000) == math.inf


def test_sweep_costs_one_forward_and_one_inverse_real_fft_per_radius(monkeypatch):
    """The ideal filters' inverse real 2-D FFT runs as its two separable passes (ifft over the columns that
    can hold the disc, then irfft along the rows); previews and Gaussian filters use irfft2."""
    calls: dict[str, int] = {}

    def counting(module, name):
        original = getattr(module, name)

        def wrapper(*args, **kwargs):
            key = f"{module.__name__}.{name}"
            calls[key] = calls.get(key, 0) + 1
            return original(*args, **kwargs)

        return wrapper

    for name in (
        "fft2",
        "ifft2",
        "fftn",
        "ifftn",
        "rfft2",
        "irfft2",
        "rfftn",
        "irfftn",
        "fft",
        "ifft",
        "rfft",
        "irfft",
    ):
        monkeypatch.setattr(scipy.fft, name, counting(scipy.fft, name))
    for name in ("fft2", "ifft2", "fftn", "ifftn", "rfft2", "irfft2", "rfftn", "irfftn"):
        monkeypatch.setattr(np.fft, name, counting(np.fft, name))
    x = random_image(48, 40, 3)
    fourier = FourierFilter(x, (0.1, 0.1))
    radii = [4.0, 2.0, 1.0, 0.5, 0.25, 0.1]
    results = list(fourier.sweep(radii))
    assert [r for r, _ in results] == radii
    assert calls == {"scipy.fft.rfft2": 1, "scipy.fft.ifft": 6, "scipy.fft.irfft": 6}
    list(fourier.sweep(radii[:2], mode="highpass"))
    fourier.preview(2.0, 16)
    fourier.preview(1.0, 16, mode="highpass")
    fourier.lowpass(1.0, kind="gaussian")
    assert calls == {"scipy.fft.rfft2": 1, "scipy.fft.ifft": 8, "scipy.fft.irfft": 8, "scipy.fft.irfft2": 3}


def test_sweep_yields_what_lowpass_and_highpass_give():
    x = random_image(20, 30, 4)
    fourier = FourierFilter(x, (0.07, 0.1))
    for mode in ("lowpass", "highpass"):
        for radius, image in fourier.sweep([3.0, 1.0], mode=mode, kind="gaussian"):
            assert image.tobytes() == getattr(fourier, mode)(radius, "gaussian").tobytes()


def test_filters_leave_the_input_untouched_and_accept_read_only_integer_images():
    x = (np.random.default_rng(5).random((16, 12)) * 4095).astype(np.uint16)
    x.flags.writeable = False
    before = x.copy()
    fourier = FourierFilter(x, (0.1, 0.1))
    out = fourier.lowpass(2.0)
    out[...] = 0  # the result is the caller's to modify
    assert np.array_equal(x, before)
    assert fourier.lowpass(100.0).tobytes() == x.astype(np.float32).tobytes()
    identity = fourier.lowpass(math.inf)
    identity[...] = 7
    assert fourier.lowpass(math.inf).tobytes() == x.astype(np.float32).tobytes()
    y = x.astype(np.float32)
    held = FourierFilter(y, (0.1, 0.1))
    y[...] = 0  # the caller's later changes do not reach the filter
    assert held.lowpass(math.inf).tobytes() == before.astype(np.float32).tobytes()


def test_filter_properties():
    x = random_image(10, 14, 6)
    fourier = FourierFilter(x, [0.1, 0.2])
    assert fourier.shape == (10, 14)
    assert fourier.spacing_mm == (0.1, 0.2)
    assert fourier.nyquist_mm == pytest.approx(math.hypot(5.0, 2.5))
    assert highpass(x, (0.1, 0.2), 0.0).mean() == pytest.approx(0.0, abs=1e-2)  # radius 0: the mean only
    np.testing.assert_allclose(lowpass(x, (0.1, 0.2), 0.0), np.full(x.shape, x.mean()), rtol=1e-5)


BAD_CALLS = [
    (lambda: lowpass(np.zeros((4, 4)), (0.1, 0.1), -1.0), "radius must be >= 0"),
    (lambda: lowpass(np.zeros((4, 4)), (0.1, 0.1), float("nan")), "radius must be >= 0"),
    (lambda: highpass(np.zeros((4, 4)), (0.1, 0.1), "2"), "radius must be a number"),
    (lambda: lowpass(np.zeros((4, 4)), (0.1, 0.1), 1.0, kind="butterworth"), "kind must be one of"),
    (lambda: lowpass(np.zeros((4, 4, 3)), (0.1, 0.1), 1.0), "2-D"),
    (lambda: lowpass(np.zeros(4), (0.1, 0.1), 1.0), "2-D"),
    (lambda: lowpass(np.zeros((0, 4)), (0.1, 0.1), 1.0), "empty"),
    (lambda: lowpass(np.full((4, 4), np.nan), (0.1, 0.1), 1.0), "NaN"),
    (lambda: lowpass(np.zeros((4, 4), complex), (0.1, 0.1), 1.0), "real numbers"),
    (lambda: lowpass(np.zeros((4, 4)), (0.1,), 1.0), "pair"),
    (lambda: lowpass(np.zeros((4, 4)), 0.1, 1.0), "pair"),
    (lambda: lowpass(np.zeros((4, 4)), (0.1, 0.0), 1.0), "> 0 mm"),
    (lambda: lowpass(np.zeros((4, 4)), (-0.1, 0.1), 1.0), "> 0 mm"),
    (lambda: lowpass(np.zeros((4, 4)), (0.1, float("inf")), 1.0), "> 0 mm"),
    (lambda: FourierFilter(np.zeros((4, 4)), (0.1, 0.1)).preview(1.0, 0), "max_side"),
    (lambda: FourierFilter(np.zeros((4, 4)), (0.1, 0.1)).preview(1.0, 2, mode="bandpass"), "mode"),
    (lambda: FourierFilter(np.zeros((4, 4)), (0.1, 0.1)).sweep([1.0, -2.0]), "radius"),
    (lambda: FourierFilter(np.zeros((4, 4)), (0.1, 0.1), workers=0), "workers must be"),
    (lambda: preview_shape((4, 4), 2.5), "max_side must be a positive integer"),
]


@pytest.mark.parametrize(("call", "message"), BAD_CALLS)
def test_bad_input_raises_a_perturbation_error_naming_the_problem(call, message):
    with pytest.raises(PerturbationError, match=message):
        call()


@pytest.mark.slow
def test_real_mammogram_preview_matches_the_full_filter(nyu_samples):
    import imageio.v3 as iio

    x = iio.imread(nyu_samples / "dmv_1_R_CC.png").astype(np.float32) / 16.0
    fourier = FourierFilter(x, (0.1, 0.1))
    assert fourier.preview_shape(256) == (256, 196)  # 196.9 -> 196 = 4 * 49 rather than the prime 197
    full = fourier.lowpass(2.0)
    np.testing.assert_allclose(fourier.preview(2.0, 256), reference_resample(full, (256, 196)), atol=0.05)
    np.testing.assert_allclose(full + fourier.highpass(2.0), x, atol=0.05)
    # The study's low-pass keeps most of the energy of a real mammogram but visibly changes it.
    assert 0.5 < float(np.abs(full - x).mean()) < 200
