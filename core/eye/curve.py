"""GMIC's probabilities for one image against the radius R of a low- or high-pass filter.

One point costs one perturbation of the full image (an inverse FFT, through the image's
:class:`core.perturb.PreparedImage`) and one forward pass, through the scoring call the runs use
(:func:`core.models.predict.prepare_unit` and :func:`core.models.forward.score_units`, one version per
pass), so a point here equals the run's score of the same image and radius, and the perturbed
probabilities of :func:`core.eye.look.look` at the same R.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from core.errors import PerturbationError
from core.models.forward import score_units
from core.models.inputs import ImageInputs
from core.models.predict import prepare_unit
from core.perturb import PERTURBATIONS

#: Filters a curve can be drawn for.
CURVE_MODES = ("lowpass", "highpass")


@dataclass(frozen=True)
class CurvePoint:
    """GMIC's probabilities (0..1) for the image filtered by ``mode`` at ``radius`` cycles/mm."""

    mode: str
    radius: float
    benign: float
    malignant: float

    def to_dict(self) -> dict[str, float | str]:
        return {"mode": self.mode, "radius": self.radius, "benign": self.benign, "malignant": self.malignant}


def curve_radii(mode: str = "lowpass", extra: Iterable[float] = ()) -> list[float]:
    """The registry's grid radii of ``mode`` and any ``extra`` radii (e.g. the user's R), ascending."""
    if mode not in CURVE_MODES:
        raise PerturbationError(f"a score curve needs a filter ({', '.join(CURVE_MODES)}), got {mode!r}")
    values = {float(v) for v in PERTURBATIONS[mode].grid.values()}
    values |= {float(v) for v in extra if v is not None and float(v) > 0}
    return sorted(values)


def curve_point(
    model: Any, inputs: ImageInputs, prepared: Any, mode: str, radius: float, kind: str = "ideal"
) -> CurvePoint:
    """One point: ``prepared`` (the image's ``PreparedImage``) filtered at ``radius`` and scored by
    ``model`` through ``inputs`` (the clean image's :class:`~core.models.inputs.ImageInputs`)."""
    if mode not in CURVE_MODES:
        raise PerturbationError(f"a score curve needs a filter ({', '.join(CURVE_MODES)}), got {mode!r}")
    pixels = prepared.apply(mode, float(radius), kind=kind)
    unit = prepare_unit([inputs], [(float(radius), [pixels])])
    score = next(score_units(model, [(None, unit)], batch_size=1))[1][0]
    return CurvePoint(mode, float(radius), score.benign, score.malignant)


def score_curve(
    model: Any,
    mammogram: Any,
    prepared: Any,
    *,
    mode: str = "lowpass",
    radii: Iterable[float] | None = None,
    kind: str = "ideal",
    on_point: Callable[[CurvePoint, int, int], None] | None = None,
) -> list[CurvePoint]:
    """GMIC's probabilities for one image at several radii of a low- or high-pass.

    Parameters
    ----------
    model : GMIC module
        From :func:`core.models.create_model`.
    mammogram : core.imaging.Mammogram
        The clean image (its crop and window are used at every radius).
    prepared : core.perturb.PreparedImage
        The same image, ready to be filtered (its FFT taken once).
    mode : {"lowpass", "highpass"}
        The filter.
    radii : iterable of float, optional
        Radii in cycles/mm (default: the registry's grid, :func:`curve_radii`).
    kind : {"ideal", "gaussian"}
        Filter shape.
    on_point : callable, optional
        ``on_point(point, done, total)`` after each point (progress).

    Returns
    -------
    list of CurvePoint
        In the order of ``radii``.
    """
    radii = curve_radii(mode) if radii is None else [float(r) for r in radii]
    inputs = ImageInputs(mammogram, model.spec)
    points = []
    for i, radius in enumerate(radii):
        points.append(curve_point(model, inputs, prepared, mode, radius, kind))
        if on_point is not None:
            on_point(points[-1], i + 1, len(radii))
    return points
