"""The Ray engine of runs: the local worker's plan, scored on a Ray cluster with Ray Data.

``RunConfig(engine="ray")`` (``mammo-robust run CONFIG --engine ray [--address ADDRESS]``). The driver is the
worker process of :func:`core.runs.execute_run`: it makes the same plan as the local engine (work items,
conditions, matched-baseline norms; :mod:`core.runs.worker`), owns the store and the cancel flag, and hands
two passes to Ray Data:

* **matched-baseline norms** (when the run has baselines): one CPU task per image measures
  ``||P(x) - x||_2`` per target (:func:`core.runs.work.image_norms`); the driver sums them in image order,
  so the means equal the local engine's.
* **scores**: CPU tasks load, perturb and prepare one work item each (:func:`core.runs.work.prepare_item`,
  the local engine's code: a ``GmicInputs`` / ``DmvInputs`` of plain arrays, pickled), then an actor pool
  holds the model (one GPU per actor where the cluster has GPUs, CPU actors otherwise) and scores batches
  of items with :func:`core.models.forward.score_units` and :func:`core.runs.work.score_rows`, forward
  batches sized per device (:meth:`RunConfig.forward_batch_size`). The driver writes each batch of rows it
  receives with ``INSERT OR IGNORE`` on ``(condition, unit)``, so a key is stored once whatever Ray retries.

Faults. Ray Data restarts a dead actor and retries its in-flight batch, and retries a failed CPU task; what
was written stays written. A killed driver leaves a resumable run: the store holds whole batches, and a
resumed run schedules only items that miss rows. Items that fail with an :class:`core.errors.ExplorerError`
(an unreadable image, an image the model cannot use) do not stop the dataset: each becomes a
:class:`UnitFailure` (``RayEngine.failures``); when the pass is over, every other row is stored and the run
fails with a :class:`RunError` naming them (a resume retries them).

Ray is optional: this module imports it only when a Ray run starts, and says how to install it when it is
missing. Without an address (config, or ``RAY_ADDRESS``) a local Ray is started for the run and stopped
after it; a Ray already initialised in this process (tests, notebooks) is used as it is.
"""

from __future__ import annotations

import logging
import os
import pickle
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any

from core.errors import ExplorerError
from core.runs.config import RunConfig, RunError
from core.runs.grid import Condition, norm_key
from core.runs.work import ImageRow, WorkItem

INSTALL_HINT = "pip install 'mammo-robustness-explorer[ray]' (bash scripts/install.sh installs it)"


@dataclass(frozen=True)
class UnitFailure:
    """One work item that could not be scored: its key (image id or exam id), the stage (``"norms"``,
    ``"prepare"``, ``"score"``) and the error message (which names the file)."""

    item: str
    stage: str
    message: str


def import_ray() -> Any:
    """The ``ray`` module with Ray Data; a :class:`RunError` saying how to install it when it is missing."""
    try:
        import ray
        import ray.data  # noqa: F401
    except ImportError as exc:
        raise RunError(
            f"engine 'ray' needs Ray with Ray Data, which is not installed ({exc}); {INSTALL_HINT}"
        ) from None
    return ray


def ray_available() -> bool:
    """Whether Ray with Ray Data can be imported here."""
    try:
        import_ray()
    except RunError:
        return False
    return True


@contextmanager
def ray_session(config: RunConfig, log: Callable[[str], None]) -> Iterator[RayEngine]:
    """A :class:`RayEngine` on the run's cluster: joins ``config.address`` (or ``RAY_ADDRESS``), else starts a
    local Ray for the run; stops only a Ray it started. A Ray already initialised here is used as it is."""
    ray = import_ray()
    started = False
    if not ray.is_initialized():
        address = config.address or os.environ.get("RAY_ADDRESS")
        if address:
            # Workers run the driver's code of this package; the other packages come from each node's
            # installation (docs/clusters.md).
            core_dir = str(Path(__file__).resolve().parents[1])
            ray.init(address=address, runtime_env={"py_modules": [core_dir]}, log_to_driver=False)
            log(f"ray: joined the cluster at {address}")
        else:
            cpus = max(os.cpu_count() or 1, (config.workers or 1) + 1)
            ray.init(address="local", num_cpus=cpus, include_dashboard=False, log_to_driver=False)
            log(f"ray: started a local Ray with {cpus} CPU slots")
        started = True
    _quiet(ray)
    try:
        yield RayEngine(config, log)
    finally:
        if started:
            ray.shutdown()


def _quiet(ray: Any) -> None:
    """No progress bars or per-operator INFO lines from Ray Data in the run's log."""
    ctx = ray.data.DataContext.get_current()
    ctx.enable_progress_bars = False
    ctx.print_on_execution_start = False
    logging.getLogger("ray.data").setLevel(logging.WARNING)


# --- the work of the tasks and actors (module-level, so Ray pickles them by reference) -------------------


def _norms_row(row: dict, *, images: Sequence[ImageRow], targets: Sequence[Condition]) -> dict:
    """CPU task: the change norms of one image (``norms``), or its error message (``error``)."""
    from core.runs.work import image_norms

    k = int(row["k"])
    try:
        return {"k": k, "norms": image_norms(images[k], targets), "error": ""}
    except ExplorerError as exc:
        return {"k": k, "norms": [0.0] * len(targets), "error": str(exc)}


def _prepare_row(row: dict, *, conditions: Sequence[Condition], spec, dmv_samples: int) -> dict:
    """CPU task: load, perturb and prepare the row's work item; its pickled model inputs, or the error."""
    from core.runs.work import prepare_item

    item = pickle.loads(row["item"])
    out = {"k": int(row["k"]), "item": row["item"], "unit": b"", "error": ""}
    try:
        unit = prepare_item(item, conditions, spec, dmv_samples=dmv_samples)
    except ExplorerError as exc:
        return {**out, "error": str(exc)}
    return {**out, "unit": pickle.dumps(unit, protocol=pickle.HIGHEST_PROTOCOL)}


class Scorer:
    """Actor: the model, once per actor; scores batches of prepared items into score rows.

    Parameters
    ----------
    config_json : str
        The run's :class:`RunConfig` (model, weights, device, fast, batch sizes).
    weights_label : str
        The ``weights`` column.
    threads : int or None
        torch CPU threads of a CPU actor.
    """

    def __init__(self, config_json: str, weights_label: str, threads: int | None):
        import torch

        from core.models import create_model
        from core.models.forward import model_device

        config = RunConfig.from_json(config_json)
        device = config.device or ("cuda" if torch.cuda.is_available() else "cpu")
        if threads and device == "cpu":
            torch.set_num_threads(threads)
        self.model = create_model(config.model, config.weights, device=device, fast=config.fast)
        self.batch_size = config.forward_batch_size(model_device(self.model).type)
        self.weights_label = weights_label

    def __call__(self, batch: dict) -> dict:
        """``{k, item, unit, error}`` rows in, ``{k, rows, error, stage, forward_s, n_inputs}`` out: per item
        its pickled score rows (:func:`core.runs.work.score_rows`) or its error and the stage that raised it
        (``prepare``, ``score``); the forward seconds and inputs of the call on the first row."""
        from core.models.forward import score_units
        from core.runs.work import score_rows

        out: dict[str, list] = {
            "k": [],
            "rows": [],
            "error": [],
            "stage": [],
            "forward_s": [],
            "n_inputs": [],
        }
        items, units = {}, []
        for k, item, blob, error in zip(
            batch["k"], batch["item"], batch["unit"], batch["error"], strict=True
        ):
            if error:
                _append(out, int(k), b"", str(error), "prepare")
            else:
                items[int(k)] = pickle.loads(item)
                units.append((int(k), pickle.loads(blob)))
        stats = [0.0, 0]

        def on_forward(seconds: float, n_inputs: int) -> None:
            stats[0] += seconds
            stats[1] += n_inputs

        arch = self.model.spec.arch
        try:
            for k, scores in score_units(
                self.model, units, batch_size=self.batch_size, on_forward=on_forward
            ):
                rows = score_rows(arch, self.weights_label, items[k], scores)
                _append(out, k, pickle.dumps(rows, protocol=pickle.HIGHEST_PROTOCOL), "")
        except ExplorerError as exc:
            done = set(out["k"])
            for k, _ in units:
                if k not in done:
                    _append(out, k, b"", str(exc), "score")
        if out["k"]:
            out["forward_s"][0], out["n_inputs"][0] = stats[0], stats[1]
        return out


def _append(out: dict, k: int, rows: bytes, error: str, stage: str = "") -> None:
    out["k"].append(k)
    out["rows"].append(rows)
    out["error"].append(error)
    out["stage"].append(stage)
    out["forward_s"].append(0.0)
    out["n_inputs"].append(0)


def _prep_memory(spec, n_conditions: int, images_per_item: int) -> int:
    """Bytes a preparation task reserves: the item's images, their perturbed versions and model inputs
    (float32 at the model's input size, a generous bound), at least 1 GiB (a task's process holds torch and
    the decoders: about 0.4 GiB measured). It also keeps the CPU tasks out of the actors: Ray Data fuses a
    task into the next actor stage only when their resource requests are equal."""
    h, w = (max(s) for s in zip(*spec.input_size.values(), strict=True))
    return max(1 << 30, images_per_item * (n_conditions + 8) * h * w * 4)


# --- the driver ------------------------------------------------------------------------------------------


class RayEngine:
    """Scores a run's plan on the Ray cluster this process is connected to (see :func:`ray_session`)."""

    def __init__(self, config: RunConfig, log: Callable[[str], None]) -> None:
        self.ray = import_ray()
        self.config = config
        self.log = log
        self.failures: list[UnitFailure] = []
        resources = self.ray.cluster_resources()
        self.gpus = 0 if config.device == "cpu" else int(resources.get("GPU", 0))
        if self.gpus == 0 and str(config.device or "").startswith("cuda"):
            raise RunError(f"run config: device {config.device!r}, but the Ray cluster has no GPU")
        self.workers = config.workers or max(1, self.gpus)
        if self.gpus and self.workers > self.gpus:  # each GPU actor holds a whole GPU
            log(
                f"ray: {self.workers} workers asked for, but the cluster has {self.gpus} GPU(s): "
                f"using {self.gpus}"
            )
            self.workers = self.gpus
        alive = [n for n in self.ray.nodes() if n.get("Alive")]
        nodes = max(1, len(alive))
        # the smallest node's schedulable memory: a preparation task asks for at most half of it
        self.node_memory = min((n.get("Resources", {}).get("memory", 0) for n in alive), default=0)
        per_node = -(-self.workers // nodes)
        self.threads = max(1, int(resources.get("CPU", 1) / nodes) // per_node)

    def _blocks(self, n: int) -> int:
        return max(1, min(n, 1000))

    def change_norms(self, items: Sequence[WorkItem], targets: Sequence[Condition]):
        """Per target, ``(sum of ||P(x) - x||_2, images)`` as :func:`core.runs.work.change_norms`, the sums
        taken in image order on the driver. Images that fail are left out and recorded in ``failures``."""
        rows = [row for item in items for row in item.images]
        owner = {row.image_id: item.key for item in items for row in item.images}
        ds = self.ray.data.from_items(
            [{"k": k} for k in range(len(rows))], override_num_blocks=self._blocks(len(rows))
        )
        fn = partial(_norms_row, images=rows, targets=list(targets))
        results = {int(r["k"]): r for r in ds.map(fn, num_cpus=1).iter_rows()}
        out: dict[str, list] = {norm_key(c): [0.0, 0] for c in targets}
        for k in range(len(rows)):
            r = results[k]
            if r["error"]:
                self.failures.append(UnitFailure(owner[rows[k].image_id], "norms", str(r["error"])))
                continue
            for cond, norm in zip(targets, r["norms"], strict=True):
                acc = out[norm_key(cond)]
                acc[0] += float(norm)
                acc[1] += 1
        self.log(f"ray: matched-baseline norms of {len(rows)} image(s)")
        return {k: (v[0], v[1]) for k, v in out.items() if v[1]}

    def score(
        self, store: Any, items: Sequence[WorkItem], conditions: Sequence[Condition], stop, label: str
    ) -> None:
        """Score every item that misses rows in ``store``; rows are written as they arrive.

        ``label`` is the ``weights`` column. Returns early (nothing half-written) when ``stop()`` turns True.
        Raises :class:`RunError` after the pass when items failed (``failures``); every other row is in the
        store by then.
        """
        from core.models import create_model

        done_units = store.done_units()
        n_cond = len(conditions)
        failed = {f.item for f in self.failures}
        pending = [
            k for k, item in enumerate(items)
            if item.key not in failed and not all(done_units.get(u, 0) >= n_cond for u in item.units)
        ]  # fmt: skip
        if pending:
            spec = create_model(self.config.model, self.config.weights, device="cpu", fast=False).spec
            self._score(store, items, pending, list(conditions), spec, stop, label)
        if self.failures:
            names = "; ".join(f"{f.item} ({f.stage}): {f.message}" for f in self.failures[:5])
            more = f" and {len(self.failures) - 5} more" if len(self.failures) > 5 else ""
            raise RunError(
                f"{len(self.failures)} item(s) could not be scored: {names}{more}; every other row is "
                "stored, and resuming the run retries them"
            )

    def _dataset(self, items, pending, conditions, spec, label):
        """Prepare (CPU tasks) -> score (actor pool): a lazy Ray dataset of per-item score rows."""
        cfg, ray = self.config, self.ray
        rows = [{"k": k, "item": pickle.dumps(items[k], protocol=pickle.HIGHEST_PROTOCOL)} for k in pending]
        ds = ray.data.from_items(rows, override_num_blocks=self._blocks(len(rows)))
        prepare = partial(_prepare_row, conditions=conditions, spec=spec, dmv_samples=cfg.dmv_samples)
        memory = _prep_memory(spec, len(conditions), len(items[pending[0]].images))
        if self.node_memory:
            memory = min(memory, int(self.node_memory // 2))
        ds = ds.map(prepare, num_cpus=1, memory=memory)
        # Items per actor call: DMV one exam (its samples are batched inside), GMIC enough images to fill
        # a forward batch of the device (one window per image and condition).
        forward = cfg.forward_batch_size("cuda" if self.gpus else "cpu")
        per_call = 1 if spec.arch == "dmv" else max(1, -(-forward // len(conditions)))
        actor = {"num_gpus": 1} if self.gpus else {"num_cpus": 1}
        return ds.map_batches(
            Scorer, fn_constructor_args=(cfg.to_json(), label, self.threads), batch_size=per_call,
            batch_format="numpy", compute=ray.data.ActorPoolStrategy(size=self.workers), **actor,
        )  # fmt: skip

    def _score(self, store, items, pending, conditions, spec, stop, label) -> None:
        """Run the dataset, writing rows as they arrive (every ``batch_size`` items or 2 s at most)."""
        t_start = time.perf_counter()
        self.log(
            f"ray: scoring {len(pending)} item(s) x {len(conditions)} condition(s) with {self.workers} "
            f"{'GPU' if self.gpus else 'CPU'} actor(s)"
        )
        timings = {"forward_s": 0.0, "n_inputs": 0, "n_images": 0, "store_s": 0.0}
        total = int(store.get("total") or 0)
        buffer: list[dict] = []
        held = [0, time.monotonic()]  # items in the buffer, time of the last write

        def flush() -> None:
            if buffer:
                t0 = time.perf_counter()
                done = store.add_scores(buffer)
                timings["store_s"] += time.perf_counter() - t0
                self.log(f"{done}/{total} rows")
                buffer.clear()
            store.set(timings=_timings_json(timings, time.perf_counter() - t_start))
            held[:] = [0, time.monotonic()]

        batches = self._dataset(items, pending, conditions, spec, label).iter_batches(
            batch_size=None, batch_format="numpy", prefetch_batches=2
        )
        try:
            for batch in batches:
                for k, blob, error, stage in zip(
                    batch["k"], batch["rows"], batch["error"], batch["stage"], strict=True
                ):
                    if error:
                        self.failures.append(UnitFailure(items[int(k)].key, str(stage), str(error)))
                    else:
                        buffer += pickle.loads(blob)
                        timings["n_images"] += len(items[int(k)].images)
                        held[0] += 1
                timings["forward_s"] += float(sum(batch["forward_s"]))
                timings["n_inputs"] += int(sum(batch["n_inputs"]))
                if held[0] >= self.config.batch_size or time.monotonic() - held[1] > 2.0:
                    flush()
                if stop():
                    break
            flush()
        finally:
            close = getattr(batches, "close", None)
            if close is not None:
                close()


def _timings_json(timings: dict, wall_s: float) -> str:
    import json

    return json.dumps({**timings, "total_s": wall_s, "engine": "ray"})


__all__ = ["RayEngine", "Scorer", "UnitFailure", "import_ray", "ray_available", "ray_session"]
