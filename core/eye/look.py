"""GMIC's view of an image and of a perturbed version, and the resolution at which the model sees them.

A model can only react to what reaches its input. GMIC with the demo weights resamples every image to
0.1 mm pixels (Nyquist frequency ``1 / (2 x 0.1 mm) = 5`` cycles/mm, the study's band included); with the
fast demo weights (``"demo-fast"``) to 0.3 mm, so that model cannot represent anything above
``1 / (2 x 0.3 mm) = 1.67`` cycles/mm: a low-pass at R above that removes only what the model cannot see,
and a high-pass there keeps only such detail. The resampling filter (antialiased bilinear, a triangle of
+-1 output pixel) is not ideal: its response at 2 cycles/mm is still ``sinc^2(0.6) = 0.25`` at 0.3 mm, and
what it lets through above the Nyquist frequency is aliased into the band the model sees. So scores can
still move a little (on the real samples with the 0.3 mm weights, a low-pass at R = 2 changes GMIC's
malignant probability by 0.004 to 0.04).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from core.models.demo_weights import is_demo_label
from core.models.explain import Explanation, explain_image
from core.models.resolution import input_spacing, nyquist_mm, spec_input_spacing


@dataclass(frozen=True)
class ModelInput:
    """The resolution of a model's input.

    Attributes
    ----------
    spacing_mm : float or None
        Pixel spacing of what the model sees (None: unknown, e.g. an unreadable weights file).
    nyquist_mm : float or None
        Its Nyquist frequency in cycles/mm (``1 / (2 spacing_mm)``).
    source : str
        Where the spacing comes from, in words (``"demo weights resample every image to 0.3 mm"``).
    """

    spacing_mm: float | None
    nyquist_mm: float | None
    source: str

    def describe(self) -> str:
        """One sentence for people: the spacing, the Nyquist frequency and where they come from."""
        if self.spacing_mm is None or self.nyquist_mm is None:
            return f"The model's input resolution is unknown ({self.source})."
        return (
            f"The model sees {self.spacing_mm:.3g} mm pixels ({self.source}): its Nyquist frequency is "
            f"{self.nyquist_mm:.3g} cycles/mm; finer detail reaches it only as what its resampling filter "
            "lets through (aliased)."
        )

    def to_dict(self) -> dict[str, Any]:
        return {
            "spacing_mm": self.spacing_mm,
            "nyquist_cycles_per_mm": self.nyquist_mm,
            "source": self.source,
        }


def _with_nyquist(spacing: float | None, source: str) -> ModelInput:
    return ModelInput(spacing, None if spacing is None else nyquist_mm(spacing), source)


def model_input(model: Any, image_spacing_mm: tuple[float, float] | None = None) -> ModelInput:
    """The input resolution of a built model (``model.spec``) for images of ``image_spacing_mm``."""
    spec = model.spec
    spacing = spec_input_spacing(spec, image_spacing_mm)
    what = f"{spec.weights} weights" if is_demo_label(spec.weights) else f"weights {spec.weights}"
    if spec.spacing_mm is not None:
        source = f"{what} resample every image to {spec.spacing_mm:g} mm"
    elif spacing is not None:
        source = f"{what} see the image's own pixels"
    else:
        source = f"{what} see native pixels, whose spacing is not known"
    return _with_nyquist(spacing, source)


def weights_input(arch: str, weights: str, image_spacing_mm: tuple[float, float] | None = None) -> ModelInput:
    """The input resolution of ``arch`` with ``weights`` (``"demo"``, ``"demo-fast"`` or a file), read from
    the weights' recorded config without building the model (:func:`core.models.resolution.input_spacing`)."""
    coarser = None if image_spacing_mm is None else max(image_spacing_mm)
    spacing, source = input_spacing(arch, weights, image_spacing_mm=coarser)
    return _with_nyquist(spacing, source)


def resolution_note(perturbation: str, radius: float | None, model: ModelInput) -> str | None:
    """What a low-/high-pass at ``radius`` (cycles/mm) means for a model of this input resolution, when R
    lies above its Nyquist frequency; None otherwise (or for other perturbations)."""
    nyq = model.nyquist_mm
    if radius is None or nyq is None or perturbation not in ("lowpass", "highpass") or radius < nyq:
        return None
    above = f"R = {radius:g} cycles/mm is above the model's Nyquist frequency ({nyq:.3g} cycles/mm)"
    if perturbation == "lowpass":
        return (
            f"{above}: the model cannot see what this filter removes; its scores can move only through what "
            "its resampling filter lets through above that frequency (aliased)."
        )
    return (
        f"{above}: everything this filter keeps is finer than the model can see; it reaches the model only "
        "through what its resampling filter lets through (aliased)."
    )


def look(
    model: Any, mammogram: Any, perturbed: np.ndarray, *, batch_size: int = 1
) -> tuple[Explanation, Explanation]:
    """GMIC's explanations of the clean image and of a perturbed version of it (same crop and window).

    Parameters
    ----------
    model : GMIC module
        From :func:`core.models.create_model`.
    mammogram : core.imaging.Mammogram
        The clean image.
    perturbed : numpy.ndarray
        The perturbed pixels (model units, the image's shape), e.g. ``PreparedImage.apply(...)``.
    batch_size : int
        1 (default): each image forwarded alone, so the original's probabilities equal ``predict``'s.

    Returns
    -------
    (Explanation, Explanation)
        Original (version ``"original"``) and perturbed (version ``"perturbed"``).
    """
    original, changed = explain_image(
        model, mammogram, [("original", mammogram.pixels), ("perturbed", perturbed)], batch_size=batch_size
    )
    return original, changed
