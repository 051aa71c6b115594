"""What the calcification analyses return: candidate specks, clusters of them and radius sweeps.

Positions are pixels (row, column) of the image analysed; lengths are mm.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np


@dataclass(frozen=True)
class Candidate:
    """A candidate microcalcification.

    Attributes
    ----------
    row, col : float
        Centre (intensity-weighted centroid of the speck), pixels.
    diameter_mm : float
        Equivalent diameter of the region above half the peak contrast, mm.
    contrast : float
        Peak value minus the median of the background annulus, model units.
    cnr : float
        :func:`visibility` of the speck in the image it was found in (dimensionless).
    z : float
        Detection strength: robust z-score of the scale-space response against its local background.
    sigma_mm : float
        Scale of the strongest response (Gaussian sigma, mm).
    """

    row: float
    col: float
    diameter_mm: float
    contrast: float
    cnr: float
    z: float = 0.0
    sigma_mm: float = 0.0

    @property
    def center_rc(self) -> tuple[float, float]:
        """``(row, col)`` in pixels."""
        return (self.row, self.col)


@dataclass(frozen=True)
class Cluster:
    """A group of candidates close together (see :func:`cluster_candidates`).

    Attributes
    ----------
    members : tuple of int
        Indices into the candidate list given to :func:`cluster_candidates`.
    row, col : float
        Centroid of the members, pixels.
    span_mm : float
        Largest distance between two members, mm.
    """

    members: tuple[int, ...]
    row: float
    col: float
    span_mm: float

    @property
    def count(self) -> int:
        """Number of member candidates."""
        return len(self.members)


@dataclass(frozen=True)
class CalcSweep:
    """Visibility (and optionally patches) of candidates across low-pass radii.

    Attributes
    ----------
    radii : np.ndarray
        Low-pass radii, cycles/mm (``inf``: unfiltered), in the order given.
    visibility : np.ndarray
        Shape ``(n_candidates, n_radii)``, see :func:`visibility_vs_radius`.
    patches : np.ndarray or None
        Shape ``(n_candidates, n_radii, h, w)`` float32, native-resolution patches of the filtered images
        (:func:`cut_patch`), or None when not asked for.
    reference_noise : np.ndarray
        Shape ``(n_candidates,)``: annulus standard deviation in the unfiltered image, model units.
    """

    radii: np.ndarray
    visibility: np.ndarray
    patches: np.ndarray | None
    reference_noise: np.ndarray = field(default_factory=lambda: np.zeros(0))
