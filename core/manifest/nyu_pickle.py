"""Manifest of an NYU exam-list pickle, loaded by a restricted unpickler (plain containers only)."""

from __future__ import annotations

import io
import pickle
from pathlib import Path

import numpy as np
import pandas as pd

from core.manifest.builders import finish
from core.manifest.schema import EXAM_VIEWS, ManifestError, Problem


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
    return finish(records, problems, None, True, str(path))
