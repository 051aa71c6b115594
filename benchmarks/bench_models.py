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
architecture), else random initialisation -- throughput does not depend on the values. Timings are medians of
``--repeats`` calls after one warm-up call (default 1: the machine is small and shared); ``images/s`` counts
4 images per DMV exam. The agreement of both paths is printed too: max |difference| over GMIC's y_fusion,
saliency map and attention (and whether the patch locations are identical), or over DMV's log-probabilities.
``--reduced`` divides the sizes by 4 for a smoke test.
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


def timed(fn: Callable[[], object], repeats: int, device: torch.device) -> tuple[float, object]:
    out = fn()  # warm-up (also gives the outputs to compare)
    sync(device)
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        sync(device)
        times.append(time.perf_counter() - start)
    return statistics.median(times), out


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

        t_plain, out_plain = timed(run_plain, repeats, device)
        t_fast, out_fast = timed(run_fast, repeats, device)
        diff, patches = agreement(name, out_plain, out_fast)
        row = dict(
            model=name, batch=batch, plain=t_plain, fast=t_fast, diff=diff, patches=patches, autocast=""
        )
        if device.type == "cuda":

            def run_amp(xc=xc):
                with torch.inference_mode(), torch.autocast("cuda", dtype=torch.float16):
                    return fast(xc)

            t_amp, out_amp = timed(run_amp, repeats, device)
            amp_diff, amp_patches = agreement(name, out_plain, out_amp)
            ok = amp_diff <= AUTOCAST_TOLERANCE and "DIFFERENT" not in amp_patches
            verdict = "use" if ok else "reject"
            row["autocast"] = f"fp16 {batch / t_amp:.2f}/s diff {amp_diff:.1e} {amp_patches} -> {verdict}"
            if ok:
                row["fast"] = min(t_fast, t_amp)
        rows.append(row)
        images = batch * (4 if name == "dmv" else 1)
        print(
            f"  batch {batch}: plain {t_plain:.2f} s ({images / t_plain:.2f} img/s), "
            f"fast {row['fast']:.2f} s ({images / row['fast']:.2f} img/s), "
            f"ratio {t_plain / row['fast']:.2f}x; max |diff| {diff:.1e} {patches} {row['autocast']}",
            flush=True,
        )
    return rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", nargs="+", default=["gmic", "dmv"], choices=["gmic", "dmv"])
    parser.add_argument("--batches", nargs="+", type=int, default=[1, 4])
    parser.add_argument("--repeats", type=int, default=1)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--reduced", action="store_true", help="input sizes / 4 (smoke test)")
    args = parser.parse_args(argv)
    device = torch.device(args.device)
    scale = 4 if args.reduced else 1
    rows = []
    for name in args.models:
        rows += bench(name, args.batches, args.repeats, device, scale)
    print("\nmodel  batch  plain img/s  fast img/s  ratio  max|diff|")
    for r in rows:
        images = r["batch"] * (4 if r["model"] == "dmv" else 1)
        print(
            f"{r['model']:<6} {r['batch']:>5}  {images / r['plain']:>11.2f}  {images / r['fast']:>10.2f}  "
            f"{r['plain'] / r['fast']:>5.2f}  {r['diff']:.1e} {r['patches']}"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
