"""Training objectives and schedule: the losses, the learning-rate schedule, class-balanced sampling and
early stopping."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from core.training.options import TrainOptions


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


def lr_schedule(total_steps: int) -> Callable[[int], float]:
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


def balanced_order(flags: np.ndarray, n: int, rng: np.random.RandomState) -> np.ndarray:
    """``n`` indices drawn with probability inversely proportional to the frequency of their flag (0/1)."""
    flags = np.asarray(flags).astype(int)
    counts = np.bincount(flags, minlength=2).astype(float)
    weights = 1.0 / counts[flags]
    return rng.choice(len(flags), size=n, replace=n > len(flags), p=weights / weights.sum())


def bce(prob, target, pos_weight):
    """Binary cross-entropy of probabilities, positives weighted by ``pos_weight`` (per label)."""
    import torch

    prob = prob.clamp(1e-6, 1 - 1e-6)
    w = 1 + (pos_weight - 1) * target
    return -(w * (target * torch.log(prob) + (1 - target) * torch.log(1 - prob))).mean()


def dmv_nll(out: dict[str, Any], y: Any, pos_weight: Any) -> Any:
    """DMV's loss: the class-weighted negative log-likelihood of both heads' (N, 4, 2) log-probabilities
    against the labels ``y`` (N, 4) in the official label order."""
    w = 1 + (pos_weight - 1) * y
    return sum(-(w * (y * out[h][..., 1] + (1 - y) * out[h][..., 0])).mean() for h in ("CC", "MLO"))
