"""Candidate microcalcifications, native-resolution patches, and their visibility under low-pass filtering.

Microcalcifications are small bright specks of calcium, 0.1 to about 1 mm across; clusters of fine ones
(at least 3 within about 1 cm^2) are a sign of malignancy. The study showed that low-pass filtering erases
them (its Figures 3, 5 and 6). This module finds candidate specks, cuts patches around them and measures
their visibility across low-pass radii. All sizes are in mm and all frequencies in cycles/mm; pixel
coordinates are (row, column) into the image array, and every length is converted to pixels per axis with
the spacing, so results are right under anisotropic spacing.

Detection (:func:`find_candidates`)
    A difference-of-Gaussians scale space in physical units (Gaussian sigmas in mm, converted per axis),
    with scales matched to specks of ``min_mm..max_mm`` (a disc of diameter ``d`` responds most at
    ``sigma = d / (2 sqrt 2)``). Each scale's response is turned into a robust z-score against its local
    background: the response is winsorised at 4 robust standard deviations (median absolute deviation over
    the breast) and its local RMS taken over a ``background_mm`` window inside the breast. Peaks of the
    best z over scales that are spatial maxima, lie in the breast (pixels > 0, eroded by ``edge_mm`` from the
    skin line) at least ``border_mm`` from every image side the breast touches (the chest wall), and exceed
    ``z_min`` are then measured on the image itself: the background is the median of an annulus, the
    speck is the connected region above half its peak contrast (its area gives the equivalent diameter and
    its weighted centroid the position). Line-like peaks (fibres, vessel walls, the skin line: a ratio of
    Hessian eigenvalues under ``min_roundness``) and specks that do not stand out of their annulus
    (:func:`visibility` under ``min_cnr``) are dropped. Candidates are sorted by z (strongest first),
    non-overlapping and capped at ``max_count``.

Visibility (:func:`visibility`, :func:`visibility_vs_radius`)
    Contrast-to-noise ratio of the speck: (mean over the disc of the speck's diameter - mean over the
    annulus from 1.5 to 3 diameters from its centre) / standard deviation over that annulus. Across low-pass
    radii the denominator is, by default, the annulus noise of the *unfiltered* image (``noise="reference"``),
    so the curve measures the speck's contrast against the noise the reader saw before filtering. The
    filtered image's own annulus noise (``noise="local"``) also falls as the filter removes high
    frequencies, which hides most of the loss: a 0.3 mm speck on white noise at R = 1 cycle/mm keeps about a
    quarter of its contrast, while its local CNR stays between 0.4 and 1.4 times its unfiltered value
    depending on the noise level.

Speed: the low-pass filtering of :func:`calcification_sweep` goes through ``core.perturb.FourierFilter``
(one forward real FFT for the image, one inverse per radius, on the full image: about 0.3 to 0.4 s per
radius on a 3328 x 2560 image on 2 busy cores), so the filtered pixels are exactly those of the app's
low-pass perturbation; no crop is filtered, so there is no crop-versus-full-image error to bound.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
from scipy import ndimage

from core.errors import CalcError
from core.spectrum import breast_mask
from core.validate import image_2d, spacing_pair

__all__ = [
    "CalcError",
    "Candidate",
    "Cluster",
    "CalcSweep",
    "find_candidates",
    "cut_patch",
    "patch_shape",
    "visibility",
    "visibility_vs_radius",
    "calcification_sweep",
    "cluster_candidates",
    "BORDER_MM",
]

BORDER_MM = 10.0
"""Default distance (mm) that detection keeps from each image side the breast touches. Where tissue reaches
the border, the border is the chest wall (CC views) or the pectoral side (MLO): the detector cuts the breast
there, and the cut edge and the detector's edge give bright, speck-sized peaks that are no calcification (on
the NYU sample ``dmv_1_R_CC.png`` three of the four strongest candidates lay 2-6 mm from the chest-wall
border). Sides facing the background need no band (the skin line has its own margin, ``edge_mm``), and an
image without background (a crop, a phantom) has no band at all."""

ANNULUS_DIAMETERS = (1.5, 3.0)
"""Inner and outer radius of the background annulus, in speck diameters from the speck's centre."""

_SQRT2 = math.sqrt(2.0)


@dataclass(frozen=True)
class Candidate:
    """A candidate microcalcification.

    Attributes
    ----------
    row, col : float
        Centre (intensity-weighted centroid of the speck), pixels.
    diameter_mm : float
        Equivalent diameter of the region above half the peak contrast, mm.
    contrast : float
        Peak value minus the median of the background annulus, model units.
    cnr : float
        :func:`visibility` of the speck in the image it was found in (dimensionless).
    z : float
        Detection strength: robust z-score of the scale-space response against its local background.
    sigma_mm : float
        Scale of the strongest response (Gaussian sigma, mm).
    """

    row: float
    col: float
    diameter_mm: float
    contrast: float
    cnr: float
    z: float = 0.0
    sigma_mm: float = 0.0

    @property
    def center_rc(self) -> tuple[float, float]:
        """``(row, col)`` in pixels."""
        return (self.row, self.col)


@dataclass(frozen=True)
class Cluster:
    """A group of candidates close together (see :func:`cluster_candidates`).

    Attributes
    ----------
    members : tuple of int
        Indices into the candidate list given to :func:`cluster_candidates`.
    row, col : float
        Centroid of the members, pixels.
    span_mm : float
        Largest distance between two members, mm.
    """

    members: tuple[int, ...]
    row: float
    col: float
    span_mm: float

    @property
    def count(self) -> int:
        """Number of member candidates."""
        return len(self.members)


@dataclass(frozen=True)
class CalcSweep:
    """Visibility (and optionally patches) of candidates across low-pass radii.

    Attributes
    ----------
    radii : np.ndarray
        Low-pass radii, cycles/mm (``inf``: unfiltered), in the order given.
    visibility : np.ndarray
        Shape ``(n_candidates, n_radii)``, see :func:`visibility_vs_radius`.
    patches : np.ndarray or None
        Shape ``(n_candidates, n_radii, h, w)`` float32, native-resolution patches of the filtered images
        (:func:`cut_patch`), or None when not asked for.
    reference_noise : np.ndarray
        Shape ``(n_candidates,)``: annulus standard deviation in the unfiltered image, model units.
    """

    radii: np.ndarray
    visibility: np.ndarray
    patches: np.ndarray | None
    reference_noise: np.ndarray = field(default_factory=lambda: np.zeros(0))


# --------------------------------------------------------------------------------------------- validation


def _image(pixels: object, where: str, min_side: int = 1) -> np.ndarray:
    return image_2d(pixels, where, CalcError, min_side)


def _spacing(spacing_mm: object, where: str) -> tuple[float, float]:
    return spacing_pair(spacing_mm, where, CalcError)


def _center(center_rc: object, where: str) -> tuple[float, float]:
    try:
        r, c = (float(v) for v in center_rc)  # type: ignore[union-attr]
    except (TypeError, ValueError):
        raise CalcError(f"{where}: center_rc must be (row, col) in pixels, got {center_rc!r}") from None
    if not (math.isfinite(r) and math.isfinite(c)):
        raise CalcError(f"{where}: center_rc must be finite, got {center_rc!r}")
    return r, c


def _positive(value: object, name: str, where: str) -> float:
    try:
        v = float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        raise CalcError(f"{where}: {name} must be a number, got {value!r}") from None
    if not (math.isfinite(v) and v > 0):
        raise CalcError(f"{where}: {name} must be a positive finite number, got {value!r}")
    return v


# ------------------------------------------------------------------------------------------------ patches


def patch_shape(size_mm: float | tuple[float, float], spacing_mm: tuple[float, float]) -> tuple[int, int]:
    """Pixels per axis of a patch ``size_mm`` across: the odd integer nearest ``size / spacing`` (>= 1).

    ``size_mm`` is one side (a square in mm) or ``(height_mm, width_mm)``. Odd sizes put the centre pixel
    exactly in the middle.
    """
    where = "patch_shape"
    dy, dx = _spacing(spacing_mm, where)
    if np.ndim(size_mm) == 0:
        sh = sw = _positive(size_mm, "size_mm", where)
    else:
        try:
            sh, sw = (_positive(v, "size_mm", where) for v in size_mm)  # type: ignore[union-attr]
        except ValueError as exc:
            if isinstance(exc, CalcError):
                raise
            raise CalcError(
                f"{where}: size_mm must be a number or (height_mm, width_mm), got {size_mm!r}"
            ) from None

    def odd(n: float) -> int:
        k = int(round(n))
        if k % 2 == 0:
            k = k + 1 if n >= k else k - 1
        return max(k, 1)

    return odd(sh / dy), odd(sw / dx)


def cut_patch(
    pixels: np.ndarray,
    center_rc: tuple[float, float],
    size_mm: float | tuple[float, float],
    spacing_mm: tuple[float, float],
) -> np.ndarray:
    """Cut a native-resolution patch ``size_mm`` across centred on ``center_rc``, zero-padded at the border.

    Parameters
    ----------
    pixels : np.ndarray
        2-D image, model units.
    center_rc : (float, float)
        Centre (row, col) in pixels; rounded to the nearest pixel, which becomes the patch's middle pixel.
    size_mm : float or (float, float)
        Patch side, or (height, width), in mm; pixels per axis from :func:`patch_shape`.
    spacing_mm : (float, float)
        Pixel spacing (row, column), mm.

    Returns
    -------
    np.ndarray
        float32 patch of shape :func:`patch_shape`; pixels outside the image are 0 (the background value).
    """
    where = "cut_patch"
    arr = _image(pixels, where)
    r, c = _center(center_rc, where)
    ph, pw = patch_shape(size_mm, spacing_mm)
    return _cut(arr, int(round(r)), int(round(c)), ph, pw)


def _cut(arr: np.ndarray, r: int, c: int, ph: int, pw: int) -> np.ndarray:
    out = np.zeros((ph, pw), dtype=np.float32)
    r0, c0 = r - ph // 2, c - pw // 2
    h, w = arr.shape
    sr0, sr1 = max(r0, 0), min(r0 + ph, h)
    sc0, sc1 = max(c0, 0), min(c0 + pw, w)
    if sr0 < sr1 and sc0 < sc1:
        out[sr0 - r0 : sr1 - r0, sc0 - c0 : sc1 - c0] = arr[sr0:sr1, sc0:sc1]
    return out


# --------------------------------------------------------------------------------------------- visibility


def _rings(
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


def _disc_contrast(arr, r, c, diameter_mm, spacing, where) -> tuple[float, float]:
    """(disc mean - annulus mean, annulus std) of one speck."""
    win, disc, annulus = _rings(arr.shape, r, c, diameter_mm, spacing)
    region = arr[win]
    if not disc.any() or annulus.sum() < 3:
        raise CalcError(
            f"{where}: the speck at ({r:.1f}, {c:.1f}) lies outside the image or too near its edge"
        )
    ring = region[annulus].astype(np.float64)
    return float(region[disc].mean(dtype=np.float64) - ring.mean()), float(ring.std(ddof=1))


def _noise_floor(level: float) -> float:
    # A perfectly flat annulus (synthetic images) would divide by zero.
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
        of the unfiltered image when comparing filtered versions (see :func:`visibility_vs_radius`).

    Returns
    -------
    float
        Dimensionless; about 0 where there is no speck, negative for a dark spot.
    """
    where = "visibility"
    arr = _image(pixels, where)
    spacing = _spacing(spacing_mm, where)
    r, c = _center(center_rc, where)
    d = _positive(diameter_mm, "diameter_mm", where)
    if not (-0.5 <= r < arr.shape[0] - 0.5 and -0.5 <= c < arr.shape[1] - 0.5):
        raise CalcError(
            f"{where}: centre ({r:.1f}, {c:.1f}) lies outside the {arr.shape[0]}x{arr.shape[1]} image"
        )
    contrast, std = _disc_contrast(arr, r, c, d, spacing, where)
    if noise is not None:
        std = _positive(noise, "noise", where)
    return contrast / max(std, _noise_floor(contrast))


# ---------------------------------------------------------------------------------------- radius sweeps


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
    arr = _image(pixels, where)
    spacing = _spacing(spacing_mm, where)
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
    n, m = len(cands), radii_arr.size
    ref = np.array([_disc_contrast(arr, r, c, d, spacing, where)[1] for r, c, d in cands], dtype=np.float64)
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
                contrast, std = _disc_contrast(img, r, c, d, spacing, where)
                den = ref[i] if noise == "reference" else std
                vis[i, j] = contrast / max(den, _noise_floor(contrast))
                if patches is not None:
                    patches[i, j] = _cut(img, int(round(r)), int(round(c)), ph, pw)
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


# ---------------------------------------------------------------------------------------------- detection


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


def _robust_std(values: np.ndarray) -> float:
    med = np.median(values)
    return float(1.4826 * np.median(np.abs(values - med)))


def _scales_mm(min_mm: float, max_mm: float, spacing: tuple[float, float]) -> np.ndarray:
    """Gaussian sigmas (mm) matched to disc diameters min..max, a factor sqrt(2) apart, >= 0.5 px."""
    lo = max(min_mm / (2 * _SQRT2), 0.5 * max(spacing))
    hi = max(max_mm / (2 * _SQRT2), lo)
    n = max(int(math.ceil(math.log(hi / lo) / math.log(_SQRT2))) + 1, 2)
    return np.geomspace(lo, lo * _SQRT2 ** (n - 1), n)


def _local_rms(
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
    return _upsample_linear(_upsample_linear(rms, br, h, axis=0), bc, w, axis=1)


def _upsample_linear(a: np.ndarray, block: int, n: int, axis: int) -> np.ndarray:
    """Linear interpolation of block means back to ``n`` pixels along ``axis`` (edges held constant)."""
    pos = np.clip((np.arange(n, dtype=np.float32) + 0.5) / block - 0.5, 0, a.shape[axis] - 1)
    i0 = np.minimum(pos.astype(np.intp), a.shape[axis] - 1)
    i1 = np.minimum(i0 + 1, a.shape[axis] - 1)
    t = pos - i0
    if axis == 0:
        return a[i0] * (1 - t)[:, None] + a[i1] * t[:, None]
    return a[:, i0] * (1 - t)[None, :] + a[:, i1] * t[None, :]


def _roundness(arr: np.ndarray, r: int, c: int, sigma_mm: float, spacing: tuple[float, float]) -> float:
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


def _measure(
    arr: np.ndarray, r: int, c: int, sigma_mm: float, spacing: tuple[float, float], max_mm: float
) -> tuple[float, float, float, float] | None:
    """Centroid (row, col), half-max equivalent diameter (mm) and contrast of the speck near (r, c)."""
    dy, dx = spacing
    d0 = max(2 * _SQRT2 * sigma_mm, max(dy, dx))
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
    arr = _image(pixels, where, min_side=8)
    spacing = _spacing(spacing_mm, where)
    lo = _positive(min_mm, "min_mm", where)
    hi = _positive(max_mm, "max_mm", where)
    if lo > hi:
        raise CalcError(f"{where}: min_mm={lo} exceeds max_mm={hi}")
    if int(max_count) != max_count or max_count < 0:
        raise CalcError(f"{where}: max_count must be a non-negative integer, got {max_count!r}")
    for name, value in (("z_min", z_min), ("background_mm", background_mm)):
        _positive(value, name, where)
    for name, value in (("edge_mm", edge_mm), ("border_mm", border_mm)):
        if not (isinstance(value, int | float) and math.isfinite(value) and value >= 0):
            raise CalcError(f"{where}: {name} must be a finite number >= 0, got {value!r}")
    if mask is None:
        region = breast_mask(arr, spacing, edge_mm)
    else:
        region = np.asarray(mask, dtype=bool)
        if region.shape != arr.shape:
            raise CalcError(f"{where}: mask shape {region.shape} differs from the image shape {arr.shape}")
    region = region & _border_band(arr, spacing, border_mm)
    if max_count == 0 or not region.any():
        return []
    dy, dx = spacing
    sigmas = _scales_mm(lo, hi, spacing)
    # Work on the breast's bounding box plus a margin that covers the largest Gaussian's support.
    pad_r = int(math.ceil(4 * sigmas[-1] * _SQRT2 / dy)) + 2
    pad_c = int(math.ceil(4 * sigmas[-1] * _SQRT2 / dx)) + 2
    rows, cols = np.nonzero(region.any(axis=1))[0], np.nonzero(region.any(axis=0))[0]
    r0, r1 = max(int(rows[0]) - pad_r, 0), min(int(rows[-1]) + pad_r + 1, arr.shape[0])
    c0, c1 = max(int(cols[0]) - pad_c, 0), min(int(cols[-1]) + pad_c + 1, arr.shape[1])
    sub, sub_region = arr[r0:r1, c0:c1], region[r0:r1, c0:c1]
    mask_f = sub_region.astype(np.float32)
    win = (max(int(round(background_mm / dy)), 3), max(int(round(background_mm / dx)), 3))
    block = (max(int(round(1.0 / dy)), 1), max(int(round(1.0 / dx)), 1))
    best_z = np.full(sub.shape, -np.inf, dtype=np.float32)
    best_s = np.zeros(sub.shape, dtype=np.uint8)
    sample = np.flatnonzero(sub_region)
    if sample.size > 200_000:
        sample = sample[:: sample.size // 200_000]
    prev = ndimage.gaussian_filter(sub, (sigmas[0] / dy, sigmas[0] / dx), mode="nearest")
    for i, s in enumerate(sigmas):
        nxt = ndimage.gaussian_filter(sub, (s * _SQRT2 / dy, s * _SQRT2 / dx), mode="nearest")
        resp = prev - nxt  # bright specks of scale ~s give a positive difference of Gaussians
        prev = nxt
        values = resp.ravel()[sample]
        gmed = float(np.median(values))
        gstd = _robust_std(values)
        if gstd <= 0:
            continue
        resp -= gmed
        local = _local_rms(np.clip(resp, -4 * gstd, 4 * gstd), mask_f, win, block)
        z = resp / np.maximum(local, 0.25 * gstd)
        better = z > best_z
        best_z[better] = z[better]
        best_s[better] = i
    best_z[~sub_region] = -np.inf
    foot = (2 * max(int(round(lo / 2 / dy)), 1) + 1, 2 * max(int(round(lo / 2 / dx)), 1) + 1)
    peaks = (best_z >= z_min) & (best_z == ndimage.maximum_filter(best_z, size=foot, mode="constant"))
    pr, pc = np.nonzero(peaks)
    order = np.argsort(-best_z[pr, pc], kind="stable")
    pr, pc = pr + r0, pc + c0
    accepted: list[Candidate] = []
    tried = 0
    for k in order:
        if len(accepted) >= max_count or tried >= 20 * max_count + 100:
            break
        tried += 1
        r, c = int(pr[k]), int(pc[k])
        sigma = float(sigmas[best_s[r - r0, c - c0]])
        if _roundness(arr, r, c, sigma, spacing) < min_roundness:
            continue
        measured = _measure(arr, r, c, sigma, spacing, hi)
        if measured is None:
            continue
        cr, cc, diam, contrast = measured
        if diam > 1.25 * hi:
            continue
        clash = any(
            math.hypot((cr - a.row) * dy, (cc - a.col) * dx) < (diam + a.diameter_mm) / 2 for a in accepted
        )
        if clash:
            continue
        try:
            contrast_disc, noise = _disc_contrast(arr, cr, cc, diam, spacing, where)
        except CalcError:
            continue
        cnr = contrast_disc / max(noise, _noise_floor(contrast_disc))
        if cnr < min_cnr:
            continue
        accepted.append(
            Candidate(
                row=cr,
                col=cc,
                diameter_mm=diam,
                contrast=contrast,
                cnr=cnr,
                z=float(best_z[r - r0, c - c0]),
                sigma_mm=sigma,
            )
        )
    return accepted


# ----------------------------------------------------------------------------------------------- clusters


def cluster_candidates(
    candidates: Sequence[Candidate] | Sequence[tuple[float, float]],
    spacing_mm: tuple[float, float],
    *,
    min_count: int = 3,
    area_mm2: float = 100.0,
) -> list[Cluster]:
    """Group candidates into clusters: at least ``min_count`` specks within an area of ``area_mm2``.

    Density-based grouping (DBSCAN with the neighbourhood a disc of area ``area_mm2``, radius
    ``sqrt(area / pi)``: 5.64 mm for the clinical 1 cm^2): a speck with at least ``min_count`` specks
    (itself included) within that radius is a core; cores within the radius of each other join one cluster,
    and the other specks within the radius of a core join its cluster. Distances in mm from the spacing.

    Parameters
    ----------
    candidates : sequence of Candidate or (row, col)
        Speck centres in pixels.
    spacing_mm : (float, float)
        Pixel spacing (row, column), mm.
    min_count : int
        Smallest cluster (>= 1); 3 or 5 in the clinical literature.
    area_mm2 : float
        Area of the neighbourhood, mm^2 (100 mm^2 = 1 cm^2).

    Returns
    -------
    list of Cluster
        Largest first; members in increasing index order.
    """
    where = "cluster_candidates"
    dy, dx = _spacing(spacing_mm, where)
    area = _positive(area_mm2, "area_mm2", where)
    if int(min_count) != min_count or min_count < 1:
        raise CalcError(f"{where}: min_count must be a positive integer, got {min_count!r}")
    pts = []
    for i, cand in enumerate(candidates):
        if isinstance(cand, Candidate):
            pts.append((cand.row, cand.col))
            continue
        try:
            r, c = (float(v) for v in list(cand)[:2])
        except (TypeError, ValueError):
            raise CalcError(
                f"{where}: candidate {i} must be a Candidate or (row, col), got {cand!r}"
            ) from None
        pts.append((r, c))
    if not pts:
        return []
    mm = np.array(pts, dtype=np.float64) * np.array([dy, dx])
    radius = math.sqrt(area / math.pi)
    dist = np.sqrt(((mm[:, None, :] - mm[None, :, :]) ** 2).sum(-1))
    near = dist <= radius
    core = near.sum(axis=1) >= min_count
    label = np.full(len(pts), -1)
    n_clusters = 0
    for seed in np.flatnonzero(core):
        if label[seed] >= 0:
            continue
        label[seed] = n_clusters
        stack = [seed]
        while stack:
            i = stack.pop()
            for j in np.flatnonzero(near[i]):
                if label[j] < 0:
                    label[j] = n_clusters
                    if core[j]:
                        stack.append(j)
        n_clusters += 1
    clusters = []
    for k in range(n_clusters):
        idx = np.flatnonzero(label == k)
        if idx.size < min_count:
            continue
        centre = np.array(pts)[idx].mean(axis=0)
        span = float(dist[np.ix_(idx, idx)].max())
        clusters.append(
            Cluster(
                members=tuple(int(i) for i in idx), row=float(centre[0]), col=float(centre[1]), span_mm=span
            )
        )
    clusters.sort(key=lambda cl: (-cl.count, cl.members[0]))
    return clusters
