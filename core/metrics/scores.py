"""The long scores table: columns, reading, validation, and breast-level aggregation.

One row per image (GMIC) or per breast (DMV, or scores produced elsewhere) per condition. A *condition* is
``(model, weights, perturbation, severity, parameter, seed)``. Breast-level rows have an empty ``image_id``
and ``view``. The unperturbed condition is ``perturbation == "none"`` (severity 0); the study's matched-noise
baseline of perturbation ``P`` is ``perturbation == "matched-P"`` at the severity it is matched to.
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pandas as pd

from core.errors import MetricsError

SCORE_COLUMNS = (
    "model",
    "weights",
    "perturbation",
    "severity",
    "parameter",
    "seed",
    "exam_id",
    "image_id",
    "laterality",
    "view",
    "label_benign",
    "label_malignant",
    "score_benign",
    "score_malignant",
)
CONDITION_COLUMNS = ("model", "weights", "perturbation", "severity", "parameter", "seed")
BREAST_KEY = ("exam_id", "laterality")
IMAGE_KEY = ("exam_id", "laterality", "view", "image_id")
UNPERTURBED = "none"
MATCHED_PREFIX = "matched-"
TARGETS = ("malignant", "benign")
LEVELS = ("image", "breast")


def matched_name(perturbation: str) -> str:
    """Name of the matched-noise baseline of a perturbation, e.g. ``"matched-lowpass"``."""
    return MATCHED_PREFIX + perturbation


def weights_family(weights: str) -> str:
    """Weights name without a trailing seed or reader number.

    ``"nyu-trained-filtered-seed3"`` -> ``"nyu-trained-filtered"``, ``"reader-4"`` -> ``"reader"``.
    """
    return re.sub(r"[-_](seed)?\d+$", "", str(weights)) or str(weights)


def read_scores(path: str | Path, *, target: str = "malignant") -> pd.DataFrame:
    """Read and validate a scores table from CSV or Parquet (chosen by the file suffix).

    Raises
    ------
    MetricsError
        Unreadable file, missing columns, bad labels, NaN scores of ``target``, duplicated rows, or no
        positive case; the message names the file and the column.
    """
    path = Path(path)
    if not path.is_file():
        raise MetricsError(f"{path}: scores file not found")
    try:
        if path.suffix.lower() in (".parquet", ".pq"):
            df = pd.read_parquet(path)
        else:
            df = pd.read_csv(path, dtype={"exam_id": str, "image_id": str, "view": str, "laterality": str})
    except (OSError, ValueError, pd.errors.ParserError) as exc:
        raise MetricsError(f"{path}: cannot read scores table ({exc})") from exc
    return validate_scores(df, source=str(path), target=target)


def read_scores_bytes(data: bytes, name: str, *, target: str = "malignant") -> pd.DataFrame:
    """Read and validate a scores table held in memory (an upload), CSV or Parquet by ``name``'s suffix.

    Nothing is written anywhere; errors are :class:`MetricsError` naming ``name``.
    """
    import io

    try:
        if Path(name).suffix.lower() in (".parquet", ".pq"):
            df = pd.read_parquet(io.BytesIO(data))
        else:
            df = pd.read_csv(
                io.BytesIO(data), dtype={"exam_id": str, "image_id": str, "view": str, "laterality": str}
            )
    except (OSError, ValueError, pd.errors.ParserError, UnicodeDecodeError) as exc:
        raise MetricsError(f"{name}: cannot read scores table ({exc})") from exc
    return validate_scores(df, source=name, target=target)


def _as_text(col: pd.Series) -> pd.Series:
    """Strings, with missing values as "" and integral floats without their ".0"."""
    if pd.api.types.is_float_dtype(col):
        vals = col.to_numpy()
        whole = np.isfinite(vals) & (vals == np.round(vals))
        out = col.astype(object)
        out[whole] = vals[whole].astype(np.int64).astype(str)
        col = out
    return col.astype(object).where(col.notna(), "").astype(str)


def validate_scores(
    df: pd.DataFrame, *, source: str = "<scores table>", target: str = "malignant"
) -> pd.DataFrame:
    """Check a scores table and return a normalised copy.

    Normalisation: key columns as strings (missing ``image_id``/``view`` -> ""), ``severity`` numeric,
    ``seed`` integer (missing -> 0), labels as nullable Int64 0/1, scores as float64. Rows whose ``target``
    label is empty (unknown) are left out; their count is in ``attrs["unlabelled_rows"]``.

    Parameters
    ----------
    target : {"malignant", "benign"}
        The score/label pair that must be complete (no NaN) and have at least one positive.
    """
    if target not in TARGETS:
        raise MetricsError(f"{source}: unknown target {target!r} (use one of {TARGETS})")
    missing = [c for c in SCORE_COLUMNS if c not in df.columns]
    if missing:
        raise MetricsError(f"{source}: missing column(s) {', '.join(missing)}")
    if len(df) == 0:
        raise MetricsError(f"{source}: the scores table has no rows")
    out = df.loc[:, list(SCORE_COLUMNS)].copy()
    for col in ("model", "weights", "perturbation", "exam_id", "image_id", "laterality", "view"):
        out[col] = _as_text(out[col])
    for col in ("model", "weights", "perturbation", "exam_id", "laterality"):
        if (out[col] == "").any():
            raise MetricsError(f"{source}: column {col} is empty in {int((out[col] == '').sum())} row(s)")
    for col in ("severity", "parameter", "score_benign", "score_malignant"):
        try:
            out[col] = pd.to_numeric(out[col], errors="raise").astype(np.float64)
        except (ValueError, TypeError) as exc:
            raise MetricsError(f"{source}: column {col} is not numeric ({exc})") from exc
    if out["severity"].isna().any():
        raise MetricsError(
            f"{source}: column severity has {int(out['severity'].isna().sum())} missing value(s)"
        )
    if (out["severity"] == out["severity"].round()).all():
        out["severity"] = out["severity"].astype(np.int64)
    out["seed"] = pd.to_numeric(out["seed"], errors="coerce").fillna(0).astype(np.int64)
    for col in ("label_benign", "label_malignant"):
        lab = pd.to_numeric(out[col], errors="coerce")
        bad = out[col].ne("") & out[col].notna() & ~lab.isin((0, 1))
        if bad.any():
            raise MetricsError(
                f"{source}: column {col} must be 0, 1 or empty ({int(bad.sum())} row(s) are not)"
            )
        out[col] = lab.astype("Int64")  # <NA>: label unknown
    score_col, label_col = f"score_{target}", f"label_{target}"
    unknown = out[label_col].isna()
    if unknown.all():
        raise MetricsError(f"{source}: column {label_col} is empty in every row (no labelled case)")
    if unknown.any():  # unlabelled cases (e.g. not biopsied) cannot enter an AUC of this target
        out = out[~unknown].reset_index(drop=True)
    out[label_col] = out[label_col].astype(np.int64)
    out.attrs["unlabelled_rows"] = int(unknown.sum())
    nan = out[score_col].isna()
    if nan.any():
        first = int(np.flatnonzero(nan.to_numpy())[0])
        raise MetricsError(
            f"{source}: column {score_col} has {int(nan.sum())} NaN/empty value(s) "
            f"(first at data row {first + 1})"
        )
    if out[label_col].sum() == 0:
        raise MetricsError(f"{source}: no positive case (column {label_col} is 0 in every row)")
    if (out[label_col] == 1).all():
        raise MetricsError(f"{source}: no negative case (column {label_col} is 1 in every row)")
    dup = out.duplicated(list(CONDITION_COLUMNS) + list(IMAGE_KEY))
    if dup.any():
        row = out[dup].iloc[0]
        raise MetricsError(
            f"{source}: {int(dup.sum())} duplicated row(s), e.g. exam {row.exam_id} {row.laterality} "
            f"{row.view or '(breast)'} under {row.model}/{row.weights}/{row.perturbation}/{row.severity}"
        )
    return out.reset_index(drop=True)


def image_level(scores: pd.DataFrame) -> pd.DataFrame:
    """The image-level rows (those with a non-empty ``image_id``)."""
    return scores[scores["image_id"] != ""]


def breast_level(scores: pd.DataFrame) -> pd.DataFrame:
    """Breast-level table: a breast's score is the mean over its views; labels are the breast's (max).

    Rows that are already breast level (empty ``image_id``) are kept as they are.

    Raises
    ------
    MetricsError
        If a breast has both image rows and a breast-level row under the same condition.
    """
    is_image = scores["image_id"] != ""
    breasts = scores[~is_image]
    images = scores[is_image]
    if images.empty:
        return breasts.reset_index(drop=True)
    keys = list(CONDITION_COLUMNS) + list(BREAST_KEY)
    agg = images.groupby(keys, sort=False, dropna=False).agg(
        label_benign=("label_benign", "max"),
        label_malignant=("label_malignant", "max"),
        score_benign=("score_benign", "mean"),
        score_malignant=("score_malignant", "mean"),
    )
    agg = agg.reset_index()
    agg["image_id"] = ""
    agg["view"] = ""
    agg = agg[list(SCORE_COLUMNS)]
    if not breasts.empty:
        both = agg.merge(breasts[keys], on=keys, how="inner")
        if len(both):
            raise MetricsError(
                f"{len(both)} breast(s) have both image rows and a breast-level row under the same condition"
            )
    return pd.concat([breasts, agg], ignore_index=True)


def level_table(scores: pd.DataFrame, level: str) -> pd.DataFrame:
    """Rows at ``level`` ("image" or "breast")."""
    if level == "image":
        return image_level(scores)
    if level == "breast":
        return breast_level(scores)
    raise MetricsError(f"unknown level {level!r} (use one of {LEVELS})")


def conditions(scores: pd.DataFrame) -> pd.DataFrame:
    """The distinct conditions of a scores table with their row counts (column ``n_rows``)."""
    return (
        scores.groupby(list(CONDITION_COLUMNS), dropna=False, sort=True).size().rename("n_rows").reset_index()
    )
