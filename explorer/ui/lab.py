"""The image lab's view: display-size panels of an image and its perturbation, and the plotly figure.

:func:`build_view` is what a slider move costs on the server; it is a plain function of the image, its
cached ``PreparedImage``/spectrum and the control values, so ``benchmarks/bench_slider.py`` times it
directly. All numbers come from ``core.perturb`` (the image's cached :class:`core.perturb.PreparedImage`),
``core.spectrum`` and ``core.display``; the perturbations and their labels from its registry.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import plotly.graph_objects as go

from core import display
from core.perturb import PERTURBATIONS

LABELS = {name: p.label for name, p in PERTURBATIONS.items()}
SPECTRAL = tuple(name for name, p in PERTURBATIONS.items() if p.spectral)
PENDING = "lab_pending"  # session key other pages set: {"perturbation": ..., "parameter": ..., "seed": ...}


def request_perturbation(perturbation: str, parameter: float | None, seed: int = 0) -> None:
    """Ask the image lab to open with this perturbation (call before ``st.switch_page``)."""
    import streamlit as st

    st.session_state[PENDING] = {"perturbation": perturbation, "parameter": parameter, "seed": seed}


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
        return getattr(self, PERTURBATIONS[self.perturbation].parameter)

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
    spectrum: Any = None


def original_preview(mammogram: Any, image: Any, max_side: int, spectral: bool) -> np.ndarray:
    """The unperturbed image at display size, reduced the same way as the perturbed panel.

    Spectral perturbations are previewed by cropping the spectrum, so the original is the preview with a
    radius above the corner frequency (the identity filter); the others are area-averaged.
    """
    if spectral:
        return image.preview("lowpass", math.inf, max_side)
    return display.downsample(mammogram.pixels, max_side)


def perturbed_preview(mammogram: Any, image: Any, params: LabParams) -> np.ndarray:
    """The perturbed image at display size (model units): spectral previews from the cropped spectrum,
    the others area-averaged."""
    if params.perturbation in SPECTRAL:
        return image.preview(params.perturbation, params.radius, params.max_side, kind=params.kind)
    return display.downsample(perturbed_full(mammogram, image, params), params.max_side)


def perturbed_full(mammogram: Any, image: Any, params: LabParams) -> np.ndarray:
    """The perturbed image at native resolution (model units; a full inverse FFT for spectral kinds)."""
    kind = params.kind if params.perturbation in SPECTRAL else "ideal"
    return image.apply(params.perturbation, params.parameter, kind=kind, seed=params.seed)


def build_view(
    mammogram: Any,
    image: Any,
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
    image : its cached ``core.perturb.PreparedImage``.
    spectrum_uri : (PNG data URI of the coloured spectrum, ``core.spectrum.Spectrum``), once per image.
    params : control values.
    window : (centre, width) in model units for the original and (low-pass, noise, shuffle) perturbed panels.
    invert : draw tissue dark.
    original : the cached :func:`original_preview`, if the caller keeps one.
    height : figure height in CSS pixels.
    """
    spectral = params.perturbation in SPECTRAL
    orig = original if original is not None else original_preview(mammogram, image, params.max_side, spectral)
    pert = perturbed_preview(mammogram, image, params)
    if pert.shape != orig.shape:  # previews of different reductions: fall back to area averaging
        orig = display.downsample(mammogram.pixels, params.max_side)
        pert = display.downsample(perturbed_full(mammogram, image, params), params.max_side)
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
    diff_idx = display.diverging_index(diff, limit)
    panels = [("original", orig8), (pert_title, pert8), (f"difference (±{limit:.0f})", diff_idx)]
    dsp = display.display_spacing(mammogram.pixels.shape, orig.shape, mammogram.spacing_mm)
    view = LabView(orig, pert, diff, panels, None, dsp)
    uris = display.png_data_uris([orig8, pert8, diff_idx], [None, None, display.DIVERGING_PALETTE])
    titles = [t for t, _ in panels]
    extent = (orig.shape[0] * dsp[0], orig.shape[1] * dsp[1])
    view.figure = _figure(uris, titles, dsp, extent, spectrum_uri, params, height)
    view.spectrum = spectrum_uri[1] if spectrum_uri is not None else None
    return view


def spectrum_uri(spectrum: Any) -> tuple[str, Any]:
    """PNG data URI of a coloured ``Spectrum`` (cache it per image), paired with the spectrum."""
    return display.png_data_uri(display.sequential_rgb(np.asarray(spectrum.image))), spectrum


def _circle(r: float, color: str, width: float, dash: str) -> dict:
    return dict(
        type="circle",
        xref="x4",
        yref="y4",
        x0=-r,
        x1=r,
        y0=-r,
        y1=r,
        line=dict(color=color, width=width, dash=dash),
    )


def _figure(
    uris: list[str],
    titles: list[str],
    dsp: tuple[float, float],
    dsp_extent: tuple[float, float],
    spec: tuple[str, Any] | None,
    params: LabParams,
    height: int,
) -> go.Figure:
    """Three image panels with matched (linked) axes in mm, and the spectrum with the cutoff circle.

    Built from plain dicts: ``make_subplots`` alone would cost ~30 ms of the slider budget.
    """
    n = 4 if spec is not None else 3
    gap, spec_gap = 0.012, 0.05  # the spectrum has its own tick labels: more room before it
    width = (1.0 - gap * 2 - (spec_gap if n == 4 else 0.0)) / n
    dy, dx = dsp
    data: list[dict] = []
    layout: dict[str, Any] = dict(
        height=height,
        margin=dict(l=10, r=10, t=40, b=10),
        dragmode="pan",
        showlegend=False,
        uirevision="lab",  # keep the user's zoom across slider moves
        annotations=[],
        shapes=[],
    )
    for i in range(1, n + 1):
        xa, ya = ("xaxis", "yaxis") if i == 1 else (f"xaxis{i}", f"yaxis{i}")
        x0 = (i - 1) * (width + gap) + (spec_gap - gap if i == 4 else 0.0)
        layout[xa] = dict(domain=[x0, x0 + width], anchor=f"y{i}" if i > 1 else "y", constrain="domain")
        layout[ya] = dict(
            anchor=f"x{i}" if i > 1 else "x", scaleanchor=f"x{i}" if i > 1 else "x", autorange="reversed"
        )
        if i in (2, 3):  # zoom and pan linked across the three image panels
            layout[xa]["matches"] = "x"
            layout[ya]["matches"] = "y"
            layout[ya]["showticklabels"] = False
        if i <= 3:
            layout[xa]["title"] = dict(text="mm")
            data.append(
                dict(
                    type="image",
                    source=uris[i - 1],
                    x0=dx / 2,
                    dx=dx,
                    y0=dy / 2,
                    dy=dy,
                    hoverinfo="x+y",
                    xaxis=f"x{i}" if i > 1 else "x",
                    yaxis=f"y{i}" if i > 1 else "y",
                )
            )
        title = titles[i - 1] if i <= 3 else "spectrum, log |F| (cycles/mm)"
        layout["annotations"].append(
            dict(
                text=title,
                x=x0 + width / 2,
                y=1.0,
                xref="paper",
                yref="paper",
                xanchor="center",
                yanchor="bottom",
                showarrow=False,
                font=dict(size=14),
            )
        )
    # Image traces cannot be box-selected; an invisible scatter over the first panel enables the box-select
    # tool, whose box (in mm) picks the native-resolution inspector's region.
    data.append(
        dict(type="scatter", x=[0.0, dsp_extent[1]], y=[0.0, dsp_extent[0]], mode="markers",
             marker=dict(opacity=0), hoverinfo="skip", showlegend=False, xaxis="x", yaxis="y")
    )  # fmt: skip
    if spec is not None:
        uri, s = spec
        fr, fc = np.asarray(s.freq_rows), np.asarray(s.freq_cols)
        sdx = float(fc[1] - fc[0]) if fc.size > 1 else 1.0
        sdy = float(fr[1] - fr[0]) if fr.size > 1 else 1.0
        data.append(
            dict(
                type="image",
                source=uri,
                x0=float(fc[0]),
                dx=sdx,
                y0=float(fr[0]),
                dy=sdy,
                hoverinfo="x+y",
                xaxis="x4",
                yaxis="y4",
            )
        )
        layout["xaxis4"]["title"] = dict(text="cycles/mm")
        if params.perturbation in SPECTRAL:
            dash = "solid" if params.kind == "ideal" else "dash"
            layout["shapes"].append(_circle(params.radius, "#00e5ff", 2, dash))
        layout["shapes"].append(_circle(display.STUDY_RADIUS, "white", 1, "dot"))
    return go.Figure(dict(data=data, layout=layout))


def export_png(view: LabView, params: LabParams, source_name: str) -> bytes:
    """The panels side by side as one PNG (Pillow; no kaleido needed)."""
    panels = list(view.panels[:2]) + [(view.panels[2][0], display.DIVERGING_PALETTE[view.panels[2][1]])]
    if view.spectrum is not None:
        spec = view.spectrum
        rgb = display.sequential_rgb(np.asarray(spec.image))
        fr, fc = np.asarray(spec.freq_rows), np.asarray(spec.freq_cols)
        if fr.size > 1 and fc.size > 1:
            dr, dc = float(fr[1] - fr[0]), float(fc[1] - fc[0])
            rgb = display.resample_aspect(rgb, dr, dc)  # isotropic in cycles/mm: the cutoff is a circle
            if params.perturbation in SPECTRAL:
                centre = (-float(fc[0]) / dr, -float(fr[0]) / dr)  # zero frequency, in resampled pixels
                rgb = display.draw_ellipse(rgb, centre, (params.radius / dr, params.radius / dr))
        panels.append(
            (
                f"spectrum, R = {params.radius:g} cycles/mm"
                if params.perturbation in SPECTRAL
                else "spectrum (log |F|)",
                rgb,
            )
        )
    return display.compose_panels(panels, height=512, caption=f"{source_name}: {params.describe()}")
