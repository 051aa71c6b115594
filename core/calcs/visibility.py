"""Visibility of a speck: its contrast-to-noise ratio against the annulus around it.

(mean over the disc of the speck's diameter - mean over the annulus from 1.5 to 3 diameters from its
centre) / standard deviation over that annulus; distances in mm, so the rings are round on the breast under
anisotropic spacing.
"""

from __future__ import annotations

import math

import numpy as np

from core.calcs.checks import center_arg, image_arg, positive_arg, spacing_arg
from core.errors import CalcError

ANNULUS_DIAMETERS = (1.5, 3.0)
"""Inner and outer radius of the background annulus, in speck diameters from the speck's centre."""


def rings(
    shape: tuple[int, int], r: float, c: float, diameter_mm: float, spacing: tuple[float, float]
) -> tuple[tuple[slice, slice], np.ndarray, np.ndarray]:
    """Window around the speck and the boolean disc and annulus masks inside it.

    The disc holds the pixels whose centres lie within ``diameter / 2`` of the centre (in mm), and at least
    the nearest pixel; the annulus those between 1.5 and 3 diameters, widened where needed so that it
    keeps a one-pixel gap from the disc and is at least two pixels thick.
    """
    dy, dx = spacing
    px = max(dy, dx)
    rad = diameter_mm / 2
    inner = max(ANNULUS_DIAMETERS[0] * diameter_mm, rad + px)
    outer = max(ANNULUS_DIAMETERS[1] * diameter_mm, inner + 2 * px)
    hr, hc = int(math.ceil(outer / dy)) + 1, int(math.ceil(outer / dx)) + 1
    ir, ic = int(round(r)), int(round(c))
    r0, r1 = max(ir - hr, 0), min(ir + hr + 1, shape[0])
    c0, c1 = max(ic - hc, 0), min(ic + hc + 1, shape[1])
    yy = (np.arange(r0, r1) - r)[:, None] * dy
    xx = (np.arange(c0, c1) - c)[None, :] * dx
    d = np.sqrt(yy**2 + xx**2)
    disc = d <= rad
    if not disc.any() and d.size:
        disc = d == d.min()
    annulus = (d >= inner) & (d <= outer)
    return (slice(r0, r1), slice(c0, c1)), disc, annulus


def disc_contrast(
    arr: np.ndarray, r: float, c: float, diameter_mm: float, spacing: tuple[float, float], where: str
) -> tuple[float, float]:
    """(disc mean - annulus mean, annulus std) of one speck, model units (see :func:`rings`)."""
    win, disc, annulus = rings(arr.shape, r, c, diameter_mm, spacing)
    region = arr[win]
    if not disc.any() or annulus.sum() < 3:
        raise CalcError(
            f"{where}: the speck at ({r:.1f}, {c:.1f}) lies outside the image or too near its edge"
        )
    ring = region[annulus].astype(np.float64)
    return float(region[disc].mean(dtype=np.float64) - ring.mean()), float(ring.std(ddof=1))


def noise_floor(level: float) -> float:
    """Smallest CNR denominator for a contrast ``level``: a perfectly flat annulus (synthetic images) would
    divide by zero."""
    return 1e-6 * (1.0 + abs(level))


def visibility(
    pixels: np.ndarray,
    center_rc: tuple[float, float],
    diameter_mm: float,
    spacing_mm: tuple[float, float],
    *,
    noise: float | None = None,
) -> float:
    """Contrast-to-noise ratio of a speck against its surrounding annulus.

    ``(mean(disc) - mean(annulus)) / std(annulus)``: the disc has the speck's diameter, the annulus runs
    from 1.5 to 3 diameters from the centre (distances in mm; at least a one-pixel gap and two pixels of
    thickness on small specks).

    Parameters
    ----------
    pixels : np.ndarray
        2-D image, model units.
    center_rc : (float, float)
        Speck centre (row, col), pixels; it may be fractional.
    diameter_mm : float
        Speck diameter, mm (> 0).
    spacing_mm : (float, float)
        Pixel spacing (row, column), mm.
    noise : float, optional
        Use this standard deviation (model units, > 0) instead of the annulus's own, e.g. the annulus noise
        of the unfiltered image when comparing filtered versions (see
        :func:`core.calcs.visibility_vs_radius`).

    Returns
    -------
    float
        Dimensionless; about 0 where there is no speck, negative for a dark spot.
    """
    where = "visibility"
    arr = image_arg(pixels, where)
    spacing = spacing_arg(spacing_mm, where)
    r, c = center_arg(center_rc, where)
    d = positive_arg(diameter_mm, "diameter_mm", where)
    if not (-0.5 <= r < arr.shape[0] - 0.5 and -0.5 <= c < arr.shape[1] - 0.5):
        raise CalcError(
            f"{where}: centre ({r:.1f}, {c:.1f}) lies outside the {arr.shape[0]}x{arr.shape[1]} image"
        )
    contrast, std = disc_contrast(arr, r, c, d, spacing, where)
    if noise is not None:
        std = positive_arg(noise, "noise", where)
    return contrast / max(std, noise_floor(contrast))
