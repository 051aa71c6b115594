"""Additive Gaussian noise: the study's fixed-level noise and its norm-matched baseline."""

from __future__ import annotations

import math

import numpy as np

from core import validate
from core.errors import PerturbationError


def _unit_noise(shape: tuple[int, ...], seed: int) -> np.ndarray:
    """Standard normal float32 noise; the one stream both functions draw, so they share its direction."""
    return np.random.default_rng(seed).standard_normal(shape, dtype=np.float32)


def gaussian_noise(pixels: np.ndarray, std: float = 1600.0, seed: int = 0) -> np.ndarray:
    """Add zero-mean Gaussian noise of standard deviation ``std`` (model units) to every pixel.

    The study added noise with ``std = 1600`` to images spanning 0..4095, before normalisation; as there,
    the result is not clipped, so values may leave 0..4095 (clipping would change the noise's statistics
    and its L2 norm).

    Parameters
    ----------
    pixels : array_like
        2-D image in model units; not modified.
    std : float
        Standard deviation in model units, >= 0; 0 is the identity.
    seed : int
        Seed of ``numpy.random.default_rng``; the same seed gives the same bytes.

    Returns
    -------
    numpy.ndarray
        New float32 array, same shape.

    Raises
    ------
    PerturbationError
        Bad image, a negative or non-finite ``std``, or a bad seed.
    """
    image = validate.image_2d(pixels, "gaussian_noise", PerturbationError)
    std = validate.nonnegative(std, "std", "gaussian_noise", PerturbationError)
    seed = validate.seed(seed, "gaussian_noise", PerturbationError)
    if std == 0:
        return image.copy()
    noise = _unit_noise(image.shape, seed)
    noise *= np.float32(std)
    noise += image
    return noise


def matched_noise(pixels: np.ndarray, norm: float, seed: int = 0) -> np.ndarray:
    """Add Gaussian noise whose L2 norm (over the whole image, model units) is exactly ``norm``.

    The building block of the study's matched baseline: the caller chooses ``norm`` (for the study, the
    average L2 norm of a perturbation over the cohort; that rule belongs to the runs). The noise is the
    same standard-normal draw as :func:`gaussian_noise` with this seed, rescaled in float64 so that its
    norm equals ``norm``; its per-pixel standard deviation is about ``norm / sqrt(pixels.size)``. The
    float32 result rounds each pixel by at most half an ulp of its value (3.1e-5 below 1024, 1.2e-4 below
    4096), so ``||result - pixels||`` is within ``sqrt(pixels.size)`` times that of ``norm``: relative
    1e-6 or better for the norms of the study's perturbations, coarser for norms of a few model units.

    Parameters
    ----------
    pixels : array_like
        2-D image in model units; not modified.
    norm : float
        L2 norm of the added noise, model units, >= 0; 0 is the identity.
    seed : int
        Seed of ``numpy.random.default_rng``.

    Returns
    -------
    numpy.ndarray
        New float32 array, same shape.

    Raises
    ------
    PerturbationError
        Bad image, a negative or non-finite ``norm``, or a bad seed.
    """
    image = validate.image_2d(pixels, "matched_noise", PerturbationError)
    norm = validate.nonnegative(norm, "norm", "matched_noise", PerturbationError)
    seed = validate.seed(seed, "matched_noise", PerturbationError)
    if norm == 0:
        return image.copy()
    noise = _unit_noise(image.shape, seed).astype(np.float64)
    drawn = math.sqrt(float(np.dot(noise.ravel(), noise.ravel())))
    if drawn == 0:  # a 1-pixel image can draw exactly 0; any direction has the requested norm
        noise[...] = 1.0
        drawn = math.sqrt(noise.size)
    noise *= norm / drawn
    noise += image
    return noise.astype(np.float32)
