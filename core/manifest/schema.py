"""The cohort manifest: one CSV row per image, validated on read.

Columns (in this order when written):

``image_id``        unique id of the image in the cohort (str)
``exam_id``         id of the screening exam (str); the four views of one visit share it
``patient_id``      pseudonymous patient id (str); never a real identifier
``laterality``      ``"L"`` or ``"R"``
``view``            ``"CC"`` or ``"MLO"``
``path``            image file, absolute or relative to the manifest's folder
``spacing_row_mm``, ``spacing_col_mm``
                    pixel spacing in mm (float, > 0), empty where unknown (read as NaN)
``label_benign``, ``label_malignant``
                    labels of that *breast*, 0 or 1 (both may be 1); empty where unknown
``split``           ``"train"``, ``"val"`` or ``"test"``; empty is read as ``"test"``

Extra columns are kept as they are. Rows with a problem (bad laterality, view or label, duplicate image id,
missing file) are reported as :class:`Problem` and dropped; the rest still loads.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from core.access import is_allowed
from core.errors import ManifestError

COLUMNS: tuple[str, ...] = (
    "image_id",
    "exam_id",
    "patient_id",
    "laterality",
    "view",
    "path",
    "spacing_row_mm",
    "spacing_col_mm",
    "label_benign",
    "label_malignant",
    "split",
)
LATERALITIES = ("L", "R")
VIEWS = ("CC", "MLO")
SPLITS = ("train", "val", "test")
#: Canonical view order of an exam (NYU convention).
EXAM_VIEWS = (("L", "CC"), ("R", "CC"), ("L", "MLO"), ("R", "MLO"))


@dataclass(frozen=True)
class Problem:
    """One problem found in one row of a manifest or of the source a manifest is built from.

    Attributes
    ----------
    row : int
        Where in the source: the line number for CSV files (the header is line 1), the exam index for the NYU
        pickle, the file index (sorted order) for a DICOM folder; -1 where the problem concerns a whole exam.
    image_id : str
        The image (or exam, for exam-level problems) concerned; ``""`` when unknown.
    message : str
        What is wrong, and what happened to the row ("dropped", "kept").
    """

    row: int
    image_id: str
    message: str

    def __str__(self) -> str:
        where = f"row {self.row}" if self.row >= 0 else "exam"
        return f"{where} [{self.image_id}]: {self.message}"


def summarize_problems(problems: list[Problem], *, max_lines: int = 10, source: str = "") -> str:
    """A short summary: the count, the count per kind of problem and the first ``max_lines`` problems."""
    head = f"{source}: " if source else ""
    if not problems:
        return f"{head}no problems"
    kinds = Counter(p.message.split(":")[0].split(" (")[0] for p in problems)
    lines = [f"{head}{len(problems)} problem(s)"]
    lines += [f"  {n} x {kind}" for kind, n in kinds.most_common()]
    lines += [f"  - {p}" for p in problems[:max_lines]]
    if len(problems) > max_lines:
        lines.append(f"  ... and {len(problems) - max_lines} more")
    return "\n".join(lines)


def _label(value: object) -> int | None | str:
    """0/1 for a valid label, None for unknown, the string "bad" otherwise."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return None
    text = str(value).strip().lower()
    if text in ("", "nan", "na", "none"):
        return None
    if text in ("0", "0.0", "false", "no"):
        return 0
    if text in ("1", "1.0", "true", "yes"):
        return 1
    return "bad"


def _spacing(value: object) -> float | str:
    if value is None:
        return float("nan")
    text = str(value).strip()
    if text in ("", "nan", "NaN", "None"):
        return float("nan")
    try:
        number = float(text)
    except ValueError:
        return "bad"
    if not (number > 0 and math.isfinite(number)):
        return "bad"
    return number


def validate_manifest(
    df: pd.DataFrame,
    *,
    base_dir: Path | None = None,
    check_files: bool = True,
    source: str = "manifest",
    first_line: int = 2,
    exam_checks: bool = True,
    roots: Iterable[str | Path] | None = None,
) -> tuple[pd.DataFrame, list[Problem]]:
    """Validate and normalise a manifest table.

    Parameters
    ----------
    df : DataFrame
        Must hold all of :data:`COLUMNS` (any dtype; values are parsed).
    base_dir : Path, optional
        Relative paths are resolved against it (the manifest's folder). Without it paths are kept as given.
    check_files : bool
        Drop (and report) rows whose image file does not exist.
    source : str
        Name used in error messages.
    first_line : int
        Line number of the first data row, for problem reports (2 for a CSV with a header). A column
        ``_row`` (used by the builders), when present, gives each row's number in its source instead.
    exam_checks : bool
        Also run :func:`check_exams` (missing views, conflicting labels).
    roots : iterable of path, optional
        Folders the images must lie in (after resolving links and ``..``); a row outside them is dropped
        and reported without saying whether its file exists. None: no restriction.

    Returns
    -------
    (DataFrame, list[Problem])
        The valid rows with typed columns (str ids, float spacings, int64 labels, or pandas ``Int64`` with
        ``<NA>`` when some labels are unknown) and one :class:`Problem` per dropped or suspicious row.

    Raises
    ------
    ManifestError
        When required columns are missing.
    """
    missing = [c for c in COLUMNS if c not in df.columns]
    if missing:
        raise ManifestError(
            f"{source}: missing column(s) {', '.join(missing)}; required: {', '.join(COLUMNS)}"
        )
    problems: list[Problem] = []
    keep: list[int] = []
    rows: dict[str, list] = {c: [] for c in COLUMNS}
    allowed = None if roots is None else [Path(r) for r in roots]
    seen: set[str] = set()
    numbers = df["_row"].tolist() if "_row" in df.columns else [first_line + i for i in range(len(df))]
    for i, rec in enumerate(df[list(COLUMNS)].to_dict("records")):
        image_id, values, errors = _check_row(rec, seen, base_dir, allowed, check_files)
        if errors:
            problems.append(Problem(int(numbers[i]), image_id, "; ".join(errors) + " (row dropped)"))
            continue
        seen.add(image_id)
        keep.append(i)
        for key, value in zip(COLUMNS, values, strict=True):
            rows[key].append(value)
    out = _typed_frame(rows, df, keep)
    if exam_checks:
        problems += check_exams(out)
    return out, problems


def _text(value: object) -> str:
    """A cell as stripped text, ``""`` for a missing one."""
    return "" if pd.isna(value) else str(value).strip()


def _check_row(
    rec: dict, seen: set[str], base_dir: Path | None, allowed: list[Path] | None, check_files: bool
) -> tuple[str, tuple, list[str]]:
    """``(image_id, values, errors)`` of one manifest row: its normalised values in :data:`COLUMNS` order
    (meaningful only without errors) and what is wrong with it (``seen``: the image ids kept so far)."""
    image_id = _text(rec["image_id"])
    errors = []
    if not image_id:
        errors.append("empty image_id")
    elif image_id in seen:
        errors.append("duplicate image_id")
    exam_id = _text(rec["exam_id"])
    if not exam_id:
        errors.append("empty exam_id")
    patient_id = _text(rec["patient_id"])
    lat = _text(rec["laterality"]).upper()
    if lat not in LATERALITIES:
        errors.append(f"unknown laterality {rec['laterality']!r} (expected L or R)")
    view = _text(rec["view"]).upper()
    if view not in VIEWS:
        errors.append(f"unknown view {rec['view']!r} (expected CC or MLO)")
    labels = [_label(rec["label_benign"]), _label(rec["label_malignant"])]
    if "bad" in labels:
        errors.append(f"bad label (benign={rec['label_benign']!r}, malignant={rec['label_malignant']!r})")
    spacing = [_spacing(rec["spacing_row_mm"]), _spacing(rec["spacing_col_mm"])]
    if "bad" in spacing:
        errors.append(f"bad spacing ({rec['spacing_row_mm']!r}, {rec['spacing_col_mm']!r})")
    split = _text(rec["split"]).lower() or "test"
    if split not in SPLITS:
        errors.append(f"unknown split {rec['split']!r} (expected train, val or test)")
    path, path_error = _image_path(_text(rec["path"]), base_dir, allowed, check_files)
    if path_error:
        errors.append(path_error)
    return image_id, (image_id, exam_id, patient_id, lat, view, path, *spacing, *labels, split), errors


def _image_path(
    raw_path: str, base_dir: Path | None, allowed: list[Path] | None, check_files: bool
) -> tuple[str, str | None]:
    """``(path, error)``: the image path resolved against ``base_dir`` when relative, and what is wrong with
    it (empty, outside the allowed folders, or a missing file when ``check_files``), else None."""
    if not raw_path:
        return "", "empty path"
    path = Path(raw_path).expanduser()
    if base_dir is not None and not path.is_absolute():
        path = base_dir / path
    if allowed is not None and not is_allowed(path, allowed):
        return str(path), f"path {raw_path!r} lies outside the allowed folders"
    if check_files and not path.is_file():
        return str(path), f"missing file: {path}"
    return str(path), None


def _typed_frame(rows: dict[str, list], df: pd.DataFrame, keep: list[int]) -> pd.DataFrame:
    """The kept rows as a table of typed :data:`COLUMNS` (float64 spacings; int64 labels, or ``Int64`` when
    some are unknown), followed by the source's extra columns (all but ``_row``) of rows ``keep``."""
    out = pd.DataFrame(rows, columns=list(COLUMNS))
    for col in ("spacing_row_mm", "spacing_col_mm"):
        out[col] = out[col].astype(np.float64)
    for col in ("label_benign", "label_malignant"):
        values = out[col]
        if values.isna().any():
            out[col] = values.astype("Int64")
        else:
            out[col] = values.astype(np.int64)
    extra = [c for c in df.columns if c not in COLUMNS and c != "_row"]
    if extra:
        kept = df.iloc[keep][extra].reset_index(drop=True)
        out = pd.concat([out, kept], axis=1)
    return out


def check_exams(df: pd.DataFrame) -> list[Problem]:
    """Exam-level checks on a valid manifest: exams without all four views, conflicting breast labels.

    Nothing is dropped; the problems are informational (DMV needs all four views, GMIC does not).
    """
    problems: list[Problem] = []
    if df.empty:
        return problems
    for exam_id, group in df.groupby("exam_id", sort=False):
        have = set(zip(group["laterality"], group["view"], strict=True))
        lacking = [f"{lat}-{view}" for lat, view in EXAM_VIEWS if (lat, view) not in have]
        if lacking:
            problems.append(
                Problem(-1, str(exam_id), f"exam without all four views: lacks {', '.join(lacking)}")
            )
        for lat, breast in group.groupby("laterality"):
            for col in ("label_benign", "label_malignant"):
                values = set(breast[col].dropna().astype(int))
                if len(values) > 1:
                    problems.append(
                        Problem(
                            -1,
                            str(exam_id),
                            f"conflicting labels: {col} of breast {lat} differs between views",
                        )
                    )
    return problems


def read_manifest(
    path: str | Path,
    *,
    check_files: bool = True,
    strict: bool = False,
    roots: Iterable[str | Path] | None = None,
) -> pd.DataFrame:
    """Read and validate a manifest CSV.

    Relative image paths are resolved against the manifest's folder, so the returned ``path`` column holds
    absolute paths. Invalid rows are dropped and reported in ``df.attrs["problems"]`` (a list of
    :class:`Problem`); ``df.attrs["manifest_path"]`` holds the manifest's absolute path.

    Parameters
    ----------
    path : str or Path
        The manifest CSV.
    check_files : bool
        Drop rows whose image file is missing (one ``stat`` per row).
    strict : bool
        Raise :class:`ManifestError` on the first problem instead of dropping rows.
    roots : iterable of path, optional
        Folders the images must lie in, after resolving links and ``..`` (the app passes
        :func:`core.access.allowed_roots`): a row such as ``../../../etc/x.dcm`` that leads outside them is
        dropped and reported. None (the library and the command line): no restriction.

    Raises
    ------
    ManifestError
        File missing or unreadable, not a CSV, required columns missing, no valid row left, or (``strict``)
        any problem.
    """
    path = Path(path).expanduser()
    if not path.is_file():
        raise ManifestError(f"{path}: manifest file not found")
    try:
        raw = pd.read_csv(path, dtype=str, keep_default_na=False, na_values=[""])
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as exc:
        raise ManifestError(f"{path}: not a readable CSV manifest ({exc})") from exc
    df, problems = validate_manifest(
        raw, base_dir=path.resolve().parent, check_files=check_files, source=str(path), roots=roots
    )
    if strict and problems:
        raise ManifestError(f"{path}: {problems[0]}")
    if df.empty:
        detail = f"; first problem: {problems[0]}" if problems else ""
        raise ManifestError(f"{path}: no valid image rows{detail}")
    df.attrs["problems"] = problems
    df.attrs["manifest_path"] = str(path.resolve())
    return df


def write_manifest(df: pd.DataFrame, path: str | Path, *, relative: bool = True) -> Path:
    """Write a manifest CSV (columns :data:`COLUMNS` first, extra columns after).

    Parameters
    ----------
    relative : bool
        Store image paths relative to the manifest's folder when they lie under it.

    Returns
    -------
    Path
        The written file.
    """
    path = Path(path).expanduser()
    missing = [c for c in COLUMNS if c not in df.columns]
    if missing:
        raise ManifestError(f"{path}: cannot write a manifest without column(s) {', '.join(missing)}")
    out = df[list(COLUMNS) + [c for c in df.columns if c not in COLUMNS]].copy()
    if relative:
        base = path.resolve().parent

        def rel(p: str) -> str:
            candidate = Path(p)
            if candidate.is_absolute():
                try:
                    return candidate.relative_to(base).as_posix()
                except ValueError:
                    return p
            return p

        out["path"] = out["path"].astype(str).map(rel)
    text = out.select_dtypes(include=["object", "string"]).astype(str)
    broken = text.apply(lambda col: col.str.contains(r"[\r\n]", regex=True)).to_numpy().any(axis=1)
    if broken.any():
        row = int(broken.nonzero()[0][0])
        raise ManifestError(f"{path}: row {row + 1} holds a line break inside a cell; ids must be one line")
    path.parent.mkdir(parents=True, exist_ok=True)
    out.to_csv(path, index=False, float_format="%.6g")
    return path
