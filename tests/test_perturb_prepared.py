"""PreparedImage: one image perturbed many times gives the registry's bytes, the matched baseline's change
norms (Parseval for the ideal filters, checked against applying and subtracting), and display previews."""

from __future__ import annotations

import math

import numpy as np
import pytest

from core.perturb import (
    PERTURBATIONS,
    FourierFilter,
    PerturbationError,
    PreparedImage,
    highpass,
    lowpass,
    matched_noise,
    perturb,
)

SPACING = (0.1, 0.07)


@pytest.fixture(scope="module")
def image() -> np.ndarray:
    """A breast-like blob with texture on a zero background, odd sizes (FFT layouts with and without a
    Nyquist column), anisotropic 0.1 x 0.07 mm pixels."""
    rng = np.random.default_rng(3)
    rows, cols = np.mgrid[0:121, 0:90]
    blob = 3000 * np.exp(-((rows - 60) ** 2 + (cols - 10) ** 2) / (2 * 40.0**2))
    return np.clip(blob + rng.normal(0, 200, blob.shape), 0, 4095).astype(np.float32)


@pytest.mark.parametrize("name", sorted(PERTURBATIONS))
def test_apply_gives_the_registry_bytes_for_every_perturbation_and_severity(image, name):
    prepared = PreparedImage(image, SPACING)
    before = image.copy()
    for severity in (1, 3, 5):
        parameter = PERTURBATIONS[name].parameter_for(severity)
        for seed in (0, 7):
            expected = perturb(image, SPACING, name, parameter=parameter, seed=seed)
            got = prepared.apply(name, parameter, seed=seed)
            assert got.dtype == np.float32 and got.tobytes() == expected.tobytes()
    np.testing.assert_array_equal(image, before)  # the caller's array is never written into


@pytest.mark.parametrize("name, function", [("lowpass", lowpass), ("highpass", highpass)])
def test_gaussian_kind_and_one_fft_for_any_number_of_radii(image, name, function):
    prepared = PreparedImage(image, SPACING, workers=1)
    for radius in (0.5, 2.0, math.inf):
        expected = function(image, SPACING, radius, kind="gaussian")
        assert prepared.apply(name, radius, kind="gaussian").tobytes() == expected.tobytes()
    assert prepared.fourier is prepared.fourier  # the spectrum is taken once and kept


def test_matched_noise_and_the_unperturbed_image(image):
    prepared = PreparedImage(image, SPACING)
    assert prepared.pixels is image  # float32 input: kept as it is, no copy
    assert prepared.shape == image.shape and prepared.spacing_mm == SPACING
    noisy = prepared.matched_noise(1234.5, seed=4)
    assert noisy.tobytes() == matched_noise(image, 1234.5, seed=4).tobytes()
    assert np.linalg.norm(noisy.astype(np.float64) - image) == pytest.approx(1234.5, rel=1e-4)


@pytest.mark.parametrize(
    "name, parameter",
    [
        ("lowpass", 2.0),
        ("lowpass", 0.3),
        ("highpass", 1.0),
        ("highpass", 0.0),
        ("shuffle", 4.0),
        ("noise", 400.0),
    ],
)
def test_change_norm_is_the_norm_of_the_change(image, name, parameter):
    """Parseval for the ideal filters equals applying the filter and subtracting (float64), to the float32
    rounding of the filtered image; other perturbations are applied and subtracted."""
    prepared = PreparedImage(image, SPACING)
    direct = np.linalg.norm(prepared.apply(name, parameter, seed=3).astype(np.float64) - image)
    assert prepared.change_norm(name, parameter, seed=3) == pytest.approx(direct, rel=1e-5)
    assert prepared.change_norm("lowpass", math.inf) == 0.0
    gaussian = prepared.change_norm("lowpass", 1.0, kind="gaussian")
    assert gaussian == pytest.approx(np.linalg.norm(lowpass(image, SPACING, 1.0, kind="gaussian") - image))


def test_previews_are_those_of_the_fourier_filter(image):
    prepared = PreparedImage(image, SPACING)
    fourier = FourierFilter(image, SPACING)
    assert prepared.preview_shape(64) == fourier.preview_shape(64)
    assert prepared.nyquist_mm == fourier.nyquist_mm and prepared.preview_band_mm(
        64
    ) == fourier.preview_band_mm(64)
    for name in ("lowpass", "highpass"):
        for kind in ("ideal", "gaussian"):
            expected = fourier.preview(1.5, 64, mode=name, kind=kind)
            assert prepared.preview(name, 1.5, 64, kind=kind).tobytes() == expected.tobytes()
    np.testing.assert_array_equal(prepared.preview("lowpass", math.inf, 64), fourier.preview(math.inf, 64))


@pytest.mark.parametrize(
    "call, problem",
    [
        (lambda p: p.apply("blur", 1.0), "unknown perturbation 'blur'"),
        (lambda p: p.apply("noise", 100.0, kind="gaussian"), "applies to the Fourier filters only"),
        (lambda p: p.apply("lowpass", -1.0), "lowpass: radius must be >= 0"),
        (lambda p: p.apply("lowpass", 1.0, kind="butterworth"), "kind must be one of"),
        (lambda p: p.preview("shuffle", 8.0, 64), "not a Fourier filter"),
        (lambda p: p.change_norm("highpass", float("nan")), "radius must be >= 0"),
        (lambda p: p.matched_noise(-1.0), "norm must be"),
    ],
)
def test_bad_requests_raise_perturbation_errors(image, call, problem):
    with pytest.raises(PerturbationError, match=problem):
        call(PreparedImage(image, SPACING))


@pytest.mark.parametrize(
    "pixels, spacing, workers, problem",
    [
        (np.zeros((4, 4, 3)), SPACING, -1, "2-D"),
        (np.full((4, 4), np.nan), SPACING, -1, "NaN"),
        (np.zeros((4, 4)), (0.1, 0.0), -1, "spacing_mm"),
        (np.zeros((4, 4)), SPACING, 0, "workers must be"),
    ],
)
def test_bad_images_are_refused_when_prepared(pixels, spacing, workers, problem):
    with pytest.raises(PerturbationError, match=problem):
        PreparedImage(pixels, spacing, workers=workers)
