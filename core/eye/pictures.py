"""Pictures of the model's eye: saliency maps and GMIC's regions drawn over the windowed image.

The image is reduced so its longer side fits ``max_side`` by the exact area mean over each display pixel
(:func:`core.viewport.area_mean`), once for all the maps drawn over it; each saliency map is sampled at the
centres of those display pixels; its colour (the magma-like ramp of :data:`core.display.SEQUENTIAL_PALETTE`)
is blended over the grey image with an opacity that grows with the saliency, so cold areas show the image
unchanged. The model window is outlined (thin, yellow) and the K regions are boxed (cyan) and numbered in
the order GMIC picked them.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from core import display
from core.errors import DisplayError
from core.models.explain import CLASSES, Explanation
from core.viewport import area_mean

REGION_COLOUR = (0, 229, 255)
WINDOW_COLOUR = (255, 214, 0)
MAX_ALPHA = 0.65
_PALETTE = np.asarray(display.SEQUENTIAL_PALETTE, np.uint8).ravel().tobytes()


def saliency_scale(explanations: Sequence[Explanation], label: str = "malignant") -> float:
    """A common top of the colour scale for several explanations: their largest saliency of ``label``
    (at least 0.001), so the same colour means the same value in every picture."""
    index = 0 if label == "benign" else 1
    return max([1e-3] + [float(np.max(e.saliency[index])) for e in explanations])


def picture_shape(shape: tuple[int, int], max_side: int) -> tuple[int, int]:
    """The size of a picture of an image of ``shape``: its longer side at most ``max_side``, aspect kept."""
    scale = min(1.0, max_side / max(shape))
    return max(1, round(shape[0] * scale)), max(1, round(shape[1] * scale))


def pictures(
    pixels: np.ndarray,
    explanation: Explanation,
    labels: Sequence[str] = CLASSES,
    *,
    window: tuple[float, float] | None = None,
    max_side: int = 1024,
    vmax: Mapping[str, float] | None = None,
    regions: bool = True,
) -> dict[str, np.ndarray]:
    """The saliency maps ``labels`` of ``explanation`` over ``pixels`` (the image it explains, model units).

    Parameters
    ----------
    pixels : numpy.ndarray
        The stored image (or its perturbed version), the shape the explanation refers to.
    explanation : Explanation
        From :func:`core.models.explain.explain_image`.
    labels : sequence of {"benign", "malignant"}
        Which saliency maps.
    window : (centre, width), optional
        Grey window in model units (default: :func:`core.display.auto_window` of ``pixels``; every pixel
        counts when the image has negative values, e.g. a high-pass result).
    max_side : int
        Longer side of the pictures at most (pixels, >= 1).
    vmax : mapping label -> float, optional
        Saliency drawn at full colour (default: each map's maximum; :func:`saliency_scale` for a shared one).
    regions : bool
        Draw the model window and the K regions.

    Returns
    -------
    dict
        label -> ``(rows, cols, 3)`` uint8, of :func:`picture_shape`.
    """
    if max_side < 1:
        raise DisplayError(f"pictures: max_side must be >= 1, got {max_side}")
    shape = picture_shape(pixels.shape, max_side)
    small = area_mean(pixels, shape)
    if window is None:
        window = display.auto_window(pixels, tissue_only=bool(np.min(small) >= 0))
    grey = Image.fromarray(display.apply_window(small, *window)).convert("RGB")
    out = {}
    for label in labels:
        sal = explanation.saliency_on_image(label, shape)
        top = saliency_scale([explanation], label) if vmax is None else max(float(vmax[label]), 1e-6)
        level = np.nan_to_num(np.clip(sal / top, 0.0, 1.0), nan=0.0)
        index = (level * 255).astype(np.uint8)
        colour = Image.frombytes("P", (shape[1], shape[0]), np.ascontiguousarray(index).tobytes())
        colour.putpalette(_PALETTE)
        alpha = Image.fromarray((MAX_ALPHA * index).astype(np.uint8), "L")  # opacity grows with saliency
        rgb = Image.composite(colour.convert("RGB"), grey, alpha)
        out[label] = _draw_regions(rgb, explanation) if regions else np.asarray(rgb)
    return out


def picture(pixels: np.ndarray, explanation: Explanation, label: str = "malignant", **options) -> np.ndarray:
    """One saliency map over the image: :func:`pictures` for ``label`` alone (``vmax`` may be a float)."""
    vmax = options.pop("vmax", None)
    if vmax is not None and not isinstance(vmax, Mapping):
        vmax = {label: float(vmax)}
    return pictures(pixels, explanation, (label,), vmax=vmax, **options)[label]


def _draw_regions(img: Image.Image, explanation: Explanation) -> np.ndarray:
    draw = ImageDraw.Draw(img)
    width = max(1, round(max(img.size) / 400))
    fr = explanation.frame.image_shape[0] / img.height  # image pixels per picture pixel, per axis
    fc = explanation.frame.image_shape[1] / img.width

    def rect(row: int, col: int, height: int, wide: int) -> list[float]:
        return [col / fc, row / fr, (col + wide) / fc - 1, (row + height) / fr - 1]

    draw.rectangle(rect(*explanation.frame.window_box), outline=WINDOW_COLOUR, width=1)
    font = ImageFont.load_default(size=max(10, 6 * width))
    for rank, region in enumerate(explanation.regions, start=1):
        box = rect(region.row, region.col, region.height, region.width)
        draw.rectangle(box, outline=REGION_COLOUR, width=width)
        draw.text((box[0] + 2, box[1] + 1), str(rank), fill=REGION_COLOUR, font=font)
    return np.asarray(img)
