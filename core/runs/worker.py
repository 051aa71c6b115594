"""The worker: executes one run from its store, resumably; and the queue runner.

``mammo-robust run`` (what the UI starts with ``subprocess.Popen``) ends up in :func:`execute_run`. The
work is cut into fixed batches of ``batch_size`` items in manifest order. Each item (image or exam) is
written with its progress mark as soon as it is scored, so progress, rate and ETA move per item. A batch
whose rows are all in the store is skipped; any other batch is computed whole (less the items that failed
before the model) and inserted with ``INSERT OR IGNORE``, so after a kill (even SIGKILL) the restarted
worker recomputes only unfinished batches, with the same batch composition, and the final table equals
that of an uninterrupted run.

An image that cannot be read or scored becomes error rows (:mod:`core.runs.failures`) and the run goes on;
it ends ``done`` with its error count, and a resumed run does not retry such images unless asked
(``retry_errors``, ``mammo-robust run --resume RUN_ID --retry-errors``).

Liveness: the worker holds the run's lock (:mod:`core.runs.lock`) for its whole life; the run is
``running`` only while the lock is held, so a dead worker (even after SIGKILL, even if its PID is reused)
shows ``interrupted``. The store's integrity is checked before any work.

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
from core.runs import lock
from core.runs.checks import LABELS
from core.runs.cohort import resolve_manifest
from core.runs.config import RunConfig, RunError
from core.runs.failures import known_bad
from core.runs.grid import base_conditions, matched_conditions, matched_targets, norm_key
from core.runs.store import RunStore
from core.runs.work import Timings, WorkItem, change_norms, score_batch, work_items


def estimate_work(config: RunConfig, *, roots=None) -> dict:
    """What a run will do, before starting it: items, score rows, model inputs.

    ``roots``: read the manifest only inside these folders (the app's allowed roots, see
    :func:`core.runs.cohort.resolve_manifest`). Returns a dict with ``n_items`` (images or exams),
    ``n_images``, ``n_conditions``, ``n_rows`` (score rows), ``n_inputs`` (model forward inputs) and
    ``problems`` (items left out).
    """
    from core.runs.grid import n_conditions

    manifest = resolve_manifest(config, roots=roots)
    items, problems = work_items(manifest, config.model, max_images=config.max_images)
    from core.models.predict import inputs_per_image

    n_cond = n_conditions(config)
    n_img = sum(len(i.images) for i in items)
    inputs = n_img * n_cond * inputs_per_image(config.model, samples=config.dmv_samples)
    return dict(
        n_items=len(items), n_images=n_img, n_conditions=n_cond,
        n_rows=sum(len(i.units) for i in items) * n_cond, n_inputs=inputs, problems=problems,
    )  # fmt: skip


def weights_label(config: RunConfig) -> str:
    """The ``weights`` column: "demo", "demo-fast", "random", or the weights file's name (never its
    folder)."""
    from pathlib import Path

    return config.weights if config.weights in LABELS else Path(config.weights).name


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


def execute_run(run_id: str, *, log: Callable[[str], None] | None = None, retry_errors: bool = False) -> str:
    """Run (or resume) a stored run to its end; returns the final status.

    The worker holds the run's lock (:mod:`core.runs.lock`) from start to end, which is what makes the run
    "running"; it first checks the store's integrity. Keys already scored are not computed again, and
    neither are images that failed before (error rows) unless ``retry_errors``.

    Raises
    ------
    RunError
        The run is already running, its store is damaged, or it cannot start or fails (the store then
        says ``failed`` with the message).
    """
    log = log or (lambda msg: None)
    store = RunStore.open(run_id)
    with lock.hold(store.folder, what=f"run {run_id}"):
        store.check_integrity()
        with store.held_open():
            config = store.config()
            if retry_errors:
                log(f"retrying {store.clear_errors()} error row(s)")
            return _run_locked(store, config, log)


def _run_locked(store: RunStore, config: RunConfig, log) -> str:
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
        raise RunError(f"run {store.run_id}: {exc}") from exc
    except Exception as exc:
        store.set(status="failed", error=f"{type(exc).__name__}: {exc}", finished=repr(time.time()),
                  traceback=traceback.format_exc())  # fmt: skip
        raise
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def _conditions(
    store: RunStore, config: RunConfig, items: list[WorkItem], log, stop: _StopFlag, engine=None
) -> list | None:
    """The run's conditions; the matched baselines' norms measured once (here, or by the Ray ``engine``)
    and kept in the store. None when the run was cancelled while they were measured here (nothing kept)."""
    conditions = base_conditions(config)
    targets = matched_targets(config)
    if targets:
        norms = store.json_meta("matched_norms", {})
        if not all(norm_key(t) in norms for t in targets):
            log(f"matched baseline: measuring {len(targets)} perturbation norm(s) over {len(items)} item(s)")
            t0 = time.perf_counter()
            if engine is None:
                sums = change_norms(items, targets, should_stop=stop)
                if sums is None:
                    return None
            else:
                sums = engine.change_norms(items, targets)
            store.set(norms_s=repr(time.perf_counter() - t0))
            if len(sums) < len(targets):
                raise RunError("matched baseline: no image of the cohort could be read to measure its norms")
            norms = {k: s / n for k, (s, n) in sums.items()}
            store.set(matched_norms=json.dumps(norms))
        conditions += matched_conditions(config, norms)
    return conditions


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

    roots = store.json_meta("allowed_roots")
    items, problems = work_items(
        resolve_manifest(config, roots=roots), config.model, max_images=config.max_images
    )
    if not items:
        raise RunError("no image to score")
    if problems:
        store.set(problems=json.dumps(problems))
    conditions = _conditions(store, config, items, log, stop, engine)
    if conditions is None:
        store.set(status="cancelled", finished=repr(time.time()))
        log("cancelled while measuring the matched baselines' norms")
        return "cancelled"
    n_cond = len(conditions)
    total = sum(len(item.units) for item in items) * n_cond
    store.set(total=str(total), n_conditions=str(n_cond), n_items=str(len(items)),
              item_rows=str(len(items[0].units) * n_cond))  # fmt: skip
    if engine is not None:
        engine.score(store, items, conditions, stop, weights_label(config))
        return _finish(store, stop, total, log)
    model = create_model(config.model, config.weights, device=config.device, fast=config.fast)
    forward_batch = config.forward_batch_size(model_device(model).type)
    timings = Timings()
    timings.extra["store_s"] = 0.0
    counts = store.unit_counts()
    store.mark_progress()  # the rate counts from here, so it is known after the first item

    unsettled = [item for item in items if any(sum(counts.get(u, (0, 0))) < n_cond for u in item.units)]
    todo = [item for item in unsettled if not known_bad(item, counts, n_cond)]
    settled_items = 0

    def commit(item: WorkItem, rows: list[dict], errors: list[dict]) -> None:
        nonlocal settled_items
        t0 = time.perf_counter()
        store.add_results(rows, errors)
        timings.extra["store_s"] += time.perf_counter() - t0
        if errors:
            log(f"error: {errors[0]['message']}")
        settled_items += 1
        if settled_items % config.batch_size == 0:
            log(f"{store.settled()}/{total} rows")

    # One stream over all the items: its threads prepare the next images while the model scores, with no
    # pause between groups of items (each group used to start with the model waiting for its first image).
    if todo and not stop():
        score_batch(
            model, todo, conditions, weights_label=weights_label(config), batch_size=forward_batch,
            dmv_samples=config.dmv_samples, timings=timings, should_stop=stop, on_item=commit,
        )  # fmt: skip
    store.set(timings=json.dumps(_timings(timings)))
    log(f"{store.settled()}/{total} rows")
    return _finish(store, stop, total, log)


def _finish(store: RunStore, stop: _StopFlag, total: int, log) -> str:
    """The run's final status from what the store holds (scores and error rows): cancelled, done (with its
    error count), or a :class:`RunError` when keys are missing. Both engines end here."""
    settled = store.settled()
    if stop() and settled < total:
        store.set(status="cancelled", finished=repr(time.time()))
        log("cancelled")
        return "cancelled"
    if settled < total:
        raise RunError(f"finished with {settled} of {total} rows")
    store.set(status="done", finished=repr(time.time()))
    n_err = store.count_errors()
    log(f"done, {n_err} error row(s)" if n_err else "done")
    return "done"


def _timings(timings: Timings) -> dict:
    return {
        "forward_s": timings.forward_s,
        "total_s": timings.total_s,
        "n_inputs": timings.n_inputs,
        "n_images": timings.n_images,
        **timings.extra,
    }


# --- the queue ---------------------------------------------------------------------------------------


def _runner_lock_path():
    from core.runs.store import runs_dir

    return runs_dir() / ".runner.lock"


def runner_loop(*, log: Callable[[str], None] | None = None, idle_exit_s: float = 2.0) -> int:
    """Run queued runs one at a time, in the order they were queued, until none is left; returns how many
    it started.

    Only one runner works at a time (an exclusive lock on ``runs/.runner.lock``); a second one exits at
    once. Damaged stores are listed as such, never as queued, and a run that cannot start (its store
    fails the integrity check, another worker holds it) is logged and left: the runner moves on. After
    releasing the lock the runner looks at the queue once more, so a run queued while it was leaving (when
    :func:`runner_active` still said yes) is not left waiting.
    """
    log = log or (lambda msg: None)
    tried: set[tuple[str, float]] = set()  # (run, queued time) already started by this runner
    ran = 0
    while True:
        done = _work_queue(log, idle_exit_s, tried)
        if done is None:
            return ran
        ran += done
        if not _fresh_queued(tried):
            return ran


def _fresh_queued(tried: set) -> list[tuple[str, float]]:
    """Queued runs (id, queue time) in queue order that this runner has not started yet."""
    from core.runs.listing import list_runs

    runs = list_runs()
    queued = runs[runs["status"] == "queued"].sort_values(["queued", "created"])
    keys = list(zip(queued["run_id"], queued["queued"].fillna(0.0), strict=True))
    return [k for k in keys if k not in tried]


def _work_queue(log, idle_exit_s: float, tried: set) -> int | None:
    """Hold the runner lock and run queued runs until idle for ``idle_exit_s``; how many it started, or
    None when another runner holds the lock."""
    import fcntl

    with open(_runner_lock_path(), "w") as lock:
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            log("another runner is active")
            return None
        ran = 0
        idle_since = time.monotonic()
        while True:
            fresh = _fresh_queued(tried)
            if not fresh:
                if time.monotonic() - idle_since > idle_exit_s:
                    return ran
                time.sleep(0.5)
                continue
            run_id = str(fresh[0][0])
            tried.add(fresh[0])  # a run that cannot start (damaged, locked) is not picked again
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
