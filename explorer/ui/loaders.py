"""Cached loaders: decoded images (st.cache_data), per-image perturbation state, models (st.cache_resource).

Nothing here computes; it only decides what is computed once and kept. Core imports are lazy so that a
page can start (and show a message) even while a core module is missing or broken.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import streamlit as st

# Cache bounds: a decoded image is at most 40 MP (160 MB as float32, see core.imaging.limits) and its
# Fourier state twice that, so the caches hold a few images, and drop them after an hour unused. Failed
# decodes are not cached; uploads live in session state (memory), never on disk.
_TTL_S = 3600


@st.cache_data(max_entries=2, ttl=_TTL_S, show_spinner="Decoding image...")
def load_path(
    path: str, mtime: float, spacing_mm: tuple[float, float] | None, name: str | None = None
) -> Any:
    """Decode a mammogram file (``mtime`` is part of the cache key so edited files reload)."""
    from core.imaging import load_mammogram

    return load_mammogram(path, spacing_mm=spacing_mm, name=name)


@st.cache_data(max_entries=1, ttl=_TTL_S, show_spinner="Decoding upload...")
def load_bytes(digest: str, _data: bytes, name: str, spacing_mm: tuple[float, float] | None) -> Any:
    """Decode uploaded bytes; keyed on their ``digest`` so the bytes are not re-hashed on every rerun."""
    from core.imaging import load_mammogram

    return load_mammogram(_data, spacing_mm=spacing_mm, name=name)


@st.cache_resource(max_entries=2, ttl=_TTL_S, show_spinner="Taking the image's Fourier transform...")
def prepared_image(key: str, _mammogram: Any) -> Any:
    """One ``core.perturb.PreparedImage`` per image: every perturbation of the lab goes through it, and its
    forward FFT is taken once (on first use), sliders reuse it."""
    from core.perturb import PreparedImage

    image = PreparedImage(_mammogram.pixels, _mammogram.spacing_mm)
    image.fourier  # noqa: B018 (the forward FFT, taken here under the spinner rather than on first use)
    return image


def fourier_filter(key: str, _mammogram: Any) -> Any:
    """The image's ``core.perturb.FourierFilter``, shared with its :func:`prepared_image`."""
    return prepared_image(key, _mammogram).fourier


@st.cache_resource(max_entries=3, show_spinner="Computing the spectrum...")
def log_spectrum(key: str, _mammogram: Any, max_side: int = 512) -> Any:
    """The centred log-magnitude spectrum (``core.spectrum.Spectrum``) of an image, once per image."""
    from core.spectrum import log_spectrum as _log_spectrum

    return _log_spectrum(_mammogram.pixels, _mammogram.spacing_mm, max_side=max_side)


@st.cache_resource(max_entries=3, show_spinner=False)
def window_presets(key: str, _mammogram: Any) -> dict[str, tuple[float, float]]:
    """Named window/level presets of an image (``core.display.window_presets``)."""
    from core.display import window_presets as _presets

    return _presets(_mammogram.pixels, getattr(_mammogram, "window", None))


@st.cache_resource(show_spinner="Preparing the synthetic cohort (first time only)...")
def cohort_manifest(preset: str, seed: int = 0, folder: str = "") -> str:
    """Path of a built-in synthetic cohort's manifest, generating the cohort on first use.

    ``folder`` is the data folder (``core.paths.data_dir()``), part of the cache key so that a changed
    ``MAMMO_ROBUST_DATA`` never serves a cohort from the old folder (which the allowed roots then refuse).
    """
    from core.phantom import ensure_cohort

    return str(ensure_cohort(preset, seed=seed))


@st.cache_data(max_entries=8, show_spinner=False)
def read_manifest(path: str, mtime: float, roots: tuple[str, ...] | None = None) -> Any:
    """A manifest as a DataFrame (``core.manifest.read_manifest``); ``mtime`` keys edits; rows whose image
    lies outside ``roots`` (when given) are dropped and reported in ``attrs["problems"]``."""
    from core.manifest import read_manifest as _read

    return _read(path, roots=roots)


@st.cache_data(max_entries=8, show_spinner=False)
def read_findings(path: str, mtime: float) -> Any:
    """A synthetic cohort's ``findings.csv`` (ground-truth lesions) as a DataFrame."""
    import pandas as pd

    return pd.read_csv(path)


def mtime(path: str | Path) -> float:
    """Modification time of a file, or 0.0 when it does not exist (the loader then reports the problem)."""
    try:
        return Path(path).stat().st_mtime
    except OSError:
        return 0.0
