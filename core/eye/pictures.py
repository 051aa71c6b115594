"""Pictures of the model's eye: a saliency map and GMIC's regions drawn over the windowed image.

The image is reduced by an integer factor (area mean, :func:`core.display.downsample`) so its longer side
fits ``max_side``; the saliency map is sampled at the centres of those display pixels; its colour (the
magma-like ramp of :data:`core.display.SEQUENTIAL_PALETTE`) is blended over the grey image with an opacity
that grows with the saliency, so cold areas show the image unchanged. The model window is outlined (thin,
yellow) and the K regions are boxed (cyan) and numbered in the order GMIC picked them.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from core import display
from core.models.explain import Explanation

REGION_COLOUR = (0, 229, 255)
WINDOW_COLOUR = (255, 214, 0)
MAX_ALPHA = 0.65


def saliency_scale(explanations: Sequence[Explanation], label: str = "malignant") -> float:
    """A common top of the colour scale for several explanations: their largest saliency of ``label``
    (at least 0.001), so the same colour means the same value in every picture."""
    index = 0 if label == "benign" else 1
    return max([1e-3] + [float(np.max(e.saliency[index])) for e in explanations])


def _grid(shape: tuple[int, int], factor: int) -> tuple[np.ndarray, np.ndarray]:
    """Centres (stored-image index units) of the display pixels of :func:`core.display.downsample`."""
    h, w = shape
    rows = np.minimum((np.arange(-(-h // factor)) + 0.5) * factor - 0.5, h - 1)
    cols = np.minimum((np.arange(-(-w // factor)) + 0.5) * factor - 0.5, w - 1)
    return rows, cols


def picture(
    pixels: np.ndarray,
    explanation: Explanation,
    label: str = "malignant",
    *,
    window: tuple[float, float] | None = None,
    max_side: int = 1024,
    vmax: float | None = None,
    regions: bool = True,
) -> np.ndarray:
    """The saliency map ``label`` of ``explanation`` over ``pixels`` (the image it explains, model units).

    Parameters
    ----------
    pixels : numpy.ndarray
        The stored image (or its perturbed version), the shape the explanation refers to.
    explanation : Explanation
        From :func:`core.models.explain.explain_image`.
    label : {"benign", "malignant"}
        Which saliency map.
    window : (centre, width), optional
        Grey window in model units (default: :func:`core.display.auto_window` of ``pixels``).
    max_side : int
        Longer side of the picture at most (pixels).
    vmax : float, optional
        Saliency drawn at full colour (default: the map's maximum; :func:`saliency_scale` for a shared one).
    regions : bool
        Draw the model window and the K regions.

    Returns
    -------
    numpy.ndarray
        ``(rows, cols, 3)`` uint8.
    """
    factor = display.display_factor(pixels.shape, max_side)
    small = display.downsample(pixels, max_side)
    if window is None:
        window = display.auto_window(pixels, tissue_only=bool(np.min(small) >= 0))
    grey = display.apply_window(small, *window).astype(np.float32)
    rows, cols = _grid(pixels.shape, factor)
    sal = explanation.saliency_at(label, rows, cols)
    top = saliency_scale([explanation], label) if vmax is None else max(float(vmax), 1e-6)
    level = np.nan_to_num(np.clip(sal / top, 0.0, 1.0), nan=0.0)
    colour = display.SEQUENTIAL_PALETTE[(level * 255).astype(np.uint8)].astype(np.float32)
    alpha = (MAX_ALPHA * level)[..., None]
    rgb = (grey[..., None] * (1 - alpha) + colour * alpha).round().astype(np.uint8)
    if not regions:
        return rgb
    return _draw_regions(rgb, explanation, factor)


def _draw_regions(rgb: np.ndarray, explanation: Explanation, factor: int) -> np.ndarray:
    img = Image.fromarray(rgb)
    draw = ImageDraw.Draw(img)
    width = max(1, round(max(rgb.shape[:2]) / 400))

    def rect(row: int, col: int, height: int, wide: int) -> list[float]:
        return [col / factor, row / factor, (col + wide) / factor - 1, (row + height) / factor - 1]

    draw.rectangle(rect(*explanation.frame.window_box), outline=WINDOW_COLOUR, width=1)
    font = ImageFont.load_default(size=max(10, 6 * width))
    for rank, region in enumerate(explanation.regions, start=1):
        box = rect(region.row, region.col, region.height, region.width)
        draw.rectangle(box, outline=REGION_COLOUR, width=width)
        draw.text((box[0] + 2, box[1] + 1), str(rank), fill=REGION_COLOUR, font=font)
    return np.asarray(img)
