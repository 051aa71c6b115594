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

from core.phantom.texture import band_field, line_network, power_law_fields, upsample2


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
    top_depth = rng.uniform(0.6, 0.75) * depth
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
    pec_w = min(shape.pectoral_width_mm, 0.8 * top_depth)
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
    x = np.clip(x, np.float32(0.0), np.float32(1.0))
    return x * x * (np.float32(3.0) - np.float32(2.0) * x)


def _upsample_to(a: np.ndarray, shape: tuple[int, int], times: int) -> np.ndarray:
    for _ in range(times):
        a = upsample2(a, (2 * a.shape[0], 2 * a.shape[1]))
    return a[: shape[0], : shape[1]]


def _ligaments(geom: ViewGeometry, rng: np.random.Generator, grid, shape: tuple[int, int]) -> np.ndarray:
    """Cooper's ligaments and ducts: thin curved lines converging on the nipple (values 0..1).

    Zero crossings of a smooth random field sampled in polar coordinates around the nipple, stretched along
    the radius, so the lines run roughly toward the nipple and wander a little.
    """
    brow, bcol, yb, xb, _ = grid
    nipple_r, nipple_c = geom.anchor_mm, geom.depth_at(geom.anchor_mm)
    dy = yb[:, None] - np.float32(nipple_r)
    dx = np.float32(nipple_c) - xb[None, :]
    theta = np.arctan2(dy, dx)  # -pi..pi, 0 toward the chest wall
    radius = np.sqrt(dx * dx + dy * dy)
    base, bend = power_law_fields(rng, (96, 96), 1.0, beta=4.0, fmin=0.02)
    u = (theta + np.float32(np.pi)) * np.float32(96 / (2 * np.pi) * 3.0)
    v = radius / np.float32(9.0)
    u = u + np.float32(2.0) * ndimage.map_coordinates(bend, [u, v], order=1, mode="grid-wrap")
    field = ndimage.map_coordinates(base, [u, v], order=1, mode="grid-wrap").astype(np.float32)
    return line_network(_upsample_to(field, shape, 2), 0.09)


def skin_distance_mm(geom: ViewGeometry) -> np.ndarray:
    """Distance (mm) from each pixel to the skin, accurate within a few mm of it (negative outside).

    The horizontal gap to the outline, ``profile(y) - x``, shrunk by the outline's slope: the first-order
    perpendicular distance. Cheaper than a distance transform at full resolution, and exact enough for the
    skin line, which only lives within ~2 mm of the edge.
    """
    rows, cols = geom.shape
    s = geom.spacing_mm
    prof = geom.profile_mm.astype(np.float32)
    slope = np.gradient(prof, s)
    cos = (1.0 / np.sqrt(1.0 + slope * slope)).astype(np.float32)
    x = (np.arange(cols, dtype=np.float32) + 0.5) * np.float32(s)
    return (prof[:, None] - x[None, :]) * cos[:, None]


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
    y_full = (np.arange(rows) + 0.5) * s
    # texture grid: 2x coarser than the detector; shape grid (thickness, ligaments): 8x coarser
    grids = {}
    for k in (2, 8):
        crow, ccol = -(-rows // k), -(-cols // k)
        yc = ((np.arange(crow) + 0.5) * k * s).astype(np.float32)
        xc = ((np.arange(ccol) + 0.5) * k * s).astype(np.float32)
        grids[k] = (crow, ccol, yc, xc, np.interp(yc, y_full, geom.profile_mm).astype(np.float32))
    crow, ccol, yc, xc, prof_c = grids[2]
    cs = 2 * s
    # Distance to the skin, not to the chest-wall edge (or, on MLO, the top edge): pad by replication first.
    brow, bcol, _, bx, bprof = grids[8]
    bmask = bx[None, :] < bprof[:, None]
    pad = int(math.ceil(40.0 / (8 * s)))
    top = pad if geom.view == "MLO" else 0
    padded = np.pad(bmask, ((top, 0), (pad, 0)), mode="edge")
    bdist = (ndimage.distance_transform_edt(padded)[top:, pad:] * (8 * s)).astype(np.float32)
    dist_c = _upsample_to(bdist, (crow, ccol), 2)

    edge = np.float32(max(shape.thickness_mm / 2.0, 8.0))
    h = np.sqrt(1.0 - (1.0 - np.clip(dist_c / edge, 0.0, 1.0)) ** 2)

    cloud, fine = power_law_fields(rng, (crow, ccol), cs, beta=shape.beta)
    f32 = np.float32
    thr = f32(1.0 - 2.0 * shape.density)
    gland = f32(0.5) + f32(0.5) * np.tanh(f32(0.75) * (cloud - thr))
    xx = xc[None, :] / np.maximum(prof_c[:, None], f32(1.0))
    envelope = _smoothstep((dist_c - f32(3.0)) / f32(20.0)) * (
        f32(0.55) + f32(0.45) * _smoothstep(xx / f32(0.3))
    )
    lig = _ligaments(geom, rng, grids[8], (crow, ccol))
    # septa around fat lobules (5..10 mm cells), strongest in fatty regions
    septa = line_network(
        _upsample_to(band_field(rng, (brow, bcol), 8 * s, 0.07, 0.04), (crow, ccol), 2), 0.12
    )

    values = f32(430.0) + f32(330.0) * h
    values += h * envelope * (f32(1300.0) * gland + f32(130.0) * cloud + f32(70.0) * fine)
    septa *= _smoothstep(f32(0.5) + f32(0.6) * fine)  # broken into segments that fade in and out
    values += (
        h
        * (f32(330.0) * lig + f32(420.0) * septa * (f32(1.0) - f32(0.6) * gland))
        * _smoothstep(dist_c / f32(5.0))
    )
    if geom.pectoral_height_mm > 0:
        pec = geom.pectoral_mm(yc).astype(np.float32)[:, None]
        pm = f32(0.5) + f32(0.5) * np.tanh((pec - xc[None, :]) / f32(2.4))
        level = f32(1500.0 + 400.0 * shape.density) + f32(500.0) * np.clip(f32(1.0) - xx / f32(0.5), 0, 1)
        values = values * (f32(1.0) - pm) + pm * (level + f32(160.0) * cloud + f32(0.25) * values)
    values = values.astype(np.float32)  # not masked here: the full-resolution mask cuts the outline

    full = upsample2(values, (rows, cols))
    dist = skin_distance_mm(geom)
    mask = dist > 0
    skin = np.maximum(dist, np.float32(0.0))
    np.negative(skin, out=skin)
    skin /= np.float32(0.6)
    np.exp(skin, out=skin)
    skin *= np.float32(420.0)
    full += skin
    np.multiply(full, mask, out=full)
    return full, mask
