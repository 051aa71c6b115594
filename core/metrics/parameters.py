"""What a condition's ``parameter`` means: its name, unit and axis per perturbation; the study's Table 1
settings; numeric ordering of labels; and the naming convention of training checkpoints.

The units repeat those of ``core.perturb.PERTURBATIONS`` (a test keeps them in step), so that a scores table
made elsewhere can be read without the perturbation code. Perturbations this module does not know are shown
with their bare ``parameter`` on a linear axis, never with a unit they may not have.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass

from core.metrics.scores import MATCHED_PREFIX, UNPERTURBED


@dataclass(frozen=True)
class Axis:
    """How the parameter of one perturbation is named and plotted.

    Attributes
    ----------
    perturbation : str
        The name in the scores table (``"lowpass"``, ``"lowpass-gaussian"``, ...).
    title : str
        Panel title for people (``"low-pass (ideal)"``).
    label : str
        Axis title with the unit (``"radius R (cycles/mm)"``).
    symbol : str
        Short form in cells and legends (``"R"``, ``"std"``, ``"grid"``, ``"label"``).
    unit : str
        Unit after a value (``"cycles/mm"``); empty when the value has none.
    log : bool
        Plot on a logarithmic axis (the grids step by factors of two).
    frequency : bool
        The parameter is a spatial frequency in cycles/mm, so the model's Nyquist frequency can be marked.
    study_value : float or None
        The setting of the study's Table 1 (Oleszkiewicz et al. 2021), if it has one.
    note : str
        What the reader must know about the unit (e.g. a label that is not a frequency).
    """

    perturbation: str
    title: str
    label: str
    symbol: str
    unit: str
    log: bool
    frequency: bool
    study_value: float | None
    note: str = ""

    def format(self, value: float) -> str:
        """``"R = 2 cycles/mm"``, ``"std = 1600 model units"``, ``"grid 8 x 8"``."""
        if self.perturbation == "shuffle":
            return f"grid {value:g} x {value:g}"
        unit = f" {self.unit}" if self.unit else ""
        return f"{self.symbol} = {value:g}{unit}"


AXES: dict[str, Axis] = {
    a.perturbation: a
    for a in (
        Axis("lowpass", "low-pass (ideal)", "radius R (cycles/mm)", "R", "cycles/mm", True, True, 2.0),
        Axis("highpass", "high-pass (ideal)", "radius R (cycles/mm)", "R", "cycles/mm", True, True, 2.0),
        Axis("noise", "Gaussian noise", "std (model units, 0..4095 scale)", "std", "model units", True, False,
             1600.0),
        Axis("shuffle", "patch shuffling", "grid (patches per side)", "grid", "patches a side", False, False,
             8.0),
        Axis("lowpass-gaussian", "low-pass (Gaussian)", "the study's severity label (not cycles/mm)", "label",
             "", True, False, None,
             "the study's own severity label; its mapping to a filter width is not stated, so it is not R "
             "in cycles/mm"),
    )
}  # fmt: skip
# Table 1's columns, left to right, and the perturbations that may fill each (the first present wins).
TABLE1_COLUMNS: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("high-pass", ("highpass",)),
    ("low-pass", ("lowpass", "lowpass-gaussian")),
    ("noise", ("noise",)),
    ("shuffle", ("shuffle",)),
)
# Where a perturbation has no study setting (the Gaussian low-pass of the reader study), Table 1 uses the
# same number as the ideal filter's R = 2, and says that it is a label.
TABLE1_FALLBACK = {"lowpass-gaussian": 2.0}


def axis_for(perturbation: str) -> Axis:
    """The :class:`Axis` of a perturbation (its matched baseline uses the same one); a plain linear
    ``parameter`` axis for names this module does not know."""
    name = base_perturbation(perturbation)
    if name in AXES:
        return AXES[name]
    return Axis(name, name, "parameter", "parameter", "", False, False, None, "unit not known here")


def base_perturbation(perturbation: str) -> str:
    """``"matched-lowpass"`` -> ``"lowpass"``; other names unchanged."""
    p = str(perturbation)
    return p[len(MATCHED_PREFIX) :] if p.startswith(MATCHED_PREFIX) else p


def is_matched(perturbation: str) -> bool:
    return str(perturbation).startswith(MATCHED_PREFIX)


def is_unperturbed(perturbation: str, severity) -> bool:
    """The unperturbed condition: ``"none"``, or severity 0 of any perturbation (its identity)."""
    return perturbation == UNPERTURBED or float(severity) == 0.0


def study_parameter(perturbation: str) -> float | None:
    """The parameter Table 1 reports for a perturbation (R = 2, std 1600, grid 8), or the documented
    stand-in for a perturbation the study did not use; None when there is neither."""
    axis = axis_for(perturbation)
    return axis.study_value if axis.study_value is not None else TABLE1_FALLBACK.get(axis.perturbation)


def same_parameter(a: float, b: float) -> bool:
    """Parameters equal up to float noise (1e-6 relative), ``inf == inf``."""
    if math.isinf(a) or math.isinf(b):
        return a == b
    return math.isclose(a, b, rel_tol=1e-6, abs_tol=1e-9)


def natural_key(text: str) -> tuple:
    """Sort key that orders the numbers inside labels numerically: ``seed2`` before ``seed10``."""
    return tuple((0, int(t), "") if t.isdigit() else (1, 0, t) for t in re.split(r"(\d+)", str(text)) if t)


# Checkpoints of one training run: ``<run>-epoch<N>`` with an optional weights suffix (.pt, .p, .pth), e.g.
# ``gmic-lowpass2-epoch03.pt``. ``mammo-robust train --save-every N`` writes this name.
_CHECKPOINT = re.compile(r"^(?P<run>.+?)[-_]epoch[-_]?(?P<epoch>\d+)(?:\.(?:pt|pth|p))?$", re.IGNORECASE)


def checkpoint_of(weights: str) -> tuple[str, int] | None:
    """``(training run, epoch)`` of a checkpoint's weights label, or None when it does not follow the
    convention ``<run>-epoch<N>[.pt]``.

    >>> checkpoint_of("gmic-lowpass2-epoch03.pt")
    ('gmic-lowpass2', 3)
    """
    m = _CHECKPOINT.match(str(weights))
    return (m.group("run"), int(m.group("epoch"))) if m else None
