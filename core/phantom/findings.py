"""Findings of the synthetic cohort: what they are, where they sit in 3-D, and how they are drawn.

Malignant: clusters of 5..20 fine calcifications (0.1..0.5 mm) within about 1 cm^2, and spiculated masses.
Benign: smooth round masses and scattered coarse calcifications (> 1 mm).

A finding has one position in the compressed breast (depth ``u``, medio-lateral ``a``, cranio-caudal ``z``);
each view maps it with :meth:`ViewGeometry.locate`, so it shows in both views of its breast at consistent
positions (same distance from the chest wall, row set by the projection). The calcifications of a cluster have
3-D offsets (mm) that are projected the same way. Amplitudes are in model units (12-bit scale) added to the
tissue before detector noise.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from core.phantom.anatomy import ViewGeometry

MALIGNANT_KINDS = ("calc_cluster", "spiculated_mass")
BENIGN_KINDS = ("round_mass", "coarse_calcs")


@dataclass(frozen=True)
class Finding:
    """One finding of one breast.

    Attributes
    ----------
    finding_id : str
    kind : str
        ``"calc_cluster"``, ``"spiculated_mass"`` (malignant), ``"round_mass"``, ``"coarse_calcs"`` (benign).
    u, a, z : float
        Position in the breast (see :meth:`ViewGeometry.locate`).
    size_mm : float
        Diameter of a mass core; extent of a calcification group.
    amplitude : float
        Peak added value (model units) of the mass core or of the brightest calcification.
    parts : tuple of (du_mm, da_mm, dz_mm, diameter_mm)
        Calcifications of a cluster or group: 3-D offsets from the centre and diameters (mm).
    seed : int
        Seeds the shape details (margin irregularity, spicules).
    """

    finding_id: str
    kind: str
    u: float
    a: float
    z: float
    size_mm: float
    amplitude: float
    parts: tuple[tuple[float, float, float, float], ...] = field(default_factory=tuple)
    seed: int = 0

    @property
    def pathology(self) -> str:
        return "malignant" if self.kind in MALIGNANT_KINDS else "benign"


def sample_finding(
    rng: np.random.Generator, kind: str, finding_id: str, u: float, a: float, z: float
) -> Finding:
    """Draw the size, brightness and parts of a finding of ``kind`` at a given position."""
    seed = int(rng.integers(0, 2**31 - 1))
    if kind == "calc_cluster":
        n = int(rng.integers(5, 21))
        parts = []
        for _ in range(n):
            # uniform in a ball of radius 4.5 mm: projected, the cluster covers well under 1 cm^2
            v = rng.normal(size=3)
            v *= 4.5 * rng.uniform() ** (1 / 3) / np.linalg.norm(v)
            diameter = float(np.clip(rng.gamma(4.0, 0.07), 0.1, 0.5))
            parts.append((float(v[0]), float(v[1]), float(v[2]), diameter))
        return Finding(finding_id, kind, u, a, z, 9.0, float(rng.uniform(2600, 3400)), tuple(parts), seed)
    if kind == "coarse_calcs":
        n = int(rng.integers(2, 7))
        parts = []
        for _ in range(n):
            v = rng.uniform(-14, 14, size=3)
            parts.append((float(v[0]), float(v[1]), float(v[2]), float(rng.uniform(1.1, 2.6))))
        return Finding(finding_id, kind, u, a, z, 30.0, float(rng.uniform(1500, 2300)), tuple(parts), seed)
    if kind == "spiculated_mass":
        return Finding(
            finding_id, kind, u, a, z, float(rng.uniform(6.0, 14.0)), float(rng.uniform(800, 1200)), (), seed
        )
    if kind == "round_mass":
        return Finding(
            finding_id, kind, u, a, z, float(rng.uniform(7.0, 18.0)), float(rng.uniform(700, 1050)), (), seed
        )
    raise ValueError(f"unknown finding kind {kind!r}")


def _window(shape: tuple[int, int], r0: float, c0: float, half_px: float):
    rows, cols = shape
    r_lo, r_hi = max(int(math.floor(r0 - half_px)), 0), min(int(math.ceil(r0 + half_px)) + 1, rows)
    c_lo, c_hi = max(int(math.floor(c0 - half_px)), 0), min(int(math.ceil(c0 + half_px)) + 1, cols)
    if r_lo >= r_hi or c_lo >= c_hi:
        return None
    return r_lo, r_hi, c_lo, c_hi


def add_sphere(
    img: np.ndarray, r0: float, c0: float, diameter_mm: float, amp: float, spacing_mm: float
) -> None:
    """Add the projection of a sphere (path length profile), area-averaged over 4x4 sub-pixels, in place."""
    radius_px = diameter_mm / 2 / spacing_mm
    win = _window(img.shape, r0, c0, radius_px + 1)
    if win is None:
        return
    r_lo, r_hi, c_lo, c_hi = win
    sub = (np.arange(4) + 0.5) / 4 - 0.5
    rr = (np.arange(r_lo, r_hi)[:, None] + sub[None, :]).ravel() - r0
    cc = (np.arange(c_lo, c_hi)[:, None] + sub[None, :]).ravel() - c0
    rho2 = (rr[:, None] ** 2 + cc[None, :] ** 2) / radius_px**2
    prof = np.sqrt(np.clip(1.0 - rho2, 0.0, None))
    prof = prof.reshape(r_hi - r_lo, 4, c_hi - c_lo, 4).mean(axis=(1, 3))
    img[r_lo:r_hi, c_lo:c_hi] += (amp * prof).astype(img.dtype)


def _local_grid(img, r0, c0, half_px):
    win = _window(img.shape, r0, c0, half_px)
    if win is None:
        return None
    r_lo, r_hi, c_lo, c_hi = win
    dr = (np.arange(r_lo, r_hi, dtype=np.float32) - r0)[:, None]
    dc = (np.arange(c_lo, c_hi, dtype=np.float32) - c0)[None, :]
    return win, dr, dc


def add_round_mass(img, r0, c0, diameter_mm, amp, spacing_mm, rng) -> None:
    """A circumscribed oval mass: smooth, sharp margin, flat-topped density."""
    radius = diameter_mm / 2 / spacing_mm
    aspect = rng.uniform(0.75, 1.0)
    angle = rng.uniform(0, math.pi)
    grid = _local_grid(img, r0, c0, radius * 1.1 + 2)
    if grid is None:
        return
    (r_lo, r_hi, c_lo, c_hi), dr, dc = grid
    ca, sa = math.cos(angle), math.sin(angle)
    x = (dc * ca + dr * sa) / radius
    y = (-dc * sa + dr * ca) / (radius * aspect)
    rho2 = x * x + y * y
    # path length through an ellipsoid: dense centre, sharp but continuous margin
    prof = np.clip(1.0 - rho2, 0.0, None) ** 0.5
    img[r_lo:r_hi, c_lo:c_hi] += (amp * prof).astype(img.dtype)


def add_spiculated_mass(img, r0, c0, diameter_mm, amp, spacing_mm, rng) -> None:
    """An irregular dense core with 10..28 thin radiating spicules (the classic stellate lesion)."""
    radius = diameter_mm / 2 / spacing_mm
    n_spic = int(rng.integers(10, 29))
    lengths = radius * rng.uniform(1.0, 2.6, n_spic)
    grid = _local_grid(img, r0, c0, radius + lengths.max() + 3)
    if grid is None:
        return
    (r_lo, r_hi, c_lo, c_hi), dr, dc = grid
    theta = np.arctan2(dr, dc)
    rad = np.sqrt(dr * dr + dc * dc)
    harm = np.zeros_like(theta)
    for k in (2, 3, 5, 7):
        harm = harm + rng.uniform(0.03, 0.1) * np.cos(k * theta + rng.uniform(0, 2 * math.pi))
    r_theta = radius * (1.0 + harm)
    core = np.clip(1.0 - (rad / r_theta) ** 2, 0.0, None) ** 0.45
    out = amp * core
    angles = rng.uniform(0, 2 * math.pi, n_spic)
    for ang, length in zip(angles, lengths, strict=True):
        dirc, dirr = math.cos(ang), math.sin(ang)
        start = 0.6 * radius
        along = dc * dirc + dr * dirr - start
        perp = -dc * dirr + dr * dirc
        t = np.clip(along / length, 0.0, 1.0)
        bend = rng.uniform(-0.15, 0.15) * length
        width = rng.uniform(0.22, 0.45) / spacing_mm * (1.0 - 0.65 * t)
        d_perp = perp - bend * t * t
        inside = (along > -0.5) & (along < length + 1)
        line = np.exp(-((d_perp / width) ** 2)) * (1.0 - t) ** 0.7 * inside
        out = np.maximum(out, amp * rng.uniform(0.45, 0.7) * line)
    img[r_lo:r_hi, c_lo:c_hi] += out.astype(img.dtype)


def _project(geom: ViewGeometry, du: float, da: float, dz: float) -> tuple[float, float]:
    """3-D offset (mm) to a (row, col) offset in pixels of the view."""
    if geom.view == "CC":
        row_mm = da
    else:
        row_mm = (da + dz) / math.sqrt(2.0)
    return row_mm / geom.spacing_mm, du / geom.spacing_mm


def draw_finding(
    img: np.ndarray, mask: np.ndarray, geom: ViewGeometry, finding: Finding, view_seed: int
) -> list[dict]:
    """Draw a finding into one view (left-facing frame) and return its ground-truth records.

    Returns
    -------
    list of dict
        Keys ``finding_id, kind, pathology, row, col, diameter_mm, part_of``; one record for the finding
        (calcification groups: their centroid and extent) and one per calcification (kind ``"microcalc"``
        or ``"coarse_calc"``). Parts that fall outside the breast are not drawn and not recorded.
    """
    rng = np.random.default_rng([finding.seed, view_seed])
    s = geom.spacing_mm
    r0, c0 = geom.locate(finding.u, finding.a, finding.z)
    records = []
    base = {"finding_id": finding.finding_id, "pathology": finding.pathology}
    if finding.kind in ("calc_cluster", "coarse_calcs"):
        part_kind = "microcalc" if finding.kind == "calc_cluster" else "coarse_calc"
        drawn = []
        for du, da, dz, diameter in finding.parts:
            dr, dc = _project(geom, du, da, dz)
            r, c = r0 + dr, c0 + dc
            ri, ci = int(round(r)), int(round(c))
            if not (0 <= ri < mask.shape[0] and 0 <= ci < mask.shape[1] and mask[ri, ci]):
                continue
            if part_kind == "microcalc":
                amp = finding.amplitude * (0.5 + 0.5 * diameter / 0.5)
            else:
                amp = finding.amplitude * rng.uniform(0.8, 1.0)
            add_sphere(img, r, c, diameter, amp, s)
            if part_kind == "coarse_calc" and rng.uniform() < 0.5:  # popcorn-like lobe
                off = rng.normal(size=2) * diameter * 0.3 / s
                add_sphere(img, r + off[0], c + off[1], diameter * 0.7, amp * 0.8, s)
            drawn.append((r, c))
            records.append(
                {
                    **base,
                    "kind": part_kind,
                    "row": r,
                    "col": c,
                    "diameter_mm": diameter,
                    "part_of": finding.finding_id,
                }
            )
        if drawn:
            pts = np.array(drawn)
            centre = pts.mean(axis=0)
            extent = 2 * float(np.max(np.hypot(*(pts - centre).T))) * s if len(pts) > 1 else 0.0
            records.insert(
                0,
                {
                    **base,
                    "kind": finding.kind,
                    "row": float(centre[0]),
                    "col": float(centre[1]),
                    "diameter_mm": extent,
                    "part_of": "",
                },
            )
        return records
    if finding.kind == "spiculated_mass":
        add_spiculated_mass(img, r0, c0, finding.size_mm, finding.amplitude, s, rng)
    elif finding.kind == "round_mass":
        add_round_mass(img, r0, c0, finding.size_mm, finding.amplitude, s, rng)
    else:
        raise ValueError(f"unknown finding kind {finding.kind!r}")
    return [
        {**base, "kind": finding.kind, "row": r0, "col": c0, "diameter_mm": finding.size_mm, "part_of": ""}
    ]
