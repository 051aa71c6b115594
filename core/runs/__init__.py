"""Robustness runs: a model with weights x a cohort x a perturbation grid, executed in a worker process.

For the UI and scripts::

    cfg = RunConfig(model="gmic", manifest="demo", weights="demo",
                    perturbations={"lowpass": [1, 2, 3, 4]}, matched_baseline=True)
    estimate_work(cfg)            # items, rows, model inputs, before starting
    run_id = submit_run(cfg)      # weights checked, then queued; a detached runner process
                                  # (`mammo-robust run --runner`) runs it
    run_status(run_id)            # RunStatus: status, done, errors, total, rate (rows/s), eta_s
    cancel_run(run_id)
    load_scores(run_id)           # the long scores table (core.metrics.SCORE_COLUMNS)
    run_errors(run_id)            # images that could not be read or scored, per condition
    list_runs()                   # every run, newest first; damaged stores listed as "damaged"

Modules: :mod:`~core.runs.config` (RunConfig), :mod:`~core.runs.checks` (weights and allowed folders,
before a run is queued), :mod:`~core.runs.cohort` (a run's manifest), :mod:`~core.runs.grid` (conditions,
matched baseline), :mod:`~core.runs.work` (the work as plain functions; :func:`score_batch` turns an image
that cannot be scored into error records, :mod:`~core.runs.failures`),
:mod:`~core.runs.stream` (its threads), :mod:`~core.runs.store` (SQLite WAL store: scores, errors,
progress), :mod:`~core.runs.lock` (the worker's liveness lock), :mod:`~core.runs.listing` (every run,
damaged ones included), :mod:`~core.runs.worker` (resumable worker, queue runner),
:mod:`~core.runs.context` (what a run knows beyond its scores, for the metrics: model resolution, image
sizes).
"""

from __future__ import annotations

import json
import shutil
import time
from collections.abc import Iterable
from pathlib import Path

import pandas as pd

from core.runs import lock
from core.runs.checks import check_access, check_weights
from core.runs.cohort import resolve_manifest
from core.runs.config import RunConfig, RunError, load_config
from core.runs.grid import Condition, base_conditions, image_seed, matched_conditions, n_conditions
from core.runs.listing import list_runs
from core.runs.store import ERROR_COLUMNS, RunStatus, RunStore, runs_dir
from core.runs.work import (
    BatchResult,
    Timings,
    WorkItem,
    change_norms,
    score_batch,
    score_items,
    work_items,
)
from core.runs.worker import estimate_work, execute_run, runner_active, runner_loop, spawn_runner

__all__ = [
    "BatchResult",
    "Condition",
    "ERROR_COLUMNS",
    "RunConfig",
    "RunError",
    "RunStatus",
    "RunStore",
    "Timings",
    "WorkItem",
    "base_conditions",
    "cancel_run",
    "change_norms",
    "check_access",
    "check_weights",
    "create_run",
    "delete_run",
    "describe_scores",
    "estimate_work",
    "execute_run",
    "export_scores",
    "image_seed",
    "import_scores",
    "list_runs",
    "load_config",
    "load_scores",
    "resolve_manifest",
    "matched_conditions",
    "n_conditions",
    "resume_run",
    "run_dir",
    "run_errors",
    "run_status",
    "runner_active",
    "runner_loop",
    "runs_dir",
    "score_batch",
    "score_items",
    "spawn_runner",
    "submit_run",
    "work_items",
]


def create_run(
    config: RunConfig,
    run_id: str | None = None,
    *,
    check: bool = True,
    roots: Iterable[str | Path] | None = None,
) -> str:
    """Create a run's store (status ``queued``) without starting anything; returns its id.

    Parameters
    ----------
    check : bool
        Check the weights first (:func:`core.runs.checks.check_weights`: file present, tensors only, of
        the config's architecture), so that a run that could not start is refused now, not in the worker.
    roots : iterable of path, optional
        The folders the run may read (the app passes :func:`core.access.allowed_roots`): its weights file
        and manifest must lie inside them (else :class:`core.errors.AccessError`), and the worker reads
        only manifest rows inside them. None: no restriction (the library and command line).
    """
    from core.models.resolution import weights_record

    config = config.validate()
    meta = {}
    if roots is not None:
        roots = [str(r) for r in roots]
        check_access(config, roots)
        meta["allowed_roots"] = json.dumps(roots)
    if check:
        check_weights(config)
    record = weights_record(config.model, config.weights)
    if record is not None:  # what "demo" (or a path) meant when the run was made
        meta["weights_record"] = json.dumps(record)
    return RunStore.create(config, run_id, meta=meta).run_id


def submit_run(
    config: RunConfig,
    *,
    start_runner: bool = True,
    check: bool = True,
    roots: Iterable[str | Path] | None = None,
) -> str:
    """Queue a run (checked as in :func:`create_run`) and make sure a detached runner process works the
    queue; returns the run id.

    Runs start in the order they were queued, one at a time.
    """
    run_id = create_run(config, check=check, roots=roots)
    if start_runner and not runner_active():
        spawn_runner()
    return run_id


def run_status(run_id: str) -> RunStatus:
    """Status and progress of a run (cheap; poll it)."""
    return RunStore.open(run_id).status()


def run_errors(run_id: str) -> pd.DataFrame:
    """The run's error rows: one per condition per image (GMIC) or breast (DMV) that could not be scored
    (columns :data:`core.runs.store.ERROR_COLUMNS`: the image, the condition, the stage and the message)."""
    return RunStore.open(run_id).errors()


def run_dir(run_id: str) -> Path:
    return RunStore.open(run_id).folder


def cancel_run(run_id: str) -> None:
    """Ask a run to stop: a queued run is cancelled at once, a running one between images."""
    store = RunStore.open(run_id)
    status = store.status().status
    if status == "queued":
        store.set(status="cancelled", finished=repr(time.time()))
    elif status == "running":
        store.set(cancel_requested="1")


def resume_run(run_id: str, *, start_runner: bool = True, retry_errors: bool = False) -> None:
    """Queue a cancelled, interrupted or failed run again; it continues where it stopped.

    The store's integrity is checked first: a damaged store is refused (:class:`RunError` saying so).
    Images that failed before (error rows) are not tried again unless ``retry_errors``, which also lets a
    run that is done with errors run again for those images only. The run keeps its creation time; its
    place in the queue is the time it was resumed.
    """
    store = RunStore.open(run_id)
    store.check_integrity()
    st = store.status()
    if st.status in ("running", "queued") or (st.status == "done" and not (retry_errors and st.errors)):
        what = "only cancelled, interrupted or failed runs resume"
        if st.status == "done" and st.errors:
            what = "retry its errors to score those images again"
        raise RunError(f"run {run_id} is {st.label}; {what}")
    if retry_errors:
        store.clear_errors()
    store.set(status="queued", cancel_requested="0", queued=repr(time.time()))
    if start_runner and not runner_active():
        spawn_runner()


def delete_run(run_id: str) -> None:
    """Remove a run that is not running (a damaged one too)."""
    store = RunStore(run_id)
    if not store.folder.is_dir():
        raise RunError(f"run {run_id}: no such run in {runs_dir()}")
    try:
        with lock.hold(store.folder, what=f"run {run_id}"):  # no worker can start it meanwhile
            shutil.rmtree(store.folder)
    except RunError:
        if store.folder.is_dir():
            raise RunError(f"run {run_id} is running; cancel it first") from None
        raise


def load_scores(run_id: str) -> pd.DataFrame:
    """The run's scores table (columns ``core.metrics.SCORE_COLUMNS``; cohort ids only)."""
    return RunStore.open(run_id).scores()


def export_scores(run_id: str, path: str | Path) -> Path:
    """Write the scores table to CSV or Parquet (by suffix). Only cohort image/exam ids are exported."""
    path = Path(path)
    df = load_scores(run_id)
    if path.suffix.lower() in (".parquet", ".pq"):
        df.to_parquet(path, index=False)
    else:
        df.to_csv(path, index=False)
    return path


def describe_scores(df: pd.DataFrame, source: str = "") -> str:
    """A name for an imported table that says what it holds: ``"published NYU scores: dmv, gmic,
    radiologist"`` for the reader-study file of ``core.paths.perception_scores_csv``, else
    ``"imported <file>: <models> (<n> weights)"``."""
    from core.paths import perception_scores_csv

    models = ", ".join(sorted(df["model"].astype(str).unique()))
    n_weights = df[["model", "weights"]].drop_duplicates().shape[0]
    published = perception_scores_csv()
    if source and published.is_file() and Path(source).is_file() and Path(source).samefile(published):
        return f"published NYU scores: {models} ({n_weights} weights and readers)"
    name = Path(source).name if source else "table"
    return f"imported {name}: {models} ({n_weights} weights)"


def import_scores(path: str | Path | pd.DataFrame, *, name: str = "", source: str = "") -> str:
    """Import a scores table made elsewhere as a finished run; returns its id.

    Parameters
    ----------
    path : path or DataFrame
        A CSV/Parquet file, or a table already in memory (e.g. an upload), validated here either way;
        nothing is stored unless it passes.
    name : str
        The run's name; default :func:`describe_scores` (what the table holds).
    source : str
        Where an in-memory table came from (an upload's file name), for its name and the store's meta.
    """
    from core.metrics import read_scores, validate_scores

    if isinstance(path, pd.DataFrame):
        source = source or "uploaded table"
        df = validate_scores(path, source=source)
    else:
        df = read_scores(path)
        source = source or str(path)
    first = df.iloc[0]
    model = "dmv" if first["model"] == "dmv" else "gmic"  # the config's model is only a label here
    cfg = RunConfig(
        model=model, manifest=source, weights="imported", name=name or describe_scores(df, source)
    )
    store = RunStore.create(cfg, status="done")
    rows = df.assign(
        condition=df["model"]
        + "|"
        + df["weights"]
        + "|"
        + df["perturbation"]
        + "|"
        + df["severity"].astype(str)
        + "|"
        + df["seed"].astype(str),
        unit=df["exam_id"] + "|" + df["laterality"] + "|" + df["view"] + "|" + df["image_id"],
    ).to_dict("records")
    done = store.add_scores(rows)
    models = sorted(df["model"].astype(str).unique())
    store.set(total=str(done), finished=repr(time.time()), imported_from=source, models=", ".join(models))
    return store.run_id
