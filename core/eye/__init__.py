"""The model's eye: what GMIC makes of one image and of a perturbed version of it.

The library behind ``mammo-robust explain`` and the image lab's "Model's eye" section:

* :mod:`core.eye.look`     both explanations in one call, the model's input resolution and what a filter
  at R means for it (:func:`~core.eye.look.look`, :func:`~core.eye.look.model_input`,
  :func:`~core.eye.look.resolution_note`);
* :mod:`core.eye.curve`    GMIC's probabilities of one image against the filter radius R
  (:func:`~core.eye.curve.score_curve`, one :func:`~core.eye.curve.curve_point` at a time);
* :mod:`core.eye.pictures` saliency maps and regions drawn over the windowed image (uint8 RGB);
* :mod:`core.eye.report`   ``explain.json`` and its pictures (:func:`~core.eye.report.write_explain`).

The perturbation is applied here (through :class:`core.perturb.PreparedImage`); the explanations come from
:mod:`core.models.explain`, which is inference only.
"""

from __future__ import annotations

from core.eye.curve import CurvePoint, curve_point, curve_radii, score_curve
from core.eye.look import ModelInput, look, model_input, resolution_note

__all__ = [
    "CurvePoint",
    "ModelInput",
    "curve_point",
    "curve_radii",
    "look",
    "model_input",
    "resolution_note",
    "score_curve",
]
