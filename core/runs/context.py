"""What a stored run knows beyond its scores, for the metrics' figures (:class:`core.metrics.ScoreContext`):
the resolution of the model input (from the weights' recorded config and the cohort's pixel spacing) and the
mean image size behind the matched baselines (from the cohort's image headers).

Nothing is guessed: an imported table without weights or images here gets unknowns, which the figures
state. A run store whose worker recorded ``matched_pixels`` (mean pixel count of the images its change norms
were measured on) is read as is; older stores are measured from the headers of the images they scored.
"""

from __future__ import annotations

import functools
from pathlib import Path

import numpy as np

from core.errors import ExplorerError
from core.metrics.context import ModelInput, ScoreContext
from core.runs.store import RunStore

MAX_HEADERS = 4000  # images whose headers are read for the mean size; beyond, an even sample


def image_pixels(paths: list[str]) -> tuple[float | None, int]:
    """Mean ``rows * columns`` over image files, read from their headers only; ``(None, 0)`` if none can be.

    DICOM via pydicom (``stop_before_pixels``), PNG/TIFF via Pillow's lazy open. At most
    :data:`MAX_HEADERS` files (an even sample of longer lists). Returns ``(mean, files read)``.
    """
    if len(paths) > MAX_HEADERS:
        paths = [paths[i] for i in np.linspace(0, len(paths) - 1, MAX_HEADERS).astype(int)]
    sizes = []
    for path in paths:
        try:
            if Path(path).suffix.lower() in (".png", ".tif", ".tiff"):
                from PIL import Image

                with Image.open(path) as im:
                    sizes.append(im.size[0] * im.size[1])
            else:
                import pydicom

                ds = pydicom.dcmread(path, stop_before_pixels=True)
                sizes.append(int(ds.Rows) * int(ds.Columns))
        except Exception:  # noqa: BLE001 - an unreadable header only leaves that image out of the mean
            continue
    return (float(np.mean(sizes)) if sizes else None), len(sizes)


def _scored_ids(store: RunStore) -> tuple[set[str], set[str]]:
    """Image ids and exam ids of the run's matched-baseline rows."""
    with store.connect() as con:
        rows = con.execute(
            "SELECT DISTINCT exam_id, image_id FROM scores WHERE perturbation LIKE 'matched-%'"
        ).fetchall()
    return {str(r[1]) for r in rows if r[1]}, {str(r[0]) for r in rows}


def cohort_present(manifest: str) -> bool:
    """The run's cohort is on disk (a built-in cohort is never generated just to describe a run)."""
    from core.phantom.cohort import PRESETS, cohort_dir

    if manifest in PRESETS:
        return (cohort_dir(manifest) / "manifest.csv").is_file()
    return Path(manifest).is_file()


@functools.lru_cache(maxsize=16)
def _run_context(run_id: str, n_rows: int) -> ScoreContext:
    from core.models.resolution import input_spacing
    from core.runs.cohort import resolve_manifest
    from core.runs.worker import weights_label

    store = RunStore.open(run_id)
    config = store.config()
    label = config.name or f"{config.model} · {weights_label(config)}"
    if config.weights == "imported":
        return _imported_context(store, label)
    manifest = None
    if cohort_present(config.manifest):
        try:
            manifest = resolve_manifest(config)
        except (ExplorerError, OSError):
            manifest = None
    native = None
    if manifest is not None and len(manifest):
        native = float(np.median(np.maximum(manifest["spacing_row_mm"], manifest["spacing_col_mm"])))
    record = store.json_meta("weights_record")  # None for runs made before it was kept
    record = record if isinstance(record, dict) else None
    spacing, source = input_spacing(config.model, config.weights, image_spacing_mm=native, record=record)
    ctx = dict(label=label, model_inputs={(config.model, weights_label(config)): ModelInput(spacing, source)})
    recorded = store.get("matched_pixels")
    if recorded:
        ctx.update(image_pixels=float(recorded), image_pixels_source="recorded by the run")
    elif config.matched_baseline and manifest is not None:
        images, exams = _scored_ids(store)
        rows = manifest[
            manifest["image_id"].astype(str).isin(images) | manifest["exam_id"].astype(str).isin(exams)
        ]
        if images:
            rows = rows[rows["image_id"].astype(str).isin(images)]
        mean, n = image_pixels([str(p) for p in rows["path"]])
        if mean is not None:
            ctx.update(image_pixels=mean, image_pixels_source=f"mean size of {n} scored images (headers)")
    return ScoreContext(**ctx)


def _imported_context(store: RunStore, label: str) -> ScoreContext:
    from core.models.resolution import input_spacing

    with store.connect() as con:
        pairs = con.execute("SELECT DISTINCT model, weights FROM scores").fetchall()
    inputs = {(m, w): ModelInput(*input_spacing(m, w)) for m, w in pairs}
    pixels = store.get("matched_pixels")
    return ScoreContext(
        label=label,
        model_inputs=inputs,
        image_pixels=float(pixels) if pixels else None,
        image_pixels_source="recorded" if pixels else "",
    )


def run_context(run_id: str) -> ScoreContext:
    """The :class:`~core.metrics.ScoreContext` of a stored run (cached per run and row count)."""
    return _run_context(run_id, RunStore.open(run_id).count())
