"""The image lab's linked viewer: a Streamlit components-v2 element (``assets/viewer_draw.js`` and
``viewer.js``, joined into one module, and ``viewer.css``).

Python sends the tiles of the current view (:func:`payload`); the browser draws them, zooms and pans, and
reports the view it shows, which :func:`on_view` stores under :data:`VIEW_KEY` in session state. The page
renders the next tile for that view, so zoom and pan survive every control change; :func:`reset_view`
(a new image, a drill-down, the page's native-resolution button) makes the browser adopt a view from Python.
"""

from __future__ import annotations

import base64
import hashlib
from collections.abc import Collection
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np
import streamlit as st

from core import display
from core.viewport import PackedValues, Viewport, pack_values
from explorer.ui.lab import IMAGE_RESOLUTION, LabView

ASSETS = Path(__file__).resolve().parent / "assets"
COMPONENT_KEY = "lab_viewer"
VIEW_KEY = "lab_view"  # {"image", "token", "view", "spec", "screen"}: what the browser last showed
TOKEN_KEY = "lab_view_token"
SENT_KEY = "lab_viewer_sent"  # content ids of the arrays the browser was sent (it caches them)
MAX_SENT = 16  # the browser keeps more (viewer.js CACHE_SIZE), so none of these has been evicted there
DEFAULT_SCREEN_LONG_SIDE = 512  # device pixels assumed for "fit" before the browser has said
SPECTRUM_RESOLUTION = 0.001  # log10 units
_POOL = ThreadPoolExecutor(max_workers=4, thread_name_prefix="lab-pack")  # zlib releases the GIL


@st.cache_resource
def _component() -> Any:
    return st.components.v2.component(
        "mammo_lab_viewer",
        html="<div class='mre-host'></div>",
        css=(ASSETS / "viewer.css").read_text(),
        # one ES module, kept in two files of reasonable size: drawing first, then interaction + entry point
        js=(ASSETS / "viewer_draw.js").read_text() + "\n" + (ASSETS / "viewer.js").read_text(),
    )


def _packed(values: PackedValues) -> dict[str, Any]:
    return {
        "shape": list(values.shape),
        "lo": values.lo,
        "step": values.step,
        "b64": base64.b64encode(values.data).decode("ascii"),
    }


def current(image_key: str, shape: tuple[int, int]) -> dict[str, Any]:
    """The stored view state for this image (a full view when there is none or it belongs to another)."""
    state = st.session_state.get(VIEW_KEY)
    if not isinstance(state, dict) or state.get("image") != image_key:
        state = {"image": image_key, "token": _token(), "view": Viewport.full(shape).to_dict()}
        st.session_state[VIEW_KEY] = state
    return state


def _token() -> int:
    return int(st.session_state.get(TOKEN_KEY, 0))


def reset_view(image_key: str, view: Viewport | None = None) -> None:
    """Make the browser adopt ``view`` (default: the whole image) on the next run."""
    st.session_state[TOKEN_KEY] = _token() + 1
    state = {"image": image_key, "token": _token()}
    if view is not None:
        state["view"] = view.to_dict()
    old = st.session_state.get(VIEW_KEY)
    if isinstance(old, dict) and old.get("screen"):
        state["screen"] = old["screen"]
    st.session_state[VIEW_KEY] = state


def on_view() -> None:
    """Component callback: keep the view the browser reports, unless it answers an older reset."""
    got = st.session_state.get(COMPONENT_KEY)
    msg = got.get("view") if hasattr(got, "get") else None
    if not isinstance(msg, dict) or msg.get("token") != _token():
        return
    if msg.get("resend"):  # the browser lacks an array it was sent (e.g. evicted): send everything again
        st.session_state[SENT_KEY] = []
    state = {k: msg.get(k) for k in ("image", "view", "spec", "screen")}
    state["token"] = _token()
    st.session_state[VIEW_KEY] = state


def screen_size(state: dict[str, Any], shape: tuple[int, int], panel: int | None) -> tuple[int, int]:
    """Panel size in device pixels: the browser's report, else the chosen size, else a guess for "fit"."""
    screen = state.get("screen")
    if panel:
        long_side = int(panel)
    elif isinstance(screen, list | tuple) and len(screen) == 2 and min(screen) > 0:
        return int(screen[0]), int(screen[1])
    else:
        long_side = DEFAULT_SCREEN_LONG_SIDE
    h, w = shape
    if h >= w:
        return long_side, max(1, round(long_side * w / h))
    return max(1, round(long_side * h / w)), long_side


def _content_id(*parts: object) -> str:
    """A short name for an array's content: the browser keeps arrays it has by this name."""
    return hashlib.sha1("|".join(map(str, parts)).encode()).hexdigest()[:16]


def _spectrum(lab_view: LabView, image_key: str, vmin_vmax: tuple[float, float] | None) -> dict[str, Any]:
    spec = lab_view.spectrum
    img = np.asarray(spec.image, dtype=np.float32)
    fr, fc = np.asarray(spec.freq_rows), np.asarray(spec.freq_cols)
    dr = float(fr[1] - fr[0]) if fr.size > 1 else 1.0
    dc = float(fc[1] - fc[0]) if fc.size > 1 else 1.0
    extent = [float(fr[0] - dr / 2), float(fr[-1] + dr / 2), float(fc[0] - dc / 2), float(fc[-1] + dc / 2)]
    if vmin_vmax is None:
        vmin_vmax = (float(np.percentile(img, 1.0)), float(np.percentile(img, 99.9)))
    p = lab_view.params
    circles = [{"r": display.STUDY_RADIUS, "color": "#ffffff", "width": 1, "dash": "dot"}]
    if p.spectral:
        dash = "solid" if p.kind == "ideal" else "dash"
        circles.insert(0, {"r": p.radius, "color": "#00e5ff", "width": 2, "dash": dash})
    which = p.key() if lab_view.spectrum_of == "perturbed" else ""
    return {
        "title": lab_view.titles["spectrum"],
        "key": _content_id("s", image_key, lab_view.spectrum_of, which, img.shape),
        "array": (img, SPECTRUM_RESOLUTION),
        "extent": extent,
        "style": {"kind": "sequential", "vmin": vmin_vmax[0], "vmax": vmin_vmax[1]},
        "circles": circles,
    }


def payload(
    lab_view: LabView,
    *,
    image_key: str,
    state: dict[str, Any],
    screen_hw: tuple[int, int],
    sent: Collection[str] = (),
    spectrum_scale: tuple[float, float] | None = None,
    stamp: str = "",
) -> dict[str, Any]:
    """Everything the browser needs for one view (JSON-serialisable).

    Arrays travel packed (``core.viewport.pack_values``), each under a content id; those in ``sent`` (already
    sent in this session) travel as the id alone, and the browser takes them from its cache (on a slider
    step: the original's tile and the spectrum).
    """
    t, opt, p = lab_view.tile, lab_view.options, lab_view.params
    diff_resolution = min(IMAGE_RESOLUTION, max(lab_view.diff_limit, 1e-6) / 500.0)
    if opt.diff_mode == "rms":
        diff_style = {"kind": "sequential", "vmin": 0.0, "vmax": lab_view.diff_limit}
    else:
        diff_style = {"kind": "diverging", "limit": lab_view.diff_limit}
    titles = lab_view.titles
    where = (image_key, t.bounds, t.shape)
    grey = {"kind": "grey", "window": list(opt.window), "invert": opt.invert}
    grey_b = {**grey, "window": list(lab_view.perturbed_window)}
    panels = [
        {"id": "original", "key": _content_id("o", *where), "array": (t.original, IMAGE_RESOLUTION),
         "style": grey},
        {"id": "perturbed", "key": _content_id("p", p.key(), *where),
         "array": (t.perturbed, IMAGE_RESOLUTION), "style": grey_b},
        {"id": "difference", "key": _content_id("d", opt.diff_mode, p.key(), *where),
         "array": (lab_view.difference, diff_resolution), "style": diff_style},
    ]  # fmt: skip
    for panel in panels:
        panel["title"] = titles[panel["id"]]
    spectrum = _spectrum(lab_view, image_key, spectrum_scale)
    entries = [*panels, spectrum]
    todo = [e for e in entries if e["key"] not in sent]
    for e, packed in zip(todo, _POOL.map(lambda e: _packed(pack_values(*e["array"])), todo), strict=True):
        e["values"] = packed
    for e in entries:
        e.pop("array")
        e.setdefault("values", None)
    return {
        "image_key": image_key,
        "token": int(state.get("token", 0)),
        "shape": [int(v) for v in lab_view.image_shape],
        "spacing": list(lab_view.spacing_mm),
        "view": state.get("view"),
        "spec_view": state.get("spec"),
        "rendered_view": lab_view.view.to_dict(),
        "screen": [int(screen_hw[0]), int(screen_hw[1])],
        "layout": opt.layout,
        "panel": opt.panel,
        "perturbation": p.perturbation,
        "radius": p.radius if p.spectral else None,
        "describe": p.describe(),
        "diff_mode": opt.diff_mode,
        "stamp": stamp,
        "tile": {"bounds": list(t.bounds), "footprint": [float(v) for v in t.footprint_px]},
        "panels": panels,
        "spectrum": spectrum,
        "palettes": {
            "sequential": display.SEQUENTIAL_PALETTE.ravel().tolist(),
            "diverging": display.DIVERGING_PALETTE.ravel().tolist(),
        },
    }


def sent_ids() -> list[str]:
    """Content ids sent to the browser in this session (newest last)."""
    got = st.session_state.get(SENT_KEY)
    return list(got) if isinstance(got, list) else []


def show(data: dict[str, Any]) -> None:
    """Mount the viewer with ``data`` (keyed, so the browser keeps its state across reruns) and remember
    which arrays it now holds."""
    _component()(key=COMPONENT_KEY, data=data, on_view_change=on_view, width="stretch", height="content")
    keys = [e["key"] for e in (*data["panels"], data["spectrum"])]
    st.session_state[SENT_KEY] = [k for k in sent_ids() if k not in keys][-(MAX_SENT - len(keys)) :] + keys


def native_view(
    shape: tuple[int, int], centre_rc: tuple[float, float], screen_hw: tuple[int, int]
) -> Viewport:
    """One screen pixel per image pixel around ``centre_rc`` (for the page's native-resolution button)."""
    return Viewport.native(shape, centre_rc, screen_hw)
