"""Throughput of a robustness run on each engine next to the model-only forward time of the same run.

Usage::

    python -m benchmarks.bench_runs [--cohort demo|tiny|MANIFEST] [--weights demo|random|PATH]
                                    [--max-images 24] [--batch-size 8] [--engines local ray:1 ray:2]
                                    [--no-matched] [--prep-official]

A run of the issue-6 grid (unperturbed; low-pass R = 4, 2, 1, 0.5; high-pass 2; noise 1600; shuffle 8x8;
matched baselines unless ``--no-matched``) over the same cohort subset (the first ``--max-images`` images)
is executed in-process through :func:`core.runs.execute_run` (the worker's code path, SQLite store
included) once per engine, each in a fresh temporary data folder: ``local`` (the worker process), ``ray:N``
(the Ray engine with N model actors on a local Ray that the engine starts for the run). Then the same model
is timed alone on prepared windows of the cohort, as many as the run fed it, in the same process.

Printed per engine: images/s of the scoring pass (the run after its plan and matched norms; for Ray the
actor pool's start included, Ray's own start not), the forward time measured inside the run (the model-only
reference, timed at the same moment so that load swings on a shared machine hit both alike) and the
overhead ``scoring time / forward time per worker - 1``: what loading, perturbing, preparing, moving and
storing add (preparation runs in threads or CPU tasks beside the model, so only the part it does not hide
counts). Then the 1 -> 2 worker scaling of the Ray engine. Target (issue 19): overhead under 10 % for the
local engine; exits 1 when it is missed.

``--prep-official`` also times the preparation alone (:func:`core.runs.work.prepare_item`: load, perturb,
crop and window) of the real NYU sample ``dmv_1_R_CC.png`` (3328 x 2560) for GMIC at the official input
size under an 18-condition grid: CPU seconds per image and condition, the figure behind the cluster
estimate of ``docs/clusters.md``.
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
from pathlib import Path

GRID = {"lowpass": [1, 2, 3, 4], "highpass": [4], "noise": [5], "shuffle": [5]}


def _random_weights(folder: Path) -> Path:
    import torch

    from core.models import build_model, save_checkpoint

    cfg = {"input_size": [192, 128], "crop_shape": [48, 48], "K": 2, "percent_t": 0.05, "spacing_mm": 0.4}
    torch.manual_seed(0)
    model = build_model("gmic", config=cfg)
    return save_checkpoint(
        folder / "gmic-random-small.pt", model, arch="gmic", variant="resnet18", config=cfg
    )


def _run_engine(engine: str, cohort: str, weights: str, args) -> dict:
    """One run in a fresh data folder; its wall time and the store's timings."""
    from core.runs import RunConfig, RunStore, create_run, execute_run

    os.environ["MAMMO_ROBUST_DATA"] = tempfile.mkdtemp(prefix=f"bench-runs-{engine.replace(':', '')}-")
    name, _, workers = engine.partition(":")
    cfg = RunConfig(
        model="gmic", manifest=cohort, weights=weights, device=args.device, batch_size=args.batch_size,
        max_images=args.max_images, matched_baseline=not args.no_matched, perturbations=GRID,
        engine=name, workers=int(workers) if workers else None,
    )  # fmt: skip
    run_id = create_run(cfg)
    t0 = time.perf_counter()
    execute_run(run_id)
    wall = time.perf_counter() - t0
    store = RunStore.open(run_id)
    tim = json.loads(store.get("timings"))
    return dict(
        engine=engine, wall=wall, workers=int(workers or 1), timings=tim,
        norms_s=float(store.get("norms_s") or 0.0), n_conditions=int(store.get("n_conditions")),
    )  # fmt: skip


def _model_alone(weights: str, cohort: str, n_inputs: int, args) -> tuple[float, tuple[int, int]]:
    """Seconds of the model alone on the run's own kind of inputs (the prepared windows of the cohort's
    first image under the grid, repeated), as many as the run fed it, ``batch_size`` at a time."""
    import numpy as np

    from core.manifest import read_manifest
    from core.models import create_model
    from core.models.forward import gmic_forward
    from core.runs import RunConfig, base_conditions, work_items
    from core.runs.work import prepare_item

    model = create_model("gmic", weights, device=args.device)
    items, _ = work_items(read_manifest(cohort), "gmic", max_images=1)
    conditions = base_conditions(RunConfig(model="gmic", manifest=cohort, perturbations=GRID))
    windows = np.stack(list(prepare_item(items[0], conditions, model.spec).windows))
    x = np.concatenate([windows] * (-(-args.batch_size // len(windows))))[: args.batch_size]
    # Warm up for a few seconds: the first forward passes of a process run several times slower (seen: 5
    # against 50 inputs/s on the same windows), so one warm-up call is not enough.
    t_warm = time.perf_counter()
    for _ in range(20):
        gmic_forward(model, x)
        if time.perf_counter() - t_warm > 5.0:
            break
    t0 = time.perf_counter()
    done = 0
    while done < n_inputs:
        k = min(args.batch_size, n_inputs - done)
        gmic_forward(model, x[:k])
        done += k
    return time.perf_counter() - t0, x.shape[1:]


def prep_official() -> None:
    """CPU seconds of :func:`core.runs.work.prepare_item` per image and condition, official GMIC size."""
    from core.models import create_model
    from core.paths import nyu_samples_dir
    from core.runs.config import RunConfig
    from core.runs.grid import base_conditions, matched_conditions, matched_targets, norm_key
    from core.runs.work import ImageRow, WorkItem, image_norms, prepare_item

    path = nyu_samples_dir() / "dmv_1_R_CC.png"
    if not path.is_file():
        print(f"--prep-official: {path} not found; skipped")
        return
    spec = create_model("gmic", None, device="cpu").spec  # the official layout, 2944 x 1920 input
    cfg = RunConfig(model="gmic", manifest="x", perturbations={"lowpass": [1, 2, 3, 4, 5], "highpass": [2, 4],
                    "noise": [5], "shuffle": [5]}, matched_baseline=True)  # fmt: skip
    row = ImageRow("s", "e", "R", "CC", str(path), (0.07, 0.07), 0, 0)
    t0 = time.process_time()
    norms = dict(
        zip((norm_key(t) for t in matched_targets(cfg)), image_norms(row, matched_targets(cfg)), strict=True)
    )
    norms_cpu = time.process_time() - t0
    conditions = base_conditions(cfg) + matched_conditions(cfg, norms)
    t0, w0 = time.process_time(), time.perf_counter()
    prepare_item(WorkItem("s", (row,)), conditions, spec)
    cpu, wall = time.process_time() - t0, time.perf_counter() - w0
    print(
        f"\npreparation at the official GMIC size, {path.name} (3328 x 2560), {len(conditions)} conditions:"
    )
    print(f"  matched-baseline norms {norms_cpu:.2f} CPU-s per image; preparation {cpu:.1f} CPU-s "
          f"({wall:.1f} s wall) = {cpu / len(conditions):.3f} CPU-s per image and condition")  # fmt: skip


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--cohort", default="demo")
    ap.add_argument("--weights", default="demo")
    ap.add_argument("--max-images", type=int, default=24)
    ap.add_argument("--batch-size", type=int, default=8)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--engines", nargs="+", default=["local", "ray:1", "ray:2"])
    ap.add_argument("--no-matched", action="store_true")
    ap.add_argument("--prep-official", action="store_true")
    args = ap.parse_args(argv)

    import torch

    cohort = args.cohort
    if cohort in ("tiny", "demo"):
        from core.phantom import ensure_cohort

        cohort = str(ensure_cohort(cohort))  # in the usual data folder: generated once
    weights = str(_random_weights(Path(tempfile.mkdtemp()))) if args.weights == "random" else args.weights
    print(f"load average {os.getloadavg()[0]:.1f}; device {args.device}, torch threads "
          f"{torch.get_num_threads()}, cohort {Path(cohort).parent.name}, weights {Path(weights).name}, "
          f"batch {args.batch_size}")  # fmt: skip
    results = [_run_engine(engine, cohort, weights, args) for engine in args.engines]
    n_inputs = int(results[0]["timings"]["n_inputs"])
    alone, (h, w) = _model_alone(weights, cohort, n_inputs, args)
    r0 = results[0]
    print(f"input {h}x{w}; conditions {r0['n_conditions']}, images {r0['timings']['n_images']}, "
          f"model inputs {n_inputs}; model alone after the runs {n_inputs / alone:.2f} inputs/s")  # fmt: skip
    print("\nengine   run wall s  scoring s  images/s  inputs/s  forward s  overhead  (matched norms s)")
    rates, overheads = {}, {}
    for r in results:
        tim = r["timings"]
        scoring = tim["total_s"] + (tim.get("store_s", 0.0) if r["engine"] == "local" else 0.0)
        per_worker = tim["forward_s"] / r["workers"]
        overheads[r["engine"]] = scoring / per_worker - 1
        rates[r["engine"]] = tim["n_images"] / scoring
        over = 100 * overheads[r["engine"]]
        print(f"{r['engine']:<8} {r['wall']:10.1f} {scoring:10.1f} {rates[r['engine']]:9.2f} "
              f"{tim['n_inputs'] / scoring:9.2f} {tim['forward_s']:10.1f} {over:+8.1f} %"
              f"  ({r['norms_s']:.1f})")  # fmt: skip
    if "ray:1" in rates and "ray:2" in rates:
        print(f"Ray scaling 1 -> 2 workers: {rates['ray:2'] / rates['ray:1']:.2f}x")
    if args.prep_official:
        prep_official()
    ok = overheads.get("local", 0.0) < 0.10
    if "local" in overheads:
        print(f"target: local-engine overhead < 10 %: {'met' if ok else 'MISSED'}")
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
