"""Native-resolution patches around specks: their size in pixels from a size in mm, and the cut itself."""

from __future__ import annotations

import numpy as np

from core.calcs.checks import center_arg, image_arg, positive_arg, spacing_arg
from core.errors import CalcError


def patch_shape(size_mm: float | tuple[float, float], spacing_mm: tuple[float, float]) -> tuple[int, int]:
    """Pixels per axis of a patch ``size_mm`` across: the odd integer nearest ``size / spacing`` (>= 1).

    ``size_mm`` is one side (a square in mm) or ``(height_mm, width_mm)``. Odd sizes put the centre pixel
    exactly in the middle.
    """
    where = "patch_shape"
    dy, dx = spacing_arg(spacing_mm, where)
    if np.ndim(size_mm) == 0:
        sh = sw = positive_arg(size_mm, "size_mm", where)
    else:
        try:
            sh, sw = (positive_arg(v, "size_mm", where) for v in size_mm)  # type: ignore[union-attr]
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
    arr = image_arg(pixels, where)
    r, c = center_arg(center_rc, where)
    ph, pw = patch_shape(size_mm, spacing_mm)
    return cut(arr, int(round(r)), int(round(c)), ph, pw)


def cut(arr: np.ndarray, r: int, c: int, ph: int, pw: int) -> np.ndarray:
    """The ``ph`` x ``pw`` float32 patch of ``arr`` whose middle pixel is ``(r, c)``; 0 outside ``arr``."""
    out = np.zeros((ph, pw), dtype=np.float32)
    r0, c0 = r - ph // 2, c - pw // 2
    h, w = arr.shape
    sr0, sr1 = max(r0, 0), min(r0 + ph, h)
    sc0, sc1 = max(c0, 0), min(c0 + pw, w)
    if sr0 < sr1 and sc0 < sc1:
        out[sr0 - r0 : sr1 - r0, sc0 - c0 : sc1 - c0] = arr[sr0:sr1, sc0:sc1]
    return out
