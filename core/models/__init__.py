"""The NYU mammography classifiers DMV and GMIC, their weights, preprocessing and predictions.

Architectures follow ``../shared/spec/nyu-models.md`` so that the official checkpoints load strictly:

* :mod:`core.models.resnet`   the pre-activation ResNet-22 column and the v1 ResNet-18 body,
* :mod:`core.models.gmic`     GMIC-ResNet-18 (:class:`~core.models.gmic.GMIC`),
* :mod:`core.models.dmv`      DMV view-wise, image-wise and single-image models,
* :mod:`core.models.weights`  checkpoint I/O (official ``.p`` files and this project's ``mammo-robust/1``),
* :mod:`core.models.registry` ``create_model`` and :class:`~core.models.registry.ModelSpec`,
* :mod:`core.models.preprocess` the NYU pipeline on arrays (crop, flip, centre, window, standardise),
* :mod:`core.models.inputs`   model inputs without a model: that pipeline at the weights' scale, per image
  (:class:`~core.models.inputs.ImageInputs`) and per scoring unit, as plain arrays,
* :mod:`core.models.forward`  forward passes on batches of prepared inputs, named results
  (:class:`~core.models.forward.Score`),
* :mod:`core.models.predict`  one scoring call per architecture (:func:`~core.models.predict.score_image`
  for GMIC, :func:`~core.models.predict.score_exam` for DMV) and the command line's predictions.

The package is inference only: it imports no cohort, imaging, perturbation, metrics, runs or training
module (training, :mod:`core.training`, is a client of it).

Importing this package is cheap: ``torch`` is imported only when one of the names below is first used, so
``from core.models import ModelError`` works in code that never builds a model.
"""

from __future__ import annotations

from typing import Any

from core.errors import ModelError

_LAZY = {
    "create_model": "core.models.registry",
    "build_model": "core.models.registry",
    "list_models": "core.models.registry",
    "ModelSpec": "core.models.registry",
    "DMV_VARIANTS": "core.models.registry",
    "GMIC": "core.models.gmic",
    "SplitBreastModel": "core.models.dmv",
    "ImageBreastModel": "core.models.dmv",
    "SingleImageBreastModel": "core.models.dmv",
    "load_checkpoint": "core.models.weights",
    "save_checkpoint": "core.models.weights",
    "Checkpoint": "core.models.weights",
    "CHECKPOINT_FORMAT": "core.models.weights",
    "predict_gmic": "core.models.predict",
    "predict_dmv": "core.models.predict",
    "score_image": "core.models.predict",
    "score_exam": "core.models.predict",
    "prepare_unit": "core.models.predict",
    "Score": "core.models.forward",
    "score_units": "core.models.forward",
    "ImageInputs": "core.models.inputs",
    "prepare_input": "core.models.inputs",
}

__all__ = ["ModelError", *_LAZY]


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'core.models' has no attribute {name!r}")
