"""Input checks shared by the analysis modules (``core.spectrum``, ``core.calcs``).

Each check raises the caller's own :class:`~core.errors.ExplorerError` subclass, with a message that starts
with ``where`` (the function the user called).
"""

from __future__ import annotations

import math

import numpy as np

from core.errors import ExplorerError


def image_2d(pixels: object, where: str, error: type[ExplorerError], min_side: int = 1) -> np.ndarray:
    """``pixels`` as a finite 2-D float32 array with both sides >= ``min_side`` (a view when possible)."""
    arr = np.asarray(pixels)
    if arr.ndim != 2:
        raise error(f"{where}: the image must be 2-D, got shape {arr.shape}")
    if min(arr.shape) < min_side:
        raise error(f"{where}: the image is too small ({arr.shape[0]}x{arr.shape[1]} pixels)")
    if not np.issubdtype(arr.dtype, np.number) or np.iscomplexobj(arr):
        raise error(f"{where}: the image must hold real numbers, got dtype {arr.dtype}")
    arr = arr.astype(np.float32, copy=False)
    if not np.all(np.isfinite(arr)):
        raise error(f"{where}: the image contains NaN or infinite values")
    return arr


def spacing_pair(spacing_mm: object, where: str, error: type[ExplorerError]) -> tuple[float, float]:
    """The pixel spacing as ``(row_mm, col_mm)``, both finite and > 0."""
    try:
        dy, dx = (float(v) for v in spacing_mm)  # type: ignore[union-attr]
    except (TypeError, ValueError):
        raise error(f"{where}: spacing_mm must be (row_mm, col_mm), got {spacing_mm!r}") from None
    if not (math.isfinite(dy) and math.isfinite(dx) and dy > 0 and dx > 0):
        raise error(f"{where}: spacing_mm must be two positive finite numbers, got {spacing_mm!r}")
    return dy, dx
