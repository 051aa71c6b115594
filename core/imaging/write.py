"""Writers for images in model units: a 12-bit DICOM that keeps the geometry, or a 16-bit PNG.

Both store ``round(clip(v, 0, 4095))``: values that a perturbation pushed outside 0..4095 (e.g. additive
noise) are clipped, and fractions rounded, so that reading the file back with :func:`load_mammogram` gives the
same integers in model units. Neither writes any patient identifier.
"""

from __future__ import annotations

import datetime as _dt
import os
from pathlib import Path

import numpy as np

from core.imaging.mammogram import MODEL_MAX, Mammogram, MammogramError, parse_spacing

MG_FOR_PRESENTATION = "1.2.840.10008.5.1.4.1.1.1.2"
"""SOP class: Digital Mammography X-Ray Image Storage - For Presentation."""

_VIEW_CODES = {
    "CC": ("R-10242", "cranio-caudal"),
    "MLO": ("R-10226", "medio-lateral oblique"),
    "ML": ("R-10224", "medio-lateral"),
    "LM": ("R-10228", "latero-medial"),
    "XCCL": ("R-1024A", "cranio-caudal exaggerated laterally"),
    "XCCM": ("R-1024B", "cranio-caudal exaggerated medially"),
}


def model_units_to_uint16(pixels: np.ndarray, label: str = "image") -> tuple[np.ndarray, int]:
    """Round and clip model units to uint16 0..4095; return the array and how many pixels were clipped."""
    arr = np.asarray(pixels)
    if arr.ndim != 2 or arr.size == 0:
        raise MammogramError(f"{label}: expected a non-empty 2-D image, got shape {arr.shape}")
    if not (np.issubdtype(arr.dtype, np.floating) or np.issubdtype(arr.dtype, np.integer)):
        raise MammogramError(f"{label}: pixels must be real numbers, got dtype {arr.dtype}")
    if np.issubdtype(arr.dtype, np.floating) and not np.all(np.isfinite(arr)):
        raise MammogramError(f"{label}: the image holds NaN or infinite values; nothing was written")
    clipped = int(np.count_nonzero((arr < 0) | (arr > MODEL_MAX)))
    out = np.clip(np.rint(arr), 0, MODEL_MAX).astype(np.uint16)
    return out, clipped


def save_png(image: Mammogram | np.ndarray, path: str | os.PathLike) -> Path:
    """Write a 16-bit greyscale PNG holding model units (0..4095).

    Parameters
    ----------
    image : Mammogram or numpy.ndarray
        2-D pixels in model units; values are rounded and clipped to 0..4095.
    path : str or os.PathLike
        Output file; its folder must exist.

    Returns
    -------
    pathlib.Path
        The written file. Loading it gives the same values (a maximum <= 4095 is kept as is).
    """
    from PIL import Image

    path = Path(path)
    pixels = image.pixels if isinstance(image, Mammogram) else image
    arr, _ = model_units_to_uint16(pixels, str(path))
    try:
        Image.fromarray(arr).save(path, format="PNG")
    except OSError as exc:
        raise MammogramError(f"{path}: cannot write the PNG ({exc})") from exc
    return path


def set_pixels_12bit(ds, stored: np.ndarray) -> None:
    """Set the pixel module of ``ds``: single-frame MONOCHROME2, 12 bits stored in 16, unsigned, lossless.

    ``stored`` is a 2-D integer array of values 0..4095 (the caller rounds and clips).
    """
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = "MONOCHROME2"
    ds.Rows, ds.Columns = stored.shape
    ds.BitsAllocated = 16
    ds.BitsStored = 12
    ds.HighBit = 11
    ds.PixelRepresentation = 0
    ds.LossyImageCompression = "00"
    ds.PixelData = np.ascontiguousarray(stored).astype("<u2", copy=False).tobytes()


def mammography_dataset(
    stored: np.ndarray,
    *,
    sop_uid: str,
    implementation_uid: str | None = None,
    implementation_version: str | None = None,
    **attributes: object,
):
    """The one DICOM dataset builder of the project (``save_dicom``, the synthetic cohort): a Digital
    Mammography X-Ray Image, For Presentation, Explicit VR Little Endian, with 12-bit MONOCHROME2 pixels.

    Parameters
    ----------
    stored : 2-D integer array
        Stored values 0..4095 (:func:`set_pixels_12bit`).
    sop_uid : str
        SOP Instance UID (also the file meta's MediaStorageSOPInstanceUID).
    implementation_uid, implementation_version : str, optional
        The file meta's ImplementationClassUID (default pydicom's) and ImplementationVersionName.
    **attributes
        Further data elements by DICOM keyword (``PatientID="..."``...).

    Returns
    -------
    pydicom.dataset.Dataset
        Ready for ``save_as(path, enforce_file_format=True)``.
    """
    from pydicom.dataset import Dataset, FileMetaDataset
    from pydicom.uid import PYDICOM_IMPLEMENTATION_UID, ExplicitVRLittleEndian

    ds = Dataset()
    ds.file_meta = FileMetaDataset()
    ds.file_meta.MediaStorageSOPClassUID = MG_FOR_PRESENTATION
    ds.file_meta.MediaStorageSOPInstanceUID = sop_uid
    ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds.file_meta.ImplementationClassUID = implementation_uid or PYDICOM_IMPLEMENTATION_UID
    if implementation_version:
        ds.file_meta.ImplementationVersionName = implementation_version
    ds.SpecificCharacterSet = "ISO_IR 100"
    ds.SOPClassUID = MG_FOR_PRESENTATION
    ds.SOPInstanceUID = sop_uid
    ds.Modality = "MG"
    ds.PresentationIntentType = "FOR PRESENTATION"
    for keyword, value in attributes.items():
        setattr(ds, keyword, value)
    set_pixels_12bit(ds, stored)
    return ds


def save_dicom(
    image: Mammogram | np.ndarray,
    path: str | os.PathLike,
    *,
    template: Mammogram | None = None,
    spacing_mm: float | tuple[float, float] | None = None,
    derivation: str | None = None,
    series_description: str | None = None,
) -> Path:
    """Write a single-frame 12-bit MONOCHROME2 mammography DICOM (For Presentation, DERIVED) in model units.

    The geometry (rows, columns, spacing, laterality, view, window) comes from ``template`` (default:
    ``image`` when it is a Mammogram). New Study/Series/SOP Instance UIDs are generated; when the template
    carries a ``study_key`` the study UID is derived from it, so derived images of one study share a study. No
    patient identifiers are written (the Type 2 patient attributes are left empty and PatientIdentityRemoved
    is YES). An assumed spacing is not written as a spacing tag (it would look measured on reading back); it
    is noted in ImageComments instead.

    Parameters
    ----------
    image : Mammogram or numpy.ndarray
        2-D pixels in model units; values are rounded and clipped to 0..4095.
    path : str or os.PathLike
        Output file; its folder must exist.
    template : Mammogram, optional
        Source of geometry and header facts.
    spacing_mm : float or (float, float), optional
        Spacing (row, col) in mm, overriding the template's.
    derivation : str, optional
        DerivationDescription (0008,2111), e.g. ``"lowpass R=2 cycles/mm (ideal)"``.
    series_description : str, optional
        SeriesDescription (0008,103E); default: the derivation.

    Returns
    -------
    pathlib.Path
    """
    from pydicom.uid import generate_uid

    path = Path(path)
    label = str(path)
    if template is None and isinstance(image, Mammogram):
        template = image
    pixels = image.pixels if isinstance(image, Mammogram) else image
    arr, clipped = model_units_to_uint16(pixels, label)
    if template is not None and template.pixels.shape != arr.shape:
        raise MammogramError(
            f"{label}: image shape {arr.shape} differs from the template's {template.pixels.shape}"
        )
    spacing = parse_spacing(spacing_mm, label)
    spacing_source = "caller"
    if spacing is None and template is not None:
        spacing, spacing_source = template.spacing_mm, template.spacing_source
    meta = template.metadata if template is not None else {}
    ds = mammography_dataset(arr, sop_uid=generate_uid(), **_derived_attributes(meta.get("study_key")))
    _describe(ds, meta, derivation, series_description)
    _geometry(ds, template, meta, spacing, spacing_source, clipped)
    try:
        ds.save_as(path, enforce_file_format=True)
    except OSError as exc:
        raise MammogramError(f"{label}: cannot write the DICOM ({exc.strerror or exc})") from exc
    return path


def _derived_attributes(study_key: str | None) -> dict[str, object]:
    """The fixed attributes of a derived image: no patient identifiers, new UIDs (the study's derived from
    ``study_key`` when there is one), today's content date, model units as stored values."""
    from pydicom.uid import generate_uid

    now = _dt.datetime.now()
    study_uid = generate_uid(entropy_srcs=["mammo-robust study", study_key]) if study_key else generate_uid()
    return dict(
        ImageType=["DERIVED", "SECONDARY"],
        PatientName="",
        PatientID="",
        PatientBirthDate="",
        PatientSex="",
        PatientIdentityRemoved="YES",
        DeidentificationMethod="mammo-robust: written without patient identifiers",
        StudyInstanceUID=study_uid,
        SeriesInstanceUID=generate_uid(),
        StudyDate="",
        StudyTime="",
        AccessionNumber="",
        StudyID="",
        ReferringPhysicianName="",
        ContentDate=now.strftime("%Y%m%d"),
        ContentTime=now.strftime("%H%M%S"),
        SeriesNumber=900,
        InstanceNumber=1,
        Manufacturer="mammo-robustness-explorer",
        RescaleIntercept="0",
        RescaleSlope="1",
        RescaleType="US",
        PresentationLUTShape="IDENTITY",
    )


def _describe(ds, meta: dict[str, str], derivation: str | None, series_description: str | None) -> None:
    """The source equipment, burned-in annotation flag, derivation and series description."""
    from pydicom.sequence import Sequence

    if meta.get("Manufacturer"):
        ds.ContributingEquipmentSequence = Sequence([_contributing(meta)])
    if meta.get("BurnedInAnnotation"):
        ds.BurnedInAnnotation = meta["BurnedInAnnotation"]
    if derivation:
        ds.DerivationDescription = derivation[:1024]
    if series_description or derivation:
        ds.SeriesDescription = (series_description or derivation or "")[:64]


def _geometry(ds, template, meta, spacing, spacing_source: str, clipped: int) -> None:
    """Laterality, orientation, view, spacing (a measured one as its own tag, an assumed one only in
    ImageComments), clipping note and display window."""
    from pydicom.dataset import Dataset
    from pydicom.sequence import Sequence

    if template is not None and template.laterality:
        ds.ImageLaterality = template.laterality
    if meta.get("PatientOrientation"):  # row and column directions, e.g. "A\\R": part of the geometry
        ds.PatientOrientation = meta["PatientOrientation"].split("\\")[:2]
    if template is not None and template.view:
        ds.ViewPosition = template.view
        if template.view in _VIEW_CODES:
            code, meaning = _VIEW_CODES[template.view]
            item = Dataset()
            item.CodeValue, item.CodingSchemeDesignator, item.CodeMeaning = code, "SRT", meaning
            ds.ViewCodeSequence = Sequence([item])
    comments = []
    if spacing is not None and "assumed" not in spacing_source:
        values = [f"{v:.6g}" for v in spacing]
        if spacing_source.startswith("PixelSpacing"):
            ds.PixelSpacing = values
        elif spacing_source.startswith("NominalScannedPixelSpacing"):
            ds.NominalScannedPixelSpacing = values
        else:
            ds.ImagerPixelSpacing = values
    elif spacing is not None:
        comments.append(
            f"pixel spacing unknown (the source's {spacing[0]:.6g} x {spacing[1]:.6g} mm was assumed)"
        )
    if clipped:
        comments.append(f"{clipped} pixels clipped to 0..4095")
    if comments:
        ds.ImageComments = "; ".join(comments)[:10240]
    if template is not None and template.window is not None:
        centre, width = template.window
        ds.WindowCenter = f"{centre:.6g}"
        ds.WindowWidth = f"{max(width, 1.0):.6g}"


def _contributing(meta: dict[str, str]):
    from pydicom.dataset import Dataset

    item = Dataset()
    item.Manufacturer = meta["Manufacturer"][:64]
    if meta.get("ManufacturerModelName"):
        item.ManufacturerModelName = meta["ManufacturerModelName"][:64]
    return item
