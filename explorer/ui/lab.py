"""The image lab's model: control values, the perturbed image at full resolution, and one rendered view.

A control change costs :func:`perturb_image` (once per image and parameters; the page caches it) and
:func:`build_view` (cut the visible window from the full-resolution images and reduce it to the screen,
``core.viewport.render_tile``); ``explorer.ui.viewer`` turns a :class:`LabView` into the browser's payload.
``benchmarks/bench_slider.py`` times exactly these functions. All numbers come from ``core``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from core import display
from core.perturb import PERTURBATIONS
from core.viewport import Viewport, ViewTile, difference_statistics, render_tile, tile_geometry

LABELS = {name: p.label for name, p in PERTURBATIONS.items()}
SPECTRAL = tuple(name for name, p in PERTURBATIONS.items() if p.spectral)
PENDING = "lab_pending"  # session key other pages set: {"perturbation": ..., "parameter": ..., "seed": ...}
DIFF_MODES = ("rms", "signed")
IMAGE_RESOLUTION = 0.5  # model units: the step in which image values travel to the browser (±0.25)


def request_perturbation(perturbation: str, parameter: float | None, seed: int = 0) -> None:
    """Ask the image lab to open with this perturbation and exactly this parameter (call before
    ``st.switch_page``)."""
    import streamlit as st

    st.session_state[PENDING] = {"perturbation": perturbation, "parameter": parameter, "seed": seed}


@dataclass(frozen=True)
class LabParams:
    """Perturbation chosen in the image lab.

    ``radius`` in cycles/mm (low-/high-pass), ``kind`` "ideal" or "gaussian", ``std`` in model units
    (noise), ``grid`` patches per side (shuffle), ``seed`` for noise and shuffle.
    """

    perturbation: str = "lowpass"
    radius: float = display.STUDY_RADIUS
    kind: str = "ideal"
    std: float = 1600.0
    grid: int = 8
    seed: int = 0

    @property
    def parameter(self) -> float:
        """The registry parameter of the chosen perturbation (radius, std or grid)."""
        return getattr(self, PERTURBATIONS[self.perturbation].parameter)

    @property
    def spectral(self) -> bool:
        """True for the Fourier filters."""
        return self.perturbation in SPECTRAL

    def key(self) -> tuple:
        """What the full-resolution result depends on (fields that do not apply are left out)."""
        if self.spectral:
            return (self.perturbation, self.radius, self.kind)
        if self.perturbation == "noise":
            return (self.perturbation, self.std, self.seed)
        return (self.perturbation, self.grid, self.seed)

    def describe(self) -> str:
        """One line naming the perturbation and its parameter with units."""
        if self.spectral:
            return f"{LABELS[self.perturbation]} ({self.kind}), R = {self.radius:g} cycles/mm"
        if self.perturbation == "noise":
            return f"Gaussian noise, std {self.std:g} (model units 0..4095), seed {self.seed}"
        return f"patch shuffle, {self.grid}x{self.grid} patches, seed {self.seed}"


@dataclass(frozen=True)
class ViewOptions:
    """How the panels are drawn: window (centre, width) in model units, invert, the difference statistic
    (``"rms"`` or ``"signed"`` mean per screen pixel), whose spectrum is shown, layout (``"row"`` 1 x 4 or
    ``"grid"`` 2 x 2) and the panel's longer side on screen in CSS pixels (None: fit the page width)."""

    window: tuple[float, float] = (2048.0, 4096.0)
    invert: bool = False
    diff_mode: str = "rms"
    spectrum: str = "original"
    layout: str = "row"
    panel: int | None = None


def perturbed_full(mammogram: Any, image: Any, params: LabParams) -> np.ndarray:
    """The perturbed image at native resolution (model units).

    The one place that applies the chosen perturbation, through the image's cached
    ``core.perturb.PreparedImage`` (one inverse FFT for the Fourier filters).
    """
    kind = params.kind if params.spectral else "ideal"
    return image.apply(params.perturbation, params.parameter, kind=kind, seed=params.seed)


@dataclass(frozen=True)
class Perturbed:
    """The full-resolution result of one perturbation of one image, with its difference from the original
    (both float32, model units). Cache one per (image, ``LabParams.key()``): a pan then costs only the cut.
    ``tiles`` keeps the difference's statistics per (bounds, tile shape) once computed."""

    params: LabParams
    pixels: np.ndarray
    difference: np.ndarray
    tiles: dict = field(default_factory=dict, compare=False, repr=False)

    def difference_tile(self, bounds: tuple[int, int, int, int], out: tuple[int, int]):
        """``core.viewport.difference_statistics`` of the difference in ``bounds`` at ``out`` (cached)."""
        key = (tuple(bounds), tuple(out))
        if key not in self.tiles:
            r0, r1, c0, c1 = bounds
            if len(self.tiles) >= 4:
                self.tiles.pop(next(iter(self.tiles)))
            self.tiles[key] = difference_statistics(self.difference[r0:r1, c0:c1], out)
        return self.tiles[key]


def perturb_image(
    mammogram: Any, image: Any, params: LabParams, tile: tuple[tuple, tuple] | None = None
) -> Perturbed:
    """:func:`perturbed_full` and ``perturbed - original``; with ``tile`` ((bounds, tile shape), e.g. the
    view on screen when it is computed ahead) also the difference's statistics for it."""
    full = perturbed_full(mammogram, image, params)
    diff = np.subtract(full, mammogram.pixels, dtype=np.float32)
    result = Perturbed(params, full, diff)
    if tile is not None:
        result.difference_tile(*tile)
    return result


@dataclass
class LabView:
    """One rendered view: the tile (``core.viewport.ViewTile``), the windows and colour scales it is drawn
    with, and the spectrum shown beside it."""

    tile: ViewTile
    view: Viewport
    params: LabParams
    options: ViewOptions
    perturbed_window: tuple[float, float]
    diff_limit: float
    spectrum: Any = None
    spectrum_of: str = "original"
    image_shape: tuple[int, int] = (0, 0)
    spacing_mm: tuple[float, float] = (1.0, 1.0)

    @property
    def titles(self) -> dict[str, str]:
        """Panel titles, the difference's colour scale in model units included."""
        p = self.params
        pert = f"perturbed: {p.describe()}"
        if p.perturbation == "highpass":
            pert += " (own window)"
        limit = f"{self.diff_limit:.3g}" if self.diff_limit < 1000 else f"{self.diff_limit:.0f}"
        if self.options.diff_mode == "rms":
            diff = f"difference, RMS per screen pixel: 0 … {limit} model units"
        else:
            diff = f"difference, mean per screen pixel: ±{limit} model units"
        spec = f"spectrum of the {self.spectrum_of} image, log10 |F| (cycles/mm)"
        return {"original": "original", "perturbed": pert, "difference": diff, "spectrum": spec}

    @property
    def difference(self) -> np.ndarray:
        """The difference panel's values: RMS or signed mean per tile pixel."""
        return self.tile.diff_rms if self.options.diff_mode == "rms" else self.tile.diff_mean


def perturbed_window(perturbed_tile: np.ndarray, params: LabParams, window: tuple[float, float]):
    """The perturbed panel's window: the original's, except for a zero-mean high-pass image (its own)."""
    if params.perturbation == "highpass":
        return display.auto_window(perturbed_tile, 0.5, 99.5, tissue_only=False)
    return window


def build_view(
    mammogram: Any,
    perturbed: Perturbed,
    options: ViewOptions,
    view: Viewport,
    screen_hw: tuple[int, int],
    *,
    spectrum: Any = None,
    spectrum_of: str = "original",
    original_tile: np.ndarray | None = None,
) -> LabView:
    """Cut ``view`` from the full-resolution original, perturbed and difference images and reduce it to a
    panel of ``screen_hw`` device pixels (``core.viewport.render_tile``); pick the windows and the
    difference's colour scale (99.5th percentile of the shown statistic)."""
    bounds, out = tile_geometry(view, mammogram.pixels.shape, screen_hw)
    tile = render_tile(
        mammogram.pixels,
        perturbed.pixels,
        view,
        screen_hw,
        mammogram.spacing_mm,
        difference=perturbed.difference,
        original_tile=original_tile,
        difference_tile=perturbed.difference_tile(bounds, out),
    )
    params = perturbed.params
    pw = perturbed_window(tile.perturbed, params, options.window)
    shown = tile.diff_rms if options.diff_mode == "rms" else tile.diff_mean
    limit = display.symmetric_limit(shown)
    shape = mammogram.pixels.shape
    spacing = (float(mammogram.spacing_mm[0]), float(mammogram.spacing_mm[1]))
    return LabView(
        tile, view.clamped(shape), params, options, pw, limit, spectrum, spectrum_of, shape, spacing
    )


def export_png(lab_view: LabView, source_name: str) -> bytes:
    """The four panels as shown (same view, windows and colour scales) side by side as one PNG."""
    t, opt, p = lab_view.tile, lab_view.options, lab_view.params
    grey_a = display.apply_window(t.original, *opt.window, opt.invert)
    grey_b = display.apply_window(t.perturbed, *lab_view.perturbed_window, opt.invert)
    if opt.diff_mode == "rms":
        diff = display.sequential_rgb(t.diff_rms, 0.0, lab_view.diff_limit)
    else:
        diff = display.diverging_rgb(t.diff_mean, lab_view.diff_limit)
    titles = lab_view.titles
    panels = [("original", grey_a), (titles["perturbed"], grey_b), (titles["difference"], diff)]
    spec = lab_view.spectrum
    if spec is not None:
        rgb = display.sequential_rgb(np.asarray(spec.image))
        fr, fc = np.asarray(spec.freq_rows), np.asarray(spec.freq_cols)
        if fr.size > 1 and fc.size > 1:
            dr, dc = float(fr[1] - fr[0]), float(fc[1] - fc[0])
            rgb = display.resample_aspect(rgb, dr, dc)  # isotropic in cycles/mm: the cutoff is a circle
            if p.spectral:
                centre = (-float(fc[0]) / dr, -float(fr[0]) / dr)  # zero frequency, in resampled pixels
                rgb = display.draw_ellipse(rgb, centre, (p.radius / dr, p.radius / dr))
        what = f", R = {p.radius:g} cycles/mm" if p.spectral else ""
        panels.append((f"spectrum of the {lab_view.spectrum_of} image{what}", rgb))
    r0, r1, c0, c1 = t.bounds
    sr, sc = (float(v) for v in np.asarray(t.pixel_mm) / np.asarray(t.footprint_px))
    where = f"rows {r0}-{r1}, columns {c0}-{c1} ({(r1 - r0) * sr:.0f} x {(c1 - c0) * sc:.0f} mm)"
    caption = f"{source_name}: {p.describe()}; {where}; {t.pixel_mm[0]:.3g} mm per pixel"
    return display.compose_panels(panels, height=512, caption=caption)
