"""Headers of compressed image streams, read without decoding: JPEG / JPEG-LS SOF, JPEG 2000 SIZ, RLE.

These checks cost microseconds and catch most corrupt or hostile files with a plain message before a decoder
sees them: a frame whose own size contradicts the file's header, a truncated stream (CharLS spins for seconds
on those), an RLE segment table that points outside its frame.
"""

from __future__ import annotations

import struct

from core.imaging.limits import check_jpeg_scans
from core.imaging.mammogram import MammogramError

RLE = "1.2.840.10008.1.2.5"
JPEG_FAMILY = {
    "1.2.840.10008.1.2.4.50",
    "1.2.840.10008.1.2.4.51",
    "1.2.840.10008.1.2.4.57",
    "1.2.840.10008.1.2.4.70",
    "1.2.840.10008.1.2.4.80",
    "1.2.840.10008.1.2.4.81",
}
J2K_FAMILY = {
    "1.2.840.10008.1.2.4.90",
    "1.2.840.10008.1.2.4.91",
    "1.2.840.10008.1.2.4.201",
    "1.2.840.10008.1.2.4.202",
    "1.2.840.10008.1.2.4.203",
}
# Start-of-frame markers: JPEG processes (C0-C3, C5-C7, C9-CB, CD-CF) and JPEG-LS (F7).
_SOF = {0xC0, 0xC1, 0xC2, 0xC3, 0xC5, 0xC6, 0xC7, 0xC9, 0xCA, 0xCB, 0xCD, 0xCE, 0xCF, 0xF7}
_STANDALONE = {0x01, *range(0xD0, 0xD8)}


def check_frame(frame: bytes, ts: str, rows: int, cols: int, bits_alloc: int, label: str) -> None:
    """Refuse a compressed frame whose own header contradicts the DICOM header, or that is truncated."""
    if ts == RLE:
        _check_rle(frame, bits_alloc, label)
    elif ts in JPEG_FAMILY:
        size = jpeg_size(frame, label)
        _check_end(frame, label, "JPEG")
        check_jpeg_scans(frame, label)
        _check_size(size, rows, cols, label, "JPEG")
    elif ts in J2K_FAMILY:
        size = _j2k_size(frame, label)
        _check_end(frame, label, "JPEG 2000")
        _check_size(size, rows, cols, label, "JPEG 2000")


def _check_size(size: tuple[int, int, int], rows: int, cols: int, label: str, kind: str) -> None:
    height, width, components = size
    if components != 1:
        raise MammogramError(
            f"{label}: the {kind} stream holds {components} colour components; a mammogram must be greyscale"
        )
    if width != cols or (height not in (0, rows)):  # JPEG may leave the height to a DNL marker (0)
        raise MammogramError(
            f"{label}: the {kind} stream declares {height} x {width} pixels but the DICOM header says "
            f"{rows} x {cols}; the file is corrupt"
        )


def _check_end(frame: bytes, label: str, kind: str) -> None:
    if not frame.rstrip(b"\x00").endswith(b"\xff\xd9"):
        raise MammogramError(
            f"{label}: the {kind} pixel data is truncated or corrupt: it does not end with the end-of-image "
            "marker (FFD9)"
        )


def jpeg_size(frame: bytes, label: str) -> tuple[int, int, int]:
    """(height, width, components) from the start-of-frame segment of a JPEG or JPEG-LS stream."""
    corrupt = MammogramError(f"{label}: the JPEG data is corrupt (no valid start-of-frame header)")
    if not frame.startswith(b"\xff\xd8"):
        raise corrupt
    i = 2
    while i + 4 <= len(frame):
        if frame[i] != 0xFF:
            raise corrupt
        marker = frame[i + 1]
        if marker == 0xFF:  # fill byte
            i += 1
            continue
        if marker in _STANDALONE:
            i += 2
            continue
        length = struct.unpack(">H", frame[i + 2 : i + 4])[0]
        if marker in _SOF:
            if length < 8 or i + 10 > len(frame):
                raise corrupt
            height, width = struct.unpack(">HH", frame[i + 5 : i + 9])
            return height, width, frame[i + 9]
        if marker in (0xDA, 0xD9) or length < 2:  # start of scan or end of image before any frame header
            raise corrupt
        i += 2 + length
    raise corrupt


def _j2k_size(frame: bytes, label: str) -> tuple[int, int, int]:
    start = frame.find(b"\xff\x4f\xff\x51", 0, 4096)  # SOC then SIZ (a JP2 file has boxes before them)
    if start < 0 or start + 42 > len(frame):
        raise MammogramError(f"{label}: the JPEG 2000 pixel data is corrupt (no SIZ header)")
    xsiz, ysiz, xo, yo = struct.unpack(">IIII", frame[start + 8 : start + 24])
    components = struct.unpack(">H", frame[start + 40 : start + 42])[0]
    return ysiz - yo, xsiz - xo, components


def _check_rle(frame: bytes, bits_alloc: int, label: str) -> None:
    if len(frame) < 64:
        raise MammogramError(f"{label}: the RLE pixel data is truncated (shorter than its 64-byte header)")
    header = struct.unpack("<16I", frame[:64])
    n, offsets = header[0], header[1 : 1 + min(header[0], 15)]
    expected = bits_alloc // 8
    ok = n == expected and offsets and offsets[0] == 64
    ok = ok and all(a < b for a, b in zip(offsets, offsets[1:], strict=False)) and offsets[-1] < len(frame)
    if not ok:
        raise MammogramError(
            f"{label}: the RLE pixel data is corrupt (its header lists {n} segments at offsets "
            f"{list(offsets)}; a {bits_alloc}-bit image needs {expected}, inside the {len(frame)}-byte frame)"
        )
