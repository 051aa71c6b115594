"""Write a synthetic view as a DICOM Digital Mammography X-Ray Image, For Presentation.

Only synthetic identifiers are written (``SYNTHETIC^...`` names, ``SYN-...`` ids, a fixed placeholder study
date); UIDs are derived from the cohort seed and image id (``2.25.`` hash UIDs), so the same seed gives the
same bytes.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import ExplicitVRLittleEndian

from core.imaging.write import set_pixels_12bit

#: SOP class "Digital Mammography X-Ray Image Storage - For Presentation".
MAMMO_FOR_PRESENTATION = "1.2.840.10008.5.1.4.1.1.1.2"
_IMPLEMENTATION_UID = "2.25.176402112716134640938383040245624713857"
_ORIENTATION = {
    ("L", "CC"): ["A", "R"],
    ("R", "CC"): ["P", "L"],
    ("L", "MLO"): ["A", "F"],
    ("R", "MLO"): ["P", "F"],
}


def synthetic_uid(*parts: object) -> str:
    """A deterministic ``2.25.`` UID (a 128-bit integer, like UUID-derived UIDs) from a hash of parts."""
    digest = hashlib.sha256("\x1f".join(["mammo-robust-phantom", *map(str, parts)]).encode()).digest()
    return f"2.25.{int.from_bytes(digest[:16], 'big')}"


def write_view(
    path: Path,
    stored: np.ndarray,
    *,
    spacing_mm: float,
    laterality: str,
    view: str,
    exam_id: str,
    patient_id: str,
    image_id: str,
    instance_number: int,
    cohort_key: str,
) -> None:
    """Write one view.

    Parameters
    ----------
    stored : uint16 array
        Stored values, 12 significant bits (0..4095), background 0, MONOCHROME2 (bright = dense).
    spacing_mm : float
        Detector pixel spacing, written as ImagerPixelSpacing (0018,1164).
    cohort_key : str
        Identifies the cohort (preset and seed); enters the UIDs.
    """
    if stored.dtype != np.uint16 or stored.ndim != 2 or int(stored.max(initial=0)) > 4095:
        raise ValueError(f"{path}: expected 2-D uint16 12-bit data")
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = MAMMO_FOR_PRESENTATION
    meta.MediaStorageSOPInstanceUID = synthetic_uid(cohort_key, image_id)
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    meta.ImplementationClassUID = _IMPLEMENTATION_UID
    meta.ImplementationVersionName = "MAMMO_ROBUST"

    ds = Dataset()
    ds.file_meta = meta
    ds.SpecificCharacterSet = "ISO_IR 100"
    ds.ImageType = ["DERIVED", "PRIMARY"]
    ds.SOPClassUID = MAMMO_FOR_PRESENTATION
    ds.SOPInstanceUID = meta.MediaStorageSOPInstanceUID
    ds.StudyDate = "20000101"
    ds.ContentDate = "20000101"
    ds.StudyTime = "000000"
    ds.AccessionNumber = ""
    ds.Modality = "MG"
    ds.PresentationIntentType = "FOR PRESENTATION"
    ds.Manufacturer = "mammo-robust synthetic phantom"
    ds.ReferringPhysicianName = ""
    ds.StudyDescription = "SYNTHETIC SCREENING MAMMOGRAM"
    ds.PatientName = f"SYNTHETIC^{patient_id}"
    ds.PatientID = patient_id
    ds.PatientBirthDate = ""
    ds.PatientSex = "F"
    ds.BodyPartExamined = "BREAST"
    ds.ImagerPixelSpacing = [f"{spacing_mm:.4g}", f"{spacing_mm:.4g}"]
    ds.StudyInstanceUID = synthetic_uid(cohort_key, "study", exam_id)
    ds.SeriesInstanceUID = synthetic_uid(cohort_key, "series", exam_id)
    ds.StudyID = exam_id[-16:]
    ds.SeriesNumber = 1
    ds.InstanceNumber = instance_number
    ds.PatientOrientation = _ORIENTATION[(laterality, view)]
    ds.ImageLaterality = laterality
    ds.Laterality = laterality
    ds.ViewPosition = view
    ds.WindowCenter = "2048"
    ds.WindowWidth = "4096"
    ds.BurnedInAnnotation = "NO"
    set_pixels_12bit(ds, stored)
    ds.save_as(path, enforce_file_format=True)
