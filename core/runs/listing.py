"""Every run of the data folder, damaged stores included: what ``mammo-robust run --list``, the pages and
the queue runner read.

A store that cannot be read (not a database, a malformed page, meta that is not valid JSON, a failed
integrity check recorded beside it) is listed with status ``damaged`` and the reason in ``problem``; the
others are listed as usual. Stores that are not being written are checked with ``PRAGMA quick_check`` once
per content (the result is kept while the files' sizes and modification times stay the same), so polling
the list costs one cheap status read per run.
"""

from __future__ import annotations

import os
from pathlib import Path

import pandas as pd

from core.errors import RunError
from core.runs.store import RunStore, runs_dir

COLUMNS = [
    "run_id", "name", "model", "weights", "status", "done", "errors", "total", "created", "queued",
    "finished", "problem",
]  # fmt: skip
_checked: dict[str, tuple[tuple, str]] = {}  # database path -> (file signature, quick_check problem or "")


def _signature(path: Path) -> tuple:
    out = []
    for p in (path, path.with_name(path.name + "-wal")):
        try:
            st = os.stat(p)
            out += [st.st_size, st.st_mtime_ns]
        except OSError:
            out += [None, None]
    return tuple(out)


def quick_problem(store: RunStore) -> str:
    """``""`` when ``PRAGMA quick_check`` passes on the store, else why not (cached per file content)."""
    key = str(store.path)
    sig = _signature(store.path)
    cached = _checked.get(key)
    if cached is not None and cached[0] == sig:
        return cached[1]
    try:
        store.check_integrity(thorough=False)
        problem = ""
    except RunError as exc:
        problem = str(exc)
    _checked[key] = (_signature(store.path), problem)
    return problem


def _damaged(run_id: str, problem: str) -> dict:
    return dict(
        run_id=run_id, name="", model="", weights="", status="damaged", done=0, errors=0, total=0,
        created=None, queued=None, finished=None, problem=problem,
    )  # fmt: skip


def list_runs(*, check: bool = True) -> pd.DataFrame:
    """Every run in the data folder, newest first.

    Columns: run_id, name, model, weights, status (``damaged`` for a store that cannot be trusted), done
    (score rows), errors (error rows), total, created, queued, finished (epoch seconds), problem (why a
    store is damaged, else ``""``). ``check=False`` skips the integrity check of idle stores.
    """
    rows = []
    for folder in runs_dir().iterdir():
        if not folder.is_dir() or not (folder / "run.sqlite").is_file():
            continue
        store = RunStore(folder.name)
        note = store.damage()
        if note:
            rows.append(_damaged(folder.name, note))
            continue
        try:
            s = store.status()
        except RunError as exc:
            rows.append(_damaged(folder.name, str(exc)))
            continue
        problem = quick_problem(store) if check and s.status != "running" else ""
        if problem:
            rows.append(_damaged(folder.name, problem))
            continue
        rows.append(
            dict(run_id=s.run_id, name=s.name, model=s.model, weights=s.weights, status=s.status, done=s.done,
                 errors=s.errors, total=s.total, created=s.created, queued=s.queued, finished=s.finished,
                 problem="")
        )  # fmt: skip
    # by creation time, not by id: ids given by hand ("accept-1") do not sort by time; damaged stores
    # (no readable time) last
    rows.sort(key=lambda r: (r["created"] or 0.0, r["run_id"]), reverse=True)
    return pd.DataFrame(rows, columns=COLUMNS)
