"""Manifest of CBIS-DDSM, from its mass and calcification case-description CSVs."""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

import numpy as np
import pandas as pd

from core.manifest.builders import finish, laterality_name, read_source_csv, view_name
from core.manifest.schema import ManifestError, Problem

_CBIS_REQUIRED = ("patient_id", "left or right breast", "image view", "pathology", "image file path")


def _find_cbis_image(root: Path, rel: str) -> Path:
    """The image of a CBIS-DDSM ``image file path``: as given under ``root``, else the single DICOM found
    under the folder named by its first component (TCIA downloads rename the inner folders)."""
    direct = root / rel
    if direct.is_file():
        return direct
    first = rel.split("/")[0]
    if first and (root / first).is_dir():
        hits = sorted((root / first).rglob("*.dcm"))
        if len(hits) == 1:
            return hits[0]
    return direct


def manifest_from_cbis_ddsm(
    csv_paths: str | Path | Iterable[str | Path],
    image_root: str | Path | None = None,
    *,
    check_files: bool = True,
) -> tuple[pd.DataFrame, list[Problem]]:
    """Build a manifest from CBIS-DDSM case-description CSVs (mass and/or calcification, train and/or test).

    One CSV row per abnormality; rows of the same image (patient, side, view) are merged, also across the
    mass and calcification files. Column spellings differ between the files (``breast_density`` in the mass
    files, ``breast density`` in the calcification files); only the columns both share are used.
    Labels: MALIGNANT -> malignant; BENIGN and BENIGN_WITHOUT_CALLBACK -> benign (both can be set on one
    breast). Split: "Training" in the image path -> train, "Test" -> test (a case in both: test). Exams
    are DDSM cases (``patient_id``); CBIS-DDSM ships only views with an abnormality, so most exams lack
    views (reported).

    Parameters
    ----------
    csv_paths : path or paths
        Case-description CSV files, or one folder holding ``*case_description*.csv`` files.
    image_root : path, optional
        Folder holding the ``image file path`` targets (default: the first CSV's folder).
    """
    files = _case_files(csv_paths)
    root = Path(image_root).expanduser() if image_root is not None else files[0].parent
    problems: list[Problem] = []
    images: dict[str, dict] = {}
    for file in files:
        _add_case_file(file, root, images, problems)
    _assign_exam_splits(images, problems)
    return finish(list(images.values()), problems, None, check_files, ", ".join(f.name for f in files))


def _case_files(csv_paths: str | Path | Iterable[str | Path]) -> list[Path]:
    """The case-description CSVs: the files given, or the ``*case_description*.csv`` of one folder."""
    if isinstance(csv_paths, str | Path):
        p = Path(csv_paths).expanduser()
        files = sorted(p.glob("*case_description*.csv")) if p.is_dir() else [p]
        if p.is_dir() and not files:
            raise ManifestError(f"{p}: no *case_description*.csv files in this folder")
    else:
        files = [Path(c).expanduser() for c in csv_paths]
    if not files:
        raise ManifestError("CBIS-DDSM: no case-description CSV given")
    return files


def _add_case_file(file: Path, root: Path, images: dict[str, dict], problems: list[Problem]) -> None:
    """Merge the abnormalities of one case-description CSV into ``images`` (records by image id, each with
    the set of splits its rows came from in ``_splits``); rows that cannot be used go to ``problems``."""
    table = read_source_csv(file)
    table.columns = [c.strip() for c in table.columns]
    missing = [c for c in _CBIS_REQUIRED if c not in table.columns]
    if missing:
        raise ManifestError(
            f"{file}: not a CBIS-DDSM case-description CSV; missing column(s) {', '.join(missing)}"
        )
    for i, rec in enumerate(table.to_dict("records")):
        line = i + 2
        patient = str(rec["patient_id"]).strip()
        lat = laterality_name(rec["left or right breast"])
        view = view_name(rec["image view"])
        image_id = f"{patient}_{rec['left or right breast']}_{rec['image view']}".replace(" ", "")
        where = f"{file.name}:{image_id}"
        if lat is None or view is None:
            problems.append(Problem(line, where, f"unknown side/view {rec['left or right breast']!r}/"
                                    f"{rec['image view']!r} (row dropped)"))  # fmt: skip
            continue
        pathology = str(rec["pathology"]).strip().upper()
        if pathology not in ("MALIGNANT", "BENIGN", "BENIGN_WITHOUT_CALLBACK"):
            problems.append(Problem(line, where, f"unknown pathology {rec['pathology']!r} (row dropped)"))
            continue
        rel = str(rec["image file path"]).strip().replace("\\", "/")
        split = "test" if "test" in rel.split("/")[0].lower() or "test" in file.name.lower() else "train"
        image_id = f"{patient}-{lat}-{view}"
        entry = images.get(image_id)
        if entry is None:
            entry = images[image_id] = {
                "image_id": image_id, "exam_id": patient, "patient_id": patient, "laterality": lat,
                "view": view, "path": str(_find_cbis_image(root, rel)), "spacing_row_mm": np.nan,
                "spacing_col_mm": np.nan, "label_benign": 0, "label_malignant": 0, "split": split,
                "_row": line,
            }  # fmt: skip
        entry.setdefault("_splits", set()).add(split)
        if pathology == "MALIGNANT":
            entry["label_malignant"] = 1
        else:
            entry["label_benign"] = 1


def _assign_exam_splits(images: dict[str, dict], problems: list[Problem]) -> None:
    """Put every image of a case in the test split when any of its rows came from a test file.

    CBIS-DDSM splits the mass and calcification files separately: one case can be in both sets.
    """
    exam_splits: dict[str, set[str]] = {}
    for entry in images.values():
        exam_splits.setdefault(entry["exam_id"], set()).update(entry.pop("_splits"))
    for exam_id, splits in exam_splits.items():
        if len(splits) > 1:
            problems.append(
                Problem(-1, exam_id, "case in both the train and the test files (assigned to test)")
            )
    for entry in images.values():
        entry["split"] = "test" if "test" in exam_splits[entry["exam_id"]] else entry["split"]
