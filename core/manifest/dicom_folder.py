"""Manifest of a folder of DICOM mammograms, from their headers only (no pixel decoding)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from core.manifest.builders import finish, laterality_name, view_name
from core.manifest.schema import ManifestError, Problem
from core.privacy import pseudonym


def _dicom_files(folder: Path, recursive: bool) -> list[Path]:
    pattern = "**/*" if recursive else "*"
    return sorted(p for p in folder.glob(pattern) if p.is_file() and not p.name.startswith("."))


def manifest_from_dicom_folder(
    folder: str | Path,
    *,
    recursive: bool = True,
    salt: str | None = None,
    split: str = "test",
) -> tuple[pd.DataFrame, list[Problem]]:
    """Build a manifest from a folder of DICOM mammograms, reading headers only (no pixel decoding).

    Exams are the studies (StudyInstanceUID). Image, patient and exam ids are pseudonyms (keyed hashes of
    StudyInstanceUID and PatientID, see :func:`pseudonym`); no name, id, date or UID of the files reaches
    the ids. The ``path`` column has to locate each file, so it keeps the file's path (relative to the
    manifest when :func:`~core.manifest.write_manifest` writes it next to the images), and with it any name
    the path holds: it stays on the server. The app shows and exports ``image_id`` / ``exam_id`` only, never
    ``path``; run scores and reports carry the ids, not the paths. Problems name files by their path
    relative to ``folder``, for the operator who runs the command. Laterality
    comes from ImageLaterality (0020,0062) or Laterality (0020,0060); the view from ViewPosition
    (0018,5101) or the ViewCodeSequence meaning; spacing from ImagerPixelSpacing or PixelSpacing. Labels are
    unknown (empty): fill them in the CSV. Non-DICOM files are skipped silently unless named ``*.dcm``.

    Parameters
    ----------
    folder : path
    recursive : bool
        Scan sub-folders too.
    salt : str, optional
        A site secret for the pseudonyms (default: the installation's random salt).
    split : str
        Split given to every row.
    """
    from core.privacy import quiet_pydicom

    quiet_pydicom()
    folder = Path(folder).expanduser()
    if not folder.is_dir():
        raise ManifestError(f"{folder}: not a folder")
    problems: list[Problem] = []
    records: list[dict] = []
    counters: dict[tuple[str, str, str], int] = {}
    for index, path in enumerate(_dicom_files(folder, recursive)):
        rel = path.relative_to(folder).as_posix()
        ds = _read_header(path, index, rel, problems)
        if ds is None:
            continue
        record = _image_record(ds, path, index, rel, salt, split, counters, problems)
        if record is not None:
            records.append(record)
    return finish(records, problems, None, True, str(folder))


def _read_header(path: Path, index: int, rel: str, problems: list[Problem]) -> object | None:
    """The file's DICOM header (pydicom dataset without pixel data), or None when it is none; a file named
    ``*.dcm`` or ``*.dicom`` that cannot be read is reported."""
    import pydicom
    from pydicom.errors import InvalidDicomError

    try:
        return pydicom.dcmread(path, stop_before_pixels=True)
    except (InvalidDicomError, EOFError, OSError, ValueError, TypeError) as exc:
        if path.suffix.lower() in (".dcm", ".dicom"):
            problems.append(Problem(index, rel, f"unreadable DICOM header ({type(exc).__name__}) (skipped)"))
        return None


def _image_record(
    ds,
    path: Path,
    index: int,
    rel: str,
    salt: str | None,
    split: str,
    counters: dict[tuple[str, str, str], int],
    problems: list[Problem],
) -> dict | None:
    """The manifest record of one header, or None (reported in ``problems``) when it is no usable mammogram.

    ``counters`` counts the images of each (exam, laterality, view) so far: the second and later ones get
    an id suffix ``-2``, ``-3``...
    """
    modality = str(ds.get("Modality", "")).upper()
    if modality and modality != "MG":
        problems.append(Problem(index, rel, f"not a mammogram: Modality {modality} (skipped)"))
        return None
    study = ds.get("StudyInstanceUID")
    if not study:
        problems.append(Problem(index, rel, "no StudyInstanceUID, cannot group into an exam (skipped)"))
        return None
    lat_raw = ds.get("ImageLaterality") or ds.get("Laterality") or ""
    view_raw = ds.get("ViewPosition") or ""
    if not view_raw and ds.get("ViewCodeSequence"):
        view_raw = str(ds.ViewCodeSequence[0].get("CodeMeaning", ""))
    lat, view = laterality_name(lat_raw), view_name(view_raw)
    exam_id = pseudonym(study, prefix="E-", salt=salt)
    if lat is None or view is None:
        what = []
        if lat is None:
            what.append(f"unknown laterality {str(lat_raw)!r}")
        if view is None:
            what.append(f"unknown view {str(view_raw)!r} (expected CC or MLO)")
        problems.append(Problem(index, f"{exam_id}:{rel}", "; ".join(what) + " (skipped)"))
        return None
    spacing = ds.get("ImagerPixelSpacing") or ds.get("PixelSpacing")
    row_mm, col_mm = (float(spacing[0]), float(spacing[1])) if spacing else (np.nan, np.nan)
    key = (exam_id, lat, view)
    counters[key] = counters.get(key, 0) + 1
    suffix = "" if counters[key] == 1 else f"-{counters[key]}"
    image_id = f"{exam_id}-{lat}-{view}{suffix}"
    intent = str(ds.get("PresentationIntentType", "")).upper()
    if intent == "FOR PROCESSING":
        problems.append(
            Problem(index, image_id, "FOR PROCESSING image: the models expect FOR PRESENTATION (kept)")
        )
    return {
        "image_id": image_id, "exam_id": exam_id,
        "patient_id": pseudonym(ds.get("PatientID", study), prefix="P-", salt=salt),
        "laterality": lat, "view": view, "path": str(path),
        "spacing_row_mm": row_mm, "spacing_col_mm": col_mm,
        "label_benign": None, "label_malignant": None, "split": split, "_row": index,
    }  # fmt: skip
