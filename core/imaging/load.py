"""``load_mammogram``: one entry point for DICOM, PNG, TIFF and JPEG, from a path or from bytes.

No file can crash or exhaust the process that reads it. Only regular files are opened (devices, pipes,
sockets and folders are refused before opening, and the file is opened non-blocking and checked again), at
most ``MAX_FILE_BYTES`` are read, every size is checked from the header against the budget of
:mod:`core.imaging.limits` before anything is decoded or inflated, and each format takes one path:

=======================================  ==============================================================
format                                   decoded
=======================================  ==============================================================
DICOM, uncompressed                      in-process (pydicom; a view of bytes the header bounds)
DICOM, deflated                          inflated in-process in bounded steps
                                         (:mod:`~core.imaging.deflate`), then as uncompressed
DICOM, RLE / JPEG / JPEG-LS / JPEG 2000  in a decode process (:mod:`~core.imaging.sandbox`): gdcm can
                                         abort, the Rust RLE decoder can panic, CharLS can spin
TIFF, uncompressed                       in-process (tifffile; a view of bytes the tags bound)
TIFF, compressed                         in a decode process (a strip may inflate beyond the tags' size)
PNG, JPEG                                in-process (Pillow: decoders that report errors as exceptions
                                         and write into an image of the size the header declared)
=======================================  ==============================================================

Every failure, of any kind (a ``BaseException`` such as a Rust panic included), becomes
:class:`~core.imaging.mammogram.MammogramError` naming the file.
"""

from __future__ import annotations

import os
import stat
from collections.abc import Sequence
from pathlib import Path

from core.imaging.dicom import NotDicomError, is_part10, read_dicom
from core.imaging.limits import MAX_FILE_BYTES
from core.imaging.mammogram import Mammogram, MammogramError, parse_spacing
from core.imaging.raster import read_raster, sniff


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
            if len(source) > MAX_FILE_BYTES:
                raise MammogramError(f"{label}: {_too_large(len(source))}")
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
    except (KeyboardInterrupt, SystemExit):
        raise
    except BaseException as exc:  # noqa: BLE001 - the contract: only MammogramError escapes, panics included
        raise MammogramError(f"{label}: could not read the image ({type(exc).__name__}: {exc})") from exc


def _too_large(size: int) -> str:
    limit = MAX_FILE_BYTES // 1024**2
    return f"the file is {size / 1024**2:.0f} MiB, larger than the {limit} MiB this tool reads"


def _read_file(path: Path, label: str) -> bytes:
    """Read a regular file of at most ``MAX_FILE_BYTES``; devices, pipes, sockets and folders are refused."""
    try:
        info = os.stat(path)
    except FileNotFoundError:
        raise MammogramError(f"{label}: no such file") from None
    except OSError as exc:
        raise MammogramError(f"{label}: cannot read the file ({exc.strerror or exc})") from None
    _check_regular(info, label)
    if info.st_size > MAX_FILE_BYTES:
        raise MammogramError(f"{label}: {_too_large(info.st_size)}")
    flags = (
        os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_NOCTTY", 0) | getattr(os, "O_CLOEXEC", 0)
    )
    try:
        fd = os.open(path, flags)  # non-blocking: a pipe swapped in after the check cannot hang the open
    except OSError as exc:
        raise MammogramError(f"{label}: cannot read the file ({exc.strerror or exc})") from None
    try:
        _check_regular(os.fstat(fd), label)  # what was opened, not what was checked
        chunks, total = [], 0
        step = info.st_size + 1  # one read for a file that does not grow while it is read
        while total <= MAX_FILE_BYTES:
            chunk = os.read(fd, min(step, MAX_FILE_BYTES + 1 - total))
            step = 1 << 24
            if not chunk:
                break
            chunks.append(chunk)
            total += len(chunk)
        if total > MAX_FILE_BYTES:
            raise MammogramError(f"{label}: {_too_large(total)}")
        return b"".join(chunks)
    except OSError as exc:
        raise MammogramError(f"{label}: cannot read the file ({exc.strerror or exc})") from None
    finally:
        os.close(fd)


def _check_regular(info: os.stat_result, label: str) -> None:
    if stat.S_ISDIR(info.st_mode):
        raise MammogramError(f"{label}: is a folder, not an image file")
    if not stat.S_ISREG(info.st_mode):
        kind = (
            "a device"
            if stat.S_ISCHR(info.st_mode) or stat.S_ISBLK(info.st_mode)
            else "a pipe"
            if stat.S_ISFIFO(info.st_mode)
            else "a socket"
            if stat.S_ISSOCK(info.st_mode)
            else "not a regular file"
        )
        raise MammogramError(f"{label}: {kind}, not an image file; only regular files are read")
