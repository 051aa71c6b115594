"""The named perturbations of the study, their severity grids, and :func:`perturb`.

Like ``imagecorruptions.corrupt(image, name, severity)``: each perturbation has a name, one parameter with
a unit, and a fixed grid of severities 1..5; severity 0 is the identity. The grids step by factors of two,
and each contains the study's setting (Oleszkiewicz et al. 2021, Table 1):

============  =========  ==============  ================================  =============  ===========
name          parameter  unit            severity 1..5                     study          identity
============  =========  ==============  ================================  =============  ===========
lowpass       radius     cycles/mm       4, 2, 1, 0.5, 0.25                2.0 (sev. 2)   inf
highpass      radius     cycles/mm       0.25, 0.5, 1, 2, 4                2.0 (sev. 4)   none
noise         std        model units     100, 200, 400, 800, 1600          1600 (sev. 5)  0
shuffle       grid       patches a side  2, 3, 4, 6, 8                     8 (sev. 5)     1
============  =========  ==============  ================================  =============  ===========

Why these grids. Filters: with 0.1 mm pixels the per-axis Nyquist frequency is 5 cycles/mm, so a low-pass
at 4 cycles/mm removes only the finest detail (structures under ~0.13 mm), and each halving of the radius
doubles the smallest structure kept (half a period: 1/(2R) mm), through 0.25 mm (R = 2), the size of the
smallest microcalcifications, to 2 mm at R = 0.25, where only dense tissue and the breast outline remain.
Octave steps suit mammograms, whose power spectra fall as a power law (beta near 3), so each octave holds a
comparable share of the image's structure. The high-pass grid mirrors it: at 0.25 cycles/mm it removes only
the density and outline, at 4 cycles/mm only the finest texture and noise survive. Noise: octaves up to the
study's std of 1600 on the 0..4095 scale. Shuffle: 2 cuts the image into quarters, 8 is the study's 64
patches. A high-pass has no radius that is the identity (radius 0 still removes the mean), so its
``identity_parameter`` is None; severity 0 returns the input unchanged for every perturbation.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType

import numpy as np

from core import validate
from core.errors import PerturbationError
from core.perturb.fourier import highpass, lowpass
from core.perturb.noise import gaussian_noise
from core.perturb.shuffle import patch_shuffle

SEVERITIES = (1, 2, 3, 4, 5)


@dataclass(frozen=True)
class Perturbation:
    """One named perturbation with a documented severity grid.

    Attributes
    ----------
    name : str
        Registry key (``"lowpass"``, ``"highpass"``, ``"noise"``, ``"shuffle"``).
    parameter : str
        Name of the parameter (``"radius"``, ``"std"``, ``"grid"``).
    unit : str
        Unit of the parameter.
    grid : Mapping[int, float]
        Severity 1..5 -> parameter value (read-only).
    identity_parameter : float or None
        The parameter value that leaves images unchanged, or None where no value does (high-pass).
    description : str
        One line for people.
    label : str
        The perturbation's name for people (``"low-pass"``...), as pages and figures show it.
    spectral : bool
        A Fourier filter: it takes a ``kind`` (``"ideal"``, ``"gaussian"``) and has display previews
        (:meth:`core.perturb.PreparedImage.preview`).
    limits : (float, float)
        Closed range of parameters a run may ask for explicitly (:meth:`check_parameter`); the grid lies
        inside it. Filters: 0 < R <= 100 cycles/mm (beyond any detector's Nyquist frequency); noise:
        0 < std <= 65535; shuffle: whole grids 2..64.
    integer : bool
        The parameter must be a whole number (shuffle grid).
    """

    name: str
    parameter: str
    unit: str
    grid: Mapping[int, float]
    identity_parameter: float | None
    description: str
    _function: Callable[[np.ndarray, tuple[float, float], float, int], np.ndarray] = field(repr=False)
    label: str = ""
    spectral: bool = False
    limits: tuple[float, float] = (0.0, math.inf)
    integer: bool = False

    def check_parameter(self, value: object) -> float:
        """``value`` as a float if it is a parameter of this perturbation within :attr:`limits` (which leave
        out the identities: the unperturbed condition is severity 0); else :class:`PerturbationError`."""
        if isinstance(value, bool) or not isinstance(value, int | float | np.integer | np.floating):
            raise PerturbationError(f"{self.name}: {self.parameter} must be a number, got {value!r}")
        v = float(value)
        lo, hi = self.limits
        if not (math.isfinite(v) and lo < v <= hi) or (self.integer and v != round(v)):
            kind = "a whole number" if self.integer else "a number"
            raise PerturbationError(
                f"{self.name}: {self.parameter} must be {kind} in ({lo:g}, {hi:g}] {self.unit}, got {value!r}"
            )
        return v

    def parameter_for(self, severity: int) -> float | None:
        """Parameter at ``severity`` (0..5); severity 0 gives :attr:`identity_parameter`."""
        if (
            isinstance(severity, bool)
            or not isinstance(severity, int | np.integer)
            or not (0 <= severity <= len(SEVERITIES))
        ):
            raise PerturbationError(f"{self.name}: severity must be an integer 0..5, got {severity!r}")
        return self.identity_parameter if severity == 0 else self.grid[int(severity)]

    def apply(
        self, pixels: np.ndarray, spacing_mm: tuple[float, float], parameter: float, seed: int = 0
    ) -> np.ndarray:
        """Perturb ``pixels`` (model units; not modified) with this parameter; new float32 array."""
        spacing = validate.spacing_pair(spacing_mm, self.name, PerturbationError)
        return self._function(pixels, spacing, parameter, validate.seed(seed, self.name, PerturbationError))


def _shuffle(pixels: np.ndarray, spacing_mm: tuple[float, float], grid: float, seed: int) -> np.ndarray:
    return patch_shuffle(pixels, validate.count(grid, "grid", "shuffle", PerturbationError), seed)


PERTURBATIONS: dict[str, Perturbation] = {
    p.name: p
    for p in (
        Perturbation(
            "lowpass",
            "radius",
            "cycles/mm",
            MappingProxyType({1: 4.0, 2: 2.0, 3: 1.0, 4: 0.5, 5: 0.25}),
            math.inf,
            "ideal low-pass filter: keep frequencies with |f| <= radius",
            lambda x, s, r, seed: lowpass(x, s, r),
            label="low-pass",
            spectral=True,
            limits=(0.0, 100.0),
        ),
        Perturbation(
            "highpass",
            "radius",
            "cycles/mm",
            MappingProxyType({1: 0.25, 2: 0.5, 3: 1.0, 4: 2.0, 5: 4.0}),
            None,
            "ideal high-pass filter: remove frequencies with |f| <= radius",
            lambda x, s, r, seed: highpass(x, s, r),
            label="high-pass",
            spectral=True,
            limits=(0.0, 100.0),
        ),
        Perturbation(
            "noise",
            "std",
            "model units (0..4095 scale)",
            MappingProxyType({1: 100.0, 2: 200.0, 3: 400.0, 4: 800.0, 5: 1600.0}),
            0.0,
            "additive Gaussian noise with standard deviation std",
            lambda x, s, std, seed: gaussian_noise(x, std, seed),
            label="Gaussian noise",
            limits=(0.0, 65535.0),
        ),
        Perturbation(
            "shuffle",
            "grid",
            "patches per side",
            MappingProxyType({1: 2.0, 2: 3.0, 3: 4.0, 4: 6.0, 5: 8.0}),
            1.0,
            "cut into grid x grid patches and shuffle them",
            _shuffle,
            label="patch shuffle",
            limits=(1.0, 64.0),
            integer=True,
        ),
    )
}


def perturb(
    pixels: np.ndarray,
    spacing_mm: tuple[float, float],
    name: str,
    severity: int | None = None,
    *,
    parameter: float | None = None,
    seed: int = 0,
) -> np.ndarray:
    """Apply the named perturbation at a severity (0..5) or with an explicit parameter.

    Parameters
    ----------
    pixels : array_like
        2-D image in model units; not modified.
    spacing_mm : (float, float)
        Pixel spacing ``(row_mm, col_mm)``, used by the filters (checked for all).
    name : str
        A key of :data:`PERTURBATIONS`.
    severity : int, optional
        0..5; 0 returns a copy of the input. Give either ``severity`` or ``parameter``.
    parameter : float, optional
        The parameter itself, in the perturbation's unit (e.g. ``radius=2.0`` cycles/mm).
    seed : int
        Seed for the random perturbations (noise, shuffle); ignored by the filters.

    Returns
    -------
    numpy.ndarray
        New float32 array, same shape.

    Raises
    ------
    PerturbationError
        Unknown name, neither or both of severity and parameter, a severity outside 0..5, or a bad image,
        spacing, parameter or seed.
    """
    if name not in PERTURBATIONS:
        raise PerturbationError(f"perturb: unknown perturbation {name!r}; known: {', '.join(PERTURBATIONS)}")
    entry = PERTURBATIONS[name]
    if (severity is None) == (parameter is None):
        raise PerturbationError(f"perturb({name}): give exactly one of severity (0..5) or parameter")
    if severity is not None:
        parameter = entry.parameter_for(severity)
        if severity == 0:
            validate.spacing_pair(spacing_mm, name, PerturbationError)
            validate.seed(seed, name, PerturbationError)
            return np.array(validate.image_2d(pixels, name, PerturbationError), dtype=np.float32, copy=True)
    return entry.apply(pixels, spacing_mm, parameter, seed)  # type: ignore[arg-type]
