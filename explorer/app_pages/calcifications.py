"""Calcifications: native-resolution patches across a series of low-pass radii, with visibility per radius.

The study's Figures 3, 5 and 6 in the browser: each candidate speck (from ``core.calcs``, from the synthetic
cohort's ground truth, or a spot the user marks) becomes a strip of patches, original first and then ever
stronger low-pass filtering, all in one window so the fading is visible; beside it the speck's visibility
(contrast-to-noise against its annulus, ``core.calcs.visibility``) per radius.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import plotly.graph_objects as go
import streamlit as st

from core import display
from core.errors import ExplorerError
from explorer.ui import loaders
from explorer.ui.source import SYNTHETIC, ImageRef, current_image

RADIUS_OPTIONS = [8.0, 5.0, 4.0, 3.0, 2.0, 1.5, 1.0, 0.75, 0.5, 0.35, 0.25, 0.15, 0.1]
DEFAULT_RADII = [4.0, 2.0, 1.0, 0.5, 0.25]
DETECTED, TRUTH, MARKED = "Detected candidates", "Ground truth (synthetic cohort)", "A spot I mark"


@st.cache_data(max_entries=4, show_spinner="Looking for bright specks (0.1-1 mm)...")
def _candidates(key: str, _mammo: Any, max_count: int) -> list[tuple[float, float, float, float]]:
    """(row, col, diameter_mm, CNR) of the detected specks; centres stay fractional (the centroid), so that
    the strip's CNR at "original" is the detector's own (``Candidate.cnr``)."""
    from core.calcs import find_candidates

    found = find_candidates(_mammo.pixels, _mammo.spacing_mm, max_count=max_count)
    return [(float(c.row), float(c.col), float(c.diameter_mm), float(c.cnr)) for c in found]


@st.cache_data(max_entries=6, show_spinner="Low-pass filtering at each radius (full resolution)...")
def _series(
    key: str,
    _mammo: Any,
    _fourier: Any,
    spots: tuple[tuple[float, float, float], ...],
    size_mm: float,
    radii: tuple[float, ...],
) -> tuple[np.ndarray, np.ndarray]:
    """Patches (n_spots, 1 + n_radii, h, w) and visibility (n_spots, 1 + n_radii); index 0 = original."""
    from core.calcs import calcification_sweep

    sweep = calcification_sweep(
        _mammo.pixels, _mammo.spacing_mm, list(spots), (math.inf, *radii), fourier=_fourier, patch_mm=size_mm
    )
    return sweep.patches, sweep.visibility


def _findings_path(ref: ImageRef) -> Path | None:
    if not ref.manifest:
        return None
    path = Path(ref.manifest).parent / "findings.csv"
    return path if path.is_file() else None


def _findings_for(ref: ImageRef, mammo: Any) -> Any:
    """Ground-truth calcifications of this image from the cohort's findings.csv (individual specks), or None.

    Cluster rows (``kind`` ``calc_cluster``: the cluster's extent) and masses are left out: a visibility
    score is about one speck against its surroundings.
    """
    path = _findings_path(ref)
    if path is None:
        return None
    df = loaders.read_findings(str(path), loaders.mtime(path))
    if "image_id" in df:
        sel = df[df["image_id"].astype(str) == ref.name]
    else:
        info = dict(ref.info)
        sel = df[df["exam_id"].astype(str) == info.get("exam_id", "")]
        sel = sel[
            (sel["laterality"].astype(str) == str(mammo.laterality))
            & (sel["view"].astype(str) == str(mammo.view))
        ]
    kind = sel["kind"].astype(str)
    return sel[kind.str.contains("calc", case=False) & ~kind.str.contains("cluster", case=False)]


def _jump_to_cluster(manifest: str) -> None:
    """Button callback: select a malignant image with a calcification cluster (runs before the script)."""
    path = Path(manifest).parent / "findings.csv"
    df = loaders.read_findings(str(path), loaders.mtime(path))
    calc = df[df["kind"].astype(str).str.contains("calc", case=False)]
    man = loaders.read_manifest(manifest, loaders.mtime(manifest))
    mal = man[pd.to_numeric(man["label_malignant"], errors="coerce") == 1]
    ids = set(calc["image_id"].astype(str)) if "image_id" in calc else set()
    hits = [i for i in mal["image_id"].astype(str) if i in ids]
    if not hits:
        st.session_state["calc_jump_msg"] = "No malignant breast with a calcification cluster in this cohort."
        return
    current = st.session_state.get("src_image_id")
    nxt = hits[(hits.index(current) + 1) % len(hits)] if current in hits else hits[0]
    st.session_state["src_kind"] = SYNTHETIC
    st.session_state["src_only_malignant"] = False
    st.session_state["src_image_id"] = nxt
    st.session_state["calc_source"] = TRUTH


def _spots(ref: ImageRef, mammo: Any, key: str) -> list[tuple[str, tuple[float, float], float]]:
    """(label, (row, col) in pixels, diameter in mm) of the spots to show. Labels carry no CNR: the strip's
    caption takes it from the same sweep as its plot."""
    truth = _findings_for(ref, mammo)
    options = [DETECTED, MARKED]
    if truth is not None and len(truth):
        options.insert(0, TRUTH)
    if st.session_state.get("calc_source") not in options:
        st.session_state["calc_source"] = options[0]
    c1, c2 = st.columns([2, 3])
    source = c1.radio("Specks", options, key="calc_source")
    sr, sc = mammo.spacing_mm
    if source == TRUTH:
        rows = truth.reset_index(drop=True)
        n = 1
        if len(rows) > 1:
            n = c2.slider(
                "How many specks (largest first)", 1, len(rows), min(4, len(rows)), key="calc_truth_n"
            )
        c2.caption(f"{len(rows)} ground-truth calcification(s) in this breast (the cohort's findings.csv).")
        rows = rows.sort_values("diameter_mm", ascending=False).head(n).reset_index(drop=True)
        spots = []
        for _, f in rows.iterrows():
            label = f"{f['kind']} ({f.get('pathology', '')})"
            spots.append((label, (float(f["row"]), float(f["col"])), float(f["diameter_mm"])))
        return spots
    if source == MARKED:
        h, w = mammo.pixels.shape
        a, b, c = c2.columns(3)
        y = a.number_input("y (mm)", 0.0, h * sr, round(h * sr / 2, 1), 0.5, key="calc_y")
        x = b.number_input("x (mm)", 0.0, w * sc, round(w * sc / 2, 1), 0.5, key="calc_x")
        d = c.number_input("speck diameter (mm)", 0.1, 2.0, 0.3, 0.05, key="calc_d")
        return [("marked spot", (y / sr, x / sc), float(d))]
    n = c2.slider("How many (strongest contrast-to-noise first)", 1, 12, 4, key="calc_n")
    found = _candidates(key, mammo, 12)
    if not found:
        c2.info("No candidate specks of 0.1-1 mm found in this image.")
    found = sorted(found, key=lambda t: -t[3])[:n]
    return [(f"candidate {i + 1}", (r, c), d) for i, (r, c, d, _) in enumerate(found)]


def _overview(mammo: Any, key: str, spots: list[tuple[str, tuple[float, float], float]]) -> go.Figure:
    small = display.downsample(mammo.pixels, 384)
    centre, width = loaders.window_presets(key, mammo)["Auto (breast 1-99 %)"]
    dy, dx = display.display_spacing(mammo.pixels.shape, small.shape, mammo.spacing_mm)
    fig = go.Figure(
        go.Image(source=display.png_data_uri(display.apply_window(small, centre, width)), dx=dx, dy=dy)
    )
    sr, sc = mammo.spacing_mm
    fig.add_trace(
        go.Scatter(
            x=[p[1][1] * sc for p in spots],
            y=[p[1][0] * sr for p in spots],
            text=[str(i + 1) for i in range(len(spots))],
            mode="markers+text",
            textposition="top right",
            marker=dict(color="rgba(0,0,0,0)", size=14, line=dict(color="#00e5ff", width=2)),
            textfont=dict(color="#00e5ff"),
            hovertext=[p[0] for p in spots],
        )
    )
    fig.update_layout(height=420, margin=dict(l=0, r=0, t=10, b=0), showlegend=False)
    fig.update_yaxes(scaleanchor="x")
    return fig


def _vis_plot(radii: tuple[float, ...], vis: np.ndarray) -> go.Figure:
    fig = go.Figure()
    fig.add_trace(go.Scatter(x=list(radii), y=vis[1:], mode="lines+markers", name="low-pass"))
    fig.add_hline(
        y=float(vis[0]), line_dash="dot", annotation_text="original", annotation_position="top left"
    )
    fig.add_vline(x=display.STUDY_RADIUS, line_dash="dash", line_color="grey")
    fig.update_xaxes(
        type="log",
        title="R (cycles/mm)",
        autorange="reversed",
        tickvals=list(radii),
        ticktext=[f"{r:g}" for r in radii],
    )
    fig.update_yaxes(title="visibility (CNR)")
    fig.update_layout(height=190, margin=dict(l=0, r=0, t=5, b=0), showlegend=False)
    return fig


def render() -> None:
    st.header("Calcifications")
    got = current_image()
    if got is None:
        return
    ref, mammo = got
    key = ref.key
    if _findings_path(ref) is not None:
        st.button(
            "Jump to a malignant breast with a calcification cluster",
            on_click=_jump_to_cluster,
            args=(ref.manifest,),
            key="calc_jump",
        )
        if msg := st.session_state.pop("calc_jump_msg", None):
            st.info(msg)
    try:
        spots = _spots(ref, mammo, key)
        c1, c2 = st.columns([3, 1])
        radii = c1.multiselect(
            "Low-pass radii R (cycles/mm), strongest last",
            RADIUS_OPTIONS,
            DEFAULT_RADII,
            key="calc_radii",
        )
        size = c2.select_slider("Patch (mm)", [3.0, 5.0, 8.0, 12.0], 5.0, key="calc_size")
        radii_t = tuple(sorted((float(r) for r in radii), reverse=True))
        if not spots or not radii_t:
            st.info("Choose at least one speck and one radius.")
            return
        fourier = loaders.fourier_filter(key, mammo)
        triples = tuple((p[1][0], p[1][1], p[2]) for p in spots)
        patches, vis = _series(key, mammo, fourier, triples, float(size), radii_t)
    except ExplorerError as exc:
        st.error(str(exc))
        return
    left, right = st.columns([1, 3])
    with left:
        st.plotly_chart(_overview(mammo, key, spots), key="calc_overview", config={"displaylogo": False})
        st.caption("Where the specks are (numbers match the strips).")
    with right:
        st.caption(
            "Each strip: the original, then the ideal low-pass (as in the study) at each R in cycles/mm, "
            "native pixels, one window per strip. CNR: the speck's contrast-to-noise ratio against its "
            "annulus in the original, the dotted line of its plot."
        )
        labels = ["original", *(f"R = {r:g}" for r in radii_t)]
        for i, (label, _, d) in enumerate(spots):
            a, b = st.columns([3, 2])
            ref_patch = patches[i][0]
            centre, width = display.auto_window(ref_patch, 1.0, 99.8, tissue_only=False)
            width_px = len(labels) * ref_patch.shape[1]
            strip = display.patch_strip(
                list(patches[i]), centre, width, labels=labels, scale=max(1, min(32, 720 // width_px))
            )
            a.image(
                strip, caption=f"{i + 1}. {label} (CNR {vis[i][0]:.1f}), ⌀ {d:.2f} mm", output_format="PNG"
            )
            b.plotly_chart(_vis_plot(radii_t, vis[i]), key=f"calc_vis_{i}", config={"displayModeBar": False})


render()
