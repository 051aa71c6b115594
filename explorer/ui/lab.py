"""The image lab's view: display-size panels of an image and its perturbation, and the plotly figure.

:func:`build_view` is what a slider move costs on the server; it is a plain function of the image, its
cached ``FourierFilter``/spectrum and the control values, so ``benchmarks/bench_slider.py`` times it
directly. All numbers come from ``core.perturb``, ``core.spectrum`` and ``core.display``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from core import display

LABELS = {
    "lowpass": "low-pass",
    "highpass": "high-pass",
    "noise": "Gaussian noise",
    "shuffle": "patch shuffle",
}
SPECTRAL = ("lowpass", "highpass")


@dataclass(frozen=True)
class LabParams:
    """Control values of the image lab.

    ``radius`` in cycles/mm (low-/high-pass), ``kind`` "ideal" or "gaussian", ``std`` in model units
    (noise), ``grid`` patches per side (shuffle), ``seed`` for noise and shuffle; ``max_side`` is the
    display size in pixels of the longer image side.
    """

    perturbation: str = "lowpass"
    radius: float = display.STUDY_RADIUS
    kind: str = "ideal"
    std: float = 1600.0
    grid: int = 8
    seed: int = 0
    max_side: int = 768

    @property
    def parameter(self) -> float:
        """The registry parameter of the chosen perturbation (radius, std or grid)."""
        return {"lowpass": self.radius, "highpass": self.radius, "noise": self.std, "shuffle": self.grid}[
            self.perturbation
        ]

    def describe(self) -> str:
        """One line naming the perturbation and its parameter with units."""
        if self.perturbation in SPECTRAL:
            return f"{LABELS[self.perturbation]} ({self.kind}), R = {self.radius:g} cycles/mm"
        if self.perturbation == "noise":
            return f"Gaussian noise, std {self.std:g} (model units 0..4095), seed {self.seed}"
        return f"patch shuffle, {self.grid}x{self.grid} patches, seed {self.seed}"


@dataclass
class LabView:
    """Display-resolution arrays (model units) and their 8-bit renderings, plus the figure."""

    original: np.ndarray
    perturbed: np.ndarray
    difference: np.ndarray
    panels: list[tuple[str, np.ndarray]] = field(default_factory=list)
    figure: go.Figure | None = None
    display_spacing_mm: tuple[float, float] = (1.0, 1.0)


def original_preview(mammogram: Any, fourier: Any, max_side: int, spectral: bool) -> np.ndarray:
    """The unperturbed image at display size, reduced the same way as the perturbed panel.

    Spectral perturbations are previewed by cropping the spectrum, so the original is the preview with a
    radius above the corner frequency (the identity filter); the others are area-averaged.
    """
    if spectral:
        return fourier.preview(2.0 * fourier.nyquist_mm, max_side, mode="lowpass", kind="ideal")
    return display.downsample(mammogram.pixels, max_side)


def perturbed_preview(mammogram: Any, fourier: Any, params: LabParams) -> np.ndarray:
    """The perturbed image at display size (model units)."""
    if params.perturbation in SPECTRAL:
        return fourier.preview(params.radius, params.max_side, mode=params.perturbation, kind=params.kind)
    from core.perturb import perturb

    full = perturb(
        mammogram.pixels,
        mammogram.spacing_mm,
        params.perturbation,
        parameter=params.parameter,
        seed=params.seed,
    )
    return display.downsample(full, params.max_side)


def perturbed_full(mammogram: Any, fourier: Any, params: LabParams) -> np.ndarray:
    """The perturbed image at native resolution (model units; a full inverse FFT for spectral kinds)."""
    if params.perturbation == "lowpass":
        return fourier.lowpass(params.radius, kind=params.kind)
    if params.perturbation == "highpass":
        return fourier.highpass(params.radius, kind=params.kind)
    from core.perturb import perturb

    return perturb(
        mammogram.pixels,
        mammogram.spacing_mm,
        params.perturbation,
        parameter=params.parameter,
        seed=params.seed,
    )


def build_view(
    mammogram: Any,
    fourier: Any,
    spectrum_uri: tuple[str, Any] | None,
    params: LabParams,
    window: tuple[float, float],
    invert: bool = False,
    original: np.ndarray | None = None,
    height: int = 560,
) -> LabView:
    """Everything a slider move recomputes: previews, 8-bit panels and the linked-axes figure.

    Parameters
    ----------
    mammogram : ``core.imaging.Mammogram``.
    fourier : its cached ``core.perturb.FourierFilter``.
    spectrum_uri : (PNG data URI of the coloured spectrum, ``core.spectrum.Spectrum``), once per image.
    params : control values.
    window : (centre, width) in model units for the original and (low-pass, noise, shuffle) perturbed panels.
    invert : draw tissue dark.
    original : the cached :func:`original_preview`, if the caller keeps one.
    height : figure height in CSS pixels.
    """
    spectral = params.perturbation in SPECTRAL
    orig = (
        original if original is not None else original_preview(mammogram, fourier, params.max_side, spectral)
    )
    pert = perturbed_preview(mammogram, fourier, params)
    if pert.shape != orig.shape:  # previews of different reductions: fall back to area averaging
        orig = display.downsample(mammogram.pixels, params.max_side)
        pert = display.downsample(perturbed_full(mammogram, fourier, params), params.max_side)
    diff = pert - orig
    centre, width = window
    orig8 = display.apply_window(orig, centre, width, invert)
    if params.perturbation == "highpass":
        pc, pw = display.auto_window(pert, 0.5, 99.5, tissue_only=False)  # signed image: own window
        pert8 = display.apply_window(pert, pc, pw, invert)
        pert_title = "perturbed (own window)"
    else:
        pert8 = display.apply_window(pert, centre, width, invert)
        pert_title = "perturbed"
    limit = display.symmetric_limit(diff)
    diff_rgb = display.diverging_rgb(diff, limit)
    panels = [("original", orig8), (pert_title, pert8), (f"difference (±{limit:.0f})", diff_rgb)]
    dsp = display.display_spacing(mammogram.pixels.shape, orig.shape, mammogram.spacing_mm)
    view = LabView(orig, pert, diff, panels, None, dsp)
    view.figure = _figure(view, spectrum_uri, params, height)
    if spectrum_uri is not None:
        view.panels.append(("spectrum (log |F|)", _spectrum_rgb_for_export(spectrum_uri)))
    return view


def _spectrum_rgb_for_export(spectrum_uri: tuple[str, Any]) -> np.ndarray:
    spec = spectrum_uri[1]
    return display.sequential_rgb(np.asarray(spec.image))


def spectrum_uri(spectrum: Any) -> tuple[str, Any]:
    """PNG data URI of a coloured ``Spectrum`` (cache it per image), paired with the spectrum."""
    return display.png_data_uri(display.sequential_rgb(np.asarray(spectrum.image))), spectrum


def _figure(view: LabView, spec: tuple[str, Any] | None, params: LabParams, height: int) -> go.Figure:
    n = 4 if spec is not None else 3
    titles = [t for t, _ in view.panels] + (["spectrum (cycles/mm)"] if spec is not None else [])
    fig = make_subplots(rows=1, cols=n, subplot_titles=titles, horizontal_spacing=0.03)
    dy, dx = view.display_spacing_mm
    for i, (_, img) in enumerate(view.panels[:3], start=1):
        fig.add_trace(
            go.Image(source=display.png_data_uri(img), x0=dx / 2, dx=dx, y0=dy / 2, dy=dy, hoverinfo="x+y"),
            row=1,
            col=i,
        )
    for i in (2, 3):  # zoom and pan linked across the three image panels
        fig.layout[f"xaxis{i}"].matches = "x"
        fig.layout[f"yaxis{i}"].matches = "y"
    for i in range(1, 4):
        fig.layout["xaxis" if i == 1 else f"xaxis{i}"].title = "mm"
        fig.layout["yaxis" if i == 1 else f"yaxis{i}"].scaleanchor = "x" if i == 1 else f"x{i}"
    if spec is not None:
        uri, s = spec
        fr, fc = np.asarray(s.freq_rows), np.asarray(s.freq_cols)
        sdx = float(fc[1] - fc[0]) if fc.size > 1 else 1.0
        sdy = float(fr[1] - fr[0]) if fr.size > 1 else 1.0
        fig.add_trace(
            go.Image(source=uri, x0=float(fc[0]), dx=sdx, y0=float(fr[0]), dy=sdy, hoverinfo="x+y"),
            row=1,
            col=4,
        )
        fig.layout.xaxis4.title = "cycles/mm"
        fig.layout.yaxis4.scaleanchor = "x4"
        if params.perturbation in SPECTRAL:
            r = params.radius
            dash = "solid" if params.kind == "ideal" else "dash"
            fig.add_shape(
                type="circle",
                x0=-r,
                x1=r,
                y0=-r,
                y1=r,
                xref="x4",
                yref="y4",
                line=dict(color="#00e5ff", width=2, dash=dash),
            )
        r2 = display.STUDY_RADIUS
        fig.add_shape(
            type="circle",
            x0=-r2,
            x1=r2,
            y0=-r2,
            y1=r2,
            xref="x4",
            yref="y4",
            line=dict(color="white", width=1, dash="dot"),
        )
    fig.update_layout(
        height=height,
        margin=dict(l=10, r=10, t=40, b=10),
        dragmode="pan",
        showlegend=False,
        uirevision="lab",  # keep the user's zoom across slider moves
    )
    return fig


def export_png(view: LabView, params: LabParams, source_name: str) -> bytes:
    """The panels side by side as one PNG (Pillow; no kaleido needed)."""
    return display.compose_panels(view.panels, height=512, caption=f"{source_name}: {params.describe()}")
