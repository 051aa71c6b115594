"""The synthetic screening cohort: presets, exam sampling, generation and the on-disk cache.

A cohort folder holds ``manifest.csv`` (the format of :mod:`core.manifest`), ``findings.csv`` (ground truth),
``cohort.json`` (preset, seed, parameters) and ``images/<exam_id>/<image_id>.dcm``. Generation writes into a
temporary sibling folder and renames it into place at the end, so an interrupted run never leaves a folder
that looks complete.
"""

from __future__ import annotations

import ctypes
import fcntl
import json
import math
import os
import shutil
import tempfile
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from dataclasses import asdict, dataclass, replace
from pathlib import Path

import numpy as np
import pandas as pd

from core.errors import PhantomError
from core.phantom.anatomy import BreastShape, render_anatomy, view_geometry
from core.phantom.dicom import write_view
from core.phantom.findings import Finding, draw_finding, sample_finding

#: Bump when the rendering or the files change, so cached cohorts are regenerated (4: RLE pixel data).
GENERATOR_VERSION = 4
VIEW_ORDER = (("L", "CC"), ("R", "CC"), ("L", "MLO"), ("R", "MLO"))
FINDINGS_COLUMNS = (
    "exam_id", "image_id", "laterality", "view", "finding_id", "kind", "pathology", "row", "col",
    "diameter_mm", "part_of",
)  # fmt: skip


@dataclass(frozen=True)
class CohortPreset:
    """Parameters of a synthetic cohort.

    Attributes
    ----------
    name : str
    n_exams : int
        Four-view exams (one per patient).
    image_shape : (rows, cols)
        Detector size in pixels, same for CC and MLO.
    spacing_mm : float
        Detector pixel spacing (mm), isotropic.
    breast_scale : float
        Multiplies the sampled breast dimensions (1 = adult breasts of 7..11 cm depth).
    malignant_prevalence : float
        Fraction of exams with a malignant finding in one breast (0..1).
    benign_prevalence : float
        Fraction of breasts with a benign finding (0..1), independent of malignancy.
    split_fractions : (train, val, test)
        By patient, stratified by malignancy.
    workers : int
        Worker processes for generation.
    """

    name: str
    n_exams: int
    image_shape: tuple[int, int]
    spacing_mm: float = 0.1
    breast_scale: float = 1.0
    malignant_prevalence: float = 0.3
    benign_prevalence: float = 0.15
    split_fractions: tuple[float, float, float] = (0.7, 0.15, 0.15)
    workers: int = 2


# Spacing 0.1 mm: the coarse end of the 0.07..0.1 mm of FFDM detectors (GE Senographe). It keeps a realistic
# 200 x 128 mm field at 2000 x 1280 pixels, so 1280+ images generate in minutes; 0.1 mm calcifications are
# then one pixel wide, the hardest realistic case.
PRESETS: dict[str, CohortPreset] = {
    # tests: 6 exams of small breasts (about 40 x 55 mm) on an 80 x 52 mm field, still at 0.1 mm
    # (one malignant and one other exam in each split)
    "tiny": CohortPreset("tiny", 6, (800, 520), breast_scale=0.5, malignant_prevalence=0.5,
                         benign_prevalence=0.35, split_fractions=(0.34, 0.33, 0.33), workers=1),
    "demo": CohortPreset("demo", 300, (2000, 1280)),
}  # fmt: skip


@dataclass(frozen=True)
class ExamSpec:
    """Everything needed to render one exam; sampled up front so the output does not depend on workers."""

    index: int
    exam_id: str
    patient_id: str
    split: str
    shapes: dict[str, BreastShape]
    findings: dict[str, tuple[Finding, ...]]
    seed: int


def _breast_shape(rng: np.random.Generator, preset: CohortPreset) -> BreastShape:
    rows, cols = preset.image_shape
    s = preset.spacing_mm
    depth = rng.uniform(70, 112) * preset.breast_scale
    height = min(depth * rng.uniform(1.35, 1.75), 0.92 * rows * s)
    depth = min(depth, 0.88 * cols * s)
    return BreastShape(
        depth_mm=float(depth),
        height_mm=float(height),
        thickness_mm=float(rng.uniform(35, 65) * max(preset.breast_scale, 0.6)),
        density=float(rng.beta(2.2, 2.6)),
        squareness=float(rng.uniform(1.8, 2.6)),
        mlo_depth_scale=float(rng.uniform(1.03, 1.15)),
        pectoral_width_mm=float(rng.uniform(0.35, 0.6) * depth),
        pectoral_height_mm=float(rng.uniform(0.35, 0.6) * rows * s),
        wobble=(float(rng.uniform(0, 0.05)), float(rng.uniform(0, 6.3)), float(rng.uniform(0, 0.03)),
                float(rng.uniform(0, 6.3))),
        beta=float(np.clip(rng.normal(2.85, 0.1), 2.6, 3.1)),
    )  # fmt: skip


def _sibling(shape: BreastShape, rng: np.random.Generator) -> BreastShape:
    """The other breast of the same patient: the same within a few percent."""
    j = lambda: float(rng.uniform(0.96, 1.04))  # noqa: E731
    return replace(
        shape,
        depth_mm=shape.depth_mm * j(),
        height_mm=shape.height_mm * j(),
        wobble=(shape.wobble[0], float(rng.uniform(0, 6.3)), shape.wobble[2], float(rng.uniform(0, 6.3))),
    )


def _positions(rng: np.random.Generator, n: int) -> list[tuple[float, float, float]]:
    """n finding positions (u, a, z) apart from each other."""
    out: list[tuple[float, float, float]] = []
    while len(out) < n:
        p = (float(rng.uniform(0.3, 0.78)), float(rng.uniform(-0.6, 0.6)), float(rng.uniform(-0.6, 0.6)))
        if all(math.hypot(p[0] - q[0], p[1] - q[1]) > 0.3 for q in out) or len(out) > 50:
            out.append(p)
    return out


def _assign_splits(malignant: np.ndarray, fractions, rng: np.random.Generator) -> list[str]:
    """Split patients train/val/test, stratified by malignancy, with exact proportions per stratum."""
    splits = np.empty(len(malignant), dtype=object)
    for value in (False, True):
        idx = np.flatnonzero(malignant == value)
        idx = idx[rng.permutation(len(idx))]
        n_val = int(round(fractions[1] * len(idx)))
        n_test = int(round(fractions[2] * len(idx)))
        splits[idx[:n_test]] = "test"
        splits[idx[n_test : n_test + n_val]] = "val"
        splits[idx[n_test + n_val :]] = "train"
    return list(splits)


def sample_exams(preset: CohortPreset, seed: int = 0) -> list[ExamSpec]:
    """Sample the patients, breasts, findings and splits of a cohort (no rendering)."""
    master = np.random.default_rng([seed, 7919])
    n = preset.n_exams
    n_malignant = int(round(preset.malignant_prevalence * n))
    malignant = np.zeros(n, dtype=bool)
    malignant[master.permutation(n)[:n_malignant]] = True
    splits = _assign_splits(malignant, preset.split_fractions, master)
    exams = []
    for i in range(n):
        rng = np.random.default_rng([seed, i, 1])
        exam_id = f"SYN{seed:03d}-E{i:04d}"
        left = _breast_shape(rng, preset)
        shapes = {"L": left, "R": _sibling(left, rng)}
        kinds: dict[str, list[str]] = {"L": [], "R": []}
        if malignant[i]:
            side = "L" if rng.uniform() < 0.5 else "R"
            r = rng.uniform()
            kinds[side] += ["calc_cluster"] if r < 0.5 else ["spiculated_mass"] if r < 0.85 else [
                "calc_cluster", "spiculated_mass"]  # fmt: skip
        for side in ("L", "R"):
            if rng.uniform() < preset.benign_prevalence:
                kinds[side].append("round_mass" if rng.uniform() < 0.55 else "coarse_calcs")
        findings = {}
        for side in ("L", "R"):
            pos = _positions(rng, len(kinds[side]))
            findings[side] = tuple(
                sample_finding(rng, kind, f"{exam_id}-{side}{k}", *p)
                for k, (kind, p) in enumerate(zip(kinds[side], pos, strict=True))
            )
        exams.append(
            ExamSpec(
                i, exam_id, f"SYN{seed:03d}-P{i:04d}", splits[i], shapes, findings, int(rng.integers(2**31))
            )
        )
    return exams


def render_view(
    spec: ExamSpec, laterality: str, view: str, preset: CohortPreset
) -> tuple[np.ndarray, list[dict]]:
    """Render one view of an exam.

    Returns
    -------
    stored : uint16 (rows, cols)
        12-bit values (0..4095), background exactly 0, stored orientation (left views face right,
        right views face left).
    records : list of dict
        Ground truth of the findings drawn (row, col in stored pixel coordinates).
    """
    view_seed = VIEW_ORDER.index((laterality, view))
    rng = np.random.default_rng([spec.seed, view_seed])
    shape = spec.shapes[laterality]
    geom = view_geometry(shape, view, preset.image_shape, preset.spacing_mm, rng)
    pixels, mask = render_anatomy(geom, shape, rng)
    records: list[dict] = []
    for finding in spec.findings[laterality]:
        records += draw_finding(pixels, mask, geom, finding, view_seed)
    # detector noise: quantum (variance proportional to signal) plus electronic; the texture's rare negative
    # tails (< -53) made the variance negative and the pixel NaN before the signal was floored at 0 here
    noise = rng.standard_normal(pixels.shape, dtype=np.float32)
    std = np.maximum(pixels, np.float32(0.0))
    std *= np.float32(0.3)
    std += np.float32(16.0)
    np.sqrt(std, out=std)
    noise *= std
    pixels += noise
    np.clip(pixels, 1.0, 4095.0, out=pixels)
    np.multiply(pixels, mask, out=pixels)  # background exactly 0
    np.rint(pixels, out=pixels)
    if laterality == "R":
        pixels = pixels[:, ::-1]
    stored = pixels.astype(np.uint16, order="C")
    if laterality == "R":
        for rec in records:
            rec["col"] = preset.image_shape[1] - 1 - rec["col"]
    return stored, records


def _keep_freed_memory() -> None:
    """Worker initialiser: let glibc reuse freed image-sized blocks instead of returning them to the OS.

    Each view allocates a few dozen 10 MB float32 arrays; by default glibc maps and unmaps each one, and the
    kernel zero-fills every fresh page (about 10% of the generation time went to page faults). Output bytes
    are unchanged. No-op where glibc is absent.
    """
    try:
        libc = ctypes.CDLL("libc.so.6")
    except OSError:
        return
    m_trim_threshold, m_mmap_threshold = -1, -3
    libc.mallopt(m_mmap_threshold, 256 * 1024 * 1024)
    libc.mallopt(m_trim_threshold, 512 * 1024 * 1024)


def _render_exam(args: tuple[ExamSpec, CohortPreset, str, str, str]) -> tuple[list[dict], list[dict]]:
    """Worker: render and write the four views of one exam; return manifest rows and findings rows."""
    spec, preset, out_dir, cohort_key, compression = args
    folder = Path(out_dir) / "images" / spec.exam_id
    folder.mkdir(parents=True, exist_ok=True)
    rows, found = [], []
    for k, (lat, view) in enumerate(VIEW_ORDER):
        image_id = f"{spec.exam_id}-{lat}-{view}"
        stored, records = render_view(spec, lat, view, preset)
        rel = f"images/{spec.exam_id}/{image_id}.dcm"
        write_view(
            Path(out_dir) / rel, stored, spacing_mm=preset.spacing_mm, laterality=lat, view=view,
            exam_id=spec.exam_id, patient_id=spec.patient_id, image_id=image_id, instance_number=k + 1,
            cohort_key=cohort_key, compression=compression,
        )  # fmt: skip
        kinds = {f.kind for f in spec.findings[lat]}
        rows.append({
            "image_id": image_id, "exam_id": spec.exam_id, "patient_id": spec.patient_id,
            "laterality": lat, "view": view, "path": rel,
            "spacing_row_mm": preset.spacing_mm, "spacing_col_mm": preset.spacing_mm,
            "label_benign": int(bool(kinds & {"round_mass", "coarse_calcs"})),
            "label_malignant": int(bool(kinds & {"calc_cluster", "spiculated_mass"})),
            "split": spec.split,
        })  # fmt: skip
        for rec in records:
            found.append(
                {"exam_id": spec.exam_id, "image_id": image_id, "laterality": lat, "view": view, **rec}
            )
    return rows, found


def generate_cohort(
    preset: str | CohortPreset,
    out_dir: str | Path,
    seed: int = 0,
    *,
    workers: int | None = None,
    progress: Callable[[int, int], None] | None = None,
    compression: str = "rle",
) -> Path:
    """Generate a synthetic cohort into ``out_dir`` (created; must not hold a cohort already).

    Parameters
    ----------
    preset : str or CohortPreset
        ``"tiny"`` or ``"demo"`` (see :data:`PRESETS`), or custom parameters.
    out_dir : path
        Target folder. Written atomically: a temporary sibling is renamed into place at the end.
    seed : int
        Same seed, same bytes.
    workers : int, optional
        Worker processes (default: the preset's).
    progress : callable(done, total), optional
        Called with the exams written so far (in the calling thread, after each exam), e.g. to draw a
        progress line or bar.
    compression : {"rle", "jpeg2000", "none"}
        Lossless encoding of the pixel data (:data:`core.phantom.dicom.COMPRESSIONS`); the pixel values
        do not depend on it. RLE (default): the demo cohort takes about 1.8 GB instead of 5.8 GB.

    Returns
    -------
    Path
        ``out_dir / "manifest.csv"``.
    """
    from core.phantom.dicom import COMPRESSIONS

    if isinstance(preset, str):
        if preset not in PRESETS:
            raise PhantomError(f"unknown cohort preset {preset!r}; choose one of {', '.join(PRESETS)}")
        preset = PRESETS[preset]
    if compression not in COMPRESSIONS:
        raise PhantomError(f"unknown compression {compression!r}; choose one of {', '.join(COMPRESSIONS)}")
    out_dir = Path(out_dir).expanduser()
    if (out_dir / "manifest.csv").exists():
        raise PhantomError(f"{out_dir}: already holds a cohort (manifest.csv); choose an empty folder")
    if out_dir.exists() and any(out_dir.iterdir()):
        raise PhantomError(f"{out_dir}: folder exists and is not empty")
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    cohort_key = f"{preset.name}-{seed}-v{GENERATOR_VERSION}"
    specs = sample_exams(preset, seed)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out_dir.name}.partial-", dir=out_dir.parent))
    try:
        jobs = [(spec, preset, str(tmp), cohort_key, compression) for spec in specs]
        results = _render_all(jobs, max(1, workers if workers is not None else preset.workers), progress)
        _write_tables(tmp, results, preset, seed, compression)
        if out_dir.exists():
            out_dir.rmdir()
        os.replace(tmp, out_dir)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return out_dir / "manifest.csv"


def _render_all(jobs: list, n_workers: int, progress: Callable[[int, int], None] | None) -> list:
    """The rendered exams (manifest rows, findings) in exam order, in ``n_workers`` processes."""
    results = []
    if n_workers == 1:
        for k, res in enumerate(map(_render_exam, jobs)):
            results.append(res)
            if progress:
                progress(k + 1, len(jobs))
        return results
    with ProcessPoolExecutor(n_workers, initializer=_keep_freed_memory) as pool:
        for k, res in enumerate(pool.map(_render_exam, jobs, chunksize=4)):
            results.append(res)
            if progress:
                progress(k + 1, len(jobs))
    return results


def _write_tables(tmp: Path, results: list, preset: CohortPreset, seed: int, compression: str) -> None:
    """Writes ``findings.csv``, ``cohort.json`` and, last (marking a complete cohort), ``manifest.csv``."""
    from core.manifest import write_manifest

    manifest = pd.DataFrame([row for rows, _ in results for row in rows])
    findings = pd.DataFrame([rec for _, recs in results for rec in recs], columns=list(FINDINGS_COLUMNS))
    findings["row"] = findings["row"].astype(float).round(2)
    findings["col"] = findings["col"].astype(float).round(2)
    findings["diameter_mm"] = findings["diameter_mm"].astype(float).round(3)
    findings.to_csv(tmp / "findings.csv", index=False)
    info = {"preset": asdict(preset), "seed": seed, "generator_version": GENERATOR_VERSION,
            "n_exams": len(results), "n_images": len(manifest), "compression": compression}  # fmt: skip
    (tmp / "cohort.json").write_text(json.dumps(info, indent=2) + "\n")
    write_manifest(manifest, tmp / "manifest.csv")


def cohort_dir(preset: str, seed: int = 0) -> Path:
    """Where :func:`ensure_cohort` keeps a cohort: ``data_dir()/cohorts/<preset>-<seed>``."""
    from core.paths import data_dir

    return data_dir() / "cohorts" / f"{preset}-{seed}"


def cohort_ready(preset: str = "demo", seed: int = 0) -> bool:
    """Whether :func:`ensure_cohort` would return at once (the cohort is on disk, made by this generator
    version); False means that calling it generates the cohort first (minutes for ``"demo"``)."""
    folder = cohort_dir(preset, seed)
    return (folder / "manifest.csv").is_file() and _version_ok(folder)


def ensure_cohort(
    preset: str = "demo",
    seed: int = 0,
    *,
    progress: Callable[[int, int], None] | None = None,
    workers: int | None = None,
) -> Path:
    """The manifest of a built-in synthetic cohort, generating the cohort on first use.

    Concurrent callers (several processes) wait on a lock file instead of generating twice. A cached cohort
    made by another generator version is regenerated. ``workers``: processes that generate (default: the
    preset's); the files do not depend on it. ``progress(done, total)`` is called after each exam written
    (only when the cohort is generated; see :func:`cohort_ready`).

    Returns
    -------
    Path
        ``data_dir()/cohorts/<preset>-<seed>/manifest.csv``.
    """
    if preset not in PRESETS:
        raise PhantomError(f"unknown cohort preset {preset!r}; choose one of {', '.join(PRESETS)}")
    folder = cohort_dir(preset, seed)
    manifest = folder / "manifest.csv"
    if manifest.is_file() and _version_ok(folder):
        return manifest
    folder.parent.mkdir(parents=True, exist_ok=True)
    with open(folder.parent / f".{folder.name}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            if manifest.is_file() and _version_ok(folder):
                return manifest
            # Holding the lock, no one else is generating this cohort: leftovers of a killed run (hidden
            # partial folders, several GB each for the demo) and of an old version can go.
            for leftover in folder.parent.glob(f".{folder.name}.partial-*"):
                shutil.rmtree(leftover, ignore_errors=True)
            if folder.exists():
                stale = folder.with_name(f".{folder.name}.stale-{os.getpid()}")
                os.replace(folder, stale)
                shutil.rmtree(stale, ignore_errors=True)
            return generate_cohort(preset, folder, seed, workers=workers, progress=progress)
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


def _version_ok(folder: Path) -> bool:
    try:
        info = json.loads((folder / "cohort.json").read_text())
    except (OSError, ValueError):
        return False
    return info.get("generator_version") == GENERATOR_VERSION
