"""The Fourier benchmark's own parts: its naive reference agrees with the library, and its FFT counter."""

from __future__ import annotations

import numpy as np
import pytest

from benchmarks.bench_fourier import SWEEP_RADII, count_ffts, naive_lowpass
from core.perturb import lowpass


@pytest.mark.parametrize(("shape", "spacing"), [((40, 30), (0.1, 0.1)), ((33, 51), (0.07, 0.2))])
def test_naive_reference_agrees_with_the_library(shape, spacing):
    x = (np.random.default_rng(0).random(shape) * 4095).astype(np.float32)
    for radius in (0.5, 2.0, 4.0):
        np.testing.assert_allclose(lowpass(x, spacing, radius), naive_lowpass(x, spacing, radius), atol=0.01)


def test_fft_counter_sees_one_forward_and_one_inverse_per_radius():
    x = (np.random.default_rng(1).random((64, 48)) * 4095).astype(np.float32)
    counts = count_ffts(x, (0.1, 0.1))
    n = len(SWEEP_RADII)
    assert dict(counts) == {"scipy.fft.rfft2": 1, "scipy.fft.ifft": n, "scipy.fft.irfft": n}
    assert np.fft.fft2.__module__.startswith("numpy")  # the wrappers were removed again
