"""The durable store of a run: one SQLite database in WAL mode per run.

``data_dir()/runs/<run_id>/run.sqlite`` holds

* ``meta(key, value)``: the config (JSON), status, times, worker pid, totals, matched norms, errors;
* ``scores``: one row per condition per image (GMIC) or breast (DMV), ``UNIQUE(condition, unit)``, so a
  resumed worker that redoes a batch inserts nothing twice (``INSERT OR IGNORE``);
* ``progress(t, done)``: one row per committed batch, for the rate and ETA.

Every batch is written in one transaction with its progress row, so a worker killed at any moment leaves
either the whole batch or none of it. WAL mode lets the UI read while the worker writes.
"""

from __future__ import annotations

import json
import os
import sqlite3
import time
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from core.metrics.scores import SCORE_COLUMNS
from core.runs.config import RunConfig, RunError

STATUSES = ("queued", "running", "done", "cancelled", "failed", "interrupted")
_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT);
CREATE TABLE IF NOT EXISTS scores (
    condition TEXT NOT NULL, unit TEXT NOT NULL,
    model TEXT, weights TEXT, perturbation TEXT, severity INTEGER, parameter REAL, seed INTEGER,
    exam_id TEXT, image_id TEXT, laterality TEXT, view TEXT,
    label_benign INTEGER, label_malignant INTEGER, score_benign REAL, score_malignant REAL,
    UNIQUE (condition, unit)
);
CREATE TABLE IF NOT EXISTS progress (t REAL, done INTEGER);
"""


def runs_dir() -> Path:
    """Folder of all run stores: ``data_dir()/runs``."""
    from core.paths import data_dir

    path = data_dir() / "runs"
    path.mkdir(parents=True, exist_ok=True)
    return path


def new_run_id(config: RunConfig) -> str:
    """``YYYYmmdd-HHMMSS-<model>-<6 hex>``: sortable by creation time, unique."""
    return f"{time.strftime('%Y%m%d-%H%M%S')}-{config.model}-{os.urandom(3).hex()}"


@dataclass(frozen=True)
class RunStatus:
    """What the UI polls.

    ``done``/``total`` count score rows; ``rate`` is rows per second over the last minute of batches
    (None before two batches); ``eta_s`` the seconds left at that rate.
    """

    run_id: str
    status: str
    done: int
    total: int
    rate: float | None
    eta_s: float | None
    created: float | None
    started: float | None
    finished: float | None
    error: str
    name: str
    model: str
    weights: str

    @property
    def fraction(self) -> float:
        return self.done / self.total if self.total else 0.0


class RunStore:
    """Access to one run's database. Open connections per call: safe across processes."""

    def __init__(self, run_id: str, folder: Path | None = None) -> None:
        self.run_id = run_id
        self.folder = Path(folder) if folder is not None else runs_dir() / run_id
        self.path = self.folder / "run.sqlite"

    # --- lifecycle -------------------------------------------------------------------------------------

    @classmethod
    def create(cls, config: RunConfig, run_id: str | None = None, *, status: str = "queued") -> RunStore:
        """Make the folder and database of a new run, with its config and status."""
        run_id = run_id or new_run_id(config)
        store = cls(run_id)
        if store.path.exists():
            raise RunError(f"run {run_id} already exists ({store.path})")
        store.folder.mkdir(parents=True, exist_ok=True)
        (store.folder / "config.json").write_text(config.to_json())
        with store.connect() as con:
            con.executescript(_SCHEMA)
            con.executemany(
                "INSERT OR REPLACE INTO meta VALUES (?, ?)",
                [("config", config.to_json()), ("status", status), ("created", repr(time.time()))],
            )
        return store

    @classmethod
    def open(cls, run_id: str) -> RunStore:
        store = cls(run_id)
        if not store.path.is_file():
            raise RunError(f"run {run_id}: no such run in {runs_dir()}")
        return store

    @contextmanager
    def connect(self):
        con = sqlite3.connect(self.path, timeout=60)
        try:
            con.execute("PRAGMA journal_mode=WAL")
            con.execute("PRAGMA synchronous=NORMAL")
            with con:
                yield con
        except sqlite3.DatabaseError as exc:
            raise RunError(f"{self.path}: run store unreadable ({exc})") from exc
        finally:
            con.close()

    # --- meta ------------------------------------------------------------------------------------------

    def get(self, key: str, default: str | None = None) -> str | None:
        with self.connect() as con:
            row = con.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
        return default if row is None else row[0]

    def set(self, **values) -> None:
        with self.connect() as con:
            con.executemany(
                "INSERT OR REPLACE INTO meta VALUES (?, ?)",
                [(k, v if isinstance(v, str) else json.dumps(v)) for k, v in values.items()],
            )

    def config(self) -> RunConfig:
        """The run's configuration."""
        return RunConfig.from_json(self.get("config") or "{}", source=f"run {self.run_id}")

    # --- scores ----------------------------------------------------------------------------------------

    def add_scores(self, rows: list[dict]) -> int:
        """Insert rows (duplicates of (condition, unit) ignored) with a progress mark; one transaction.

        Returns the number of rows now in the store.
        """
        cols = ["condition", "unit", *SCORE_COLUMNS]
        sql = f"INSERT OR IGNORE INTO scores ({', '.join(cols)}) VALUES ({', '.join('?' * len(cols))})"
        with self.connect() as con:
            con.executemany(sql, [tuple(r[c] for c in cols) for r in rows])
            done = con.execute("SELECT COUNT(*) FROM scores").fetchone()[0]
            con.execute("INSERT INTO progress VALUES (?, ?)", (time.time(), done))
        return int(done)

    def count(self) -> int:
        with self.connect() as con:
            return int(con.execute("SELECT COUNT(*) FROM scores").fetchone()[0])

    def done_units(self) -> dict[str, int]:
        """Rows stored per unit (image id or ``exam|L``)."""
        with self.connect() as con:
            return dict(con.execute("SELECT unit, COUNT(*) FROM scores GROUP BY unit").fetchall())

    def scores(self) -> pd.DataFrame:
        """The scores table (columns :data:`core.metrics.SCORE_COLUMNS`), ordered by condition and unit."""
        with self.connect() as con:
            df = pd.read_sql_query(
                f"SELECT {', '.join(SCORE_COLUMNS)} FROM scores ORDER BY condition, unit", con
            )
        for col in ("image_id", "view"):
            df[col] = df[col].fillna("")
        return df

    # --- status ----------------------------------------------------------------------------------------

    def status(self) -> RunStatus:
        with self.connect() as con:
            meta = dict(con.execute("SELECT key, value FROM meta").fetchall())
            done = int(con.execute("SELECT COUNT(*) FROM scores").fetchone()[0])
            marks = con.execute("SELECT t, done FROM progress ORDER BY rowid DESC LIMIT 200").fetchall()
        status = meta.get("status", "queued")
        pid = int(meta.get("pid", "0") or 0)
        if status == "running" and not _alive(pid):
            status = "interrupted"
        total = int(meta.get("total", "0") or 0)
        rate = eta = None
        if len(marks) >= 2:
            t_last, d_last = marks[0]
            recent = [m for m in marks if t_last - m[0] <= 60] or marks[:2]
            t0, d0 = recent[-1] if len(recent) > 1 else marks[1]
            if t_last > t0 and d_last > d0:
                rate = (d_last - d0) / (t_last - t0)
                eta = max(total - done, 0) / rate if status == "running" else None
        cfg = json.loads(meta.get("config", "{}"))

        def num(key):
            return float(meta[key]) if key in meta else None

        return RunStatus(
            run_id=self.run_id,
            status=status,
            done=done,
            total=total,
            rate=rate,
            eta_s=eta,
            created=num("created"),
            started=num("started"),
            finished=num("finished"),
            error=meta.get("error", ""),
            name=cfg.get("name", ""),
            model=cfg.get("model", ""),
            weights=cfg.get("weights", ""),
        )


def _alive(pid: int) -> bool:
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    # A zombie (exited, not yet reaped by its parent) still answers signal 0.
    try:
        with open(f"/proc/{pid}/stat") as fh:
            return fh.read().split(") ")[-1][:1] != "Z"
    except OSError:
        return True


def list_runs() -> pd.DataFrame:
    """Every run in the data folder, newest first: run_id, name, model, weights, status, done, total,
    created, finished (epoch seconds)."""
    rows = []
    for folder in runs_dir().iterdir():
        if not (folder / "run.sqlite").is_file():
            continue
        try:
            s = RunStore(folder.name).status()
        except RunError:
            continue
        rows.append(
            dict(run_id=s.run_id, name=s.name, model=s.model, weights=s.weights, status=s.status, done=s.done,
                 total=s.total, created=s.created, finished=s.finished)
        )  # fmt: skip
    cols = ["run_id", "name", "model", "weights", "status", "done", "total", "created", "finished"]
    # by creation time, not by id: ids given by hand ("accept-1") do not sort by time
    rows.sort(key=lambda r: (r["created"] or 0.0, r["run_id"]), reverse=True)
    return pd.DataFrame(rows, columns=cols)
