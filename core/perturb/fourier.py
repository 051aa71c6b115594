"""Low-pass and high-pass filters in cycles/mm, and :class:`FourierFilter` for many radii of one image.

Frequencies come from ``fftfreq``/``rfftfreq`` with ``d`` = the pixel spacing along each axis, so a radius
``R`` (cycles/mm) selects a disc on the breast whatever the image shape or an anisotropic spacing. The
study's filter is the *ideal* one: the low-pass keeps every frequency with ``|f| <= R`` and removes the
rest; the high-pass is its exact complement (keeps ``|f| > R``), so ``lowpass + highpass == pixels`` up to
float32 rounding. ``kind="gaussian"`` multiplies the spectrum by ``exp(-|f|^2 / (2 R^2))`` (low-pass) or
one minus that (high-pass).

Conventions at the limits: an ideal low-pass whose radius reaches the highest frequency on the grid returns
the input bytes unchanged (the matching high-pass returns zeros); ``R = inf`` is the identity for both
kinds; ``R = 0`` keeps only the mean (the DC term) in the low-pass and removes only the mean in the
high-pass.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Iterator

import numpy as np
import scipy.fft as sfft

from core import validate
from core.errors import PerturbationError

MODES = ("lowpass", "highpass")
KINDS = ("ideal", "gaussian")
_MAX_CACHED_PREVIEW_SIZES = 4


def frequency_grid(shape: tuple[int, int], spacing_mm: tuple[float, float]) -> np.ndarray:
    """Radial frequency ``|f|`` in cycles/mm of every bin of a real 2-D FFT (``rfft2`` layout).

    Parameters
    ----------
    shape : (int, int)
        Image shape ``(rows, cols)`` in pixels.
    spacing_mm : (float, float)
        Pixel spacing ``(row_mm, col_mm)``.

    Returns
    -------
    numpy.ndarray
        float64 array of shape ``(rows, cols // 2 + 1)``, values >= 0.
    """
    rows, cols = shape
    fr = np.fft.fftfreq(rows, d=spacing_mm[0])
    fc = np.fft.rfftfreq(cols, d=spacing_mm[1])
    # sqrt(a*a + b*b) rather than hypot: symmetric in its arguments, so a transposed image with a
    # transposed spacing gets bit-identical masks.
    grid = fr[:, None] ** 2 + fc[None, :] ** 2
    np.sqrt(grid, out=grid)
    return grid


def _transfer(freq: np.ndarray, radius: float, mode: str, kind: str) -> np.ndarray:
    """Filter response on the bins ``freq`` (bool for ideal, float32 for gaussian)."""
    if kind == "ideal":
        return freq <= radius if mode == "lowpass" else freq > radius
    if radius == 0:
        gain = (freq == 0).astype(np.float32)
    elif math.isinf(radius):
        gain = np.ones(freq.shape, np.float32)
    else:
        with np.errstate(over="ignore", under="ignore"):
            gain = (freq / radius).astype(np.float32)  # far bins may overflow to inf: gain exp(-inf) = 0
            np.square(gain, out=gain)
            gain *= np.float32(-0.5)
            np.exp(gain, out=gain)
    if mode == "highpass":
        np.subtract(np.float32(1), gain, out=gain)
    return gain


class FourierFilter:
    """One image's real FFT, reused for any number of low-/high-pass radii and display previews.

    The forward FFT (``scipy.fft.rfft2``, float32 in, complex64 out) is taken once, in the constructor;
    each :meth:`lowpass` or :meth:`highpass` call then costs one mask product and one inverse real FFT
    (for the ideal kind pruned to the columns that can hold the disc; the ideal high-pass is the input
    minus the low-pass), and each :meth:`preview` one small inverse real FFT at display size.

    Parameters
    ----------
    pixels : array_like
        2-D image in model units (any real dtype; used as float32). Copied: later changes to the caller's
        array do not affect the filter.
    spacing_mm : (float, float)
        Pixel spacing ``(row_mm, col_mm)``, each > 0.
    workers : int, keyword-only
        Threads for ``scipy.fft`` (default -1: all cores; 1 in processes that already run in parallel).

    Raises
    ------
    PerturbationError
        If the image is not a finite 2-D real array or the spacing is not two positive numbers.
    """

    def __init__(self, pixels: np.ndarray, spacing_mm: tuple[float, float], *, workers: int = -1) -> None:
        self._spacing = validate.spacing_pair(spacing_mm, "FourierFilter", PerturbationError)
        self._workers = validate.fft_workers(workers, "FourierFilter", PerturbationError)
        image = validate.image_2d(pixels, "FourierFilter", PerturbationError)
        # Keep a private copy (the identity results return it), unless the conversion already made one.
        self._pixels = image.copy() if np.may_share_memory(image, pixels) else image
        self._pixels.flags.writeable = False
        self._spectrum = sfft.rfft2(self._pixels, workers=self._workers)
        self._spectrum.flags.writeable = False
        self._freq = frequency_grid(self._pixels.shape, self._spacing)
        self._fmax = float(self._freq.max())
        self._crops: dict[tuple[int, int], tuple[np.ndarray, np.ndarray]] = {}

    @property
    def shape(self) -> tuple[int, int]:
        """Image shape ``(rows, cols)`` in pixels."""
        return self._pixels.shape  # type: ignore[return-value]

    @property
    def spacing_mm(self) -> tuple[float, float]:
        """Pixel spacing ``(row_mm, col_mm)``."""
        return self._spacing

    @property
    def nyquist_mm(self) -> float:
        """Corner frequency in cycles/mm: ``hypot(1/(2 row_mm), 1/(2 col_mm))``.

        No bin lies farther from the origin, so an ideal low-pass with a radius at or above it is the
        identity (0.1 mm pixels: 7.07 cycles/mm; the per-axis Nyquist frequency is 5 cycles/mm). Never below
        :attr:`max_frequency_mm`, even where ``fftfreq`` rounds a bin an ulp above the exact value.
        """
        return max(math.hypot(0.5 / self._spacing[0], 0.5 / self._spacing[1]), self._fmax)

    @property
    def max_frequency_mm(self) -> float:
        """Highest ``|f|`` actually on this image's grid, cycles/mm (<= :attr:`nyquist_mm`; smaller for odd
        sizes, whose grids stop short of the Nyquist frequency)."""
        return self._fmax

    def lowpass(self, radius: float, kind: str = "ideal") -> np.ndarray:
        """Keep the frequencies within ``radius`` cycles/mm; full-size float32 image in model units."""
        return self._filter(
            validate.frequency(radius, "FourierFilter.lowpass", PerturbationError), "lowpass", kind
        )

    def highpass(self, radius: float, kind: str = "ideal") -> np.ndarray:
        """Remove the frequencies within ``radius`` cycles/mm (exact complement of :meth:`lowpass`)."""
        return self._filter(
            validate.frequency(radius, "FourierFilter.highpass", PerturbationError), "highpass", kind
        )

    def sweep(
        self, radii: Iterable[float], mode: str = "lowpass", kind: str = "ideal"
    ) -> Iterator[tuple[float, np.ndarray]]:
        """Yield ``(radius, filtered image)`` for each radius, one inverse real FFT each, lazily.

        All radii are checked before the first image is computed, so a bad value fails early.
        """
        where = f"FourierFilter.sweep({mode})"
        mode = _as_mode(mode, where)
        kind = validate.choice(kind, KINDS, "kind", where, PerturbationError)
        checked = [validate.frequency(r, where, PerturbationError) for r in radii]
        return ((r, self._filter(r, mode, kind)) for r in checked)

    def preview_shape(self, max_side: int) -> tuple[int, int]:
        """Shape ``(h, w)`` of :meth:`preview` for ``max_side``: :func:`preview_shape` of this image."""
        return preview_shape(self.shape, max_side)

    def preview_band_mm(self, max_side: int) -> float:
        """Highest radius (cycles/mm) whose whole disc the preview at ``max_side`` can show.

        ``min(((h - 1) // 2) / (H row_mm), ((w - 1) // 2) / (W col_mm))`` for the preview shape ``(h, w)``;
        ``inf`` when the preview is the full image. Frequencies beyond it are represented only along the
        diagonals, and none beyond the hypot of the two axis limits; so a high-pass with a larger radius
        previews as little or nothing of what the full image holds: 3328 x 2560 pixels of 0.1 mm at
        max_side 1024 give 1.53 cycles/mm, below the study's R = 2. Show such high-passes at native
        resolution (patches) instead.
        """
        h, w = self.preview_shape(max_side)
        if (h, w) == self.shape:
            return math.inf
        rows, cols = self.shape
        return min(((h - 1) // 2) / (rows * self._spacing[0]), ((w - 1) // 2) / (cols * self._spacing[1]))

    def preview(self, radius: float, max_side: int, mode: str = "lowpass", kind: str = "ideal") -> np.ndarray:
        """The filtered image at display resolution, computed from a cropped spectrum.

        Exact in this sense: the result equals the *band-limited resampling* of the full-resolution filtered
        image to :meth:`preview_shape` ``(h, w)``: take the full image's DFT, keep the frequencies strictly
        representable at ``(h, w)`` (row bins ``|k| <= (h - 1) // 2``, column bins ``|l| <= (w - 1) // 2``;
        the Nyquist bin of an even preview side is dropped because it would alias ``+f`` and ``-f``), take
        the ``h x w`` inverse DFT and multiply by ``h w / (H W)`` so that mean intensities are preserved.
        Preview pixel ``(0, 0)`` samples the same point as full pixel ``(0, 0)``. The filter is diagonal in
        the frequency domain, so cropping before masking gives that result with no full-size inverse FFT
        (equal up to float32 rounding). When ``max_side`` is at least the image's longer side, the
        full-size filtered image is returned. Frequencies above :meth:`preview_band_mm` appear in a preview
        only partly or not at all, so a high-pass with a radius beyond it previews as little or nothing.

        Parameters
        ----------
        radius : float
            Cut-off in cycles/mm (>= 0; ``inf`` allowed).
        max_side : int
            Longest side of the preview in pixels (>= 1).
        mode : {"lowpass", "highpass"}
        kind : {"ideal", "gaussian"}

        Returns
        -------
        numpy.ndarray
            float32, shape :meth:`preview_shape` ``(max_side)``, model units.
        """
        where = f"FourierFilter.preview({mode})"
        mode = _as_mode(mode, where)
        kind = validate.choice(kind, KINDS, "kind", where, PerturbationError)
        radius = validate.frequency(radius, where, PerturbationError)
        h, w = self.preview_shape(max_side)
        if (h, w) == self.shape:
            return self._filter(radius, mode, kind)
        spectrum, freq = self._crop(h, w)
        trivial = self._trivial(radius, mode, kind)
        if trivial == "zero":
            return np.zeros((h, w), np.float32)
        masked = spectrum.copy() if trivial == "identity" else spectrum * _transfer(freq, radius, mode, kind)
        small = sfft.irfft2(masked, s=(h, w), workers=self._workers, overwrite_x=True)
        small *= np.float32((h * w) / (self.shape[0] * self.shape[1]))
        return small.astype(np.float32, copy=False)

    def _trivial(self, radius: float, mode: str, kind: str) -> str | None:
        """``"identity"`` or ``"zero"`` when the filter keeps every bin or none, else None."""
        keeps_all = math.isinf(radius) or (kind == "ideal" and radius >= self._fmax)
        if not keeps_all:
            return None
        return "identity" if mode == "lowpass" else "zero"

    def _filter(self, radius: float, mode: str, kind: str) -> np.ndarray:
        where = f"FourierFilter.{mode}"
        mode = _as_mode(mode, where)
        kind = validate.choice(kind, KINDS, "kind", where, PerturbationError)
        trivial = self._trivial(radius, mode, kind)
        if trivial == "identity":
            return self._pixels.copy()
        if trivial == "zero":
            return np.zeros(self.shape, np.float32)
        if kind == "ideal":
            low = self._ideal_lowpass(radius)
            if mode == "lowpass":
                return low
            return np.subtract(self._pixels, low, out=low)  # the exact complement, without a second FFT
        masked = self._spectrum * _transfer(self._freq, radius, mode, kind)
        out = sfft.irfft2(masked, s=self.shape, workers=self._workers, overwrite_x=True)
        return out.astype(np.float32, copy=False)

    def _ideal_lowpass(self, radius: float) -> np.ndarray:
        """Ideal low-pass by one inverse real 2-D FFT, pruned to the columns that can hold the disc.

        ``|f| >= |f_row|`` and ``|f| >= f_col`` hold in floating point too (rounding is monotone), and
        column 0 / row 0 of the grid hold exactly ``|f_row|`` / ``f_col``; so every bin outside the rows and
        columns whose own axis frequency is <= radius has ``|f| > radius``, and masking only that block
        keeps exactly the bins ``|f| <= radius``. The inverse is done separably, as ``irfft2`` does it
        (complex inverse along the rows axis, then real inverse along the columns), but the first pass
        runs only over the ``cols`` columns that can be non-zero; the second zero-pads them. At R = 2
        cycles/mm and 0.1 mm pixels that is 40 % of the columns and about half the cost of ``irfft2``.
        """
        rows, width = self.shape
        half = (rows + 1) // 2  # rows [0, half): f_row >= 0 ascending; then negative, |f_row| falling
        head = int(np.count_nonzero(self._freq[:half, 0] <= radius))
        tail = int(np.count_nonzero(self._freq[half:, 0] <= radius))
        cols = int(np.count_nonzero(self._freq[0, :] <= radius))  # rfft columns: f_col ascending
        block = np.zeros((rows, cols), self._spectrum.dtype)
        for band in [np.s_[:head]] + ([np.s_[rows - tail :]] if tail else []):
            block[band] = self._spectrum[band, :cols] * (self._freq[band, :cols] <= radius)
        block = sfft.ifft(block, axis=0, workers=self._workers, overwrite_x=True)
        out = sfft.irfft(block, n=width, axis=1, workers=self._workers, overwrite_x=True)
        return out.astype(np.float32, copy=False)

    def _crop(self, h: int, w: int) -> tuple[np.ndarray, np.ndarray]:
        """Spectrum and ``|f|`` restricted to the bins strictly representable at ``h x w`` (cached)."""
        key = (h, w)
        if key in self._crops:
            return self._crops[key]
        rows = self.shape[0]
        kr, kc = (h - 1) // 2, (w - 1) // 2
        spectrum = np.zeros((h, w // 2 + 1), np.complex64)
        freq = np.zeros((h, w // 2 + 1), np.float64)
        for small, big in ((spectrum, self._spectrum), (freq, self._freq)):
            small[: kr + 1, : kc + 1] = big[: kr + 1, : kc + 1]
            if kr:
                small[h - kr :, : kc + 1] = big[rows - kr :, : kc + 1]
        if len(self._crops) >= _MAX_CACHED_PREVIEW_SIZES:
            self._crops.pop(next(iter(self._crops)))
        self._crops[key] = (spectrum, freq)
        return spectrum, freq


def preview_shape(shape: tuple[int, int], max_side: int) -> tuple[int, int]:
    """Shape ``(h, w)`` of :meth:`FourierFilter.preview` of an image of ``shape`` (pixels) at ``max_side``.

    Images whose longer side is at most ``max_side`` keep their shape. Otherwise each side is scaled by
    ``max_side / longer side`` and rounded to the nearest whole number of pixels, except that a length
    within 1 % whose prime factors are all <= 11 is preferred when there is one (the longer side
    never exceeding ``max_side``): such lengths make the inverse FFT several times faster (788, with
    the factor 197, takes about five times as long as 784 = 2**4 * 7**2). Preview pixels may therefore
    be up to 1 % from square; their size in mm is ``spacing * (H / h, W / w)`` per axis.
    """
    max_side = validate.count(max_side, "max_side", "preview_shape", PerturbationError)
    rows, cols = (int(n) for n in shape)
    if max(rows, cols) <= max_side:
        return rows, cols
    scale = max_side / max(rows, cols)
    return _fast_length(rows * scale, min(rows, max_side)), _fast_length(cols * scale, min(cols, max_side))


def _is_fast(n: int) -> bool:
    for p in (2, 3, 5, 7, 11):
        while n % p == 0:
            n //= p
    return n == 1


def _fast_length(target: float, limit: int) -> int:
    """The FFT-friendly length nearest ``target`` within 1 % (and <= ``limit``), else ``round(target)``."""
    nearest = max(1, min(limit, math.floor(target + 0.5)))
    low, high = max(1, math.ceil(target * 0.99)), min(limit, math.floor(target * 1.01))
    candidates = [n for n in range(low, high + 1) if _is_fast(n)]
    return min(candidates, key=lambda n: (abs(n - target), n)) if candidates else nearest


def lowpass(
    pixels: np.ndarray, spacing_mm: tuple[float, float], radius: float, kind: str = "ideal"
) -> np.ndarray:
    """Low-pass filter an image: keep the frequencies with ``|f| <= radius`` cycles/mm.

    Parameters
    ----------
    pixels : array_like
        2-D image in model units (0..4095); not modified.
    spacing_mm : (float, float)
        Pixel spacing ``(row_mm, col_mm)``.
    radius : float
        Cut-off in cycles/mm, >= 0; ``inf`` (or any value >= the corner frequency, for ``"ideal"``) is the
        identity. The study used 2.0.
    kind : {"ideal", "gaussian"}
        ``"ideal"``: the study's hard disc; ``"gaussian"``: gain ``exp(-|f|^2 / (2 radius^2))``.

    Returns
    -------
    numpy.ndarray
        New float32 array, same shape.

    Raises
    ------
    PerturbationError
        Bad image, spacing, radius (negative, NaN) or kind.
    """
    radius = validate.frequency(radius, "lowpass", PerturbationError)
    kind = validate.choice(kind, KINDS, "kind", "lowpass", PerturbationError)
    return FourierFilter(pixels, spacing_mm).lowpass(radius, kind)


def highpass(
    pixels: np.ndarray, spacing_mm: tuple[float, float], radius: float, kind: str = "ideal"
) -> np.ndarray:
    """High-pass filter an image: remove the frequencies with ``|f| <= radius`` cycles/mm.

    The exact complement of :func:`lowpass` (same parameters), so ``lowpass + highpass == pixels`` up to
    float32 rounding. The output has zero mean for any radius (the DC term is always removed) and may be
    negative. The study used ``radius = 2.0``.
    """
    radius = validate.frequency(radius, "highpass", PerturbationError)
    kind = validate.choice(kind, KINDS, "kind", "highpass", PerturbationError)
    return FourierFilter(pixels, spacing_mm).highpass(radius, kind)


def _as_mode(mode: object, where: str) -> str:
    if mode not in MODES:
        raise PerturbationError(f"{where}: mode must be 'lowpass' or 'highpass', got {mode!r}")
    return str(mode)
