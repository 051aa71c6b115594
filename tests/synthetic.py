"""Synthetic test images shared by several test modules."""

import numpy as np


def powerlaw_noise(shape, spacing, beta, seed=0):
    """Gaussian random field with power spectrum |f|^-beta, |f| in cycles/mm from the spacing; unit std."""
    rng = np.random.default_rng(seed)
    fr = np.fft.fftfreq(shape[0], d=spacing[0])[:, None]
    fc = np.fft.rfftfreq(shape[1], d=spacing[1])[None, :]
    f = np.hypot(fr, fc)
    f[0, 0] = 1.0
    amp = f ** (-beta / 2)
    amp[0, 0] = 0.0
    field = np.fft.irfft2(
        amp * (rng.standard_normal(amp.shape) + 1j * rng.standard_normal(amp.shape)), s=shape
    )
    return field / field.std()
