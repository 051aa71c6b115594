"""Turning model-unit arrays into pictures: window/level, display-size reduction, colour maps, PNG export.

Everything the explorer draws passes through here, so the UI holds no numerics of its own. Inputs are
float arrays in model units (0..4095, bright tissue on a zero background) unless stated otherwise; outputs
are ``uint8`` grey (H, W) or RGB (H, W, 3) arrays, or PNG bytes.
"""

from __future__ import annotations

import base64
import io
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from core.errors import DisplayError

MODEL_MAX = 4095.0
STUDY_RADIUS = 2.0  # cycles/mm: the low-/high-pass radius of the study's Table 1


def _as_2d(pixels: np.ndarray, what: str = "image") -> np.ndarray:
    arr = np.asarray(pixels)
    if arr.ndim != 2 or arr.size == 0:
        raise DisplayError(f"{what}: expected a non-empty 2-D array, got shape {arr.shape}")
    return arr


# --------------------------------------------------------------------------------------------- windows


def auto_window(
    pixels: np.ndarray, low_pct: float = 1.0, high_pct: float = 99.0, tissue_only: bool = True
) -> tuple[float, float]:
    """Window (centre, width) in model units spanning the given percentiles of the breast.

    Parameters
    ----------
    pixels : 2-D array in model units (0..4095).
    low_pct, high_pct : percentiles (0..100) of the non-zero (breast) pixels that map to black and white.
        A strided sample of ~65k pixels is used, so the call costs a millisecond or two.
    tissue_only : if False, use every pixel (for signed images such as a high-pass result).

    Returns
    -------
    (centre, width) in model units; width >= 1.
    """
    arr = _as_2d(pixels)
    step = max(1, int(np.sqrt(arr.size / 65_000)))
    sample = arr[::step, ::step].ravel()
    tissue = sample[sample > 0] if tissue_only else sample
    if tissue.size < 16:
        tissue = sample
    lo, hi = np.percentile(tissue, [low_pct, high_pct]).astype(float)
    width = max(hi - lo, 1.0)
    return (lo + hi) / 2.0, width


def window_presets(
    pixels: np.ndarray, dicom_window: tuple[float, float] | None = None
) -> dict[str, tuple[float, float]]:
    """Named (centre, width) windows in model units for an image.

    ``"Auto (breast 1-99 %)"`` (first: the default) spans the breast's percentiles; ``"DICOM window"``
    (only when the file carried a VOI window) is the window the file asked for; ``"High contrast
    (50-99.8 %)"`` stretches the dense end, where calcifications sit; ``"Full range"`` shows 0..4095.
    """
    presets: dict[str, tuple[float, float]] = {"Auto (breast 1-99 %)": auto_window(pixels, 1.0, 99.0)}
    if dicom_window is not None:
        presets["DICOM window"] = (float(dicom_window[0]), max(float(dicom_window[1]), 1.0))
    presets["High contrast (50-99.8 %)"] = auto_window(pixels, 50.0, 99.8)
    presets["Full range"] = (MODEL_MAX / 2.0, MODEL_MAX)
    return presets


def apply_window(pixels: np.ndarray, centre: float, width: float, invert: bool = False) -> np.ndarray:
    """Map model units to 8-bit grey: ``centre - width/2`` -> 0, ``centre + width/2`` -> 255, clipped.

    Parameters
    ----------
    pixels : 2-D array in model units.
    centre, width : window in model units; width must be > 0.
    invert : if True, bright tissue is drawn dark.
    """
    arr = _as_2d(pixels)
    if not width > 0:
        raise DisplayError(f"window width must be positive, got {width}")
    scale = np.float32(255.0 / width)
    out = (arr.astype(np.float32, copy=False) - np.float32(centre - width / 2.0)) * scale
    np.clip(out, 0.0, 255.0, out=out)
    grey = out.astype(np.uint8)
    if invert:
        np.subtract(255, grey, out=grey)
    return grey


# ----------------------------------------------------------------------------------------- reduction


def display_factor(shape: tuple[int, int], max_side: int) -> int:
    """Integer reduction factor that brings the longer side of ``shape`` to at most ``max_side`` pixels."""
    if max_side < 1:
        raise DisplayError(f"max_side must be >= 1, got {max_side}")
    return max(1, int(np.ceil(max(shape) / max_side)))


def downsample(pixels: np.ndarray, max_side: int) -> np.ndarray:
    """Area-average an image by an integer factor so its longer side is at most ``max_side``.

    Used for perturbations without a spectral preview (noise, shuffle). The remainder border (fewer than
    ``factor`` rows/columns) is averaged over the pixels it has, so nothing is cropped.

    Returns a float32 array of shape ``ceil(H / f), ceil(W / f)``.
    """
    arr = _as_2d(pixels).astype(np.float32, copy=False)
    f = display_factor(arr.shape, max_side)
    if f == 1:
        return arr.copy()
    h, w = arr.shape
    hp, wp = -(-h // f) * f, -(-w // f) * f
    padded = np.zeros((hp, wp), np.float32)
    padded[:h, :w] = arr
    counts = np.zeros((hp, wp), np.float32)
    counts[:h, :w] = 1.0
    sums = padded.reshape(hp // f, f, wp // f, f).sum(axis=(1, 3))
    n = counts.reshape(hp // f, f, wp // f, f).sum(axis=(1, 3))
    return sums / n


def display_spacing(
    full_shape: tuple[int, int], shown_shape: tuple[int, int], spacing_mm
) -> tuple[float, float]:
    """Physical size (mm) of one displayed pixel, so that axes of a reduced image stay in mm."""
    return (
        float(spacing_mm[0]) * full_shape[0] / shown_shape[0],
        float(spacing_mm[1]) * full_shape[1] / shown_shape[1],
    )


def upscale(image: np.ndarray, factor: int) -> np.ndarray:
    """Enlarge an image by an integer ``factor`` (1..32) with nearest-neighbour pixels, so native pixels
    stay visible as squares instead of being smoothed by the browser."""
    arr = np.asarray(image)
    if arr.ndim not in (2, 3) or arr.size == 0:
        raise DisplayError(f"upscale: expected a non-empty (H, W) or (H, W, 3) array, got {arr.shape}")
    if not 1 <= int(factor) <= 32:
        raise DisplayError(f"upscale: factor must be 1..32, got {factor}")
    f = int(factor)
    return arr.repeat(f, axis=0).repeat(f, axis=1) if f > 1 else arr


def tissue_centre_mm(pixels: np.ndarray, spacing_mm: tuple[float, float]) -> tuple[float, float]:
    """Centre of the breast (intensity-weighted centroid of the non-zero pixels), (y, x) in mm.

    A sensible default for a zoomed region; the image centre when the image has no non-zero pixel.
    """
    arr = _as_2d(pixels)
    step = max(1, int(np.sqrt(arr.size / 65_000)))
    sample = np.clip(arr[::step, ::step].astype(np.float64), 0.0, None)
    total = sample.sum()
    h, w = arr.shape
    if not total > 0:
        return h * float(spacing_mm[0]) / 2.0, w * float(spacing_mm[1]) / 2.0
    rows = np.arange(sample.shape[0]) * step
    cols = np.arange(sample.shape[1]) * step
    r = float((sample.sum(axis=1) * rows).sum() / total)
    c = float((sample.sum(axis=0) * cols).sum() / total)
    return r * float(spacing_mm[0]), c * float(spacing_mm[1])


# ----------------------------------------------------------------------------------------- radii


def radius_choices(
    spacing_mm: tuple[float, float],
    corner_mm: float | None = None,
    r_min: float = 0.05,
    per_octave: int = 6,
) -> list[float]:
    """Log-spaced low-/high-pass radii (cycles/mm) for a slider, on the study's octave grid.

    The values are ``2 ** (k / per_octave)`` for integer ``k``, so every power of two (the registry's grid
    4, 2, 1, 0.5, 0.25 included) is on the list *exactly*; the others are rounded to 3 significant digits.
    The list runs from ``r_min`` to the corner frequency ``corner_mm`` (the largest frequency present,
    default ``hypot`` of the two axis Nyquist frequencies, above which a low-pass is the identity) and also
    holds the axis Nyquist frequency ``1 / (2 * max(spacing))`` and the corner (rounded to 4 decimals); a
    grid value within 3 % of one of those two is dropped, so that no two stops are near duplicates.
    Sorted ascending.
    """
    sr, sc = float(spacing_mm[0]), float(spacing_mm[1])
    if not (sr > 0 and sc > 0):
        raise DisplayError(f"pixel spacing must be positive, got {spacing_mm}")
    if int(per_octave) != per_octave or per_octave < 1:
        raise DisplayError(f"per_octave must be a positive integer, got {per_octave!r}")
    nyq = round(nyquist_axis(spacing_mm), 4)
    corner = round(float(corner_mm) if corner_mm else float(np.hypot(0.5 / sr, 0.5 / sc)), 4)
    if r_min >= corner:
        r_min = corner / 100.0
    k_lo = int(np.ceil(np.log2(r_min) * per_octave - 1e-9))
    k_hi = int(np.floor(np.log2(corner) * per_octave + 1e-9))
    landmarks = [v for v in (nyq, corner) if r_min <= v <= corner]
    values = set(landmarks) | ({STUDY_RADIUS} if r_min <= STUDY_RADIUS <= corner else set())
    for k in range(k_lo, k_hi + 1):
        exact = k % per_octave == 0
        v = float(2.0 ** (k // per_octave)) if exact else float(f"{2.0 ** (k / per_octave):.3g}")
        if not exact and any(abs(np.log(v / m)) < np.log(1.03) for m in landmarks):
            continue
        if r_min <= v <= corner + 1e-9:
            values.add(v)
    return sorted(values)


def nyquist_axis(spacing_mm: tuple[float, float]) -> float:
    """Nyquist frequency (cycles/mm) along the coarser axis: ``1 / (2 * max(spacing))``."""
    return 0.5 / max(float(spacing_mm[0]), float(spacing_mm[1]))


def nearest(values: Sequence[float], target: float) -> float:
    """The element of ``values`` closest to ``target`` on a log scale (for positive values)."""
    arr = np.asarray(values, dtype=float)
    return float(arr[np.argmin(np.abs(np.log(arr) - np.log(max(target, 1e-12))))])


# ----------------------------------------------------------------------------------------- colour


_DIVERGING = np.array(  # blue -> white -> red, 5 anchors
    [[33, 102, 172], [146, 197, 222], [247, 247, 247], [244, 165, 130], [178, 24, 43]], np.float32
)
_SEQUENTIAL = np.array(  # dark purple -> orange -> pale yellow (magma-like), 6 anchors
    [[0, 0, 4], [59, 15, 112], [140, 41, 129], [222, 73, 104], [254, 159, 109], [252, 253, 191]], np.float32
)


def _lut(anchors: np.ndarray) -> np.ndarray:
    x = np.linspace(0.0, 1.0, len(anchors))
    t = np.linspace(0.0, 1.0, 256)
    return np.stack([np.interp(t, x, anchors[:, c]) for c in range(3)], axis=1).astype(np.uint8)


_DIV_LUT = _lut(_DIVERGING)
DIVERGING_PALETTE = _DIV_LUT
_SEQ_LUT = _lut(_SEQUENTIAL)
SEQUENTIAL_PALETTE = _SEQ_LUT


def symmetric_limit(values: np.ndarray, pct: float = 99.5) -> float:
    """Colour limit for a signed map: the ``pct`` percentile of ``|values|`` (at least 1e-6)."""
    arr = _as_2d(values, "difference")
    step = max(1, int(np.sqrt(arr.size / 65_000)))
    return max(float(np.percentile(np.abs(arr[::step, ::step]), pct)), 1e-6)


def diverging_rgb(values: np.ndarray, limit: float) -> np.ndarray:
    """Signed values to RGB: ``-limit`` blue, 0 white, ``+limit`` red (clipped). Returns (H, W, 3) uint8."""
    return _DIV_LUT[diverging_index(values, limit)]


def sequential_rgb(values: np.ndarray, vmin: float | None = None, vmax: float | None = None) -> np.ndarray:
    """Values to a magma-like RGB ramp between ``vmin`` and ``vmax`` (default: 1st/99.9th percentiles)."""
    arr = _as_2d(values, "map").astype(np.float32, copy=False)
    lo = float(np.percentile(arr, 1.0)) if vmin is None else float(vmin)
    hi = float(np.percentile(arr, 99.9)) if vmax is None else float(vmax)
    span = max(hi - lo, 1e-12)
    idx = np.clip((arr - lo) / span * 255.0, 0, 255).astype(np.uint8)
    return _SEQ_LUT[idx]


# ----------------------------------------------------------------------------------------- encoding


def diverging_index(values: np.ndarray, limit: float) -> np.ndarray:
    """Signed values to uint8 indices into :data:`DIVERGING_PALETTE` (0: -limit, 127.5: 0, 255: +limit).

    Paired with ``png_bytes(index, palette=DIVERGING_PALETTE)`` this encodes a difference map several times
    faster than an RGB PNG.
    """
    arr = _as_2d(values, "difference").astype(np.float32, copy=False)
    if not limit > 0:
        raise DisplayError(f"colour limit must be positive, got {limit}")
    return np.clip((arr / np.float32(limit) + 1.0) * 127.5, 0, 255).astype(np.uint8)


def png_bytes(image: np.ndarray, compress_level: int = 1, palette: np.ndarray | None = None) -> bytes:
    """Encode a uint8 grey (H, W) or RGB (H, W, 3) array as PNG (fast compression by default).

    With ``palette`` (a (256, 3) uint8 colour table) a 2-D array is written as an indexed-colour PNG.
    """
    arr = np.asarray(image)
    if arr.dtype != np.uint8 or arr.ndim not in (2, 3) or arr.size == 0:
        raise DisplayError(
            f"png_bytes: expected a non-empty uint8 (H, W) or (H, W, 3) array, got {arr.dtype} {arr.shape}"
        )
    img = Image.fromarray(arr)
    if palette is not None:
        if arr.ndim != 2:
            raise DisplayError(f"png_bytes: a palette needs a 2-D index array, got {arr.shape}")
        img = Image.frombytes("P", (arr.shape[1], arr.shape[0]), np.ascontiguousarray(arr).tobytes())
        img.putpalette(np.asarray(palette, np.uint8).ravel().tobytes())
    buf = io.BytesIO()
    img.save(buf, format="PNG", compress_level=compress_level)
    return buf.getvalue()


def png_data_uri(image: np.ndarray, palette: np.ndarray | None = None) -> str:
    """A ``data:image/png;base64,...`` URI of a uint8 image (for plotly image traces)."""
    return "data:image/png;base64," + base64.b64encode(png_bytes(image, palette=palette)).decode("ascii")


def png_data_uris(
    images: Sequence[np.ndarray], palettes: Sequence[np.ndarray | None] | None = None
) -> list[str]:
    """:func:`png_data_uri` of several images, encoded in parallel threads (zlib releases the GIL)."""
    pals = list(palettes) if palettes is not None else [None] * len(images)
    if len(pals) != len(images):
        raise DisplayError(f"png_data_uris: {len(images)} images but {len(pals)} palettes")
    with ThreadPoolExecutor(max_workers=max(1, len(images))) as pool:
        return list(pool.map(png_data_uri, images, pals))


def _font(size: int) -> ImageFont.ImageFont:
    try:
        return ImageFont.load_default(size=size)
    except TypeError:  # Pillow < 10.1
        return ImageFont.load_default()


def _to_rgb(image: np.ndarray) -> np.ndarray:
    arr = np.asarray(image)
    if arr.dtype != np.uint8:
        raise DisplayError(f"panel images must be uint8, got {arr.dtype}")
    if arr.ndim == 2:
        return np.repeat(arr[:, :, None], 3, axis=2)
    if arr.ndim == 3 and arr.shape[2] == 3:
        return arr
    raise DisplayError(f"panel images must be (H, W) or (H, W, 3), got {arr.shape}")


def compose_panels(
    panels: Sequence[tuple[str, np.ndarray]],
    *,
    height: int = 512,
    caption: str = "",
    gap: int = 8,
) -> bytes:
    """Lay out titled panels side by side on a white sheet and return it as PNG bytes.

    Parameters
    ----------
    panels : (title, uint8 grey or RGB image) pairs, drawn left to right, each scaled to ``height`` pixels.
    height : panel height in pixels (16..4096).
    caption : one line of text under the panels (e.g. the perturbation and its parameter).
    gap : white space between panels in pixels.
    """
    if not panels:
        raise DisplayError("compose_panels: no panels given")
    if not 16 <= height <= 4096:
        raise DisplayError(f"compose_panels: height must be 16..4096, got {height}")
    font = _font(max(12, height // 28))
    title_h = max(18, height // 20)
    tiles = []
    for title, img in panels:
        rgb = _to_rgb(img)
        w = max(1, round(rgb.shape[1] * height / rgb.shape[0]))
        tiles.append((title, Image.fromarray(rgb).resize((w, height), Image.Resampling.BILINEAR)))
    width = sum(t.width for _, t in tiles) + gap * (len(tiles) + 1)
    cap_h = title_h if caption else 0
    sheet = Image.new("RGB", (width, height + title_h + cap_h + 2 * gap), "white")
    draw = ImageDraw.Draw(sheet)
    x = gap
    for title, tile in tiles:
        draw.text((x, gap // 2), title, fill="black", font=font)
        sheet.paste(tile, (x, gap // 2 + title_h))
        x += tile.width + gap
    if caption:
        draw.text((gap, gap + title_h + height), caption, fill="black", font=font)
    buf = io.BytesIO()
    sheet.save(buf, format="PNG")
    return buf.getvalue()


def resample_aspect(rgb: np.ndarray, step_rows: float, step_cols: float) -> np.ndarray:
    """Resize an image whose pixels span ``step_rows`` x ``step_cols`` (any unit) so that its pixels are
    square in that unit (height kept; bilinear). E.g. a spectrum with different frequency steps per axis."""
    arr = np.asarray(rgb)
    if arr.ndim not in (2, 3) or arr.size == 0 or not (step_rows > 0 and step_cols > 0):
        raise DisplayError(f"resample_aspect: bad image {arr.shape} or steps ({step_rows}, {step_cols})")
    h, w = arr.shape[:2]
    new_w = max(1, round(w * step_cols / step_rows))
    if new_w == w:
        return arr
    return np.asarray(Image.fromarray(arr).resize((new_w, h), Image.Resampling.BILINEAR))


def draw_ellipse(
    rgb: np.ndarray,
    centre_xy: tuple[float, float],
    radii_xy: tuple[float, float],
    colour: tuple[int, int, int] = (0, 229, 255),
    width: int = 2,
) -> np.ndarray:
    """A copy of an RGB uint8 image with an ellipse outline drawn on it (pixel coordinates, x = column).

    Used to mark the cutoff circle on an exported spectrum.
    """
    arr = np.asarray(rgb)
    if arr.dtype != np.uint8 or arr.ndim != 3 or arr.shape[2] != 3:
        raise DisplayError(f"draw_ellipse: expected an (H, W, 3) uint8 image, got {arr.dtype} {arr.shape}")
    img = Image.fromarray(arr.copy())
    (cx, cy), (rx, ry) = centre_xy, radii_xy
    ImageDraw.Draw(img).ellipse([cx - rx, cy - ry, cx + rx, cy + ry], outline=tuple(colour), width=int(width))
    return np.asarray(img)


def patch_strip(
    patches: Sequence[np.ndarray],
    centre: float,
    width: float,
    gap: int = 2,
    *,
    labels: Sequence[str] | None = None,
    scale: int = 1,
) -> np.ndarray:
    """Window a series of equally sized patches with one common window and join them left to right.

    Used for the calcification strips (one patch per low-pass radius): a common window makes fading visible.

    Parameters
    ----------
    patches : sequence of 2-D arrays of one shape, model units.
    centre, width : the common window, model units.
    gap : white pixels between patches (after scaling).
    labels : one text per patch (e.g. ``"R = 2"``), drawn on a white band above it.
    scale : integer enlargement (1..32) of each patch with nearest-neighbour pixels, before labelling.

    Returns
    -------
    uint8 array ``(band + scale * h, n * scale * w + (n - 1) * gap)``; ``band`` is 0 without labels.
    """
    if not patches:
        raise DisplayError("patch_strip: no patches given")
    shapes = {np.asarray(p).shape for p in patches}
    if len(shapes) != 1:
        raise DisplayError(f"patch_strip: patches differ in shape: {sorted(shapes)}")
    if labels is not None and len(labels) != len(patches):
        raise DisplayError(f"patch_strip: {len(patches)} patches but {len(labels)} labels")
    tiles = [upscale(apply_window(p, centre, width), scale) for p in patches]
    h, w = tiles[0].shape
    band = 0 if labels is None else max(14, h // 8)
    out = np.full((band + h, len(tiles) * w + (len(tiles) - 1) * gap), 255, np.uint8)
    for i, tile in enumerate(tiles):
        out[band:, i * (w + gap) : i * (w + gap) + w] = tile
    if labels is not None:
        img = Image.fromarray(out)
        draw = ImageDraw.Draw(img)
        font = _font(max(10, band - 4))
        for i, text in enumerate(labels):
            tw = draw.textlength(text, font=font)
            draw.text((i * (w + gap) + (w - tw) / 2, 1), text, fill=0, font=font)
        out = np.asarray(img)
    return out
