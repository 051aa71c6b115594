"""Training cost of GMIC and DMV at the demo geometry (0.3 mm) against the official one (0.1 mm), issue 17.

Usage::

    python -m benchmarks.bench_training [--parts gmic dense infer dmv prep] [--batch 1] [--repeats 2]
                                        [--threads 1] [--device cpu] [--reduced]

One optimiser step (forward, backward, Adam) is timed at each geometry, in the same run, on seeded standard
normal windows (what standardised windows look like; the cost does not depend on the values):

* **GMIC** ``demo``: 672 x 448 windows, K = 4 patches of 48 x 48 (the shipped demo GMIC, 0.3 mm);
  ``official``: 2944 x 1920, K = 6 of 256 x 256 (the NYU model, 0.1 mm). Per geometry: the whole network
  (``full``), the same with ``channels_last`` weights and inputs (``full-cl``), and the frozen-trunk mode of
  ``--freeze-trunk --unfreeze-stages 1`` (``frozen``: the last global stage, saliency, local network and
  fusion on cached stage-3 outputs and windows, :func:`core.training.frozen.gmic_top`); besides, the cost of
  caching one window's frozen-prefix output (``cache``, under ``inference_mode``; ``cache-cl`` with
  ``channels_last``), which the frozen mode pays once per cached window.
* **Dense pretraining** (``--dense-target``): a step on ``--dense-batch`` cuts of 256 x 256 px
  (:func:`core.training.dense.dense_step`): a cut costs the same at either spacing,
  it only covers 9x less breast at 0.1 mm; and one whole window through the same forward in training mode
  without gradients, per window (the batch-norm recalibration and the validation, per epoch, scale with it).
* **Inference** at the official GMIC size: ``model(x)`` under ``no_grad`` against ``channels_last`` under
  ``inference_mode`` (the default ``fast`` path of :mod:`core.models.forward`).
* **DMV** (view-wise, image only) one exam of four views: ``demo`` 672 x 448 all views; ``official`` CC
  2677 x 1942 and MLO 2974 x 1748; ``full`` and ``frozen`` (last column stage and heads on cached prefix
  outputs, :func:`core.training.frozen.dmv_top`), plus ``cache`` per exam.
* **Window preparation** (``prep``, when the demo cohort is on disk): one image of ``demo`` seed 0 cropped at
  0.3 and 0.1 mm (:func:`core.models.inputs.crop_for_model`, timed: what the crop cache pays once per
  image), the crop's size (what the crop cache holds
  per image) and one training window cut from it with DMV's window noise
  (:func:`core.models.inputs.window_from_crop`), per window.

After one warm-up call, each measured call runs ``--repeats`` times; the script prints the minimum wall
time, the median process CPU time (all threads) and the load average around each measurement, and the
ratios official / demo, frozen / full, channels_last / plain measured in the same run. On a shared machine
the CPU time is the steadier figure. ``--reduced`` divides the official sizes by 4 (a smoke run). There are
no targets: the figures feed the plan of ``docs/demo-weights-0.1mm.md``.
"""

from __future__ import annotations

import argparse
import os
import resource
import statistics
import time
from collections.abc import Callable

import numpy as np
import torch

from core.models.registry import build_model
from core.training.dense import _dense_forward, _stage3_head, dense_step
from core.training.frozen import column_prefix, dmv_top, gmic_top
from core.training.objectives import bce, dmv_nll, saliency_target_loss

GMIC_GEOMETRY = {
    "demo": {"input": (672, 448), "K": 4, "crop": (48, 48), "spacing_mm": 0.3},
    "official": {"input": (2944, 1920), "K": 6, "crop": (256, 256), "spacing_mm": 0.1},
}
DMV_GEOMETRY = {
    "demo": {"CC": (672, 448), "MLO": (672, 448), "spacing_mm": 0.3},
    "official": {"CC": (2677, 1942), "MLO": (2974, 1748), "spacing_mm": 0.1},
}
VIEWS = ("L-CC", "R-CC", "L-MLO", "R-MLO")
ROWS: list[dict] = []


def timed(label: str, fn: Callable[[], object], repeats: int, per: int = 1) -> dict:
    """Warm ``fn`` up once, then time it ``repeats`` times; a row (seconds per ``per`` units) kept in ROWS."""
    fn()
    walls, cpus, loads = [], [], [os.getloadavg()[0]]
    for _ in range(repeats):
        wall, cpu = time.perf_counter(), time.process_time()
        fn()
        if torch.cuda.is_available():
            torch.cuda.synchronize()
        walls.append(time.perf_counter() - wall)
        cpus.append(time.process_time() - cpu)
    loads.append(os.getloadavg()[0])
    row = {
        "label": label,
        "wall": min(walls) / per,
        "cpu": statistics.median(cpus) / per,
        "load": (min(loads), max(loads)),
    }
    ROWS.append(row)
    print(
        f"  {label:<44} wall {row['wall']:8.3f} s  cpu {row['cpu']:8.3f} s  "
        f"(load {row['load'][0]:.1f}-{row['load'][1]:.1f})",
        flush=True,
    )
    return row


def normal(shape: tuple[int, ...], device: torch.device, channels_last: bool = False) -> torch.Tensor:
    x = torch.from_numpy(np.random.default_rng(0).standard_normal(shape, dtype=np.float32)).to(device)
    return x.contiguous(memory_format=torch.channels_last) if channels_last and x.ndim == 4 else x


def gmic_model(geometry: dict, device: torch.device, channels_last: bool = False):
    config = {
        "input_size": {"CC": list(geometry["input"]), "MLO": list(geometry["input"])},
        "spacing_mm": geometry["spacing_mm"],
        "crop_shape": list(geometry["crop"]),
        "K": geometry["K"],
        "percent_t": 0.05,
    }
    model = build_model("gmic", None, config).to(device)
    return model.to(memory_format=torch.channels_last) if channels_last else model


def gmic_labels(batch: int, device: torch.device) -> torch.Tensor:
    return torch.tensor([[0.0, 1.0], [1.0, 0.0]] * batch, device=device)[:batch]


def gmic_step(model, opt, x: torch.Tensor, y: torch.Tensor, prefix: torch.Tensor | None = None) -> None:
    """One training step: the whole network, or (``prefix``) the frozen-trunk top on cached outputs."""
    pos_w = torch.tensor([2.0, 1.0], device=x.device)
    out = model(x) if prefix is None else gmic_top(model, x[:, 0], prefix, 1)
    loss = sum(bce(out[k], y, pos_w) for k in ("y_fusion", "y_global", "y_local"))
    masks = (torch.rand_like(out["saliency_map"]) > 0.95).float()
    loss = loss + saliency_target_loss(out["saliency_map"], masks)
    opt.zero_grad()
    loss.backward()
    opt.step()


def bench_gmic(name: str, geometry: dict, args, device: torch.device) -> None:
    b, (h, w) = args.batch, geometry["input"]
    print(f"GMIC {name}: {h} x {w}, K = {geometry['K']} of {geometry['crop']}, batch {b}", flush=True)
    y = gmic_labels(b, device)
    for cl in (False, True):
        model = gmic_model(geometry, device, cl).train()
        opt = torch.optim.Adam(model.parameters(), lr=1e-4)
        x = normal((b, 1, h, w), device, cl)
        tag = "-cl" if cl else ""
        timed(f"gmic {name} full{tag} step", lambda: gmic_step(model, opt, x, y), args.repeats)  # noqa: B023
        with torch.inference_mode():
            x1 = normal((1, 1, h, w), device, cl)
            timed(
                f"gmic {name} cache{tag} per window",
                lambda m=model, x1=x1: column_prefix(m.ds_net, x1, 1),
                args.repeats,
            )
    with torch.no_grad():  # not under inference_mode: the frozen step's autograd saves these tensors
        prefix = column_prefix(model.ds_net, x, 1)
    model = gmic_model(geometry, device).train()
    top = [*model.ds_net.layer_list[-1:], model.ds_net.final_bn, model.left_postprocess_net, model.dn_resnet]
    params = [p for m in top for p in m.parameters()]
    opt = torch.optim.Adam(
        params + [p for n, p in model.named_parameters() if n.startswith(("mil", "cl", "fu"))]
    )
    timed(f"gmic {name} frozen step", lambda: gmic_step(model, opt, x, y, prefix), args.repeats)
    print(
        f"  cached per window: window float16 {h * w * 2 / 1e6:.2f} MB + stage-3 output float32 "
        f"{prefix[0].numel() * 4 / 1e6:.2f} MB {tuple(prefix.shape[1:])}",
        flush=True,
    )


def bench_dense(args, device: torch.device) -> None:
    n = args.dense_batch
    print(f"dense pretraining: {n} cuts of 256 x 256 per step; whole windows per geometry", flush=True)
    model = gmic_model(GMIC_GEOMETRY["demo"], device).train()
    head = _stage3_head(model.ds_net).to(device)
    params = [*model.ds_net.parameters(), *model.left_postprocess_net.parameters(), *head.parameters()]
    opt = torch.optim.Adam(params, lr=3e-4)
    x = normal((n, 1, 256, 256), device)
    masks = (
        (torch.rand((n, 2, 256, 256), generator=torch.Generator().manual_seed(0)) > 0.97).float().to(device)
    )

    timed("dense step, per 256 px cut (both spacings)", lambda: dense_step(model, head, opt, x, masks),
          args.repeats, per=n)  # fmt: skip
    for name, geometry in GMIC_GEOMETRY.items():
        xw = normal((1, 1, *geometry["input"]), device)
        with torch.no_grad():
            timed(
                f"dense whole-window pass {name} (recalibration)",
                lambda xw=xw: _dense_forward(model, head, xw),
                args.repeats,
            )


def bench_infer(args, device: torch.device) -> None:
    geometry = GMIC_GEOMETRY["official"]
    print(f"GMIC inference at {geometry['input']}, batch 1", flush=True)
    plain = gmic_model(geometry, device).eval()
    x = normal((1, 1, *geometry["input"]), device)
    with torch.no_grad():
        timed("gmic official inference, no_grad", lambda: plain(x), args.repeats)
    fast = gmic_model(geometry, device, True).eval()
    xc = x.contiguous(memory_format=torch.channels_last)
    with torch.inference_mode():
        timed("gmic official inference, channels_last + inference_mode", lambda: fast(xc), args.repeats)


def dmv_inputs(geometry: dict, device: torch.device) -> dict[str, torch.Tensor]:
    return {v: normal((1, 1, *geometry[v.split("-")[1]]), device) for v in VIEWS}


def bench_dmv(name: str, geometry: dict, args, device: torch.device) -> None:
    print(f"DMV {name}: CC {geometry['CC']}, MLO {geometry['MLO']}, one exam", flush=True)
    config = {"input_size": {"CC": list(geometry["CC"]), "MLO": list(geometry["MLO"])}}
    config["spacing_mm"] = geometry["spacing_mm"]
    model = build_model("dmv", "image-only", config).to(device).train()
    opt = torch.optim.Adam(model.parameters(), lr=1e-4)
    x = dmv_inputs(geometry, device)
    y = torch.tensor([[0.0, 0.0, 1.0, 0.0]], device=device)
    pos_w = torch.ones(4, device=device)

    def full() -> None:
        loss = dmv_nll(model(x), y, pos_w)
        opt.zero_grad()
        loss.backward()
        opt.step()

    timed(f"dmv {name} full step", full, args.repeats)
    columns = {v: model.four_view_resnet.column(v) for v in VIEWS}
    with torch.inference_mode():
        timed(
            f"dmv {name} cache per exam",
            lambda: [column_prefix(columns[v], x[v], 1) for v in VIEWS],
            args.repeats,
        )
    with torch.no_grad():  # not under inference_mode: the frozen step's autograd saves these tensors
        feats = [column_prefix(columns[v], x[v], 1) for v in VIEWS]

    def frozen() -> None:
        loss = dmv_nll(dmv_top(model, feats, 1), y, pos_w)
        opt.zero_grad()
        loss.backward()
        opt.step()

    timed(f"dmv {name} frozen step", frozen, args.repeats)
    size = sum(f.numel() * 4 for f in feats) / 1e6
    print(f"  cached per exam window: stage-4 outputs float32 {size:.2f} MB", flush=True)


def bench_prep(args) -> None:
    from core.imaging import load_mammogram
    from core.models.inputs import crop_for_model, window_from_crop
    from core.phantom.cohort import cohort_dir

    manifest = cohort_dir("demo", 0) / "manifest.csv"
    if not manifest.is_file():
        print(
            "prep: the demo cohort is not on disk (mammo-robust phantom --preset demo); skipped", flush=True
        )
        return
    import pandas as pd

    row = pd.read_csv(manifest).iloc[0]
    mammo = load_mammogram(manifest.parent / row["path"], spacing_mm=(0.1, 0.1))
    view = f"{row['laterality']}-{row['view']}"
    print(
        f"window preparation: {row['image_id']} ({mammo.pixels.shape[0]} x {mammo.pixels.shape[1]} at 0.1 mm)"
    )
    for name, geometry in GMIC_GEOMETRY.items():
        spec = gmic_model(geometry, torch.device("cpu")).spec
        timed(
            f"crop {name} per image (resample, crop, flip)",
            lambda s=spec: crop_for_model(mammo, s, view=view),
            1,
        )
        crop, geo = crop_for_model(mammo, spec, view=view)
        print(
            f"  crop {name}: {crop.shape[0]} x {crop.shape[1]} float32 = {crop.nbytes / 1e6:.2f} MB",
            flush=True,
        )
        rng = np.random.RandomState(0)
        timed(
            f"window {name} with window noise, per window",
            lambda: window_from_crop(crop, geo, spec, rng=rng, augment=True),  # noqa: B023
            args.repeats,
        )


def ratio(num: str, den: str) -> None:
    rows = {r["label"]: r for r in ROWS}
    if num in rows and den in rows:
        a, b = rows[num], rows[den]
        print(f"  {num} / {den}: wall {a['wall'] / b['wall']:.2f}x, cpu {a['cpu'] / b['cpu']:.2f}x")


def report() -> None:
    print("ratios (same run):")
    for arch in ("gmic", "dmv"):
        for mode in ("full step", "frozen step", "cache per window", "cache per exam"):
            ratio(f"{arch} official {mode}", f"{arch} demo {mode}")
    for geometry in ("demo", "official"):
        ratio(f"gmic {geometry} full step", f"gmic {geometry} full-cl step")
        ratio(f"gmic {geometry} full step", f"gmic {geometry} frozen step")
        ratio(f"gmic {geometry} cache per window", f"gmic {geometry} cache-cl per window")
        ratio(f"dmv {geometry} full step", f"dmv {geometry} frozen step")
        ratio(
            f"dense whole-window pass {geometry} (recalibration)",
            "dense step, per 256 px cut (both spacings)",
        )
    ratio("gmic official inference, no_grad", "gmic official inference, channels_last + inference_mode")
    ratio("window official with window noise, per window", "window demo with window noise, per window")
    ratio("crop official per image (resample, crop, flip)", "crop demo per image (resample, crop, flip)")
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1e6
    print(f"peak resident memory of this process: {peak:.1f} GB; cores {os.cpu_count()}")


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--parts", nargs="+", default=["gmic", "dense", "infer", "dmv", "prep"])
    p.add_argument("--batch", type=int, default=1, help="GMIC windows per step (default 1)")
    p.add_argument("--dense-batch", type=int, default=4, help="cuts per dense step (default 4)")
    p.add_argument("--repeats", type=int, default=2)
    p.add_argument("--threads", type=int, default=1, help="torch CPU threads (default 1)")
    p.add_argument("--device", default="cpu")
    p.add_argument("--reduced", action="store_true", help="official sizes / 4 (a smoke run)")
    args = p.parse_args(argv)
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    device = torch.device(args.device)
    if args.reduced:
        GMIC_GEOMETRY["official"].update(input=(736, 480), crop=(64, 64))
        DMV_GEOMETRY["official"].update(CC=(669, 485), MLO=(743, 437))
    print(f"torch {torch.__version__}, {args.threads} thread(s), device {device}, load {os.getloadavg()}")
    for name in ("demo", "official"):
        if "gmic" in args.parts:
            bench_gmic(name, GMIC_GEOMETRY[name], args, device)
    if "dense" in args.parts:
        bench_dense(args, device)
    if "infer" in args.parts:
        bench_infer(args, device)
    for name in ("demo", "official"):
        if "dmv" in args.parts:
            bench_dmv(name, DMV_GEOMETRY[name], args, device)
    if "prep" in args.parts:
        bench_prep(args)
    report()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
