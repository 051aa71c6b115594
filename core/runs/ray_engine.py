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
resumed run schedules only items that miss rows. An item that cannot be read, prepared or scored does not
stop the dataset, as in the local engine (:mod:`core.runs.failures`): its keys become error rows with the
stage that failed (``read``, ``prepare``, ``score``), the run ends ``done`` with its error count, a resume
does not retry them unless asked (``retry_errors``), and an image that cannot be read adds nothing to the
matched-baseline norms. A forward pass that fails scores its batch's items again one at a time, so only the
item that breaks the model gets ``score`` error rows.

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
from functools import partial
from pathlib import Path
from typing import Any

from core.runs.config import RunConfig, RunError
from core.runs.failures import ItemFailure, describe, error_records, known_bad
from core.runs.grid import Condition, norm_key
from core.runs.work import ImageRow, WorkItem

INSTALL_HINT = "pip install 'mammo-robustness-explorer[ray]' (bash scripts/install.sh installs it)"


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
    """CPU task: the change norms of one image (``norms``); ``ok`` False when it cannot be read (it adds
    nothing to the sums, and becomes error rows when it is scored)."""
    from core.runs.work import image_norms

    k = int(row["k"])
    norms = image_norms(images[k], targets)
    return {"k": k, "norms": [0.0] * len(targets) if norms is None else norms, "ok": norms is not None}


def _prepare_row(row: dict, *, conditions: Sequence[Condition], spec, dmv_samples: int) -> dict:
    """CPU task: load, perturb and prepare the row's work item; its pickled model inputs, or the failure
    (``error``, ``stage``, ``image_id``)."""
    from core.runs.work import prepare_item

    item = pickle.loads(row["item"])
    out = {"k": int(row["k"]), "item": row["item"], "unit": b"", "error": "", "stage": "", "image_id": ""}
    try:
        unit = prepare_item(item, conditions, spec, dmv_samples=dmv_samples)
    except ItemFailure as failure:
        return {**out, "error": failure.message, "stage": failure.stage, "image_id": failure.image_id}
    except Exception as exc:  # one item's failure, whatever it is, must not stop the dataset
        return {**out, "error": describe(exc), "stage": "prepare"}
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
        """``{k, item, unit, error, stage, image_id}`` rows in, ``{k, result, error, stage, image_id,
        forward_s, n_inputs}`` out: per item its pickled ``(score rows, error records)`` of
        :func:`core.runs.work.score_rows` (a non-finite score is an error record), or its failure and the
        stage (``read``, ``prepare`` from the task, ``score`` here); the forward seconds and inputs of the
        call on the first row."""
        out: dict[str, list] = {key: [] for key in OUT_COLUMNS}
        items, units = {}, []
        for k, item, blob, error, stage, image_id in zip(
            batch["k"], batch["item"], batch["unit"], batch["error"], batch["stage"], batch["image_id"],
            strict=True,
        ):  # fmt: skip
            if error:
                _append(out, int(k), error=str(error), stage=str(stage), image_id=str(image_id))
            else:
                items[int(k)] = pickle.loads(item)
                units.append((int(k), pickle.loads(blob)))
        stats = [0.0, 0]
        self._score(units, items, out, stats)
        if out["k"]:
            out["forward_s"][0], out["n_inputs"][0] = stats[0], stats[1]
        return out

    def _score(self, units: list, items: dict, out: dict, stats: list) -> None:
        """Score ``units`` ``[(k, inputs)]`` in forward batches into ``out``; when a forward pass fails, the
        items it left unscored are scored again one at a time, and an item that fails alone gets its error
        (stage ``score``), as :class:`core.runs.stream.Stream` does in the local engine."""
        from core.models.forward import score_units
        from core.runs.work import score_rows

        def on_forward(seconds: float, n_inputs: int) -> None:
            stats[0] += seconds
            stats[1] += n_inputs

        done: set[int] = set()
        try:
            scored = score_units(self.model, units, batch_size=self.batch_size, on_forward=on_forward)
            for k, scores in scored:
                result = score_rows(self.model.spec.arch, self.weights_label, items[k], scores)
                _append(out, k, result=pickle.dumps(result, protocol=pickle.HIGHEST_PROTOCOL))
                done.add(k)
        except Exception as exc:  # a forward pass failed; its batch may span several items
            left = [(k, unit) for k, unit in units if k not in done]
            if len(left) == 1:
                item = items[left[0][0]]
                image_id = item.images[0].image_id if len(item.images) == 1 else ""
                _append(out, left[0][0], error=describe(exc), stage="score", image_id=image_id)
            else:
                for one in left:
                    self._score([one], items, out, stats)


OUT_COLUMNS = ("k", "result", "error", "stage", "image_id", "forward_s", "n_inputs")


def _append(out: dict, k: int, *, result: bytes = b"", error: str = "", stage: str = "", image_id: str = ""):
    """One item's entry in a :class:`Scorer` output batch (the timings go on the batch's first row)."""
    for key, value in zip(OUT_COLUMNS, (k, result, error, stage, image_id, 0.0, 0), strict=True):
        out[key].append(value)


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
        taken in image order on the driver; an image that cannot be read adds nothing (it becomes error
        rows when it is scored)."""
        rows = [row for item in items for row in item.images]
        ds = self.ray.data.from_items(
            [{"k": k} for k in range(len(rows))], override_num_blocks=self._blocks(len(rows))
        )
        fn = partial(_norms_row, images=rows, targets=list(targets))
        results = {int(r["k"]): r for r in ds.map(fn, num_cpus=1).iter_rows()}
        out: dict[str, list] = {}
        for k in range(len(rows)):
            if not results[k]["ok"]:
                continue
            for cond, norm in zip(targets, results[k]["norms"], strict=True):
                acc = out.setdefault(norm_key(cond), [0.0, 0])
                acc[0] += float(norm)
                acc[1] += 1
        self.log(f"ray: matched-baseline norms of {len(rows)} image(s)")
        return {k: (v[0], v[1]) for k, v in out.items()}

    def score(
        self, store: Any, items: Sequence[WorkItem], conditions: Sequence[Condition], stop, label: str
    ) -> None:
        """Score every item that misses keys in ``store`` (neither scored nor an error row; an item whose
        keys are all error rows is not tried again, as in the local engine); rows and error rows are
        written as they arrive.

        ``label`` is the ``weights`` column. Returns early (nothing half-written) when ``stop()`` turns True.
        """
        from core.models import create_model

        counts = store.unit_counts()
        n_cond = len(conditions)
        pending = [
            k for k, item in enumerate(items)
            if not known_bad(item, counts, n_cond)
            and not all(sum(counts.get(u, (0, 0))) >= n_cond for u in item.units)
        ]  # fmt: skip
        store.mark_progress()  # the rate counts from here
        if pending:
            spec = create_model(self.config.model, self.config.weights, device="cpu", fast=False).spec
            self._score(store, items, pending, list(conditions), spec, stop, label)

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
        rows: list[dict] = []
        errors: list[dict] = []
        held = [0, time.monotonic()]  # items in the buffer, time of the last write

        def flush() -> None:
            if rows or errors:
                t0 = time.perf_counter()
                done = store.add_results(rows, errors)
                timings["store_s"] += time.perf_counter() - t0
                self.log(f"{done}/{total} rows")
                rows.clear()
                errors.clear()
            store.set(timings=_timings_json(timings, time.perf_counter() - t_start))
            held[:] = [0, time.monotonic()]

        def settle(k: int, blob: bytes, error: str, stage: str, image_id: str) -> None:
            item = items[k]
            if error:
                failed = error_records(item, conditions, arch=spec.arch, weights_label=label, stage=stage,
                                       message=error, image_id=image_id)  # fmt: skip
            else:
                scored, failed = pickle.loads(blob)
                rows.extend(scored)
            if failed:
                errors.extend(failed)
                self.log(f"error: {failed[0]['message']}")
            if not error or stage == "score":  # prepared and given to the model, as the local timings count
                timings["n_images"] += len(item.images)
            held[0] += 1

        batches = self._dataset(items, pending, conditions, spec, label).iter_batches(
            batch_size=None, batch_format="numpy", prefetch_batches=2
        )
        try:
            for batch in batches:
                for k, blob, error, stage, image_id in zip(
                    batch["k"], batch["result"], batch["error"], batch["stage"], batch["image_id"],
                    strict=True,
                ):  # fmt: skip
                    settle(int(k), blob, str(error), str(stage), str(image_id))
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


__all__ = ["RayEngine", "Scorer", "import_ray", "ray_available", "ray_session"]
