"""Forward passes: GMIC and DMV on batches of prepared inputs, and the named results they give.

The inputs come from :mod:`core.models.inputs` (plain arrays, made without a model); nothing here crops,
resamples or standardises. :func:`score_units` is the batched forward pass over a stream of prepared
scoring units (images for GMIC, exams for DMV) that :mod:`core.runs` and the scoring calls of
:mod:`core.models.predict` use; :func:`gmic_forward` and :func:`dmv_forward` are single forward passes on a
batch that may come from several images or exams.

Label layout of DMV (the official one): ``left_benign, right_benign, left_malignant, right_malignant``
(:data:`DMV_LABELS`); :func:`breast_scores` turns it into named per-breast results.

Fast and exact inference. A model made by :func:`core.models.create_model` with ``fast=True`` (the default)
holds its convolution weights in ``channels_last`` memory format and carries ``model.fast_inference =
True``; the forward passes here then feed ``channels_last`` inputs, and on CUDA copy each batch from pinned
host memory without blocking and, for GMIC only, run under ``torch.autocast(float16)`` (measured within
1e-3 of float32 on an H200, ``benchmarks/README.md``; DMV stays float32, where autocast was slower). Every
forward pass runs under ``torch.inference_mode()``. ``fast=False`` (the exact path) keeps contiguous NCHW
tensors and float32 throughout: the computation of the official code. On the CPU both paths agree within
about 1e-6 (``tests/test_fast_inference.py``). The fast path's CPU kernels may split their sums by the number
of torch threads: the same inputs scored with 1 and 2 threads differed by up to 6e-8 (the exact path not at
all), so bit-for-bit comparisons of fast scores need the same thread count.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable, Hashable, Iterable, Iterator, Mapping
from contextlib import contextmanager
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


def to_model(x: Any, model: Any) -> Any:
    """A tensor on ``model``'s device, in ``channels_last`` memory format when it is 4-D and the model's
    convolution weights are (training with ``--channels-last``; a fast inference model)."""
    import torch

    x = x.to(model_device(model))
    if x.dim() == 4 and _channels_last(model):
        return x.contiguous(memory_format=torch.channels_last)
    return x


def _channels_last(model: Any) -> bool:
    import torch

    # the first convolution with several input channels and a kernel of several pixels: its two layouts
    # differ (for one channel or a 1 x 1 kernel they can coincide)
    weight = next(
        (p for p in model.parameters() if p.dim() == 4 and p.shape[1] > 1 and p[0, 0].numel() > 1), None
    )
    return weight is not None and weight.is_contiguous(memory_format=torch.channels_last)


def is_fast(model: Any) -> bool:
    """Whether a model takes the fast path (``create_model(..., fast=True)``); False for any other module."""
    return bool(getattr(model, "fast_inference", False))


def _batch(model: Any, inputs: np.ndarray) -> Any:
    """A batch ``(N, H, W)`` as the model's input tensor ``(N, 1, H, W)`` on its device: fast models get
    ``channels_last`` (and on CUDA a non-blocking copy from pinned memory)."""
    import torch

    x = torch.from_numpy(np.ascontiguousarray(inputs, dtype=np.float32))[:, None]
    dev = model_device(model)
    fast = is_fast(model)
    if dev.type == "cuda":
        # The pinned buffer is kept alive by the caching host allocator until the copy has finished.
        x = (x.pin_memory() if fast else x).to(dev, non_blocking=fast)
    return x.contiguous(memory_format=torch.channels_last) if fast else x


@contextmanager
def _inference(model: Any):
    """``torch.inference_mode()``; on CUDA for a fast GMIC also ``autocast(float16)``."""
    import torch

    with torch.inference_mode():
        arch = getattr(getattr(model, "spec", None), "arch", None)
        if is_fast(model) and arch == "gmic" and model_device(model).type == "cuda":
            with torch.autocast("cuda", dtype=torch.float16):
                yield
        else:
            yield


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
    ``core.models.explain`` both go through it, so they see the same computation, fast or exact as the
    model was made (the module docstring). ``y_fusion`` comes back as float64 (exactly the float32 values,
    or the float16 ones of a fast model on CUDA), ``patch_locations`` as int64, other outputs as float32
    (see :class:`core.models.gmic.GMIC` for their shapes).
    """
    x = _batch(model, inputs)
    with _inference(model):
        out = model(x)
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

    batch = {v: _batch(model, inputs[v]) for v in EXAM_VIEWS}
    with _inference(model):
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
