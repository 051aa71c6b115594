"""Validation shared by the perturbations, and the error they raise."""

from __future__ import annotations

import math
import numbers

import numpy as np

from core.errors import ExplorerError

KINDS = ("ideal", "gaussian")


class PerturbationError(ExplorerError):
    """A perturbation was given an unusable image or parameter; the message names both."""


def as_image(pixels: object, where: str) -> np.ndarray:
    """Return ``pixels`` as a 2-D float32 array (a view when it already is one), or raise.

    The result may share memory with the input: callers must never write into it.
    """
    if not isinstance(pixels, np.ndarray):
        try:
            pixels = np.asarray(pixels)
        except (TypeError, ValueError) as exc:
            raise PerturbationError(f"{where}: pixels are not an array ({exc})") from None
    if pixels.ndim != 2:
        raise PerturbationError(
            f"{where}: pixels must be a 2-D grey-level image, got an array of shape {pixels.shape}"
        )
    if pixels.shape[0] < 1 or pixels.shape[1] < 1:
        raise PerturbationError(f"{where}: pixels are empty (shape {pixels.shape})")
    if pixels.dtype == bool or not (
        np.issubdtype(pixels.dtype, np.integer) or np.issubdtype(pixels.dtype, np.floating)
    ):
        raise PerturbationError(f"{where}: pixels must hold real numbers, got dtype {pixels.dtype}")
    image = pixels.astype(np.float32, copy=False)
    if not np.isfinite(image).all():
        raise PerturbationError(f"{where}: pixels contain NaN or infinite values")
    return image


def as_spacing(spacing_mm: object, where: str) -> tuple[float, float]:
    """Return the pixel spacing as ``(row_mm, col_mm)`` floats, each finite and > 0, or raise."""
    try:
        values = tuple(spacing_mm)  # type: ignore[arg-type]
    except TypeError:
        raise PerturbationError(
            f"{where}: spacing_mm must be a pair (row_mm, col_mm), got {spacing_mm!r}"
        ) from None
    if len(values) != 2 or not all(_is_real(v) for v in values):
        raise PerturbationError(f"{where}: spacing_mm must be a pair (row_mm, col_mm), got {spacing_mm!r}")
    row, col = float(values[0]), float(values[1])
    if not (math.isfinite(row) and math.isfinite(col) and row > 0 and col > 0):
        raise PerturbationError(
            f"{where}: spacing_mm must be finite and > 0 mm along both axes, got ({row}, {col})"
        )
    return row, col


def as_radius(radius: object, where: str) -> float:
    """Return a cut-off frequency in cycles/mm: a number >= 0 (``inf`` allowed), or raise."""
    if not _is_real(radius):
        raise PerturbationError(f"{where}: radius must be a number in cycles/mm, got {radius!r}")
    value = float(radius)  # type: ignore[arg-type]
    if math.isnan(value) or value < 0:
        raise PerturbationError(f"{where}: radius must be >= 0 cycles/mm (or inf), got {value}")
    return value


def as_kind(kind: object, where: str) -> str:
    if kind not in KINDS:
        raise PerturbationError(f"{where}: kind must be one of {', '.join(KINDS)}; got {kind!r}")
    return str(kind)


def as_nonnegative(value: object, name: str, where: str) -> float:
    """Return a finite number >= 0, or raise."""
    if not _is_real(value) or not math.isfinite(float(value)) or float(value) < 0:  # type: ignore[arg-type]
        raise PerturbationError(f"{where}: {name} must be a finite number >= 0, got {value!r}")
    return float(value)  # type: ignore[arg-type]


def as_seed(seed: object, where: str) -> int:
    """Return a seed for ``np.random.default_rng``: an integer >= 0, or raise."""
    if isinstance(seed, bool) or not isinstance(seed, numbers.Integral) or int(seed) < 0:
        raise PerturbationError(f"{where}: seed must be an integer >= 0, got {seed!r}")
    return int(seed)


def as_count(value: object, name: str, where: str) -> int:
    """Return a positive integer (integral floats such as 8.0 accepted), or raise."""
    if isinstance(value, bool) or not _is_real(value):
        raise PerturbationError(f"{where}: {name} must be a positive integer, got {value!r}")
    number = float(value)  # type: ignore[arg-type]
    if not math.isfinite(number) or number != int(number) or number < 1:
        raise PerturbationError(f"{where}: {name} must be a positive integer, got {value!r}")
    return int(number)


def _is_real(value: object) -> bool:
    return isinstance(value, numbers.Real) and not isinstance(value, bool)
