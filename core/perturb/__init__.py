"""The study's input perturbations, as pure, seeded functions on 2-D float32 images in model units.

Public names (see ``docs/architecture.md``):

- :func:`lowpass`, :func:`highpass` (ideal or Gaussian, radius in cycles/mm) and :class:`FourierFilter`
  (one forward FFT, then any number of radii and display-size previews), :func:`preview_shape`;
- :func:`gaussian_noise`, :func:`matched_noise`, :func:`patch_shuffle`;
- :data:`PERTURBATIONS` (``"lowpass"``, ``"highpass"``, ``"noise"``, ``"shuffle"``, each a
  :class:`Perturbation` with a label, a unit and a severity grid 1..5): the one list of perturbations every
  page and command reads; :func:`perturb`;
- :class:`PreparedImage`: one image perturbed many times (its FFT taken once): any registry perturbation
  with its kind and seed, matched noise, the change norms of the matched baseline, display previews;
- :class:`PerturbationError`, the :class:`core.errors.ExplorerError` raised for bad images or parameters.

Every function returns a new float32 array and never modifies its input; the same input, parameters and
seed give the same bytes.
"""

from core.errors import PerturbationError
from core.perturb.fourier import FourierFilter, frequency_grid, highpass, lowpass, preview_shape
from core.perturb.noise import gaussian_noise, matched_noise
from core.perturb.prepared import PreparedImage
from core.perturb.registry import PERTURBATIONS, SEVERITIES, Perturbation, perturb
from core.perturb.shuffle import patch_shuffle

__all__ = [
    "PERTURBATIONS",
    "SEVERITIES",
    "FourierFilter",
    "Perturbation",
    "PerturbationError",
    "PreparedImage",
    "frequency_grid",
    "gaussian_noise",
    "highpass",
    "lowpass",
    "matched_noise",
    "patch_shuffle",
    "perturb",
    "preview_shape",
]
