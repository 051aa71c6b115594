"""Measurements of one detected peak on the image itself: how round it is, and the speck around it.

The speck's background is the median of an annulus around the peak; the speck is the connected region
above half its peak contrast (its area gives the equivalent diameter and its weighted centroid the
position). The roundness is a ratio of Hessian eigenvalues at the detection scale: near 0 for line-like
structures (fibres, vessel walls, the skin line), 1 for a round speck.
"""

from __future__ import annotations

import math

import numpy as np
from scipy import ndimage

from core.calcs.scale_space import SQRT2
from core.calcs.visibility import ANNULUS_DIAMETERS


def roundness(arr: np.ndarray, r: int, c: int, sigma_mm: float, spacing: tuple[float, float]) -> float:
    """Ratio (0..1) of the smaller to the larger Hessian eigenvalue magnitude at (r, c), physical units."""
    dy, dx = spacing
    sr, sc = sigma_mm / dy, sigma_mm / dx
    hr, hc = int(math.ceil(4 * sr)) + 2, int(math.ceil(4 * sc)) + 2
    r0, c0 = max(r - hr, 0), max(c - hc, 0)
    crop = arr[r0 : r + hr + 1, c0 : c + hc + 1].astype(np.float64)
    lr, lc = r - r0, c - c0
    hyy = ndimage.gaussian_filter(crop, (sr, sc), order=(2, 0), mode="nearest")[lr, lc] / dy**2
    hxx = ndimage.gaussian_filter(crop, (sr, sc), order=(0, 2), mode="nearest")[lr, lc] / dx**2
    hxy = ndimage.gaussian_filter(crop, (sr, sc), order=(1, 1), mode="nearest")[lr, lc] / (dy * dx)
    tr, det = hyy + hxx, hyy * hxx - hxy**2
    disc = math.sqrt(max(tr * tr / 4 - det, 0.0))
    l1, l2 = tr / 2 - disc, tr / 2 + disc  # l1 <= l2
    if l1 >= 0:  # not a bright peak at this scale
        return 0.0
    return max(0.0, min(1.0, -l2 / -l1)) if l2 < 0 else 0.0


def measure_speck(
    arr: np.ndarray, r: int, c: int, sigma_mm: float, spacing: tuple[float, float], max_mm: float
) -> tuple[float, float, float, float] | None:
    """Centroid (row, col), half-max equivalent diameter (mm) and contrast of the speck near (r, c)."""
    dy, dx = spacing
    d0 = max(2 * SQRT2 * sigma_mm, max(dy, dx))
    # Window: the largest accepted speck plus its annulus, so that a plateau larger than that is rejected.
    half = max(ANNULUS_DIAMETERS[1] * d0, max_mm) + 2 * max(dy, dx)
    hr, hc = int(math.ceil(half / dy)), int(math.ceil(half / dx))
    r0, c0 = max(r - hr, 0), max(c - hc, 0)
    crop = arr[r0 : r + hr + 1, c0 : c + hc + 1].astype(np.float64)
    lr, lc = r - r0, c - c0
    # Peak: brightest pixel within half a speck (at least one pixel) of the scale-space maximum.
    pr, pc = max(int(round(d0 / 2 / dy)), 1), max(int(round(d0 / 2 / dx)), 1)
    nb = crop[max(lr - pr, 0) : lr + pr + 1, max(lc - pc, 0) : lc + pc + 1]
    k = np.unravel_index(int(np.argmax(nb)), nb.shape)
    lr, lc = max(lr - pr, 0) + int(k[0]), max(lc - pc, 0) + int(k[1])
    peak = crop[lr, lc]
    yy = (np.arange(crop.shape[0]) - lr)[:, None] * dy
    xx = (np.arange(crop.shape[1]) - lc)[None, :] * dx
    dist = np.sqrt(yy**2 + xx**2)
    ring = (dist >= max(ANNULUS_DIAMETERS[0] * d0, max(dy, dx) * 2)) & (
        dist <= max(ANNULUS_DIAMETERS[1] * d0, max(dy, dx) * 4)
    )
    if ring.sum() < 8:
        return None
    bg = float(np.median(crop[ring]))
    contrast = float(peak - bg)
    if contrast <= 0:
        return None
    labels, _ = ndimage.label(crop > bg + contrast / 2)
    region = labels == labels[lr, lc]
    rows, cols = np.nonzero(region)
    if (
        rows.min() == 0
        or cols.min() == 0
        or rows.max() == crop.shape[0] - 1
        or cols.max() == crop.shape[1] - 1
    ):
        return None  # the bright region runs out of the window: not a speck
    weights = crop[region] - (bg + contrast / 2)
    wsum = float(weights.sum())
    if wsum > 0:
        cr = float((rows * weights).sum() / wsum)
        cc = float((cols * weights).sum() / wsum)
    else:
        cr, cc = float(lr), float(lc)
    diameter = 2 * math.sqrt(region.sum() * dy * dx / math.pi)
    return cr + r0, cc + c0, diameter, contrast
