"""Reading PNG, TIFF and (8-bit) JPEG mammograms into model units.

The bit depth handed to :func:`~core.imaging.mammogram.to_model_units` is 8 for 8-bit data, 12 for 16-bit data
whose maximum is <= 4095 (kept as is) and 16 for other 16-bit data (full range, rescaled). Sizes are read from
the PNG IHDR chunk, the TIFF tags or the JPEG header and checked before any pixel is decoded. PNG and TIFF
files carry no trustworthy spacing: it comes from the caller or is the assumed default.
"""

from __future__ import annotations

import io
import re
import struct
import warnings

import numpy as np

from core.imaging.codestream import jpeg_size
from core.imaging.limits import MIN_SIDE, check_jpeg_scans, check_ratio, check_shape
from core.imaging.mammogram import (
    DEFAULT_SPACING_MM,
    MODEL_MAX,
    Mammogram,
    MammogramError,
    to_model_units,
)

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
TIFF_MAGICS = (b"II*\x00", b"MM\x00*", b"II+\x00", b"MM\x00+")
JPEG_MAGIC = b"\xff\xd8\xff"

# "R_CC", "L-MLO", "_LCC_" ... in a file name: laterality then view.
_NAME_VIEW = re.compile(r"(?:^|[^A-Za-z])([LR])[_\-]?(CC|MLO|ML|LM|XCCL|XCCM)(?:$|[^A-Za-z])", re.IGNORECASE)


def sniff(data: bytes) -> str | None:
    """Raster format of ``data`` from its magic bytes: ``"PNG"``, ``"TIFF"``, ``"JPEG"`` or None."""
    if data.startswith(PNG_MAGIC):
        return "PNG"
    if data[:4] in TIFF_MAGICS:
        return "TIFF"
    if data.startswith(JPEG_MAGIC):
        return "JPEG"
    return None


def read_raster(
    data: bytes, fmt: str, label: str, *, source_name: str, caller_spacing: tuple[float, float] | None
) -> Mammogram:
    """Decode a PNG, TIFF or JPEG held in ``data`` into a :class:`Mammogram`."""
    inverted = False
    if fmt == "TIFF":
        stored, notes, inverted = _read_tiff(data, label)
    else:
        stored, notes = _read_pil(data, fmt, label)
    pixels, bits, rule = _to_model(stored, label)
    if inverted:  # MINISWHITE: 0 is white; invert in model units, as for DICOM MONOCHROME1
        np.subtract(MODEL_MAX, pixels, out=pixels)
        rule += "; MINISWHITE inverted (4095 - v)"
    metadata = {
        "format": fmt,
        "value_rule": rule,
        "source_bits": str(bits),
        "source_dtype": str(stored.dtype),
        "stored_min": f"{float(stored.min()):.6g}",
        "stored_max": f"{float(stored.max()):.6g}",
    }
    laterality = view = None
    match = None if source_name.startswith("<") else _NAME_VIEW.search(source_name.rsplit(".", 1)[0])
    if match:
        laterality, view = match.group(1).upper(), match.group(2).upper()
        metadata["laterality_source"] = metadata["view_source"] = "file name"
    if notes:
        metadata["notes"] = "; ".join(notes)
    if caller_spacing is not None:
        spacing, source = caller_spacing, "caller"
    else:
        spacing, source = (DEFAULT_SPACING_MM, DEFAULT_SPACING_MM), f"assumed default {DEFAULT_SPACING_MM} mm"
    return Mammogram(
        pixels=pixels,
        spacing_mm=spacing,
        spacing_source=source,
        laterality=laterality,
        view=view,
        metadata=metadata,
        source_name=source_name,
    )


def _to_model(stored: np.ndarray, label: str) -> tuple[np.ndarray, int, str]:
    if stored.dtype == np.bool_:
        raise MammogramError(f"{label}: a 1-bit (binary) image is a mask, not a mammogram")
    if np.issubdtype(stored.dtype, np.floating):
        vmin, vmax = float(np.min(stored)), float(np.max(stored))
        if not (np.isfinite(vmin) and np.isfinite(vmax)) or vmin < 0 or vmax > MODEL_MAX:
            raise MammogramError(
                f"{label}: floating-point image with values {vmin:.6g}..{vmax:.6g}; only float images "
                "already in model units (0..4095) are accepted"
            )
        return stored.astype(np.float32), 12, "float image taken as model units (0..4095)"
    if not np.issubdtype(stored.dtype, np.integer):
        raise MammogramError(f"{label}: unsupported pixel type {stored.dtype}")
    vmin, vmax = int(np.min(stored)), int(np.max(stored))
    if vmin < 0:
        raise MammogramError(f"{label}: signed image with negative values (minimum {vmin}); expected >= 0")
    if vmax > 65535:
        raise MammogramError(f"{label}: values up to {vmax} exceed 16 bits")
    if stored.dtype.itemsize == 1:
        bits, why = 8, "8-bit data"
    elif vmax <= MODEL_MAX:
        bits, why = 12, "maximum <= 4095: 12-bit data kept as is"
    else:
        bits, why = 16, "16-bit data using the full range"
    return to_model_units(stored, bits), bits, f"v * 4095 / {2**bits - 1} ({why})"


def _png_size(data: bytes, label: str) -> tuple[int, int, int, int]:
    """(rows, cols, bit depth, colour type) from the IHDR chunk, without decoding."""
    if len(data) < 33 or data[12:16] != b"IHDR":
        raise MammogramError(f"{label}: truncated or corrupt PNG (no IHDR header)")
    width, height, depth, colour = struct.unpack(">IIBB", data[16:26])
    return height, width, depth, colour


def _read_pil(data: bytes, fmt: str, label: str) -> tuple[np.ndarray, list[str]]:
    from PIL import Image

    if fmt == "PNG":
        rows, cols, depth, colour = _png_size(data, label)
        check_shape(rows, cols, label)
        if depth < 8:
            raise MammogramError(f"{label}: {depth}-bit PNG (a mask or icon), not a mammogram")
        if colour in (2, 6) and depth == 16:
            raise MammogramError(f"{label}: 16-bit colour PNG; a mammogram must be a greyscale image")
        channels = {0: 1, 2: 3, 3: 1, 4: 2, 6: 4}.get(colour, 1)
        check_ratio(rows * cols * channels * depth // 8, len(data), label, "PNG image")
    elif fmt == "JPEG":
        rows, cols, components = jpeg_size(data, label)  # the SOF segment, before Pillow sees the file
        check_shape(rows or MIN_SIDE, cols, label)
        check_jpeg_scans(data, label)
        check_ratio(rows * cols * max(components, 1), len(data), label, "JPEG image")
    notes: list[str] = []
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            image = Image.open(io.BytesIO(data))  # reads the header only (JPEG: up to the SOF segment)
            cols, rows = image.size
            check_shape(rows, cols, label)
            bands = len(image.getbands())
            check_ratio(rows * cols * bands * (2 if image.mode.startswith("I;16") else 1), len(data), label,
                        f"{fmt} image")  # fmt: skip
            image.load()
        except MammogramError:
            raise
        except Exception as exc:  # Pillow raises several types for broken files
            raise MammogramError(
                f"{label}: could not decode the {fmt} file (truncated or corrupt?): {exc}"
            ) from exc
    mode = image.mode
    if mode in ("I;16", "I;16B", "I;16L", "I;16N", "L", "I", "F"):
        arr = np.asarray(image)
    elif mode in ("RGB", "RGBA", "LA", "P", "PA", "CMYK", "YCbCr"):
        arr = np.asarray(image.convert("RGBA") if mode in ("P", "PA") else image)
        arr = _grey_from_colour(arr, mode, label)
        notes.append(f"{mode} image with identical colour channels read as greyscale")
    else:
        raise MammogramError(
            f"{label}: {fmt} image mode {mode} is not supported; save it as 8/16-bit greyscale"
        )
    if mode == "I":  # Pillow widens 16-bit PNGs to int32 in some versions
        arr = arr.astype(np.int64)
    return np.ascontiguousarray(arr), notes


def _grey_from_colour(arr: np.ndarray, mode: str, label: str) -> np.ndarray:
    if arr.ndim != 3:
        raise MammogramError(f"{label}: unexpected {mode} array of shape {arr.shape}")
    channels = arr.shape[2]
    colour = arr[..., : min(3, channels)] if channels != 2 else arr[..., :1]
    if channels in (2, 4) and np.any(arr[..., -1] != arr[..., -1].flat[0]):
        raise MammogramError(f"{label}: {mode} image with transparency; a mammogram must be opaque greyscale")
    if not all(np.array_equal(colour[..., 0], colour[..., c]) for c in range(1, colour.shape[2])):
        raise MammogramError(f"{label}: colour ({mode}) image; a mammogram must be a greyscale image")
    return colour[..., 0]


def _read_tiff(data: bytes, label: str) -> tuple[np.ndarray, list[str], bool]:
    import tifffile

    from core.privacy import quiet_tifffile

    quiet_tifffile()

    try:
        with tifffile.TiffFile(io.BytesIO(data)) as tif:
            pages = tif.pages
            if len(pages) == 0:
                raise MammogramError(f"{label}: TIFF without images")
            if len(pages) > 1:
                raise MammogramError(
                    f"{label}: multi-page TIFF ({len(pages)} pages); export a single 2-D image"
                )
            page = pages[0]
            _check_tiff_page(page, label)
            rows, cols = int(page.imagelength), int(page.imagewidth)
            inverted = int(getattr(page, "photometric", 1)) == 0  # MINISWHITE: 0 is white
            if int(page.compression) == 1:  # uncompressed: the tags bound what is read
                arr = page.asarray()
            else:  # a compressed strip may inflate beyond the tags' size: decode where that is contained
                decoded = rows * cols * page.dtype.itemsize
                check_ratio(decoded, len(data), label, f"{page.compression.name} TIFF image")
                arr = _tiff_in_sandbox(data, page, rows, cols, label)
    except MammogramError:
        raise
    except Exception as exc:  # tifffile raises many types; imagecodecs may be missing for some compressions
        hint = " (compressed TIFFs may need: pip install imagecodecs)" if "imagecodecs" in str(exc) else ""
        raise MammogramError(f"{label}: could not decode the TIFF file{hint}: {exc}") from exc
    return arr, [], inverted


def _check_tiff_page(page, label: str) -> None:
    """Refuse, from the tags alone, TIFF pages that are not one plane of greyscale of an accepted size."""
    samples = int(getattr(page, "samplesperpixel", 1))
    if samples != 1:
        planar = int(getattr(page, "planarconfig", 1)) == 2
        layout = " stored as separate planes (PlanarConfiguration 2)" if planar else ""
        raise MammogramError(
            f"{label}: TIFF with {samples} samples per pixel{layout} (a colour image, shape "
            f"{tuple(int(s) for s in page.shape)}); a mammogram must be single-channel greyscale"
        )
    check_shape(int(page.imagelength), int(page.imagewidth), label)
    if len(page.shape) != 2:
        raise MammogramError(f"{label}: TIFF image of shape {tuple(page.shape)} is not 2-D")


def _tiff_in_sandbox(data: bytes, page, rows: int, cols: int, label: str) -> np.ndarray:
    from core.imaging import sandbox

    what = f"{page.compression.name} compressed TIFF image"
    arr = sandbox.decode({"kind": "tiff"}, data, (rows, cols), label=label, what=what)
    return arr.astype(page.dtype, copy=False)
