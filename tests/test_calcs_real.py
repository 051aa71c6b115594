"""core.calcs on the real NYU samples: the strongest candidates lie inside the breast, away from its edge
(skin line, chest wall, image border), and one CNR describes each of them."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import ndimage

pytestmark = pytest.mark.slow

SAMPLES = ["dmv_1_R_CC.png", "gmic_0_R-CC.png", "dmv_1_L_CC.png", "dmv_2_R_CC.png"]


def _distance_to_edge_mm(pixels: np.ndarray, spacing: tuple[float, float]) -> np.ndarray:
    """Distance (mm) from each pixel to the nearest non-breast pixel, the outside of the image counting as
    non-breast: an independent check, by Euclidean distance transform, of where the breast's edge is."""
    fg = pixels > 0
    labels, n = ndimage.label(fg)
    if n > 1:  # the breast is the largest region (burned-in labels and markers are small)
        fg = labels == 1 + int(np.argmax(np.bincount(labels.ravel())[1:]))
    padded = np.pad(fg, 1)
    return ndimage.distance_transform_edt(padded, sampling=spacing)[1:-1, 1:-1]


@pytest.mark.parametrize("name", SAMPLES)
def test_top_candidates_lie_inside_the_breast(nyu_samples, name):
    from core.calcs import find_candidates, visibility
    from core.imaging import load_mammogram

    m = load_mammogram(nyu_samples / name)
    found = find_candidates(m.pixels, m.spacing_mm, max_count=12)
    assert len(found) >= 4, f"{name}: only {len(found)} candidates"
    dist = _distance_to_edge_mm(m.pixels, m.spacing_mm)
    by_cnr = sorted(found, key=lambda c: -c.cnr)[:4]  # the four the Calcifications page shows first
    for c in [*found[:4], *by_cnr]:
        r, col = int(round(c.row)), int(round(c.col))
        assert dist[r, col] >= 5.0, (
            f"{name}: candidate at ({r}, {col}) is {dist[r, col]:.1f} mm from the edge"
        )
        # one CNR: the detector's number is the visibility of the speck where it was found
        assert visibility(m.pixels, c.center_rc, c.diameter_mm, m.spacing_mm) == pytest.approx(
            c.cnr, rel=1e-6
        )


def test_strip_cnr_is_the_detector_cnr(nyu_samples):
    """The Calcifications page labels a strip with the sweep's CNR at "original" and plots the sweep; both
    must be the candidate's own CNR (they differed when the page truncated the centre to whole pixels)."""
    from core.calcs import calcification_sweep, find_candidates
    from core.imaging import load_mammogram

    m = load_mammogram(nyu_samples / "dmv_1_R_CC.png")
    found = find_candidates(m.pixels, m.spacing_mm, max_count=4)
    sweep = calcification_sweep(
        m.pixels, m.spacing_mm, [(c.row, c.col, c.diameter_mm) for c in found], [math.inf]
    )
    assert sweep.visibility[:, 0] == pytest.approx([c.cnr for c in found], rel=1e-6)
