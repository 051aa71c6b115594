"""Candidate microcalcifications, native-resolution patches, and their visibility under low-pass filtering.

Microcalcifications are small bright specks of calcium, 0.1 to about 1 mm across; clusters of fine ones
(at least 3 within about 1 cm^2) are a sign of malignancy. The study showed that low-pass filtering erases
them (its Figures 3, 5 and 6). This package finds candidate specks, cuts patches around them and measures
their visibility across low-pass radii. All sizes are in mm and all frequencies in cycles/mm; pixel
coordinates are (row, column) into the image array, and every length is converted to pixels per axis with
the spacing, so results are right under anisotropic spacing.

Modules (every public name is importable from ``core.calcs``):

``detection``    :func:`find_candidates`, :data:`BORDER_MM`: peaks of the scale space, measured and filtered
``scale_space``  difference-of-Gaussians responses in mm as robust z-scores against the local background
``measure``      one peak measured on the image: roundness (Hessian), half-maximum region, centroid, diameter
``visibility``   :func:`visibility`: contrast-to-noise ratio of a speck against its annulus
``sweep``        :func:`calcification_sweep`, :func:`visibility_vs_radius`: visibility and patches per radius
``patches``      :func:`cut_patch`, :func:`patch_shape`
``clusters``     :func:`cluster_candidates`
``results``      :class:`Candidate`, :class:`Cluster`, :class:`CalcSweep`
``checks``       argument checks raising :class:`~core.errors.CalcError`
"""

from core.calcs.clusters import cluster_candidates
from core.calcs.detection import BORDER_MM, find_candidates
from core.calcs.patches import cut_patch, patch_shape
from core.calcs.results import CalcSweep, Candidate, Cluster
from core.calcs.sweep import calcification_sweep, visibility_vs_radius
from core.calcs.visibility import visibility
from core.errors import CalcError

__all__ = [
    "CalcError",
    "Candidate",
    "Cluster",
    "CalcSweep",
    "find_candidates",
    "cut_patch",
    "patch_shape",
    "visibility",
    "visibility_vs_radius",
    "calcification_sweep",
    "cluster_candidates",
    "BORDER_MM",
]
