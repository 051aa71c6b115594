"""Manifest builders for common cohort layouts. Each returns ``(DataFrame, list[Problem])``.

* :func:`manifest_from_dicom_folder`: any folder of DICOM files (headers only, grouped by study).
* :func:`manifest_from_nyu_pickle`: the NYU exam-list pickle (restricted unpickler, plain containers only).
* :func:`manifest_from_cbis_ddsm`: CBIS-DDSM mass and calcification case-description CSVs.
* :func:`manifest_from_vindr`: VinDr-Mammo ``breast-level_annotations.csv``.
* :func:`manifest_from_rsna`: RSNA Screening Mammography Breast Cancer Detection (2022) ``train.csv``.

Rows that cannot be used (missing file, unknown view, unreadable header, bad label) are dropped and reported;
exam-level problems (not all four views, views of one breast with different labels) are reported and the rows
kept, with the breast's labels set to the union over its views (labels are per breast).
"""

from __future__ import annotations

import io
import pickle
from collections.abc import Iterable
from pathlib import Path

import numpy as np
import pandas as pd

from core.manifest.schema import COLUMNS, EXAM_VIEWS, ManifestError, Problem, check_exams, validate_manifest
from core.privacy import pseudonym

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


def _view(value: object) -> str | None:
    return VIEW_ALIASES.get(str(value).strip().upper()) if value is not None else None


def _laterality(value: object) -> str | None:
    return LATERALITY_ALIASES.get(str(value).strip().upper()) if value is not None else None


def _finish(
    records: list[dict], problems: list[Problem], base_dir: Path | None, check_files: bool, source: str
) -> tuple[pd.DataFrame, list[Problem]]:
    """Validate the records, harmonise breast labels, add exam-level problems."""
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


# --------------------------------------------------------------------------------------------- DICOM


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
    import pydicom
    from pydicom.errors import InvalidDicomError

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
        try:
            ds = pydicom.dcmread(path, stop_before_pixels=True)
        except (InvalidDicomError, EOFError, OSError, ValueError, TypeError) as exc:
            if path.suffix.lower() in (".dcm", ".dicom"):
                problems.append(
                    Problem(index, rel, f"unreadable DICOM header ({type(exc).__name__}) (skipped)")
                )
            continue
        modality = str(ds.get("Modality", "")).upper()
        if modality and modality != "MG":
            problems.append(Problem(index, rel, f"not a mammogram: Modality {modality} (skipped)"))
            continue
        study = ds.get("StudyInstanceUID")
        if not study:
            problems.append(Problem(index, rel, "no StudyInstanceUID, cannot group into an exam (skipped)"))
            continue
        lat_raw = ds.get("ImageLaterality") or ds.get("Laterality") or ""
        view_raw = ds.get("ViewPosition") or ""
        if not view_raw and ds.get("ViewCodeSequence"):
            view_raw = str(ds.ViewCodeSequence[0].get("CodeMeaning", ""))
        lat, view = _laterality(lat_raw), _view(view_raw)
        exam_id = pseudonym(study, prefix="E-", salt=salt)
        if lat is None or view is None:
            what = []
            if lat is None:
                what.append(f"unknown laterality {str(lat_raw)!r}")
            if view is None:
                what.append(f"unknown view {str(view_raw)!r} (expected CC or MLO)")
            problems.append(Problem(index, f"{exam_id}:{rel}", "; ".join(what) + " (skipped)"))
            continue
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
        records.append({
            "image_id": image_id, "exam_id": exam_id,
            "patient_id": pseudonym(ds.get("PatientID", study), prefix="P-", salt=salt),
            "laterality": lat, "view": view, "path": str(path),
            "spacing_row_mm": row_mm, "spacing_col_mm": col_mm,
            "label_benign": None, "label_malignant": None, "split": split, "_row": index,
        })  # fmt: skip
    return _finish(records, problems, None, True, str(folder))


# ----------------------------------------------------------------------------------------- NYU pickle


class _PlainUnpickler(pickle.Unpickler):
    """Unpickler that refuses every global: only lists, dicts, tuples, strings, numbers, bools, None load."""

    def find_class(self, module: str, name: str):  # noqa: D401
        raise pickle.UnpicklingError(f"refused to load {module}.{name}: only plain containers are allowed")


def load_plain_pickle(path: str | Path) -> object:
    """Load a pickle that may hold only plain Python containers and scalars; never runs code from the file.

    Raises
    ------
    ManifestError
        When the file references any class or function (for example an ``os.system`` reduce), or is not a
        pickle.
    """
    path = Path(path).expanduser()
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise ManifestError(f"{path}: cannot read ({exc.strerror or exc})") from exc
    try:
        return _PlainUnpickler(io.BytesIO(data)).load()
    except pickle.UnpicklingError as exc:
        raise ManifestError(f"{path}: unsafe or invalid pickle: {exc}") from exc
    except (EOFError, ValueError, TypeError, IndexError, KeyError, AttributeError) as exc:
        raise ManifestError(f"{path}: not a valid exam-list pickle ({type(exc).__name__}: {exc})") from exc


def manifest_from_nyu_pickle(
    path: str | Path,
    image_dir: str | Path | None = None,
    *,
    suffix: str = ".png",
    spacing_mm: tuple[float, float] | None = None,
    split: str = "test",
) -> tuple[pd.DataFrame, list[Problem]]:
    """Build a manifest from an NYU exam list (``../shared/spec/nyu-models.md`` section 0.3).

    Each exam is a dict with ``horizontal_flip`` and keys ``L-CC``, ``R-CC``, ``L-MLO``, ``R-MLO`` holding
    lists of file stems; optional ``cancer_label`` with ``left_benign``, ``right_benign``, ``left_malignant``,
    ``right_malignant``. Images are ``image_dir / (stem + suffix)`` (default: the pickle's folder). The
    manifest gets an extra column ``horizontal_flip`` ("NO"/"YES"), which the NYU preprocessing needs.
    Labels are empty when the exam has no ``cancer_label``. PNG files carry no spacing: pass ``spacing_mm``
    or leave it unknown.
    """
    path = Path(path).expanduser()
    exams = load_plain_pickle(path)
    if not isinstance(exams, list):
        raise ManifestError(f"{path}: expected a list of exam dicts, found {type(exams).__name__}")
    image_dir = Path(image_dir).expanduser() if image_dir is not None else path.parent
    problems: list[Problem] = []
    records: list[dict] = []
    for index, exam in enumerate(exams):
        exam_id = f"nyu-{index:05d}"
        if not isinstance(exam, dict):
            problems.append(Problem(index, exam_id, f"exam is a {type(exam).__name__}, not a dict (skipped)"))
            continue
        flip = str(exam.get("horizontal_flip", "NO")).upper()
        if flip not in ("NO", "YES"):
            problems.append(Problem(index, exam_id, f"bad horizontal_flip {flip!r}, assumed NO"))
            flip = "NO"
        labels = exam.get("cancer_label")
        for lat, view in EXAM_VIEWS:
            key = f"{lat}-{view}"
            stems = exam.get(key, [])
            if isinstance(stems, str):
                stems = [stems]
            if not isinstance(stems, list | tuple):
                problems.append(Problem(index, exam_id, f"{key}: expected a list of file stems (skipped)"))
                continue
            side = "left" if lat == "L" else "right"
            benign = malignant = None
            if isinstance(labels, dict):
                benign, malignant = labels.get(f"{side}_benign"), labels.get(f"{side}_malignant")
            for k, stem in enumerate(stems):
                image_id = f"{exam_id}-{lat}-{view}" + (f"-{k + 1}" if k else "")
                records.append({
                    "image_id": image_id, "exam_id": exam_id, "patient_id": exam_id,
                    "laterality": lat, "view": view, "path": str(image_dir / f"{stem}{suffix}"),
                    "spacing_row_mm": spacing_mm[0] if spacing_mm else np.nan,
                    "spacing_col_mm": spacing_mm[1] if spacing_mm else np.nan,
                    "label_benign": benign, "label_malignant": malignant, "split": split,
                    "horizontal_flip": flip, "_row": index,
                })  # fmt: skip
    return _finish(records, problems, None, True, str(path))


# --------------------------------------------------------------------------------------------- CBIS-DDSM

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
    if isinstance(csv_paths, str | Path):
        p = Path(csv_paths).expanduser()
        files = sorted(p.glob("*case_description*.csv")) if p.is_dir() else [p]
        if p.is_dir() and not files:
            raise ManifestError(f"{p}: no *case_description*.csv files in this folder")
    else:
        files = [Path(c).expanduser() for c in csv_paths]
    if not files:
        raise ManifestError("CBIS-DDSM: no case-description CSV given")
    root = Path(image_root).expanduser() if image_root is not None else files[0].parent
    problems: list[Problem] = []
    images: dict[str, dict] = {}
    for file in files:
        table = _read_csv(file)
        table.columns = [c.strip() for c in table.columns]
        missing = [c for c in _CBIS_REQUIRED if c not in table.columns]
        if missing:
            raise ManifestError(
                f"{file}: not a CBIS-DDSM case-description CSV; missing column(s) {', '.join(missing)}"
            )
        for i, rec in enumerate(table.to_dict("records")):
            line = i + 2
            patient = str(rec["patient_id"]).strip()
            lat = _laterality(rec["left or right breast"])
            view = _view(rec["image view"])
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
    # CBIS-DDSM splits the mass and calcification files separately: one case can be in both sets
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
    return _finish(list(images.values()), problems, None, check_files, ", ".join(f.name for f in files))


# ------------------------------------------------------------------------------------------------ VinDr


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
    table = _read_csv(path)
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
        lat, view = _laterality(rec["laterality"]), _view(rec["view_position"])
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
    return _finish(records, problems, None, check_files, str(path))


# ------------------------------------------------------------------------------------------------- RSNA


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
    table = _read_csv(path)
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
        lat, view = _laterality(rec["laterality"]), _view(rec["view"])
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
    return _finish(records, problems, None, check_files, str(path))


def _int01(value: object) -> int | None:
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return int(number) if number in (0.0, 1.0) else None


def _read_csv(path: Path) -> pd.DataFrame:
    if not path.is_file():
        raise ManifestError(f"{path}: file not found")
    try:
        return pd.read_csv(path, dtype=str, keep_default_na=False, na_values=[""])
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as exc:
        raise ManifestError(f"{path}: not a readable CSV ({exc})") from exc
