"""Inference throughput of GMIC and DMV at the official input sizes: the fast default against the exact path.

Usage::

    python -m benchmarks.bench_models [--models gmic dmv] [--batches 1 4] [--repeats 2] [--device cpu]
                                      [--weights random|demo|demo-fast] [--reduced]

For each model and batch size, in the same run and on the same weights and inputs, three paths:

* **official**: ``model.eval()`` and ``model(x)`` under ``torch.no_grad()``, contiguous NCHW tensors -- how
  the official scripts run inference (the reference of issue 19: the exact path ran at 0.97x / 0.93x of it);
* **exact**: this project's forward pass (:func:`core.models.forward.gmic_forward` /
  :func:`~core.models.forward.dmv_forward`) on a model made with ``fast=False``: it computes what the
  official code computes;
* **fast**: the same forward pass on a ``fast=True`` model (the default of runs and ``predict``):
  ``channels_last`` weights and inputs under ``torch.inference_mode()``; on CUDA also pinned memory and, for
  GMIC, ``torch.autocast(float16)`` (:mod:`core.models.forward`).

Inputs: GMIC ``(N, 2944, 1920)``; DMV one exam = four views, CC ``2677 x 1942`` and MLO ``2974 x 1748``,
batch = exams (``N`` per view). Values are seeded standard normal (what standardised windows look like).
Weights: ``random`` (default; seeded initialisation of the official layout), ``demo`` or ``demo-fast`` (a demo
checkpoint loaded into the official-size architecture) -- throughput does not depend on the values. After one
warm-up call per path, the paths are called ``--repeats`` times in rotating order; the script prints the
minimum wall time and the median process CPU time (all threads), the figure least disturbed by other work on a
shared machine; ``images/s`` counts 4 images per DMV exam. Agreement: the max |difference| of the
probabilities (GMIC ``y_fusion``; DMV per-breast probabilities) fast vs exact and exact vs official, and for
GMIC whether the patch locations of the fast model are those of the official call. Target (issue 19): fast /
exact >= 1.3 at batch 1 and 4, probabilities within 1e-5 (1e-3 under CUDA autocast). ``--reduced`` divides the
sizes by 4 for a smoke test. Exits 1 when a target is missed.
"""

from __future__ import annotations

import argparse
import copy
import statistics
import time
from collections.abc import Callable

import numpy as np
import torch

from core.models.dmv import OFFICIAL_INPUT_SIZE as DMV_SIZE
from core.models.dmv import VIEWS, SplitBreastModel
from core.models.forward import dmv_forward, gmic_forward
from core.models.gmic import GMIC
from core.models.gmic import OFFICIAL_INPUT_SIZE as GMIC_SIZE

TARGET = 1.3
TOLERANCE = {"cpu": 1e-5, "cuda": 1e-3}


def load_weights(name: str, model: torch.nn.Module, weights: str) -> str:
    if weights == "random":
        return "random initialisation (seed 0)"
    from core.models.demo_weights import demo_path
    from core.models.weights import load_checkpoint, load_into

    path = demo_path(name, weights)
    load_into(model, load_checkpoint(path).state_dict, str(path))
    return f"demo weights {path.name}"


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def measure(fn: Callable[[], object], device: torch.device) -> tuple[float, float]:
    """Wall-clock and process CPU seconds of one call."""
    wall, cpu = time.perf_counter(), time.process_time()
    fn()
    sync(device)
    return time.perf_counter() - wall, time.process_time() - cpu


def interleaved(fns: dict[str, Callable[[], object]], repeats: int, device: torch.device):
    """Warm each path once (keeping its outputs), then time them in rotating order ``repeats`` times.

    Returns ``{path: (min wall s, median CPU s)}`` and ``{path: outputs}``. On a shared machine the minimum
    wall time and the CPU time are the figures least disturbed by other processes.
    """
    outputs = {}
    for name, fn in fns.items():
        outputs[name] = fn()
        sync(device)
    samples: dict[str, list[tuple[float, float]]] = {name: [] for name in fns}
    names = list(fns)
    for r in range(repeats):
        for name in names[r % len(names) :] + names[: r % len(names)]:
            samples[name].append(measure(fns[name], device))
    times = {n: (min(w for w, _ in v), statistics.median(c for _, c in v)) for n, v in samples.items()}
    return times, outputs


def make_input(name: str, batch: int, scale: int):
    rng = np.random.default_rng(batch)
    if name == "gmic":
        h, w = GMIC_SIZE
        return rng.standard_normal((batch, h // scale, w // scale), dtype=np.float32)
    out = {}
    for view in VIEWS:
        h, w = DMV_SIZE[view.split("-")[1]]
        out[view] = rng.standard_normal((batch, h // scale, w // scale), dtype=np.float32)
    return out


def official_call(name: str, model, x, device: torch.device):
    """The official computation: the module on contiguous NCHW tensors under ``no_grad``; probabilities."""
    with torch.no_grad():
        if name == "gmic":
            return model(torch.from_numpy(x)[:, None].to(device))["y_fusion"].double().cpu().numpy()
        out = model({v: torch.from_numpy(x[v])[:, None].to(device) for v in VIEWS})
        cc, mlo = torch.exp(out["CC"][..., 1]).double(), torch.exp(out["MLO"][..., 1]).double()
        return ((cc + mlo) / 2).cpu().numpy()


def same_patches(exact, fast, x, device: torch.device) -> str:
    """Whether GMIC looks at the same patches on both paths (one untimed call each)."""
    with torch.inference_mode():
        xt = torch.from_numpy(x)[:, None].to(device)
        a = exact(xt)["patch_locations"]
        b = fast(xt.contiguous(memory_format=torch.channels_last))["patch_locations"]
    return "same patches" if torch.equal(a.cpu(), b.cpu()) else "DIFFERENT patches"


def build(name: str, scale: int, weights: str, device: torch.device):
    torch.manual_seed(0)
    model = GMIC() if name == "gmic" else SplitBreastModel(1)
    if scale > 1 and name == "gmic":
        model = GMIC(crop_shape=(256 // scale, 256 // scale))
    source = load_weights(name, model, weights)
    exact = model.eval().to(device)
    exact.fast_inference = False
    fast = copy.deepcopy(exact).to(memory_format=torch.channels_last)
    fast.fast_inference = True  # what create_model(..., fast=True) sets
    spec = type("Spec", (), {"arch": name})()
    exact.spec = fast.spec = spec
    return exact, fast, source


def bench(name: str, batches: list[int], repeats: int, device: torch.device, scale: int, weights: str):
    exact, fast, source = build(name, scale, weights, device)
    print(f"{name}: {source}; device {device}, {torch.get_num_threads()} CPU threads", flush=True)
    forward = gmic_forward if name == "gmic" else dmv_forward
    rows = []
    for batch in batches:
        x = make_input(name, batch, scale)
        fns = {
            "official": lambda x=x: official_call(name, exact, x, device),
            "exact": lambda x=x: forward(exact, x),
            "fast": lambda x=x: forward(fast, x),
        }
        times, outs = interleaved(fns, repeats, device)
        row = dict(model=name, batch=batch, times=times)
        row["diff"] = float(np.abs(outs["fast"] - outs["exact"]).max())
        row["exact_vs_official"] = float(np.abs(outs["exact"] - outs["official"]).max())
        row["patches"] = same_patches(exact, fast, x, device) if name == "gmic" else ""
        rows.append(row)
        images = batch * (4 if name == "dmv" else 1)
        t = {k: v[0] for k, v in times.items()}
        print(
            f"  batch {batch}: " + ", ".join(f"{k} {v:.2f} s ({images / v:.3f} img/s)" for k, v in t.items())
            + f"; fast/exact {t['exact'] / t['fast']:.2f}x, exact/official {t['official'] / t['exact']:.2f}x;"
            f" max |diff| fast-exact {row['diff']:.1e}, exact-official {row['exact_vs_official']:.1e} "
            f"{row['patches']}",
            flush=True,
        )  # fmt: skip
    return rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", nargs="+", default=["gmic", "dmv"], choices=["gmic", "dmv"])
    parser.add_argument("--batches", nargs="+", type=int, default=[1, 4])
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--weights", default="random", choices=["random", "demo", "demo-fast"])
    parser.add_argument("--reduced", action="store_true", help="input sizes / 4 (smoke test)")
    args = parser.parse_args(argv)
    device = torch.device(args.device)
    scale = 4 if args.reduced else 1
    import os

    print(f"load average {os.getloadavg()[0]:.1f}")
    rows = []
    for name in args.models:
        rows += bench(name, args.batches, args.repeats, device, scale, args.weights)
    tol = TOLERANCE[device.type]
    print(
        "\nmodel  batch  official img/s  exact img/s  fast img/s  fast/exact (wall, CPU)  exact/official"
        "  max|diff|"
    )
    ok = True
    for r in rows:
        images = r["batch"] * (4 if r["model"] == "dmv" else 1)
        (ow, _), (ew, ec), (fw, fc) = r["times"]["official"], r["times"]["exact"], r["times"]["fast"]
        ratio = ew / fw
        ok &= ratio >= TARGET and r["diff"] <= tol and "DIFFERENT" not in r["patches"]
        print(
            f"{r['model']:<6} {r['batch']:>5}  {images / ow:>14.3f}  {images / ew:>11.3f}"
            f"  {images / fw:>10.3f}  {ratio:>10.2f}x {ec / fc:>6.2f}x  {ow / ew:>14.2f}"
            f"  {r['diff']:.1e} {r['patches']}"
        )
    print(f"target: fast / exact >= {TARGET} (wall), |diff| <= {tol:g}: {'met' if ok else 'MISSED'}")
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
