"""Argument checks shared by the calcification modules.

Each raises :class:`~core.errors.CalcError` with a message that names the calling function (``where``) and
the argument.
"""

from __future__ import annotations

import math

import numpy as np

from core.errors import CalcError
from core.validate import image_2d, spacing_pair


def image_arg(pixels: object, where: str, min_side: int = 1) -> np.ndarray:
    """A 2-D image of at least ``min_side`` pixels per axis (see :func:`core.validate.image_2d`)."""
    return image_2d(pixels, where, CalcError, min_side)


def spacing_arg(spacing_mm: object, where: str) -> tuple[float, float]:
    """Pixel spacing ``(row, col)`` in mm, positive and finite."""
    return spacing_pair(spacing_mm, where, CalcError)


def center_arg(center_rc: object, where: str) -> tuple[float, float]:
    """A finite ``(row, col)`` position in pixels."""
    try:
        r, c = (float(v) for v in center_rc)  # type: ignore[union-attr]
    except (TypeError, ValueError):
        raise CalcError(f"{where}: center_rc must be (row, col) in pixels, got {center_rc!r}") from None
    if not (math.isfinite(r) and math.isfinite(c)):
        raise CalcError(f"{where}: center_rc must be finite, got {center_rc!r}")
    return r, c


def positive_arg(value: object, name: str, where: str) -> float:
    """``value`` as a positive finite float."""
    try:
        v = float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        raise CalcError(f"{where}: {name} must be a number, got {value!r}") from None
    if not (math.isfinite(v) and v > 0):
        raise CalcError(f"{where}: {name} must be a positive finite number, got {value!r}")
    return v
