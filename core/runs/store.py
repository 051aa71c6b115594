"""The durable store of a run: one SQLite database in WAL mode per run.

``data_dir()/runs/<run_id>/run.sqlite`` holds

* ``meta(key, value)``: the config (JSON), status, times, worker pid, totals, matched norms, failure, the
  weights file it was made with (``weights_record``);
* ``scores``: one row per condition per image (GMIC) or breast (DMV), ``UNIQUE(condition, unit)``, so a
  resumed worker that redoes work inserts nothing twice (``INSERT OR IGNORE``);
* ``errors``: one row per condition per unit that could not be scored (an unreadable image, an image the
  model cannot use), keyed like ``scores`` and never in the same key as a score: what failed, at which
  ``stage`` (``read``, ``prepare`` or ``score``) and the ``message``. Scores exports and metrics never see
  them; a resumed run does not retry them unless asked (:meth:`RunStore.clear_errors`);
* ``progress(t, done)``: one mark per committed item (score and error rows settled so far), for the rate
  and ETA.

Every item (an image or an exam) is written in one transaction with its progress mark, so a worker killed
at any moment leaves either the whole item or none of it. WAL mode lets the UI read while the worker
writes. Whether a worker is alive is decided by its lock (:mod:`core.runs.lock`), never by a PID.
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
from core.runs import lock
from core.runs.config import RunConfig, RunError

STATUSES = ("queued", "running", "done", "cancelled", "failed", "interrupted")
# What an error row says besides its key: where, which condition, and why.
ERROR_COLUMNS = (
    "model", "weights", "perturbation", "severity", "parameter", "seed",
    "exam_id", "image_id", "laterality", "view", "stage", "message",
)  # fmt: skip
_ERRORS_TABLE = """
CREATE TABLE IF NOT EXISTS errors (
    condition TEXT NOT NULL, unit TEXT NOT NULL,
    model TEXT, weights TEXT, perturbation TEXT, severity INTEGER, parameter REAL, seed INTEGER,
    exam_id TEXT, image_id TEXT, laterality TEXT, view TEXT, stage TEXT, message TEXT, t REAL,
    UNIQUE (condition, unit)
);
"""
_SCHEMA = (
    """
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
    + _ERRORS_TABLE
)
DAMAGED_NOTE = "DAMAGED"  # a file beside the database, written when an integrity check fails


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

    ``done`` counts score rows and ``errors`` error rows (keys that could not be scored); the run is
    complete when ``done + errors == total``. ``rate`` is rows (scores and errors) per second over the
    last minute of items, from the first item on (None before it); ``eta_s`` the seconds left at that
    rate. ``n_items`` is the number of work items (images for GMIC, exams for DMV) and ``item_rows`` the
    rows each yields (conditions x units per item), known once the worker has counted the work. Times
    are epoch seconds: ``created`` when the run was made (kept on resume), ``queued`` when it was last
    queued.
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
    errors: int = 0
    queued: float | None = None
    n_items: int = 0
    item_rows: int = 0

    @property
    def settled(self) -> int:
        """Rows with a score or an error."""
        return self.done + self.errors

    @property
    def fraction(self) -> float:
        return min(self.settled / self.total, 1.0) if self.total else 0.0

    @property
    def items_done(self) -> int:
        """Whole items settled (an estimate while items are written in any order)."""
        return self.settled // self.item_rows if self.item_rows else 0

    @property
    def item_rate(self) -> float | None:
        """Items (images or exams) per second."""
        return self.rate / self.item_rows if self.rate and self.item_rows else None

    @property
    def item_kind(self) -> str:
        return "exams" if self.model == "dmv" else "images"

    @property
    def label(self) -> str:
        """The status for people: ``"done"``, ``"done, 3 errors"``, ``"running, 1 error"``..."""
        if not self.errors:
            return self.status
        return f"{self.status}, {self.errors} error{'s' if self.errors != 1 else ''}"


class RunStore:
    """Access to one run's database. Open connections per call: safe across processes."""

    def __init__(self, run_id: str, folder: Path | None = None) -> None:
        self.run_id = run_id
        self.folder = Path(folder) if folder is not None else runs_dir() / run_id
        self.path = self.folder / "run.sqlite"

    # --- lifecycle -------------------------------------------------------------------------------------

    @classmethod
    def create(
        cls, config: RunConfig, run_id: str | None = None, *, status: str = "queued", meta: dict | None = None
    ) -> RunStore:
        """Make the folder and database of a new run, with its config, status and extra ``meta`` values."""
        run_id = run_id or new_run_id(config)
        store = cls(run_id)
        if store.path.exists():
            raise RunError(f"run {run_id} already exists ({store.path})")
        store.folder.mkdir(parents=True, exist_ok=True)
        (store.folder / "config.json").write_text(config.to_json())
        now = repr(time.time())
        values = {"config": config.to_json(), "status": status, "created": now, "queued": now, **(meta or {})}
        with store.connect() as con:
            con.executescript(_SCHEMA)
            con.executemany("INSERT OR REPLACE INTO meta VALUES (?, ?)", list(values.items()))
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
            raise RunError(f"run {self.run_id}: run store {self.path} unreadable ({exc})") from exc
        finally:
            con.close()

    @contextmanager
    def held_open(self):
        """Keep one connection open for the block (the worker's life): the short connections of each write
        then never close the database's last connection, which would checkpoint the WAL and delete it
        (about 20 ms with its syncs) after every item."""
        con = sqlite3.connect(self.path, timeout=60)
        try:
            con.execute("PRAGMA journal_mode=WAL")
            yield
        finally:
            con.close()

    def worker_alive(self) -> bool:
        """Whether a worker holds this run's lock now (:mod:`core.runs.lock`)."""
        return lock.is_held(self.folder)

    # --- health ----------------------------------------------------------------------------------------

    def check_integrity(self, *, thorough: bool = True) -> None:
        """Check the database (``PRAGMA integrity_check``, or the faster ``quick_check``).

        Raises
        ------
        RunError
            The store is damaged; a ``DAMAGED`` note beside it records why, so that listings show it.
        """
        pragma = "integrity_check" if thorough else "quick_check"
        try:
            with self.connect() as con:
                found = [r[0] for r in con.execute(f"PRAGMA {pragma}(20)").fetchall()]
            problem = "" if found == ["ok"] else "; ".join(found[:3])
        except RunError as exc:
            if _transient(exc.__cause__):
                raise
            problem = str(exc.__cause__ or exc)
        if problem:
            self.note_damage(problem)
            raise RunError(
                f"run {self.run_id}: the run store {self.path} is damaged ({problem}); it cannot be resumed "
                "and its scores cannot be trusted. Delete the run and start it again."
            )

    def note_damage(self, reason: str) -> None:
        """Record why the store is damaged beside it (never inside the database)."""
        try:
            (self.folder / DAMAGED_NOTE).write_text(reason[:2000])
        except OSError:
            pass

    def damage(self) -> str:
        """The recorded reason the store is damaged, or ``""``."""
        try:
            return (self.folder / DAMAGED_NOTE).read_text()
        except OSError:
            return ""

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

    def json_meta(self, key: str, default=None):
        """A meta value written as JSON; a :class:`RunError` naming the key when it is not valid JSON."""
        text = self.get(key)
        if text is None:
            return default
        try:
            return json.loads(text)
        except json.JSONDecodeError:
            raise RunError(f"run {self.run_id}: its stored {key!r} is not valid JSON ({self.path})") from None

    # --- scores and errors -----------------------------------------------------------------------------

    def add_results(self, rows: list[dict], errors: list[dict] = ()) -> int:
        """Insert score rows and error rows with one progress mark, in one transaction.

        Keys ``(condition, unit)`` already scored are ignored; a score replaces an error of its key (a
        retried image that now works), and an error never replaces a score. Returns the number of keys
        settled (scored or failed) in the store.
        """
        cols = ["condition", "unit", *SCORE_COLUMNS]
        sql = f"INSERT OR IGNORE INTO scores ({', '.join(cols)}) VALUES ({', '.join('?' * len(cols))})"
        ecols = ["condition", "unit", *ERROR_COLUMNS]
        esql = (
            f"INSERT OR IGNORE INTO errors ({', '.join(ecols)}, t) SELECT {', '.join('?' * len(ecols))}, ? "
            "WHERE NOT EXISTS (SELECT 1 FROM scores WHERE condition = ? AND unit = ?)"
        )
        now = time.time()
        with self.connect() as con:
            _ensure_errors_table(con)
            if rows:
                con.executemany(sql, [tuple(r[c] for c in cols) for r in rows])
                con.executemany(
                    "DELETE FROM errors WHERE condition = ? AND unit = ?",
                    [(r["condition"], r["unit"]) for r in rows],
                )
            if errors:
                con.executemany(
                    esql, [(*(e[c] for c in ecols), now, e["condition"], e["unit"]) for e in errors]
                )
            done = _settled(con)
            con.execute("INSERT INTO progress VALUES (?, ?)", (now, done))
        return done

    def add_scores(self, rows: list[dict]) -> int:
        """Insert score rows (duplicates of (condition, unit) ignored) with a progress mark; one
        transaction. Returns the number of keys settled (scores, plus error rows if any)."""
        return self.add_results(rows)

    def add_errors(self, errors: list[dict]) -> int:
        """Insert error rows (see :meth:`add_results`); idempotent. Returns the keys settled."""
        return self.add_results([], errors)

    def mark_progress(self) -> None:
        """A progress mark without new rows: where a worker starts, so its rate counts from its first item."""
        with self.connect() as con:
            con.execute("INSERT INTO progress VALUES (?, ?)", (time.time(), _settled(con)))

    def count(self) -> int:
        """Score rows."""
        with self.connect() as con:
            return int(con.execute("SELECT COUNT(*) FROM scores").fetchone()[0])

    def count_errors(self) -> int:
        """Error rows."""
        with self.connect() as con:
            return _n_errors(con)

    def settled(self) -> int:
        """Keys scored or failed."""
        with self.connect() as con:
            return _settled(con)

    def done_units(self) -> dict[str, int]:
        """Keys settled (scored or failed) per unit (image id or ``exam|L``)."""
        return {u: s + e for u, (s, e) in self.unit_counts().items()}

    def unit_counts(self) -> dict[str, tuple[int, int]]:
        """Per unit: (score rows, error rows)."""
        with self.connect() as con:
            out = {u: (int(n), 0) for u, n in con.execute("SELECT unit, COUNT(*) FROM scores GROUP BY unit")}
            if _has_errors_table(con):
                for u, n in con.execute("SELECT unit, COUNT(*) FROM errors GROUP BY unit"):
                    out[u] = (out.get(u, (0, 0))[0], int(n))
        return out

    def clear_errors(self) -> int:
        """Forget every error row, so that the next execution retries those keys; returns how many."""
        with self.connect() as con:
            if not _has_errors_table(con):
                return 0
            return con.execute("DELETE FROM errors").rowcount

    def scores(self) -> pd.DataFrame:
        """The scores table (columns :data:`core.metrics.SCORE_COLUMNS`), ordered by condition and unit."""
        with self.connect() as con:
            df = pd.read_sql_query(
                f"SELECT {', '.join(SCORE_COLUMNS)} FROM scores ORDER BY condition, unit", con
            )
        for col in ("image_id", "view"):
            df[col] = df[col].fillna("")
        return df

    def errors(self) -> pd.DataFrame:
        """The error rows (columns :data:`ERROR_COLUMNS`), ordered by unit and condition."""
        with self.connect() as con:
            if not _has_errors_table(con):
                return pd.DataFrame(columns=list(ERROR_COLUMNS))
            sql = f"SELECT {', '.join(ERROR_COLUMNS)} FROM errors ORDER BY unit, condition"
            df = pd.read_sql_query(sql, con)
        for col in ("image_id", "view", "laterality"):
            df[col] = df[col].fillna("")
        return df

    # --- status ----------------------------------------------------------------------------------------

    def status(self) -> RunStatus:
        """The run's status and progress; a :class:`RunError` when the store or its meta cannot be read."""
        with self.connect() as con:
            meta = dict(con.execute("SELECT key, value FROM meta").fetchall())
            done = int(con.execute("SELECT COUNT(*) FROM scores").fetchone()[0])
            n_err = _n_errors(con)
            marks = con.execute("SELECT t, done FROM progress ORDER BY rowid DESC LIMIT 200").fetchall()
        return _status(self, meta, done, n_err, marks)


def _status(store: RunStore, meta: dict, done: int, n_err: int, marks: list) -> RunStatus:
    where = f"run {store.run_id}"
    status = meta.get("status", "queued")
    if status not in STATUSES:
        raise RunError(f"{where}: unknown stored status {status!r} ({store.path})")
    if status == "running" and not store.worker_alive():
        status = "interrupted"
    try:
        cfg = json.loads(meta.get("config", "{}"))
    except json.JSONDecodeError:
        raise RunError(f"{where}: its stored config is not valid JSON ({store.path})") from None
    if not isinstance(cfg, dict):
        raise RunError(f"{where}: its stored config is not a JSON object ({store.path})")

    def num(key, kind=float):
        if key not in meta:
            return None
        try:
            return kind(meta[key])
        except (TypeError, ValueError):
            raise RunError(f"{where}: its stored {key!r} is not a number ({store.path})") from None

    total = num("total", int) or 0
    settled = done + n_err
    rate = eta = None
    if len(marks) >= 2:
        t_last, d_last = marks[0]
        recent = [m for m in marks if t_last - m[0] <= 60] or marks[:2]
        t0, d0 = recent[-1] if len(recent) > 1 else marks[1]
        if t_last > t0 and d_last > d0:
            rate = (d_last - d0) / (t_last - t0)
            eta = max(total - settled, 0) / rate if status == "running" else None
    return RunStatus(
        run_id=store.run_id, status=status, done=done, total=total, rate=rate, eta_s=eta,
        created=num("created"), started=num("started"), finished=num("finished"), error=meta.get("error", ""),
        name=str(cfg.get("name", "")), model=str(cfg.get("model", "")), weights=str(cfg.get("weights", "")),
        errors=n_err, queued=num("queued") or num("created"), n_items=num("n_items", int) or 0,
        item_rows=num("item_rows", int) or 0,
    )  # fmt: skip


def _transient(exc: BaseException | None) -> bool:
    """A busy or unreachable database (retry later), as opposed to a damaged one."""
    text = str(exc).lower()
    return isinstance(exc, sqlite3.OperationalError) and any(
        word in text for word in ("locked", "busy", "unable to open", "disk i/o")
    )


def _has_errors_table(con) -> bool:
    """Stores made before error rows existed have no ``errors`` table (read as none)."""
    sql = "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'errors'"
    return con.execute(sql).fetchone() is not None


def _ensure_errors_table(con) -> None:
    """Add the ``errors`` table to an older store, inside the caller's transaction (not executescript,
    which would commit it)."""
    if not _has_errors_table(con):
        con.execute(_ERRORS_TABLE)


def _n_errors(con) -> int:
    return int(con.execute("SELECT COUNT(*) FROM errors").fetchone()[0]) if _has_errors_table(con) else 0


def _settled(con) -> int:
    return int(con.execute("SELECT COUNT(*) FROM scores").fetchone()[0]) + _n_errors(con)
