"""``load_mammogram``: one entry point for DICOM, PNG, TIFF and JPEG, from a path or from bytes."""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

from core.imaging.dicom import NotDicomError, is_part10, read_dicom
from core.imaging.mammogram import Mammogram, MammogramError, parse_spacing
from core.imaging.raster import read_raster, sniff

MAX_FILE_BYTES = 2 * 1024**3
"""Largest file read (2 GiB)."""


def load_mammogram(
    source: str | os.PathLike | bytes,
    *,
    spacing_mm: float | Sequence[float] | None = None,
    name: str | None = None,
    correct_magnification: bool = False,
) -> Mammogram:
    """Read one 2-D mammogram into model units (float32, 0..4095) with its pixel spacing.

    The format is recognised from the content, not the file name: DICOM (Part 10 or a bare dataset), PNG,
    TIFF or 8-bit JPEG. Stored values are mapped to model units by :func:`core.imaging.to_model_units`;
    see :mod:`core.imaging.dicom` and :mod:`core.imaging.raster` for the per-format rules.

    Parameters
    ----------
    source : str, os.PathLike or bytes
        A file path, or the file's bytes (e.g. from an upload).
    spacing_mm : float or (float, float), optional
        Pixel spacing (row, col) in mm, used when the file records none (DICOM spacing tags take
        precedence). Without either, ``DEFAULT_SPACING_MM`` is used and marked assumed.
    name : str, optional
        Name used in messages and as ``source_name`` (default: the file name, or ``"<bytes>"``).
    correct_magnification : bool
        Divide a DICOM ImagerPixelSpacing by EstimatedRadiographicMagnificationFactor, giving the spacing at
        the breast rather than at the detector. Default False.

    Returns
    -------
    Mammogram

    Raises
    ------
    MammogramError
        For any file that cannot be read as a single 2-D greyscale mammogram; never another exception type.
    """
    label = name or "<bytes>"
    try:
        if isinstance(source, (bytes, bytearray, memoryview)):
            data = bytes(source)
            source_name = name or "<bytes>"
        elif isinstance(source, (str, os.PathLike)):
            path = Path(source)
            label = name or str(path)
            source_name = name or path.name
            data = _read_file(path, label)
        else:
            raise MammogramError(f"{label}: expected a file path or bytes, got {type(source).__name__}")
        caller = parse_spacing(spacing_mm, label)
        if not data:
            raise MammogramError(f"{label}: the file is empty")
        dicom = dict(
            source_name=source_name, caller_spacing=caller, correct_magnification=correct_magnification
        )
        if is_part10(data):  # first: a DICOM preamble may itself look like a TIFF header
            return read_dicom(data, label, **dicom)
        fmt = sniff(data)
        if fmt is not None:
            return read_raster(data, fmt, label, source_name=source_name, caller_spacing=caller)
        try:  # last resort: a bare DICOM dataset without preamble or file meta
            return read_dicom(data, label, **dicom)
        except NotDicomError:
            raise MammogramError(
                f"{label}: not a recognised image file (expected DICOM, PNG, TIFF or JPEG)"
            ) from None
    except MammogramError:
        raise
    except MemoryError as exc:
        raise MammogramError(f"{label}: not enough memory to read the image") from exc
    except Exception as exc:  # the contract: only MammogramError escapes
        raise MammogramError(f"{label}: could not read the image ({type(exc).__name__}: {exc})") from exc


def _read_file(path: Path, label: str) -> bytes:
    if not path.exists():
        raise MammogramError(f"{label}: no such file")
    if path.is_dir():
        raise MammogramError(f"{label}: is a folder, not an image file")
    try:
        size = path.stat().st_size
        if size > MAX_FILE_BYTES:
            raise MammogramError(f"{label}: the file is {size / 1024**3:.1f} GiB, larger than 2 GiB")
        return path.read_bytes()
    except OSError as exc:
        raise MammogramError(f"{label}: cannot read the file ({exc.strerror or exc})") from exc
