"""Training data: every image of a cohort read, resampled and cropped once, with a disk cache.

Each :class:`ImageItem` holds the crops of one image (the clean one, then one per ``augment``
perturbation, cropped with the geometry of the clean image; :func:`core.models.inputs.crop_for_model`), its
labels and split, and the cohort's ground-truth findings in the crop's frame. :func:`load_items` caches
the crops in ``data_dir()/train-cache`` as an ``.npz`` of plain arrays plus JSON metadata, read with
``allow_pickle=False``.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from core.models import ModelError
from core.models.inputs import EXAM_VIEWS, Geometry, crop_for_model, image_to_crop, pipeline_params


@dataclass
class ImageItem:
    """One training image: ids, view (``"L-CC"``...), split, labels, its crops and the clean geometry."""

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


def manifest_path(cohort: str) -> Path:
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


def extra_train_items(
    items: list[ImageItem], spec: Any, augment: list[tuple[str, float]], options: Any, log
) -> list[ImageItem]:
    """Every image of the ``options.extra_train`` cohorts, relabelled as training images. An exam id that is
    also in ``items`` (the main cohort) or in two of them is refused: it could leak a validation or test
    patient into training."""
    seen = {it.exam_id for it in items}
    out = []
    for cohort in options.extra_train:
        manifest = manifest_path(cohort)
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
    for r, c, pathology in findings:
        rr, cc = image_to_crop(r, c, shape, geo)
        out.append((float(rr), float(cc), pathology))
    return out


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


def exams(items: list[ImageItem]) -> dict[str, dict[str, ImageItem]]:
    """Exam id -> {view: item} of the exams that hold all four views."""
    exams: dict[str, dict[str, ImageItem]] = {}
    for it in items:
        exams.setdefault(it.exam_id, {})[it.view] = it
    return {k: v for k, v in exams.items() if all(view in v for view in EXAM_VIEWS)}
