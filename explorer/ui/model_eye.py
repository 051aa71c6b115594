"""The image lab's "Model's eye": what GMIC makes of the current image and of its perturbed version.

Off by default (a toggle), so the slider stays fast. When on: the weights (the demo weights at 0.1 mm, the
fast ones at 0.3 mm, or a file inside the allowed folders, loaded as tensors only and cached), and, computed
in a background thread (``explorer.ui.eye_worker``) so the slider never waits, GMIC's benign and malignant
probabilities, its saliency maps over both images (benign or malignant) with the K regions it picked, and
the score-versus-R curve of this image (malignant probability at the registry's grid radii, plus the user's
R). The page polls (a fragment with ``run_every``) only while something it asked for is on its way. Every
number comes from ``core.eye`` and ``core.models.explain``; the command line gives the same
(``mammo-robust explain``).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import streamlit as st

from core.errors import ExplorerError
from core.models.demo_weights import DEMO_LABELS, describe_demo
from explorer.ui.eye_worker import DONE, FAILED, EyeWorker

POLL_S = 0.5
PICTURE_SIDE = 720  # longer side of each saliency picture, in pixels
# Sources of truth (plain session keys: they outlive the widgets, which are not drawn while the eye is off).
WEIGHTS_V, PATH_V = "eye_weights_v", "eye_path_v"
WEIGHT_CHOICES = {
    **{label: f"{label.capitalize()} ({describe_demo(label)})" for label in DEMO_LABELS},
    "file": "A weights file on the server",
}
LABELS = {"malignant": "Malignant", "benign": "Benign"}


@dataclass(frozen=True)
class EyeResult:
    """Both explanations of one image and perturbation, and their pictures ``{(which, label): RGB}``."""

    original: Any
    perturbed: Any
    pictures: dict
    scale: dict
    model_input: Any


@st.cache_resource(show_spinner=False)
def worker() -> EyeWorker:
    """The one background worker of the app (shared by sessions: one forward pass at a time)."""
    return EyeWorker()


@st.cache_resource(max_entries=2, show_spinner="Loading GMIC (tensors only)...")
def load_model(weights: str, mtime: float) -> Any:
    """GMIC with these weights (``mtime`` keys edits of a weights file)."""
    from core.models import create_model

    return create_model("gmic", weights=weights)


def current_weights() -> str | None:
    """``"demo"``, ``"demo-fast"`` or the resolved path of the chosen weights file; None when the file may not
    be read (outside the allowed folders, or missing). Shows nothing."""
    kind = st.session_state.get(WEIGHTS_V, "demo")
    if kind in DEMO_LABELS:
        return kind
    from core.access import is_allowed

    path = str(st.session_state.get(PATH_V) or "").strip()
    if not path or not is_allowed(path):
        return None
    import os

    resolved = os.path.realpath(os.path.expanduser(path))
    return resolved if os.path.isfile(resolved) else None


def _copy(src: str, dst: str) -> None:
    st.session_state[dst] = st.session_state[src]


def _weights_widgets() -> str | None:
    """The weights chooser; returns :func:`current_weights`, with a message when a file cannot be used."""
    st.session_state.setdefault(WEIGHTS_V, "demo")
    st.session_state.setdefault(PATH_V, "")
    for widget, truth in (("eye_weights", WEIGHTS_V), ("eye_path", PATH_V)):
        if st.session_state.get(widget) != st.session_state[truth]:
            st.session_state[widget] = st.session_state[truth]
    c1, c2 = st.columns([1.3, 2])
    kind = c1.radio(
        "GMIC weights", list(WEIGHT_CHOICES), format_func=WEIGHT_CHOICES.get, key="eye_weights",
        horizontal=True, on_change=_copy, args=("eye_weights", WEIGHTS_V),
    )  # fmt: skip
    if kind in DEMO_LABELS:
        return kind
    path = c2.text_input(
        "Weights file (an official GMIC .p file or a mammo-robust checkpoint, inside the allowed folders)",
        key="eye_path", on_change=_copy, args=("eye_path", PATH_V),
        placeholder="/data/weights/sample_model_1.p",
    )  # fmt: skip
    if not path.strip():
        c2.info("Type the path of a weights file on the server.")
        return None
    from core.access import check_allowed

    try:
        resolved = check_allowed(path.strip())
    except ExplorerError as exc:
        c2.error(str(exc))
        return None
    if not resolved.is_file():
        c2.error(f"{path}: no such file inside the allowed folders")
        return None
    return str(resolved)


def _model_input(weights: str | None, spacing_mm: tuple[float, float]) -> Any:
    from core.eye.look import weights_input

    return weights_input("gmic", weights, spacing_mm) if weights else None


def resolution_note(col: Any, perturbation: str, radius: float, spacing_mm: tuple[float, float]) -> None:
    """Under the radius slider: the model's input resolution and Nyquist frequency, and, when R lies above
    it, that the model cannot see what the filter removes (or keeps)."""
    from core.eye import resolution_note as note_for

    weights = current_weights()
    seen = _model_input(weights, spacing_mm)
    if seen is None:
        col.caption("Model's eye: choose usable GMIC weights to see the model's input resolution.")
        return
    name = f"{weights} weights" if weights in DEMO_LABELS else "the chosen weights"
    if seen.nyquist_mm is None:
        col.caption(f"GMIC ({name}): input resolution unknown ({seen.source}).")
        return
    col.caption(
        f"GMIC ({name}) sees {seen.spacing_mm:.3g} mm pixels: its Nyquist frequency is "
        f"**{seen.nyquist_mm:.3g} cycles/mm**; finer detail reaches it only as what its resampling filter "
        "lets through (aliased)."
    )
    note = note_for(perturbation, radius, seen)
    if note:
        col.warning(note, icon=":material/visibility_off:")


def _eye_job(mammo: Any, model: Any, perturbed: Callable[[], np.ndarray], name: str) -> Callable:
    def compute() -> EyeResult:
        from core import display
        from core.eye import look, model_input
        from core.eye.pictures import pictures, saliency_scale

        pixels = perturbed()
        original, changed = look(model, mammo, pixels)
        window = display.auto_window(mammo.pixels)
        scale = {label: saliency_scale([original, changed], label) for label in LABELS}
        drawn = {}
        for which, e, px in (("original", original, mammo.pixels), ("perturbed", changed, pixels)):
            own = None if which == "perturbed" and name == "highpass" else window  # zero-mean: own window
            for label, rgb in pictures(px, e, window=own, max_side=PICTURE_SIDE, vmax=scale).items():
                drawn[which, label] = rgb
        return EyeResult(original, changed, drawn, scale, model_input(model, mammo.spacing_mm))

    return compute


def _point_job(ref_key: str, mammo: Any, model: Any, image: Any, mode: str, radius: float, kind: str):
    def compute() -> Any:
        from core.eye import curve_point

        return curve_point(model, _inputs(ref_key, mammo, model), image, mode, radius, kind)

    return compute


_INPUTS: dict = {}  # (image key, what the weights expect) -> ImageInputs; only the worker thread uses it


def _inputs(ref_key: str, mammo: Any, model: Any) -> Any:
    """The clean image's model inputs (crop and window), made once per image and model."""
    from core.models.inputs import ImageInputs

    spec = model.spec
    key = (ref_key, spec.weights, spec.spacing_mm, spec.downsample, str(spec.input_size))
    if key not in _INPUTS:
        _INPUTS.clear()  # one image at a time
        _INPUTS[key] = ImageInputs(mammo, model.spec)
    return _INPUTS[key]


def _curve_modes(params: Any) -> list[str]:
    return ["lowpass", "highpass"] if params.perturbation == "highpass" else ["lowpass"]


def _request(ref_key: str, mammo: Any, image: Any, params: Any, weights: str, model: Any, perturbed) -> dict:
    """Ask the worker for the explanation and the curve's points; returns the keys asked for."""
    from core.eye import curve_radii

    w = worker()
    eye_key = ("eye", ref_key, weights, params.key())
    w.request(eye_key, _eye_job(mammo, model, perturbed, params.perturbation), priority=0, group="eye")
    kind = params.kind if params.spectral else "ideal"
    points = {}
    for mode in _curve_modes(params):
        for r in curve_radii(mode):
            key = ("curve", ref_key, weights, mode, kind, r)
            w.request(key, _point_job(ref_key, mammo, model, image, mode, r, kind), priority=1)
            points[key] = (mode, r)
    return {"eye": eye_key, "points": points, "spacing_mm": tuple(mammo.spacing_mm)}


def section(ref: Any, mammo: Any, image: Any, params: Any, perturbed: Callable[[], np.ndarray]) -> None:
    """The "Model's eye" section of the image lab (drawn inside the lab's fragment)."""
    on = st.toggle(
        "Model's eye: what GMIC sees in the original and the perturbed image",
        key="eye_on",
        help="Runs GMIC on both images in the background (on a CPU several seconds with the 0.1 mm demo "
        "weights, a second or two with the 0.3 mm demo-fast ones) and scores the image at the study's filter "
        "radii. Off by default so the slider stays fast.",
    )
    if not on:
        return
    weights = _weights_widgets()
    if weights is None:
        return
    import os

    try:
        model = load_model(weights, 0.0 if weights in DEMO_LABELS else os.path.getmtime(weights))
    except (ExplorerError, OSError) as exc:
        st.error(str(exc))
        return
    keys = _request(ref.key, mammo, image, params, weights, model, perturbed)
    polling = worker().pending([keys["eye"], *keys["points"]])
    live = st.fragment(run_every=POLL_S if polling else None)(_live)
    live(keys, params, polling)


def _live(keys: dict, params: Any, polling: bool) -> None:
    """Results as they arrive; while ``polling``, reruns itself every ``POLL_S`` s, and once nothing is
    left to wait for, reruns the app once so that the polling stops."""
    from explorer.ui import eye_views

    w = worker()
    job = w.job(keys["eye"])
    result = job.value if job is not None and job.state == DONE else None
    if job is None or not job.finished:
        st.info("GMIC is looking at both images...", icon=":material/hourglass_top:")
    elif job.state == FAILED:
        st.error(_message(job.error))
    else:
        eye_views.explanations(result, params, keys["spacing_mm"])
    points = []
    done = 0
    for key in keys["points"]:
        j = w.job(key)
        if j is not None and j.state == DONE:
            points.append(j.value)
            done += 1
        elif j is not None and j.state == FAILED:
            st.error(_message(j.error))
            done += 1
    total = len(keys["points"])
    if done < total:
        st.progress(done / total, text=f"Score against R: {done} of {total} radii scored (in the background)")
    eye_views.curve(points, result, params)
    if polling and not w.pending([keys["eye"], *keys["points"]]):
        st.rerun()


def _message(error: BaseException | None) -> str:
    if isinstance(error, ExplorerError):
        return str(error)
    return f"The model's eye failed: {type(error).__name__}: {error}"
