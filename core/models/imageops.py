"""Exact image operations of the NYU pipeline (:mod:`core.models.preprocess`): erosion and dilation by the
3x3 cross, the largest 4-connected component, and the bicubic resize of augmented windows."""

from __future__ import annotations

import numpy as np
from scipy import ndimage


def erode_cross(mask: np.ndarray, iterations: int) -> np.ndarray:
    """Binary erosion with the 3x3 cross repeated ``iterations`` times, outside of the image = background.

    Equal to ``scipy.ndimage.binary_erosion(mask, iterations=iterations)`` but in one taxicab distance
    transform instead of ``iterations`` passes.
    """
    mask = np.asarray(mask, dtype=bool)
    if iterations <= 0:
        return mask.copy()
    padded = np.pad(mask, 1, constant_values=False)
    dist = ndimage.distance_transform_cdt(padded, metric="taxicab")
    return dist[1:-1, 1:-1] > iterations


def dilate_cross(mask: np.ndarray, iterations: int) -> np.ndarray:
    """Binary dilation with the 3x3 cross repeated ``iterations`` times (= scipy's ``binary_dilation``)."""
    mask = np.asarray(mask, dtype=bool)
    if iterations <= 0 or not mask.any():
        return mask.copy()
    # City-block distance to the nearest foreground pixel; a rectangle is convex for the L1 metric, so the
    # distance inside the image equals the unconstrained one.
    dist = ndimage.distance_transform_cdt(~mask, metric="taxicab")
    return dist <= iterations


def largest_component(mask: np.ndarray) -> np.ndarray | None:
    """Largest 4-connected foreground component of ``mask`` (the first one on ties); None if there is none."""
    labels, count = ndimage.label(mask)
    if count == 0:
        return None
    sizes = np.bincount(labels.ravel())[1:]
    return labels == int(np.argmax(sizes)) + 1


def _cubic_weights(frac: np.ndarray, a: float = -0.75) -> np.ndarray:
    """Keys cubic convolution weights for taps -1, 0, 1, 2 at fractional offsets ``frac`` (OpenCV a=-0.75)."""
    x = frac[:, None] + np.array([1.0, 0.0, -1.0, -2.0])
    ax = np.abs(x)
    w = np.where(
        ax <= 1,
        ((a + 2) * ax - (a + 3)) * ax * ax + 1,
        np.where(ax < 2, ((a * ax - 5 * a) * ax + 8 * a) * ax - 4 * a, 0.0),
    )
    return w


def _resize_axis(arr: np.ndarray, out_len: int, axis: int) -> np.ndarray:
    in_len = arr.shape[axis]
    scale = in_len / out_len
    pos = (np.arange(out_len) + 0.5) * scale - 0.5
    base = np.floor(pos).astype(np.int64)
    weights = _cubic_weights(pos - base)
    idx = np.clip(base[:, None] + np.arange(-1, 3), 0, in_len - 1)  # replicate border
    moved = np.moveaxis(arr, axis, 0)
    extra = (slice(None),) + (None,) * (moved.ndim - 1)
    out = weights[:, 0][extra] * moved[idx[:, 0]]
    for k in range(1, 4):
        out += weights[:, k][extra] * moved[idx[:, k]]
    return np.moveaxis(out, 0, axis)


def resize_bicubic(image: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """Bicubic resize matching OpenCV ``cv2.resize(..., interpolation=INTER_CUBIC)`` for float images.

    Keys kernel with a = -0.75, half-pixel centres (``src = (dst + 0.5) * in/out - 0.5``), replicated border,
    no antialiasing. Implemented in numpy (float64 internally, float32 out); opencv is not a dependency.

    Parameters
    ----------
    image : np.ndarray
        2-D array (rows, cols) or 3-D (rows, cols, channels).
    shape : (int, int)
        Output (rows, cols).
    """
    arr = np.asarray(image, dtype=np.float64)
    out = _resize_axis(arr, int(shape[0]), 0)
    out = _resize_axis(out, int(shape[1]), 1)
    return out.astype(np.float32)
