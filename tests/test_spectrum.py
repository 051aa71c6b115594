"""core.spectrum: display axes, taper, radial PSD units, power-law beta on synthetic and real images."""

from __future__ import annotations

import numpy as np
import pytest

from core.errors import ExplorerError
from core.spectrum import (
    SpectrumError,
    breast_mask,
    fit_power_law,
    log_spectrum,
    power_law_beta,
    radial_profile,
)
from tests.synthetic import powerlaw_noise

# ------------------------------------------------------------------------------------------------ beta


@pytest.mark.parametrize(
    ("shape", "spacing"),
    [
        ((640, 640), (0.1, 0.1)),
        ((400, 700), (0.1, 0.1)),
        ((800, 400), (0.05, 0.1)),
        ((500, 700), (0.1, 0.07)),
    ],
    ids=["square", "non-square", "anisotropic", "anisotropic-wide"],
)
@pytest.mark.parametrize("beta", [2.0, 3.0])
def test_beta_of_synthetic_power_law_noise(shape, spacing, beta):
    img = 2000.0 + 200.0 * powerlaw_noise(shape, spacing, beta, seed=3)
    fit = fit_power_law(img, spacing)
    assert fit.beta == pytest.approx(beta, abs=0.2)
    assert fit.r2 > 0.95
    assert fit.fmin == 0.1 and fit.fmax == 1.0
    assert np.all((fit.freq >= 0.1) & (fit.freq <= 1.0))


def test_beta_of_white_noise_is_zero():
    img = 2000.0 + 50.0 * np.random.default_rng(0).standard_normal((512, 512))
    assert power_law_beta(img, (0.1, 0.1), 0.2, 4.0) == pytest.approx(0.0, abs=0.15)


def test_beta_is_measured_on_the_breast_not_its_edge():
    """Texture inside a half-disc breast on a zero background: the skin edge must not bias beta."""
    shape, spacing = (900, 700), (0.1, 0.1)
    yy, xx = np.mgrid[0 : shape[0], 0 : shape[1]]
    breast = (yy - shape[0] / 2) ** 2 + xx**2 < 600**2  # chest wall at column 0, as in a left view
    texture = 1500.0 + 150.0 * powerlaw_noise(shape, spacing, 3.0, seed=5)
    img = np.where(breast, texture, 0.0)
    fit = fit_power_law(img, spacing)
    assert fit.beta == pytest.approx(3.0, abs=0.2)
    mask = breast_mask(img, spacing, margin_mm=5.0)
    assert mask.sum() < breast.sum() and not np.any(mask & ~breast)
    # Forced onto the whole frame, the tiles crossing the 1500-unit step of the skin line carry far more
    # power than the texture (a straight step's ring-averaged power also falls as f^-3, so beta alone
    # would not show it).
    whole = fit_power_law(img, spacing, mask=np.ones(shape, bool))
    assert whole.intercept > fit.intercept + 0.5  # over 3x the power


def test_breast_mask_drops_labels_and_keeps_the_chest_wall_border():
    img = np.zeros((300, 200), np.float32)
    img[:, :120] = 1000.0  # breast reaching the chest-wall border at column 0
    img[10:20, 170:190] = 4000.0  # burned-in label in the background
    mask = breast_mask(img, (0.1, 0.2), margin_mm=2.0)
    assert not mask[:, 150:].any()
    assert mask[:, 0].all()  # the border does not erode
    assert mask[:, : 120 - 10].all() and not mask[:, 120 - 10 :].any()  # 2 mm = 10 columns of 0.2 mm


# --------------------------------------------------------------------------------------- radial profile


def test_radial_profile_is_a_psd_in_physical_units():
    """White noise of variance s^2 has the flat PSD s^2 * dy * dx (model units^2 * mm^2) at any spacing."""
    rng = np.random.default_rng(1)
    for spacing in [(0.1, 0.1), (0.05, 0.1)]:
        img = 2000.0 + 30.0 * rng.standard_normal((600, 500))
        freq, power = radial_profile(img, spacing, n_bins=24)
        assert np.all(np.diff(freq) > 0)
        assert freq[0] >= 1 / 25.6 - 1e-9 and freq[-1] <= 0.5 / max(spacing)
        assert np.median(power) == pytest.approx(900.0 * spacing[0] * spacing[1], rel=0.1)


def test_radial_profile_follows_the_power_law():
    spacing = (0.1, 0.1)
    img = 2000.0 + 100.0 * powerlaw_noise((640, 640), spacing, 2.5, seed=2)
    freq, power = radial_profile(img, spacing, n_bins=32, fmin=0.1, fmax=2.0)
    slope = np.polyfit(np.log10(freq), np.log10(power), 1)[0]
    assert slope == pytest.approx(-2.5, abs=0.2)


# ------------------------------------------------------------------------------------- display spectrum


@pytest.mark.parametrize(
    ("shape", "spacing", "f_rc"),
    [
        ((400, 400), (0.1, 0.1), (1.3, 0.0)),
        ((300, 520), (0.1, 0.1), (0.0, 2.2)),
        ((600, 300), (0.05, 0.1), (3.1, -1.4)),
        ((1200, 1000), (0.07, 0.1), (-0.9, 2.6)),
    ],
)
def test_cosine_peaks_at_its_frequency(shape, spacing, f_rc):
    yy = np.arange(shape[0])[:, None] * spacing[0]
    xx = np.arange(shape[1])[None, :] * spacing[1]
    img = 2000.0 + 500.0 * np.cos(2 * np.pi * (f_rc[0] * yy + f_rc[1] * xx) + 0.3)
    spec = log_spectrum(img, spacing, max_side=256)
    assert spec.image.dtype == np.float32 and max(spec.image.shape) <= 256
    assert spec.image.shape == (spec.freq_rows.size, spec.freq_cols.size)
    i, j = np.unravel_index(np.argmax(spec.image), spec.image.shape)
    peak = np.array([spec.freq_rows[i], spec.freq_cols[j]])
    # A real cosine peaks at +f and -f; the block covers `block` DFT steps of 1/extent cycles/mm.
    step = np.array([spec.block / spec.extent_mm[0], spec.block / spec.extent_mm[1]])
    err = min(np.abs(peak - np.array(f_rc)).max(), np.abs(peak + np.array(f_rc)).max())
    assert err <= step.max() * 0.75
    assert spec.extent_mm == pytest.approx((shape[0] * spacing[0], shape[1] * spacing[1]))
    assert spec.nyquist_mm == pytest.approx((0.5 / spacing[0], 0.5 / spacing[1]))


def test_display_axes_are_centred_and_within_nyquist():
    spacing = (0.07, 0.1)
    spec = log_spectrum(np.random.default_rng(0).random((900, 700)), spacing, max_side=128)
    assert spec.block == 8 and spec.image.shape == (112, 87)
    for axis, nyq in ((spec.freq_rows, 0.5 / 0.07), (spec.freq_cols, 0.5 / 0.1)):
        assert np.all(np.diff(axis) > 0)
        assert -nyq <= axis[0] < 0 < axis[-1] <= nyq
        assert abs(axis[0] + axis[-1]) < 2 * (axis[1] - axis[0])  # symmetric about 0 within a block
    left, right, bottom, top = spec.extent
    assert left < spec.freq_cols[0] and right > spec.freq_cols[-1] and top < bottom


def test_taper_removes_the_wraparound_streak_of_the_chest_wall():
    """A breast touching column 0 on a zero background: without the taper the periodic DFT sees a vertical
    step at the border and draws a bright line along f_row = 0."""
    shape, spacing = (512, 512), (0.1, 0.1)
    yy, xx = np.mgrid[0 : shape[0], 0 : shape[1]]
    img = np.where((yy - 256) ** 2 + xx**2 < 230**2, 1500.0, 0.0) + 20 * powerlaw_noise(shape, spacing, 3.0)

    def streak(spec):
        zero = int(np.argmin(np.abs(spec.freq_rows)))
        high = np.abs(spec.freq_cols) > 1.0
        off = np.r_[spec.image[zero - 8, high], spec.image[zero + 8, high]]
        return float(np.median(spec.image[zero, high]) - np.median(off))

    raw = log_spectrum(img, spacing, max_side=512, taper=0.0)
    tapered = log_spectrum(img, spacing, max_side=512, taper=0.1)
    assert streak(raw) > 1.0  # over 10x the magnitude of the rows beside it
    assert streak(tapered) < 0.5 * streak(raw)


def test_input_is_untouched_and_spectrum_is_deterministic():
    img = np.random.default_rng(4).random((128, 96)).astype(np.float32)
    before = img.copy()
    a = log_spectrum(img, (0.1, 0.1), max_side=64)
    b = log_spectrum(img, (0.1, 0.1), max_side=64)
    np.testing.assert_array_equal(img, before)
    np.testing.assert_array_equal(a.image, b.image)


# --------------------------------------------------------------------------------------------- errors


@pytest.mark.parametrize(
    ("call", "match"),
    [
        (lambda: log_spectrum(np.zeros((4, 4, 3)), (0.1, 0.1)), "2-D"),
        (lambda: log_spectrum(np.full((16, 16), np.nan), (0.1, 0.1)), "NaN"),
        (lambda: log_spectrum(np.zeros((16, 16)), (0.1, 0)), "positive"),
        (lambda: log_spectrum(np.zeros((16, 16)), "0.1"), "spacing"),
        (lambda: log_spectrum(np.zeros((16, 16)), (0.1, 0.1), max_side=2), "max_side"),
        (lambda: log_spectrum(np.zeros((16, 16)), (0.1, 0.1), taper=2), "taper"),
        (lambda: radial_profile(np.zeros((64, 64)), (0.1, 0.1)), "empty"),
        (lambda: radial_profile(np.ones((64, 64)), (0.1, 0.1), n_bins=1), "n_bins"),
        (lambda: power_law_beta(np.ones((256, 256)), (0.1, 0.1), 1.0, 0.5), "fmin"),
        (lambda: power_law_beta(np.ones((256, 256)), (0.1, 0.1), 0.1, 9.0), "Nyquist"),
        (lambda: power_law_beta(np.ones((100, 100)), (0.1, 0.1), 0.1, 1.0), "too small"),
        (lambda: power_law_beta(np.ones((256, 256)), (0.1, 0.1), mask=np.ones((8, 8), bool)), "mask shape"),
    ],
)
def test_bad_input_raises_spectrum_error(call, match):
    with pytest.raises(SpectrumError, match=match) as info:
        call()
    assert isinstance(info.value, ExplorerError)
    assert str(info.value).split(":")[0] in {"log_spectrum", "radial_profile", "power_law_beta"}


# ------------------------------------------------------------------------------------------ real images

REAL = [
    "dmv_1_L_CC.png",
    "dmv_1_R_CC.png",
    "dmv_2_L_CC.png",
    "dmv_2_R_CC.png",
    "gmic_0_L-CC.png",
    "gmic_0_R-CC.png",
    "gmic_0_L-MLO.png",
    "gmic_0_R-MLO.png",
]


@pytest.mark.slow
def test_beta_of_the_real_nyu_samples(nyu_samples):
    """FFDM breast texture: beta near 3 (about 2.5..3.5 in the literature). Measured values printed (-s)."""
    from core.imaging import load_mammogram

    betas = {}
    for name in REAL:
        m = load_mammogram(nyu_samples / name, spacing_mm=(0.1, 0.1))
        fit = fit_power_law(m.pixels, m.spacing_mm)
        betas[name] = fit.beta
        assert fit.r2 > 0.98, name
        assert fit.n_tiles >= 10, name
    print({k: round(v, 2) for k, v in betas.items()})
    assert all(2.4 <= b <= 3.5 for b in betas.values()), betas


@pytest.mark.slow
def test_real_display_spectrum(nyu_samples):
    from core.imaging import load_mammogram

    m = load_mammogram(nyu_samples / "dmv_1_R_CC.png", spacing_mm=(0.1, 0.1))
    spec = log_spectrum(m.pixels, m.spacing_mm, max_side=512)
    assert max(spec.image.shape) <= 512 and np.all(np.isfinite(spec.image))
    r = np.hypot(*np.meshgrid(spec.freq_rows, spec.freq_cols, indexing="ij"))
    # Breast texture: most energy at low frequency, falling steeply towards Nyquist.
    assert np.median(spec.image[r < 0.5]) > np.median(spec.image[(r > 3) & (r < 5)]) + 1.0
