"""Manifest of the RSNA Screening Mammography Breast Cancer Detection (2022) data set, from its
``train.csv``."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from core.manifest.builders import finish, laterality_name, read_source_csv, view_name
from core.manifest.schema import ManifestError, Problem


def manifest_from_rsna(
    csv_path: str | Path,
    image_root: str | Path | None = None,
    *,
    suffix: str = ".dcm",
    split: str = "test",
    check_files: bool = True,
) -> tuple[pd.DataFrame, list[Problem]]:
    """Build a manifest from the RSNA Screening Mammography Breast Cancer Detection (2022) ``train.csv``.

    Columns used: ``patient_id`` (exam and patient: the data set has one screening exam per patient),
    ``image_id``, ``laterality``, ``view`` (CC and MLO kept; ML, LM, AT, ... reported and dropped),
    ``cancer`` (-> malignant), ``biopsy`` (biopsied without cancer -> benign). Images are
    ``image_root/train_images/<patient_id>/<image_id>`` + ``suffix`` (default root: the CSV's folder).
    """
    path = Path(csv_path).expanduser()
    table = read_source_csv(path)
    need = ("patient_id", "image_id", "laterality", "view", "cancer")
    missing = [c for c in need if c not in table.columns]
    if missing:
        raise ManifestError(f"{path}: not an RSNA 2022 train.csv; missing column(s) {', '.join(missing)}")
    root = Path(image_root).expanduser() if image_root is not None else path.parent
    problems: list[Problem] = []
    records = []
    for i, rec in enumerate(table.to_dict("records")):
        line = i + 2
        patient, image = str(rec["patient_id"]).strip(), str(rec["image_id"]).strip()
        image_id = f"{patient}-{image}"
        lat, view = laterality_name(rec["laterality"]), view_name(rec["view"])
        if lat is None or view is None:
            what = f"unknown laterality/view {rec['laterality']!r}/{rec['view']!r} (row dropped)"
            problems.append(Problem(line, image_id, what))
            continue
        cancer = _int01(rec.get("cancer"))
        biopsy = _int01(rec.get("biopsy")) if "biopsy" in rec else 0
        benign = None if cancer is None or biopsy is None else int(biopsy == 1 and cancer == 0)
        records.append({
            "image_id": image_id, "exam_id": patient, "patient_id": patient, "laterality": lat, "view": view,
            "path": str(root / "train_images" / patient / f"{image}{suffix}"),
            "spacing_row_mm": np.nan, "spacing_col_mm": np.nan,
            "label_benign": benign, "label_malignant": cancer if cancer is not None else rec.get("cancer"),
            "split": split, "_row": line,
        })  # fmt: skip
    return finish(records, problems, None, check_files, str(path))


def _int01(value: object) -> int | None:
    """0 or 1 for a cell holding 0 or 1 (also "1.0"), else None."""
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return int(number) if number in (0.0, 1.0) else None
