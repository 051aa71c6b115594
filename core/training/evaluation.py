"""Evaluation during training: malignant AUCs of GMIC per image and per breast, DMV per breast, computed with
:func:`core.metrics.auc.auc` on the deterministic model windows (as :mod:`core.models.predict` scores)."""

from __future__ import annotations

import numpy as np

from core.models.forward import dmv_forward, gmic_forward
from core.models.inputs import EXAM_VIEWS
from core.training.data import ImageItem
from core.training.windows import window


def auc(scores, labels) -> float | None:
    """AUC of ``scores`` for 0/1 ``labels`` (:func:`core.metrics.auc.auc`); None with only one class."""
    labels = np.asarray(labels).astype(int)
    if labels.size == 0 or labels.min() == labels.max():
        return None
    from core.metrics.auc import auc as _metrics_auc

    return _metrics_auc(np.asarray(scores, float), labels)


def gmic_scores(model, items, spec, batch_size, crop: int = 0) -> np.ndarray:
    """GMIC's (n, 2) [benign, malignant] probabilities on each item's deterministic window of crop ``crop``
    (0: the clean image; 1..: its perturbed versions)."""
    out = []
    model.eval()
    for s in range(0, len(items), batch_size):
        chunk = items[s : s + batch_size]
        out.append(gmic_forward(model, np.stack([window(it, spec, None, 0, False, crop) for it in chunk])))
    return np.concatenate(out) if out else np.zeros((0, 2))


def breast_auc(items: list[ImageItem], malignant_scores: np.ndarray) -> float | None:
    """Malignant AUC per breast: the mean of its images' scores against the breast's label."""
    breasts: dict[tuple[str, str], list] = {}
    for it, s in zip(items, malignant_scores, strict=True):
        breasts.setdefault((it.exam_id, it.view[0]), [it.malignant, []])[1].append(s)
    labels = [v[0] for v in breasts.values()]
    return auc([np.mean(v[1]) for v in breasts.values()], labels)


def dmv_labels(exam: dict[str, ImageItem]) -> np.ndarray:
    """An exam's labels in DMV's order left_benign, right_benign, left_malignant, right_malignant."""
    return np.array(
        [exam["L-CC"].benign, exam["R-CC"].benign, exam["L-CC"].malignant, exam["R-CC"].malignant]
    )


def dmv_auc(probs: np.ndarray, labels: np.ndarray) -> float | None:
    """Malignant AUC over the breasts of (n, 4) probabilities and labels in DMV's label order."""
    return auc(probs[:, 2:].ravel(), labels[:, 2:].ravel()) if len(probs) else None


def dmv_val_probs(model, exams, spec, crop: int = 0) -> np.ndarray:
    """DMV's (n, 4) probabilities on each exam's deterministic windows of crop ``crop`` (0: clean)."""
    model.eval()
    out = []
    for exam in exams:
        inputs = {v: window(exam[v], spec, None, 0, False, crop)[None] for v in EXAM_VIEWS}
        out.append(dmv_forward(model, inputs)[0])
    return np.array(out).reshape(-1, 4)
