"""What a scores table does not hold but its figures need: the resolution the model saw, the size of the
images the matched baselines were measured on, and a name for the table.

:class:`ScoreContext` is plain data. Whoever knows the run fills it: ``core.runs.context.run_context`` for
a stored run (weights config and cohort headers), ``mammo-robust report`` from the weights labels and its
options. The metrics never guess: a value left out is reported as unknown.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field


@dataclass(frozen=True)
class ModelInput:
    """The pixel spacing of a model's input, and where that number comes from.

    Attributes
    ----------
    spacing_mm : float or None
        Effective spacing of the pixels the network sees (mm): the spacing the preprocessing resamples to
        (demo weights: 0.3 mm), else the images' own spacing times the weights' downsampling; None when
        unknown.
    source : str
        For people, e.g. ``"demo weights resample every image to 0.3 mm"``.
    """

    spacing_mm: float | None
    source: str = ""

    @property
    def nyquist_mm(self) -> float | None:
        """Highest frequency along an axis the model input can hold, ``1 / (2 spacing)`` cycles/mm."""
        if self.spacing_mm is None or not self.spacing_mm > 0:
            return None
        return 1.0 / (2.0 * self.spacing_mm)


@dataclass(frozen=True)
class ScoreContext:
    """Facts about a scores table from outside it.

    Attributes
    ----------
    label : str
        What the table holds, for titles and file names (``"published NYU scores: dmv, gmic, radiologist"``).
    model_inputs : dict
        ``(model, weights)`` -> :class:`ModelInput`; pairs not listed are unknown.
    image_pixels : float or None
        Mean pixel count of the images whose change norms the matched baselines copy (full images in model
        units, before the model's preprocessing). The matched noise has per-pixel std
        ``norm / sqrt(image_pixels)`` (:func:`matched_std`); None: the std is not known.
    image_pixels_source : str
        Where ``image_pixels`` comes from.
    """

    label: str = ""
    model_inputs: dict[tuple[str, str], ModelInput] = field(default_factory=dict)
    image_pixels: float | None = None
    image_pixels_source: str = ""

    def model_input(self, model: str, weights: str) -> ModelInput:
        return self.model_inputs.get((str(model), str(weights)), ModelInput(None, "not known"))


def matched_std(norm: float, image_pixels: float | None) -> float:
    """Per-pixel standard deviation (model units) of matched noise with L2 norm ``norm`` on images of
    ``image_pixels`` pixels: ``norm / sqrt(image_pixels)``; NaN when the image size is unknown.

    The matched baseline rescales each image's noise field to the mean change norm ``N`` of its target
    perturbation over the cohort (``core.runs.grid``), so an image of ``n`` pixels gets std ``N / sqrt(n)``;
    with images of different sizes this is the std at the mean pixel count.
    """
    if image_pixels is None or not image_pixels > 0 or not math.isfinite(norm):
        return math.nan
    return float(norm) / math.sqrt(float(image_pixels))
