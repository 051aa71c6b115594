"""Training samples: which crop of an image a sample uses, its window (with the model's window noise), its
finding masks, and GMIC's training patches around findings.

Windows are cut from the cached crops of :mod:`core.training.data` with
:func:`core.models.inputs.window_from_crop`, exactly as at inference, plus DMV's location and size noise.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from core.models import preprocess as pp
from core.models.inputs import pipeline_params, window_from_crop, window_offset
from core.training.data import ImageItem


def crop_index(item: ImageItem, rng: np.random.RandomState, augment_prob: float) -> int:
    """Which crop a training sample uses: a perturbed one (1..) with probability ``augment_prob``, else 0."""
    if len(item.crops) > 1 and rng.uniform() < augment_prob:
        return 1 + rng.randint(len(item.crops) - 1)
    return 0


def window(
    item: ImageItem,
    spec: Any,
    rng: np.random.RandomState | None,
    augment_prob: float,
    train: bool,
    crop: int = 0,
) -> np.ndarray:
    """A training window (``train``: a crop drawn with ``augment_prob``, DMV's window noise from ``rng``)
    or the deterministic window of crop ``crop`` (0: the clean one); standardised."""
    crop = item.crops[crop_index(item, rng, augment_prob) if train else crop]
    return window_from_crop(crop, item.geometry, spec, rng=rng if train else None, augment=train)


#: Radius (mm) of the disc that marks a finding in a saliency target: a calcification cluster spreads over
#: about 4.5 mm around its centre, a mass core over 3-8 mm.
FINDING_RADIUS_MM = 4.5


def finding_masks(item: ImageItem, spec: Any) -> np.ndarray:
    """(rows, cols, 2) float32 in the crop's frame: discs of :data:`FINDING_RADIUS_MM` around the benign
    (channel 0) and malignant (channel 1) findings of ``item`` (1 inside, 0 outside)."""
    h, w = item.crops[0].shape
    return np.moveaxis(finding_masks_region(item, spec, 0, 0, h, w), 0, -1)


def finding_masks_region(item: ImageItem, spec: Any, top: int, left: int, rows: int, cols: int) -> np.ndarray:
    """(2, rows, cols) float32: :func:`finding_masks` of the region of the crop's frame that starts at
    (``top``, ``left``) -- which may reach beyond the crop, where the masks are 0 -- without making the
    masks of the whole crop."""
    h, w = item.crops[0].shape
    masks = np.zeros((2, rows, cols), np.float32)
    radius = FINDING_RADIUS_MM / pipeline_params(spec).spacing_mm
    for r, c, pathology in item.findings:
        # the disc's box, clipped to the crop as in the whole-crop masks, then to the region
        r0 = max(0, int(r - radius), top)
        r1 = min(h, int(r + radius) + 2, top + rows)
        c0 = max(0, int(c - radius), left)
        c1 = min(w, int(c + radius) + 2, left + cols)
        if r0 >= r1 or c0 >= c1:
            continue
        rr, cc = np.ogrid[r0:r1, c0:c1]
        inside = (rr - r) ** 2 + (cc - c) ** 2 <= radius**2
        masks[int(pathology == "malignant"), r0 - top : r1 - top, c0 - left : c1 - left][inside] = 1.0
    return masks


def window_with_masks(
    crop: np.ndarray, item: ImageItem, spec: Any, rng: np.random.RandomState | None
) -> np.ndarray:
    """A window of ``crop`` (one of ``item``'s crops) stacked with the item's finding masks, cut jointly:
    (3, rows, cols) float32. Channel 0 is the standardised window, channels 1-2 the benign and malignant
    finding masks after the same window noise (drawn from ``rng``; none when it is None) and resize, so a
    finding stays under its mark."""
    stacked = np.dstack([crop, finding_masks(item, spec)])
    window = window_from_crop(
        stacked, item.geometry, spec, rng=rng, augment=rng is not None, standardise=False
    )
    window[..., 0] = pp.standardise(window[..., 0])
    return np.moveaxis(window, -1, 0)


def window_and_target(
    item: ImageItem, spec: Any, rng: np.random.RandomState, augment_prob: float
) -> np.ndarray:
    """An augmented training window with its finding masks (:func:`window_with_masks`)."""
    return window_with_masks(item.crops[crop_index(item, rng, augment_prob)], item, spec, rng)


def train_windows(
    items: list[ImageItem],
    spec: Any,
    rng: np.random.RandomState,
    augment_prob: float,
    threads: Any,
    targets: bool = False,
) -> np.ndarray:
    """Augmented training windows (N, rows, cols) of ``items``, built in ``threads`` (an executor); with
    ``targets``, (N, 3, rows, cols): each window with its finding masks (:func:`window_and_target`).

    Each window gets its own generator seeded from ``rng``, so the batch does not depend on thread timing.
    """
    seeds = rng.randint(0, 2**31 - 1, size=len(items))
    jobs = [(it, np.random.RandomState(sd)) for it, sd in zip(items, seeds, strict=True)]
    if targets:
        return np.stack(list(threads.map(lambda j: window_and_target(j[0], spec, j[1], augment_prob), jobs)))
    return np.stack(list(threads.map(lambda j: window(j[0], spec, j[1], augment_prob, True), jobs)))


def patch(
    item: ImageItem,
    spec: Any,
    rng: np.random.RandomState,
    size: int,
    augment_prob: float,
    windows: dict[tuple[str, int], tuple[np.ndarray, float, float]],
) -> tuple[np.ndarray, list[int]]:
    """A ``size`` x ``size`` patch of the standardised model window and its [benign, malignant] label.

    Malignant (benign) images give a patch around one of their malignant (benign) findings, shifted by up to
    a quarter of the patch; other images a patch centred on random breast tissue. The label says which kinds
    of finding lie inside the patch. ``windows`` memoises the deterministic window of each crop (and its
    offset), which is all a patch needs.
    """
    k = crop_index(item, rng, augment_prob)
    key = (item.image_id, k)
    if key not in windows:
        crop = item.crops[k]
        offset = window_offset(crop.shape, item.geometry, spec)
        windows[key] = (window_from_crop(crop, item.geometry, spec), *offset)
    win, off_r, off_c = windows[key]
    spots = [(r - off_r, c - off_c, p) for r, c, p in item.findings]
    wanted = "malignant" if item.malignant else "benign" if item.benign and rng.uniform() < 0.7 else None
    targets = [sp for sp in spots if sp[2] == wanted]
    H, W = win.shape
    if targets:
        r, c, _ = targets[rng.randint(len(targets))]
        r, c = r + rng.uniform(-size / 4, size / 4), c + rng.uniform(-size / 4, size / 4)
    else:
        tissue = np.argwhere(win > win.min() + 0.5)
        r, c = tissue[rng.randint(len(tissue))] if len(tissue) else (H / 2, W / 2)
    top = int(np.clip(round(r - size / 2), 0, max(0, H - size)))
    left = int(np.clip(round(c - size / 2), 0, max(0, W - size)))
    patch = win[top : top + size, left : left + size]
    lo, hi = size / 8, size - size / 8
    inside = [p for r, c, p in spots if lo <= r - top < hi and lo <= c - left < hi]
    return patch, [int("benign" in inside), int("malignant" in inside)]
