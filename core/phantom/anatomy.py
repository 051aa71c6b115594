"""Breast outlines (CC and MLO), pectoral muscle, skin line and parenchymal texture of one synthetic view.

Everything is drawn in the *left-facing* frame (chest wall at column 0, nipple toward the right), the way a
left breast is stored; right views are mirrored at the very end by the caller. Lengths are in mm.

The smooth parts (thickness fall-off near the skin, glandular texture, ligaments) are computed on a grid
twice as coarse as the detector and upsampled bilinearly: a 1/f^3 texture has almost no power above a few
cycles/mm, where detector noise dominates anyway, so nothing visible is lost and generation is 3-4x faster.
The outline, skin line, findings and noise are drawn at full resolution.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from scipy import ndimage

from core.phantom.texture import line_network, power_law_fields, upsample2


@dataclass(frozen=True)
class BreastShape:
    """Size and make-up of one compressed breast, shared by its CC and MLO views.

    Attributes
    ----------
    depth_mm : float
        Chest wall to nipple in the CC view (mm).
    height_mm : float
        Extent of the breast along the chest wall in the CC view (mm).
    thickness_mm : float
        Compressed thickness (mm); sets how wide the darker rim near the skin is.
    density : float
        0 (fatty) .. 1 (extremely dense): share of fibroglandular tissue.
    squareness : float
        Super-ellipse exponent of the outline (2 = ellipse, larger = squarer).
    mlo_depth_scale : float
        MLO nipple depth relative to CC (the MLO shows a little more tissue).
    pectoral_width_mm, pectoral_height_mm : float
        Pectoral muscle triangle on MLO: width at the top edge, height along the chest-wall edge.
    wobble : tuple of float
        Two low-order harmonics (amplitude, phase, amplitude, phase) that make the outline less regular.
    beta : float
        Power-law exponent of the parenchymal texture.
    """

    depth_mm: float
    height_mm: float
    thickness_mm: float
    density: float
    squareness: float
    mlo_depth_scale: float
    pectoral_width_mm: float
    pectoral_height_mm: float
    wobble: tuple[float, float, float, float]
    beta: float = 3.0


@dataclass(frozen=True)
class ViewGeometry:
    """Where the breast lies in one view (left-facing frame).

    Attributes
    ----------
    view : str
        ``"CC"`` or ``"MLO"``.
    shape : (rows, cols)
    spacing_mm : float
    profile_mm : ndarray
        For every image row, the distance (mm) from the chest-wall edge to the skin; 0 where no breast.
    anchor_mm : float
        CC: centre row of the breast; MLO: row of deepest extent (mm from the top).
    half_span_up_mm, half_span_down_mm : float
        Extent (mm) above and below the anchor used to place findings.
    pectoral_width_mm, pectoral_height_mm : float
        Pectoral triangle (0 for CC).
    """

    view: str
    shape: tuple[int, int]
    spacing_mm: float
    profile_mm: np.ndarray
    anchor_mm: float
    half_span_up_mm: float
    half_span_down_mm: float
    pectoral_width_mm: float = 0.0
    pectoral_height_mm: float = 0.0

    def pectoral_mm(self, row_mm: np.ndarray | float) -> np.ndarray | float:
        """Width (mm) of the pectoral muscle at a row (mm from the top); 0 below it or on CC."""
        if self.pectoral_height_mm <= 0:
            return np.zeros_like(row_mm) if isinstance(row_mm, np.ndarray) else 0.0
        t = np.clip(1.0 - np.asarray(row_mm) / self.pectoral_height_mm, 0.0, 1.0)
        out = self.pectoral_width_mm * t**0.85
        return out if isinstance(row_mm, np.ndarray) else float(out)

    def depth_at(self, row_mm: float) -> float:
        """Chest wall to skin (mm) at a row given in mm."""
        idx = int(np.clip(round(row_mm / self.spacing_mm), 0, self.shape[0] - 1))
        return float(self.profile_mm[idx])

    def locate(self, u: float, a: float, z: float) -> tuple[float, float]:
        """Map a position in the breast to (row, col) pixels of this view (left-facing frame).

        Parameters
        ----------
        u : float
            Depth, 0 (chest wall) .. 1 (nipple).
        a : float
            Medio-lateral position, -1 .. 1 (fraction of the half height).
        z : float
            Cranio-caudal position, -1 .. 1. Invisible on CC (the projection axis); on MLO the oblique
            projection mixes it with ``a``.

        Returns
        -------
        (row, col) : float pixels
        """
        if self.view == "CC":
            o = a
        else:
            o = float(np.clip((a + z) / math.sqrt(2.0), -1.0, 1.0))
        span = self.half_span_down_mm if o > 0 else self.half_span_up_mm
        row_mm = self.anchor_mm + o * span
        depth = self.depth_at(row_mm)
        col_mm = u * depth
        pec = self.pectoral_mm(row_mm)
        if pec > 0:
            col_mm = max(col_mm, pec + 0.35 * (depth - pec))
        return row_mm / self.spacing_mm, col_mm / self.spacing_mm


def view_geometry(
    shape: BreastShape, view: str, image_shape: tuple[int, int], spacing_mm: float, rng: np.random.Generator
) -> ViewGeometry:
    """Lay out the breast of one view in an image of ``image_shape`` pixels at ``spacing_mm``."""
    rows, cols = image_shape
    height_mm, width_mm = rows * spacing_mm, cols * spacing_mm
    y = (np.arange(rows) + 0.5) * spacing_mm
    a1, p1, a2, p2 = shape.wobble
    if view == "CC":
        half = min(shape.height_mm / 2, 0.47 * height_mm)
        centre = height_mm / 2 + rng.uniform(-0.04, 0.04) * height_mm
        centre = float(np.clip(centre, half + 1.0, height_mm - half - 1.0))
        depth = min(shape.depth_mm, 0.9 * width_mm)
        t = np.clip(np.abs(y - centre) / half, 0.0, 1.0)
        theta = np.arcsin(np.clip((y - centre) / half, -1, 1))
        wob = 1.0 + a1 * np.sin(theta + p1) + a2 * np.sin(2 * theta + p2)
        profile = depth * (1.0 - t**shape.squareness) ** (1.0 / shape.squareness) * wob
        profile[np.abs(y - centre) >= half] = 0.0
        return ViewGeometry(
            "CC",
            image_shape,
            spacing_mm,
            np.clip(profile, 0, 0.97 * width_mm),
            centre,
            0.8 * half,
            0.8 * half,
        )
    depth = min(shape.depth_mm * shape.mlo_depth_scale, 0.9 * width_mm)
    peak = rng.uniform(0.48, 0.56) * height_mm
    fold = rng.uniform(0.9, 0.97) * height_mm
    top_depth = 0.5 * depth
    up = np.clip((peak - y) / peak, 0.0, 1.0)
    down = np.clip((y - peak) / (fold - peak), 0.0, 1.0)
    profile = np.where(
        y < peak,
        depth - (depth - top_depth) * up**1.6,
        depth * (1.0 - down**shape.squareness) ** (1.0 / shape.squareness),
    )
    theta = (y / fold) * math.pi
    profile *= 1.0 + a1 * np.sin(theta + p1) + a2 * np.sin(2 * theta + p2)
    profile[y >= fold] = 0.0
    pec_w = min(shape.pectoral_width_mm, 0.85 * top_depth)
    pec_h = min(shape.pectoral_height_mm, 0.7 * height_mm)
    return ViewGeometry(
        "MLO",
        image_shape,
        spacing_mm,
        np.clip(profile, 0, 0.97 * width_mm),
        peak,
        0.8 * peak,
        0.8 * (fold - peak),
        pec_w,
        pec_h,
    )


def _smoothstep(x: np.ndarray) -> np.ndarray:
    x = np.clip(x, 0.0, 1.0)
    return x * x * (3.0 - 2.0 * x)


def render_anatomy(
    geom: ViewGeometry, shape: BreastShape, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray]:
    """Draw the breast of one view, without findings or noise.

    Returns
    -------
    pixels : float32 (rows, cols)
        Model units (12-bit scale, 0..4095), exactly 0 outside the breast.
    mask : bool (rows, cols)
        The breast (skin included).
    """
    rows, cols = geom.shape
    s = geom.spacing_mm
    crow, ccol = (rows + 1) // 2, (cols + 1) // 2
    cs = 2 * s  # coarse spacing
    yc = (np.arange(crow) + 0.5) * cs
    xc = (np.arange(ccol) + 0.5) * cs
    prof_c = np.interp(yc, (np.arange(rows) + 0.5) * s, geom.profile_mm)
    mask_c = xc[None, :] < prof_c[:, None]
    # Distance to the skin, not to the chest-wall edge (or, on MLO, the top edge): pad by replication first.
    pad = int(math.ceil(40.0 / cs))
    top = pad if geom.view == "MLO" else 0
    padded = np.pad(mask_c, ((top, 0), (pad, 0)), mode="edge")
    dist_c = (ndimage.distance_transform_edt(padded)[top:, pad:] * cs).astype(np.float32)

    edge = max(shape.thickness_mm / 2.0, 8.0)
    h = np.sqrt(1.0 - (1.0 - np.clip(dist_c / edge, 0.0, 1.0)) ** 2).astype(np.float32)

    cloud, web = power_law_fields(rng, (crow, ccol), cs, beta=shape.beta)
    thr = 1.3 - 2.6 * shape.density
    gland = 1.0 / (1.0 + np.exp(-2.2 * (cloud - thr)))
    xx = xc[None, :] / np.maximum(prof_c[:, None], 1.0)
    envelope = _smoothstep((dist_c - 4.0) / 22.0) * _smoothstep(xx / 0.25)
    lig = line_network(web, 0.14)

    values = 280.0 + 520.0 * h
    values += h * envelope * (1350.0 * gland + 140.0 * cloud) + h * (380.0 * lig * _smoothstep(dist_c / 6.0))
    if geom.pectoral_height_mm > 0:
        pec = geom.pectoral_mm(yc)[:, None]
        pm = 1.0 / (1.0 + np.exp(-(pec - xc[None, :]) / 1.2))
        level = 2150.0 + 300.0 * shape.density
        values = values * (1.0 - pm) + pm * (level + 110.0 * cloud + 0.3 * values)
    values = values.astype(np.float32)  # not masked here: the full-resolution mask cuts the outline

    full = upsample2(values, (rows, cols))
    dist = upsample2(dist_c, (rows, cols))
    x = (np.arange(cols, dtype=np.float32) + 0.5) * s
    mask = x[None, :] < geom.profile_mm[:, None].astype(np.float32)
    skin = 420.0 * np.exp(-np.maximum(dist, 0.0) / 0.6)
    full += skin
    full[~mask] = 0.0
    return full, mask
