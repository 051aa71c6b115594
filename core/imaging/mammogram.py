"""The ``Mammogram`` record, its error type and the one rule that maps stored values to model units."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from core.errors import MammogramError

DEFAULT_SPACING_MM = 0.1
"""Pixel spacing (mm, both axes) assumed when neither the file nor the caller gives one."""

MODEL_MAX = 4095.0
"""Top of the model scale: pixel values are handled on 0..4095 (12 bits), the scale of the study's noise."""

_BLOCK = 1 << 19  # values converted per step by to_model_units (4 MB of float64)


def to_model_units(values: np.ndarray, bits_stored: int) -> np.ndarray:
    """Map stored pixel values to model units: the one rule every loader uses.

    A value ``v`` stored on a scale of ``b`` bits (``0 .. 2**b - 1``) becomes ``v * 4095 / (2**b - 1)``,
    so the full stored range maps onto the full model range 0..4095:

    - 12-bit data (``b = 12``) are unchanged;
    - full-range 16-bit data (``b = 16``, e.g. the NYU DMV PNGs, which hold 12-bit data rescaled by
      65535 / 4095) are divided by 65535 / 4095 (about 16.004), which recovers the 12-bit values to within
      0.03;
    - 8-bit data (``b = 8``) are multiplied by 4095 / 255 (about 16.06).

    Which ``b`` applies is decided by the loader: DICOM uses BitsStored (after the modality rescale);
    PNG and TIFF use 12 when the image maximum is <= 4095, 16 for other 16-bit data and 8 for 8-bit data.
    Results outside 0..4095 (values outside the stated scale) are clipped.

    Parameters
    ----------
    values : array_like
        Stored values (any real dtype), expected in ``0 .. 2**bits_stored - 1``.
    bits_stored : int
        Bit depth of the stored scale, 1..16.

    Returns
    -------
    numpy.ndarray
        float32 array of the same shape, in model units (0..4095).
    """
    if isinstance(bits_stored, bool) or not isinstance(bits_stored, (int, np.integer)):
        raise MammogramError(f"bits_stored must be an integer, got {bits_stored!r}")
    if not 1 <= int(bits_stored) <= 16:
        raise MammogramError(f"bits_stored must be between 1 and 16, got {bits_stored}")
    full = float(2 ** int(bits_stored) - 1)
    if int(bits_stored) == 12:
        out = np.array(values, dtype=np.float32, copy=True)
        np.clip(out, 0.0, MODEL_MAX, out=out)
        return out
    values = np.asarray(values)
    out = np.empty(values.shape, dtype=np.float32)
    flat_in, flat_out = values.reshape(-1), out.reshape(-1)
    # Multiply, then divide, in float64 so that the scale's ends map exactly onto 0 and 4095; in blocks, so
    # that a 40 MP image needs a 4 MB float64 buffer rather than a 320 MB one.
    for start in range(0, flat_in.size, _BLOCK):
        block = flat_in[start : start + _BLOCK].astype(np.float64)
        block *= MODEL_MAX
        block /= full
        np.clip(block, 0.0, MODEL_MAX, out=block)
        flat_out[start : start + _BLOCK] = block
    return out


def parse_spacing(spacing_mm: float | Sequence[float] | None, label: str) -> tuple[float, float] | None:
    """Validate a caller's spacing: ``None``, one number (isotropic) or (row, col), all positive mm."""
    if spacing_mm is None:
        return None
    if isinstance(spacing_mm, (int, float, np.integer, np.floating)) and not isinstance(spacing_mm, bool):
        pair = (float(spacing_mm), float(spacing_mm))
    else:
        try:
            pair = tuple(float(v) for v in spacing_mm)  # type: ignore[union-attr]
        except (TypeError, ValueError) as exc:
            raise MammogramError(f"{label}: spacing_mm must be (row, col) in mm, got {spacing_mm!r}") from exc
        if len(pair) != 2:
            raise MammogramError(
                f"{label}: spacing_mm must have 2 values (row, col) in mm, got {spacing_mm!r}"
            )
    if not all(math.isfinite(v) and 0.0 < v <= 10.0 for v in pair):
        raise MammogramError(f"{label}: spacing_mm must be positive and at most 10 mm, got {spacing_mm!r}")
    return pair[0], pair[1]


@dataclass(frozen=True, eq=False)
class Mammogram:
    """One 2-D mammogram in physical units.

    Attributes
    ----------
    pixels : numpy.ndarray
        2-D float32 array in model units (0..4095 as loaded; perturbed images may leave that range),
        bright tissue on a dark background. Arrays of another float or integer dtype are converted.
    spacing_mm : tuple of float
        Pixel spacing (row, col) in mm. Left out: ``DEFAULT_SPACING_MM`` on both axes, marked assumed.
    spacing_source : str
        Where the spacing came from: a DICOM tag such as ``"ImagerPixelSpacing (0018,1164)"``, ``"caller"``,
        or ``"assumed default 0.1 mm"`` (the word "assumed" marks a value that was not read). Left out:
        ``"caller"`` when a spacing is given, else the assumed default.
    laterality : str or None
        ``"L"``, ``"R"`` or None when unknown.
    view : str or None
        ``"CC"``, ``"MLO"``, ... or None when unknown.
    metadata : dict of str to str
        De-identified header facts (manufacturer, bit depth, photometric interpretation, ...); never
        names, IDs, dates of birth or UIDs.
    source_name : str
        File name, or ``"<bytes>"``/``"<array>"``.
    window : tuple of float or None
        Display window (centre, width) in model units, from the DICOM VOI window when present.
    """

    pixels: np.ndarray
    spacing_mm: tuple[float, float] | None = None
    spacing_source: str | None = None
    laterality: str | None = None
    view: str | None = None
    metadata: dict[str, str] = field(default_factory=dict)
    source_name: str = "<array>"
    window: tuple[float, float] | None = None

    def __post_init__(self) -> None:
        pixels = np.asarray(self.pixels)
        if pixels.ndim != 2 or pixels.size == 0:
            raise MammogramError(
                f"{self.source_name}: pixels must be a non-empty 2-D array, got {pixels.shape}"
            )
        if not (np.issubdtype(pixels.dtype, np.floating) or np.issubdtype(pixels.dtype, np.integer)):
            raise MammogramError(f"{self.source_name}: pixels must be real numbers, got dtype {pixels.dtype}")
        if pixels.dtype != np.float32:
            pixels = pixels.astype(np.float32)
        object.__setattr__(self, "pixels", pixels)
        spacing = parse_spacing(self.spacing_mm, self.source_name)
        if spacing is None:
            spacing = (DEFAULT_SPACING_MM, DEFAULT_SPACING_MM)
            source = self.spacing_source or f"assumed default {DEFAULT_SPACING_MM} mm"
        else:
            source = self.spacing_source or "caller"
        object.__setattr__(self, "spacing_mm", spacing)
        object.__setattr__(self, "spacing_source", str(source))
        if self.laterality not in (None, "L", "R"):
            raise MammogramError(
                f"{self.source_name}: laterality must be 'L', 'R' or None, got {self.laterality!r}"
            )
        if self.window is not None:
            centre, width = (float(v) for v in self.window)
            object.__setattr__(self, "window", (centre, width))
        object.__setattr__(self, "metadata", {str(k): str(v) for k, v in dict(self.metadata).items()})

    @property
    def spacing_assumed(self) -> bool:
        """True when the spacing is an assumed default rather than read from the file or given."""
        return "assumed" in self.spacing_source

    @property
    def shape(self) -> tuple[int, int]:
        """(rows, cols) in pixels."""
        return self.pixels.shape  # type: ignore[return-value]

    @property
    def size_mm(self) -> tuple[float, float]:
        """Physical extent (height, width) in mm."""
        return self.pixels.shape[0] * self.spacing_mm[0], self.pixels.shape[1] * self.spacing_mm[1]
