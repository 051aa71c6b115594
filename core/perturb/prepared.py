"""One image ready to be perturbed many times: :class:`PreparedImage`.

Every caller that perturbs one image under several settings (a run's conditions, the image lab's slider, the
command line) goes through it, so the choice "cached Fourier filter, or the registry function, or matched
noise" is written once. The image is checked once; its Fourier transform is taken on first use and kept, so
any number of low-/high-pass radii cost one inverse FFT each (:class:`~core.perturb.fourier.FourierFilter`),
display previews cost a small inverse FFT, and the change norms of the ideal filters cost no inverse FFT at
all (Parseval).

Results are those of the registry (:data:`core.perturb.PERTURBATIONS`): ``apply(name, parameter, seed=s)``
gives the same bytes as ``perturb(pixels, spacing, name, parameter=parameter, seed=s)``.
"""

from __future__ import annotations

import numpy as np

from core import validate
from core.errors import PerturbationError
from core.perturb.fourier import KINDS, FourierFilter, frequency_grid
from core.perturb.noise import matched_noise
from core.perturb.registry import PERTURBATIONS, Perturbation


class PreparedImage:
    """An image and its pixel spacing, ready for any registry perturbation.

    Parameters
    ----------
    pixels : array_like
        2-D image in model units (0..4095; any real dtype, used as float32). Never modified; the object keeps
        a reference, so the caller must not modify it either.
    spacing_mm : (float, float)
        Pixel spacing ``(row_mm, col_mm)``, each > 0.
    workers : int, keyword-only
        Threads of ``scipy.fft`` (-1: all cores; 1 in processes or threads that already run in parallel).

    Raises
    ------
    PerturbationError
        If the image is not a finite 2-D real array or the spacing is not two positive numbers.
    """

    def __init__(self, pixels: np.ndarray, spacing_mm: tuple[float, float], *, workers: int = -1) -> None:
        self._spacing = validate.spacing_pair(spacing_mm, "PreparedImage", PerturbationError)
        self._workers = validate.fft_workers(workers, "PreparedImage", PerturbationError)
        self._pixels = validate.image_2d(pixels, "PreparedImage", PerturbationError)
        self._fourier: FourierFilter | None = None
        self._power: tuple[np.ndarray, np.ndarray] | None = None

    @property
    def pixels(self) -> np.ndarray:
        """The unperturbed image (float32, model units); shared, never to be written into."""
        return self._pixels

    @property
    def spacing_mm(self) -> tuple[float, float]:
        """Pixel spacing ``(row_mm, col_mm)``."""
        return self._spacing

    @property
    def shape(self) -> tuple[int, int]:
        """Image shape ``(rows, cols)`` in pixels."""
        return self._pixels.shape  # type: ignore[return-value]

    @property
    def fourier(self) -> FourierFilter:
        """The image's :class:`FourierFilter` (its forward FFT), made on first use and kept."""
        if self._fourier is None:
            self._fourier = FourierFilter(self._pixels, self._spacing, workers=self._workers)
        return self._fourier

    @property
    def nyquist_mm(self) -> float:
        """Corner frequency in cycles/mm (:attr:`FourierFilter.nyquist_mm`)."""
        return self.fourier.nyquist_mm

    def preview_shape(self, max_side: int) -> tuple[int, int]:
        """Shape of :meth:`preview` at ``max_side`` (:func:`core.perturb.preview_shape`)."""
        return self.fourier.preview_shape(max_side)

    def preview_band_mm(self, max_side: int) -> float:
        """Highest radius a preview at ``max_side`` shows in every direction
        (:meth:`FourierFilter.preview_band_mm`)."""
        return self.fourier.preview_band_mm(max_side)

    def apply(self, name: str, parameter: float, *, kind: str = "ideal", seed: int = 0) -> np.ndarray:
        """The image under a registry perturbation, at native resolution.

        Parameters
        ----------
        name : str
            A key of :data:`core.perturb.PERTURBATIONS`.
        parameter : float
            In the perturbation's unit (radius in cycles/mm, std in model units, grid in patches a side).
        kind : {"ideal", "gaussian"}
            Filter shape of the spectral perturbations (the study's is ``"ideal"``); others take ``"ideal"``.
        seed : int
            Seed of the random perturbations (noise, shuffle); the filters ignore it.

        Returns
        -------
        numpy.ndarray
            New float32 array, same shape; the bytes of :func:`core.perturb.perturb` for the same arguments.
        """
        entry = self._entry(name, kind)
        if entry.spectral:
            radius, f = validate.frequency(parameter, name, PerturbationError), self.fourier
            return f.lowpass(radius, kind) if name == "lowpass" else f.highpass(radius, kind)
        return entry.apply(self._pixels, self._spacing, parameter, seed)

    def matched_noise(self, norm: float, *, seed: int = 0) -> np.ndarray:
        """The image plus Gaussian noise of L2 norm ``norm`` (model units): the matched baseline's
        perturbation (:func:`core.perturb.matched_noise`)."""
        return matched_noise(self._pixels, norm, seed)

    def change_norm(self, name: str, parameter: float, *, kind: str = "ideal", seed: int = 0) -> float:
        """``||apply(name, parameter) - pixels||_2`` over the whole image, model units (float64 arithmetic).

        The ideal filters by Parseval, from one float64 real FFT of the image (kept for further calls): the
        change of a low-pass is the image's part above the radius, that of a high-pass the part at or below
        it, so its squared norm is the sum of ``|X|^2`` over those bins (columns 1..n/2-1 of the half
        spectrum counted twice) divided by the pixel count; no inverse FFT is needed. Other perturbations
        are applied and subtracted.
        """
        entry = self._entry(name, kind)
        if entry.spectral and kind == "ideal":
            radius = validate.frequency(parameter, name, PerturbationError)
            power, freq = self._power_spectrum()
            removed = freq > radius if name == "lowpass" else freq <= radius
            return float(np.sqrt(power[removed].sum() / self._pixels.size))
        diff = (self.apply(name, parameter, kind=kind, seed=seed).astype(np.float64) - self._base()).ravel()
        return float(np.sqrt(np.dot(diff, diff)))

    def preview(self, name: str, parameter: float, max_side: int, *, kind: str = "ideal") -> np.ndarray:
        """A spectral perturbation at display resolution, from the cropped spectrum without a full-size
        inverse FFT (:meth:`FourierFilter.preview`: the band-limited resampling of the full result to
        :meth:`preview_shape`). ``preview("lowpass", inf, max_side)`` is the unperturbed image the same way.

        Raises
        ------
        PerturbationError
            For a perturbation that is not a Fourier filter (noise, shuffle): reduce :meth:`apply` instead.
        """
        entry = self._entry(name, kind)
        if not entry.spectral:
            raise PerturbationError(
                f"PreparedImage.preview: {name} is not a Fourier filter (reduce its apply() for display)"
            )
        return self.fourier.preview(parameter, max_side, mode=name, kind=kind)

    def _entry(self, name: str, kind: str) -> Perturbation:
        if name not in PERTURBATIONS:
            raise PerturbationError(
                f"PreparedImage: unknown perturbation {name!r}; known: {', '.join(PERTURBATIONS)}"
            )
        entry = PERTURBATIONS[name]
        kind = validate.choice(kind, KINDS, "kind", name, PerturbationError)
        if kind != "ideal" and not entry.spectral:
            raise PerturbationError(
                f"PreparedImage({name}): kind {kind!r} applies to the Fourier filters only"
            )
        return entry

    def _base(self) -> np.ndarray:
        return self._pixels.astype(np.float64)

    def _power_spectrum(self) -> tuple[np.ndarray, np.ndarray]:
        """``|X|^2`` of the float64 real FFT, each bin weighted by the number of full-spectrum bins it
        stands for, and ``|f|`` (cycles/mm) of each bin."""
        if self._power is None:
            import scipy.fft as sfft

            base = self._base()
            spec = sfft.rfft2(base, workers=self._workers)
            power = spec.real**2 + spec.imag**2
            power[:, 1 : (base.shape[1] + 1) // 2] *= 2  # bins standing for their conjugate twins too
            self._power = (power, frequency_grid(base.shape, self._spacing))
        return self._power
