"""Input checks shared by the library (``core.perturb``, ``core.spectrum``, ``core.calcs``...).

Each check takes ``where`` (the function the user called, which starts the message) and ``error``, the
caller's own :class:`~core.errors.ExplorerError` subclass (:mod:`core.errors`), and returns the value in
the form the caller computes with.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Sequence

import numpy as np

from core.errors import ExplorerError


def image_2d(
    pixels: object, where: str, error: type[ExplorerError] = ExplorerError, min_side: int = 1
) -> np.ndarray:
    """``pixels`` as a finite 2-D float32 array with both sides >= ``min_side``.

    A view of the input when it already is one (no copy): callers must never write into the result.
    Booleans and complex numbers are refused.
    """
    if not isinstance(pixels, np.ndarray):
        try:
            pixels = np.asarray(pixels)
        except (TypeError, ValueError) as exc:
            raise error(f"{where}: pixels are not an array ({exc})") from None
    if pixels.ndim != 2:
        raise error(f"{where}: pixels must be a 2-D grey-level image, got an array of shape {pixels.shape}")
    if pixels.size == 0:
        raise error(f"{where}: pixels are empty (shape {pixels.shape})")
    if min(pixels.shape) < min_side:
        raise error(f"{where}: the image is too small ({pixels.shape[0]}x{pixels.shape[1]} pixels)")
    if pixels.dtype == bool or not (
        np.issubdtype(pixels.dtype, np.integer) or np.issubdtype(pixels.dtype, np.floating)
    ):
        raise error(f"{where}: pixels must hold real numbers, got dtype {pixels.dtype}")
    image = pixels.astype(np.float32, copy=False)
    if not np.isfinite(image).all():
        raise error(f"{where}: pixels contain NaN or infinite values")
    return image


def spacing_pair(
    spacing_mm: object, where: str, error: type[ExplorerError] = ExplorerError
) -> tuple[float, float]:
    """The pixel spacing as ``(row_mm, col_mm)`` floats, both finite and > 0."""
    try:
        values = tuple(spacing_mm)  # type: ignore[arg-type]
    except TypeError:
        raise error(f"{where}: spacing_mm must be a pair (row_mm, col_mm), got {spacing_mm!r}") from None
    if len(values) != 2 or not all(_is_real(v) for v in values):
        raise error(f"{where}: spacing_mm must be a pair (row_mm, col_mm), got {spacing_mm!r}")
    row, col = float(values[0]), float(values[1])
    if not (math.isfinite(row) and math.isfinite(col) and row > 0 and col > 0):
        raise error(
            f"{where}: spacing_mm must be positive (> 0 mm) and finite along both axes, got ({row}, {col})"
        )
    return row, col


def frequency(value: object, where: str, error: type[ExplorerError] = ExplorerError) -> float:
    """A cut-off frequency (radius) in cycles/mm: a number >= 0, ``inf`` allowed."""
    if not _is_real(value):
        raise error(f"{where}: radius must be a number in cycles/mm, got {value!r}")
    number = float(value)  # type: ignore[arg-type]
    if math.isnan(number) or number < 0:
        raise error(f"{where}: radius must be >= 0 cycles/mm (or inf), got {number}")
    return number


def choice(value: object, choices: Sequence[str], name: str, where: str, error: type[ExplorerError]) -> str:
    """One of ``choices``."""
    if value not in choices:
        raise error(f"{where}: {name} must be one of {', '.join(choices)}; got {value!r}")
    return str(value)


def nonnegative(value: object, name: str, where: str, error: type[ExplorerError] = ExplorerError) -> float:
    """A finite number >= 0."""
    if not _is_real(value) or not math.isfinite(float(value)) or float(value) < 0:  # type: ignore[arg-type]
        raise error(f"{where}: {name} must be a finite number >= 0, got {value!r}")
    return float(value)  # type: ignore[arg-type]


def seed(value: object, where: str, error: type[ExplorerError] = ExplorerError) -> int:
    """A seed for ``np.random.default_rng``: an integer >= 0."""
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or int(value) < 0:
        raise error(f"{where}: seed must be an integer >= 0, got {value!r}")
    return int(value)


def count(value: object, name: str, where: str, error: type[ExplorerError] = ExplorerError) -> int:
    """A positive integer (integral floats such as 8.0 accepted)."""
    if isinstance(value, bool) or not _is_real(value):
        raise error(f"{where}: {name} must be a positive integer, got {value!r}")
    number = float(value)  # type: ignore[arg-type]
    if not math.isfinite(number) or number != int(number) or number < 1:
        raise error(f"{where}: {name} must be a positive integer, got {value!r}")
    return int(number)


def fft_workers(value: object, where: str, error: type[ExplorerError] = ExplorerError) -> int:
    """A ``scipy.fft`` thread count: -1 (all cores) or an integer >= 1."""
    if isinstance(value, bool) or not isinstance(value, int) or value == 0 or value < -1:
        raise error(f"{where}: workers must be -1 (all cores) or >= 1, got {value!r}")
    return value


def _is_real(value: object) -> bool:
    return isinstance(value, numbers.Real) and not isinstance(value, bool)
