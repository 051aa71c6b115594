"""Visibility of specks, and their patches, across low-pass radii.

By default the CNR's denominator is each speck's annulus noise in the *unfiltered* image
(``noise="reference"``), so the curve measures the speck's contrast against the noise the reader saw before
filtering. The filtered image's own annulus noise (``noise="local"``) also falls as the filter removes high
frequencies, which hides most of the loss: a 0.3 mm speck on white noise at R = 1 cycle/mm keeps about a
quarter of its contrast, while its local CNR stays between 0.4 and 1.4 times its unfiltered value depending
on the noise level.

Speed: the low-pass filtering goes through ``core.perturb.FourierFilter`` (one forward real FFT for the
image, one inverse per radius, on the full image: about 0.3 to 0.4 s per radius on a 3328 x 2560 image on 2
busy cores), so the filtered pixels are exactly those of the app's low-pass perturbation; no crop is
filtered, so there is no crop-versus-full-image error to bound.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

from core.calcs.checks import image_arg, spacing_arg
from core.calcs.patches import cut, patch_shape
from core.calcs.results import CalcSweep, Candidate
from core.calcs.visibility import disc_contrast, noise_floor
from core.errors import CalcError


def _candidate_list(candidates: object, where: str) -> list[tuple[float, float, float]]:
    """Normalise candidates to (row, col, diameter_mm); accepts Candidate objects or (row, col, d) tuples."""
    out = []
    for i, cand in enumerate(candidates):  # type: ignore[union-attr]
        if isinstance(cand, Candidate):
            out.append((cand.row, cand.col, cand.diameter_mm))
            continue
        try:
            r, c, d = (float(v) for v in cand)
        except (TypeError, ValueError):
            raise CalcError(
                f"{where}: candidate {i} must be a Candidate or (row, col, diameter_mm), got {cand!r}"
            ) from None
        out.append((r, c, d))
    return out


def _sweep_args(
    pixels: object, spacing_mm: object, candidates: object, radii: Sequence[float], noise: str, where: str
) -> tuple[np.ndarray, tuple[float, float], list[tuple[float, float, float]], np.ndarray]:
    """The checked ``(image, spacing, candidates as (row, col, diameter_mm), radii as float64)``."""
    arr = image_arg(pixels, where)
    spacing = spacing_arg(spacing_mm, where)
    cands = _candidate_list(candidates, where)
    radii_arr = np.asarray(list(radii), dtype=np.float64).ravel()
    if radii_arr.size and not np.all(radii_arr > 0) or np.any(np.isnan(radii_arr)):
        raise CalcError(
            f"{where}: radii must be positive cycles/mm (inf for unfiltered), got {list(radii)!r}"
        )
    if noise not in ("reference", "local"):
        raise CalcError(f"{where}: noise must be 'reference' or 'local', got {noise!r}")
    for i, (r, c, d) in enumerate(cands):
        if not (math.isfinite(d) and d > 0):
            raise CalcError(f"{where}: candidate {i} has a non-positive diameter {d!r} mm")
        if not (-0.5 <= r < arr.shape[0] - 0.5 and -0.5 <= c < arr.shape[1] - 0.5):
            raise CalcError(
                f"{where}: candidate {i} at ({r:.1f}, {c:.1f}) lies outside the image {arr.shape}"
            )
    return arr, spacing, cands, radii_arr


def calcification_sweep(
    pixels: np.ndarray,
    spacing_mm: tuple[float, float],
    candidates: Sequence[Candidate] | Sequence[tuple[float, float, float]],
    radii: Sequence[float],
    *,
    fourier: object | None = None,
    patch_mm: float | tuple[float, float] | None = None,
    noise: str = "reference",
) -> CalcSweep:
    """Visibility of each candidate, and optionally its patch, in the image low-passed at each radius.

    Parameters
    ----------
    pixels : np.ndarray
        2-D image, model units (unfiltered).
    spacing_mm : (float, float)
        Pixel spacing (row, column), mm.
    candidates : sequence of Candidate or (row, col, diameter_mm)
        Specks to follow.
    radii : sequence of float
        Low-pass radii in cycles/mm (> 0); ``inf`` means unfiltered. Ideal filter, as in the study.
    fourier : core.perturb.FourierFilter, optional
        The image's filter, if the caller already has one (it must have been built from ``pixels`` and
        ``spacing_mm``); built here otherwise. Only its ``lowpass(radius)`` method is used.
    patch_mm : float or (float, float), optional
        Also cut patches this size (mm) around every candidate at every radius.
    noise : {"reference", "local"}
        Denominator of the CNR: the annulus noise of the unfiltered image (default) or of each filtered one.

    Returns
    -------
    CalcSweep
    """
    where = "visibility_vs_radius"
    arr, spacing, cands, radii_arr = _sweep_args(pixels, spacing_mm, candidates, radii, noise, where)
    n, m = len(cands), radii_arr.size
    ref = np.array([disc_contrast(arr, r, c, d, spacing, where)[1] for r, c, d in cands], dtype=np.float64)
    vis = np.zeros((n, m), dtype=np.float64)
    patches = None
    if patch_mm is not None:
        ph, pw = patch_shape(patch_mm, spacing)
        patches = np.zeros((n, m, ph, pw), dtype=np.float32)
    if n and m:
        nyquist = math.hypot(0.5 / spacing[0], 0.5 / spacing[1])
        if fourier is None and np.any(radii_arr < nyquist):
            from core.perturb import FourierFilter

            fourier = FourierFilter(arr, spacing)
        for j, radius in enumerate(radii_arr):
            # At or beyond the corner frequency the ideal low-pass keeps everything.
            img = arr if radius >= nyquist else np.asarray(fourier.lowpass(float(radius)), dtype=np.float32)
            for i, (r, c, d) in enumerate(cands):
                contrast, std = disc_contrast(img, r, c, d, spacing, where)
                den = ref[i] if noise == "reference" else std
                vis[i, j] = contrast / max(den, noise_floor(contrast))
                if patches is not None:
                    patches[i, j] = cut(img, int(round(r)), int(round(c)), ph, pw)
    return CalcSweep(radii=radii_arr, visibility=vis, patches=patches, reference_noise=ref)


def visibility_vs_radius(
    pixels: np.ndarray,
    spacing_mm: tuple[float, float],
    candidates: Sequence[Candidate] | Sequence[tuple[float, float, float]],
    radii: Sequence[float],
    fourier: object | None = None,
    *,
    noise: str = "reference",
) -> np.ndarray:
    """:func:`visibility` of each candidate in the image low-passed (ideal filter) at each radius.

    Shape ``(len(candidates), len(radii))``. By default the CNR's denominator is each speck's annulus noise in
    the unfiltered image, so ``v[:, j] / v[:, radii == inf]`` is the fraction of the speck's contrast that
    survives radius ``radii[j]`` (see the module docstring; ``noise="local"`` uses each filtered image's own
    annulus noise). Radii in cycles/mm, ``inf`` for unfiltered. See :func:`calcification_sweep`, which can
    also return the patches from the same filtered images.
    """
    return calcification_sweep(pixels, spacing_mm, candidates, radii, fourier=fourier, noise=noise).visibility
