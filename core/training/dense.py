"""Dense pretraining of GMIC's global network on finding masks (``mammo-robust train gmic --dense-target``).

Image labels give a whole window one bit of supervision; a cohort with ground-truth findings (the synthetic
cohorts' ``findings.csv``) can say, for every cell of a feature map, whether a finding lies there. This stage
trains ``ds_net`` (GMIC's ResNet-22) and its saliency layer on those masks:

* samples are ``patch_size`` x ``patch_size`` px cuts of the deterministic standardised model window (the
  intensities GMIC sees at inference) with their benign and malignant finding masks (discs of
  :data:`core.training.windows.FINDING_RADIUS_MM`), flipped upside down at random: half of them around a
  malignant finding, 15 % around a benign one, the rest anywhere in a random window (background, skin line
  and chest wall included, which is where patch-trained maps raised false alarms);
* two class-balanced cross-entropies (:func:`core.training.objectives.saliency_target_loss` on logits): a 1x1
  head on the output of stage 3 (1/32 of the input; the head is discarded afterwards) and GMIC's own
  saliency layer on the column's output (1/64);
* before each validation the batch-norm statistics are re-estimated on whole training windows, since
  patches have other statistics than the windows the model sees at inference;
* validation: malignant AUC per image of the highest stage-3 cell probability on whole validation windows.

The result is a starting point for ``--init ... --freeze-trunk --unfreeze-stages 1``, which trains the last
stage, the saliency layer, the local network and the fusion on whole windows of the frozen stages 0-3.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

import numpy as np

from core.lookahead import ordered_map
from core.models.forward import model_device, to_model
from core.models.inputs import pipeline_params, window_offset
from core.models.preprocess import STD_FLOOR
from core.training.checkpoints import cpu_state
from core.training.evaluation import auc
from core.training.frozen import column_prefix, column_suffix
from core.training.objectives import lr_schedule, saliency_target_loss, should_stop
from core.training.options import used_crops
from core.training.windows import FINDING_RADIUS_MM, crop_index, finding_masks_region, window

#: Stages of the ResNet-22 column (of 5) under the dense head: its output is 128 channels at 1/32.
DENSE_STAGES = 4
#: Shares of dense training patches centred near a malignant / a benign finding (the rest: anywhere).
MALIGNANT_SHARE, BENIGN_SHARE = 0.5, 0.15
#: Whole training windows used to re-estimate the batch-norm statistics before each validation.
RECALIBRATION_WINDOWS = 192


@dataclass(frozen=True)
class _Window:
    """Where the deterministic standardised model window of one crop lies, and its statistics: enough to
    cut any part of it from the crop (:meth:`cut`) without making the whole window (at 0.1 mm a window is
    22.6 MB, its crop and a few numbers are all a cut needs). ``spots[c]``: the (rows, cols) window pixels
    of the item's findings of class ``c`` (0 benign, 1 malignant), in row-major order."""

    item: Any
    crop: np.ndarray
    spec: Any
    offset: tuple[int, int]
    shape: tuple[int, int]
    mean: float
    std: float
    spots: tuple[tuple[np.ndarray, np.ndarray], ...]

    def cut(self, top: int, left: int, size: int) -> tuple[np.ndarray, np.ndarray]:
        """The window's (size, size) standardised pixels from (``top``, ``left``) (float32) and the finding
        masks there (2, size, size) float32 -- what ``window_with_masks`` would hold at that place."""
        r0, c0 = top + self.offset[0], left + self.offset[1]
        h, w = self.crop.shape
        x = np.zeros((size, size), np.float32)
        rr0, rr1, cc0, cc1 = max(r0, 0), min(r0 + size, h), max(c0, 0), min(c0 + size, w)
        if rr0 < rr1 and cc0 < cc1:
            x[rr0 - r0 : rr1 - r0, cc0 - c0 : cc1 - c0] = self.crop[rr0:rr1, cc0:cc1]
        x -= np.float32(self.mean)
        x /= np.float32(self.std)
        return x, finding_masks_region(self.item, self.spec, r0, c0, size, size)


def _describe(item: Any, k: int, spec: Any) -> _Window:
    """The :class:`_Window` of crop ``k`` of ``item``."""
    crop = item.crops[k]
    off_r, off_c = (int(round(v)) for v in window_offset(crop.shape, item.geometry, spec))
    H, W = pipeline_params(spec).window[item.geometry.view]
    h, w = crop.shape
    inside = crop[max(off_r, 0) : min(off_r + H, h), max(off_c, 0) : min(off_c + W, w)].astype(np.float64)
    # the mean and std of the whole window, zero padding included (core.models.preprocess.standardise)
    mean = inside.sum() / (H * W)
    std = max(float(np.sqrt(max((inside**2).sum() / (H * W) - mean**2, 0.0))), STD_FLOOR)
    # the findings' discs lie in a box much smaller than the crop: their pixels from there, in row-major
    # order as np.nonzero of the whole-window masks gives them
    radius = FINDING_RADIUS_MM / pipeline_params(spec).spacing_mm + 2
    rows_f = [f[0] for f in item.findings] or [0.0]
    cols_f = [f[1] for f in item.findings] or [0.0]
    r0, c0 = max(0, int(min(rows_f) - radius)), max(0, int(min(cols_f) - radius))
    r1, c1 = min(h, int(max(rows_f) + radius) + 1), min(w, int(max(cols_f) + radius) + 1)
    masks = finding_masks_region(item, spec, r0, c0, max(r1 - r0, 0), max(c1 - c0, 0))
    spots = []
    for c in (0, 1):
        rows, cols = np.nonzero(masks[c])
        rows, cols = rows + r0 - off_r, cols + c0 - off_c
        keep = (rows >= 0) & (rows < H) & (cols >= 0) & (cols < W)
        spots.append((rows[keep], cols[keep]))
    return _Window(item, crop, spec, (off_r, off_c), (H, W), float(mean), std, tuple(spots))


class _Windows:
    """The :class:`_Window` of each (training item, crop) pair, described on first use."""

    def __init__(self, items: list[Any], spec: Any, augment_prob: float):
        self.items, self.spec, self.augment_prob = items, spec, augment_prob
        self._memo: dict[tuple[int, int], _Window] = {}

    def prefill(self, workers: int) -> None:
        """Describe every crop that training can draw, in ``workers`` threads (at 0.1 mm ~45 ms each)."""
        if not self.items:
            return
        crops = used_crops(len(self.items[0].crops), self.augment_prob)
        keys = [(i, k) for i in range(len(self.items)) for k in crops]
        with ThreadPoolExecutor(max(1, workers)) as threads:
            found = threads.map(lambda key: _describe(self.items[key[0]], key[1], self.spec), keys)
            self._memo.update(zip(keys, found, strict=True))

    def get(self, i: int, rng: np.random.RandomState | None) -> _Window:
        k = 0 if rng is None else crop_index(self.items[i], rng, self.augment_prob)
        if (i, k) not in self._memo:
            self._memo[(i, k)] = _describe(self.items[i], k, self.spec)
        return self._memo[(i, k)]


def _patch(windows: _Windows, pools: tuple[list[int], list[int]], size: int, rng: np.random.RandomState):
    """One training sample: (window cut (size, size) float32, masks (2, size, size) float32)."""
    u = rng.uniform()
    channel = 1 if u < MALIGNANT_SHARE else 0 if u < MALIGNANT_SHARE + BENIGN_SHARE else None
    pool = pools[channel] if channel is not None else []
    if pool:
        win = windows.get(pool[rng.randint(len(pool))], rng)
        rows, cols = win.spots[channel]
    else:
        win = windows.get(rng.randint(len(windows.items)), rng)
        rows = cols = np.zeros(0, int)
    H, W = win.shape
    if len(rows):
        k = rng.randint(len(rows))
        r, c = rows[k] + rng.uniform(-size / 4, size / 4), cols[k] + rng.uniform(-size / 4, size / 4)
    else:
        r, c = rng.uniform(0, H), rng.uniform(0, W)
    top = int(np.clip(round(r - size / 2), 0, max(0, H - size)))
    left = int(np.clip(round(c - size / 2), 0, max(0, W - size)))
    x, m = win.cut(top, left, size)
    if rng.uniform() < 0.5:
        x, m = x[::-1], m[:, ::-1]
    return np.ascontiguousarray(x), np.ascontiguousarray(m)


def _dense_forward(model: Any, head: Any, x: Any) -> tuple[Any, Any]:
    """Logits of the stage-3 head (N, 2, H/32, W/32) and of the saliency layer (N, 2, H/64, W/64) for
    windows (N, 1, H, W)."""
    net = model.ds_net
    rest = len(net.layer_list) - DENSE_STAGES
    h = column_prefix(net, x, rest)
    return head(h), model.left_postprocess_net(column_suffix(net, h, rest))


def dense_step(model: Any, head: Any, opt: Any, x: Any, masks: Any) -> float:
    """One optimiser step of dense pretraining on cuts ``x`` (N, 1, h, w) and their finding masks
    (N, 2, h, w): the saliency-target losses of the stage-3 head and of the saliency layer. Returns the
    loss."""
    stage3, saliency = _dense_forward(model, head, x)
    loss = saliency_target_loss(stage3, masks, logits=True)
    loss = loss + saliency_target_loss(saliency, masks, logits=True)
    opt.zero_grad()
    loss.backward()
    opt.step()
    return loss.item()


def _recalibrate(model: Any, head: Any, items: list[Any], spec: Any, device: Any, workers: int) -> None:
    """Re-estimate the batch-norm statistics of ``ds_net`` and the head on whole training windows (of
    :data:`RECALIBRATION_WINDOWS` items, cut in ``workers`` threads)."""
    import torch

    norms = [m for m in (*model.ds_net.modules(), *head.modules()) if isinstance(m, torch.nn.BatchNorm2d)]
    for m in norms:
        m.reset_running_stats()
        m.momentum = None  # cumulative average over the recalibration batches
    model.ds_net.train()
    head.train()
    n = len(items)
    picks = np.random.RandomState(1).choice(n, min(n, RECALIBRATION_WINDOWS), replace=False)
    with torch.no_grad():
        for x in _whole_windows([items[int(i)] for i in picks], spec, workers):
            _dense_forward(model, head, to_model(torch.from_numpy(x)[:, None], model))
    for m in norms:
        m.momentum = 0.1


def _whole_windows(items: list[Any], spec: Any, workers: int, batch: int = 16):
    """Batches (n <= ``batch``, rows, cols) float32 of the items' deterministic windows, cut ahead in
    ``workers`` threads while the caller uses the current batch."""
    with ThreadPoolExecutor(max(1, workers)) as threads:
        cut = ordered_map(threads, lambda it: window(it, spec, None, 0, False), items, max(batch, workers))
        for s in range(0, len(items), batch):
            yield np.stack([next(cut) for _ in items[s : s + batch]])


def dense_scores(
    model: Any, head: Any, items: list[Any], spec: Any, device: Any, workers: int = 1
) -> np.ndarray:
    """Per image, the highest malignant probability of the stage-3 head on its deterministic window."""
    import torch

    model.eval()
    head.eval()
    out = []
    with torch.inference_mode():
        for x in _whole_windows(items, spec, workers):
            logits, _ = _dense_forward(model, head, to_model(torch.from_numpy(x)[:, None], model))
            out.append(torch.sigmoid(logits[:, 1]).flatten(1).max(1)[0].float().cpu().numpy())
    return np.concatenate(out) if out else np.zeros(0)


def _stage3_head(net: Any) -> Any:
    """The 1x1 head on the output of stage 3 of the column ``net`` (discarded after training)."""
    import torch

    channels = net.layer_list[DENSE_STAGES - 1][-1].conv2.out_channels
    return torch.nn.Sequential(
        torch.nn.BatchNorm2d(channels), torch.nn.ReLU(), torch.nn.Conv2d(channels, 2, 1)
    )


def _finding_pools(items: list[Any]) -> tuple[list[int], list[int]]:
    """Indices of the items holding a benign finding and of those holding a malignant one."""
    return (
        [i for i, it in enumerate(items) if any(f[2] == "benign" for f in it.findings)],
        [i for i, it in enumerate(items) if any(f[2] == "malignant" for f in it.findings)],
    )


def train_dense(
    model: Any,
    spec: Any,
    train_items: list[Any],
    val_items: list[Any],
    options: Any,
    rng: np.random.RandomState,
    log: Callable[[str], None],
    on_epoch: Callable[[int, Any, float | None], Any] | None = None,
) -> tuple[list[dict[str, Any]], tuple[float, Any, int], Callable[[list[Any]], np.ndarray]]:
    """Train ``model.ds_net`` and its saliency layer on finding masks (module docstring).

    ``options`` is a :class:`core.training.options.TrainOptions` (``patch_size``, ``batch_size``,
    ``samples_per_epoch``, ``epochs``, ``lr``, ``patience``, ``max_minutes``, ``augment_prob``). Returns
    ``(history, best, score)``: the per-epoch rows, ``(validation AUC, state on the CPU, epoch)`` of the best
    epoch, and a function giving the stage-3 score (:func:`dense_scores`) of items with the best state.
    ``on_epoch(epoch, model, val_auc)``, if given, is called after each validation (with the recalibrated
    batch-norm statistics the epoch was validated with).
    """
    import torch

    device = model_device(model)
    net = model.ds_net
    head = _stage3_head(net).to(device)
    windows = _Windows(train_items, spec, options.augment_prob)
    windows.prefill(options.workers)
    pools = _finding_pools(train_items)
    params = [*net.parameters(), *model.left_postprocess_net.parameters(), *head.parameters()]
    steps = -(-(options.samples_per_epoch or len(train_items)) // options.batch_size)
    opt = torch.optim.Adam(params, lr=options.lr)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lr_schedule(options.epochs * steps))
    labels = [it.malignant for it in val_items]
    t0 = time.time()
    history: list[dict[str, Any]] = []
    best: tuple[float, Any, int] = (-1.0, None, 0)
    best_head: Any = None
    bad = 0
    for epoch in range(1, options.epochs + 1):
        losses = []
        for _ in range(steps):
            net.train()
            head.train()
            pairs = [_patch(windows, pools, options.patch_size, rng) for _ in range(options.batch_size)]
            x = to_model(torch.from_numpy(np.stack([p for p, _ in pairs]))[:, None], model)
            masks = torch.from_numpy(np.stack([m for _, m in pairs])).to(device)
            losses.append(dense_step(model, head, opt, x, masks))
            sched.step()
        _recalibrate(model, head, train_items, spec, device, options.workers)
        scores = dense_scores(model, head, val_items, spec, device, options.workers) if val_items else None
        val_auc = None if scores is None else auc(scores, labels)
        minutes = (time.time() - t0) / 60
        history.append(
            {
                "epoch": epoch,
                "train_loss": round(float(np.mean(losses)), 5),
                "val_auc": None if val_auc is None else round(val_auc, 4),
                "minutes": round(minutes, 2),
            }
        )
        log(
            f"dense epoch {epoch}: loss {np.mean(losses):.4f}, val malignant AUC {history[-1]['val_auc']}, "
            f"{minutes:.1f} min"
        )
        if on_epoch is not None:
            on_epoch(epoch, model, val_auc)
        score = -1.0 if val_auc is None else val_auc
        if score > best[0] or best[1] is None:
            best, best_head, bad = (score, cpu_state(model), epoch), cpu_state(head), 0
        else:
            bad += 1
        if should_stop(bad, minutes, options, log):
            break
    head.load_state_dict(best_head)
    model.load_state_dict(best[1])
    return history, best, lambda items: dense_scores(model, head, items, spec, device, options.workers)
