"""The demo weights shipped in ``assets/weights``: their labels and files (``docs/demo-weights.md``).

Two sets, both trained by this project on the synthetic cohort (not clinical models):

* ``"demo"`` (``<model>-demo.pt``): 0.1 mm pixels and the official input sizes (GMIC 2944 x 1920; DMV
  CC 2677 x 1942, MLO 2974 x 1748), the study's resolution: Nyquist frequency 5 cycles/mm, so the band
  the study is about (2-5 cycles/mm) reaches the model.
* ``"demo-fast"`` (``<model>-demo-fast.pt``): 0.3 mm pixels, windows a third as long (672 x 448; a ninth
  of the pixels), for interactive use where speed matters: Nyquist frequency 1.67 cycles/mm, so a filter
  acting above that changes nothing the model can see.

Each file records its ``spacing_mm`` and input size; :func:`core.models.resolution.input_spacing` reads
them. This module imports no torch.
"""

from __future__ import annotations

from pathlib import Path

DEMO_LABELS = ("demo", "demo-fast")
# The pixel spacing (mm) each set reads, as the files record it (tests/test_demo_weights_files.py checks).
DEMO_SPACING_MM = {"demo": 0.1, "demo-fast": 0.3}


def is_demo_label(weights: object) -> bool:
    """True for the names of the shipped demo weights (``"demo"``, ``"demo-fast"``), not for files."""
    return isinstance(weights, str) and weights in DEMO_LABELS


def demo_path(model: str, label: str = "demo") -> Path:
    """Where the demo weights ``label`` of ``model`` (``"gmic"`` or ``"dmv"``) are installed (the file may be
    missing)."""
    from core.paths import ASSETS_DIR

    if label not in DEMO_LABELS:
        raise ValueError(f"{label!r} is not a demo weights label ({', '.join(DEMO_LABELS)})")
    return ASSETS_DIR / "weights" / f"{str(model).lower()}-{label}.pt"


def describe_demo(label: str) -> str:
    """``"0.1 mm pixels, sees up to 5 cycles/mm"``: what the demo weights ``label`` read and the highest
    frequency they can represent (the Nyquist frequency ``1 / (2 spacing)``)."""
    spacing = DEMO_SPACING_MM[label]
    return f"{spacing:g} mm pixels, sees up to {1.0 / (2.0 * spacing):.3g} cycles/mm"
