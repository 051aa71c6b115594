"""Throughput of a robustness run next to the model-only forward rate, measured in the same process.

Usage::

    python -m benchmarks.bench_runs [--cohort tiny|demo|MANIFEST] [--weights random|demo|PATH]
                                    [--max-images 24] [--batch-size 8] [--device cpu] [--no-matched]

A run of the issue-6 grid (unperturbed; low-pass R = 4, 2, 1, 0.5; high-pass 2; noise 1600; shuffle 8x8;
matched baselines unless ``--no-matched``) is executed in-process through :func:`core.runs.execute_run`
(the worker's code path, SQLite store included) in a temporary data folder. Then the same model is timed
alone on ``batch_size`` random inputs of its input size, same number of inputs, in the same process.

Printed: model inputs (one image under one condition), the run's wall time and rate in images/s, the
forward rate measured inside the run (the model-only reference, timed at the same moment, so load swings
on a shared machine hit both alike) and, for comparison, the model timed alone after the run. The target
is judged on the per-image overhead ``(scoring time + store time) / forward time - 1``: what loading,
perturbing, preparing and storing add to each batch (preparation runs in threads ahead of the model, so
only the part it does not hide counts). The whole-run overhead adds the fixed costs: model load, and for
matched baselines the first pass that measures the perturbation norms.

``--weights random`` (default) builds GMIC with random weights at a reduced input size (192 x 128 at
0.4 mm, fitting the tiny cohort); ``demo`` uses ``assets/weights/gmic-demo.pt``. Exits with status 1 when
the per-image overhead is 30 % or more.
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
from pathlib import Path


def _random_weights(folder: Path) -> Path:
    import torch

    from core.models import build_model, save_checkpoint

    cfg = {"input_size": [192, 128], "crop_shape": [48, 48], "K": 2, "percent_t": 0.05, "spacing_mm": 0.4}
    torch.manual_seed(0)
    model = build_model("gmic", config=cfg)
    return save_checkpoint(
        folder / "gmic-random-small.pt", model, arch="gmic", variant="resnet18", config=cfg
    )


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--cohort", default="tiny")
    ap.add_argument("--weights", default="random")
    ap.add_argument("--max-images", type=int, default=24)
    ap.add_argument("--batch-size", type=int, default=8)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--no-matched", action="store_true")
    args = ap.parse_args(argv)

    tmp = Path(tempfile.mkdtemp(prefix="bench-runs-"))
    cohort = args.cohort
    if cohort in ("tiny", "demo"):
        from core.phantom import ensure_cohort

        cohort = str(ensure_cohort(cohort))  # in the usual data folder: generated once
    os.environ["MAMMO_ROBUST_DATA"] = str(tmp)  # the run store goes to a fresh folder
    weights = str(_random_weights(tmp)) if args.weights == "random" else args.weights

    import numpy as np
    import torch

    from core.models import create_model
    from core.models.forward import gmic_forward
    from core.runs import RunConfig, RunStore, create_run, execute_run

    cfg = RunConfig(
        model="gmic", manifest=cohort, weights=weights, device=args.device, batch_size=args.batch_size,
        max_images=args.max_images, matched_baseline=not args.no_matched,
        perturbations={"lowpass": [1, 2, 3, 4], "highpass": [4], "noise": [5], "shuffle": [5]},
    )  # fmt: skip
    run_id = create_run(cfg)
    t0 = time.perf_counter()
    execute_run(run_id)
    wall = time.perf_counter() - t0
    store = RunStore.open(run_id)
    tim = json.loads(store.get("timings"))
    n_inputs = int(tim["n_inputs"])

    model = create_model("gmic", weights, device=args.device)
    h, w = model.spec.input_size["CC"]
    x = np.random.default_rng(0).standard_normal((args.batch_size, h, w)).astype(np.float32)
    gmic_forward(model, x)  # warm-up
    t0 = time.perf_counter()
    done = 0
    while done < n_inputs:
        k = min(args.batch_size, n_inputs - done)
        gmic_forward(model, x[:k])
        done += k
    model_only = time.perf_counter() - t0

    other = wall - tim["total_s"] - tim.get("store_s", 0.0)
    norms_s = float(store.get("norms_s") or 0.0)
    fwd = tim["forward_s"]
    print(
        f"device {args.device}, torch threads {torch.get_num_threads()}, cohort {Path(cohort).parent.name}, "
        f"weights {Path(weights).name}, input {h}x{w}, batch {args.batch_size}"
    )
    print(f"conditions {store.get('n_conditions')}, images {tim['n_images']}, model inputs {n_inputs}")
    print(f"run (wall, everything):         {wall:8.2f} s  {n_inputs / wall:8.2f} images/s")
    print(f"model forward inside the run:   {fwd:8.2f} s  {n_inputs / fwd:8.2f} images/s")
    print(f"model alone after the run:      {model_only:8.2f} s  {n_inputs / model_only:8.2f} images/s")
    print("breakdown of the run:")
    print(f"  forward passes                      {fwd:8.2f} s")
    print(f"  load + perturb + prepare, not hidden {tim['total_s'] - fwd:7.2f} s")
    print(f"  store writes                        {tim.get('store_s', 0.0):8.2f} s")
    print(f"  matched-baseline norms (first pass) {norms_s:8.2f} s")
    print(f"  model load, manifest, other         {other - norms_s:8.2f} s")
    steady = (tim["total_s"] + tim.get("store_s", 0.0)) / fwd - 1
    overall = wall / fwd - 1
    print(f"overhead per image (load, perturb, prepare, store vs forward in the run): {100 * steady:+6.1f} %")
    print(
        f"overhead of the whole run (with model load and the norms pass):           {100 * overall:+6.1f} %"
    )
    overhead = steady
    print(f"target: per-image overhead < 30 % (issue 6): {'met' if overhead < 0.30 else 'MISSED'}")
    return 0 if overhead < 0.30 else 1


if __name__ == "__main__":
    raise SystemExit(main())
