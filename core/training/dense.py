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
from typing import Any

import numpy as np

from core.models.forward import model_device
from core.training.checkpoints import cpu_state
from core.training.evaluation import auc
from core.training.frozen import column_prefix, column_suffix
from core.training.objectives import lr_schedule, saliency_target_loss, should_stop
from core.training.windows import crop_index, window, window_with_masks

#: Stages of the ResNet-22 column (of 5) under the dense head: its output is 128 channels at 1/32.
DENSE_STAGES = 4
#: Shares of dense training patches centred near a malignant / a benign finding (the rest: anywhere).
MALIGNANT_SHARE, BENIGN_SHARE = 0.5, 0.15
#: Whole training windows used to re-estimate the batch-norm statistics before each validation.
RECALIBRATION_WINDOWS = 192


class _Windows:
    """Deterministic windows (float16) and finding masks (uint8) of training items, built on first use."""

    def __init__(self, items: list[Any], spec: Any, augment_prob: float):
        self.items, self.spec, self.augment_prob = items, spec, augment_prob
        self._memo: dict[tuple[int, int], tuple[np.ndarray, np.ndarray]] = {}

    def get(self, i: int, rng: np.random.RandomState | None) -> tuple[np.ndarray, np.ndarray]:
        k = 0 if rng is None else crop_index(self.items[i], rng, self.augment_prob)
        if (i, k) not in self._memo:
            joint = window_with_masks(self.items[i].crops[k], self.items[i], self.spec, None)
            self._memo[(i, k)] = (joint[0].astype(np.float16), (joint[1:] > 0.5).astype(np.uint8))
        return self._memo[(i, k)]


def _patch(windows: _Windows, pools: tuple[list[int], list[int]], size: int, rng: np.random.RandomState):
    """One training sample: (window cut (size, size) float32, masks (2, size, size) float32)."""
    u = rng.uniform()
    channel = 1 if u < MALIGNANT_SHARE else 0 if u < MALIGNANT_SHARE + BENIGN_SHARE else None
    pool = pools[channel] if channel is not None else []
    if pool:
        win, masks = windows.get(pool[rng.randint(len(pool))], rng)
        rows, cols = np.nonzero(masks[channel])
    else:
        win, masks = windows.get(rng.randint(len(windows.items)), rng)
        rows = cols = np.zeros(0, int)
    H, W = win.shape
    if len(rows):
        k = rng.randint(len(rows))
        r, c = rows[k] + rng.uniform(-size / 4, size / 4), cols[k] + rng.uniform(-size / 4, size / 4)
    else:
        r, c = rng.uniform(0, H), rng.uniform(0, W)
    top = int(np.clip(round(r - size / 2), 0, max(0, H - size)))
    left = int(np.clip(round(c - size / 2), 0, max(0, W - size)))
    x = win[top : top + size, left : left + size].astype(np.float32)
    m = masks[:, top : top + size, left : left + size].astype(np.float32)
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


def _recalibrate(model: Any, head: Any, windows: _Windows, device: Any) -> None:
    """Re-estimate the batch-norm statistics of ``ds_net`` and the head on whole training windows."""
    import torch

    norms = [m for m in (*model.ds_net.modules(), *head.modules()) if isinstance(m, torch.nn.BatchNorm2d)]
    for m in norms:
        m.reset_running_stats()
        m.momentum = None  # cumulative average over the recalibration batches
    model.ds_net.train()
    head.train()
    n = len(windows.items)
    picks = np.random.RandomState(1).choice(n, min(n, RECALIBRATION_WINDOWS), replace=False)
    with torch.no_grad():
        for s in range(0, len(picks), 16):
            x = np.stack([windows.get(int(i), None)[0] for i in picks[s : s + 16]]).astype(np.float32)
            _dense_forward(model, head, torch.from_numpy(x)[:, None].to(device))
    for m in norms:
        m.momentum = 0.1


def dense_scores(model: Any, head: Any, items: list[Any], spec: Any, device: Any) -> np.ndarray:
    """Per image, the highest malignant probability of the stage-3 head on its deterministic window."""
    import torch

    model.eval()
    head.eval()
    out = []
    with torch.inference_mode():
        for s in range(0, len(items), 16):
            x = np.stack([window(it, spec, None, 0, False) for it in items[s : s + 16]])
            logits, _ = _dense_forward(model, head, torch.from_numpy(x)[:, None].to(device))
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
            x = torch.from_numpy(np.stack([p for p, _ in pairs]))[:, None].to(device)
            masks = torch.from_numpy(np.stack([m for _, m in pairs])).to(device)
            losses.append(dense_step(model, head, opt, x, masks))
            sched.step()
        _recalibrate(model, head, windows, device)
        val_auc = auc(dense_scores(model, head, val_items, spec, device), labels) if val_items else None
        minutes = (time.time() - t0) / 60
        history.append(
            {
                "epoch": epoch,
                "train_loss": round(float(np.mean(losses)), 5),
                "val_auc": None if val_auc is None else round(val_auc, 4),
                "minutes": round(minutes, 2),
            }
        )
        log(f"dense epoch {epoch}: loss {np.mean(losses):.4f}, val malignant AUC {history[-1]['val_auc']}")
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
    return history, best, lambda items: dense_scores(model, head, items, spec, device)
