"""The display spectrum of a mammogram: :func:`log_spectrum` (see :mod:`core.spectrum`)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import scipy.fft as sfft

from core.errors import SpectrumError
from core.validate import image_2d, spacing_pair


@dataclass(frozen=True)
class Spectrum:
    """A centred log-magnitude spectrum at display resolution.

    Attributes
    ----------
    image : np.ndarray
        2-D float32, ``log10`` of the RMS Fourier magnitude in each display pixel (see :func:`log_spectrum`);
        row index grows with ``freq_rows`` and column index with ``freq_cols`` (zero frequency near the
        centre).
    freq_rows, freq_cols : np.ndarray
        1-D float64, the frequency (cycles/mm) at the centre of each display row / column: the mean of the
        DFT frequencies that the display pixel covers.
    extent_mm : tuple of float
        ``(height_mm, width_mm)``: the physical size of the analysed image. The DFT frequency step along
        each axis is ``1 / extent``.
    block : int
        Side, in DFT samples along both axes, of the block averaged into one display pixel (1: none).
    nyquist_mm : tuple of float
        Nyquist frequency along rows and columns, cycles/mm (``1 / (2 * spacing)``).
    """

    image: np.ndarray
    freq_rows: np.ndarray
    freq_cols: np.ndarray
    extent_mm: tuple[float, float]
    block: int = 1
    nyquist_mm: tuple[float, float] = (0.0, 0.0)

    @property
    def extent(self) -> tuple[float, float, float, float]:
        """``(left, right, bottom, top)`` in cycles/mm for an image plot with origin at the top (imshow)."""
        dr = self.freq_rows[1] - self.freq_rows[0] if self.freq_rows.size > 1 else 1.0
        dc = self.freq_cols[1] - self.freq_cols[0] if self.freq_cols.size > 1 else 1.0
        return (
            float(self.freq_cols[0] - dc / 2),
            float(self.freq_cols[-1] + dc / 2),
            float(self.freq_rows[-1] + dr / 2),
            float(self.freq_rows[0] - dr / 2),
        )


# ---------------------------------------------------------------------------------------- display spectrum


def _tukey(n: int, alpha: float) -> np.ndarray:
    """Tukey (tapered cosine) window of length ``n``; ``alpha`` is the tapered fraction, 0..1."""
    if alpha <= 0 or n < 3:
        return np.ones(n)
    x = np.arange(n) / (n - 1)
    w = np.ones(n)
    edge = alpha / 2
    lo = x < edge
    hi = x > 1 - edge
    w[lo] = 0.5 * (1 - np.cos(np.pi * x[lo] / edge))
    w[hi] = 0.5 * (1 - np.cos(np.pi * (1 - x[hi]) / edge))
    return w


def _full_power(real_power: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """Expand the ``rfft2`` power of a real image to the full ``fft2`` layout by Hermitian symmetry."""
    h, w = shape
    out = np.empty(shape, dtype=real_power.dtype)
    half = real_power.shape[1]
    out[:, :half] = real_power
    if w > half:
        cols = np.arange(half, w)
        rows = (-np.arange(h)) % h
        out[:, half:] = real_power[rows[:, None], ((-cols) % w)[None, :]]
    return out


def _block_mean(a: np.ndarray, k: int) -> tuple[np.ndarray, slice, slice]:
    """Mean over ``k x k`` blocks, trimming the remainder evenly from both ends of each axis."""
    h, w = a.shape
    rh, rw = h % k, w % k
    rs = slice(rh // 2, h - (rh - rh // 2))
    cs = slice(rw // 2, w - (rw - rw // 2))
    t = a[rs, cs]
    nh, nw = t.shape[0] // k, t.shape[1] // k
    return t.reshape(nh, k, nw, k).mean(axis=(1, 3)), rs, cs


def log_spectrum(
    pixels: np.ndarray,
    spacing_mm: tuple[float, float],
    max_side: int = 512,
    *,
    taper: float = 0.1,
) -> Spectrum:
    """Centred log10 magnitude spectrum of a whole image, reduced to at most ``max_side`` per side.

    Parameters
    ----------
    pixels : np.ndarray
        2-D image, model units (0..4095; any real values accepted).
    spacing_mm : (float, float)
        Pixel spacing (row, column) in mm.
    max_side : int
        Largest side of the returned image, display pixels (>= 8).
    taper : float
        Fraction (0..1) of each image side tapered to zero by a Tukey window after the image mean is
        subtracted. 0 turns the taper off (the raw periodic DFT). See the module docstring.

    Returns
    -------
    Spectrum
        ``image`` holds ``log10(sqrt(mean |F|**2))`` over square blocks of ``block x block`` DFT samples
        (area average of the power, which also smooths the periodogram's speckle; a single strong peak
        stays in its block's maximum), with ``F`` the DFT of the tapered image in model units (unnormalised).

    Raises
    ------
    SpectrumError
        If the image is not 2-D real and finite, the spacing is not two positive numbers, or ``max_side`` or
        ``taper`` is out of range.
    """
    where = "log_spectrum"
    arr = image_2d(pixels, where, SpectrumError, 2)
    dy, dx = spacing_pair(spacing_mm, where, SpectrumError)
    if int(max_side) != max_side or max_side < 8:
        raise SpectrumError(f"{where}: max_side must be an integer >= 8, got {max_side!r}")
    if not 0 <= taper <= 1:
        raise SpectrumError(f"{where}: taper must lie in 0..1, got {taper!r}")
    h, w = arr.shape
    x = arr - np.float32(arr.mean(dtype=np.float64))
    if taper > 0:
        x = x * _tukey(h, taper).astype(np.float32)[:, None] * _tukey(w, taper).astype(np.float32)[None, :]
    f = sfft.rfft2(x, workers=-1)
    power = f.real.astype(np.float64) ** 2 + f.imag.astype(np.float64) ** 2
    del f
    full = np.fft.fftshift(_full_power(power, (h, w)))
    del power
    fr = np.fft.fftshift(np.fft.fftfreq(h, d=dy))
    fc = np.fft.fftshift(np.fft.fftfreq(w, d=dx))
    k = int(np.ceil(max(h, w) / int(max_side)))
    if k > 1:
        full, rs, cs = _block_mean(full, k)
        fr = fr[rs].reshape(-1, k).mean(axis=1)
        fc = fc[cs].reshape(-1, k).mean(axis=1)
    floor = max(float(full.max()) * 1e-24, 1e-30)
    image = (0.5 * np.log10(np.maximum(full, floor))).astype(np.float32)
    return Spectrum(
        image=image,
        freq_rows=fr,
        freq_cols=fc,
        extent_mm=(h * dy, w * dx),
        block=k,
        nyquist_mm=(0.5 / dy, 0.5 / dx),
    )
