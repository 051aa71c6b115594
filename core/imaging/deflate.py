"""Inflating a Deflated Explicit VR Little Endian DICOM within the budget of :mod:`core.imaging.limits`.

pydicom inflates such a file's whole dataset in one ``zlib.decompress`` call before any element is read, so a
1 MB file can ask for gigabytes. Here the dataset is inflated in 256 KiB steps: as soon as the header up to
the pixel data is inflated, Rows, Columns, BitsAllocated, SamplesPerPixel and NumberOfFrames are checked
(:func:`~core.imaging.limits.check_shape`) and the output is capped at what they declare (plus 1 MiB for
trailing elements, never more than ``MAX_FILE_BYTES``); the compression ratio is checked on the way
(:func:`~core.imaging.limits.check_ratio`). The result is the same file re-encoded as Explicit VR Little
Endian, which pydicom then reads like any uncompressed DICOM.
"""

from __future__ import annotations

import io
import zlib

from core.imaging.limits import MAX_FILE_BYTES, check_ratio, check_shape
from core.imaging.mammogram import MammogramError

DEFLATED = "1.2.840.10008.1.2.1.99"
_STEP = 256 * 1024
_HEADER_LIMIT = 16 * 1024**2  # inflated bytes allowed before the pixel data element must have been seen
_PIXEL_TAG = b"\xe0\x7f\x10\x00"


def read_file_meta(data: bytes):
    """``(file_meta, offset)``: the group-0002 elements of ``data`` (with or without preamble) and where the
    dataset starts, or ``(None, 0)`` when there are none."""
    from pydicom.filereader import _read_file_meta_info, read_preamble

    fp = io.BytesIO(data)
    try:
        read_preamble(fp, True)
        meta = _read_file_meta_info(fp)
    except Exception:  # garbage: the caller's full read reports it
        return None, 0
    if not meta:
        return None, 0
    return meta, fp.tell()


def is_deflated(meta) -> bool:
    """True when ``meta`` (a FileMetaDataset or None) declares Deflated Explicit VR Little Endian."""
    if meta is None:
        return False
    return str(meta.get("TransferSyntaxUID", "")).strip() == DEFLATED


def _declared_pixel_bytes(header: bytes, label: str) -> int | None:
    """Bytes of pixel data the inflated header declares, after checking its image size; None if unreadable."""
    from pydicom.filereader import read_dataset

    try:
        ds = read_dataset(io.BytesIO(header), is_implicit_VR=False, is_little_endian=True)
        rows, cols = int(ds.get("Rows")), int(ds.get("Columns"))
        bits = int(ds.get("BitsAllocated", 16))
        samples = int(ds.get("SamplesPerPixel", 1) or 1)
        frames = int(ds.get("NumberOfFrames", 1) or 1)
    except Exception:  # not the real pixel data tag (those bytes inside another value), or a broken header
        return None
    check_shape(rows, cols, label)
    if not (1 <= bits <= 64 and 1 <= samples <= 4 and 1 <= frames):
        return None
    return rows * cols * samples * frames * ((bits + 7) // 8)


def inflate_dicom(data: bytes, meta, offset: int, label: str) -> bytes:
    """Inflate the dataset of a deflated DICOM within the budget; return it re-encoded uncompressed.

    Parameters
    ----------
    data : bytes
        The whole file.
    meta : FileMetaDataset
        Its file meta information (:func:`read_file_meta`), declaring the deflated transfer syntax.
    offset : int
        Where the deflated dataset starts in ``data``.
    label : str
        File name for messages.

    Returns
    -------
    bytes
        A Part 10 file (preamble, file meta with Explicit VR Little Endian, inflated dataset).

    Raises
    ------
    MammogramError
        A corrupt stream, a header declaring too large an image, output beyond the budget or a compression
        ratio beyond ``MAX_COMPRESSION_RATIO``.
    """
    from pydicom.filebase import DicomBytesIO
    from pydicom.filewriter import write_file_meta_info
    from pydicom.uid import ExplicitVRLittleEndian

    stream = zlib.decompressobj(-zlib.MAX_WBITS)
    out = bytearray()
    cap = MAX_FILE_BYTES
    declared: int | None = None
    pos = offset
    searched = 0
    while True:
        chunk = stream.unconsumed_tail or data[pos : pos + _STEP]
        if not stream.unconsumed_tail:
            pos += len(chunk)
        if not chunk:
            break
        try:
            piece = stream.decompress(chunk, _STEP)
        except zlib.error as exc:
            raise MammogramError(f"{label}: the deflated DICOM data is corrupt ({exc})") from None
        out += piece
        if declared is None and len(out) > searched:
            found = out.find(_PIXEL_TAG, max(0, searched - 3))
            while found >= 0 and declared is None:
                declared = _declared_pixel_bytes(bytes(out[:found]), label)
                if declared is not None:
                    cap = min(MAX_FILE_BYTES, found + 12 + declared + 1024**2)
                else:
                    found = out.find(_PIXEL_TAG, found + 1)
            searched = len(out)
            if declared is None and len(out) > _HEADER_LIMIT:
                raise MammogramError(
                    f"{label}: the deflated DICOM has no image header in its first "
                    f"{_HEADER_LIMIT // 1024**2} MiB; refused"
                )
        if len(out) > cap:
            raise MammogramError(
                f"{label}: the deflated DICOM inflates beyond {cap / 1024**2:.0f} MiB, more than its header "
                "declares (or than this tool reads); refused as a decompression bomb"
            )
        check_ratio(len(out), pos - offset, label, "deflated DICOM data")
        if stream.eof:
            break
    meta = meta.copy()
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    fp = DicomBytesIO()
    fp.is_little_endian, fp.is_implicit_VR = True, False
    write_file_meta_info(fp, meta, enforce_standard=False)
    return b"\x00" * 128 + b"DICM" + fp.getvalue() + bytes(out)
