"""Decompression bombs, written at test time from recipes (streamed: making one costs a few MB).

Each function returns a file's bytes. A bomb is small on disk and declares (or inflates to) far more than
the budget of :mod:`core.imaging.limits` allows; the loader must refuse it from its header, its compression
ratio or its inflated size, before the memory is spent.
"""

from __future__ import annotations

import struct
import zlib

from pydicom.filebase import DicomBytesIO
from pydicom.filewriter import write_dataset, write_file_meta_info
from pydicom.uid import DeflatedExplicitVRLittleEndian

from tests.hostile import dataset, pattern

_BLOCK = 1 << 24


def _adler32_zeros(check: int, n: int) -> int:
    """Adler-32 continued over ``n`` zero bytes: the byte sum ``a`` stays, ``b`` grows by ``n * a``."""
    a, b = check & 0xFFFF, check >> 16
    return (((b + n * a) % 65521) << 16) | a


def _deflate(parts: list[bytes | int], raw: bool = True) -> bytes:
    """Deflate ``parts`` (bytes, or an int: that many zero bytes) quickly, whatever the zeros' count.

    Zeros are compressed 16 MiB at a time after a full flush, which resets the compressor, so every such
    block compresses to the same bytes: one is computed and repeated (1 GiB of zeros in well under 1 s).
    ``raw=False`` gives the zlib format (2-byte header, Adler-32 trailer) of PNG and TIFF.
    """
    stream = zlib.compressobj(9, zlib.DEFLATED, -zlib.MAX_WBITS)
    zeros = bytes(_BLOCK)
    out, check = [], 1
    for part in parts:
        if isinstance(part, bytes):
            out.append(stream.compress(part))
            check = zlib.adler32(part, check)
            continue
        full, rest = divmod(part, _BLOCK)
        if full:
            out.append(stream.flush(zlib.Z_FULL_FLUSH))
            block = stream.compress(zeros) + stream.flush(zlib.Z_FULL_FLUSH)
            out.append(block * full)
        if rest:
            out.append(stream.compress(zeros[:rest]))
        check = _adler32_zeros(check, part)
    out.append(stream.flush())
    body = b"".join(out)
    return body if raw else b"\x78\xda" + body + struct.pack(">I", check & 0xFFFFFFFF)


def deflated_dicom(rows: int, cols: int, zeros: int | None = None, trailing: int = 0) -> bytes:
    """A deflated DICOM declaring ``rows`` x ``cols`` 16-bit pixels.

    The pixel data element declares ``rows * cols * 2`` bytes and the stream holds ``zeros`` zero bytes of it
    (default: all); ``trailing`` > 0 adds a private element of that many zero bytes after the pixel data (a
    stream that inflates beyond what the header declares).
    """
    ds = dataset(pattern(16, 16))
    del ds.PixelData
    ds.Rows, ds.Columns = rows, cols
    ds.file_meta.TransferSyntaxUID = DeflatedExplicitVRLittleEndian
    body = DicomBytesIO()
    body.is_little_endian, body.is_implicit_VR = True, False
    write_dataset(body, ds)
    declared = rows * cols * 2
    pixel_header = struct.pack("<HH2sHI", 0x7FE0, 0x0010, b"OW", 0, declared)
    parts = [body.getvalue(), pixel_header, declared if zeros is None else zeros]
    if trailing:
        parts += [struct.pack("<HH2sHI", 0x7FE1, 0x1010, b"OB", 0, trailing), trailing]
    meta = DicomBytesIO()
    meta.is_little_endian, meta.is_implicit_VR = True, False
    write_file_meta_info(meta, ds.file_meta, enforce_standard=True)
    return b"\x00" * 128 + b"DICM" + meta.getvalue() + _deflate(parts)


def _png_chunk(kind: bytes, data: bytes) -> bytes:
    return (
        struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)
    )


def png(width: int, height: int) -> bytes:
    """An 8-bit greyscale PNG of zeros (the 10000 x 10000 one is 97 KB)."""
    idat = _deflate([(width + 1) * height], raw=False)  # each row: filter byte 0, then zeros
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + _png_chunk(b"IHDR", ihdr)
        + _png_chunk(b"IDAT", idat)
        + _png_chunk(b"IEND", b"")
    )


def tiff(width: int, height: int, inflated: int | None = None) -> bytes:
    """A 16-bit greyscale TIFF with one deflate-compressed strip of ``inflated`` zero bytes (default: the
    declared ``width * height * 2``)."""
    strip = _deflate([width * height * 2 if inflated is None else inflated], raw=False)
    entries = [  # tag, type (3 SHORT, 4 LONG), value
        (256, 4, width),
        (257, 4, height),
        (258, 3, 16),
        (259, 3, 8),  # Adobe deflate
        (262, 3, 1),
        (273, 4, 0),  # strip offset, set below
        (277, 3, 1),
        (278, 4, height),
        (279, 4, len(strip)),
    ]
    ifd_size = 2 + 12 * len(entries) + 4
    entries[5] = (273, 4, 8 + ifd_size)
    ifd = struct.pack("<H", len(entries))
    ifd += b"".join(struct.pack("<HHII", tag, kind, 1, value) for tag, kind, value in entries)
    return b"II*\x00" + struct.pack("<I", 8) + ifd + struct.pack("<I", 0) + strip


def jpeg(width: int, height: int, scans: int = 1) -> bytes:
    """A JPEG header declaring ``width`` x ``height`` 8-bit pixels (progressive when ``scans`` > 1), then
    ``scans`` empty scans."""
    sof = struct.pack(">BHHB", 8, height, width, 1) + bytes([1, 0x11, 0])
    sos = bytes([1, 1, 0, 0, 63, 0])
    scan = b"\xff\xda" + struct.pack(">H", len(sos) + 2) + sos + bytes(4)
    marker = b"\xff\xc2" if scans > 1 else b"\xff\xc0"
    header = b"\xff\xd8" + marker + struct.pack(">H", len(sof) + 2) + sof
    return header + scan * scans + bytes(60) + b"\xff\xd9"


BOMBS = {
    # name: (recipe, what it declares)
    "deflate-dicom-huge": (
        lambda: deflated_dicom(40000, 40000, zeros=1 << 30),
        "1.6 GP declared, 1 GiB inflated",
    ),
    "deflate-dicom-legit-size": (lambda: deflated_dicom(5000, 4000), "20 MP of zeros: 1000:1"),
    "deflate-dicom-trailing": (lambda: deflated_dicom(64, 64, trailing=1 << 30), "64 x 64, then 1 GiB"),
    "png-10000": (lambda: png(10000, 10000), "100 MP 8-bit PNG"),
    "png-legit-size": (lambda: png(6000, 6000), "36 MP of zeros: 1000:1"),
    "tiff-10000": (lambda: tiff(10000, 10000, inflated=1 << 20), "100 MP deflate TIFF"),
    "tiff-legit-size": (lambda: tiff(5000, 4000), "20 MP deflate TIFF of zeros"),
    "tiff-strip": (lambda: tiff(64, 64, inflated=3 << 29), "64 x 64 whose strip inflates to 1.5 GiB"),
    "jpeg-60000": (lambda: jpeg(60000, 60000), "3.6 GP JPEG header"),
    "jpeg-legit-size": (lambda: jpeg(6000, 6000), "36 MP JPEG of 100 bytes"),
    "jpeg-scans": (lambda: jpeg(2000, 1900, scans=5000), "3.8 MP progressive JPEG of 5000 scans"),
}
