"""The detector's scale space: difference-of-Gaussians responses in physical units, as robust z-scores.

Gaussian sigmas are in mm, converted per axis, with scales matched to specks of ``min_mm..max_mm`` (a disc
of diameter ``d`` responds most at ``sigma = d / (2 sqrt 2)``). Each scale's response is turned into a
robust z-score against its local background: the response is winsorised at 4 robust standard deviations
(median absolute deviation over the breast) and its local RMS taken over a ``background_mm`` window inside
the breast.
"""

from __future__ import annotations

import math

import numpy as np
from scipy import ndimage

SQRT2 = math.sqrt(2.0)

#: Most breast pixels sampled for the median and MAD of a scale's response (a regular subsample beyond).
MAX_SAMPLE = 200_000


def best_scale_z(
    sub: np.ndarray,
    sub_region: np.ndarray,
    sigmas: np.ndarray,
    spacing: tuple[float, float],
    background_mm: float,
) -> tuple[np.ndarray, np.ndarray]:
    """Best robust z-score over the scales at every pixel, and the index of the scale that gave it.

    Parameters
    ----------
    sub : np.ndarray
        2-D image (model units), usually the breast's bounding box with a margin.
    sub_region : np.ndarray of bool
        Where the background statistics are taken (the breast).
    sigmas : np.ndarray
        Increasing Gaussian sigmas, mm (:func:`scales_mm`): the response at scale ``i`` is the difference of
        the Gaussians of sigma ``sigmas[i]`` (``sigmas[0]`` for ``i == 0``) and ``sqrt(2) * sigmas[i]``.
    spacing : (float, float)
        Pixel spacing (row, column), mm.
    background_mm : float
        Side of the window of the local RMS, mm.

    Returns
    -------
    (np.ndarray, np.ndarray)
        float32 best z (``-inf`` where no scale has a robust spread) and uint8 scale index, shape of ``sub``.
    """
    dy, dx = spacing
    mask_f = sub_region.astype(np.float32)
    win = (max(int(round(background_mm / dy)), 3), max(int(round(background_mm / dx)), 3))
    block = (max(int(round(1.0 / dy)), 1), max(int(round(1.0 / dx)), 1))
    best_z = np.full(sub.shape, -np.inf, dtype=np.float32)
    best_s = np.zeros(sub.shape, dtype=np.uint8)
    sample = np.flatnonzero(sub_region)
    if sample.size > MAX_SAMPLE:
        sample = sample[:: sample.size // MAX_SAMPLE]
    prev = ndimage.gaussian_filter(sub, (sigmas[0] / dy, sigmas[0] / dx), mode="nearest")
    for i, s in enumerate(sigmas):
        nxt = ndimage.gaussian_filter(sub, (s * SQRT2 / dy, s * SQRT2 / dx), mode="nearest")
        resp = prev - nxt  # bright specks of scale ~s give a positive difference of Gaussians
        prev = nxt
        values = resp.ravel()[sample]
        gmed = float(np.median(values))
        gstd = robust_std(values)
        if gstd <= 0:
            continue
        resp -= gmed
        local = local_rms(np.clip(resp, -4 * gstd, 4 * gstd), mask_f, win, block)
        z = resp / np.maximum(local, 0.25 * gstd)
        better = z > best_z
        best_z[better] = z[better]
        best_s[better] = i
    return best_z, best_s


def robust_std(values: np.ndarray) -> float:
    """Standard deviation estimated from the median absolute deviation (exact for a normal sample)."""
    med = np.median(values)
    return float(1.4826 * np.median(np.abs(values - med)))


def scales_mm(min_mm: float, max_mm: float, spacing: tuple[float, float]) -> np.ndarray:
    """Gaussian sigmas (mm) matched to disc diameters min..max, a factor sqrt(2) apart, >= 0.5 px."""
    lo = max(min_mm / (2 * SQRT2), 0.5 * max(spacing))
    hi = max(max_mm / (2 * SQRT2), lo)
    n = max(int(math.ceil(math.log(hi / lo) / math.log(SQRT2))) + 1, 2)
    return np.geomspace(lo, lo * SQRT2 ** (n - 1), n)


def local_rms(
    resp: np.ndarray, mask_f: np.ndarray, size: tuple[int, int], block: tuple[int, int]
) -> np.ndarray:
    """RMS of ``resp`` over the breast within a moving ``size`` window (normalised convolution with the mask).

    The background statistic varies over the window's scale (about 10 mm), so it is computed on a grid
    decimated by ``block`` pixels per axis (block means of ``resp**2`` and of the mask) and brought back to
    full size by bilinear interpolation: ten times faster than at full resolution on full-field images.
    """
    h, w = resp.shape
    br, bc = block
    ph, pw = -h % br, -w % bc
    sq = np.pad(resp * resp * mask_f, ((0, ph), (0, pw)))
    m = np.pad(mask_f, ((0, ph), (0, pw)))
    sh, sw = sq.shape[0] // br, sq.shape[1] // bc
    sq = sq.reshape(sh, br, sw, bc).mean(axis=(1, 3))
    m = m.reshape(sh, br, sw, bc).mean(axis=(1, 3))
    small = (max(int(round(size[0] / br)), 1), max(int(round(size[1] / bc)), 1))
    num = ndimage.uniform_filter(sq, size=small, mode="constant")
    den = ndimage.uniform_filter(m, size=small, mode="constant")
    rms = np.sqrt(num / np.maximum(den, 1e-6)).astype(np.float32)
    # Block centres sit at (k + 0.5) * block - 0.5 in pixel coordinates.
    return upsample_linear(upsample_linear(rms, br, h, axis=0), bc, w, axis=1)


def upsample_linear(a: np.ndarray, block: int, n: int, axis: int) -> np.ndarray:
    """Linear interpolation of block means back to ``n`` pixels along ``axis`` (edges held constant)."""
    pos = np.clip((np.arange(n, dtype=np.float32) + 0.5) / block - 0.5, 0, a.shape[axis] - 1)
    i0 = np.minimum(pos.astype(np.intp), a.shape[axis] - 1)
    i1 = np.minimum(i0 + 1, a.shape[axis] - 1)
    t = pos - i0
    if axis == 0:
        return a[i0] * (1 - t)[:, None] + a[i1] * t[:, None]
    return a[:, i0] * (1 - t)[None, :] + a[:, i1] * t[None, :]
