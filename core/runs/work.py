"""The work of a run as plain functions of their inputs.

:func:`score_items` turns a batch of work items (an image for GMIC, a four-view exam for DMV) and a list of
conditions into score rows; :func:`change_norms` is the first pass of the matched baseline. Neither touches
the store, so a distributed engine can map them over batches and reduce the results.

Per image: the mammogram is loaded once and perturbed through one :class:`core.perturb.PreparedImage`,
whose Fourier spectrum is computed at most once and reused for every low-/high-pass radius. The model side
is one call per architecture of :mod:`core.models`: :func:`core.models.predict.prepare_unit` turns an image
(GMIC) or exam (DMV) and its perturbed versions into model inputs (the crop and window position of the
clean image reused for every condition), :func:`core.models.forward.score_units` forwards them
``batch_size`` at a time and names the results. This module knows nothing of views, windows or label
layouts: it loads, perturbs, runs threads and writes rows.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, replace

import numpy as np
import pandas as pd

from core.lookahead import ordered_map
from core.metrics.scores import UNPERTURBED
from core.runs.config import RunError
from core.runs.failures import ItemFailure, describe, error_records, unit_errors
from core.runs.grid import Condition, image_seed, norm_key
from core.runs.stream import Stopped, Stream, n_workers


@dataclass(frozen=True)
class ImageRow:
    """One manifest row: what a worker needs to load and label an image (cohort ids only)."""

    image_id: str
    exam_id: str
    laterality: str
    view: str
    path: str
    spacing_mm: tuple[float, float]
    label_benign: int | None  # None: unknown (e.g. not biopsied); stored as NULL, left out of AUCs
    label_malignant: int | None


@dataclass(frozen=True)
class WorkItem:
    """The unit of work: one image (GMIC) or one exam's four views in the model's order (DMV)."""

    key: str
    images: tuple[ImageRow, ...]

    @property
    def units(self) -> list[str]:
        """Keys of the score rows it yields per condition: the image id, or ``exam|L`` and ``exam|R``."""
        if len(self.images) == 1:
            return [self.images[0].image_id]
        return [f"{self.key}|L", f"{self.key}|R"]


@dataclass
class Timings:
    """Seconds spent, summed over calls: model forward passes, and everything (load, perturb, prepare)."""

    forward_s: float = 0.0
    total_s: float = 0.0
    n_inputs: int = 0
    n_images: int = 0
    extra: dict = field(default_factory=dict)


def _label(value) -> int | None:
    """0 or 1; None when the manifest leaves the label empty (unknown), never a silent 0."""
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return None if number != number else int(number)


def work_items(
    manifest: pd.DataFrame, model: str, *, max_images: int | None = None
) -> tuple[list[WorkItem], list[str]]:
    """Work items from a manifest (as :func:`core.manifest.read_manifest` returns it), in manifest order.

    DMV exams lacking one of the four views are left out and reported in the returned list of problems.
    """
    rows = []
    for r in manifest.itertuples(index=False):
        rows.append(
            ImageRow(
                image_id=str(r.image_id),
                exam_id=str(r.exam_id),
                laterality=str(r.laterality),
                view=str(r.view),
                path=str(r.path),
                spacing_mm=(float(r.spacing_row_mm), float(r.spacing_col_mm)),
                label_benign=_label(r.label_benign),
                label_malignant=_label(r.label_malignant),
            )
        )
    from core.models.predict import UNIT_VIEWS

    problems: list[str] = []
    unit_views = UNIT_VIEWS[model]
    if unit_views is None:
        items = [WorkItem(r.image_id, (r,)) for r in rows]
        return (items if max_images is None else items[:max_images]), problems
    exams: dict[str, dict[str, ImageRow]] = {}
    for r in rows:
        exams.setdefault(r.exam_id, {}).setdefault(f"{r.laterality}-{r.view}", r)
    items = []
    for exam_id, views in exams.items():
        missing = [v for v in unit_views if v not in views]
        if missing:
            problems.append(
                f"exam {exam_id}: missing view(s) {', '.join(missing)}; left out of the {model.upper()} run"
            )
            continue
        items.append(WorkItem(exam_id, tuple(views[v] for v in unit_views)))
    if max_images is not None:
        items = items[: max(1, max_images // 4)]
    return items, problems


def _load(row: ImageRow):
    from core.imaging import load_mammogram

    mam = load_mammogram(row.path, spacing_mm=row.spacing_mm, name=row.image_id)
    # The manifest is the authority on laterality and view (files may carry neither).
    return replace(mam, laterality=row.laterality, view=row.view)


def _pixels(image, cond: Condition, image_id: str) -> np.ndarray:
    """One image (a :class:`core.perturb.PreparedImage`) under one condition, in model units: the image
    itself when unperturbed, else the registry perturbation or the matched noise with the image's seed."""
    from core.perturb import PERTURBATIONS

    if cond.perturbation == UNPERTURBED:
        return image.pixels
    seed = image_seed(cond.seed, image_id)
    if cond.is_matched:
        return image.matched_noise(cond.parameter, seed=seed)
    if cond.perturbation not in PERTURBATIONS:
        raise RunError(f"unknown perturbation {cond.perturbation!r}")
    return image.apply(cond.perturbation, cond.parameter, seed=seed)


def _prepared(row: ImageRow):
    """The row's mammogram and its :class:`core.perturb.PreparedImage` (one FFT at most, one thread)."""
    from core.perturb import PreparedImage

    mam = _load(row)
    return mam, PreparedImage(mam.pixels, mam.spacing_mm, workers=1)


def image_norms(row: ImageRow, targets: Sequence[Condition]) -> list[float] | None:
    """``||P(x) - x||_2`` of one image for each target condition (model units;
    :meth:`core.perturb.PreparedImage.change_norm`: the ideal filters by Parseval, without inverse FFT);
    None when the image cannot be read or perturbed (the scoring pass records it as an error)."""
    try:
        _, image = _prepared(row)
        return [
            image.change_norm(c.perturbation, c.parameter, seed=image_seed(c.seed, row.image_id))
            for c in targets
        ]
    except Exception:  # the image's failure is recorded when it is scored; it just adds no norm
        return None


def change_norms(
    items: Iterable[WorkItem],
    targets: Sequence[Condition],
    *,
    workers: int | None = None,
    should_stop: Callable[[], bool] | None = None,
) -> dict[str, tuple[float, int]] | None:
    """First pass of the matched baseline: per target, the sum of ``||P(x) - x||_2`` and the image count.

    Returns ``{norm_key: (sum of norms, number of images)}`` so that partial results over batches add up;
    the mean is ``sum / count``. Images that cannot be read are left out of both (they become error rows
    when the run scores them). Images are perturbed in ``workers`` threads; the sums are taken in image
    order, so the result does not depend on the number of threads. ``should_stop()`` is asked as each
    image's norms arrive (a cancelled run at 0.1 mm would otherwise wait minutes for this pass): True gives
    None, after at most ``workers`` more images.
    """
    rows = [row for item in items for row in item.images]
    out: dict[str, list] = {}
    n = n_workers(workers)
    with ThreadPoolExecutor(max_workers=n) as pool:
        for norms in ordered_map(pool, lambda r: image_norms(r, targets), rows, n):
            if should_stop is not None and should_stop():
                return None
            if norms is None:
                continue
            for cond, norm in zip(targets, norms, strict=True):
                acc = out.setdefault(norm_key(cond), [0.0, 0])
                acc[0] += norm
                acc[1] += 1
    return {k: (v[0], v[1]) for k, v in out.items()}


def score_rows(arch: str, weights: str, item: WorkItem, scores) -> tuple[list[dict], list[dict]]:
    """Score rows of one item from its named results (:class:`core.models.forward.Score`, whose version is
    the :class:`Condition`): one per image (a one-image item) or per breast (an exam); a non-finite score
    becomes an error record of its key instead."""
    out, errors = [], []
    for score in scores:
        cond = score.version
        if not (math.isfinite(score.benign) and math.isfinite(score.malignant)):
            errors += unit_errors(
                item, cond, arch=arch, weights_label=weights, stage="score", lateralities=[score.laterality],
                message=f"{_item_name(item)}: the model gave a non-finite score under {cond.key}",
            )  # fmt: skip
            continue
        if len(item.images) == 1:
            img = item.images[0]
            exam_id, image_id, lat, view, unit = (
                img.exam_id,
                img.image_id,
                img.laterality,
                img.view,
                img.image_id,
            )
            labels = (img.label_benign, img.label_malignant)
        else:
            exam_id, image_id, lat, view = item.key, "", score.laterality, ""
            unit, labels = f"{item.key}|{lat}", _breast_labels(item, lat)
        out.append(
            {
                "model": arch,
                "weights": weights,
                "perturbation": cond.perturbation,
                "severity": cond.severity,
                "parameter": cond.parameter,
                "seed": cond.seed,
                "exam_id": exam_id,
                "image_id": image_id,
                "laterality": lat,
                "view": view,
                "label_benign": labels[0],
                "label_malignant": labels[1],
                "score_benign": float(score.benign),
                "score_malignant": float(score.malignant),
                "condition": cond.key,
                "unit": unit,
            }
        )
    return out, errors


def _item_name(item: WorkItem) -> str:
    return f"image {item.key}" if len(item.images) == 1 else f"exam {item.key}"


@dataclass
class BatchResult:
    """What scoring some work items gave: score rows, error records (keys that could not be scored, see
    :mod:`core.runs.failures`), and whether it stopped early on request."""

    rows: list[dict] = field(default_factory=list)
    errors: list[dict] = field(default_factory=list)
    stopped: bool = False


def score_batch(
    model,
    items: Sequence[WorkItem],
    conditions: Sequence[Condition],
    *,
    weights_label: str,
    batch_size: int = 8,
    dmv_samples: int = 0,
    timings: Timings | None = None,
    should_stop: Callable[[], bool] | None = None,
    prep_workers: int | None = None,
    on_item: Callable[[WorkItem, list[dict], list[dict]], None] | None = None,
) -> BatchResult:
    """Score every item under every condition; an item that cannot be scored gives error records instead.

    An image that cannot be read (stage ``read``), that the model cannot use (``prepare``) or whose forward
    pass fails or gives a non-finite score (``score``) does not stop the others: its keys get error records
    (:func:`core.runs.failures.error_records`). The forward batches do not depend on the threads, and an
    item that fails before the model takes no place in them (:class:`core.runs.stream.Stream`).

    Parameters
    ----------
    model : torch.nn.Module
        From :func:`core.models.create_model`, with ``model.spec``.
    items, conditions : sequences of WorkItem and Condition
    weights_label : str
        Value of the ``weights`` column.
    batch_size : int
        Model inputs per forward pass (GMIC), augmented samples per pass (DMV).
    dmv_samples : int
        DMV augmented windows per view; 0 = one centred window. Seed 0 for every condition.
    timings : Timings, optional
        Accumulates forward and total seconds (``on_item`` excluded).
    should_stop : callable, optional
        Polled between images; True: return early (``stopped``) with what was settled until then.
    prep_workers : int, optional
        Threads that load, perturb and prepare images ahead of the model (default min(4, CPUs), at most 2
        for exams); the rows do not depend on it.
    on_item : callable, optional
        ``on_item(item, rows, errors)`` as soon as an item is settled (scored or failed), in this thread:
        where a worker writes the item and reports progress per image or exam.

    Returns
    -------
    BatchResult
        ``rows``: scores-table columns plus ``condition`` (:attr:`Condition.key`) and ``unit`` (image id, or
        ``exam|L`` / ``exam|R``); ``errors`` keyed the same way. Same inputs give the same rows.
    """
    from core.models.predict import RESULT_LEVEL

    t_start = time.perf_counter()
    timings = timings if timings is not None else Timings()
    spec = model.spec
    if spec.arch not in RESULT_LEVEL:
        raise RunError(f"unknown model architecture {spec.arch!r}")
    result = BatchResult()

    def prepare(item: WorkItem):
        return prepare_item(item, conditions, spec, dmv_samples=dmv_samples)

    stream = Stream(model, items, prepare, batch_size, timings, should_stop, prep_workers)
    try:
        for item, outcome in stream:
            if isinstance(outcome, ItemFailure):
                rows, errors = [], error_records(
                    item, conditions, arch=spec.arch, weights_label=weights_label, stage=outcome.stage,
                    message=outcome.message, image_id=outcome.image_id,
                )  # fmt: skip
            else:
                rows, errors = score_rows(spec.arch, weights_label, item, outcome)
            result.rows.extend(rows)
            result.errors.extend(errors)
            if on_item is not None:
                t_item = time.perf_counter()
                on_item(item, rows, errors)
                t_start += time.perf_counter() - t_item  # the caller's time (its store writes) is not ours
    except Stopped:
        result.stopped = True
    timings.total_s += time.perf_counter() - t_start
    return result


def score_items(model, items: Sequence[WorkItem], conditions: Sequence[Condition], **options) -> list[dict]:
    """The score rows of :func:`score_batch` (same parameters); an empty list when it stopped early.

    Raises
    ------
    RunError
        An item could not be scored (the first error's message); a run uses :func:`score_batch`, which
        keeps such items as error records and goes on.
    """
    result = score_batch(model, items, conditions, **options)
    if result.errors:
        raise RunError(result.errors[0]["message"])
    return [] if result.stopped else result.rows


def _attempt(image_id: str, stage: str, fn, *args, **kwargs):
    """``fn(*args, **kwargs)``, any failure turned into an :class:`ItemFailure` of the image and stage."""
    try:
        return fn(*args, **kwargs)
    except Exception as exc:  # one image's failure, whatever it is, must not stop the run
        raise ItemFailure(image_id, stage, describe(exc)) from exc


def prepare_item(item: WorkItem, conditions: Sequence[Condition], spec, *, dmv_samples: int = 0):
    """The model inputs of one item under every condition, without a model (both engines call this):
    each image loaded once and perturbed through one :class:`core.perturb.PreparedImage`, then
    :func:`core.models.predict.prepare_unit` (``GmicInputs`` or ``DmvInputs``, plain picklable arrays).

    Raises :class:`core.runs.failures.ItemFailure` (the image, the stage ``read`` or ``prepare``, and a
    message naming the image) when an image cannot be read or prepared.
    """
    from core.models.predict import prepare_unit

    images, inputs = [], []
    for r in item.images:
        mam, image = _attempt(r.image_id, "read", _prepared, r)
        images.append(image)
        inputs.append(_attempt(r.image_id, "prepare", _image_inputs, mam, spec, r))
    versions = (
        (c, [_pixels(image, c, r.image_id) for image, r in zip(images, item.images, strict=True)])
        for c in conditions
    )
    single = item.images[0].image_id if len(item.images) == 1 else ""
    return _attempt(single, "prepare", prepare_unit, inputs, versions, samples=dmv_samples, seed=0)


def _breast_labels(item: WorkItem, lat: str) -> tuple[int, int]:
    views = [r for r in item.images if r.laterality == lat]

    def known_max(values):
        known = [v for v in values if v is not None]
        return max(known) if known else None

    return known_max(r.label_benign for r in views), known_max(r.label_malignant for r in views)


def _image_inputs(mam, spec, row: ImageRow):
    """The model-input preparation of one clean image (its crop and window position, reused for every
    condition); a :class:`RunError` naming the image when the model cannot use it."""
    from core.errors import ExplorerError
    from core.models.inputs import ImageInputs

    try:
        return ImageInputs(mam, spec)
    except ExplorerError as exc:
        raise RunError(f"image {row.image_id}: cannot be prepared for the model ({exc})") from exc
