"""Training GMIC and DMV (view-wise, image only) on a cohort manifest: the demo weights of ``assets/weights``.

Recipe (``docs/demo-weights.md``):

1. Every image is read once, resampled to the model's ``spacing_mm`` and cropped with the NYU pipeline at that
   scale (:func:`core.models.inputs.crop_for_model`); the crops are cached in memory and on disk
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

Training is a client of :mod:`core.models` (architectures, weights, the inference pipeline), beside the
chain file -> imaging -> perturb -> models -> runs -> metrics; nothing in the chain imports it. Modules:

* :mod:`~core.training.options`     :class:`TrainOptions`, their checks, the command line that repeats them;
* :mod:`~core.training.data`        the crops of every image, read once and cached (:func:`load_items`);
* :mod:`~core.training.windows`     training windows, finding masks and patches;
* :mod:`~core.training.objectives`  losses, learning-rate schedule, balanced sampling, early stopping;
* :mod:`~core.training.evaluation`  validation and test AUCs (through :mod:`core.metrics`);
* :mod:`~core.training.frozen`      frozen-trunk stages (cached trunk outputs, DMV heads);
* :mod:`~core.training.dense`       GMIC's dense pretraining on finding masks (``--dense-target``);
* :mod:`~core.training.checkpoints` initial weights and kept states; :mod:`~core.training.curves` curves;
* :mod:`~core.training.series`      checkpoints of every N-th epoch (``--save-every``; Figure 2);
* :mod:`~core.training.loop`        :func:`train`.
"""

from __future__ import annotations

from typing import Any

_LAZY = {
    "ImageItem": "core.training.data",
    "load_items": "core.training.data",
    "train": "core.training.loop",
    "TrainOptions": "core.training.options",
    "TrainResult": "core.training.options",
    "command_line": "core.training.options",
    "parse_augment": "core.training.options",
}

__all__ = list(_LAZY)


def __getattr__(name: str) -> Any:
    # Lazy, as in core.models: `mammo-robust train --help` reads the option defaults without numpy or torch.
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'core.training' has no attribute {name!r}")
