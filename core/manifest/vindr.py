"""Manifest of VinDr-Mammo, from its ``breast-level_annotations.csv``."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from core.manifest.builders import finish, laterality_name, read_source_csv, view_name
from core.manifest.schema import ManifestError, Problem


def vindr_labels(birads: object) -> tuple[int, int] | None:
    """(benign, malignant) of a VinDr-Mammo breast from its ``breast_birads``; None when not assessable.

    BI-RADS 1 (negative) -> (0, 0); 2 (benign finding) and 3 (probably benign) -> (1, 0);
    4 and 5 (suspicious, highly suggestive of malignancy) -> (0, 1); 6 (known cancer) -> (0, 1).
    VinDr-Mammo has no pathology, so this is a radiologist-assessment proxy, not biopsy truth.
    BI-RADS 0 (incomplete) and anything else -> None.
    """
    text = str(birads).upper().replace("BI-RADS", "").replace("BIRADS", "").strip()
    category = text[:1]
    if category == "1":
        return (0, 0)
    if category in ("2", "3"):
        return (1, 0)
    if category in ("4", "5", "6"):
        return (0, 1)
    return None


def manifest_from_vindr(
    csv_path: str | Path,
    image_root: str | Path | None = None,
    *,
    suffix: str = ".dicom",
    check_files: bool = True,
) -> tuple[pd.DataFrame, list[Problem]]:
    """Build a manifest from VinDr-Mammo ``breast-level_annotations.csv``.

    Columns used: ``study_id`` (exam; VinDr ids are already pseudonymous hashes, used as patient id too),
    ``image_id``, ``laterality``, ``view_position``, ``breast_birads`` (labels by :func:`vindr_labels`),
    ``split`` ("training" -> train, "test" -> test). Images are ``image_root/images/<study_id>/<image_id>``
    + ``suffix`` (default root: the CSV's folder).
    """
    path = Path(csv_path).expanduser()
    table = read_source_csv(path)
    need = ("study_id", "image_id", "laterality", "view_position", "breast_birads", "split")
    missing = [c for c in need if c not in table.columns]
    if missing:
        raise ManifestError(
            f"{path}: not a VinDr-Mammo breast-level CSV; missing column(s) {', '.join(missing)}"
        )
    root = Path(image_root).expanduser() if image_root is not None else path.parent
    problems: list[Problem] = []
    records = []
    for i, rec in enumerate(table.to_dict("records")):
        line = i + 2
        image_id = str(rec["image_id"]).strip()
        lat, view = laterality_name(rec["laterality"]), view_name(rec["view_position"])
        if lat is None or view is None:
            problems.append(Problem(line, image_id, f"unknown laterality/view {rec['laterality']!r}/"
                                    f"{rec['view_position']!r} (row dropped)"))  # fmt: skip
            continue
        labels = vindr_labels(rec["breast_birads"])
        if labels is None:
            problems.append(Problem(line, image_id, f"breast_birads {rec['breast_birads']!r} gives no label "
                                    "(kept, label empty)"))  # fmt: skip
        split_raw = str(rec["split"]).strip().lower()
        split = {"training": "train", "train": "train", "test": "test", "val": "val"}.get(
            split_raw, split_raw
        )
        study = str(rec["study_id"]).strip()
        records.append({
            "image_id": image_id, "exam_id": study, "patient_id": study, "laterality": lat, "view": view,
            "path": str(root / "images" / study / f"{image_id}{suffix}"),
            "spacing_row_mm": np.nan, "spacing_col_mm": np.nan,
            "label_benign": labels[0] if labels else None, "label_malignant": labels[1] if labels else None,
            "split": split, "_row": line,
        })  # fmt: skip
    return finish(records, problems, None, check_files, str(path))
