"""``explain.json`` and its pictures: the model's eye for one image, as files (``mammo-robust explain``).

Layout of ``explain.json`` (probabilities in [0, 1]; boxes in the input image's own pixels, upper-left
row and column, then height and width; ``attention`` is the region's weight in GMIC's pooling)::

    {"image": ..., "image_shape": [rows, cols], "spacing_mm": [row, col], "spacing_source": ...,
     "laterality": "R", "view": "CC", "model": "gmic", "weights": "demo", "demo_weights": true,
     "model_input": {"spacing_mm": 0.3, "nyquist_cycles_per_mm": 1.667, "source": ...},
     "perturbation": {"name": "lowpass", "parameter": 2.0, "unit": "cycles/mm", "kind": "ideal", "seed": 0},
     "note": ... or null, "model_window": {"row", "col", "height", "width"}, "saliency_scale": {...},
     "original": {"benign": p, "malignant": p, "patches": [{"row", "col", "height", "width",
                  "attention"}, ...], "pictures": {"benign": "original_benign.png", ...}},
     "perturbed": {... the same ...},
     "curve": [{"mode", "radius", "benign", "malignant"}, ...]    (only when asked for)}

The pictures (:func:`core.eye.pictures.pictures`) show each saliency map over its own image (the perturbed
map over the perturbed image) with one grey window (a high-pass image, zero-mean, gets its own) and one
colour scale per class for both, and
``explain.png`` puts the four side by side.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from core import display
from core.errors import ExplorerError
from core.eye.curve import CurvePoint
from core.eye.look import ModelInput
from core.eye.pictures import pictures, saliency_scale
from core.models.explain import CLASSES, Explanation


def explain_record(
    mammogram: Any,
    original: Explanation,
    perturbed: Explanation,
    *,
    image_id: str,
    model_spec: Any,
    model_input: ModelInput,
    perturbation: Mapping[str, Any],
    note: str | None = None,
    curve: Sequence[CurvePoint] | None = None,
) -> dict[str, Any]:
    """The content of ``explain.json`` without the picture names (plain JSON types)."""
    row, col, height, width = original.frame.window_box
    record: dict[str, Any] = {
        "image": image_id,
        "image_shape": list(map(int, np.shape(mammogram.pixels))),
        "spacing_mm": [float(v) for v in mammogram.spacing_mm],
        "spacing_source": mammogram.spacing_source,
        "laterality": original.frame.geometry.laterality,
        "view": original.frame.geometry.view,
        "model": model_spec.arch,
        "weights": model_spec.weights,
        "demo_weights": bool(model_spec.is_demo),
        "model_input": model_input.to_dict(),
        "perturbation": dict(perturbation),
        "note": note,
        "model_window": {"row": row, "col": col, "height": height, "width": width},
        "saliency_scale": {label: saliency_scale([original, perturbed], label) for label in CLASSES},
        "original": original.to_dict(),
        "perturbed": perturbed.to_dict(),
    }
    if curve is not None:
        record["curve"] = [p.to_dict() for p in curve]
    return record


def write_explain(
    out_dir: str | Path,
    mammogram: Any,
    perturbed_pixels: np.ndarray,
    original: Explanation,
    perturbed: Explanation,
    *,
    max_side: int = 1024,
    **record: Any,
) -> Path:
    """Write ``explain.json``, one picture per image and saliency class, and ``explain.png`` to ``out_dir``
    (created if needed). ``record`` holds the keyword arguments of :func:`explain_record`. Returns the path
    of ``explain.json``.

    Raises
    ------
    ExplorerError
        If ``out_dir`` cannot be created or written (the message names it).
    """
    out = Path(out_dir)
    data = explain_record(mammogram, original, perturbed, **record)
    window = display.auto_window(mammogram.pixels)
    panels = []
    try:
        out.mkdir(parents=True, exist_ok=True)
        for which, explanation, pixels in (
            ("original", original, mammogram.pixels),
            ("perturbed", perturbed, perturbed_pixels),
        ):
            names = {}
            zero_mean = which == "perturbed" and data["perturbation"].get("name") == "highpass"
            own = None if zero_mean else window  # a high-pass image gets its own window
            drawn = pictures(pixels, explanation, window=own, max_side=max_side, vmax=data["saliency_scale"])
            for label, rgb in drawn.items():
                names[label] = f"{which}_{label}.png"
                (out / names[label]).write_bytes(display.png_bytes(rgb, compress_level=6))
                panels.append((f"{which} {label} {getattr(explanation, label):.3f}", rgb))
            data[which]["pictures"] = names
        caption = f"{data['model']} ({data['weights']}); {_describe(data['perturbation'])}"
        (out / "explain.png").write_bytes(display.compose_panels(panels, height=512, caption=caption))
        path = out / "explain.json"
        path.write_text(json.dumps(data, indent=2) + "\n")
    except OSError as exc:
        raise ExplorerError(f"{out}: cannot write the explanation ({exc.strerror or exc})") from None
    return path


def _describe(perturbation: Mapping[str, Any]) -> str:
    name, value, unit = perturbation.get("name"), perturbation.get("parameter"), perturbation.get("unit", "")
    return f"{name} {value:g} {unit}".strip() if isinstance(value, int | float) else str(name)
