"""Where GMIC looks: its probabilities, saliency maps and regions of one image, in the image's own pixels.

GMIC (:class:`core.models.gmic.GMIC`) works on a window of the resampled, cropped and flipped image (the NYU
pipeline of :mod:`core.models.inputs`). Its saliency maps (benign, malignant; sigmoid values in [0, 1] on a
coarse grid of cells over that window) and its K regions of interest (upper-left pixel in the window, the
weights' ``crop_shape``) are mapped back here through the window, the flip, the crop and the resampling onto
the pixel grid of the stored image the caller gave, so they can be drawn over it.

Inference only: pixel versions (e.g. perturbed) are made by the caller. The probabilities come from the same
input preparation (:class:`core.models.inputs.ImageInputs`) and the same forward pass
(:func:`core.models.forward.gmic_outputs`, which :func:`~core.models.forward.gmic_forward` uses) as
:func:`core.models.predict.predict_gmic`; with ``batch_size=1`` (the default) each version is forwarded on
its own, as ``mammo-robust predict gmic`` forwards a single file, so the clean image's probabilities equal
that command's bit for bit.
"""

from __future__ import annotations

from collections.abc import Hashable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from core.errors import ModelError
from core.models.forward import GMIC_EXPLAIN_OUTPUTS, gmic_outputs
from core.models.inputs import Geometry, ImageInputs, window_offset

#: Saliency classes in the order of GMIC's output channels.
CLASSES = ("benign", "malignant")


@dataclass(frozen=True)
class Region:
    """One region of interest GMIC picked, as a box in the stored image's pixels.

    Attributes
    ----------
    row, col : int
        Upper-left pixel of the box (clipped to the image).
    height, width : int
        Size in pixels (>= 1; the patch's ``crop_shape`` mapped to the image, less any part outside it).
    attention : float
        The patch's attention weight in GMIC's multiple-instance pooling (0..1, summing to 1 over the K
        regions).
    """

    row: int
    col: int
    height: int
    width: int
    attention: float

    def to_dict(self) -> dict[str, float | int]:
        return {
            "row": self.row,
            "col": self.col,
            "height": self.height,
            "width": self.width,
            "attention": self.attention,
        }


@dataclass(frozen=True)
class WindowFrame:
    """Where a model window lies on the stored image (the NYU crop, flip and window, undone).

    Attributes
    ----------
    image_shape : (int, int)
        Shape of the stored image (rows, cols).
    geometry : Geometry
        Crop and window centre of the clean image (:func:`core.models.inputs.prepare_geometry`).
    offset : (float, float)
        :func:`core.models.inputs.window_offset`: crop coordinates minus window coordinates.
    window_shape : (int, int)
        Model input (rows, cols).
    """

    image_shape: tuple[int, int]
    geometry: Geometry
    offset: tuple[float, float]
    window_shape: tuple[int, int]

    def _scale(self) -> tuple[float, float]:
        hs, ws = self.geometry.resampled_shape
        return self.image_shape[0] / hs, self.image_shape[1] / ws

    def window_edges_to_image(self, rows: np.ndarray, cols: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Pixel-edge coordinates of the window (0 = its top/left edge) to edges in the stored image."""
        top, _, left, right = self.geometry.window_location
        fr, fc = self._scale()
        r = (np.asarray(rows, float) + self.offset[0] + top) * fr
        c = np.asarray(cols, float) + self.offset[1]
        if self.geometry.laterality == "R":  # right breasts are mirrored to face right
            c = (right - left) - c
        return r, (c + left) * fc

    def image_to_window(self, rows: np.ndarray, cols: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Pixel-centre coordinates of the stored image (index units) to the window's (index units)."""
        top, _, left, right = self.geometry.window_location
        fr, fc = self._scale()
        r = (np.asarray(rows, float) + 0.5) / fr - 0.5 - top - self.offset[0]
        c = (np.asarray(cols, float) + 0.5) / fc - 0.5 - left
        if self.geometry.laterality == "R":
            c = (right - left) - 1 - c
        return r, c - self.offset[1]

    def box(self, row: float, col: float, height: float, width: float) -> tuple[int, int, int, int]:
        """A box of the window (upper-left pixel, size) as ``(row, col, height, width)`` in image pixels,
        clipped to the image (height and width at least 1)."""
        rows, cols = self.window_edges_to_image(np.array([row, row + height]), np.array([col, col + width]))
        h0, w0 = self.image_shape
        r0, r1 = np.clip(np.sort(np.round(rows)), 0, h0).astype(int)
        c0, c1 = np.clip(np.sort(np.round(cols)), 0, w0).astype(int)
        r0, c0 = min(r0, h0 - 1), min(c0, w0 - 1)
        return int(r0), int(c0), int(max(r1 - r0, 1)), int(max(c1 - c0, 1))

    @property
    def window_box(self) -> tuple[int, int, int, int]:
        """The part of the stored image the model sees: ``(row, col, height, width)`` in its pixels."""
        return self.box(0, 0, *self.window_shape)


def _bilinear_weights(coords: np.ndarray, cells: int, size: int) -> np.ndarray:
    """(len(coords), cells) weights sampling ``cells`` values spread over ``size`` pixels at pixel-centre
    ``coords`` (bilinear, the cell centres as ``torch.nn.functional.interpolate(align_corners=False)``
    places them); coordinates outside ``[-0.5, size - 0.5]`` get a row of NaN."""
    q = np.clip((coords + 0.5) * cells / size - 0.5, 0, cells - 1)
    i0 = np.floor(q).astype(int)
    i1 = np.minimum(i0 + 1, cells - 1)
    t = q - i0
    weights = np.zeros((len(coords), cells))
    rows = np.arange(len(coords))
    np.add.at(weights, (rows, i0), 1 - t)
    np.add.at(weights, (rows, i1), t)
    weights[(coords < -0.5) | (coords > size - 0.5)] = np.nan
    return weights


@dataclass(frozen=True)
class Explanation:
    """GMIC's view of one pixel version of an image.

    Attributes
    ----------
    version : hashable
        The caller's key of the pixel version.
    benign, malignant : float
        ``y_fusion`` probabilities in [0, 1] (what ``predict`` reports).
    saliency : numpy.ndarray
        ``(2, h, w)`` float32 saliency maps (benign, malignant) in [0, 1] on GMIC's grid of cells over the
        model window, as the model sees it (right breasts mirrored); :meth:`saliency_on_image` maps them
        onto the stored image.
    regions : tuple of Region
        The K regions in the order GMIC picked them, in the stored image's pixels.
    frame : WindowFrame
        Where the window lies on the stored image.
    """

    version: Hashable
    benign: float
    malignant: float
    saliency: np.ndarray
    regions: tuple[Region, ...]
    frame: WindowFrame

    def saliency_on_image(self, label: str = "malignant", shape: tuple[int, int] | None = None) -> np.ndarray:
        """A saliency map sampled on the stored image's pixel grid (or on a coarser grid over the whole
        image, ``shape`` = (rows, cols)): float32 in [0, 1], bilinear between cell centres, NaN where the
        model window does not reach (outside the breast crop).
        """
        h0, w0 = self.frame.image_shape
        n, m = shape if shape is not None else (h0, w0)
        if n < 1 or m < 1:
            raise ModelError(f"saliency_on_image: shape must be positive, got {shape}")
        rows = (np.arange(n) + 0.5) * h0 / n - 0.5
        cols = (np.arange(m) + 0.5) * w0 / m - 0.5
        return self.saliency_at(label, rows, cols)

    def saliency_at(self, label: str, rows: np.ndarray, cols: np.ndarray) -> np.ndarray:
        """A saliency map sampled at the grid ``rows`` x ``cols`` of stored-image pixel-centre coordinates
        (index units, 1-D arrays): float32 ``(len(rows), len(cols))``, NaN outside the model window."""
        if label not in CLASSES:
            raise ModelError(f"saliency label must be one of {', '.join(CLASSES)}, got {label!r}")
        wr, _ = self.frame.image_to_window(np.asarray(rows, float), np.zeros(1))
        _, wc = self.frame.image_to_window(np.zeros(1), np.asarray(cols, float))
        cells = self.saliency[CLASSES.index(label)].astype(np.float64)
        (wh, ww), (ch, cw) = self.frame.window_shape, cells.shape
        a = _bilinear_weights(wr, ch, wh)
        b = _bilinear_weights(wc, cw, ww)
        return (a @ cells @ b.T).astype(np.float32)

    def to_dict(self) -> dict[str, Any]:
        """Plain numbers: probabilities and regions (``patches``), for JSON."""
        return {
            "benign": self.benign,
            "malignant": self.malignant,
            "patches": [r.to_dict() for r in self.regions],
        }


def frame_of(image: ImageInputs) -> WindowFrame:
    """The :class:`WindowFrame` of a prepared image."""
    top, bottom, left, right = image.geometry.window_location
    offset = window_offset((bottom - top, right - left), image.geometry, image.spec)
    window = image.params.window[image.geometry.view]
    return WindowFrame(tuple(image.pixels.shape), image.geometry, offset, window)


def _explanations(model: Any, frame: WindowFrame, keys: list, windows: list[np.ndarray]) -> list[Explanation]:
    out = gmic_outputs(model, np.stack(windows), GMIC_EXPLAIN_OUTPUTS)
    ch, cw = model.crop_shape
    result = []
    for i, key in enumerate(keys):
        regions = tuple(
            Region(*frame.box(float(r), float(c), ch, cw), attention=float(a))
            for (r, c), a in zip(out["patch_locations"][i], out["patch_attns"][i], strict=True)
        )
        benign, malignant = (float(v) for v in out["y_fusion"][i])
        result.append(Explanation(key, benign, malignant, out["saliency_map"][i], regions, frame))
    return result


def explain_image(
    model: Any,
    mammogram: Any,
    versions: Mapping[Hashable, np.ndarray] | Iterable[tuple[Hashable, np.ndarray]],
    *,
    batch_size: int = 1,
) -> list[Explanation]:
    """GMIC's probabilities, saliency maps and regions for one image under several pixel versions.

    Parameters
    ----------
    model : GMIC module
        With ``model.spec`` (:func:`core.models.create_model`).
    mammogram : core.imaging.Mammogram
        The clean image (pixels in model units, laterality, view, spacing): its crop and window position
        are used for every version, as :func:`core.models.predict.score_image` does.
    versions : mapping or iterable of (key, pixels)
        Pixel versions in model units (the clean pixels, perturbed ones...), each of the image's shape.
    batch_size : int
        Versions per forward pass; 1 (default) forwards each alone, as ``predict`` does for one file.

    Returns
    -------
    list of Explanation
        One per version, in order.

    Raises
    ------
    ModelError
        A model other than GMIC, a version of another shape, or an image the NYU crop cannot handle.
    """
    spec = getattr(model, "spec", None)
    if getattr(spec, "arch", None) != "gmic":
        raise ModelError(
            f"explanations need GMIC (saliency maps and regions); got {getattr(spec, 'arch', type(model))}"
        )
    if batch_size < 1:
        raise ModelError(f"explain_image: batch_size must be >= 1, got {batch_size}")
    image = ImageInputs(mammogram, spec)
    frame = frame_of(image)
    items = versions.items() if isinstance(versions, Mapping) else versions
    out: list[Explanation] = []
    keys: list = []
    windows: list[np.ndarray] = []
    for key, pixels in items:
        if np.shape(pixels) != image.pixels.shape:
            raise ModelError(
                f"{image.name}: version {key!r} has shape {np.shape(pixels)}, the image {image.pixels.shape}"
            )
        keys.append(key)
        windows.append(image.window(pixels))
        if len(windows) == batch_size:
            out += _explanations(model, frame, keys, windows)
            keys, windows = [], []
    if windows:
        out += _explanations(model, frame, keys, windows)
    return out
