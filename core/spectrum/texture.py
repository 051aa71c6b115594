"""Texture statistics of the breast: the radial power profile and its power law, Welch estimates over tiles
inside the breast (:func:`breast_mask`); see :mod:`core.spectrum`."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import scipy.fft as sfft
from scipy import ndimage

from core.errors import SpectrumError
from core.validate import image_2d, spacing_pair


@dataclass(frozen=True)
class PowerLawFit:
    """A power-law fit ``P(f) = 10**intercept * f**(-beta)`` to the breast's radial power spectrum.

    Attributes
    ----------
    beta : float
        Exponent (dimensionless; near 3 for FFDM breast texture, 2 for a sharp edge, 0 for white noise).
    intercept : float
        ``log10`` of the fitted power at 1 cycle/mm, (model units)^2 * mm^2.
    r2 : float
        Coefficient of determination of the log-log fit, 0..1.
    fmin, fmax : float
        The fitted band, cycles/mm.
    n_tiles : int
        Number of tiles averaged.
    tile_mm : float
        Tile side, mm.
    freq, power : np.ndarray
        The radial profile points that were fitted (cycles/mm, (model units)^2 * mm^2).
    """

    beta: float
    intercept: float
    r2: float
    fmin: float
    fmax: float
    n_tiles: int
    tile_mm: float
    freq: np.ndarray
    power: np.ndarray


# ----------------------------------------------------------------------------------------- breast texture


def breast_mask(pixels: np.ndarray, spacing_mm: tuple[float, float], margin_mm: float = 5.0) -> np.ndarray:
    """Boolean mask of the breast: largest connected region of pixels > 0, eroded by ``margin_mm``.

    The erosion removes every pixel within ``margin_mm`` (in mm, along rows and along columns: a rectangle in
    physical units) of the background; the image border does not erode (tissue reaching the chest-wall
    border stays in). Burned-in labels in the background are
    separate, smaller regions and are dropped.

    Parameters
    ----------
    pixels : np.ndarray
        2-D image, model units, background exactly 0.
    spacing_mm : (float, float)
        Pixel spacing (row, column), mm.
    margin_mm : float
        Erosion distance from the skin line, mm (>= 0).
    """
    arr = image_2d(pixels, "breast_mask", SpectrumError, 1)
    dy, dx = spacing_pair(spacing_mm, "breast_mask", SpectrumError)
    fg = arr > 0
    labels, n = ndimage.label(fg)
    if n == 0:
        return fg
    if n > 1:
        sizes = np.bincount(labels.ravel())
        sizes[0] = 0
        fg = labels == int(np.argmax(sizes))
    if margin_mm > 0 and not fg.all():
        # A rectangle of +-margin_mm along each axis: separable, so fast on full-field images; "nearest"
        # extension keeps tissue that reaches the image border.
        size = (2 * int(np.ceil(margin_mm / dy)) + 1, 2 * int(np.ceil(margin_mm / dx)) + 1)
        fg = ndimage.minimum_filter(fg.view(np.uint8), size=size, mode="nearest").astype(bool)
    return fg


class _TileFinder:
    """Finds square-in-mm tiles wholly inside a mask, using one summed-area table for every tile size."""

    def __init__(self, mask: np.ndarray):
        self.shape = mask.shape
        sat = np.zeros((mask.shape[0] + 1, mask.shape[1] + 1), dtype=np.int32)
        np.cumsum(mask, axis=0, dtype=np.int32, out=sat[1:, 1:])
        np.cumsum(sat[1:, 1:], axis=1, out=sat[1:, 1:])
        self.sat = sat

    def corners(self, th: int, tw: int) -> list[tuple[int, int]]:
        """Top-left corners of ``th x tw`` tiles on a half-tile grid that lie wholly inside the mask."""
        h, w = self.shape
        if th > h or tw > w or th < 1 or tw < 1:
            return []
        rows = np.arange(0, h - th + 1, max(th // 2, 1))
        cols = np.arange(0, w - tw + 1, max(tw // 2, 1))
        s = self.sat
        total = (
            s[rows[:, None] + th, cols[None, :] + tw]
            - s[rows[:, None], cols[None, :] + tw]
            - s[rows[:, None] + th, cols[None, :]]
            + s[rows[:, None], cols[None, :]]
        )
        rr, cc = np.nonzero(total == th * tw)
        return [(int(rows[i]), int(cols[j])) for i, j in zip(rr, cc, strict=True)]


def _detrended_window(tile: np.ndarray, window: np.ndarray) -> np.ndarray:
    """Remove the least-squares plane from a tile and apply the window."""
    th, tw = tile.shape
    yy = np.linspace(-1, 1, th)[:, None]
    xx = np.linspace(-1, 1, tw)[None, :]
    t = tile - tile.mean()
    # The centred coordinate grids are orthogonal to each other and to the constant.
    t = t - yy * (t * yy).sum() / (yy**2).sum() / tw - xx * (t * xx).sum() / (xx**2).sum() / th
    return t * window


def _welch_psd(
    arr: np.ndarray,
    spacing: tuple[float, float],
    finder: _TileFinder,
    tile_mm: float,
    where: str,
    max_tiles: int = 64,
) -> tuple[np.ndarray, int, int, int]:
    """Average windowed periodogram of the tiles inside ``mask``; returns (psd rfft layout, th, tw, n)."""
    dy, dx = spacing
    th = int(round(tile_mm / dy))
    tw = int(round(tile_mm / dx))
    if min(th, tw) < 16:
        raise SpectrumError(f"{where}: tile_mm={tile_mm} gives tiles under 16 pixels; use a larger tile")
    corners = finder.corners(th, tw)
    if not corners:
        raise SpectrumError(
            f"{where}: no {tile_mm:g} mm square tile fits inside the breast region "
            f"({int(finder.sat[-1, -1])} pixels of {arr.size}); pass a smaller tile_mm or an explicit mask"
        )
    if len(corners) > max_tiles:
        # An even spread over the breast: every k-th tile in raster order.
        idx = np.linspace(0, len(corners) - 1, max_tiles).round().astype(int)
        corners = [corners[i] for i in idx]
    window = (np.hanning(th + 2)[1:-1, None] * np.hanning(tw + 2)[None, 1:-1]).astype(np.float64)
    acc = np.zeros((th, tw // 2 + 1))
    for r, c in corners:
        t = _detrended_window(arr[r : r + th, c : c + tw].astype(np.float64), window)
        f = sfft.rfft2(t)
        acc += f.real**2 + f.imag**2
    psd = acc / len(corners) * (dy * dx) / float((window**2).sum())
    return psd, th, tw, len(corners)


def _auto_tile_mm(finder: _TileFinder, spacing: tuple[float, float], preferred: float) -> float:
    """Largest tile side (mm) up to ``preferred`` for which at least one tile fits in the mask."""
    dy, dx = spacing
    side = preferred
    while side >= 16 * max(dy, dx):
        if finder.corners(int(round(side / dy)), int(round(side / dx))):
            return side
        side *= 0.9
    return side


def _radial_bins(
    psd: np.ndarray, th: int, tw: int, spacing: tuple[float, float], edges: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Mean PSD within frequency rings (cycles/mm); returns (mean log-centre frequency, mean power)."""
    dy, dx = spacing
    fr = np.fft.fftfreq(th, d=dy)[:, None]
    fc = np.fft.rfftfreq(tw, d=dx)[None, :]
    f = np.sqrt(fr**2 + fc**2)
    # Columns 1..n/2-1 of the rfft layout stand for two DFT samples (c and -c); weight them accordingly.
    weight = np.full(f.shape, 2.0)
    weight[:, 0] = 1.0
    if tw % 2 == 0:
        weight[:, -1] = 1.0
    idx = np.digitize(f.ravel(), edges) - 1
    nb = len(edges) - 1
    ok = (idx >= 0) & (idx < nb) & (f.ravel() > 0)
    wv = weight.ravel()[ok]
    n = np.bincount(idx[ok], weights=wv, minlength=nb)
    p = np.bincount(idx[ok], weights=wv * psd.ravel()[ok], minlength=nb)
    lf = np.bincount(idx[ok], weights=wv * np.log(f.ravel()[ok]), minlength=nb)
    keep = n > 0
    return np.exp(lf[keep] / n[keep]), p[keep] / n[keep]


def _prepare_region(pixels, spacing_mm, mask, margin_mm, tile_mm, where):
    arr = image_2d(pixels, where, SpectrumError, 16)
    spacing = spacing_pair(spacing_mm, where, SpectrumError)
    if mask is None:
        mask = breast_mask(arr, spacing, margin_mm)
    else:
        mask = np.asarray(mask, dtype=bool)
        if mask.shape != arr.shape:
            raise SpectrumError(f"{where}: mask shape {mask.shape} differs from the image shape {arr.shape}")
    if not mask.any():
        raise SpectrumError(
            f"{where}: the breast region is empty (no pixel > 0 after a {margin_mm} mm margin)"
        )
    finder = _TileFinder(mask)
    if tile_mm is None:
        tile_mm = _auto_tile_mm(finder, spacing, 25.6)
    elif not (np.isfinite(tile_mm) and tile_mm > 0):
        raise SpectrumError(f"{where}: tile_mm must be a positive number, got {tile_mm!r}")
    return arr, spacing, finder, float(tile_mm)


def radial_profile(
    pixels: np.ndarray,
    spacing_mm: tuple[float, float],
    n_bins: int = 64,
    *,
    mask: np.ndarray | None = None,
    margin_mm: float = 5.0,
    tile_mm: float | None = None,
    fmin: float | None = None,
    fmax: float | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Radially averaged power spectral density of the breast texture (see the module docstring).

    Parameters
    ----------
    pixels : np.ndarray
        2-D image, model units, background 0 (an image with no zero pixels is all breast).
    spacing_mm : (float, float)
        Pixel spacing (row, column), mm.
    n_bins : int
        Number of log-spaced frequency rings between ``fmin`` and ``fmax`` (>= 2). Rings that hold no DFT
        sample (possible at the lowest frequencies) are left out, so fewer points may come back.
    mask : np.ndarray of bool, optional
        Region to analyse instead of the automatic breast mask.
    margin_mm : float
        Distance kept from the skin line when the mask is automatic, mm.
    tile_mm : float, optional
        Side of the square tiles, mm. Default: 25.6 mm, or the largest side that fits in the region.
    fmin, fmax : float, optional
        Frequency range of the rings, cycles/mm. Default: one DFT step of the tile (``1 / tile_mm``) up to
        the smaller Nyquist frequency of the two axes (full rings only).

    Returns
    -------
    freq : np.ndarray
        Ring centres (mean of ``log f`` over each ring's samples, exponentiated), cycles/mm, increasing.
    power : np.ndarray
        Mean power spectral density in each ring, (model units)^2 * mm^2.
    """
    where = "radial_profile"
    if int(n_bins) != n_bins or n_bins < 2:
        raise SpectrumError(f"{where}: n_bins must be an integer >= 2, got {n_bins!r}")
    arr, spacing, finder, tile_mm = _prepare_region(pixels, spacing_mm, mask, margin_mm, tile_mm, where)
    psd, th, tw, _ = _welch_psd(arr, spacing, finder, tile_mm, where)
    lo = 1.0 / tile_mm if fmin is None else float(fmin)
    hi = 0.5 / max(spacing) if fmax is None else float(fmax)
    if not (0 < lo < hi):
        raise SpectrumError(f"{where}: need 0 < fmin < fmax, got fmin={lo!r}, fmax={hi!r}")
    edges = np.geomspace(lo, hi, int(n_bins) + 1)
    return _radial_bins(psd, th, tw, spacing, edges)


def fit_power_law(
    pixels: np.ndarray,
    spacing_mm: tuple[float, float],
    fmin: float = 0.1,
    fmax: float = 1.0,
    *,
    n_bins: int = 16,
    mask: np.ndarray | None = None,
    margin_mm: float = 5.0,
    tile_mm: float | None = None,
) -> PowerLawFit:
    """Fit ``P(f) ~ f**(-beta)`` to the breast's radial power spectrum over ``fmin..fmax`` cycles/mm.

    The profile is computed as in :func:`radial_profile` with ``n_bins`` log-spaced rings over the band, so
    every octave weighs alike in the least-squares fit of ``log10 P`` against ``log10 f``.

    Raises
    ------
    SpectrumError
        Bad image or spacing, an empty breast region, a band outside ``0 < fmin < fmax <= Nyquist``, a band
        narrower than the tile's frequency step, or fewer than 3 rings with data.
    """
    where = "power_law_beta"
    arr, spacing, finder, tile_mm = _prepare_region(pixels, spacing_mm, mask, margin_mm, tile_mm, where)
    nyq = 0.5 / max(spacing)
    if not (0 < fmin < fmax <= nyq * (1 + 1e-9)):
        raise SpectrumError(
            f"{where}: need 0 < fmin < fmax <= {nyq:g} cycles/mm (Nyquist), got fmin={fmin!r}, fmax={fmax!r}"
        )
    if fmin < 1.0 / tile_mm:
        raise SpectrumError(
            f"{where}: fmin={fmin:g} cycles/mm is below the frequency step of the {tile_mm:.3g} mm tiles "
            f"({1 / tile_mm:.3g} cycles/mm): the breast region is too small for this band"
        )
    psd, th, tw, n = _welch_psd(arr, spacing, finder, tile_mm, where)
    freq, power = _radial_bins(psd, th, tw, spacing, np.geomspace(fmin, fmax, int(n_bins) + 1))
    good = power > 0
    freq, power = freq[good], power[good]
    if freq.size < 3:
        raise SpectrumError(
            f"{where}: fewer than 3 frequency rings with data in {fmin:g}..{fmax:g} cycles/mm"
        )
    lx, ly = np.log10(freq), np.log10(power)
    slope, intercept = np.polyfit(lx, ly, 1)
    resid = ly - (slope * lx + intercept)
    ss = float(((ly - ly.mean()) ** 2).sum())
    r2 = 1.0 - float((resid**2).sum()) / ss if ss > 0 else 0.0
    return PowerLawFit(
        beta=float(-slope),
        intercept=float(intercept),
        r2=r2,
        fmin=float(fmin),
        fmax=float(fmax),
        n_tiles=n,
        tile_mm=tile_mm,
        freq=freq,
        power=power,
    )


def power_law_beta(
    pixels: np.ndarray,
    spacing_mm: tuple[float, float],
    fmin: float = 0.1,
    fmax: float = 1.0,
    **kwargs,
) -> float:
    """Power-law exponent beta of the breast texture (``P(f) ~ f**(-beta)``), fitted over ``fmin..fmax``.

    Frequencies in cycles/mm. Keyword arguments go to :func:`fit_power_law` (``mask``, ``margin_mm``,
    ``tile_mm``, ``n_bins``). FFDM mammograms give beta near 3 (about 2.5..3.5) on the breast.
    """
    return fit_power_law(pixels, spacing_mm, fmin, fmax, **kwargs).beta
