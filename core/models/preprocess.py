"""The NYU preprocessing pipeline: crop, flip, optimal centre, window extraction, standardisation.

Written from ``../shared/spec/nyu-models.md`` sections 0.4 to 0.7 (the NYU code itself is AGPL v3 and is not
used). The steps, in order, for one image:

1. :func:`crop_breast` on the image as stored (left views facing right, right views facing left): foreground
   ``pixels > 0``, erosion, largest 4-connected component, dilation, bounding box plus a buffer.
2. :func:`flip_for_model`: mirror so that every view faces right (chest wall at column 0).
3. :func:`best_center` on the flipped crop for the model's window shape.
4. :func:`extract_window`: the window at the best centre, zero padding where the crop is too small, and for
   DMV the seeded location and size noise of its test-time augmentation (bicubic resize back to the window).
5. :func:`standardise`: subtract the window mean, divide by ``max(std, 1e-5)`` (population std).

Pixel values are in model units (float32, 0..4095, bright tissue on an exactly-zero background). Any
perturbation is applied by the caller before this pipeline, i.e. before standardisation. All lengths below
are in pixels of the array handed in; :class:`PipelineScale` rescales the NYU pixel constants for reduced
size demo models (see ``docs/demo-weights.md``).

The erosion and dilation of 100 iterations with the 3x3 cross (:mod:`core.models.imageops`) are computed
exactly as taxicab distance thresholds (a pixel survives ``k`` erosions iff its city-block distance to the
background, counting the outside of the image as background, exceeds ``k``); ``tests/test_preprocess.py``
checks this against the iterative ``scipy.ndimage`` definition.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from core.errors import PreprocessError
from core.models.imageops import dilate_cross, erode_cross, largest_component, resize_bicubic

#: NYU constants, in pixels of the stored image (about 0.1 mm per pixel).
EROSION_ITERATIONS = 100
CROP_BUFFER = 50
RIGHTMOST_IGNORE_RATIO = 1 / 3
DMV_MAX_CROP_NOISE = (100, 100)
DMV_MAX_CROP_SIZE_NOISE = 100
STD_FLOOR = 1e-5

#: Official window shapes (rows, cols).
DMV_WINDOW = {"CC": (2677, 1942), "MLO": (2974, 1748)}
GMIC_WINDOW = {"CC": (2944, 1920), "MLO": (2944, 1920)}

VIEWS = ("L-CC", "R-CC", "L-MLO", "R-MLO")


@dataclass(frozen=True)
class CropResult:
    """Output of :func:`crop_breast`.

    Attributes
    ----------
    pixels : np.ndarray
        The crop ``image[top:bottom, left:right]`` of the original (un-eroded) pixels, same dtype, unflipped.
    window_location : tuple of int
        ``(top, bottom, left, right)`` of the crop in the input image (end-exclusive), in pixels.
    rightmost_points : tuple
        ``((y_first, y_last), x)``: the column of the breast mask furthest from the chest wall in the
        crop (ignoring its top third; expressed in the flipped frame for breasts facing left) and the first
        and last row where the mask touches it.
    bottommost_points : tuple
        ``(y, (x_first, x_last))``: the last mask row of the crop and the first/last mask column on it
        (flipped frame for breasts facing left).
    distance_from_starting_side : int
        Columns between the chest-wall edge of the image and the breast mask (0 when correctly oriented).
    mode : str
        The side the breast faces in the stored image, ``"right"`` or ``"left"``.
    """

    pixels: np.ndarray
    window_location: tuple[int, int, int, int]
    rightmost_points: tuple[tuple[int, int], int]
    bottommost_points: tuple[int, tuple[int, int]]
    distance_from_starting_side: int
    mode: str


def _name(name: str | None) -> str:
    return name or "image"


def _check_image(pixels: np.ndarray, name: str | None) -> np.ndarray:
    arr = np.asarray(pixels)
    if arr.ndim != 2:
        raise PreprocessError(f"{_name(name)}: expected a 2-D image, got an array of shape {arr.shape}")
    if arr.size == 0:
        raise PreprocessError(f"{_name(name)}: the image is empty (shape {arr.shape})")
    if arr.dtype.kind == "f" and not np.isfinite(arr).all():
        raise PreprocessError(f"{_name(name)}: the image contains NaN or infinite values")
    return arr


def view_angle(view: str, name: str | None = None) -> str:
    """``"CC"`` or ``"MLO"`` from a view name (``"L-CC"``, ``"mlo"``...); PreprocessError for others."""
    v = str(view).upper()
    if "CC" in v:
        return "CC"
    if "MLO" in v:
        return "MLO"
    raise PreprocessError(
        f"{_name(name)}: view {view!r} is neither CC nor MLO; the NYU models take only these"
    )


def _laterality(laterality: str, name: str | None = None) -> str:
    side = str(laterality).upper()[:1] if laterality else ""
    if side not in ("L", "R"):
        raise PreprocessError(f"{_name(name)}: laterality {laterality!r} must be 'L' or 'R'")
    return side


def facing_mode(laterality: str, horizontal_flip: str = "NO") -> str:
    """Side the breast faces in the stored image: ``"right"`` for left breasts when horizontal_flip is NO."""
    side = _laterality(laterality)
    flip = str(horizontal_flip).upper()
    if flip not in ("NO", "YES"):
        raise PreprocessError(f"horizontal_flip must be 'NO' or 'YES', got {horizontal_flip!r}")
    faces_right = side == "L"
    if flip == "YES":
        faces_right = not faces_right
    return "right" if faces_right else "left"


def crop_breast(
    pixels: np.ndarray,
    laterality: str,
    horizontal_flip: str = "NO",
    *,
    erosion_iterations: int = EROSION_ITERATIONS,
    buffer: int = CROP_BUFFER,
    name: str | None = None,
) -> CropResult:
    """Crop the breast out of a stored mammogram as the NYU pipeline does (spec section 0.5).

    Parameters
    ----------
    pixels : np.ndarray
        2-D image as stored (not flipped), any numeric dtype; foreground is ``pixels > 0``, so the background
        must be exactly 0.
    laterality : str
        ``"L"`` or ``"R"`` (the first letter of e.g. ``"L-CC"`` is also accepted).
    horizontal_flip : {"NO", "YES"}
        NYU exam flag: ``"NO"`` means left breasts face right in the stored image.
    erosion_iterations, buffer : int
        Pixel constants (NYU: 100 and 50); reduced-scale pipelines pass scaled values.
    name : str, optional
        Name of the image used in error messages.

    Returns
    -------
    CropResult

    Raises
    ------
    PreprocessError
        If the image is not 2-D, has no foreground, or nothing is left of the foreground after erosion.
    """
    img = _check_image(pixels, name)
    mode = facing_mode(laterality, horizontal_flip)
    height, width = img.shape
    mask = _breast_mask(img, erosion_iterations, name)

    rows = np.flatnonzero(mask.any(axis=1))
    cols = np.flatnonzero(mask.any(axis=0))
    y0, y1 = int(rows[0]), int(rows[-1]) + 1
    x0, x1 = int(cols[0]), int(cols[-1]) + 1
    bottom_y = y1 - 1
    bottom_xs = np.flatnonzero(mask[bottom_y])
    distance = width - x1 if mode == "left" else x0

    top, bottom = max(y0 - buffer, 0), min(y1 + buffer, height)
    left, right = x0, x1
    if mode == "left":
        if left > 0:
            left = max(left - buffer, 0)
    elif right < width:
        right = min(right + buffer, width)

    bottom_y -= top
    if mode == "left":
        bottom_xs = (right - bottom_xs)[::-1]
    else:
        bottom_xs = bottom_xs - left

    return CropResult(
        pixels=img[top:bottom, left:right],
        window_location=(top, bottom, left, right),
        rightmost_points=_rightmost_points(mask[top:bottom, left:right], mode, name),
        bottommost_points=(int(bottom_y), (int(bottom_xs[0]), int(bottom_xs[-1]))),
        distance_from_starting_side=int(distance),
        mode=mode,
    )


def _breast_mask(img: np.ndarray, erosion_iterations: int, name: str | None) -> np.ndarray:
    """Foreground ``img > 0``, eroded, its largest component, dilated back (spec 0.5)."""
    foreground = img > 0
    if not foreground.any():
        raise PreprocessError(f"{_name(name)}: the image has no pixel above 0, so there is no breast to crop")
    eroded = erode_cross(foreground, erosion_iterations)
    component = largest_component(eroded)
    if component is None:
        raise PreprocessError(
            f"{_name(name)}: nothing is left of the foreground after {erosion_iterations} erosions; the "
            "breast is too small or the image is not a mammogram on an exactly-zero background"
        )
    return dilate_cross(component, erosion_iterations)


def _rightmost_points(cropped_mask: np.ndarray, mode: str, name: str | None) -> tuple[tuple[int, int], int]:
    """((first row, last row), column) of the mask's outermost column below its top third, in the frame of
    the crop flipped to face right."""
    ignore = int(cropped_mask.shape[0] * RIGHTMOST_IGNORE_RATIO)
    search = cropped_mask[ignore:]
    has_value = np.flatnonzero(search.any(axis=0))
    if has_value.size == 0:
        raise PreprocessError(f"{_name(name)}: the breast mask is empty below the top third of the crop")
    rightmost_x = int(has_value[-1] if mode == "right" else has_value[0])
    rightmost_ys = np.flatnonzero(search[:, rightmost_x]) + ignore
    if mode == "left":
        rightmost_x = cropped_mask.shape[1] - rightmost_x
    return (int(rightmost_ys[0]), int(rightmost_ys[-1])), rightmost_x


def flip_for_model(pixels: np.ndarray, laterality: str, horizontal_flip: str = "NO") -> np.ndarray:
    """Mirror left-right where needed so that the breast faces right (chest wall at column 0), spec 0.4.

    Returns the input array itself when no flip is needed, else a flipped copy.
    """
    if facing_mode(laterality, horizontal_flip) == "right":
        return pixels
    return np.ascontiguousarray(pixels[:, ::-1])


def _axis_candidates(dim: int, window: int) -> np.ndarray:
    lo, hi = window // 2, dim - (window - window // 2)
    if hi <= lo:
        return np.array([dim // 2])
    return np.arange(lo, hi + 1)


def best_center(
    cropped: np.ndarray,
    view: str,
    window_shape: tuple[int, int],
    *,
    rightmost_x: int,
    bottommost_y: int,
    name: str | None = None,
) -> tuple[int, int]:
    """Optimal window centre (row, col) on the **flipped** crop, spec section 0.6.

    Parameters
    ----------
    cropped : np.ndarray
        The crop of :func:`crop_breast` after :func:`flip_for_model` (breast facing right).
    view : str
        ``"CC"`` or ``"MLO"`` (``"L-CC"`` etc. accepted).
    window_shape : (int, int)
        Model window (rows, cols), e.g. ``(2944, 1920)`` for GMIC.
    rightmost_x, bottommost_y : int
        ``crop.rightmost_points[1]`` and ``crop.bottommost_points[0]`` of the same crop.

    Returns
    -------
    (int, int)
        The centre; it may lie outside the crop (the window is later shifted or padded).
    """
    img = _check_image(cropped, name)
    angle = view_angle(view, name)
    hw, ww = int(window_shape[0]), int(window_shape[1])
    cx = int(rightmost_x) - ww // 2 - 1
    if angle == "MLO":
        right_cols = img[:, -ww:] if img.shape[1] > ww else img
        nz_rows = np.flatnonzero((right_cols > 0).any(axis=1))
        last_row = int(nz_rows[-1]) if nz_rows.size else int(bottommost_y)
        b = min(int(bottommost_y), last_row)
        return b - hw // 2 - 1, cx

    height, width = img.shape
    com_y = height // 2
    ys = _axis_candidates(height, hw)
    if ys.size == 1:
        return int(ys[0]), cx
    # Foreground count in each candidate window (rows shifted inside at the top, truncated at the bottom;
    # columns likewise), from a zero-padded 2-D cumulative sum.
    csum = np.zeros((height + 1, width + 1), dtype=np.int64)
    csum[1:, 1:] = (img > 0).cumsum(axis=0).cumsum(axis=1)
    top = ys - hw // 2
    bottom = top + hw
    shift = np.minimum(top, 0)
    top, bottom = top - shift, np.minimum(bottom - shift, height)
    left = cx - ww // 2
    right = left + ww
    if left < 0:
        left, right = 0, right - left
    right = min(right, width)
    left = min(left, width)
    scores = csum[bottom, right] - csum[top, right] - csum[bottom, left] + csum[top, left]
    best = np.flatnonzero(scores == scores.max())
    dist = (ys[best] - com_y) ** 2 + (cx - width // 2) ** 2
    return int(ys[best[int(np.argmin(dist))]]), cx


# --------------------------------------------------------------------------------------------------------
# Window extraction (spec 0.7)


def _pad_axis(size: int, window: int, margin: int, both_sides: bool) -> tuple[int, int, int, int]:
    """(start, end, pad_front, pad_back) of a window along an axis too small for window + noise margin."""
    pad = window - size + margin * (2 if both_sides else 1)
    if both_sides:
        front, start = pad // 2, margin
    else:
        front, start = 0, 0
    return start, start + window, front, pad - front


def _shift_inside(start: int, end: int, size: int, window: int) -> tuple[int, int]:
    if start < 0:
        return 0, window
    if end > size:
        return size - window, size
    return start, end


def extract_window(
    image: np.ndarray,
    view: str,
    window_shape: tuple[int, int],
    center: tuple[int, int],
    *,
    rng: np.random.RandomState | None = None,
    max_crop_noise: tuple[int, int] = (0, 0),
    max_crop_size_noise: int = 0,
    name: str | None = None,
) -> np.ndarray:
    """Cut the model window out of a flipped crop, with DMV's optional location and size noise (spec 0.7).

    Parameters
    ----------
    image : np.ndarray
        Flipped crop (rows, cols) or (rows, cols, channels) with the image in channel 0 (auxiliary channels
        such as heatmaps are cut and resized jointly).
    view : str
        ``"CC"`` or ``"MLO"``; decides how a too-short crop is padded.
    window_shape : (int, int)
        Output (rows, cols).
    center : (int, int)
        The optimal centre from :func:`best_center`.
    rng : numpy.random.RandomState, optional
        Generator for the noise. Per call it draws ``uniform(size=2)`` if ``max_crop_noise`` is not (0, 0),
        then ``uniform(size=4)`` always (the NYU consumption order). When None, a fresh ``RandomState(0)``
        is used (as GMIC does; with no noise the result does not depend on it).
    max_crop_noise : (int, int)
        Maximal window shift in pixels (rows, cols); DMV: (100, 100), GMIC: (0, 0).
    max_crop_size_noise : int
        Maximal border movement in pixels; DMV: 100, GMIC: 0.

    Returns
    -------
    np.ndarray
        float32 window of exactly ``window_shape`` (plus the channel axis if given), not standardised.
    """
    img = np.asarray(image)
    if img.ndim not in (2, 3) or img.shape[0] == 0 or img.shape[1] == 0:
        raise PreprocessError(f"{_name(name)}: expected a non-empty 2-D crop, got shape {img.shape}")
    angle = view_angle(view, name)
    hw, ww = int(window_shape[0]), int(window_shape[1])
    noise_y, noise_x = int(max_crop_noise[0]), int(max_crop_noise[1])
    size_noise = int(max_crop_size_noise)
    if rng is None:
        rng = np.random.RandomState(0)

    margins = (noise_y + size_noise, noise_x + size_noise)
    img, box = _place_window(img, angle, (hw, ww), (int(center[0]), int(center[1])), margins)
    if (noise_y, noise_x) != (0, 0):
        box = _location_noise(box, img.shape[:2], (noise_y, noise_x), rng)
    top, bottom, left, right = _size_noise(box, img.shape[:2], (hw, ww), size_noise, rng)

    window = img[top:bottom, left:right].astype(np.float32, copy=False)
    if window.shape[:2] != (hw, ww):
        window = resize_bicubic(window, (hw, ww))
    return np.array(window, dtype=np.float32, copy=True)


def _place_window(
    img: np.ndarray, angle: str, shape: tuple[int, int], center: tuple[int, int], margins: tuple[int, int]
) -> tuple[np.ndarray, tuple[int, int, int, int]]:
    """The crop, zero-padded where it is too small for the window plus its noise margins, and the window's
    (top, bottom, left, right) around ``center``, shifted inside it."""
    pads, box = _window_layout(img.shape[:2], angle, shape, center, margins)
    if any(pads):
        widths = [pads[:2], pads[2:]] + [(0, 0)] * (img.ndim - 2)
        img = np.pad(img, widths)
    return img, box


def _window_layout(
    crop_shape: tuple[int, int],
    angle: str,
    shape: tuple[int, int],
    center: tuple[int, int],
    margins: tuple[int, int],
) -> tuple[tuple[int, int, int, int], tuple[int, int, int, int]]:
    """What :func:`_place_window` does, from the shapes alone: the zero padding (top, bottom, left, right)
    of the crop and the window's (top, bottom, left, right) in the padded crop."""
    hw, ww = shape
    top, left = center[0] - hw // 2, center[1] - ww // 2
    bottom, right = top + hw, left + ww
    height, width = crop_shape
    pad_top = pad_bottom = pad_left = pad_right = 0
    margin_y, margin_x = margins
    if angle == "CC" and height < hw + 2 * margin_y:
        top, bottom, pad_top, pad_bottom = _pad_axis(height, hw, margin_y, True)
    elif angle == "MLO" and height < hw + margin_y:
        top, bottom, pad_top, pad_bottom = _pad_axis(height, hw, margin_y, False)
    if width < ww + margin_x:
        left, right, pad_left, pad_right = _pad_axis(width, ww, margin_x, False)
    height, width = height + pad_top + pad_bottom, width + pad_left + pad_right
    top, bottom = _shift_inside(top, bottom, height, hw)
    left, right = _shift_inside(left, right, width, ww)
    return (pad_top, pad_bottom, pad_left, pad_right), (top, bottom, left, right)


def window_origin(
    crop_shape: tuple[int, int], view: str, window_shape: tuple[int, int], center: tuple[int, int]
) -> tuple[int, int]:
    """(row, col) of the crop pixel at the top-left corner of the window that :func:`extract_window` cuts
    without noise (negative where the window hangs over the crop's edge into zero padding)."""
    pads, box = _window_layout(crop_shape, view_angle(view), window_shape, center, (0, 0))
    return box[0] - pads[0], box[2] - pads[2]


def _location_noise(
    box: tuple[int, int, int, int], size: tuple[int, int], noise: tuple[int, int], rng: np.random.RandomState
) -> tuple[int, int, int, int]:
    """The window shifted by up to ``noise`` pixels (rows, cols), away from the edges it touches."""
    top, bottom, left, right = box
    height, width = size
    u = rng.uniform(low=-1.0, high=1.0, size=2)
    if top == 0:
        u[0] = abs(u[0])
    elif bottom == height:
        u[0] = -abs(u[0])
    if left == 0:
        u[1] = abs(u[1])
    elif right == width:
        u[1] = -abs(u[1])
    amp_y = min(noise[0], height - bottom if u[0] >= 0 else top)
    amp_x = min(noise[1], width - right if u[1] >= 0 else left)
    dy, dx = int(np.round(amp_y * u[0])), int(np.round(amp_x * u[1]))
    return top + dy, bottom + dy, left + dx, right + dx


def _size_noise(
    box: tuple[int, int, int, int],
    size: tuple[int, int],
    shape: tuple[int, int],
    size_noise: int,
    rng: np.random.RandomState,
) -> tuple[int, int, int, int]:
    """Each border moved by up to ``size_noise`` pixels (scaled to the window's aspect); always draws
    ``uniform(size=4)``."""
    top, bottom, left, right = box
    height, width = size
    hw, ww = shape
    u4 = rng.uniform(low=-1.0, high=1.0, size=4)
    s = min(size_noise, top, height - bottom, left, width - right)
    if hw >= ww:
        amp_y, amp_x = s, np.round(s * ww / hw)
    else:
        amp_y, amp_x = np.round(s * hw / ww), s
    top += int(np.round(amp_y * u4[0]))
    bottom += int(np.round(amp_y * u4[1]))
    left += int(np.round(amp_x * u4[2]))
    right += int(np.round(amp_x * u4[3]))
    return top, bottom, left, right


def standardise(window: np.ndarray) -> np.ndarray:
    """Per-window standardisation: ``(x - mean) / max(std, 1e-5)`` over the whole window, ddof 0, float32.

    The mean and std include the background and any zero padding, as in the NYU code.
    """
    x = np.array(window, dtype=np.float32, copy=True)
    x -= np.mean(x)
    x /= np.maximum(np.std(x), np.float32(STD_FLOOR))
    return x
