"""Training GMIC and DMV (view-wise, image only) on a cohort manifest: the demo weights of ``assets/weights``.

Recipe (``docs/demo-weights.md``):

1. Every image is read once, resampled to the model's ``spacing_mm`` and cropped with the NYU pipeline at that
   scale (:func:`core.models.predict.crop_for_model`); the crops are cached in memory and on disk
   (``data_dir()/train-cache``). With ``augment=["lowpass:2.0", ...]`` each image is also perturbed with the
   named :mod:`core.perturb` perturbation at full resolution (in model units, before standardisation) and
   cropped with the geometry of the clean image.
2. Each training step draws a window with DMV's location and size noise (scaled to the model's pixels) and
   standardises it; with probability ``augment_prob`` the perturbed version of the image is used instead.
3. Adam, class-balanced sampling of malignant cases, class-weighted cross-entropy for the benign labels;
   GMIC is trained on ``y_fusion + y_global + y_local``, DMV on the negative log-likelihood of both heads.
4. After every epoch the malignant AUC on the validation split is measured (GMIC per image, DMV per breast);
   training stops after ``patience`` epochs without improvement or when ``max_minutes`` run out, and the best
   state is kept. The test split AUC of that state is measured like :mod:`core.models.predict` predicts
   (GMIC one deterministic window; DMV ``test_samples`` augmented windows) and stored in the checkpoint.
"""

from __future__ import annotations

import csv
import dataclasses
import hashlib
import json
import time
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from core.models import ModelError
from core.models import preprocess as pp
from core.models.predict import (
    Geometry,
    crop_for_model,
    dmv_forward,
    gmic_forward,
    model_device,
    pipeline_params,
    predict_dmv_crops,
    window_from_crop,
)

#: Defaults of the demo weights: 0.6 mm pixels (NYU constants / 6), windows of 202 x 134 mm covering the
#: synthetic 200 x 128 mm detector, GMIC patches of 24 x 24 mm (NYU: 25.6 mm).
DEMO_SPACING_MM = 0.6
DEMO_INPUT_SIZE = {
    "gmic": {"CC": (336, 224), "MLO": (336, 224)},
    "dmv": {"CC": (336, 224), "MLO": (336, 224)},
}
DEMO_GMIC_CROP = (40, 40)
#: Noisy windows per image (the model's window noise, seeded) cached for frozen-trunk training (DMV and
#: GMIC ``--freeze-trunk``) by default, besides the deterministic one.
TRUNK_WINDOW_SAMPLES = 4


@dataclass
class TrainOptions:
    """What :func:`train` does. Lengths in pixels of the resampled image, spacing in mm, time in minutes.

    ``cohort`` is ``"demo"``/``"tiny"`` (synthetic cohorts of :func:`core.phantom.ensure_cohort`; another
    seed as ``"demo-3"``) or the path of a manifest CSV with train/val/test splits. Every image of the
    ``extra_train`` cohorts (same forms) joins the training split; their exams must not occur in
    ``cohort``. ``window_samples`` is the number of noisy windows per image cached for frozen-trunk
    training. ``augment`` entries are ``"name:parameter"`` with a name of
    :data:`core.perturb.PERTURBATIONS` (e.g. ``"lowpass:2.0"``, radius in cycles/mm).
    """

    arch: str
    out: str
    cohort: str = "demo"
    extra_train: list[str] = field(default_factory=list)
    epochs: int = 6
    seed: int = 0
    lr: float = 3e-4
    batch_size: int = 8
    spacing_mm: float = DEMO_SPACING_MM
    input_size: dict[str, tuple[int, int]] | None = None
    crop_shape: tuple[int, int] = DEMO_GMIC_CROP
    K: int = 6
    augment: list[str] = field(default_factory=list)
    augment_prob: float = 0.5
    samples_per_epoch: int | None = None
    patience: int = 2
    patch_size: int = 0
    saliency_l1: float = 0.0
    saliency_target: float = 0.0
    dense_target: bool = False
    ema: float = 0.0
    init_trunk: str | None = None
    freeze_trunk: bool = False
    unfreeze_stages: int = 0
    window_samples: int = TRUNK_WINDOW_SAMPLES
    max_minutes: float | None = None
    test_samples: int = 10
    threads: int | None = 1
    half: bool = True
    cache: bool = True
    init: str | None = None
    device: str = "auto"
    workers: int = 1


@dataclass
class TrainResult:
    """Outcome of :func:`train`: the checkpoint, the curves files, the per-epoch history and the test AUCs."""

    checkpoint: Path
    curves_csv: Path
    curves_png: Path | None
    history: list[dict[str, Any]]
    val_auc: float | None
    test_auc: float | None
    test_breast_auc: float | None


def parse_augment(items: Sequence[str]) -> list[tuple[str, float]]:
    """``["lowpass:2.0"]`` -> ``[("lowpass", 2.0)]``, checking the names against the perturbation registry."""
    from core.perturb import PERTURBATIONS

    out = []
    for item in items:
        name, sep, value = str(item).partition(":")
        if name not in PERTURBATIONS:
            raise ModelError(
                f"augmentation {item!r}: unknown perturbation {name!r}; known: {', '.join(PERTURBATIONS)}"
            )
        try:
            parameter = float(value) if sep else float(PERTURBATIONS[name].grid[3])
        except (ValueError, KeyError, TypeError, IndexError):
            raise ModelError(f"augmentation {item!r}: write it as name:parameter, e.g. lowpass:2.0") from None
        out.append((name, parameter))
    return out


def _round(value: float | None) -> float | None:
    return None if value is None else round(value, 4)


def _auc(scores, labels) -> float | None:
    labels = np.asarray(labels).astype(int)
    if labels.size == 0 or labels.min() == labels.max():
        return None
    from core.metrics.auc import auc

    return auc(np.asarray(scores, float), labels)


# ----------------------------------------------------------------------------------------------------------
# Data: crops cached once


@dataclass
class ImageItem:
    image_id: str
    exam_id: str
    view: str  # "L-CC" ...
    split: str
    benign: int
    malignant: int
    crops: list[np.ndarray]  # [clean, perturbed 1, ...], flipped, model units
    geometry: Geometry
    # ground-truth findings (synthetic cohorts): (row, col) in the flipped crop, pathology
    findings: list[tuple[float, float, str]] = field(default_factory=list)


def _manifest_path(cohort: str) -> Path:
    """The manifest of a synthetic cohort (``"demo"``, ``"tiny"``, ``"demo-3"`` for seed 3) or a CSV path."""
    preset, _, seed = cohort.partition("-")
    if preset in ("demo", "tiny") and (not seed or seed.isdigit()):
        from core.phantom import ensure_cohort

        return ensure_cohort(preset, int(seed or 0))
    path = Path(cohort).expanduser()
    if not path.is_file():
        raise ModelError(
            f"{path}: cohort manifest not found "
            "(use 'demo', 'tiny', 'demo-SEED' or the path of a manifest CSV)"
        )
    return path


def _cache_key(manifest: Path, spec: Any, augment: list[tuple[str, float]]) -> str:
    p = pipeline_params(spec)
    stat = manifest.stat()
    text = json.dumps(
        [
            str(manifest.resolve()),
            stat.st_mtime_ns,
            stat.st_size,
            p.scale,
            p.spacing_mm,
            p.window,
            p.erosion_iterations,
            p.buffer,
            augment,
            3,
        ]
    )
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def load_items(
    manifest: str | Path,
    spec: Any,
    augment: list[tuple[str, float]],
    *,
    cache: bool = True,
    workers: int = 1,
    log: Callable[[str], None] = print,
) -> list[ImageItem]:
    """Read, resample and crop every image of the manifest (and its perturbed versions), with a disk cache.

    The cache is an ``.npz`` of plain arrays plus JSON metadata, read with ``allow_pickle=False``. With
    ``workers`` > 1 the images are read in that many processes (same result, same order).
    """
    from core.manifest import read_manifest
    from core.paths import data_dir

    manifest = Path(manifest)
    df = read_manifest(manifest)
    findings = _read_findings(manifest)
    cache_file = data_dir() / "train-cache" / f"{_cache_key(manifest, spec, augment)}.npz"
    if cache and cache_file.is_file():
        items = _read_cache(cache_file)
        log(f"loaded {len(items)} cached crops from {cache_file}")
        return items
    t0 = time.time()
    rows = df.to_dict("records")
    jobs = [(n, row, spec, augment, findings.get(str(row["image_id"]), [])) for n, row in enumerate(rows)]
    items: list[ImageItem] = []
    with _pool(workers) as pool:
        for item in pool.map(_load_item, jobs):
            items.append(item)
            if len(items) % 100 == 0:
                log(f"  preprocessed {len(items)}/{len(df)} images ({time.time() - t0:.0f} s)")
    if cache:
        _write_cache(cache_file, items)
    log(f"preprocessed {len(items)} images in {time.time() - t0:.0f} s")
    return items


def _load_item(job: tuple) -> ImageItem:
    """Read, resample and crop one manifest row and its perturbed versions (a job of :func:`load_items`)."""
    import pandas as pd

    from core.imaging import load_mammogram
    from core.perturb import perturb

    n, row, spec, augment, findings = job
    spacing = None
    if pd.notna(row["spacing_row_mm"]) and pd.notna(row["spacing_col_mm"]):
        spacing = (float(row["spacing_row_mm"]), float(row["spacing_col_mm"]))
    mammo = load_mammogram(row["path"], spacing_mm=spacing)
    view = f"{row['laterality']}-{row['view']}"
    clean, geo = crop_for_model(mammo, spec, view=view)
    crops = [clean]
    for name, parameter in augment:
        pert = perturb(mammo.pixels, mammo.spacing_mm, name, parameter=parameter, seed=n)
        pm = dataclasses.replace(mammo, pixels=pert)
        crops.append(crop_for_model(pm, spec, geometry=geo, view=view)[0])
    return ImageItem(
        str(row["image_id"]),
        str(row["exam_id"]),
        view,
        str(row["split"]),
        int(row["label_benign"]),
        int(row["label_malignant"]),
        crops,
        geo,
        _findings_in_crop(findings, mammo.pixels.shape, geo),
    )


@contextmanager
def _pool(workers: int) -> Iterator[Any]:
    """An executor with ``map``: in-process for one worker, else a process pool (results in input order).

    The pool's processes are spawned, not forked: a child forked after torch has run a parallel CPU op
    waits forever in the OpenMP barrier of its first parallel op (the resampling), which a training run
    that loads its ``--extra-train`` cohorts after building the model did."""
    if workers <= 1:

        class _Serial:
            map = staticmethod(map)

        yield _Serial()
        return
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor

    context = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(workers, mp_context=context, initializer=_one_thread) as pool:
        yield pool


def _one_thread() -> None:
    """Worker initialiser: one torch thread per process (the workers already share the cores)."""
    import torch

    torch.set_num_threads(1)


def _extra_train_items(
    items: list[ImageItem], spec: Any, augment: list[tuple[str, float]], options: TrainOptions, log
) -> list[ImageItem]:
    """Every image of the ``options.extra_train`` cohorts, relabelled as training images. An exam id that is
    also in ``items`` (the main cohort) or in two of them is refused: it could leak a validation or test
    patient into training."""
    seen = {it.exam_id for it in items}
    out = []
    for cohort in options.extra_train:
        manifest = _manifest_path(cohort)
        extra = load_items(manifest, spec, augment, cache=options.cache, workers=options.workers, log=log)
        clash = sorted({it.exam_id for it in extra} & seen)
        if clash:
            raise ModelError(
                f"--extra-train {cohort}: exam {clash[0]} (and {len(clash) - 1} more) is already in the "
                "training data or in the main cohort; extra cohorts need their own patients"
            )
        seen |= {it.exam_id for it in extra}
        out += [dataclasses.replace(it, split="train") for it in extra]
    if out:
        log(f"{len(out)} more training images from {', '.join(options.extra_train)}")
    return out


def _read_findings(manifest: Path) -> dict[str, list[tuple[float, float, str]]]:
    """Finding-level ground truth of a synthetic cohort (``findings.csv`` next to the manifest), if any."""
    import pandas as pd

    path = Path(manifest).parent / "findings.csv"
    if not path.is_file():
        return {}
    df = pd.read_csv(path)
    if "part_of" in df:
        df = df[df["part_of"].isna()]  # whole findings, not their single calcifications
    out: dict[str, list[tuple[float, float, str]]] = {}
    for r in df.itertuples(index=False):
        out.setdefault(str(r.image_id), []).append((float(r.row), float(r.col), str(r.pathology)))
    return out


def _findings_in_crop(findings, shape: tuple[int, int], geo: Geometry) -> list[tuple[float, float, str]]:
    """Map (row, col) of the stored image to the resampled, cropped and flipped frame of ``geo``."""
    out = []
    hs, ws = geo.resampled_shape
    top, bottom, left, right = geo.window_location
    for r, c, pathology in findings:
        rr = (r + 0.5) * hs / shape[0] - 0.5 - top
        cc = (c + 0.5) * ws / shape[1] - 0.5 - left
        if geo.laterality == "R":  # right breasts are mirrored to face right
            cc = (right - left) - 1 - cc
        out.append((float(rr), float(cc), pathology))
    return out


def _window_offset(crop_shape: tuple[int, int], geo: Geometry, spec: Any) -> tuple[float, float]:
    """(row, col) to subtract from crop coordinates to get window coordinates (window without noise)."""
    h, w = crop_shape
    idx = np.zeros((h, w, 2), np.float32)
    idx[..., 0] = np.arange(1, h + 1)[:, None]
    idx[..., 1] = np.arange(1, w + 1)[None, :]
    win = pp.extract_window(idx, geo.view, pipeline_params(spec).window[geo.view], geo.center)
    i, j = np.argwhere(win[..., 0] > 0)[0]
    return float(win[i, j, 0] - 1 - i), float(win[i, j, 1] - 1 - j)


def _patch(
    item: ImageItem,
    spec: Any,
    rng: np.random.RandomState,
    size: int,
    augment_prob: float,
    windows: dict[tuple[str, int], tuple[np.ndarray, float, float]],
) -> tuple[np.ndarray, list[int]]:
    """A ``size`` x ``size`` patch of the standardised model window and its [benign, malignant] label.

    Malignant (benign) images give a patch around one of their malignant (benign) findings, shifted by up to
    a quarter of the patch; other images a patch centred on random breast tissue. The label says which kinds
    of finding lie inside the patch. ``windows`` memoises the deterministic window of each crop (and its
    offset), which is all a patch needs.
    """
    k = _crop_index(item, rng, augment_prob)
    key = (item.image_id, k)
    if key not in windows:
        crop = item.crops[k]
        offset = _window_offset(crop.shape, item.geometry, spec)
        windows[key] = (window_from_crop(crop, item.geometry, spec), *offset)
    win, off_r, off_c = windows[key]
    spots = [(r - off_r, c - off_c, p) for r, c, p in item.findings]
    wanted = "malignant" if item.malignant else "benign" if item.benign and rng.uniform() < 0.7 else None
    targets = [sp for sp in spots if sp[2] == wanted]
    H, W = win.shape
    if targets:
        r, c, _ = targets[rng.randint(len(targets))]
        r, c = r + rng.uniform(-size / 4, size / 4), c + rng.uniform(-size / 4, size / 4)
    else:
        tissue = np.argwhere(win > win.min() + 0.5)
        r, c = tissue[rng.randint(len(tissue))] if len(tissue) else (H / 2, W / 2)
    top = int(np.clip(round(r - size / 2), 0, max(0, H - size)))
    left = int(np.clip(round(c - size / 2), 0, max(0, W - size)))
    patch = win[top : top + size, left : left + size]
    lo, hi = size / 8, size - size / 8
    inside = [p for r, c, p in spots if lo <= r - top < hi and lo <= c - left < hi]
    return patch, [int("benign" in inside), int("malignant" in inside)]


def _write_cache(path: Path, items: list[ImageItem]) -> None:
    meta = []
    arrays = {}
    for i, it in enumerate(items):
        d = {k: v for k, v in asdict(it).items() if k not in ("crops", "geometry")}
        d["geometry"] = asdict(it.geometry)
        d["n_crops"] = len(it.crops)
        meta.append(d)
        for j, crop in enumerate(it.crops):
            arrays[f"c{i}_{j}"] = crop
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.stem + ".tmp.npz")
    np.savez(tmp, meta=np.array(json.dumps(meta)), **arrays)
    tmp.replace(path)


def _read_cache(path: Path) -> list[ImageItem]:
    with np.load(path, allow_pickle=False) as data:
        meta = json.loads(str(data["meta"]))
        items = []
        for i, d in enumerate(meta):
            g = d.pop("geometry")
            geo = Geometry(
                tuple(g["window_location"]),
                g["laterality"],
                g["view"],
                tuple(g["center"]),
                tuple(g["resampled_shape"]),
            )
            crops = [data[f"c{i}_{j}"] for j in range(d.pop("n_crops"))]
            d["findings"] = [tuple(f) for f in d.get("findings", [])]
            items.append(ImageItem(crops=crops, geometry=geo, **d))
    return items


def _exams(items: list[ImageItem]) -> dict[str, dict[str, ImageItem]]:
    exams: dict[str, dict[str, ImageItem]] = {}
    for it in items:
        exams.setdefault(it.exam_id, {})[it.view] = it
    return {k: v for k, v in exams.items() if all(view in v for view in pp.VIEWS)}


# ----------------------------------------------------------------------------------------------------------
# Training


def _crop_index(item: ImageItem, rng: np.random.RandomState, augment_prob: float) -> int:
    """Which crop a training sample uses: a perturbed one (1..) with probability ``augment_prob``, else 0."""
    if len(item.crops) > 1 and rng.uniform() < augment_prob:
        return 1 + rng.randint(len(item.crops) - 1)
    return 0


def _window(
    item: ImageItem, spec: Any, rng: np.random.RandomState | None, augment_prob: float, train: bool
) -> np.ndarray:
    crop = item.crops[_crop_index(item, rng, augment_prob) if train else 0]
    return window_from_crop(crop, item.geometry, spec, rng=rng if train else None, augment=train)


#: Radius (mm) of the disc that marks a finding in a saliency target: a calcification cluster spreads over
#: about 4.5 mm around its centre, a mass core over 3-8 mm.
FINDING_RADIUS_MM = 4.5


def finding_masks(item: ImageItem, spec: Any) -> np.ndarray:
    """(rows, cols, 2) float32 in the crop's frame: discs of :data:`FINDING_RADIUS_MM` around the benign
    (channel 0) and malignant (channel 1) findings of ``item`` (1 inside, 0 outside)."""
    h, w = item.crops[0].shape
    masks = np.zeros((h, w, 2), np.float32)
    radius = FINDING_RADIUS_MM / pipeline_params(spec).spacing_mm
    for r, c, pathology in item.findings:
        r0, r1 = max(0, int(r - radius)), min(h, int(r + radius) + 2)
        c0, c1 = max(0, int(c - radius)), min(w, int(c + radius) + 2)
        rows, cols = np.ogrid[r0:r1, c0:c1]
        inside = (rows - r) ** 2 + (cols - c) ** 2 <= radius**2
        masks[r0:r1, c0:c1, int(pathology == "malignant")][inside] = 1.0
    return masks


def _window_with_masks(
    crop: np.ndarray, item: ImageItem, spec: Any, rng: np.random.RandomState | None
) -> np.ndarray:
    """A window of ``crop`` (one of ``item``'s crops) stacked with the item's finding masks, cut jointly:
    (3, rows, cols) float32. Channel 0 is the standardised window, channels 1-2 the benign and malignant
    finding masks after the same window noise (drawn from ``rng``; none when it is None) and resize, so a
    finding stays under its mark."""
    stacked = np.dstack([crop, finding_masks(item, spec)])
    window = window_from_crop(
        stacked, item.geometry, spec, rng=rng, augment=rng is not None, standardise=False
    )
    window[..., 0] = pp.standardise(window[..., 0])
    return np.moveaxis(window, -1, 0)


def _window_and_target(
    item: ImageItem, spec: Any, rng: np.random.RandomState, augment_prob: float
) -> np.ndarray:
    """An augmented training window with its finding masks (:func:`_window_with_masks`)."""
    return _window_with_masks(item.crops[_crop_index(item, rng, augment_prob)], item, spec, rng)


def _train_windows(
    items: list[ImageItem],
    spec: Any,
    rng: np.random.RandomState,
    augment_prob: float,
    threads: Any,
    targets: bool = False,
) -> np.ndarray:
    """Augmented training windows (N, rows, cols) of ``items``, built in ``threads`` (an executor); with
    ``targets``, (N, 3, rows, cols): each window with its finding masks (:func:`_window_and_target`).

    Each window gets its own generator seeded from ``rng``, so the batch does not depend on thread timing.
    """
    seeds = rng.randint(0, 2**31 - 1, size=len(items))
    jobs = [(it, np.random.RandomState(sd)) for it, sd in zip(items, seeds, strict=True)]
    if targets:
        return np.stack(list(threads.map(lambda j: _window_and_target(j[0], spec, j[1], augment_prob), jobs)))
    return np.stack(list(threads.map(lambda j: _window(j[0], spec, j[1], augment_prob, True), jobs)))


def saliency_target_loss(saliency_map: Any, masks: Any, *, logits: bool = False) -> Any:
    """Class-balanced cross-entropy of GMIC's saliency map (N, 2, h, w) against finding masks (N, 2, H, W);
    with ``logits`` the map holds logits instead of probabilities (the dense stage's maps).

    A cell's target is 1 where a finding's disc reaches into the cell's share of the input (max-pooled
    mask > 0.5), else 0. Positive and negative cells are averaged separately and the two means added, so the
    one to four finding cells of a window weigh as much as its ~75 others.
    """
    import torch.nn.functional as F

    target = (F.adaptive_max_pool2d(masks, saliency_map.shape[-2:]) > 0.5).float()
    if logits:
        loss = F.binary_cross_entropy_with_logits(saliency_map, target, reduction="none")
    else:
        loss = F.binary_cross_entropy(saliency_map.clamp(1e-6, 1 - 1e-6), target, reduction="none")
    neg = 1 - target
    return (loss * neg).sum() / neg.sum().clamp(min=1) + (loss * target).sum() / target.sum().clamp(min=1)


def _schedule(total_steps: int) -> Callable[[int], float]:
    """Learning-rate factor per optimiser step: linear warm-up (5 %, <= 100 steps), cosine down to 2 %."""
    warm = max(1, min(100, total_steps // 20))

    def factor(step: int) -> float:
        if step < warm:
            return (step + 1) / warm
        t = min(1.0, (step - warm) / max(1, total_steps - warm))
        return 0.02 + 0.98 * 0.5 * (1 + np.cos(np.pi * t))

    return factor


def should_stop(bad_epochs: int, minutes: float, options: TrainOptions, log: Callable[[str], None]) -> bool:
    """Whether training ends after this epoch: ``options.patience`` epochs without a better validation AUC,
    or ``options.max_minutes`` (minutes since the start) used up; logs the reason."""
    if bad_epochs >= options.patience:
        log(f"early stop: no improvement for {bad_epochs} epochs")
        return True
    if options.max_minutes is not None and minutes >= options.max_minutes:
        log(f"time budget of {options.max_minutes} min reached")
        return True
    return False


def _balanced_order(flags: np.ndarray, n: int, rng: np.random.RandomState) -> np.ndarray:
    """``n`` indices drawn with probability inversely proportional to the frequency of their flag (0/1)."""
    flags = np.asarray(flags).astype(int)
    counts = np.bincount(flags, minlength=2).astype(float)
    weights = 1.0 / counts[flags]
    return rng.choice(len(flags), size=n, replace=n > len(flags), p=weights / weights.sum())


def _bce(prob, target, pos_weight):
    import torch

    prob = prob.clamp(1e-6, 1 - 1e-6)
    w = 1 + (pos_weight - 1) * target
    return -(w * (target * torch.log(prob) + (1 - target) * torch.log(1 - prob))).mean()


def _gmic_scores(model, items, spec, batch_size) -> np.ndarray:
    out = []
    model.eval()
    for s in range(0, len(items), batch_size):
        chunk = items[s : s + batch_size]
        out.append(gmic_forward(model, np.stack([_window(it, spec, None, 0, False) for it in chunk])))
    return np.concatenate(out) if out else np.zeros((0, 2))


def _breast_auc(items: list[ImageItem], malignant_scores: np.ndarray) -> float | None:
    breasts: dict[tuple[str, str], list] = {}
    for it, s in zip(items, malignant_scores, strict=True):
        breasts.setdefault((it.exam_id, it.view[0]), [it.malignant, []])[1].append(s)
    labels = [v[0] for v in breasts.values()]
    return _auc([np.mean(v[1]) for v in breasts.values()], labels)


def _dmv_labels(exam: dict[str, ImageItem]) -> np.ndarray:
    # label order left_benign, right_benign, left_malignant, right_malignant
    return np.array(
        [exam["L-CC"].benign, exam["R-CC"].benign, exam["L-CC"].malignant, exam["R-CC"].malignant]
    )


def _dmv_auc(probs: np.ndarray, labels: np.ndarray) -> float | None:
    return _auc(probs[:, 2:].ravel(), labels[:, 2:].ravel()) if len(probs) else None


def _dmv_val_probs(model, exams, spec) -> np.ndarray:
    model.eval()
    out = []
    for exam in exams:
        inputs = {v: _window(exam[v], spec, None, 0, False)[None] for v in pp.VIEWS}
        out.append(dmv_forward(model, inputs)[0])
    return np.array(out).reshape(-1, 4)


def _write_curves(history: list[dict[str, Any]], csv_path: Path, png_path: Path, title: str) -> Path | None:
    keys = list(history[0]) if history else ["epoch"]
    with open(csv_path, "w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=keys)
        writer.writeheader()
        writer.writerows(history)
    try:
        _plot_curves(history, png_path, title)
    except Exception as exc:  # a missing font etc. must not lose the trained weights
        print(f"could not draw {png_path}: {exc}")
        return None
    return png_path


def _plot_curves(history: list[dict[str, Any]], path: Path, title: str) -> None:
    """Two panels drawn with Pillow: training loss, and validation malignant AUC, against epoch."""
    from PIL import Image, ImageDraw

    W, H, pad = 900, 380, 55
    img = Image.new("RGB", (W, H), "white")
    d = ImageDraw.Draw(img)
    d.text((pad, 8), title, fill="black")
    epochs = [h["epoch"] for h in history]
    panels = [
        ("train loss", "train_loss", None, "tab:blue"),
        ("val malignant AUC", "val_auc", (0.0, 1.0), "red"),
    ]
    pw = (W - 3 * pad) // 2
    for k, (label, key, yr, colour) in enumerate(panels):
        x0, y0, x1, y1 = pad + k * (pw + pad), 40, pad + k * (pw + pad) + pw, H - 40
        d.rectangle([x0, y0, x1, y1], outline="black")
        vals = [h.get(key) for h in history]
        pts = [(e, v) for e, v in zip(epochs, vals, strict=True) if v is not None and v == v]
        lo, hi = yr if yr else (min(v for _, v in pts), max(v for _, v in pts)) if pts else (0, 1)
        if hi <= lo:
            hi = lo + 1
        emax = max(max(epochs, default=1), 1)
        d.text((x0, y1 + 6), f"epoch 0..{emax}", fill="black")
        d.text((x0 + 4, y0 + 4), f"{label}  [{lo:.3g}, {hi:.3g}]", fill="black")
        xy = [(x0 + (x1 - x0) * e / emax, y1 - (y1 - y0) * (v - lo) / (hi - lo)) for e, v in pts]
        if len(xy) > 1:
            d.line(xy, fill="blue" if colour == "tab:blue" else "red", width=2)
        for x, y in xy:
            d.ellipse([x - 3, y - 3, x + 3, y + 3], fill="black")
        if yr:
            for t in (0.5, 0.85):
                yy = y1 - (y1 - y0) * (t - lo) / (hi - lo)
                d.line([(x0, yy), (x1, yy)], fill=(200, 200, 200))
                d.text((x1 - 30, yy - 12), f"{t}", fill=(120, 120, 120))
    img.save(path)


def _cpu_state(model: Any) -> dict[str, Any]:
    """A copy of the model's state on the CPU (the best epoch so far, kept off the GPU)."""
    return {k: v.detach().cpu().clone() for k, v in model.state_dict().items()}


def _load_init(model: Any, path: str, config: dict[str, Any]) -> None:
    """Start from a checkpoint of the same architecture and input geometry (fine-tuning, more training)."""
    from core.models.weights import load_checkpoint

    ckpt = load_checkpoint(path)
    if ckpt.arch != model.spec.arch:
        raise ModelError(f"{path}: --init needs a {model.spec.arch} checkpoint, this one holds {ckpt.arch}")
    for key in ("spacing_mm", "input_size", "crop_shape", "K"):
        if key in config and ckpt.config.get(key) != config[key]:
            raise ModelError(
                f"{path}: --init checkpoint has {key} {ckpt.config.get(key)!r}, this training {config[key]!r}"
            )
    model.load_state_dict(ckpt.state_dict)


def _load_trunk(model: Any, path: str) -> None:
    """Copy a ResNet-22 trunk into both DMV columns: GMIC's ``ds_net`` or a DMV checkpoint's ``cc`` column."""
    from core.models.weights import load_checkpoint

    ckpt = load_checkpoint(path)
    prefix = "ds_net." if ckpt.arch == "gmic" else "four_view_resnet.cc."
    sub = {k[len(prefix) :]: v for k, v in ckpt.state_dict.items() if k.startswith(prefix)}
    if not sub:
        raise ModelError(f"{path}: no ResNet-22 trunk ({prefix}*) in this checkpoint")
    for column in (model.four_view_resnet.cc, model.four_view_resnet.mlo):
        column.load_state_dict(sub)


def _column_prefix(column: Any, x: Any, stages: int) -> Any:
    """The frozen part of a ResNet-22 column (DMV column or GMIC ``ds_net``): its output before the last
    ``stages`` stages (1..5), or the column's output (N, 256, h, w) when ``stages`` is 0."""
    h = column.first_pool(column.first_conv(x))
    for layer in column.layer_list[: len(column.layer_list) - stages]:
        h = layer(h)
    return h if stages else column.relu(column.final_bn(h))


def _column_suffix(column: Any, h: Any, stages: int) -> Any:
    """The trainable rest of a column after :func:`_column_prefix`: the column's output (N, 256, h, w)."""
    if not stages:
        return h
    for layer in column.layer_list[len(column.layer_list) - stages :]:
        h = layer(h)
    return column.relu(column.final_bn(h))


def _trainable_top(column: Any, stages: int) -> list[Any]:
    """The modules of a column that :func:`_column_suffix` runs (trained on cached prefix outputs)."""
    return [*column.layer_list[len(column.layer_list) - stages :], column.final_bn] if stages else []


def _prefix_outputs(
    column: Any,
    items: list[ImageItem],
    spec: Any,
    stages: int,
    crop: int,
    seeds: list[int | None],
    windows: Any = None,
    target_size: tuple[int, int] | None = None,
) -> tuple[np.ndarray, np.ndarray | None, np.ndarray | None]:
    """Frozen-prefix outputs (n, ...) float32 of one window per item: the deterministic window of crop
    ``crop`` where the item's seed is None, else one with the window noise of ``RandomState(seed)``.

    Returns ``(outputs, windows, targets)``: the windows as dtype ``windows`` (n, rows, cols) when it is
    given, and with ``target_size`` (the saliency map's (h, w)) the items' finding masks cut with the same
    noise and max-pooled to that size, uint8 (n, 2, h, w) (:func:`saliency_target_loss`); else None.
    """
    import torch
    import torch.nn.functional as F

    outs, wins_all, targets = [], [], []
    column.eval()
    with torch.inference_mode():
        for s in range(0, len(items), 8):
            wins, masks = [], []
            for it, sd in zip(items[s : s + 8], seeds[s : s + 8], strict=True):
                rng = None if sd is None else np.random.RandomState(sd)
                c = it.crops[min(crop, len(it.crops) - 1)]
                if target_size is None:
                    wins.append(window_from_crop(c, it.geometry, spec, rng=rng, augment=rng is not None))
                else:
                    joint = _window_with_masks(c, it, spec, rng)
                    wins.append(joint[0])
                    masks.append(joint[1:])
            x = torch.from_numpy(np.stack(wins))[:, None].to(model_device(column))
            outs.append(_column_prefix(column, x, stages).float().cpu().numpy())
            if windows is not None:
                wins_all.append(np.stack(wins).astype(windows))
            if masks:
                pooled = F.adaptive_max_pool2d(torch.from_numpy(np.stack(masks)), target_size) > 0.5
                targets.append(pooled.numpy().astype(np.uint8))
    return (
        np.concatenate(outs),
        np.concatenate(wins_all) if wins_all else None,
        np.concatenate(targets) if targets else None,
    )


def _window_seeds(options: TrainOptions) -> list[int | None]:
    """Seeds of the cached windows per image: None (deterministic), then ``options.window_samples``
    noisy ones (offset by the image or exam index)."""
    return [None] + [options.seed * 100_000 + 10_000 * (k + 1) for k in range(options.window_samples)]


def _dmv_prefix_inputs(
    model: Any, exams: list[dict[str, ImageItem]], spec: Any, stages: int, crop: int, seed: int | None
) -> list[np.ndarray]:
    """Per view (``pp.VIEWS`` order), the frozen-prefix outputs (n_exams, ...) of one window per image,
    the noisy ones drawn from ``RandomState(seed + 4 x exam index + view index)``."""
    return [
        _prefix_outputs(
            model.four_view_resnet.column(v),
            [e[v] for e in exams],
            spec,
            stages,
            crop,
            [None if seed is None else seed + 4 * i + k for i in range(len(exams))],
        )[0]
        for k, v in enumerate(pp.VIEWS)
    ]


@dataclass
class _GmicCache:
    """Windows and frozen ``ds_net`` prefix outputs for GMIC training with ``--freeze-trunk``.

    ``train[crop][sample]`` = (prefix outputs float32, windows float16 (n, rows, cols), saliency targets
    uint8 (n, 2, h, w) or None) of the training images (sample 0 deterministic, then the noisy ones); ``val``
    the same (float32 windows, no targets) for the deterministic validation windows."""

    train: list[list[tuple[np.ndarray, np.ndarray, np.ndarray | None]]]
    val: tuple[np.ndarray, np.ndarray, None]

    def batch(self, picks: list[tuple[int, int]], rng: np.random.RandomState) -> list[Any]:
        """Float32 tensors (prefix outputs, windows, targets or None) of (crop, image index) picks, each
        with a random one of the cached windows."""
        import torch

        chosen = [(self.train[c][rng.randint(len(self.train[c]))], i) for c, i in picks]
        return [
            None
            if chosen[0][0][part] is None
            else torch.from_numpy(np.stack([s[part][i] for s, i in chosen]).astype(np.float32))
            for part in (0, 1, 2)
        ]


def _gmic_cache(model: Any, train_items, val_items, spec, options: TrainOptions, log) -> _GmicCache:
    from core.models.resnet import resnet22_output_size

    t0 = time.time()
    stages, n = options.unfreeze_stages, len(train_items)
    map_size = resnet22_output_size(*spec.config["input_size"]["CC"], first_layer_padding=3)
    train_in = [
        [
            _prefix_outputs(
                model.ds_net,
                train_items,
                spec,
                stages,
                c,
                [None if sd is None else sd + i for i in range(n)],
                windows=np.float16,
                target_size=map_size if options.saliency_target else None,
            )
            for sd in _window_seeds(options)
        ]
        for c in range(len(train_items[0].crops))
    ]
    val_in = _prefix_outputs(
        model.ds_net, val_items, spec, stages, 0, [None] * len(val_items), windows=np.float32
    )
    log(f"windows and trunk outputs of {n} + {len(val_items)} images in {time.time() - t0:.0f} s")
    return _GmicCache(train_in, val_in)


def _gmic_top(model: Any, windows: Any, prefix: Any, stages: int) -> dict[str, Any]:
    """GMIC's outputs from cached windows (N, rows, cols) and ``ds_net`` prefix outputs (torch tensors)."""
    return model.forward_from_global(windows[:, None], _column_suffix(model.ds_net, prefix, stages))


def _gmic_cached_scores(model: Any, cache: _GmicCache, stages: int, batch_size: int) -> np.ndarray:
    import torch

    model.eval()
    device, out = model_device(model), []
    with torch.inference_mode():
        for s in range(0, len(cache.val[0]), batch_size):
            h, w = (torch.from_numpy(a[s : s + batch_size]).to(device) for a in cache.val[:2])
            out.append(_gmic_top(model, w, h, stages)["y_fusion"].double().cpu().numpy())
    return np.concatenate(out)


def _dmv_top(model: Any, feats: list[Any], stages: int) -> dict[str, Any]:
    """The trainable top of DMV on cached prefix outputs (one per view): the last ``stages`` stages of the
    columns, then the heads as ``SplitBreastModel.forward`` applies them."""
    import torch
    import torch.nn.functional as F

    h = [
        _column_suffix(model.four_view_resnet.column(v), f, stages).flatten(2).mean(-1)
        for v, f in zip(pp.VIEWS, feats, strict=True)
    ]
    cc = F.relu(model.fc1_cc(torch.cat([h[0], h[1]], dim=1)))
    mlo = F.relu(model.fc1_mlo(torch.cat([h[2], h[3]], dim=1)))
    return {"CC": model.output_layer_cc(cc), "MLO": model.output_layer_mlo(mlo)}


def _train_dmv_top(model, spec, train_exams, val_exams, options, rng, log):
    """Train the DMV heads (and the last ``options.unfreeze_stages`` column stages) on cached outputs of the
    frozen trunk; returns (history, best). Training samples are the deterministic window or one of
    ``options.window_samples`` noisy windows per image, of the clean crop or (``augment_prob``) a
    perturbed one."""
    import torch

    t0 = time.time()
    stages = options.unfreeze_stages
    n_crops = len(train_exams[0]["L-CC"].crops)
    seeds = _window_seeds(options)
    train_in = [
        [_dmv_prefix_inputs(model, train_exams, spec, stages, c, sd) for sd in seeds] for c in range(n_crops)
    ]
    device = model_device(model)
    val_in = [
        torch.from_numpy(a).to(device) for a in _dmv_prefix_inputs(model, val_exams, spec, stages, 0, None)
    ]
    log(f"trunk outputs of {len(train_exams)} + {len(val_exams)} exams in {time.time() - t0:.0f} s")
    labels = np.array([_dmv_labels(e) for e in train_exams])
    val_labels = np.array([_dmv_labels(e) for e in val_exams]).reshape(-1, 4)
    pos = labels.sum(axis=0)
    pos_w = torch.tensor(np.minimum(10.0, (len(labels) - pos) / np.maximum(pos, 1)), dtype=torch.float32)
    pos_w = pos_w.to(device)
    columns = [model.four_view_resnet.cc, model.four_view_resnet.mlo]
    tops = [m for c in columns for m in _trainable_top(c, stages)]
    heads = [model.fc1_cc, model.fc1_mlo, model.output_layer_cc, model.output_layer_mlo]
    params = [p for m in (*heads, *tops) for p in m.parameters()]
    opt = torch.optim.Adam(params, lr=options.lr, weight_decay=1e-4)
    history, best, bad = [], (-1.0, None, 0), 0
    flags = labels[:, 2:].max(axis=1)
    for epoch in range(1, options.epochs + 1):
        order = _balanced_order(flags, options.samples_per_epoch or len(train_exams), rng)
        for m in tops:
            m.train()
        losses = []
        for s in range(0, len(order), options.batch_size):
            idx = order[s : s + options.batch_size]
            picks = [
                (_crop_index(train_exams[i]["L-CC"], rng, options.augment_prob), rng.randint(len(seeds)))
                for i in idx
            ]
            x = [
                torch.from_numpy(
                    np.stack([train_in[c][w][k][i] for (c, w), i in zip(picks, idx, strict=True)])
                ).to(device)
                for k in range(len(pp.VIEWS))
            ]
            y = torch.tensor(labels[idx], dtype=torch.float32, device=device)
            out = _dmv_top(model, x, stages)
            w = 1 + (pos_w - 1) * y
            loss = sum(-(w * (y * out[h][..., 1] + (1 - y) * out[h][..., 0])).mean() for h in ("CC", "MLO"))
            opt.zero_grad()
            loss.backward()
            opt.step()
            losses.append(loss.item())
        model.eval()
        with torch.no_grad():
            out = _dmv_top(model, val_in, stages)
            probs = ((torch.exp(out["CC"][..., 1]) + torch.exp(out["MLO"][..., 1])) / 2).cpu().numpy()
        val_auc = _dmv_auc(probs, val_labels)
        row = {
            "epoch": epoch,
            "train_loss": round(float(np.mean(losses)), 5),
            "val_auc": None if val_auc is None else round(val_auc, 4),
            "minutes": round((time.time() - t0) / 60, 2),
        }
        history.append(row)
        if epoch % 5 == 0 or epoch == 1:
            log(f"top epoch {epoch}: loss {row['train_loss']:.4f}, val malignant AUC {row['val_auc']}")
        score = -1.0 if val_auc is None else val_auc
        if score > best[0] or best[1] is None:
            best, bad = (score, _cpu_state(model), epoch), 0
        else:
            bad += 1
            if bad >= options.patience:
                log(f"early stop after epoch {epoch}")
                break
    return history, best


def train(options: TrainOptions, *, log: Callable[[str], None] = print) -> TrainResult:
    """Train GMIC or DMV (view-wise, image only) and write a ``mammo-robust/1`` checkpoint plus curves.

    Returns
    -------
    TrainResult
    """
    import torch

    from core.models.registry import build_model, resolve_device
    from core.models.weights import save_checkpoint

    arch = options.arch.lower()
    if arch not in ("gmic", "dmv"):
        raise ModelError(f"train: unknown architecture {options.arch!r}; expected 'gmic' or 'dmv'")
    if options.epochs < 1 or options.batch_size < 1:
        raise ModelError("train: epochs and batch_size must be at least 1")
    if not 0.0 <= options.ema < 1.0:
        raise ModelError(f"train: --ema must be in [0, 1), got {options.ema}")
    if options.threads:
        torch.set_num_threads(int(options.threads))
    device = resolve_device(options.device)
    if device.type == "cuda":
        torch.backends.cudnn.benchmark = True
        torch.backends.cuda.matmul.allow_tf32 = True
        torch.backends.cudnn.allow_tf32 = True
    augment = parse_augment(options.augment)
    torch.manual_seed(options.seed)
    rng = np.random.RandomState(options.seed)

    input_size = options.input_size or DEMO_INPUT_SIZE[arch]
    config: dict[str, Any] = {
        "input_size": {k: list(v) for k, v in input_size.items()},
        "spacing_mm": options.spacing_mm,
        "demo": True,
    }
    if arch == "gmic":
        config.update(crop_shape=list(options.crop_shape), K=options.K, percent_t=0.05)
    model = build_model(arch, "image-only" if arch == "dmv" else None, config)
    spec = model.spec
    if options.init:
        _load_init(model, options.init, config)
    if options.init_trunk:
        if arch != "dmv":
            raise ModelError("train: --init-trunk is for DMV (it copies a ResNet-22 trunk into both columns)")
        _load_trunk(model, options.init_trunk)
    if options.freeze_trunk and not (options.init_trunk if arch == "dmv" else options.init):
        raise ModelError(
            "train: --freeze-trunk needs "
            + ("--init-trunk" if arch == "dmv" else "--init (a GMIC checkpoint)")
        )
    if options.freeze_trunk and options.patch_size:
        raise ModelError("train: --freeze-trunk trains on whole windows, without --patch-size")
    if options.dense_target and (arch != "gmic" or not options.patch_size or options.ema):
        raise ModelError("train: --dense-target is for GMIC with --patch-size (and without --ema)")
    if options.ema and arch == "dmv" and options.freeze_trunk:
        raise ModelError(
            "train: --ema is for training with live windows or GMIC --freeze-trunk, not DMV heads"
        )
    if options.window_samples < 0:
        raise ModelError(f"train: --window-samples must be 0 or more, not {options.window_samples}")
    if options.unfreeze_stages and not (options.freeze_trunk and 0 < options.unfreeze_stages <= 5):
        raise ModelError("train: --unfreeze-stages is 1..5 (of the column's 5 stages) with --freeze-trunk")
    model.to(device)
    manifest = _manifest_path(options.cohort)
    items = load_items(manifest, spec, augment, cache=options.cache, workers=options.workers, log=log)
    split = {s: [it for it in items if it.split == s] for s in ("train", "val", "test")}
    split["train"] += _extra_train_items(items, spec, augment, options, log)
    if not split["train"]:
        raise ModelError(f"{manifest}: no image in the train split")
    if options.patch_size and (arch != "gmic" or not any(it.findings for it in split["train"])):
        raise ModelError(f"{manifest}: patch training is for GMIC on a cohort with findings.csv (synthetic)")
    if options.saliency_target and (
        arch != "gmic" or options.patch_size or not any(it.findings for it in split["train"])
    ):
        raise ModelError(
            f"{manifest}: --saliency-target is for GMIC on whole windows of a cohort with findings.csv "
            "(synthetic)"
        )
    val_name = "val" if split["val"] else "train"
    if val_name == "train":
        log("no validation split: early stopping uses the training images (the AUC is then optimistic)")
    t_start = time.time()
    history: list[dict[str, Any]] = []
    best: tuple[float, Any, int] = (-1.0, None, 0)  # (auc, state on the CPU, epoch)
    bad_epochs = 0

    # With --ema, validation, the kept state and the test score use the moving average of the weights
    # (and of the batch-norm statistics), which smooths the step-to-step noise of small batches.
    averaged = (
        torch.optim.swa_utils.AveragedModel(
            model, multi_avg_fn=torch.optim.swa_utils.get_ema_multi_avg_fn(options.ema), use_buffers=True
        )
        if options.ema
        else None
    )
    scored = model if averaged is None else averaged.module

    stages = options.unfreeze_stages
    cache = None
    if arch == "gmic" and options.freeze_trunk:
        cache = _gmic_cache(model, split["train"], split[val_name], spec, options, log)

    def validate() -> float | None:
        if cache is not None:
            scores = _gmic_cached_scores(scored, cache, stages, options.batch_size)
            return _auc(scores[:, 1], [it.malignant for it in split[val_name]])
        if arch == "gmic":
            scores = _gmic_scores(scored, split[val_name], spec, options.batch_size)
            return _auc(scores[:, 1], [it.malignant for it in split[val_name]])
        val_exams = list(_exams(split[val_name]).values())
        val_labels = np.array([_dmv_labels(e) for e in val_exams]).reshape(-1, 4)
        return _dmv_auc(_dmv_val_probs(scored, val_exams, spec), val_labels)

    def keep_if_best(epoch: int, val_auc: float | None) -> bool:
        nonlocal best
        score = -1.0 if val_auc is None else val_auc
        if score > best[0] or best[1] is None:
            best = (score, _cpu_state(scored), epoch)
            return True
        return False

    if arch == "gmic":
        train_items = split["train"]
        flags = np.array([it.malignant for it in train_items])
        benign = np.array([it.benign for it in train_items])
        pos_w_benign = float(min(10.0, (benign == 0).sum() / max(1, benign.sum())))
        pw = torch.tensor([pos_w_benign, 1.0], device=device)
        n_epoch = options.samples_per_epoch or len(train_items)
        patch_windows: dict[tuple[str, int], tuple[np.ndarray, float, float]] = {}
    else:
        train_exams = list(_exams(split["train"]).values())
        if not train_exams:
            raise ModelError(f"{manifest}: no complete four-view exam in the train split")
        labels = np.array([_dmv_labels(e) for e in train_exams])
        flags = labels[:, 2:].max(axis=1)
        pos = labels.sum(axis=0)
        pos_w = torch.tensor(np.minimum(10.0, (len(labels) - pos) / np.maximum(pos, 1)), dtype=torch.float32)
        pos_w[2:] = 1.0  # malignant balanced by sampling
        pos_w = pos_w.to(device)
        n_epoch = options.samples_per_epoch or len(train_exams)

    frozen = arch == "dmv" and options.freeze_trunk
    dense_score = None
    if frozen:
        val_exams = list(_exams(split[val_name]).values())
        history, best = _train_dmv_top(model, spec, train_exams, val_exams, options, rng, log)
    elif options.dense_target:
        from core.models.dense_pretrain import train_dense

        history, best, dense_score = train_dense(model, spec, train_items, split[val_name], options, rng, log)
    elif options.init:
        val_auc = validate()
        history.append({"epoch": 0, "train_loss": None, "val_auc": _round(val_auc), "minutes": 0.0})
        keep_if_best(0, val_auc)
        log(f"epoch 0 (from {Path(options.init).name}): {val_name} malignant AUC {_round(val_auc)}")
    steps_per_epoch = -(-n_epoch // options.batch_size)
    opt = torch.optim.Adam(model.parameters(), lr=options.lr)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, _schedule(options.epochs * steps_per_epoch))

    def batch_loss(idx: np.ndarray, threads: ThreadPoolExecutor) -> Any:
        if arch == "gmic":
            masks = None
            if cache is not None:
                picks = [(_crop_index(train_items[i], rng, options.augment_prob), i) for i in idx]
                h, w, targets = cache.batch(picks, rng)
                masks = None if targets is None else targets.to(device)
                y = torch.tensor([[train_items[i].benign, train_items[i].malignant] for i in idx])
                out = _gmic_top(model, w.to(device), h.to(device), stages)
            else:
                if options.patch_size:
                    size, prob = options.patch_size, options.augment_prob
                    pairs = [_patch(train_items[i], spec, rng, size, prob, patch_windows) for i in idx]
                    x = np.stack([p for p, _ in pairs])
                    y = torch.tensor([lab for _, lab in pairs])
                else:
                    batch = [train_items[i] for i in idx]
                    with_masks = options.saliency_target > 0
                    x = _train_windows(batch, spec, rng, options.augment_prob, threads, with_masks)
                    y = torch.tensor([[it.benign, it.malignant] for it in batch])
                if x.ndim == 4:  # (N, 3, rows, cols): windows with their finding masks (--saliency-target)
                    x, masks = x[:, 0], torch.from_numpy(np.ascontiguousarray(x[:, 1:])).to(device)
                out = model(torch.from_numpy(np.ascontiguousarray(x))[:, None].to(device))
            y = y.to(device, torch.float32)
            loss = sum(_bce(out[k], y, pw) for k in ("y_fusion", "y_global", "y_local"))
            if masks is not None:
                loss = loss + options.saliency_target * saliency_target_loss(out["saliency_map"], masks)
            # GMIC's sparsity term: the mean saliency (both classes), which keeps the map off normal tissue
            return loss + options.saliency_l1 * out["saliency_map"].mean()
        exams = [train_exams[i] for i in idx]
        x = {
            v: _train_windows([e[v] for e in exams], spec, rng, options.augment_prob, threads)
            for v in pp.VIEWS
        }
        out = model({v: torch.from_numpy(a)[:, None].to(device) for v, a in x.items()})
        y = torch.tensor(np.array([_dmv_labels(e) for e in exams]), dtype=torch.float32).to(device)
        w = 1 + (pos_w - 1) * y
        # (N, 4, 2) log-probabilities of each head
        return sum(-(w * (y * out[h][..., 1] + (1 - y) * out[h][..., 0])).mean() for h in ("CC", "MLO"))

    with ThreadPoolExecutor(max(1, options.workers)) as threads:
        for epoch in range(1, 0 if frozen or dense_score is not None else options.epochs + 1):
            model.train()
            order = _balanced_order(flags, n_epoch, rng)
            losses = []
            for s in range(0, len(order), options.batch_size):
                loss = batch_loss(order[s : s + options.batch_size], threads)
                opt.zero_grad()
                loss.backward()
                opt.step()
                sched.step()
                if averaged is not None:
                    averaged.update_parameters(model)
                losses.append(loss.item())
            elapsed = (time.time() - t_start) / 60
            val_auc = validate()
            row = {
                "epoch": epoch,
                "train_loss": round(float(np.mean(losses)), 5),
                "val_auc": _round(val_auc),
                "minutes": round(elapsed, 2),
            }
            history.append(row)
            log(
                f"epoch {epoch}: loss {row['train_loss']:.4f}, {val_name} malignant AUC {row['val_auc']}, "
                f"{elapsed:.1f} min"
            )
            bad_epochs = 0 if keep_if_best(epoch, val_auc) else bad_epochs + 1
            if should_stop(bad_epochs, elapsed, options, log):
                break

    model.load_state_dict(best[1])
    model.eval()
    test_auc = test_breast_auc = None
    if split["test"]:
        if arch == "gmic":
            if dense_score is not None:  # the stage-3 score the dense stage was validated with
                malignant = dense_score(split["test"])
            else:
                malignant = _gmic_scores(model, split["test"], spec, options.batch_size)[:, 1]
            test_auc = _auc(malignant, [it.malignant for it in split["test"]])
            test_breast_auc = _breast_auc(split["test"], malignant)
        else:
            test_exams = list(_exams(split["test"]).values())
            crops = [{v: (e[v].crops[0], e[v].geometry) for v in pp.VIEWS} for e in test_exams]
            probs = predict_dmv_crops(model, crops, samples=options.test_samples, seed=0)
            test_auc = test_breast_auc = _dmv_auc(probs, np.array([_dmv_labels(e) for e in test_exams]))
    log(f"best epoch {best[2]} ({val_name} AUC {best[0]:.4f}); test malignant AUC {test_auc}")

    config["training"] = {
        "cohort": _cohort_name(options.cohort),
        "extra_train": [_cohort_name(c) for c in options.extra_train],
        "command": command_line(options),
        "seed": options.seed,
        "epochs_run": len(history),
        "best_epoch": best[2],
        "val_auc": None if best[0] < 0 else round(best[0], 4),
        "test_auc": None if test_auc is None else round(test_auc, 4),
        "test_auc_level": "image" if arch == "gmic" else "breast",
        "test_breast_auc": None if test_breast_auc is None else round(test_breast_auc, 4),
        "test_samples": options.test_samples if arch == "dmv" else 0,
        "augment": list(options.augment),
        "augment_prob": options.augment_prob if options.augment else 0.0,
        "patch_size": options.patch_size,
        "dense_target": options.dense_target,
        "init_trunk": Path(options.init_trunk).name if options.init_trunk else None,
        "freeze_trunk": options.freeze_trunk,
        "unfreeze_stages": options.unfreeze_stages,
        "n_train": len(split["train"]),
        "n_val": len(split["val"]),
        "n_test": len(split["test"]),
        "minutes": round((time.time() - t_start) / 60, 2),
        "device": torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu",
        "torch": str(torch.__version__),
        "options": {k: v for k, v in asdict(options).items() if k not in ("out",)},
    }
    out = Path(options.out)
    variant = "image-only" if arch == "dmv" else "resnet18"
    save_checkpoint(out, model, arch=arch, variant=variant, config=config, half=options.half)
    stem = out.with_suffix("")
    csv_path = stem.parent / f"{stem.name}-curves.csv"
    png = _write_curves(history, csv_path, stem.parent / f"{stem.name}-curves.png", f"{arch} {out.name}")
    return TrainResult(
        out, csv_path, png, history, None if best[0] < 0 else best[0], test_auc, test_breast_auc
    )


def _cohort_name(cohort: str) -> str:
    """A cohort as the training record names it: the synthetic cohort's name or the manifest's file name."""
    return Path(cohort).name if Path(cohort).suffix else cohort


def command_line(options: TrainOptions) -> str:
    """The ``mammo-robust train`` command that reproduces ``options``."""
    parts = ["mammo-robust", "train", options.arch, "--cohort", options.cohort]
    parts += ["--epochs", str(options.epochs), "--seed", str(options.seed), "--out", options.out]
    for item in options.augment:
        parts += ["--augment", item]
    for cohort in options.extra_train:
        parts += ["--extra-train", cohort]
    defaults = TrainOptions(arch=options.arch, out=options.out)
    names = ("lr", "batch_size", "spacing_mm", "augment_prob", "samples_per_epoch", "patience", "max_minutes")
    names += ("patch_size", "saliency_l1", "saliency_target", "ema", "init", "init_trunk", "unfreeze_stages")
    names += ("window_samples",)
    for name in (*names, "test_samples", "K", "threads"):
        value = getattr(options, name)
        if value != getattr(defaults, name):
            parts += [f"--{name.replace('_', '-')}", str(value)]
    if options.freeze_trunk:
        parts.append("--freeze-trunk")
    if options.dense_target:
        parts.append("--dense-target")
    if tuple(options.crop_shape) != tuple(defaults.crop_shape):
        parts += ["--crop-shape", "x".join(str(v) for v in options.crop_shape)]
    if options.input_size is not None:
        parts += ["--input-size", "x".join(str(v) for v in options.input_size["CC"])]
    return " ".join(parts)
