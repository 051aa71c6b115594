"""The one budget every image reader checks, from the file's header, before anything is decoded or inflated.

Mammography detectors reach about 25 megapixels (e.g. 4800 x 6000 at 50 µm for 24 x 30 cm); digitised film
of the same size at 50 µm is of the same order. The budget leaves a margin above that and no more:

==========================  ==============  ============================================================
name                        value           what it bounds
==========================  ==============  ============================================================
``MAX_PIXELS``              40 000 000      Rows x Columns of one image (40 MP; 80 MB as 16-bit)
``MAX_SIDE``                10 000          either side, in pixels
``MIN_SIDE``                8               either side (smaller is not a mammogram)
``MAX_FILE_BYTES``          256 MiB         bytes read from a file or upload, and bytes inflated from a
                                            deflated DICOM
``MAX_COMPRESSION_RATIO``   200             declared decoded bytes / stored bytes, for images whose
                                            decoded size is at least ``RATIO_FLOOR_BYTES`` (4 MiB)
``MAX_JPEG_SCANS``          100             scans of one JPEG stream (a progressive JPEG has about 10; each
                                            scan is a pass over the whole image)
``DECODE_MEMORY_BYTES``     1 GiB           memory a decode process may allocate above its start-up size
``decode_timeout_s()``      10 s + 2 s/MP   wall time of one sandboxed decode (``MAMMO_DECODE_TIMEOUT_S``
                                            overrides)
==========================  ==============  ============================================================

Lossless mammograms compress 2-6 times (the real NYU sample PNGs: 5.2, 79 % of their pixels background;
the synthetic cohort: 2.5-3.9 with RLE, deflate or JPEG 2000), so a ratio of 200 leaves room for lossy
files and near-empty images while refusing the 1000:1 streams a decompression bomb is made of. The checks
are :func:`check_shape` (header sizes) and :func:`check_ratio`; the readers call them with the sizes from the
DICOM header (Rows, Columns, BitsAllocated), the PNG IHDR chunk, the TIFF tags and the JPEG SOF segment.
"""

from __future__ import annotations

import os

from core.imaging.mammogram import MammogramError

MAX_PIXELS = 40_000_000
"""Largest accepted Rows x Columns (40 MP: 25 MP detectors with a margin), checked before decoding."""

MAX_SIDE = 10_000
"""Largest accepted image side in pixels, checked from the header before any pixel is decoded."""

MIN_SIDE = 8
"""Smallest accepted image side in pixels: anything smaller is not a mammogram."""

MAX_FILE_BYTES = 256 * 1024**2
"""Largest file or upload read (256 MiB), and the most bytes a deflated DICOM may inflate to."""

MAX_COMPRESSION_RATIO = 200.0
"""Largest accepted decoded-size / stored-size ratio (for images of at least ``RATIO_FLOOR_BYTES``)."""

RATIO_FLOOR_BYTES = 4 * 1024**2
"""Images that decode to less than this (4 MiB) are cheap whatever their ratio; the ratio is not checked."""

MAX_JPEG_SCANS = 100
"""Most start-of-scan markers in one JPEG stream: thousands of tiny scans make a small file cost minutes."""

DECODE_MEMORY_BYTES = 1024**3
"""Memory (bytes) a decode process may allocate above its own start-up size (RLIMIT_DATA)."""

DECODE_TIMEOUT_ENV = "MAMMO_DECODE_TIMEOUT_S"


def check_shape(rows: int, cols: int, label: str) -> None:
    """Refuse image sizes that are too small or too large, before anything is allocated.

    Raises
    ------
    MammogramError
        Either side above ``MAX_SIDE`` or below ``MIN_SIDE``, or more than ``MAX_PIXELS`` pixels.
    """
    rows, cols = int(rows), int(cols)
    if rows > MAX_SIDE or cols > MAX_SIDE or rows * cols > MAX_PIXELS:
        raise MammogramError(
            f"{label}: the header declares {rows} x {cols} pixels, larger than this tool accepts "
            f"(at most {MAX_SIDE} pixels a side and {MAX_PIXELS // 1_000_000} megapixels); refused before "
            "decoding"
        )
    if rows < MIN_SIDE or cols < MIN_SIDE:
        raise MammogramError(
            f"{label}: the image is {rows} x {cols} pixels; a mammogram needs at least "
            f"{MIN_SIDE} pixels a side"
        )


def check_ratio(decoded_bytes: int, stored_bytes: int, label: str, what: str = "image") -> None:
    """Refuse a compressed image whose declared decoded size is out of proportion to its stored size.

    Parameters
    ----------
    decoded_bytes : int
        Size the header declares once decoded (rows x cols x bytes per sample x samples).
    stored_bytes : int
        Size of the compressed data (the file, or the DICOM pixel data element).
    label : str
        File name for the message.
    what : str
        The compressed thing, for the message (e.g. ``"RLE pixel data"``).
    """
    if decoded_bytes < RATIO_FLOOR_BYTES:
        return
    ratio = decoded_bytes / max(int(stored_bytes), 1)
    if ratio > MAX_COMPRESSION_RATIO:
        raise MammogramError(
            f"{label}: the {what} would expand {ratio:.0f} times (from {stored_bytes} bytes to "
            f"{decoded_bytes / 1024**2:.0f} MiB); more than {MAX_COMPRESSION_RATIO:.0f} times is refused "
            "as a decompression bomb, before decoding"
        )


def check_jpeg_scans(data: bytes, label: str) -> None:
    """Refuse a JPEG stream with more than ``MAX_JPEG_SCANS`` scans, counted from its markers.

    0xFF in entropy-coded data is always followed by 0x00 or a restart marker, so every FFDA pair is a
    start-of-scan marker (or lies inside an application segment, which only makes the count err high).
    """
    scans = data.count(b"\xff\xda")
    if scans > MAX_JPEG_SCANS:
        raise MammogramError(
            f"{label}: the JPEG data has {scans} scans (at most {MAX_JPEG_SCANS} accepted; a progressive "
            "JPEG has about 10): refused before decoding, each scan is a pass over the whole image"
        )


def decode_timeout_s(pixels: int) -> float:
    """Wall-time limit (s) of one sandboxed decode of an image of ``pixels`` pixels: 10 s + 2 s per MP.

    Lossless JPEG 2000 of a 8.5 MP mammogram decodes in about 0.8 s on one core, so the limit leaves a wide
    margin for a loaded machine while stopping a decoder that spins on corrupt data.
    ``MAMMO_DECODE_TIMEOUT_S`` (seconds) replaces the formula.
    """
    env = os.environ.get(DECODE_TIMEOUT_ENV, "").strip()
    if env:
        try:
            value = float(env)
        except ValueError:
            value = 0.0
        if value > 0:
            return value
    return 10.0 + 2.0 * pixels / 1e6
