"""What the manifest builders share. Each builder (one module per source layout) returns
``(DataFrame, list[Problem])``:

* :func:`~core.manifest.dicom_folder.manifest_from_dicom_folder`: any folder of DICOM files (headers only,
  grouped by study);
* :func:`~core.manifest.nyu_pickle.manifest_from_nyu_pickle`: the NYU exam-list pickle (restricted
  unpickler, plain containers only);
* :func:`~core.manifest.cbis_ddsm.manifest_from_cbis_ddsm`: CBIS-DDSM mass and calcification
  case-description CSVs;
* :func:`~core.manifest.vindr.manifest_from_vindr`: VinDr-Mammo ``breast-level_annotations.csv``;
* :func:`~core.manifest.rsna.manifest_from_rsna`: RSNA Screening Mammography Breast Cancer Detection (2022)
  ``train.csv``.

Rows that cannot be used (missing file, unknown view, unreadable header, bad label) are dropped and reported;
exam-level problems (not all four views, views of one breast with different labels) are reported and the rows
kept, with the breast's labels set to the union over its views (labels are per breast).
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from core.manifest.schema import COLUMNS, ManifestError, Problem, check_exams, validate_manifest

#: View names read as CC or MLO; anything else (ML, LM, XCCL, AT, spot views, ...) is reported and dropped.
VIEW_ALIASES = {
    "CC": "CC",
    "CRANIO-CAUDAL": "CC",
    "CRANIOCAUDAL": "CC",
    "MLO": "MLO",
    "MEDIO-LATERAL OBLIQUE": "MLO",
    "MEDIOLATERAL OBLIQUE": "MLO",
}
LATERALITY_ALIASES = {"L": "L", "LEFT": "L", "R": "R", "RIGHT": "R"}


def view_name(value: object) -> str | None:
    """The view, "CC" or "MLO", of a name in :data:`VIEW_ALIASES` (any case, spaces around), else None."""
    return VIEW_ALIASES.get(str(value).strip().upper()) if value is not None else None


def laterality_name(value: object) -> str | None:
    """The laterality, "L" or "R", of a name in :data:`LATERALITY_ALIASES` (any case), else None."""
    return LATERALITY_ALIASES.get(str(value).strip().upper()) if value is not None else None


def finish(
    records: list[dict], problems: list[Problem], base_dir: Path | None, check_files: bool, source: str
) -> tuple[pd.DataFrame, list[Problem]]:
    """The builders' last step: validate the records (a ``_row`` key gives each one's place in the source),
    harmonise breast labels, and append the validation, label and exam-level problems to ``problems``."""
    frame = pd.DataFrame(records) if records else pd.DataFrame(columns=[*COLUMNS, "_row"])
    df, more = validate_manifest(
        frame, base_dir=base_dir, check_files=check_files, source=source, exam_checks=False
    )
    df, label_problems = harmonize_breast_labels(df)
    return df, problems + more + label_problems + check_exams(df)


def harmonize_breast_labels(df: pd.DataFrame) -> tuple[pd.DataFrame, list[Problem]]:
    """Give every view of a breast the union of its views' labels, reporting breasts whose views disagree."""
    problems: list[Problem] = []
    if df.empty:
        return df, problems
    df = df.copy()
    for col in ("label_benign", "label_malignant"):
        grouped = df.groupby(["exam_id", "laterality"])[col]
        union = grouped.transform("max")
        lo = grouped.transform("min")
        disagree = (df[col].notna() & (union != lo)).fillna(False).astype(bool)
        for (exam_id, lat), _ in df[disagree].groupby(["exam_id", "laterality"]):
            problems.append(
                Problem(
                    -1,
                    str(exam_id),
                    f"conflicting labels: {col} of breast {lat} differs between views "
                    "(set to 1 on all its views)",
                )  # fmt: skip
            )
        df[col] = union.astype(df[col].dtype)
    return df, problems


def read_source_csv(path: Path) -> pd.DataFrame:
    """A data set's CSV as strings (empty cells NaN); :class:`ManifestError` naming it when unreadable."""
    if not path.is_file():
        raise ManifestError(f"{path}: file not found")
    try:
        return pd.read_csv(path, dtype=str, keep_default_na=False, na_values=[""])
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as exc:
        raise ManifestError(f"{path}: not a readable CSV ({exc})") from exc
