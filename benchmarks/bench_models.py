"""Inference throughput of GMIC and DMV at the official input sizes, optimised path vs a plain forward.

Usage::

    python -m benchmarks.bench_models [--models gmic dmv] [--batches 1 4] [--repeats 2] [--device cpu]
                                      [--reduced]

For each model and batch size, in the same run and on the same weights and inputs:

* **plain**: ``model.eval()`` and ``model(x)`` under ``torch.no_grad()``, contiguous NCHW tensors -- how
  the official scripts run inference;
* **fast**: a copy of the model in ``channels_last`` memory format called under ``torch.inference_mode()``
  with ``channels_last`` inputs; on CUDA additionally ``torch.autocast(float16)``, kept only when its outputs
  stay within 1e-3 of the plain float32 outputs (and GMIC's patch locations are identical).

Inputs: GMIC ``(N, 1, 2944, 1920)``; DMV one exam = four views, CC ``2677 x 1942`` and MLO ``2974 x 1748``,
batch = exams (``N`` per view). Values are seeded standard normal (what standardised windows look like).
Weights: the demo checkpoint ``assets/weights/<name>-demo.pt`` when present (loaded into the official-size
architecture), else random initialisation -- throughput does not depend on the values. After one warm-up
call per path, the paths are called ``--repeats`` times in alternating order; the script prints the minimum
wall time and the median process CPU time (all threads), the figure least disturbed by other work on a
shared machine; ``images/s`` counts 4 images per DMV exam. The agreement of both paths is printed too: max
|difference| over GMIC's y_fusion, saliency map and attention (and whether the patch locations are
identical), or over DMV's log-probabilities. ``--reduced`` divides the sizes by 4 for a smoke test.
"""

from __future__ import annotations

import argparse
import copy
import statistics
import time
from collections.abc import Callable

import torch

from core.models.dmv import OFFICIAL_INPUT_SIZE as DMV_SIZE
from core.models.dmv import VIEWS, SplitBreastModel
from core.models.gmic import GMIC
from core.models.gmic import OFFICIAL_INPUT_SIZE as GMIC_SIZE

AUTOCAST_TOLERANCE = 1e-3


def load_weights(name: str, model: torch.nn.Module) -> str:
    from core.models.registry import _demo_path
    from core.models.weights import load_checkpoint, load_into

    path = _demo_path(name)
    if not path.is_file():
        return "random initialisation"
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
    """Warm each path once (keeping its outputs), then time them in alternating order ``repeats`` times.

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
        for name in names if r % 2 == 0 else names[::-1]:
            samples[name].append(measure(fns[name], device))
    times = {n: (min(w for w, _ in v), statistics.median(c for _, c in v)) for n, v in samples.items()}
    return times, outputs


def to_channels_last(x):
    if isinstance(x, dict):
        return {k: v.contiguous(memory_format=torch.channels_last) for k, v in x.items()}
    return x.contiguous(memory_format=torch.channels_last)


def compared(name: str, out) -> list[torch.Tensor]:
    """GMIC: y_fusion, saliency map, attention; DMV: log-probabilities of both heads."""
    keys = ("y_fusion", "saliency_map", "patch_attns") if name == "gmic" else ("CC", "MLO")
    return [out[k].float().cpu() for k in keys]


def agreement(name: str, ref, other) -> tuple[float, str]:
    pairs = zip(compared(name, ref), compared(name, other), strict=True)
    diff = max((a - b).abs().max().item() for a, b in pairs)
    if name != "gmic":
        return diff, ""
    same = torch.equal(ref["patch_locations"].cpu(), other["patch_locations"].cpu())
    return diff, "same patches" if same else "DIFFERENT patches"


def make_input(name: str, batch: int, scale: int, device: torch.device):
    gen = torch.Generator().manual_seed(batch)
    if name == "gmic":
        h, w = GMIC_SIZE
        return torch.randn(batch, 1, h // scale, w // scale, generator=gen).to(device)
    out = {}
    for view in VIEWS:
        h, w = DMV_SIZE[view.split("-")[1]]
        out[view] = torch.randn(batch, 1, h // scale, w // scale, generator=gen).to(device)
    return out


def bench(name: str, batches: list[int], repeats: int, device: torch.device, scale: int) -> list[dict]:
    model = GMIC() if name == "gmic" else SplitBreastModel(1)
    if scale > 1 and name == "gmic":
        model = GMIC(crop_shape=(256 // scale, 256 // scale))
    source = load_weights(name, model)
    plain = model.eval().to(device)
    fast = copy.deepcopy(plain).to(memory_format=torch.channels_last)
    print(f"{name}: {source}; device {device}, {torch.get_num_threads()} CPU threads")
    rows = []
    for batch in batches:
        x = make_input(name, batch, scale, device)
        xc = to_channels_last(x)

        def run_plain(x=x):
            with torch.no_grad():
                return plain(x)

        def run_fast(xc=xc):
            with torch.inference_mode():
                return fast(xc)

        fns = {"plain": run_plain, "fast": run_fast}
        if device.type == "cuda":

            def run_amp(xc=xc):
                with torch.inference_mode(), torch.autocast("cuda", dtype=torch.float16):
                    return fast(xc)

            fns["autocast"] = run_amp
        times, outs = interleaved(fns, repeats, device)
        diff, patches = agreement(name, outs["plain"], outs["fast"])
        row = dict(
            model=name, batch=batch, plain=times["plain"], fast=times["fast"], diff=diff, patches=patches
        )
        row["autocast"] = ""
        if "autocast" in times:
            amp_diff, amp_patches = agreement(name, outs["plain"], outs["autocast"])
            ok = amp_diff <= AUTOCAST_TOLERANCE and "DIFFERENT" not in amp_patches
            verdict = "use" if ok else "reject"
            amp_rate = batch / times["autocast"][0]
            row["autocast"] = f"fp16 {amp_rate:.2f}/s diff {amp_diff:.1e} {amp_patches} -> {verdict}"
            if ok and times["autocast"][0] < times["fast"][0]:
                row["fast"] = times["autocast"]
        rows.append(row)
        images = batch * (4 if name == "dmv" else 1)
        (pw, pc), (fw, fc) = row["plain"], row["fast"]
        print(
            f"  batch {batch}: plain {pw:.2f} s wall / {pc:.2f} s CPU ({images / pw:.3f} img/s), "
            f"fast {fw:.2f} s wall / {fc:.2f} s CPU ({images / fw:.3f} img/s); ratio wall {pw / fw:.2f}x, "
            f"CPU {pc / fc:.2f}x; max |diff| {diff:.1e} {patches} {row['autocast']}",
            flush=True,
        )
    return rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", nargs="+", default=["gmic", "dmv"], choices=["gmic", "dmv"])
    parser.add_argument("--batches", nargs="+", type=int, default=[1, 4])
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--reduced", action="store_true", help="input sizes / 4 (smoke test)")
    args = parser.parse_args(argv)
    device = torch.device(args.device)
    scale = 4 if args.reduced else 1
    rows = []
    for name in args.models:
        rows += bench(name, args.batches, args.repeats, device, scale)
    header = "model  batch  plain img/s  fast img/s  wall ratio  plain img/CPU-s  fast img/CPU-s  CPU ratio"
    print("\n" + header + "  max|diff|")
    for r in rows:
        images = r["batch"] * (4 if r["model"] == "dmv" else 1)
        (pw, pc), (fw, fc) = r["plain"], r["fast"]
        print(
            f"{r['model']:<6} {r['batch']:>5}  {images / pw:>11.3f}  {images / fw:>10.3f}  {pw / fw:>10.2f}  "
            f"{images / pc:>15.3f}  {images / fc:>14.3f}  {pc / fc:>9.2f}  {r['diff']:.1e} {r['patches']}"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
