"""Image lab: scrub a perturbation and watch the image, the difference and the spectrum, side by side."""

from __future__ import annotations

import io
import math
import tempfile
import time
from pathlib import Path
from typing import Any

import streamlit as st

from core import display
from core.errors import ExplorerError
from core.perturb import PERTURBATIONS
from explorer.ui import lab, loaders
from explorer.ui.source import ImageRef, current_image


def _apply_pending(radii: list[float]) -> None:
    pending = st.session_state.pop(lab.PENDING, None)
    if not pending or pending.get("perturbation") not in PERTURBATIONS:
        return
    name, value = pending["perturbation"], pending.get("parameter")
    st.session_state["lab_pert"] = name
    st.session_state["lab_seed"] = int(pending.get("seed") or 0)
    if value is None:
        return
    if name in lab.SPECTRAL and value > 0:
        st.session_state["lab_radius"] = display.nearest(radii, float(value))
    elif name == "noise":
        st.session_state["lab_std"] = float(min(max(value, 0.0), 4000.0))
    elif name == "shuffle":
        st.session_state["lab_grid"] = int(min(max(value, 1), 16))


def _radius_label(radii: list[float], nyq: float, corner: float):
    def fmt(v: float) -> str:
        tags = []
        if abs(v - display.STUDY_RADIUS) < 1e-9:
            tags.append("study R")
        if abs(v - round(nyq, 4)) < 1e-9:
            tags.append("Nyquist")
        if abs(v - round(corner, 4)) < 1e-9:
            tags.append("corner: identity")
        return f"{v:g}" + (f" ({', '.join(tags)})" if tags else "")

    return fmt


def _controls(fourier: Any, mammo: Any) -> lab.LabParams:
    corner = float(fourier.nyquist_mm)
    radii = display.radius_choices(mammo.spacing_mm, corner)
    nyq = display.nyquist_axis(mammo.spacing_mm)
    _apply_pending(radii)
    if st.session_state.get("lab_radius") not in radii:
        st.session_state["lab_radius"] = display.nearest(radii, display.STUDY_RADIUS)
    c1, c2, c3 = st.columns([1.2, 3, 1.4])
    name = c1.radio("Perturbation", list(PERTURBATIONS), format_func=lab.LABELS.get, key="lab_pert")
    radius, kind, std, grid, seed = display.STUDY_RADIUS, "ideal", 1600.0, 8, 0
    if name in lab.SPECTRAL:
        radius = c2.select_slider(
            "Radius R (cycles/mm, logarithmic)",
            options=radii,
            format_func=_radius_label(radii, nyq, corner),
            key="lab_radius",
            help=f"Low-pass keeps |f| <= R, high-pass keeps |f| > R. The study used R = 2. Nyquist along "
            f"the coarser axis is {nyq:g} cycles/mm; above the corner frequency {corner:.3g} a low-pass is "
            "the identity.",
        )
        c2.caption(
            f"Marks: the study's R = {display.STUDY_RADIUS:g} · Nyquist {nyq:g} (coarser axis) · corner "
            f"{corner:.3g} (above it a low-pass is the identity). Pixel spacing {mammo.spacing_mm[0]:g}×"
            f"{mammo.spacing_mm[1]:g} mm."
        )
        kind = c3.radio(
            "Filter",
            ["ideal", "gaussian"],
            key="lab_kind",
            horizontal=True,
            help="ideal: a hard cut at R (the study); gaussian: exp(-|f|²/2R²).",
        )
    elif name == "noise":
        st.session_state.setdefault("lab_std", 1600.0)
        std = c2.slider(
            "Noise standard deviation (model units, 0..4095 scale)",
            0.0,
            4000.0,
            step=50.0,
            key="lab_std",
            help="The study used 1600.",
        )
        seed = int(c3.number_input("Seed", 0, 2**31 - 1, key="lab_seed"))
    else:
        st.session_state.setdefault("lab_grid", 8)
        grid = c2.slider("Patches per side", 1, 16, key="lab_grid", help="The study used 8 (64 patches).")
        seed = int(c3.number_input("Seed", 0, 2**31 - 1, key="lab_seed"))
    max_side = c1.selectbox(
        "Panel size (px)",
        [512, 768, 1024, 1536],
        index=1,
        key="lab_max_side",
        help="Longer side of each panel. Larger shows finer frequencies but costs more per slider move.",
    )
    return lab.LabParams(
        perturbation=name,
        radius=float(radius),
        kind=kind,
        std=float(std),
        grid=int(grid),
        seed=seed,
        max_side=int(max_side),
    )


def _window_controls(key: str, mammo: Any) -> tuple[tuple[float, float], bool]:
    presets = loaders.window_presets(key, mammo)
    names = list(presets)
    if st.session_state.get("lab_window") not in names + ["Custom"]:
        st.session_state["lab_window"] = names[0]
    c1, c2, c3, c4 = st.columns([2, 2, 2, 1])
    has_dicom = "DICOM window" in presets
    if c4.button(
        "Reset to DICOM window",
        disabled=not has_dicom,
        help=None if has_dicom else "This file carries no DICOM VOI window.",
    ):
        st.session_state["lab_window"] = "DICOM window"
    preset = c1.selectbox("Window / level", names + ["Custom"], key="lab_window")
    base = presets.get(preset) or presets[names[0]]
    if preset == "Custom":
        centre = c2.slider("Level (centre)", 0.0, 4095.0, float(base[0]), 1.0, key="lab_level")
        width = c3.slider("Window (width)", 1.0, 4095.0, float(base[1]), 1.0, key="lab_width")
    else:
        centre, width = base
        c2.metric("Level", f"{centre:.0f}")
        c3.metric("Width", f"{width:.0f}")
    invert = c4.toggle("Invert", key="lab_invert")
    return (float(centre), float(width)), invert


def _box_to_inspector(event: Any, mammo: Any) -> None:
    """A box drawn on an image panel (box-select tool) becomes the inspector's region.

    Runs before the inspector's widgets are drawn, so it may set their values."""
    try:
        boxes = event["selection"]["box"]
    except (KeyError, TypeError):
        return
    if not boxes:
        return
    box = boxes[-1]
    xs, ys = box.get("x") or [], box.get("y") or []
    if len(xs) != 2 or len(ys) != 2 or str(box.get("xref", "x")) not in ("x", "x2", "x3"):
        return
    h, w = mammo.pixels.shape
    sr, sc = mammo.spacing_mm
    side = max(abs(xs[1] - xs[0]), abs(ys[1] - ys[0]))
    region = (float(min(max(side, 1.0), 80.0)), float(sum(ys) / 2), float(sum(xs) / 2))
    if st.session_state.get("insp_box") == region:
        return  # the same selection as last time: leave the user's edits alone
    st.session_state["insp_box"] = region
    st.session_state["insp_size"] = round(region[0], 1)
    st.session_state["insp_y"] = round(min(max(region[1], 0.0), h * sr), 1)
    st.session_state["insp_x"] = round(min(max(region[2], 0.0), w * sc), 1)
    st.session_state["insp_show"] = True


def _inspector(
    key: str, mammo: Any, fourier: Any, params: lab.LabParams, window: tuple[float, float], invert: bool
) -> None:
    if st.session_state.get("insp_for") != key:  # a new image: centre the region on its breast
        st.session_state["insp_for"] = key
        cy, cx = display.tissue_centre_mm(mammo.pixels, mammo.spacing_mm)
        st.session_state["insp_y"], st.session_state["insp_x"] = round(cy, 1), round(cx, 1)
    expanded = bool(st.session_state.get("insp_show"))
    with st.expander("Native-resolution inspector (full resolution in a region)", expanded=expanded):
        h, w = mammo.pixels.shape
        sr, sc = mammo.spacing_mm
        st.caption(
            "Pick the region with the box-select tool of the figure's toolbar, or type it here. The panels "
            "above are reduced to display size; here every native pixel is shown."
        )
        c1, c2, c3, c4 = st.columns(4)
        st.session_state.setdefault("insp_size", 10.0)  # defaults live in the state (the box sets them)
        y = c1.number_input("Centre y (mm, as on the axes)", 0.0, h * sr, step=1.0, key="insp_y")
        x = c2.number_input("Centre x (mm)", 0.0, w * sc, step=1.0, key="insp_x")
        size = c3.number_input("Region side (mm)", 1.0, 80.0, step=1.0, key="insp_size")
        show = c4.toggle(
            "Show", key="insp_show", help="Computes the perturbation at full resolution (cached)."
        )
        if not show:
            return
        from core.calcs import cut_patch

        t0 = time.perf_counter()
        full = _full_perturbed(key, mammo, fourier, params)
        centre = (int(round(y / sr)), int(round(x / sc)))
        a = cut_patch(mammo.pixels, centre, size, mammo.spacing_mm)
        b = cut_patch(full, centre, size, mammo.spacing_mm)
        diff = b - a
        f = max(1, min(32, 360 // max(a.shape)))
        grey_a = display.apply_window(a, *window, invert)
        if params.perturbation == "highpass":
            grey_b = display.apply_window(b, *display.auto_window(b, 0.5, 99.5, tissue_only=False), invert)
        else:
            grey_b = display.apply_window(b, *window, invert)
        limit = display.symmetric_limit(diff)
        cols = st.columns(3)
        for col, img, cap in (
            (cols[0], grey_a, "original"),
            (cols[1], grey_b, params.describe()),
            (cols[2], display.diverging_rgb(diff, limit), f"difference (±{limit:.0f} model units)"),
        ):
            col.image(display.upscale(img, f), caption=cap, output_format="PNG")
        st.caption(
            f"{a.shape[0]}×{a.shape[1]} native pixels ({size:g} mm) around y {y:g}, x {x:g} mm, each shown "
            f"as {f}×{f} screen pixels; {1000 * (time.perf_counter() - t0):.0f} ms."
        )


@st.cache_resource(max_entries=2, show_spinner="Perturbing at full resolution...")
def _full_perturbed(key: str, _mammo: Any, _fourier: Any, params: lab.LabParams) -> Any:
    return lab.perturbed_full(_mammo, _fourier, params)


@st.cache_resource(max_entries=3, show_spinner=False)
def _spectrum_uri(key: str, _mammo: Any) -> tuple[str, Any]:
    return lab.spectrum_uri(loaders.log_spectrum(key, _mammo))


@st.cache_resource(max_entries=6, show_spinner=False)
def _original(key: str, _mammo: Any, _fourier: Any, max_side: int, spectral: bool) -> Any:
    return lab.original_preview(_mammo, _fourier, max_side, spectral)


# A high-pass image is zero-mean: stored as is, about half its pixels would clip at 0 (as `mammo-robust
# perturb --offset 2048` does on the command line, the export shifts it to mid-range and says so).
HIGHPASS_EXPORT_OFFSET = 2048.0


def _dicom_bytes(mammo: Any, full: Any, perturbation: str) -> tuple[bytes, str]:
    """The perturbed image as DICOM bytes, and a note on any offset or clipping (empty if none)."""
    import numpy as np

    from core.imaging import save_dicom

    offset = HIGHPASS_EXPORT_OFFSET if perturbation == "highpass" else 0.0
    pixels = full + np.float32(offset) if offset else full
    clipped = int(np.count_nonzero((pixels < 0) | (pixels > 4095)))
    notes = []
    if offset:
        notes.append(f"high-pass values shifted by +{offset:g} so that negative values survive")
    if clipped:
        share = 100 * clipped / pixels.size
        notes.append(f"{clipped} pixels ({share:.2f}%) clipped to 0..4095 (12-bit DICOM)")
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "perturbed.dcm"
        derivation = f"{perturbation} (Mammo Robustness Explorer)"
        if offset:
            derivation += f", offset {offset:+g}"
        save_dicom(pixels, path, template=mammo, derivation=derivation)
        return path.read_bytes(), "; ".join(notes)


@st.fragment
def lab_panel(ref: ImageRef, mammo: Any) -> None:
    """Controls and panels; a control change reruns only this fragment."""
    try:
        _lab_panel(ref, mammo)
    except ExplorerError as exc:  # a fragment rerun bypasses render()'s handler
        st.error(str(exc))


def _lab_panel(ref: ImageRef, mammo: Any) -> None:
    key = ref.key
    fourier = loaders.prepared_image(key, mammo)  # every perturbation of the image, its FFT taken once
    t0 = time.perf_counter()
    params = _controls(fourier, mammo)
    window, invert = _window_controls(key, mammo)
    spec = _spectrum_uri(key, mammo)
    spectral = params.perturbation in lab.SPECTRAL
    original = _original(key, mammo, fourier, params.max_side, spectral)
    view = lab.build_view(mammo, fourier, spec, params, window, invert, original=original)
    event = st.plotly_chart(
        view.figure,
        key="lab_figure",
        config={"scrollZoom": True, "displaylogo": False},
        on_select="rerun",
        selection_mode="box",
    )
    _box_to_inspector(event, mammo)
    shown_nyq = fourier.preview_band_mm(params.max_side) if spectral else math.inf
    if spectral and params.radius > shown_nyq:
        what = (
            "removes only finer detail than they can show, so they hardly change"
            if params.perturbation == "lowpass"
            else "keeps only finer detail than they can show, so the perturbed panel is nearly blank"
        )
        st.info(
            f"At this panel size one screen pixel is {max(view.display_spacing_mm):.2g} mm, so the panels "
            f"show all frequencies only up to {shown_nyq:.2g} cycles/mm: a "
            f"{lab.LABELS[params.perturbation]} at R = {params.radius:g} {what}. See it at full resolution "
            "in the native-resolution inspector "
            "below (or choose a larger panel size)."
        )
    ms = (time.perf_counter() - t0) * 1000
    st.session_state["lab_last_ms"] = ms
    st.session_state["lab_last_params"] = params
    st.caption(
        f"{params.describe()}  ·  panels at {view.original.shape[0]}×{view.original.shape[1]} display pixels "
        f"({view.display_spacing_mm[0]:.3g} mm each)  ·  server time for this update: {ms:.0f} ms. "
        "Drag to pan, scroll to zoom; the three image panels move together. Cyan circle: cutoff R "
        "(dashed: Gaussian σ); dotted white: the study's R = 2."
    )
    c1, c2, _ = st.columns([1, 1, 3])
    stem = Path(ref.name).stem
    c1.download_button(
        "Download panels (PNG)",
        data=lambda: lab.export_png(view, params, ref.name),
        file_name=f"{stem}_{params.perturbation}.png",
        mime="image/png",
        key="lab_dl_png",
    )
    if c2.button("Prepare perturbed DICOM", key="lab_prep_dcm"):
        try:
            full = _full_perturbed(key, mammo, fourier, params)
            st.session_state["lab_dicom"] = (params, *_dicom_bytes(mammo, full, params.perturbation))
        except ExplorerError as exc:
            st.error(str(exc))
    prepared = st.session_state.get("lab_dicom")
    if prepared is not None and prepared[0] == params:
        if prepared[2]:
            c2.warning(f"DICOM export: {prepared[2]}.")
        c2.download_button(
            "Download perturbed DICOM",
            data=io.BytesIO(prepared[1]).getvalue(),
            file_name=f"{stem}_{params.perturbation}.dcm",
            mime="application/dicom",
            key="lab_dl_dcm",
        )
    _inspector(key, mammo, fourier, params, window, invert)


def render() -> None:
    st.header("Image lab")
    got = current_image()
    if got is None:
        return
    ref, mammo = got
    try:
        lab_panel(ref, mammo)
    except ExplorerError as exc:
        st.error(str(exc))


render()
