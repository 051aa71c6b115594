"""The worker: executes one run from its store, resumably; and the queue runner.

``mammo-robust run`` (what the UI starts with ``subprocess.Popen``) ends up in :func:`execute_run`. The
work is cut into fixed batches of ``batch_size`` items in manifest order. A batch whose rows are all in
the store is skipped; any other batch is computed whole and inserted with ``INSERT OR IGNORE``, so after
a kill (even SIGKILL) the restarted worker recomputes only unfinished batches, with the same batch
composition, and the final table equals that of an uninterrupted run.

Cancelling: :func:`core.runs.cancel_run` sets ``cancel_requested`` in the store (and the worker also
treats SIGTERM/SIGINT as a cancel request); the worker stops between images and marks the run
``cancelled``. A cancelled or interrupted run can be resumed.
"""

from __future__ import annotations

import json
import os
import signal
import sys
import time
import traceback
from collections.abc import Callable

from core.errors import ExplorerError
from core.runs.cohort import resolve_manifest
from core.runs.config import RunConfig, RunError
from core.runs.grid import base_conditions, matched_conditions, matched_targets, norm_key
from core.runs.store import RunStore
from core.runs.work import Timings, WorkItem, change_norms, score_items, work_items


def estimate_work(config: RunConfig) -> dict:
    """What a run will do, before starting it: items, score rows, model inputs.

    Returns a dict with ``n_items`` (images or exams), ``n_images``, ``n_conditions``, ``n_rows`` (score
    rows), ``n_inputs`` (model forward inputs) and ``problems`` (items left out).
    """
    from core.runs.grid import n_conditions

    items, problems = work_items(resolve_manifest(config), config.model, max_images=config.max_images)
    from core.models.predict import inputs_per_image

    n_cond = n_conditions(config)
    n_img = sum(len(i.images) for i in items)
    inputs = n_img * n_cond * inputs_per_image(config.model, samples=config.dmv_samples)
    return dict(
        n_items=len(items), n_images=n_img, n_conditions=n_cond,
        n_rows=sum(len(i.units) for i in items) * n_cond, n_inputs=inputs, problems=problems,
    )  # fmt: skip


def weights_label(config: RunConfig) -> str:
    """The ``weights`` column: "demo", "random", or the weights file's name (never its folder)."""
    from pathlib import Path

    return config.weights if config.weights in ("demo", "random") else Path(config.weights).name


def _batches(items: list[WorkItem], size: int) -> list[list[WorkItem]]:
    return [items[i : i + size] for i in range(0, len(items), size)]


class _StopFlag:
    """Cancel requests: the store's flag (read at most every 0.25 s) or a signal."""

    def __init__(self, store: RunStore) -> None:
        self.store = store
        self.signalled = False
        self._last = 0.0
        self._cached = False

    def __call__(self) -> bool:
        if self.signalled:
            return True
        now = time.monotonic()
        if now - self._last > 0.25:
            self._last = now
            self._cached = self.store.get("cancel_requested") == "1"
        return self._cached


def execute_run(run_id: str, *, log: Callable[[str], None] | None = None) -> str:
    """Run (or resume) a stored run to its end; returns the final status.

    Raises
    ------
    RunError
        The run cannot start or fails (the store then says ``failed`` with the message).
    """
    log = log or (lambda msg: None)
    store = RunStore.open(run_id)
    if store.status().status == "running":
        raise RunError(f"run {run_id} is already running in process {store.get('pid')}")
    config = store.config()
    stop = _StopFlag(store)

    def on_signal(signum, frame):  # noqa: ARG001
        stop.signalled = True

    previous = {}
    for sig in (signal.SIGTERM, signal.SIGINT):
        try:
            previous[sig] = signal.signal(sig, on_signal)
        except ValueError:  # not in the main thread: rely on the store flag
            pass
    store.set(
        status="running", pid=str(os.getpid()), started=repr(time.time()), cancel_requested="0", error=""
    )
    try:
        return _execute(store, config, stop, log)
    except ExplorerError as exc:
        store.set(status="failed", error=str(exc), finished=repr(time.time()))
        raise RunError(f"run {run_id}: {exc}") from exc
    except Exception as exc:
        store.set(status="failed", error=f"{type(exc).__name__}: {exc}", finished=repr(time.time()),
                  traceback=traceback.format_exc())  # fmt: skip
        raise
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def _execute(store: RunStore, config: RunConfig, stop: _StopFlag, log) -> str:
    if config.engine == "ray":  # the same plan, scored on a Ray cluster (core.runs.ray_engine)
        from core.runs.ray_engine import ray_session

        with ray_session(config, log) as engine:
            return _execute_with(store, config, stop, log, engine)
    return _execute_with(store, config, stop, log, None)


def _execute_with(store: RunStore, config: RunConfig, stop: _StopFlag, log, engine) -> str:
    """The run's plan (items, conditions, matched norms), then its scores: in this process (``engine`` None)
    or by the engine (``engine.change_norms``, ``engine.score``), into the same store."""
    from core.models import create_model
    from core.models.forward import model_device

    items, problems = work_items(resolve_manifest(config), config.model, max_images=config.max_images)
    if not items:
        raise RunError("no image to score")
    if problems:
        store.set(problems=json.dumps(problems))
    conditions = base_conditions(config)
    targets = matched_targets(config)
    if targets:
        norms = json.loads(store.get("matched_norms") or "{}")
        if not all(norm_key(t) in norms for t in targets):
            log(f"matched baseline: measuring {len(targets)} perturbation norm(s) over {len(items)} item(s)")
            t0 = time.perf_counter()
            sums = change_norms(items, targets) if engine is None else engine.change_norms(items, targets)
            store.set(norms_s=repr(time.perf_counter() - t0))
            norms = {k: s / n for k, (s, n) in sums.items()}
            store.set(matched_norms=json.dumps(norms))
        conditions += matched_conditions(config, norms)
    total = sum(len(item.units) for item in items) * len(conditions)
    store.set(total=str(total), n_conditions=str(len(conditions)))
    if engine is not None:
        engine.score(store, items, conditions, stop, weights_label(config))
        return _finish(store, stop, total, log)
    model = create_model(config.model, config.weights, device=config.device, fast=config.fast)
    forward_batch = config.forward_batch_size(model_device(model).type)
    timings = Timings()
    done_units = store.done_units()
    n_cond = len(conditions)
    for batch in _batches(items, config.batch_size):
        if all(done_units.get(u, 0) >= n_cond for item in batch for u in item.units):
            continue
        if stop():
            break
        rows = score_items(
            model, batch, conditions, weights_label=weights_label(config), batch_size=forward_batch,
            dmv_samples=config.dmv_samples, timings=timings, should_stop=stop,
        )  # fmt: skip
        if not rows:  # stopped inside the batch: nothing of it is kept
            break
        t0 = time.perf_counter()
        done = store.add_scores(rows)
        timings.extra["store_s"] = timings.extra.get("store_s", 0.0) + time.perf_counter() - t0
        store.set(
            timings=json.dumps(
                {
                    "forward_s": timings.forward_s,
                    "total_s": timings.total_s,
                    "n_inputs": timings.n_inputs,
                    "n_images": timings.n_images,
                    **timings.extra,
                }
            )
        )
        log(f"{done}/{total} rows")
        if stop():
            break
    return _finish(store, stop, total, log)


def _finish(store: RunStore, stop: _StopFlag, total: int, log) -> str:
    """The run's final status from what the store holds: cancelled, done, or a :class:`RunError`."""
    if stop() and store.count() < total:
        store.set(status="cancelled", finished=repr(time.time()))
        log("cancelled")
        return "cancelled"
    if store.count() < total:
        raise RunError(f"finished with {store.count()} of {total} rows")
    store.set(status="done", finished=repr(time.time()))
    log("done")
    return "done"


# --- the queue ---------------------------------------------------------------------------------------


def _runner_lock_path():
    from core.runs.store import runs_dir

    return runs_dir() / ".runner.lock"


def runner_loop(*, log: Callable[[str], None] | None = None, idle_exit_s: float = 2.0) -> int:
    """Run queued runs one at a time, oldest first, until none is left; returns how many ran.

    Only one runner works at a time (an exclusive lock on ``runs/.runner.lock``); a second one exits at
    once.
    """
    import fcntl

    from core.runs.store import list_runs

    log = log or (lambda msg: None)
    with open(_runner_lock_path(), "w") as lock:
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            log("another runner is active")
            return 0
        ran = 0
        idle_since = time.monotonic()
        while True:
            runs = list_runs()
            queued = runs[runs["status"] == "queued"].sort_values("created")
            if queued.empty:
                if time.monotonic() - idle_since > idle_exit_s:
                    return ran
                time.sleep(0.5)
                continue
            run_id = str(queued["run_id"].iloc[0])
            log(f"starting run {run_id}")
            try:
                execute_run(run_id, log=log)
            except ExplorerError as exc:
                log(str(exc))
            except Exception:  # a broken run must not stop the queue; the store keeps its traceback
                log(traceback.format_exc())
            ran += 1
            idle_since = time.monotonic()


def runner_active() -> bool:
    """Whether a queue runner holds the lock now."""
    import fcntl

    path = _runner_lock_path()
    if not path.exists():
        return False
    with open(path, "w") as lock:
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return True
        fcntl.flock(lock, fcntl.LOCK_UN)
        return False


def spawn_runner():
    """Start ``mammo-robust run --runner`` as a detached process (new session); returns the Popen."""
    import subprocess

    from core.runs.store import runs_dir

    logf = open(runs_dir() / "runner.log", "a")  # noqa: SIM115 (handed to the child)
    return subprocess.Popen(
        [sys.executable, "-m", "core", "run", "--runner"],
        stdout=logf, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True,
        env={**os.environ},
    )  # fmt: skip
