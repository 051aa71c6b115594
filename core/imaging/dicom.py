"""Reading a single-frame DICOM mammogram with pydicom 3 into model units and physical spacing.

Rules (issue 2):

- Spacing: ImagerPixelSpacing (0018,1164), else PixelSpacing (0028,0030), else NominalScannedPixelSpacing
  (0018,2010), else the caller's value, else ``DEFAULT_SPACING_MM`` marked assumed. With
  ``correct_magnification=True`` a spacing read from ImagerPixelSpacing (the detector plane) is divided by
  EstimatedRadiographicMagnificationFactor (0018,1114) to give the spacing at the breast.
- Values: the modality rescale (RescaleSlope/RescaleIntercept or a Modality LUT) is applied, then
  :func:`~core.imaging.mammogram.to_model_units` with BitsStored (widened to the smallest depth that holds the
  rescaled maximum when the rescale leaves the BitsStored range). Negative or non-finite rescaled values are
  refused. MONOCHROME1 is inverted (``4095 - v``) so that tissue is bright.
- FOR PROCESSING images are accepted and flagged in ``metadata["for_processing"]``.
- Only whitelisted, non-identifying header fields reach ``Mammogram.metadata``; the study is represented by a
  salted hash (``study_key``), never by its UID.
"""

from __future__ import annotations

import io
import math

import numpy as np

from core.errors import NotDicomError
from core.imaging.deflate import inflate_dicom, is_deflated, read_file_meta
from core.imaging.dicom_tables import (
    DECODER_PACKAGES,
    JPEG_12_BIT_PACKAGE,
    KEPT_TAGS,
    SPACING_TAGS,
    TOMOSYNTHESIS_SOP_CLASSES,
    VIEW_CODES,
    VIEW_MEANINGS,
)
from core.imaging.limits import check_shape
from core.imaging.mammogram import (
    DEFAULT_SPACING_MM,
    MODEL_MAX,
    Mammogram,
    MammogramError,
    to_model_units,
)
from core.imaging.pixeldata import decode_encapsulated, decode_native
from core.privacy import quiet_pydicom, study_key


def is_part10(data: bytes) -> bool:
    """True for DICOM Part 10 files: ``DICM`` at byte 128 (the preamble may hold anything, even a TIFF)."""
    return len(data) >= 132 and data[128:132] == b"DICM"


def read_dicom(
    data: bytes,
    label: str,
    *,
    source_name: str,
    caller_spacing: tuple[float, float] | None,
    correct_magnification: bool = False,
) -> Mammogram:
    """Decode one DICOM file held in ``data`` (see the module docstring for the rules)."""
    import pydicom

    quiet_pydicom()
    ts_note = ""
    meta, offset = read_file_meta(data)
    if is_deflated(meta):  # pydicom would inflate it whole, unbounded: inflate it within the budget first
        data = inflate_dicom(data, meta, offset, label)
        ts_note = " inflated from Deflated Explicit VR Little Endian"
    try:
        ds = pydicom.dcmread(io.BytesIO(data), force=not is_part10(data))
    except Exception as exc:  # pydicom raises many types on garbage
        raise NotDicomError(f"{label}: not a readable DICOM file ({type(exc).__name__}: {exc})") from exc
    try:
        if "PixelData" not in ds:
            if is_part10(data) and b"\xe0\x7f\x10\x00" in data:  # a (7FE0,0010) tag pydicom could not read
                raise MammogramError(f"{label}: the file is truncated: it ends inside the pixel data")
            if not any(key in ds for key in ("SOPClassUID", "Modality", "Rows", "StudyInstanceUID")):
                raise NotDicomError(f"{label}: not a readable DICOM file (no recognisable header elements)")
        ts = _transfer_syntax(ds, label)
        _check_header(ds, ts, label)
    except MammogramError:
        raise
    except Exception as exc:  # a header element pydicom cannot convert (wrong length, bad number, ...)
        raise MammogramError(f"{label}: the DICOM header is corrupt ({_cause(exc)})") from None
    stored = _decode(ds, ts, label)
    try:
        return _mammogram(ds, ts, ts_note, stored, label, source_name, caller_spacing, correct_magnification)
    except MammogramError:
        raise
    except Exception as exc:  # a header element read after decoding that pydicom cannot convert
        raise MammogramError(f"{label}: the DICOM header is corrupt ({_cause(exc)})") from None


def _mammogram(
    ds, ts, ts_note: str, stored, label: str, source_name: str, caller_spacing, correct_magnification: bool
) -> Mammogram:
    values, bits, rule = _rescale(stored, ds, label)
    photometric = str(ds.get("PhotometricInterpretation", "MONOCHROME2")).strip().upper()
    pixels = to_model_units(values, bits)
    if photometric == "MONOCHROME1":
        np.subtract(MODEL_MAX, pixels, out=pixels)
        rule += "; MONOCHROME1 inverted (4095 - v)"

    notes: list[str] = []
    spacing, spacing_source = _spacing(ds, caller_spacing, correct_magnification, notes)
    laterality, lat_source = _laterality(ds)
    view, view_source = _view(ds)
    metadata = _metadata(ds)
    intent = str(ds.get("PresentationIntentType", "")).strip().upper()
    metadata.update(
        format="DICOM",
        transfer_syntax=f"{ts.name} ({ts}){ts_note}",
        value_rule=rule,
        source_bits=str(bits),
        stored_min=_fmt(float(values.min())),
        stored_max=_fmt(float(values.max())),
        for_processing="yes" if intent == "FOR PROCESSING" else "no",
    )
    if intent == "FOR PROCESSING":
        notes.append("FOR PROCESSING image: raw detector data, not the image a radiologist reads")
    if lat_source:
        metadata["laterality_source"] = lat_source
    if view_source:
        metadata["view_source"] = view_source
    study_uid = str(ds.get("StudyInstanceUID", "")).strip()
    if study_uid:
        metadata["study_key"] = study_key(study_uid)
    if notes:
        metadata["notes"] = "; ".join(notes)
    return Mammogram(
        pixels=pixels,
        spacing_mm=spacing,
        spacing_source=spacing_source,
        laterality=laterality,
        view=view,
        metadata=metadata,
        source_name=source_name,
        window=_window(ds, bits, photometric),
    )


def _transfer_syntax(ds, label: str):
    from pydicom.uid import UID, ExplicitVRLittleEndian, ImplicitVRLittleEndian

    meta = getattr(ds, "file_meta", None)
    uid = meta.get("TransferSyntaxUID") if meta is not None else None
    if uid is None:
        # A bare dataset without file meta: use the encoding pydicom detected while reading it.
        implicit = getattr(ds, "original_encoding", (True, True))[0]
        uid = ImplicitVRLittleEndian if implicit else ExplicitVRLittleEndian
        ds.file_meta.TransferSyntaxUID = uid
    uid = UID(str(uid).strip())
    if not uid.is_transfer_syntax:
        raise MammogramError(f"{label}: unknown transfer syntax {uid}; cannot decode its pixel data")
    return uid


def _check_header(ds, ts, label: str) -> None:
    if "DirectoryRecordSequence" in ds:
        raise MammogramError(f"{label}: this is a DICOMDIR (an index of files), not an image")
    if "PixelData" not in ds:
        other = [k for k in ("FloatPixelData", "DoubleFloatPixelData") if k in ds]
        what = f"only {other[0]}, which is not supported" if other else "no pixel data"
        raise MammogramError(
            f"{label}: the DICOM has {what} (it may be a report, presentation state or another "
            "non-image object)"
        )
    for key in ("Rows", "Columns"):
        if ds.get(key) is None:
            raise MammogramError(
                f"{label}: the DICOM header has no {key} (0028,00{'10' if key == 'Rows' else '11'})"
            )
    frames = _int(ds.get("NumberOfFrames", 1), 1)
    sop = str(ds.get("SOPClassUID", ""))
    if frames > 1 or sop in TOMOSYNTHESIS_SOP_CLASSES:
        raise MammogramError(
            f"{label}: multi-frame DICOM ({frames} frames; breast tomosynthesis or a cine) is not supported; "
            "export a single 2-D image, e.g. the synthesised 2-D view"
        )
    samples = _int(ds.get("SamplesPerPixel", 1), 1)
    if samples != 1:
        photometric = ds.get("PhotometricInterpretation", "?")
        raise MammogramError(
            f"{label}: colour DICOM ({samples} samples per pixel, {photometric}); a mammogram must be "
            "greyscale"
        )
    photometric = str(ds.get("PhotometricInterpretation", "MONOCHROME2")).strip().upper()
    if photometric not in ("MONOCHROME1", "MONOCHROME2"):
        raise MammogramError(f"{label}: PhotometricInterpretation {photometric} is not a greyscale image")
    rows, cols = int(ds.Rows), int(ds.Columns)
    check_shape(rows, cols, label)
    bits_alloc = _int(ds.get("BitsAllocated", 16), 16)
    bits_stored = _int(ds.get("BitsStored", bits_alloc), bits_alloc)
    if bits_alloc not in (8, 16) or not 1 <= bits_stored <= bits_alloc:
        raise MammogramError(
            f"{label}: BitsAllocated {bits_alloc} / BitsStored {bits_stored} is not supported "
            "(expected 8 or 16 bits allocated, at most 16 stored)"
        )
    if not ts.is_encapsulated:
        expected = rows * cols * bits_alloc // 8
        got = len(ds.PixelData)
        if got < expected:
            raise MammogramError(
                f"{label}: pixel data is truncated: {got} bytes where {rows} x {cols} x {bits_alloc} bits "
                f"needs {expected}"
            )


def _decode(ds, ts, label: str) -> np.ndarray:
    from pydicom.pixels import get_decoder

    try:
        decoder = get_decoder(ts)
    except NotImplementedError as exc:
        raise MammogramError(
            f"{label}: pixel data compressed as {ts.name} ({ts}), which this tool cannot decode; "
            "convert the file to an uncompressed or JPEG 2000 / JPEG-LS / JPEG lossless / RLE DICOM"
        ) from exc
    if not decoder.is_available:
        what = DECODER_PACKAGES.get(
            str(ts), ", ".join(decoder.missing_dependencies) or "a pydicom decoder plugin"
        )
        raise MammogramError(f"{label}: no decoder installed for {ts.name} ({ts}); install {what}")
    try:
        arr = decode_encapsulated(ds, ts, label) if ts.is_encapsulated else decode_native(ds, label)
    except MammogramError as exc:
        if str(ts) == "1.2.840.10008.1.2.4.51" and _int(ds.get("BitsStored", 8), 8) > 8:
            raise MammogramError(
                f"{label}: 12-bit JPEG Extended pixel data: no installed decoder supports it; install "
                f"{JPEG_12_BIT_PACKAGE} or convert it to an uncompressed DICOM (e.g. dcmdjpeg) ({exc})"
            ) from None
        raise
    except MemoryError as exc:
        raise MammogramError(f"{label}: not enough memory to decode the pixel data") from exc
    except Exception as exc:  # the native reader on inconsistent attributes
        raise MammogramError(
            f"{label}: could not decode the {ts.name} pixel data (truncated or corrupt?): {_cause(exc)}"
        ) from exc
    if arr.ndim != 2:
        raise MammogramError(f"{label}: decoded pixel data has shape {arr.shape}, expected one 2-D frame")
    return arr


def _cause(exc: BaseException) -> str:
    """An exception as one short line for a message."""
    return f"{type(exc).__name__}: {' '.join(str(exc).split())}"[:240]


def _rescale(stored: np.ndarray, ds, label: str) -> tuple[np.ndarray, int, str]:
    """Apply the modality rescale; return values, the bit depth of their scale, and the rule as text."""
    bits = _int(ds.get("BitsStored", ds.get("BitsAllocated", 16)), 16)
    if "ModalityLUTSequence" in ds:
        values, bits = _modality_lut(stored, ds, label, bits)
        desc = "Modality LUT"
    else:
        slope = _float(ds.get("RescaleSlope", 1.0), label, "RescaleSlope (0028,1053)")
        intercept = _float(ds.get("RescaleIntercept", 0.0), label, "RescaleIntercept (0028,1052)")
        if slope == 0.0:
            raise MammogramError(f"{label}: RescaleSlope (0028,1053) is 0, which would erase the image")
        if slope == 1.0 and intercept == 0.0:
            values = stored
            desc = ""
        else:
            values = stored.astype(np.float64) * slope + intercept
            desc = f"rescale {_fmt(slope)} * v + {_fmt(intercept)}"
    vmin, vmax = float(np.min(values)), float(np.max(values))
    if not (math.isfinite(vmin) and math.isfinite(vmax)):
        raise MammogramError(f"{label}: the modality rescale gives non-finite values")
    if vmin < 0:
        raise MammogramError(
            f"{label}: pixel values after the modality rescale are negative (minimum {_fmt(vmin)}; "
            "check PixelRepresentation, RescaleSlope and RescaleIntercept); model units need values >= 0"
        )
    if vmax > 65535:
        raise MammogramError(
            f"{label}: pixel values after the modality rescale exceed 16 bits (maximum {_fmt(vmax)})"
        )
    widened = bits
    while vmax > 2**widened - 1:
        widened += 1
    rule = f"v * 4095 / {2**widened - 1} (BitsStored {bits}"
    rule += f", widened to {widened} bits to hold the rescaled maximum)" if widened != bits else ")"
    if desc:
        rule = f"{desc}, then {rule}"
    return values, widened, rule


def _modality_lut(stored: np.ndarray, ds, label: str, bits: int) -> tuple[np.ndarray, int]:
    """Apply a Modality LUT (0028,3000) as PS3.3 C.11.1 defines it; a malformed one gets a plain message.

    Applied here rather than by pydicom, whose ``apply_modality_lut`` fails on LUTs of 9-15 bits per entry
    (found in mammography files): value ``v`` maps to ``LUT[clip(v - first, 0, entries - 1)]``.
    """
    where = f"{label}: the Modality LUT (0028,3000) is malformed"
    try:
        item = ds.ModalityLUTSequence[0]
        descriptor = [int(v) for v in item.LUTDescriptor]
        data = item.get("LUTData")
    except Exception as exc:
        raise MammogramError(f"{where}: {_cause(exc)}") from None
    if len(descriptor) != 3 or data is None:
        raise MammogramError(f"{where}: it needs a 3-value LUTDescriptor and LUTData")
    entries, first, entry_bits = descriptor[0] or 65536, descriptor[1], descriptor[2]
    if not 8 <= entry_bits <= 16:
        raise MammogramError(f"{where}: LUTDescriptor gives {entry_bits} bits per entry (expected 8..16)")
    if isinstance(data, bytes):
        lut = np.frombuffer(data, np.uint8 if entry_bits == 8 and len(data) == entries else "<u2")
    else:
        lut = np.asarray(data if isinstance(data, (list, tuple)) else [data])
    if len(lut) != entries or not np.issubdtype(lut.dtype, np.integer):
        raise MammogramError(f"{where}: LUTDescriptor declares {entries} entries, LUTData holds {len(lut)}")
    index = stored if first == 0 else stored.astype(np.int32) - first
    values = lut.astype(np.uint16)[np.clip(index, 0, entries - 1)]
    return values, entry_bits


def _spacing(ds, caller, correct_magnification: bool, notes: list[str]) -> tuple[tuple[float, float], str]:
    for keyword, source in SPACING_TAGS:
        if keyword not in ds:
            continue
        pair = _spacing_pair(ds.get(keyword))
        if pair is None:
            notes.append(f"ignored invalid {keyword} {ds.get(keyword)!r}")
            continue
        if caller is not None:
            notes.append(f"caller spacing {caller} ignored: the header gives {keyword}")
        if correct_magnification and keyword == "ImagerPixelSpacing":
            factor = ds.get("EstimatedRadiographicMagnificationFactor")
            try:
                factor = float(factor) if factor is not None else None
            except (TypeError, ValueError):
                factor = None
            if factor is not None and math.isfinite(factor) and factor > 0:
                pair = (pair[0] / factor, pair[1] / factor)
                source += f" / EstimatedRadiographicMagnificationFactor {_fmt(factor)}"
            else:
                notes.append("no valid EstimatedRadiographicMagnificationFactor: spacing not corrected")
        return pair, source
    if caller is not None:
        return caller, "caller"
    return (DEFAULT_SPACING_MM, DEFAULT_SPACING_MM), f"assumed default {DEFAULT_SPACING_MM} mm"


def _spacing_pair(value) -> tuple[float, float] | None:
    try:
        values = [float(v) for v in _as_list(value)]
    except (TypeError, ValueError):
        return None
    if len(values) == 1:
        values = values * 2
    if len(values) != 2 or not all(math.isfinite(v) and 0 < v <= 10 for v in values):
        return None
    return values[0], values[1]


def _laterality(ds) -> tuple[str | None, str | None]:
    for keyword, source in (
        ("ImageLaterality", "ImageLaterality (0020,0062)"),
        ("Laterality", "Laterality (0020,0060)"),
    ):
        value = str(ds.get(keyword, "") or "").strip().upper()
        if value in ("L", "R"):
            return value, source
    return None, None


def _view(ds) -> tuple[str | None, str | None]:
    value = str(ds.get("ViewPosition", "") or "").strip().upper()
    if value:
        return value, "ViewPosition (0018,5101)"
    for item in ds.get("ViewCodeSequence", []) or []:
        code = str(item.get("CodeValue", "") or "").strip()
        meaning = str(item.get("CodeMeaning", "") or "").strip().lower()
        view = VIEW_CODES.get(code) or VIEW_MEANINGS.get(meaning)
        if view:
            return view, "ViewCodeSequence (0054,0220)"
    return None, None


def _window(ds, bits: int, photometric: str) -> tuple[float, float] | None:
    centre, width = ds.get("WindowCenter"), ds.get("WindowWidth")
    if centre is None or width is None:
        return None
    try:
        centre, width = float(_as_list(centre)[0]), float(_as_list(width)[0])
    except (TypeError, ValueError, IndexError):
        return None
    if not (math.isfinite(centre) and math.isfinite(width)) or width <= 0:
        return None
    scale = MODEL_MAX / (2**bits - 1)
    centre, width = centre * scale, width * scale
    if photometric == "MONOCHROME1":
        centre = MODEL_MAX - centre
    return centre, width


def _metadata(ds) -> dict[str, str]:
    from pydicom.uid import UID

    out: dict[str, str] = {}
    for keyword in KEPT_TAGS:
        value = ds.get(keyword)
        if value is None or value == "":
            continue
        if keyword == "SOPClassUID":
            value = UID(str(value)).name
        elif isinstance(value, (list, tuple)) or type(value).__name__ == "MultiValue":
            value = "\\".join(str(v) for v in value)
        out[keyword] = str(value).strip()
    return out


def _as_list(value) -> list:
    """A DICOM value as a list: multi-valued elements as their items, anything else as one item."""
    if isinstance(value, (str, bytes)) or not hasattr(value, "__iter__"):
        return [value]
    return list(value)


def _int(value, default: int) -> int:
    try:
        return int(value)
    except (TypeError, ValueError):
        return default


def _float(value, label: str, what: str) -> float:
    try:
        out = float(value)
    except (TypeError, ValueError) as exc:
        raise MammogramError(f"{label}: {what} is not a number: {value!r}") from exc
    if not math.isfinite(out):
        raise MammogramError(f"{label}: {what} is {value!r}; it must be a finite number")
    return out


def _fmt(value: float) -> str:
    return f"{value:.6g}"
