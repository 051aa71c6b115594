"""Spectra of mammograms in physical units: the display spectrum, the radial power profile and beta.

Three views of the same Fourier content, all with frequencies in cycles per millimetre taken from the
pixel spacing (``fftfreq`` with ``d`` = spacing along each axis), so that they are right for non-square
images and anisotropic spacing:

``log_spectrum``
    The whole image as the low-pass filter of :mod:`core.perturb` sees it, centred, log10 magnitude,
    reduced to display size. What it shows on a mammogram: a bright central blob from the breast texture
    (power falling as ``1/f**beta``); faint streaks normal to the skin line, the sharp step from tissue to the
    zero background (a step's power falls as ``1/f**2``, so these streaks outlast the texture at high
    frequency); a faint cross of ladder-like streaks along both axes from the horizontal and vertical strokes
    of burned-in labels (DMV PNGs); at high frequency the detector-noise floor and,
    where present, spikes from grid lines or other periodic artefacts. A Tukey taper on the image border
    removes the one artefact that is not in the image: the wrap-around step the DFT sees where the chest
    wall at one border meets the zero background at the opposite one, which would otherwise draw a bright
    line along the frequency axis.

``radial_profile`` and ``power_law_beta``
    Texture statistics of the breast only, so that the skin edge and the background do not dominate: a
    Welch estimate over square tiles (equal side in mm along both axes) that lie wholly inside the breast
    (pixels > 0, largest connected part, eroded by ``margin_mm``). Each tile has its mean plane removed and a
    2-D Hann window applied; the periodograms are averaged, normalised to a power spectral density in
    (model units)^2 * mm^2, and averaged over rings of equal ``|f|`` in cycles/mm. Beta is minus the slope of
    the least-squares line through ``log10(power)`` against ``log10(f)`` over the band ``fmin..fmax``,
    by default 0.1..1.0 cycles/mm as in the FFDM literature (Burgess et al. 2001 and later: beta near 3 on
    the breast; at higher frequencies the quantum-noise floor flattens the spectrum). Keeping the skin line
    out matters for the level more than for the slope: a straight step's ring-averaged power also falls as
    ``f**-3``, but it is orders of magnitude stronger than the texture.
"""

from core.errors import SpectrumError
from core.spectrum.display import Spectrum, log_spectrum
from core.spectrum.texture import PowerLawFit, breast_mask, fit_power_law, power_law_beta, radial_profile

__all__ = [
    "Spectrum",
    "SpectrumError",
    "PowerLawFit",
    "log_spectrum",
    "radial_profile",
    "power_law_beta",
    "fit_power_law",
    "breast_mask",
]
