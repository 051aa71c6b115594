"""Mammograms in physical units: loading DICOM, PNG, TIFF and JPEG files, and writing derived images.

Every loader maps stored values to *model units* (float32, 0..4095, bright tissue on a dark background) by one
rule, :func:`to_model_units`: a value ``v`` on a ``b``-bit scale becomes ``v * 4095 / (2**b - 1)``. DICOM uses
BitsStored (after the modality rescale); PNG/TIFF use 12 bits when the maximum is <= 4095 (kept as is), 16
bits for other 16-bit data and 8 bits for 8-bit data. Pixel spacing is in mm as (row, col); where it is
assumed rather than read, ``Mammogram.spacing_source`` says "assumed". Bad input raises
:class:`MammogramError`.
"""

from core.imaging.limits import MAX_COMPRESSION_RATIO, MAX_FILE_BYTES, MAX_PIXELS, MAX_SIDE, MIN_SIDE
from core.imaging.load import load_mammogram
from core.imaging.mammogram import (
    DEFAULT_SPACING_MM,
    MODEL_MAX,
    Mammogram,
    MammogramError,
    to_model_units,
)
from core.imaging.write import save_dicom, save_png

__all__ = [
    "DEFAULT_SPACING_MM",
    "MAX_COMPRESSION_RATIO",
    "MAX_FILE_BYTES",
    "MAX_PIXELS",
    "MAX_SIDE",
    "MIN_SIDE",
    "MODEL_MAX",
    "Mammogram",
    "MammogramError",
    "load_mammogram",
    "save_dicom",
    "save_png",
    "to_model_units",
]
