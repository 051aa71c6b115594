"""RLE Lossless pixel data: decoded in this process, and encoded for the synthetic cohort.

The synthetic cohort is stored RLE (issue 19), so every image of a run passes here. RLE is the one
compressed format not sent to a decode process (:mod:`core.imaging.sandbox`): pylibjpeg-rle's Rust decoder,
called directly, cannot take this process down:

- its indexing is bounds-checked: corrupt data ends in a ``ValueError`` or in a panic that PyO3 unwinds into
  ``PanicException`` (both caught here; the panic's message also goes to standard error);
- it allocates the decoded frame (rows x columns x bytes per pixel) and its copy, sizes the header gives and
  :mod:`core.imaging.limits` has bounded before this is called (the segment table was checked by
  :func:`core.imaging.codestream.check_frame`); a corrupt stream cannot make it allocate more;
- its work is linear in the frame (it stops at the end of the data or of the output): it cannot spin.

Without the decode process's pipes and pydicom's per-call set-up, a demo-cohort view (2000 x 1280, 12 bits)
loads in 5.7 ms instead of about 9 ms in the decode process (3.1 ms uncompressed;
``benchmarks/bench_cohort.py``). The decoder holds the GIL while it runs (2-7 ms a view), as most of the
loader's other work does. The values equal pydicom's ``pixel_array`` (tested): little-endian, signed when
PixelRepresentation is 1, bits above BitsStored masked (unsigned) or sign-extended (signed).
"""

from __future__ import annotations

import numpy as np

from core.imaging.mammogram import MammogramError

#: Bits Allocated values decoded here (one sample per pixel); anything else goes to the decode process.
BITS = (8, 16)


def available() -> bool:
    """Whether pylibjpeg-rle's decoder is installed (it is a dependency; without it RLE is sandboxed)."""
    try:
        from rle.rle import decode_frame  # noqa: F401
    except ImportError:
        return False
    return True


def decode_rle(
    frame: bytes, rows: int, cols: int, bits_allocated: int, bits_stored: int, signed: bool, label: str
) -> np.ndarray:
    """Decode one single-sample RLE Lossless frame into a (rows, cols) array; raises MammogramError.

    Parameters
    ----------
    frame : bytes
        The encapsulated frame: the 64-byte RLE header and its segments.
    rows, cols : int
        The image size from the DICOM header.
    bits_allocated : {8, 16}
    bits_stored : int
        Significant bits (1..bits_allocated); signed values are sign-extended from this bit.
    signed : bool
        PixelRepresentation 1.
    label : str
        The file, for messages.
    """
    from rle.rle import decode_frame

    if bits_allocated not in BITS:
        raise ValueError(f"decode_rle handles {BITS} bits allocated, not {bits_allocated}")
    try:
        raw = decode_frame(frame, rows * cols, bits_allocated, "<")
    except BaseException as exc:  # noqa: BLE001 - a Rust panic (PanicException) is a BaseException
        if not isinstance(exc, Exception) and type(exc).__name__ != "PanicException":
            raise  # KeyboardInterrupt, SystemExit, ...
        detail = " ".join(str(exc).split())[:300]
        raise MammogramError(
            f"{label}: could not decode the RLE Lossless pixel data (truncated or corrupt?): the decoder "
            f"failed ({type(exc).__name__}: {detail})"
        ) from None
    if len(raw) != rows * cols * (bits_allocated // 8):
        raise MammogramError(
            f"{label}: the RLE Lossless pixel data decoded to {len(raw)} bytes, not the {rows} x {cols} "
            f"x {bits_allocated} bits of its header; the file is corrupt"
        )
    dtype = np.dtype(f"<{'i' if signed else 'u'}{bits_allocated // 8}")
    arr = np.frombuffer(raw, dtype).reshape(rows, cols)
    shift = bits_allocated - bits_stored
    if 0 < shift < bits_allocated:  # bits above BitsStored are not part of the value (as pydicom reads them)
        if signed:
            arr = (arr << shift) >> shift  # arithmetic shift of a signed type: sign-extends
        else:
            arr &= (1 << bits_stored) - 1
    return arr


def encode_rle(stored: np.ndarray, bits_stored: int) -> bytes:
    """One RLE Lossless frame (header and segments) of a 2-D unsigned 16-bit array, by gdcm's encoder.

    pydicom's gdcm plugin, which gives the same bytes, hands the encoded frame back through a Python
    ``str`` and re-encodes it to bytes: 20 of its 29 ms for a demo-cohort view (2000 x 1280), against 8 ms
    of encoding. Here the frame is copied once from gdcm's buffer. Raises ``RuntimeError`` where gdcm
    refuses (callers fall back to pydicom's ``Dataset.compress``).
    """
    import ctypes

    import gdcm

    if stored.dtype != np.uint16 or stored.ndim != 2:
        raise ValueError("encode_rle takes a 2-D uint16 array")
    rows, cols = stored.shape
    writer = gdcm.ImageWriter()  # owns the image; must outlive it
    image = writer.GetImage()
    image.SetNumberOfDimensions(2)
    image.SetDimensions((cols, rows, 1))
    image.SetPhotometricInterpretation(
        gdcm.PhotometricInterpretation(gdcm.PhotometricInterpretation.MONOCHROME2)
    )
    image.SetTransferSyntax(gdcm.TransferSyntax(gdcm.TransferSyntax.ImplicitVRLittleEndian))
    image.SetPixelFormat(gdcm.PixelFormat(1, 16, bits_stored, bits_stored - 1, 0))
    element = gdcm.DataElement(gdcm.Tag(0x7FE0, 0x0010))
    element.SetByteStringValue(np.ascontiguousarray(stored, "<u2").tobytes())
    image.SetDataElement(element)
    converter = gdcm.ImageChangeTransferSyntax()
    converter.SetTransferSyntax(gdcm.TransferSyntax(gdcm.TransferSyntax.RLELossless))
    converter.SetInput(image)
    if not converter.Change():
        raise RuntimeError("gdcm could not encode the image as RLE Lossless")
    # each object held in a name until the copy: the buffer belongs to them (and they to ``converter``)
    output = converter.GetOutput()
    pixel_data = output.GetDataElement()
    fragments = pixel_data.GetSequenceOfFragments()
    if fragments is None or fragments.GetNumberOfFragments() != 1:
        raise RuntimeError("gdcm's RLE output is not one fragment")
    fragment = fragments.GetFragment(0)
    value = fragment.GetByteValue()
    return ctypes.string_at(int(value.GetVoidPointer()), int(str(value.GetLength())))
