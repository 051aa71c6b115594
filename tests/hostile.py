"""A hostile corpus generated at test time: seeded mutations of small valid files, bombs and special files.

Everything is made from recipes (a seed image, an encoder, a mutation seed), never from stored blobs, so the
corpus is the same on every run and every case can be rebuilt from its id.

Seed files: 12-bit MONOCHROME2 DICOMs of a smooth pattern plus noise, 64 x 64 to 256 x 192, encoded as RLE
(pydicom's encoder), JPEG 2000 lossless (OpenJPEG through pylibjpeg), JPEG lossless SV1 (gdcm) and JPEG-LS
(CharLS through pyjpegls), with fixed UIDs. Mutation families (:func:`mutate`):

``frame``     mutate the compressed frame anywhere, re-encapsulate it (reaches the decoders)
``interior``  mutate the frame but keep its first 20 bytes and its end marker (passes the stream checks)
``file``      mutate the file's bytes after the start of the pixel data element (breaks the encapsulation)
``header``    set an image pixel attribute (Rows, Columns, BitsAllocated, ...) to an unusual value

Each family applies 1-3 of: bit flips, random bytes, a truncation, a duplicated chunk, an "interesting"
4-byte value (0, -1, 2**31 - 1, 2**31).
"""

from __future__ import annotations

import io
import tempfile
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pydicom
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.encaps import encapsulate, generate_frames
from pydicom.uid import (
    ExplicitVRLittleEndian,
    JPEG2000Lossless,
    JPEGLosslessSV1,
    JPEGLSLossless,
    RLELossless,
)

MG = "1.2.840.10008.5.1.4.1.1.1.2"
SYNTAXES = {"rle": RLELossless, "j2k": JPEG2000Lossless, "jll": JPEGLosslessSV1, "jls": JPEGLSLossless}
SHAPES = ((128, 96), (64, 64), (256, 192))
FAMILIES = ("frame", "interior", "file", "header")
INTERESTING = (b"\xff\xff\xff\xff", b"\x00\x00\x00\x00", b"\x7f\xff\xff\xff", b"\x80\x00\x00\x00")
HEADER_EDITS = (
    ("Rows", (0, 1, 7, 65535, 96, 129)),
    ("Columns", (0, 1, 7, 65535, 64, 97)),
    ("BitsAllocated", (1, 8, 12, 32)),
    ("BitsStored", (1, 8, 16)),
    ("HighBit", (0, 15, 31)),
    ("PixelRepresentation", (1,)),
    ("SamplesPerPixel", (3,)),
    ("PhotometricInterpretation", ("RGB", "YBR_FULL", "PALETTE COLOR")),
    ("NumberOfFrames", (2, 0)),
)


def pattern(rows: int = 128, cols: int = 96, seed: int = 0) -> np.ndarray:
    """12-bit test image: a smooth pattern plus uniform noise (compresses about 2:1, like a mammogram)."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:rows, 0:cols]
    base = (np.sin(yy / 7.0) + np.cos(xx / 5.0) + 2) * 900
    return (base + rng.integers(0, 80, (rows, cols))).astype(np.uint16)


def dataset(arr: np.ndarray, **tags) -> Dataset:
    """An uncompressed single-frame MG dataset with fixed UIDs (so that encoded files are reproducible)."""
    ds = Dataset()
    ds.file_meta = FileMetaDataset()
    ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds.file_meta.MediaStorageSOPClassUID = MG
    ds.file_meta.MediaStorageSOPInstanceUID = "1.2.826.0.1.3680043.10.1543.1"
    ds.SOPClassUID = MG
    ds.SOPInstanceUID = ds.file_meta.MediaStorageSOPInstanceUID
    ds.StudyInstanceUID = "1.2.826.0.1.3680043.10.1543.2"
    ds.SeriesInstanceUID = "1.2.826.0.1.3680043.10.1543.3"
    ds.Modality = "MG"
    ds.PatientName = "HOSTILE^CORPUS"
    ds.Rows, ds.Columns = arr.shape
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = "MONOCHROME2"
    ds.BitsAllocated = 8 if arr.dtype.itemsize == 1 else 16
    ds.BitsStored = 8 if arr.dtype.itemsize == 1 else 12
    ds.HighBit = ds.BitsStored - 1
    ds.PixelRepresentation = 0
    ds.PixelData = arr.tobytes()
    for key, value in tags.items():
        setattr(ds, key, value)
    return ds


def to_bytes(ds: Dataset) -> bytes:
    buffer = io.BytesIO()
    ds.save_as(buffer, enforce_file_format=True)
    return buffer.getvalue()


def encode(kind: str, arr: np.ndarray) -> bytes:
    """A DICOM file of ``arr`` compressed with the transfer syntax ``kind`` ("rle", "j2k", "jll", "jls")."""
    ds = dataset(arr)
    if kind == "jll":
        return gdcm_jpeg_lossless(ds)
    plugin = {"rle": "pydicom", "j2k": "pylibjpeg", "jls": "pyjpegls"}[kind]
    ds.compress(SYNTAXES[kind], encoding_plugin=plugin)
    return to_bytes(ds)


def gdcm_jpeg_lossless(ds: Dataset) -> bytes:
    """``ds`` re-encoded by python-gdcm as JPEG Lossless, Process 14 SV1 (pydicom cannot encode it)."""
    import gdcm

    with tempfile.TemporaryDirectory() as tmp:
        plain, out = Path(tmp) / "plain.dcm", Path(tmp) / "jll.dcm"
        ds.save_as(plain, enforce_file_format=True)
        reader = gdcm.ImageReader()
        reader.SetFileName(str(plain))
        assert reader.Read()
        change = gdcm.ImageChangeTransferSyntax()
        change.SetTransferSyntax(gdcm.TransferSyntax(gdcm.TransferSyntax.JPEGLosslessProcess14_1))
        change.SetInput(reader.GetImage())
        assert change.Change()
        writer = gdcm.ImageWriter()
        writer.SetFileName(str(out))
        writer.SetFile(reader.GetFile())
        writer.SetImage(change.GetOutput())
        assert writer.Write()
        return out.read_bytes()


def seed_files() -> dict[tuple[str, tuple[int, int]], bytes]:
    """Every (kind, shape) seed file of the corpus."""
    return {(kind, shape): encode(kind, pattern(*shape)) for kind in SYNTAXES for shape in SHAPES}


def _edit(buf: bytearray, rng: np.random.Generator, lo: int) -> bytearray:
    for _ in range(int(rng.integers(1, 4))):
        if len(buf) <= lo + 16:
            break
        op = int(rng.integers(0, 5))
        if op == 0:  # bit flips
            for _ in range(int(rng.integers(1, 9))):
                i = int(rng.integers(lo, len(buf)))
                buf[i] ^= 1 << int(rng.integers(0, 8))
        elif op == 1:  # random bytes
            i, k = int(rng.integers(lo, len(buf))), int(rng.integers(1, 16))
            buf[i : i + k] = rng.bytes(k)
        elif op == 2:  # truncation
            buf = buf[: int(rng.integers(lo, len(buf)))]
        elif op == 3:  # a duplicated chunk
            i, k, j = (
                int(rng.integers(lo, len(buf))),
                int(rng.integers(1, 256)),
                int(rng.integers(lo, len(buf))),
            )
            buf[j:j] = buf[i : i + k]
        else:  # an interesting 4-byte value
            i = int(rng.integers(lo, len(buf) - 4))
            buf[i : i + 4] = INTERESTING[int(rng.integers(0, len(INTERESTING)))]
    return buf


def mutate(data: bytes, family: str, seed: int) -> bytes:
    """One mutation of a compressed seed file (module docstring); same arguments, same bytes."""
    rng = np.random.default_rng(seed)
    ds = pydicom.dcmread(io.BytesIO(data))
    if family == "header":
        keyword, values = HEADER_EDITS[int(rng.integers(0, len(HEADER_EDITS)))]
        setattr(ds, keyword, values[int(rng.integers(0, len(values)))])
        return to_bytes(ds)
    if family == "file":
        start = data.rfind(b"\xe0\x7f\x10\x00")
        return bytes(_edit(bytearray(data), rng, start + 12))
    frame = next(generate_frames(ds.PixelData, number_of_frames=1))
    if family == "interior":
        body = _edit(bytearray(frame[:-2]), rng, 20)
        new = bytes(body) + frame[-2:]
    else:
        new = bytes(_edit(bytearray(frame), rng, 0))
    ds.PixelData = encapsulate([new])
    return to_bytes(ds)


def dicom_cases(per_seed: int, seeds=None) -> Iterator[tuple[str, bytes]]:
    """``(case_id, bytes)`` for ``per_seed`` mutations of each seed file, families in turn."""
    seeds = seed_files() if seeds is None else seeds
    for (kind, shape), data in seeds.items():
        for n in range(per_seed):
            family = FAMILIES[n % len(FAMILIES)]
            yield f"{kind}-{shape[0]}x{shape[1]}-{family}-{n}", mutate(data, family, n)


def raster_cases(per_format: int) -> Iterator[tuple[str, bytes]]:
    """Mutations of small PNG, TIFF (uncompressed and deflate) and JPEG files (decoded in-process)."""
    import tifffile
    from PIL import Image

    arr16, arr8 = pattern(96, 80), (pattern(96, 80) >> 4).astype(np.uint8)
    seeds = {}
    buffer = io.BytesIO()
    Image.fromarray(arr16).save(buffer, format="PNG")
    seeds["png"] = buffer.getvalue()
    buffer = io.BytesIO()
    Image.fromarray(arr8).save(buffer, format="JPEG", quality=90)
    seeds["jpeg"] = buffer.getvalue()
    for name, compression in (("tiff", None), ("tiff-zlib", "zlib")):
        buffer = io.BytesIO()
        tifffile.imwrite(buffer, arr16, compression=compression)
        seeds[name] = buffer.getvalue()
    for name, data in seeds.items():
        for n in range(per_format):
            rng = np.random.default_rng(10_000 + n)
            yield f"{name}-{n}", bytes(_edit(bytearray(data), rng, 8 if n % 2 else 0))
