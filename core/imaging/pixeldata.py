"""Decoding a DICOM's pixel data: uncompressed in-process, compressed in the decode sandbox after checks.

Uncompressed (native) pixel data is a view of bytes whose length the header bounds, so pydicom reads it
in-process. Compressed (encapsulated) pixel data goes to :mod:`core.imaging.sandbox` (RLE, whose decoder
cannot crash the process, to :mod:`core.imaging.rle_codec` in-process), after checks that cost nothing and
catch most corrupt files with a plain message:

- the encapsulation holds exactly one frame (pydicom's fragment parser, pure Python);
- the frame's own header agrees with Rows and Columns: the JPEG / JPEG-LS start-of-frame segment, the
  JPEG 2000 SIZ marker segment, the RLE segment table (one segment per byte of a sample, offsets inside
  the frame);
- JPEG, JPEG-LS and JPEG 2000 frames end with their end marker (FFD9), so truncated streams, on which
  CharLS spins for seconds, are refused before decoding;
- the declared decoded size is in proportion to the frame (:func:`~core.imaging.limits.check_ratio`).
"""

from __future__ import annotations

import numpy as np

from core.imaging import rle_codec, sandbox
from core.imaging.codestream import RLE, check_frame
from core.imaging.limits import check_ratio
from core.imaging.mammogram import MammogramError


def decode_native(ds, label: str) -> np.ndarray:
    """Uncompressed pixel data, read in-process (its size was checked against the header)."""
    return np.asarray(ds.pixel_array)


def decode_encapsulated(ds, ts, label: str) -> np.ndarray:
    """Compressed pixel data: checked here, decoded in a decode process. Raises MammogramError."""
    from pydicom.encaps import generate_frames

    rows, cols = int(ds.Rows), int(ds.Columns)
    bits_alloc = int(ds.get("BitsAllocated", 16))
    try:
        frames = list(generate_frames(ds.PixelData, number_of_frames=1))
    except Exception as exc:  # a broken item structure: pydicom raises ValueError, struct.error, ...
        raise MammogramError(
            f"{label}: the compressed pixel data is corrupt or truncated (its item structure cannot be read: "
            f"{' '.join(str(exc).split())[:160]})"
        ) from None
    if len(frames) != 1 or not frames[0]:
        raise MammogramError(f"{label}: the compressed pixel data holds {len(frames)} frames; expected one")
    frame = frames[0]
    what = f"{ts.name} pixel data"
    check_frame(frame, str(ts), rows, cols, bits_alloc, label)
    check_ratio(rows * cols * (bits_alloc // 8), len(frame), label, what)
    bits_stored = int(ds.get("BitsStored", bits_alloc))
    representation = int(ds.get("PixelRepresentation", 0))
    if str(ts) == RLE and bits_alloc in rle_codec.BITS and rle_codec.available():
        return rle_codec.decode_rle(frame, rows, cols, bits_alloc, bits_stored, representation == 1, label)
    request = {
        "kind": "dicom",
        "ts": str(ts),
        "rows": rows,
        "cols": cols,
        "bits_allocated": bits_alloc,
        "bits_stored": bits_stored,
        "high_bit": int(ds.get("HighBit", bits_stored - 1)),
        "pixel_representation": representation,
        "photometric": str(ds.get("PhotometricInterpretation", "MONOCHROME2")).strip().upper(),
    }
    return sandbox.decode(request, ds.PixelData, (rows, cols), label=label, what=what)
