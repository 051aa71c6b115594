"""How the image lab draws the model's eye: probabilities and saliency pictures side by side, and the
score-versus-R curve (plotly). Presentation only: the numbers and pictures come from ``core.eye``."""

from __future__ import annotations

import math
from typing import Any

import streamlit as st

LABELS = {"malignant": "Malignant", "benign": "Benign"}
MODE_NAMES = {"lowpass": "low-pass", "highpass": "high-pass"}
MODE_COLOURS = {"lowpass": "#1f77b4", "highpass": "#d62728"}
PICTURE_WIDTH = 420  # CSS pixels per saliency picture


def _regions_text(explanation: Any, spacing_mm: tuple[float, float] | None) -> str:
    parts = []
    for rank, r in enumerate(explanation.regions, start=1):
        size = f"{r.height}×{r.width} px"
        if spacing_mm is not None:
            size += f" ({r.height * spacing_mm[0]:.1f}×{r.width * spacing_mm[1]:.1f} mm)"
        parts.append(f"{rank}: row {r.row}, col {r.col}, {size}, attention {r.attention:.2f}")
    return "Regions (upper-left in image pixels): " + "; ".join(parts)


def explanations(result: Any, params: Any, spacing_mm: tuple[float, float] | None = None) -> None:
    """Probabilities, saliency pictures and regions of the original and the perturbed image."""
    label = st.radio(
        "Saliency map", list(LABELS), format_func=LABELS.get, key="eye_label", horizontal=True,
        help="GMIC's saliency map of that class: where its global network found evidence for it.",
    )  # fmt: skip
    metrics = st.columns(4)
    for i, which in enumerate(("original", "perturbed")):
        e = getattr(result, which)
        first = which == "original"
        name = "original" if first else "perturbed"
        dm = None if first else f"{e.malignant - result.original.malignant:+.4f}"
        db = None if first else f"{e.benign - result.original.benign:+.4f}"
        metrics[2 * i].metric(f"Malignant, {name}", f"{e.malignant:.4f}", dm, delta_color="inverse")
        metrics[2 * i + 1].metric(f"Benign, {name}", f"{e.benign:.4f}", db, delta_color="off")
    for col, which in zip(st.columns(2), ("original", "perturbed"), strict=True):
        e = getattr(result, which)
        title = "Original" if which == "original" else f"Perturbed: {params.describe()}"
        col.image(result.pictures[which, label], caption=title, width=PICTURE_WIDTH)
        col.caption(_regions_text(e, spacing_mm))
    seen = result.model_input
    st.caption(
        f"{seen.describe()} Colour: {LABELS[label].lower()} saliency from 0 (transparent) to "
        f"{result.scale[label]:.2f} (bright), one scale for both pictures; yellow frame: the window the "
        "model sees; cyan boxes: the regions GMIC picked, numbered in the order it picked them."
    )


def curve(points: list, result: Any, params: Any) -> None:
    """GMIC's malignant probability against R for this image, as far as it is computed."""
    if not points and result is None:
        return
    import plotly.graph_objects as go

    fig = go.Figure()
    for mode in MODE_NAMES:
        pts = sorted((p for p in points if p.mode == mode), key=lambda p: p.radius)
        if pts:
            fig.add_trace(
                go.Scatter(
                    x=[p.radius for p in pts], y=[p.malignant for p in pts], mode="lines+markers",
                    name=f"{MODE_NAMES[mode]} (grid)", line={"color": MODE_COLOURS[mode]},
                    hovertemplate="R = %{x:g} cycles/mm<br>malignant %{y:.4f}<extra></extra>",
                )
            )  # fmt: skip
    if result is not None:
        fig.add_hline(
            y=result.original.malignant, line_dash="dash", line_color="grey",
            annotation_text=f"original {result.original.malignant:.3f}", annotation_position="top left",
        )  # fmt: skip
        if params.spectral:
            fig.add_trace(
                go.Scatter(
                    x=[params.radius], y=[result.perturbed.malignant], mode="markers",
                    marker={"symbol": "star", "size": 14, "color": MODE_COLOURS[params.perturbation]},
                    name=f"your R = {params.radius:g}",
                    hovertemplate="R = %{x:g} cycles/mm<br>malignant %{y:.4f}<extra></extra>",
                )
            )  # fmt: skip
        nyq = result.model_input.nyquist_mm
        if nyq is not None:
            # A shape takes data coordinates on a log axis, an annotation takes log10 of them.
            fig.add_vline(x=nyq, line_dash="dot", line_color="black")
            fig.add_annotation(
                x=math.log10(nyq), y=0.02, yref="y", text=f"model Nyquist {nyq:.3g}", showarrow=False,
                xanchor="left", font={"size": 11},
            )  # fmt: skip
    fig.update_layout(
        title="GMIC's malignant probability for this image against the filter radius R",
        xaxis={"title": "R (cycles/mm, log scale)", "type": "log", "range": _x_range(points, result, params)},
        yaxis={"title": "malignant probability", "range": [0, 1]},
        height=360, margin={"l": 60, "r": 20, "t": 50, "b": 50}, legend={"orientation": "h", "y": -0.25},
    )  # fmt: skip
    st.plotly_chart(fig, key="eye_curve", config={"displaylogo": False})


def _x_range(points: list, result: Any, params: Any) -> list[float]:
    """The log-axis range (log10 units) over the radii shown, the user's R and the model's Nyquist."""
    values = [p.radius for p in points]
    if params.spectral:
        values.append(params.radius)
    if result is not None and result.model_input.nyquist_mm is not None:
        values.append(result.model_input.nyquist_mm)
    values = [v for v in values if v > 0] or [0.25, 4.0]
    return [math.log10(min(values) / 1.3), math.log10(max(values) * 1.3)]
