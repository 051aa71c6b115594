"""Forward passes: GMIC and DMV on batches of prepared inputs, and the named results they give.

The inputs come from :mod:`core.models.inputs` (plain arrays, made without a model); nothing here crops,
resamples or standardises. :func:`score_units` is the batched forward pass over a stream of prepared
scoring units (images for GMIC, exams for DMV) that :mod:`core.runs` and the scoring calls of
:mod:`core.models.predict` use; :func:`gmic_forward` and :func:`dmv_forward` are single forward passes on a
batch that may come from several images or exams.

Label layout of DMV (the official one): ``left_benign, right_benign, left_malignant, right_malignant``
(:data:`DMV_LABELS`); :func:`breast_scores` turns it into named per-breast results.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable, Hashable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from core.errors import ModelError
from core.models.inputs import EXAM_VIEWS, DmvInputs, GmicInputs

DMV_LABELS = ("left_benign", "right_benign", "left_malignant", "right_malignant")


@dataclass(frozen=True)
class Score:
    """The benign and malignant probabilities (0..1) of one image (GMIC) or one breast (DMV) under one
    pixel version.

    ``version`` is the caller's key of the pixel version; ``laterality`` is ``"L"`` or ``"R"``: the image's
    for GMIC, the breast's for DMV.
    """

    version: Hashable
    laterality: str
    benign: float
    malignant: float


def model_device(model: Any) -> Any:
    """The torch device of a model's parameters (the CPU for a model without any)."""
    import torch

    try:
        return next(model.parameters()).device
    except StopIteration:
        return torch.device("cpu")


def gmic_forward(model: Any, inputs: np.ndarray) -> np.ndarray:
    """GMIC ``y_fusion`` for a batch of prepared inputs ``(N, H, W)``: (N, 2) [benign, malignant] float64."""
    return gmic_outputs(model, inputs)["y_fusion"]


#: GMIC outputs that say where the model looked (:func:`gmic_outputs`, ``core.models.explain``).
GMIC_EXPLAIN_OUTPUTS = ("y_fusion", "saliency_map", "patch_locations", "patch_attns")


def gmic_outputs(
    model: Any, inputs: np.ndarray, keys: Iterable[str] = ("y_fusion",)
) -> dict[str, np.ndarray]:
    """Outputs ``keys`` of one GMIC forward pass on a batch of prepared inputs ``(N, H, W)``, as arrays.

    The one GMIC forward pass of the package: :func:`gmic_forward` (the scores) and the explanations of
    ``core.models.explain`` both go through it, so they see the same computation. ``y_fusion`` comes back
    as float64 (exactly the float32 values), ``patch_locations`` as int64, other outputs as float32
    (see :class:`core.models.gmic.GMIC` for their shapes).
    """
    import torch

    x = torch.from_numpy(np.ascontiguousarray(inputs, dtype=np.float32))[:, None]
    with torch.inference_mode():
        out = model(x.to(model_device(model)))
    result = {}
    for key in keys:
        value = out[key]
        if key == "y_fusion":
            value = value.double()
        elif value.is_floating_point():
            value = value.float()
        result[key] = value.cpu().numpy()
    return result


def dmv_forward(model: Any, inputs: Mapping[str, np.ndarray]) -> np.ndarray:
    """DMV per-sample probabilities (N, 4) from inputs {view: (N, H, W)}: mean of the CC and MLO heads, in
    the label order :data:`DMV_LABELS`."""
    import torch

    dev = model_device(model)
    batch = {
        v: torch.from_numpy(np.ascontiguousarray(inputs[v], dtype=np.float32))[:, None].to(dev)
        for v in EXAM_VIEWS
    }
    with torch.inference_mode():
        out = model(batch)
    cc = torch.exp(out["CC"][..., 1]).double()
    mlo = torch.exp(out["MLO"][..., 1]).double()
    return ((cc + mlo) / 2).cpu().numpy()


def dmv_mean_probs(
    model: Any,
    windows: Mapping[str, np.ndarray],
    *,
    batch_size: int,
    on_forward: Callable[[float, int], None] | None = None,
) -> np.ndarray:
    """The mean over samples of :func:`dmv_forward` for one exam's windows ``{view: (n, H, W)}``: (4,)
    float64, forwarded ``batch_size`` samples at a time (the sums are taken per batch, then added)."""
    n = len(windows[EXAM_VIEWS[0]])
    total = np.zeros(4)
    for start in range(0, n, batch_size):
        chunk = {v: windows[v][start : start + batch_size] for v in EXAM_VIEWS}
        t0 = time.perf_counter()
        total += dmv_forward(model, chunk).sum(axis=0)
        if on_forward is not None:
            on_forward(time.perf_counter() - t0, 4 * len(chunk[EXAM_VIEWS[0]]))
    return total / n


def breast_scores(version: Hashable, probs: np.ndarray) -> list[Score]:
    """Named results of one DMV exam from its probabilities in :data:`DMV_LABELS` order: left, then right."""
    return [
        Score(version, "L", float(probs[0]), float(probs[2])),
        Score(version, "R", float(probs[1]), float(probs[3])),
    ]


def score_units(
    model: Any,
    units: Iterable[tuple[Any, GmicInputs | DmvInputs]],
    *,
    batch_size: int = 8,
    on_forward: Callable[[float, int], None] | None = None,
) -> Iterator[tuple[Any, list[Score]]]:
    """Score a stream of prepared units, in order: yields ``(tag, scores)`` per ``(tag, inputs)`` unit.

    GMIC: the windows of consecutive units are forwarded ``batch_size`` at a time (a batch may span units,
    so the batches, and hence the scores, depend only on the order of the windows); a unit is yielded once
    all its windows are scored, with one :class:`Score` per version. DMV: per version, the samples of the
    exam's windows ``batch_size`` at a time (:func:`dmv_mean_probs`), two scores (left, right breast) per
    version. The stream is read lazily, so the units can be prepared in other threads meanwhile.
    ``on_forward(seconds, n_inputs)`` is called after every forward pass (``n_inputs``: images fed).
    """
    if batch_size < 1:
        raise ModelError(f"score_units: batch_size must be >= 1, got {batch_size}")
    arch = model.spec.arch
    if arch == "dmv":
        for tag, unit in units:
            scores = []
            for i, version in enumerate(unit.versions):
                p = dmv_mean_probs(model, unit.windows(i), batch_size=batch_size, on_forward=on_forward)
                scores += breast_scores(version, p)
            yield tag, scores
        return
    if arch != "gmic":
        raise ModelError(f"score_units: unknown model architecture {arch!r}")
    waiting: deque[tuple[Any, GmicInputs, list]] = deque()  # units with windows still to score, in order
    pending: list[tuple[list, int, np.ndarray]] = []  # (the unit's results, version index, window)

    def flush() -> None:
        t0 = time.perf_counter()
        probs = gmic_forward(model, np.stack([x for _, _, x in pending]))
        if on_forward is not None:
            on_forward(time.perf_counter() - t0, len(pending))
        for (results, i, _), p in zip(pending, probs, strict=True):
            results[i] = p
        pending.clear()

    def finished() -> Iterator[tuple[Any, list[Score]]]:
        while waiting and all(p is not None for p in waiting[0][2]):
            tag, unit, results = waiting.popleft()
            yield (
                tag,
                [
                    Score(v, unit.laterality, float(p[0]), float(p[1]))
                    for v, p in zip(unit.versions, results, strict=True)
                ],
            )

    for tag, unit in units:
        results: list = [None] * len(unit.versions)
        waiting.append((tag, unit, results))
        for i, x in enumerate(unit.windows):
            pending.append((results, i, x))
            if len(pending) >= batch_size:
                flush()
        yield from finished()
    if pending:
        flush()
    yield from finished()
