"""Mammo Robustness Explorer: the library.

Data flows one way: file -> ``core.imaging`` (a ``Mammogram`` in physical units) -> ``core.perturb``
(pure functions) -> ``core.models`` (preprocessing, then a classifier) -> ``core.runs`` (cohort x
perturbation grid, results store) -> ``core.metrics`` (AUC, intervals, curves). This package never
imports streamlit.
"""

__version__ = "0.1.0"
