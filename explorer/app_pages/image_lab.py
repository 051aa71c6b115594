"""Image lab: scrub a perturbation and watch the image, the difference and the spectrum, side by side.

The panels are one linked viewer (``explorer.ui.viewer``): wherever the user zooms, the visible window is
cut from the full-resolution original, perturbed and difference images (``core.viewport``), so at enough
zoom one screen pixel is one image pixel, and the difference panel shows the RMS of the full-resolution
difference over each screen pixel. Every parameter has one source of truth in session state (``lab_R``,
``lab_std_v``, ...), which the widgets are set from before they are drawn and write back to on change, so
that slider, caption, panels and exports always use the same value, in any sequence of actions.
"""

from __future__ import annotations

import io
import tempfile
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

import streamlit as st

from core import display
from core.errors import ExplorerError
from core.perturb import PERTURBATIONS as REGISTRY
from core.viewport import Viewport, area_mean, tile_geometry
from explorer.ui import lab, loaders, model_eye, viewer
from explorer.ui.full_cache import FullResCache
from explorer.ui.source import ImageRef, current_image

PERTURBATIONS = list(REGISTRY)  # what the page offers: the registry's perturbations
# Sources of truth (plain session keys, never widget keys, so that no widget clean-up can lose them).
TRUTH = {
    "lab_R": display.STUDY_RADIUS,
    "lab_kind_v": "ideal",
    "lab_std_v": 1600.0,
    "lab_grid_v": 8,
    "lab_seed_v": 0,
}
NOISE_OPTIONS = [float(v) for v in range(0, 4001, 50)]
PANEL_SIZES = ["Fit to page width", 384, 512, 768, 1024, 1536]
LAYOUTS = {"row": "Row (1 × 4)", "grid": "Grid (2 × 2, large)"}
DIFF_LABELS = {"rms": "RMS per screen pixel", "signed": "Signed mean"}
SPECTRA = ["original", "perturbed"]
PREFETCH_DELAY_S = 0.12  # the neighbouring stops are computed once the user pauses this long


def _label(name: str) -> str:
    return lab.LABELS.get(name) or REGISTRY[name].description


def _copy(src: str, dst: str) -> None:
    """on_change callback: a widget's new value becomes the source of truth."""
    st.session_state[dst] = st.session_state[src]


def _seed(widget: str, value: Any) -> None:
    """Set a widget from its source of truth before it is drawn, but only where they differ (the other
    widget of a pair or a drill-down changed the truth, or the widget was not drawn and lost its state):
    setting it anyway would push the value to the browser and undo key presses still on their way."""
    if st.session_state.get(widget) != value:
        st.session_state[widget] = value


def _apply_pending() -> None:
    """A drill-down (``lab.request_perturbation``) sets the sources of truth to exactly its parameter."""
    pending = st.session_state.pop(lab.PENDING, None)
    if not pending or pending.get("perturbation") not in PERTURBATIONS:
        return
    name, value = pending["perturbation"], pending.get("parameter")
    st.session_state["lab_pert"] = name
    st.session_state["lab_seed_v"] = int(pending.get("seed") or 0)
    if value is None:
        return
    if name in lab.SPECTRAL and float(value) > 0:
        st.session_state["lab_R"] = float(value)
    elif name == "noise":
        st.session_state["lab_std_v"] = float(min(max(float(value), 0.0), 20000.0))
    elif name == "shuffle":
        st.session_state["lab_grid_v"] = int(min(max(int(value), 1), 64))


def _radius_format(nyq: float, corner: float):
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


def _set_exact(src: str, dst: str) -> None:
    """Form callback: a typed value becomes the source of truth."""
    value = st.session_state.get(src)
    if value is not None:
        st.session_state[dst] = float(value)


def _synced(
    col: Any, truth: str, name: str, options: list[float], *, label: str, exact: str, **kw: Any
) -> float:
    """A snapped select-slider bound to a source of truth, and a small form to type any value.

    The slider's options are ``options`` plus the current value, so a typed or drilled-down value shows
    on the slider too. The typed value is a form field (cleared on submit; its placeholder shows the
    current value), not a second widget kept in sync: a value the server pushes into a widget comes back
    from the browser late, with the next slider key press, and would undo it.
    """
    value = float(st.session_state[truth])
    _seed(name, value)
    fmt = kw.pop("format_func", lambda v: f"{v:g}")
    col.select_slider(
        label,
        options=sorted(set(options) | {value}),
        format_func=fmt,
        key=name,
        on_change=_copy,
        args=(name, truth),
        help=kw.pop("help", None),
    )
    with col.form(f"{name}_form", border=False, clear_on_submit=True, enter_to_submit=True):
        a, b = st.columns([3, 1], vertical_alignment="bottom")
        a.number_input(exact, key=f"{name}_exact", value=None, placeholder=f"{value:g}", **kw)
        b.form_submit_button("Set", on_click=_set_exact, args=(f"{name}_exact", truth), key=f"{name}_set")
    return float(st.session_state[truth])


def _controls(mammo: Any, image: Any) -> lab.LabParams:
    for key, default in TRUTH.items():
        st.session_state.setdefault(key, default)
    _apply_pending()
    c1, c2, c3 = st.columns([1.2, 3, 1.4])
    name = c1.radio("Perturbation", PERTURBATIONS, format_func=_label, key="lab_pert")
    values = {k: st.session_state[k] for k in TRUTH}
    if name in lab.SPECTRAL:
        corner = float(image.nyquist_mm)
        nyq = display.nyquist_axis(mammo.spacing_mm)
        grid = [v for p in lab.SPECTRAL for v in REGISTRY[p].grid.values()]
        options = sorted(set(display.radius_choices(mammo.spacing_mm, corner)) | set(grid))
        st.session_state["lab_R"] = min(max(float(st.session_state["lab_R"]), 1e-3), 1000.0)
        values["lab_R"] = _synced(
            c2, "lab_R", "lab_radius", options,
            label="Radius R (cycles/mm, logarithmic)", exact="Type any R (cycles/mm)",
            format_func=_radius_format(nyq, corner), min_value=1e-3, max_value=1000.0, step=0.05,
            format="%.4g",
            help=f"Low-pass keeps |f| <= R, high-pass keeps |f| > R. Octave steps of the study's grid "
            f"(4, 2, 1, 0.5, 0.25 exactly) and six steps per octave; type any value below. Nyquist along "
            f"the coarser axis is {nyq:g} cycles/mm; above the corner frequency {corner:.3g} a low-pass is "
            "the identity.",
        )  # fmt: skip
        _seed("lab_kind", st.session_state["lab_kind_v"])
        values["lab_kind_v"] = c3.radio(
            "Filter", ["ideal", "gaussian"], key="lab_kind", horizontal=True, on_change=_copy,
            args=("lab_kind", "lab_kind_v"),
            help="ideal: a hard cut at R (the study); gaussian: exp(-|f|²/2R²).",
        )  # fmt: skip
    elif name == "noise":
        values["lab_std_v"] = _synced(
            c2, "lab_std_v", "lab_std", NOISE_OPTIONS + list(REGISTRY["noise"].grid.values()),
            label="Noise standard deviation (model units, 0..4095 scale)", exact="Type any std",
            min_value=0.0, max_value=20000.0, step=50.0, format="%.6g", help="The study used 1600.",
        )  # fmt: skip
    else:
        _seed("lab_grid", int(st.session_state["lab_grid_v"]))
        values["lab_grid_v"] = c2.slider(
            "Patches per side", 1, 64, key="lab_grid", on_change=_copy, args=("lab_grid", "lab_grid_v"),
            help="The study used 8 (64 patches).",
        )  # fmt: skip
    if name not in lab.SPECTRAL:
        _seed("lab_seed", int(st.session_state["lab_seed_v"]))
        values["lab_seed_v"] = int(
            c3.number_input(
                "Seed", 0, 2**31 - 1, key="lab_seed", on_change=_copy, args=("lab_seed", "lab_seed_v")
            )
        )
    if name in lab.SPECTRAL:
        c2.caption(
            f"Marks: the study's R = {display.STUDY_RADIUS:g} · "
            f"Nyquist {display.nyquist_axis(mammo.spacing_mm):g} "
            f"(coarser axis) · corner {float(image.nyquist_mm):.3g} (above it a low-pass is the identity). "
            f"Pixel spacing {mammo.spacing_mm[0]:g}×{mammo.spacing_mm[1]:g} mm."
        )
        model_eye.resolution_note(c2, name, float(values["lab_R"]), mammo.spacing_mm)
    return lab.LabParams(
        perturbation=name,
        radius=float(values["lab_R"]),
        kind=str(values["lab_kind_v"]),
        std=float(values["lab_std_v"]),
        grid=int(values["lab_grid_v"]),
        seed=int(values["lab_seed_v"]),
    )


def _window_controls(key: str, mammo: Any) -> tuple[tuple[float, float], bool]:
    presets = loaders.window_presets(key, mammo)
    names = list(presets)
    has_dicom = "DICOM window" in presets
    if st.session_state.get("lab_window_for") != key:  # a new image opens on its own window, if it has one
        st.session_state["lab_window_for"] = key
        st.session_state["lab_window"] = "DICOM window" if has_dicom else names[0]
    if st.session_state.get("lab_window") not in names + ["Custom"]:
        st.session_state["lab_window"] = "DICOM window" if has_dicom else names[0]
    c1, c2, c3, c4 = st.columns([2, 2, 2, 1])
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


def _view_options(window: tuple[float, float], invert: bool) -> lab.ViewOptions:
    c1, c2, c3, c4 = st.columns([1.3, 1.2, 1.4, 1.2])
    layout = c1.radio("Layout", list(LAYOUTS), format_func=LAYOUTS.get, key="lab_layout", horizontal=True)
    panel = c2.selectbox(
        "Panel size (px)",
        PANEL_SIZES,
        key="lab_panel",
        help="Longer side of each panel on screen, in CSS pixels (wider than the page: it scrolls).",
    )
    diff_mode = c3.radio(
        "Difference panel",
        list(DIFF_LABELS),
        format_func=DIFF_LABELS.get,
        key="lab_diff_mode",
        horizontal=True,
        help="RMS: the root mean square of the full-resolution difference over each screen pixel, so no "
        "change finer than a screen pixel averages away. Signed mean: its average (blue lower, red higher).",
    )
    spectrum = c4.selectbox("Spectrum of", SPECTRA, key="lab_spectrum")
    return lab.ViewOptions(
        window=window,
        invert=invert,
        diff_mode=diff_mode,
        spectrum=spectrum,
        layout=layout,
        panel=panel if isinstance(panel, int) else None,
    )


@st.cache_resource(show_spinner=False)
def _full_cache() -> FullResCache:
    return FullResCache(max_entries=6)


def _perturbed(key: str, mammo: Any, image: Any, params: lab.LabParams) -> lab.Perturbed:
    """The full-resolution result, once per image and parameters (a prefetched one is ready or on its way)."""
    return _full_cache().get((key, params.key()), lambda: lab.perturb_image(mammo, image, params))


def _neighbours(params: lab.LabParams, mammo: Any, image: Any, previous: Any) -> list[lab.LabParams]:
    """The parameters one slider stop away on either side, the one in the direction of the last move
    first."""
    if params.spectral:
        grid = [v for p in lab.SPECTRAL for v in REGISTRY[p].grid.values()]
        stops = sorted(set(display.radius_choices(mammo.spacing_mm, float(image.nyquist_mm))) | set(grid))
        field = "radius"
    elif params.perturbation == "noise":
        stops, field = sorted(set(NOISE_OPTIONS) | set(REGISTRY["noise"].grid.values())), "std"
    else:
        stops, field = list(range(1, 65)), "grid"
    value = getattr(params, field)
    below = [v for v in stops if v < value][-1:]
    above = [v for v in stops if v > value][:1]
    down = isinstance(previous, lab.LabParams) and getattr(previous, field) > value
    return [replace(params, **{field: type(value)(v)}) for v in (below + above if down else above + below)]


def _prefetch(key: str, mammo: Any, image: Any, params: lab.LabParams, tile: tuple) -> None:
    """Compute the neighbouring slider stops, and their tiles of the current view, in the background once
    the user pauses (see ``explorer.ui.full_cache``)."""
    previous = st.session_state.get("lab_last_params")
    jobs = {
        (key, p.key()): (lambda p=p: lab.perturb_image(mammo, image, p, tile))
        for p in _neighbours(params, mammo, image, previous)
    }
    _full_cache().prefetch(jobs, delay=PREFETCH_DELAY_S)


@st.cache_resource(max_entries=4, show_spinner=False)
def _original_tile(key: str, bounds: tuple, out: tuple, _mammo: Any) -> Any:
    r0, r1, c0, c1 = bounds
    return area_mean(_mammo.pixels[r0:r1, c0:c1], out)


@st.cache_resource(max_entries=3, show_spinner="Computing the perturbed image's spectrum...")
def _perturbed_spectrum(key: str, params_key: tuple, _perturbed: lab.Perturbed, _mammo: Any) -> Any:
    from core.spectrum import log_spectrum

    return log_spectrum(_perturbed.pixels, _mammo.spacing_mm, max_side=512)


@st.cache_resource(max_entries=3, show_spinner=False)
def _spectrum_scale(key: str, _mammo: Any) -> tuple[float, float]:
    import numpy as np

    img = np.asarray(loaders.log_spectrum(key, _mammo).image)
    return float(np.percentile(img, 1.0)), float(np.percentile(img, 99.9))


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


def _to_native(key: str, mammo: Any, screen: tuple[int, int]) -> None:
    """Button callback: native pixels around the centre of the breast."""
    sr, sc = mammo.spacing_mm
    cy, cx = display.tissue_centre_mm(mammo.pixels, mammo.spacing_mm)
    viewer.reset_view(key, Viewport.native(mammo.pixels.shape, (cy / sr, cx / sc), screen))


def _render_view(
    ref: ImageRef, mammo: Any, image: Any, params: lab.LabParams, options: lab.ViewOptions, timing: dict
):
    """Cached full-resolution perturbation, the visible tile, and the viewer. Returns the LabView; ``timing``
    receives the milliseconds of each stage (``benchmarks/bench_slider.py`` prints them)."""
    key, shape = ref.key, mammo.pixels.shape
    state = viewer.current(key, shape)
    view = Viewport.parse(state.get("view"), shape)
    screen = viewer.screen_size(state, shape, options.panel)
    t = time.perf_counter()
    perturbed = _perturbed(key, mammo, image, params)
    timing["perturb"] = 1000 * (time.perf_counter() - t)
    t = time.perf_counter()
    bounds, out = tile_geometry(view, shape, screen)
    original_tile = _original_tile(key, bounds, out, mammo)
    if options.spectrum == "perturbed":
        spectrum, spectrum_of = _perturbed_spectrum(key, params.key(), perturbed, mammo), "perturbed"
    else:
        spectrum, spectrum_of = loaders.log_spectrum(key, mammo), "original"
    lab_view = lab.build_view(
        mammo, perturbed, options, view, screen,
        spectrum=spectrum, spectrum_of=spectrum_of, original_tile=original_tile,
    )  # fmt: skip
    timing["tile"] = 1000 * (time.perf_counter() - t)
    t = time.perf_counter()
    stamp = f"{params.key()}|{options}|{lab_view.view.to_dict()}|{screen}|{state.get('token')}"
    data = viewer.payload(
        lab_view, image_key=key, state=state, screen_hw=screen, sent=set(viewer.sent_ids()),
        spectrum_scale=_spectrum_scale(key, mammo), stamp=str(abs(hash(stamp))),
    )  # fmt: skip
    timing["payload"] = 1000 * (time.perf_counter() - t)
    t = time.perf_counter()
    viewer.show(data)
    timing["show"] = 1000 * (time.perf_counter() - t)
    _prefetch(key, mammo, image, params, (bounds, out))
    return lab_view, screen


def _caption(lab_view: lab.LabView, ms: float) -> str:
    t, p = lab_view.tile, lab_view.params
    r0, r1, c0, c1 = t.bounds
    what = (
        "native pixels"
        if t.native
        else f"each the mean of {t.footprint_px[0]:.1f} × {t.footprint_px[1]:.1f} image pixels"
    )
    text = (
        f"{p.describe()}  ·  view: rows {r0}–{r1}, columns {c0}–{c1}; {t.shape[0]}×{t.shape[1]} values per "
        f"panel ({what}), {max(t.pixel_mm):.3g} mm each, showing frequencies up to "
        f"{t.max_frequency_mm:.3g} cycles/mm"
    )
    if p.spectral and p.radius > t.max_frequency_mm:
        verb = "removes" if p.perturbation == "lowpass" else "keeps"
        text += f" (R = {p.radius:g} lies above it: zoom in to see what R = {p.radius:g} {verb})"
    return text + f"  ·  server time for this update: {ms:.0f} ms."


@st.fragment
def lab_panel(ref: ImageRef, mammo: Any) -> None:
    """Controls and panels; a control change reruns only this fragment."""
    try:
        _lab_panel(ref, mammo)
    except ExplorerError as exc:  # a fragment rerun bypasses render()'s handler
        st.error(str(exc))


def _lab_panel(ref: ImageRef, mammo: Any) -> None:
    key = ref.key
    t0 = time.perf_counter()
    image = loaders.prepared_image(key, mammo)
    params = _controls(mammo, image)
    window, invert = _window_controls(key, mammo)
    options = _view_options(window, invert)
    timing = {"controls": 1000 * (time.perf_counter() - t0)}
    lab_view, screen = _render_view(ref, mammo, image, params, options, timing)
    ms = (time.perf_counter() - t0) * 1000
    st.session_state["lab_last_ms"] = ms
    st.session_state["lab_last_timing"] = timing
    st.session_state["lab_last_params"] = params
    st.session_state["lab_last_view"] = lab_view
    st.caption(_caption(lab_view, ms))
    c1, c2, c3, _ = st.columns([1, 1, 1.2, 2])
    stem = Path(ref.name).stem
    c1.download_button(
        "Download panels (PNG)",
        data=lambda: lab.export_png(lab_view, ref.name),
        file_name=f"{stem}_{params.perturbation}.png",
        mime="image/png",
        key="lab_dl_png",
    )
    if c2.button("Prepare perturbed DICOM", key="lab_prep_dcm"):
        try:
            full = _perturbed(key, mammo, loaders.prepared_image(key, mammo), params).pixels
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
    c3.button(
        "Native pixels on the breast",
        key="lab_native",
        on_click=_to_native,
        args=(key, mammo, screen),
        help="Zoom all panels to one screen pixel per image pixel around the centre of the breast "
        "(in the panels: double-click a spot, or the 1:1 button).",
    )
    model_eye.section(ref, mammo, image, params, lambda: _pixels_for_eye(key, mammo, image, params))


def _pixels_for_eye(key: str, mammo: Any, image: Any, params: lab.LabParams) -> Any:
    """The model's eye's perturbed pixels, in its thread: the viewer's result if cached (peeking, so the
    slider's prefetches are not dropped), else computed anew."""
    done = _full_cache().peek((key, params.key()))
    return done.pixels if done is not None else lab.perturbed_full(mammo, image, params)


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
