"""Detection of candidate microcalcifications (:func:`find_candidates`).

A difference-of-Gaussians scale space in physical units gives, at every pixel, the best robust z-score of
the response against its local background (:mod:`core.calcs.scale_space`). Peaks of that z that are
spatial maxima, lie in the breast (pixels > 0, eroded by ``edge_mm`` from the skin line) at least
``border_mm`` from every image side the breast touches (the chest wall), and exceed ``z_min`` are then
measured on the image itself (:mod:`core.calcs.measure`). Line-like peaks (a ratio of Hessian eigenvalues
under ``min_roundness``) and specks that do not stand out of their annulus (:func:`~core.calcs.visibility`
under ``min_cnr``) are dropped. Candidates are sorted by z (strongest first), non-overlapping and capped at
``max_count``.
"""

from __future__ import annotations

import math

import numpy as np
from scipy import ndimage

from core.calcs.checks import image_arg, positive_arg, spacing_arg
from core.calcs.measure import measure_speck, roundness
from core.calcs.results import Candidate
from core.calcs.scale_space import SQRT2, best_scale_z, scales_mm
from core.calcs.visibility import disc_contrast, noise_floor
from core.errors import CalcError
from core.spectrum import breast_mask

BORDER_MM = 10.0
"""Default distance (mm) that detection keeps from each image side the breast touches. Where tissue reaches
the border, the border is the chest wall (CC views) or the pectoral side (MLO): the detector cuts the breast
there, and the cut edge and the detector's edge give bright, speck-sized peaks that are no calcification (on
the NYU sample ``dmv_1_R_CC.png`` three of the four strongest candidates lay 2-6 mm from the chest-wall
border). Sides facing the background need no band (the skin line has its own margin, ``edge_mm``), and an
image without background (a crop, a phantom) has no band at all."""


def find_candidates(
    pixels: np.ndarray,
    spacing_mm: tuple[float, float],
    *,
    min_mm: float = 0.1,
    max_mm: float = 1.0,
    max_count: int = 100,
    z_min: float = 6.0,
    min_roundness: float = 0.4,
    min_cnr: float = 3.0,
    edge_mm: float = 3.0,
    border_mm: float = BORDER_MM,
    background_mm: float = 10.0,
    mask: np.ndarray | None = None,
) -> list[Candidate]:
    """Find candidate microcalcifications: bright specks ``min_mm..max_mm`` across inside the breast.

    See the module docstring for the method.

    Parameters
    ----------
    pixels : np.ndarray
        2-D image, model units, bright tissue on a zero background (an image without zeros is all breast).
    spacing_mm : (float, float)
        Pixel spacing (row, column), mm.
    min_mm, max_mm : float
        Range of speck diameters searched, mm (0 < min_mm <= max_mm). Specks smaller than a pixel are
        searched at the one-pixel scale; measured diameters may exceed ``max_mm`` by up to a quarter.
    max_count : int
        Most candidates returned (the strongest).
    z_min : float
        Detection threshold: robust z-score of the scale-space response against its local background.
    min_roundness : float
        Smallest accepted ratio of the Hessian eigenvalues (0..1; 1 for a round speck, near 0 for a line).
    min_cnr : float
        Smallest accepted :func:`visibility` of the measured speck against its annulus.
    edge_mm : float
        Distance kept from the skin line (the breast's edge against the background), mm.
    border_mm : float
        Distance kept from each image side that the breast touches, mm (see :data:`BORDER_MM`); also
        applied to ``mask``.
    background_mm : float
        Side of the window over which the local background statistics are taken, mm.
    mask : np.ndarray of bool, optional
        Where to search instead of the automatic breast mask.

    Returns
    -------
    list of Candidate
        Strongest first (by ``z``); centres at least half the sum of their diameters apart.
    """
    where = "find_candidates"
    arr, spacing, lo, hi = _detection_args(
        pixels, spacing_mm, min_mm, max_mm, max_count, z_min, background_mm, edge_mm, border_mm, where
    )
    region = _search_region(arr, spacing, edge_mm, border_mm, mask, where)
    if max_count == 0 or not region.any():
        return []
    sigmas = scales_mm(lo, hi, spacing)
    r0, r1, c0, c1 = _breast_box(region, sigmas[-1], spacing)
    box = np.s_[r0:r1, c0:c1]
    best_z, best_s = best_scale_z(arr[box], region[box], sigmas, spacing, background_mm)
    # Most peaks tried: the strongest ones, enough for max_count on images with many rejected peaks.
    limit = 20 * max_count + 100
    peaks = _ranked_peaks(best_z, best_s, region[box], (r0, c0), sigmas, lo, spacing, z_min, limit)
    accepted: list[Candidate] = []
    for r, c, z, sigma in peaks:
        if len(accepted) >= max_count:
            break
        candidate = _candidate_at(arr, r, c, z, sigma, spacing, hi, min_roundness, min_cnr, accepted, where)
        if candidate is not None:
            accepted.append(candidate)
    return accepted


def _detection_args(
    pixels: object,
    spacing_mm: object,
    min_mm: float,
    max_mm: float,
    max_count: int,
    z_min: float,
    background_mm: float,
    edge_mm: float,
    border_mm: float,
    where: str,
) -> tuple[np.ndarray, tuple[float, float], float, float]:
    """The checked ``(image, spacing, min_mm, max_mm)``; the other arguments are only checked."""
    arr = image_arg(pixels, where, min_side=8)
    spacing = spacing_arg(spacing_mm, where)
    lo = positive_arg(min_mm, "min_mm", where)
    hi = positive_arg(max_mm, "max_mm", where)
    if lo > hi:
        raise CalcError(f"{where}: min_mm={lo} exceeds max_mm={hi}")
    if int(max_count) != max_count or max_count < 0:
        raise CalcError(f"{where}: max_count must be a non-negative integer, got {max_count!r}")
    for name, value in (("z_min", z_min), ("background_mm", background_mm)):
        positive_arg(value, name, where)
    for name, value in (("edge_mm", edge_mm), ("border_mm", border_mm)):
        if not (isinstance(value, int | float) and math.isfinite(value) and value >= 0):
            raise CalcError(f"{where}: {name} must be a finite number >= 0, got {value!r}")
    return arr, spacing, lo, hi


def _search_region(
    arr: np.ndarray,
    spacing: tuple[float, float],
    edge_mm: float,
    border_mm: float,
    mask: np.ndarray | None,
    where: str,
) -> np.ndarray:
    """Where peaks may lie: the breast eroded by ``edge_mm`` (or ``mask``), minus the border bands."""
    if mask is None:
        region = breast_mask(arr, spacing, edge_mm)
    else:
        region = np.asarray(mask, dtype=bool)
        if region.shape != arr.shape:
            raise CalcError(f"{where}: mask shape {region.shape} differs from the image shape {arr.shape}")
    return region & _border_band(arr, spacing, border_mm)


def _border_band(pixels: np.ndarray, spacing: tuple[float, float], border_mm: float) -> np.ndarray:
    """Boolean mask: False within ``border_mm`` of each image side that the breast touches, True elsewhere.

    The breast is the largest connected region of pixels > 0. An image with no background at all (a crop
    or a phantom) has no chest wall to keep away from: all True.
    """
    frame = np.ones(pixels.shape, dtype=bool)
    fg = breast_mask(pixels, spacing, 0.0)
    if border_mm <= 0 or fg.all():
        return frame
    br = max(int(math.ceil(border_mm / spacing[0] - 1e-9)), 1)
    bc = max(int(math.ceil(border_mm / spacing[1] - 1e-9)), 1)
    if fg[0].any():
        frame[:br] = False
    if fg[-1].any():
        frame[-br:] = False
    if fg[:, 0].any():
        frame[:, :bc] = False
    if fg[:, -1].any():
        frame[:, -bc:] = False
    return frame


def _breast_box(
    region: np.ndarray, largest_sigma_mm: float, spacing: tuple[float, float]
) -> tuple[int, int, int, int]:
    """``(r0, r1, c0, c1)``: the bounding box of ``region`` plus a margin that covers the support of the
    largest Gaussian of the scale space, clipped to the image."""
    dy, dx = spacing
    pad_r = int(math.ceil(4 * largest_sigma_mm * SQRT2 / dy)) + 2
    pad_c = int(math.ceil(4 * largest_sigma_mm * SQRT2 / dx)) + 2
    rows, cols = np.nonzero(region.any(axis=1))[0], np.nonzero(region.any(axis=0))[0]
    r0, r1 = max(int(rows[0]) - pad_r, 0), min(int(rows[-1]) + pad_r + 1, region.shape[0])
    c0, c1 = max(int(cols[0]) - pad_c, 0), min(int(cols[-1]) + pad_c + 1, region.shape[1])
    return r0, r1, c0, c1


def _ranked_peaks(
    best_z: np.ndarray,
    best_s: np.ndarray,
    sub_region: np.ndarray,
    origin: tuple[int, int],
    sigmas: np.ndarray,
    min_mm: float,
    spacing: tuple[float, float],
    z_min: float,
    limit: int,
) -> list[tuple[int, int, float, float]]:
    """``(row, col, z, sigma_mm)`` of the ``limit`` strongest local maxima of ``best_z`` in the region at or
    above ``z_min``, strongest first (ties in raster order); rows and columns in the full image (``origin``
    is the box's corner). Maxima are taken over a window as wide as the smallest speck searched. ``best_z``
    is set to ``-inf`` outside the region, in place."""
    dy, dx = spacing
    best_z[~sub_region] = -np.inf
    foot = (2 * max(int(round(min_mm / 2 / dy)), 1) + 1, 2 * max(int(round(min_mm / 2 / dx)), 1) + 1)
    peaks = (best_z >= z_min) & (best_z == ndimage.maximum_filter(best_z, size=foot, mode="constant"))
    pr, pc = np.nonzero(peaks)
    order = np.argsort(-best_z[pr, pc], kind="stable")[:limit]
    return [
        (int(lr) + origin[0], int(lc) + origin[1], float(best_z[lr, lc]), float(sigmas[best_s[lr, lc]]))
        for lr, lc in zip(pr[order], pc[order], strict=True)
    ]


def _candidate_at(
    arr: np.ndarray,
    r: int,
    c: int,
    z: float,
    sigma: float,
    spacing: tuple[float, float],
    max_mm: float,
    min_roundness: float,
    min_cnr: float,
    accepted: list[Candidate],
    where: str,
) -> Candidate | None:
    """The speck at the peak ``(r, c)``, or None when it is line-like, no speck of at most 1.25 ``max_mm``,
    overlaps an ``accepted`` candidate, or does not stand out of its annulus by ``min_cnr``."""
    if roundness(arr, r, c, sigma, spacing) < min_roundness:
        return None
    measured = measure_speck(arr, r, c, sigma, spacing, max_mm)
    if measured is None:
        return None
    cr, cc, diam, contrast = measured
    if diam > 1.25 * max_mm:
        return None
    dy, dx = spacing
    if any(math.hypot((cr - a.row) * dy, (cc - a.col) * dx) < (diam + a.diameter_mm) / 2 for a in accepted):
        return None
    try:
        contrast_disc, noise = disc_contrast(arr, cr, cc, diam, spacing, where)
    except CalcError:
        return None
    cnr = contrast_disc / max(noise, noise_floor(contrast_disc))
    if cnr < min_cnr:
        return None
    return Candidate(row=cr, col=cc, diameter_mm=diam, contrast=contrast, cnr=cnr, z=z, sigma_mm=sigma)
