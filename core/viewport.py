"""Zoomable views of full-resolution images: cut the visible window, reduce it to the screen by area
statistics.

A view shows rows ``top..bottom`` and columns ``left..right`` of an image (pixel edges, floats; row 0 is the
top edge of the first row) on a panel of ``screen_h x screen_w`` device pixels. The panel needs at most one
value per screen pixel, so :func:`render_tile` cuts the whole pixels that cover the view and reduces them
only where they outnumber the screen pixels. Each tile pixel is then a statistic of the *full-resolution*
image over its footprint, a rectangle of possibly fractional image pixels (exact overlap weights, applied
separably along rows and columns):

- the original and the perturbed image: the area mean;
- their difference: the area mean (signed) and the RMS ``sqrt(mean(d**2))``. The RMS never hides a change
  finer than a screen pixel: the band a low-pass at R = 2 cycles/mm removes (2-5 cycles/mm on 0.1 mm
  pixels) averages out of every footprint of 0.43 mm, but its energy does not; additive noise of standard
  deviation ``s`` has an RMS of ``s`` over any footprint, while its mean falls as ``s / sqrt(n)`` for ``n``
  pixels per footprint.

Where the view holds no more pixels than the screen, the tile is the native pixels themselves (the browser
enlarges them as squares), so at enough zoom one screen pixel shows one image pixel. A tile pixel of
``p`` mm can show frequencies up to ``1 / (2 p)`` cycles/mm (:attr:`ViewTile.max_frequency_mm`).

:func:`pack_values` turns a tile into compact bytes for a browser (16-bit codes, zlib) with the affine map
back to model units.
"""

from __future__ import annotations

import functools
import math
import zlib
from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp

from core.display import DisplayError

__all__ = [
    "Viewport",
    "ViewTile",
    "PackedValues",
    "area_mean",
    "area_weights",
    "tile_shape",
    "tile_geometry",
    "difference_statistics",
    "render_tile",
    "pack_values",
    "MIN_VIEW_PX",
]

MIN_VIEW_PX = 8.0
"""Smallest view side in image pixels (the deepest zoom)."""


@dataclass(frozen=True)
class Viewport:
    """The visible rectangle of an image, in pixel coordinates (edges, floats): rows ``top..bottom``,
    columns ``left..right``. ``Viewport.full(shape)`` is the whole image."""

    top: float
    left: float
    bottom: float
    right: float

    @classmethod
    def full(cls, shape: tuple[int, int]) -> Viewport:
        """The whole image of ``shape`` (rows, cols)."""
        return cls(0.0, 0.0, float(shape[0]), float(shape[1]))

    @classmethod
    def parse(cls, value: object, shape: tuple[int, int]) -> Viewport:
        """A viewport from a mapping with ``top, left, bottom, right`` (as a browser sends it), clamped to
        the image; None or anything malformed gives the full image."""
        if isinstance(value, Viewport):
            return value.clamped(shape)
        try:
            got = cls(*(float(value[k]) for k in ("top", "left", "bottom", "right")))  # type: ignore[index]
        except (TypeError, KeyError, ValueError):
            return cls.full(shape)
        if not all(math.isfinite(v) for v in (got.top, got.left, got.bottom, got.right)):
            return cls.full(shape)
        return got.clamped(shape)

    @property
    def height(self) -> float:
        """Rows covered (image pixels)."""
        return self.bottom - self.top

    @property
    def width(self) -> float:
        """Columns covered (image pixels)."""
        return self.right - self.left

    def to_dict(self) -> dict[str, float]:
        """``{"top", "left", "bottom", "right"}`` as plain floats (JSON)."""
        return {"top": self.top, "left": self.left, "bottom": self.bottom, "right": self.right}

    def is_full(self, shape: tuple[int, int], tol: float = 1e-6) -> bool:
        """True when the view covers the whole image."""
        return self.height >= shape[0] - tol and self.width >= shape[1] - tol

    def clamped(self, shape: tuple[int, int]) -> Viewport:
        """The same view moved (not resized) to lie inside the image; an axis larger than the image, or
        smaller than :data:`MIN_VIEW_PX`, becomes the whole axis or that minimum around its centre."""
        h, w = float(shape[0]), float(shape[1])

        def axis(a: float, b: float, n: float) -> tuple[float, float]:
            size = b - a
            if not size < n:
                return 0.0, n
            size = max(size, min(MIN_VIEW_PX, n))
            centre = (a + b) / 2
            lo = min(max(centre - size / 2, 0.0), n - size)
            return lo, lo + size

        top, bottom = axis(self.top, self.bottom, h)
        left, right = axis(self.left, self.right, w)
        return Viewport(top, left, bottom, right)

    def bounds(self, shape: tuple[int, int]) -> tuple[int, int, int, int]:
        """Whole pixels covering the view: ``(r0, r1, c0, c1)``, rows ``r0..r1-1``, inside the image."""
        v = self.clamped(shape)
        r0, c0 = max(int(math.floor(v.top + 1e-9)), 0), max(int(math.floor(v.left + 1e-9)), 0)
        r1 = min(int(math.ceil(v.bottom - 1e-9)), int(shape[0]))
        c1 = min(int(math.ceil(v.right - 1e-9)), int(shape[1]))
        return r0, max(r1, r0 + 1), c0, max(c1, c0 + 1)

    @classmethod
    def native(
        cls, shape: tuple[int, int], centre_rc: tuple[float, float], screen_hw: tuple[int, int]
    ) -> Viewport:
        """The view that shows one image pixel per screen pixel around ``centre_rc`` (pixels) on a panel of
        ``screen_hw`` pixels (clamped to the image)."""
        hh, hw = screen_hw[0] / 2, screen_hw[1] / 2
        r, c = centre_rc
        return cls(r - hh, c - hw, r + hh, c + hw).clamped(shape)


def tile_shape(
    view: Viewport, bounds: tuple[int, int, int, int], screen_hw: tuple[int, int]
) -> tuple[int, int]:
    """Tile size for the whole pixels ``bounds`` of ``view`` on a ``screen_hw`` panel: as many pixels as the
    bounds cover on screen, but never more than the bounds hold (no resampling up)."""
    r0, r1, c0, c1 = bounds
    if screen_hw[0] < 1 or screen_hw[1] < 1:
        raise DisplayError(f"tile_shape: the screen size must be positive, got {screen_hw}")
    on_screen_r = screen_hw[0] * (r1 - r0) / max(view.height, 1e-9)
    on_screen_c = screen_hw[1] * (c1 - c0) / max(view.width, 1e-9)
    return (
        max(1, min(r1 - r0, int(math.ceil(on_screen_r - 1e-6)))),
        max(1, min(c1 - c0, int(math.ceil(on_screen_c - 1e-6)))),
    )


def tile_geometry(
    view: Viewport, shape: tuple[int, int], screen_hw: tuple[int, int]
) -> tuple[tuple[int, int, int, int], tuple[int, int]]:
    """``(bounds, tile_shape)`` of ``view`` (clamped) of an image of ``shape`` on a ``screen_hw`` panel."""
    v = view.clamped(shape)
    bounds = v.bounds(shape)
    return bounds, tile_shape(v, bounds, screen_hw)


@functools.lru_cache(maxsize=32)
def area_weights(n: int, m: int) -> sp.csr_matrix:
    """Sparse ``(m, n)`` matrix of box-filter weights that reduces ``n`` samples to ``m`` (``m <= n``).

    Output sample ``i`` covers the interval ``[i s, (i + 1) s)`` of the input with ``s = n / m``; its weight
    on input sample ``j`` (the interval ``[j, j + 1)``) is the overlap length divided by ``s``, so each row
    sums to 1 and the result is the exact mean over the footprint (fractional pixels at both ends).
    """
    if not (isinstance(n, int) and isinstance(m, int) and 1 <= m <= n):
        raise DisplayError(f"area_weights: need integers 1 <= m <= n, got n={n!r}, m={m!r}")
    s = n / m
    starts = np.arange(m, dtype=np.float64) * s
    ends = starts + s
    j0 = np.floor(starts).astype(np.int64)
    js = j0[:, None] + np.arange(int(math.ceil(s)) + 1)[None, :]
    overlap = np.minimum(ends[:, None], js + 1.0) - np.maximum(starts[:, None], js)
    keep = (overlap > 1e-12) & (js < n)
    rows = np.broadcast_to(np.arange(m)[:, None], js.shape)[keep]
    weights = (overlap[keep] / s).astype(np.float32)
    return sp.csr_matrix((weights, (rows, js[keep])), shape=(m, n))


def area_mean(values: np.ndarray, out_shape: tuple[int, int]) -> np.ndarray:
    """Reduce a 2-D array to ``out_shape`` (no larger than it) by the exact area mean over each footprint.

    Separable: :func:`area_weights` along rows, then along columns (sparse products; about 7 ms for a
    3328 x 2560 image to 768 x 591 on two cores). An axis that keeps its length is left as it is (the
    result is always a new array).

    Returns a float32 array of ``out_shape``.
    """
    arr = np.asarray(values)
    if arr.ndim != 2 or arr.size == 0:
        raise DisplayError(f"area_mean: expected a non-empty 2-D array, got shape {arr.shape}")
    m, k = (int(v) for v in out_shape)
    n, w = arr.shape
    if not (1 <= m <= n and 1 <= k <= w):
        raise DisplayError(f"area_mean: cannot reduce {arr.shape} to {out_shape} (only reductions)")
    if (m, k) == (n, w):
        return np.array(arr, dtype=np.float32, copy=True)
    out = arr.astype(np.float32, copy=False)
    if m < n:
        out = np.asarray(area_weights(n, m) @ out)
    if k < w:
        out = np.asarray(area_weights(w, k) @ out.T).T
    return np.ascontiguousarray(out, dtype=np.float32)


@dataclass(frozen=True)
class ViewTile:
    """A view of an image and its perturbation, reduced to the screen (all arrays float32, model units).

    Attributes
    ----------
    bounds : (int, int, int, int)
        Whole image pixels covered, ``(r0, r1, c0, c1)``.
    original, perturbed : np.ndarray
        Area means over each tile pixel's footprint.
    diff_mean : np.ndarray
        Area mean of ``perturbed - original`` (signed; equals ``perturbed - original`` of this tile).
    diff_rms : np.ndarray
        Root mean square of ``perturbed - original`` over each footprint (>= ``|diff_mean|``).
    footprint_px : (float, float)
        Image pixels per tile pixel along rows and columns (1 for native pixels).
    pixel_mm : (float, float)
        Size of a tile pixel, mm.
    """

    bounds: tuple[int, int, int, int]
    original: np.ndarray
    perturbed: np.ndarray
    diff_mean: np.ndarray
    diff_rms: np.ndarray
    footprint_px: tuple[float, float]
    pixel_mm: tuple[float, float]

    @property
    def shape(self) -> tuple[int, int]:
        """Tile size in pixels."""
        return self.original.shape  # type: ignore[return-value]

    @property
    def native(self) -> bool:
        """True when every tile pixel is one image pixel."""
        return self.footprint_px == (1.0, 1.0)

    @property
    def max_frequency_mm(self) -> float:
        """Highest frequency the tile can show along its coarser axis, ``1 / (2 max(pixel_mm))`` cycles/mm."""
        return 0.5 / max(self.pixel_mm)


def difference_statistics(
    difference: np.ndarray, out_shape: tuple[int, int]
) -> tuple[np.ndarray, np.ndarray]:
    """Area mean and RMS of a difference window over each footprint of ``out_shape`` (float32 each; the
    RMS is never below ``|mean|``)."""
    d = np.asarray(difference)
    diff_mean = area_mean(d, out_shape)
    diff_rms = np.sqrt(np.maximum(area_mean(np.square(d, dtype=np.float32), out_shape), 0.0))
    # Rounding may leave the RMS a hair below |mean|; the RMS is never smaller.
    np.maximum(diff_rms, np.abs(diff_mean), out=diff_rms)
    return diff_mean, diff_rms


def render_tile(
    original: np.ndarray,
    perturbed: np.ndarray,
    view: Viewport,
    screen_hw: tuple[int, int],
    spacing_mm: tuple[float, float],
    *,
    difference: np.ndarray | None = None,
    original_tile: np.ndarray | None = None,
    difference_tile: tuple[np.ndarray, np.ndarray] | None = None,
) -> ViewTile:
    """Cut the view from full-resolution images and reduce it to the screen (see the module docstring).

    Parameters
    ----------
    original, perturbed : np.ndarray
        Full-resolution images of one shape, model units.
    view : Viewport
        What is visible (clamped to the image here).
    screen_hw : (int, int)
        Panel size in device pixels (rows, columns) on which the view is drawn.
    spacing_mm : (float, float)
        Pixel spacing (row, column), mm.
    difference : np.ndarray, optional
        ``perturbed - original`` at full resolution, when the caller keeps it (saves one subtraction).
    original_tile : np.ndarray, optional
        The area mean of ``original`` for the same view and screen (a cached earlier result).
    difference_tile : (np.ndarray, np.ndarray), optional
        :func:`difference_statistics` of the difference for the same view and screen (computed ahead).

    Returns
    -------
    ViewTile
    """
    a = np.asarray(original)
    b = np.asarray(perturbed)
    if a.ndim != 2 or a.shape != b.shape:
        raise DisplayError(f"render_tile: images differ in shape or are not 2-D: {a.shape} vs {b.shape}")
    (r0, r1, c0, c1), out = tile_geometry(view, a.shape, screen_hw)
    if difference_tile is not None and difference_tile[0].shape == out:
        diff_mean, diff_rms = difference_tile
    else:
        if difference is not None:
            d = np.asarray(difference)[r0:r1, c0:c1]
        else:
            d = b[r0:r1, c0:c1].astype(np.float32) - a[r0:r1, c0:c1].astype(np.float32)
        diff_mean, diff_rms = difference_statistics(d, out)
    if original_tile is None or original_tile.shape != out:
        original_tile = area_mean(a[r0:r1, c0:c1], out)
    foot = ((r1 - r0) / out[0], (c1 - c0) / out[1])
    return ViewTile(
        bounds=(r0, r1, c0, c1),
        original=original_tile,
        perturbed=original_tile + diff_mean,
        diff_mean=diff_mean,
        diff_rms=diff_rms,
        footprint_px=foot,
        pixel_mm=(float(spacing_mm[0]) * foot[0], float(spacing_mm[1]) * foot[1]),
    )


@dataclass(frozen=True)
class PackedValues:
    """An array as 16-bit codes: ``value = lo + code * step``; ``data`` is zlib-compressed little-endian
    uint16, row-major, ``shape`` (rows, cols)."""

    shape: tuple[int, int]
    lo: float
    step: float
    data: bytes

    def decode(self) -> np.ndarray:
        """The values back as float32 (within ``step / 2`` of what was packed)."""
        codes = np.frombuffer(zlib.decompress(self.data), dtype="<u2").reshape(self.shape)
        return (np.float32(self.lo) + codes.astype(np.float32) * np.float32(self.step)).astype(np.float32)


def pack_values(values: np.ndarray, resolution: float = 0.0) -> PackedValues:
    """Quantise an array to 16-bit codes from its minimum in steps of at least ``resolution`` and compress it.

    The step is ``max(resolution, (max - min) / 65535)`` (1 for a constant array), so nothing is clipped
    and every value comes back within half a step. A coarser ``resolution`` (e.g. 0.25 model units for a
    display) compresses textured images much better than the finest step. zlib level 1: a few ms for
    768 x 591 values.
    """
    arr = np.asarray(values, dtype=np.float32)
    if arr.ndim != 2 or arr.size == 0:
        raise DisplayError(f"pack_values: expected a non-empty 2-D array, got shape {arr.shape}")
    lo, hi = float(np.min(arr)), float(np.max(arr))
    if not (math.isfinite(lo) and math.isfinite(hi)) or not (math.isfinite(resolution) and resolution >= 0):
        raise DisplayError("pack_values: the values and the resolution must be finite (resolution >= 0)")
    step = max(float(resolution), (hi - lo) / 65535.0) if hi > lo else 1.0
    codes = np.rint((arr - np.float32(lo)) * np.float32(1.0 / step))
    np.clip(codes, 0, 65535, out=codes)
    data = zlib.compress(codes.astype("<u2").tobytes(), 1)
    return PackedValues(shape=(int(arr.shape[0]), int(arr.shape[1])), lo=lo, step=step, data=data)
