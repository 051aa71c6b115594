"""Clusters of candidate specks: at least ``min_count`` within an area of ``area_mm2`` (clinically 3 or 5
within 1 cm^2), by density-based grouping (DBSCAN) with distances in mm."""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

from core.calcs.checks import positive_arg, spacing_arg
from core.calcs.results import Candidate, Cluster
from core.errors import CalcError


def cluster_candidates(
    candidates: Sequence[Candidate] | Sequence[tuple[float, float]],
    spacing_mm: tuple[float, float],
    *,
    min_count: int = 3,
    area_mm2: float = 100.0,
) -> list[Cluster]:
    """Group candidates into clusters: at least ``min_count`` specks within an area of ``area_mm2``.

    Density-based grouping (DBSCAN with the neighbourhood a disc of area ``area_mm2``, radius
    ``sqrt(area / pi)``: 5.64 mm for the clinical 1 cm^2): a speck with at least ``min_count`` specks
    (itself included) within that radius is a core; cores within the radius of each other join one cluster,
    and the other specks within the radius of a core join its cluster. Distances in mm from the spacing.

    Parameters
    ----------
    candidates : sequence of Candidate or (row, col)
        Speck centres in pixels.
    spacing_mm : (float, float)
        Pixel spacing (row, column), mm.
    min_count : int
        Smallest cluster (>= 1); 3 or 5 in the clinical literature.
    area_mm2 : float
        Area of the neighbourhood, mm^2 (100 mm^2 = 1 cm^2).

    Returns
    -------
    list of Cluster
        Largest first; members in increasing index order.
    """
    where = "cluster_candidates"
    dy, dx = spacing_arg(spacing_mm, where)
    area = positive_arg(area_mm2, "area_mm2", where)
    if int(min_count) != min_count or min_count < 1:
        raise CalcError(f"{where}: min_count must be a positive integer, got {min_count!r}")
    pts = _points(candidates, where)
    if not pts:
        return []
    mm = np.array(pts, dtype=np.float64) * np.array([dy, dx])
    dist = np.sqrt(((mm[:, None, :] - mm[None, :, :]) ** 2).sum(-1))
    label, n_clusters = _dbscan_labels(dist <= math.sqrt(area / math.pi), min_count)
    clusters = []
    for k in range(n_clusters):
        idx = np.flatnonzero(label == k)
        if idx.size < min_count:
            continue
        centre = np.array(pts)[idx].mean(axis=0)
        span = float(dist[np.ix_(idx, idx)].max())
        clusters.append(
            Cluster(
                members=tuple(int(i) for i in idx), row=float(centre[0]), col=float(centre[1]), span_mm=span
            )
        )
    clusters.sort(key=lambda cl: (-cl.count, cl.members[0]))
    return clusters


def _points(candidates: Sequence[Candidate] | Sequence[tuple[float, float]], where: str) -> list[tuple]:
    """Speck centres ``(row, col)`` in pixels, from Candidates or sequences starting with row and col."""
    pts = []
    for i, cand in enumerate(candidates):
        if isinstance(cand, Candidate):
            pts.append((cand.row, cand.col))
            continue
        try:
            r, c = (float(v) for v in list(cand)[:2])
        except (TypeError, ValueError):
            raise CalcError(
                f"{where}: candidate {i} must be a Candidate or (row, col), got {cand!r}"
            ) from None
        pts.append((r, c))
    return pts


def _dbscan_labels(near: np.ndarray, min_count: int) -> tuple[np.ndarray, int]:
    """DBSCAN on a neighbourhood matrix: ``(label per point, -1 for noise; number of clusters)``.

    A point with at least ``min_count`` neighbours (itself included) is a core; cores that are neighbours
    share a cluster, which also takes the other neighbours of its cores. Clusters are numbered in the order
    of their first core.
    """
    core = near.sum(axis=1) >= min_count
    label = np.full(len(near), -1)
    n_clusters = 0
    for seed in np.flatnonzero(core):
        if label[seed] >= 0:
            continue
        label[seed] = n_clusters
        stack = [seed]
        while stack:
            i = stack.pop()
            for j in np.flatnonzero(near[i]):
                if label[j] < 0:
                    label[j] = n_clusters
                    if core[j]:
                        stack.append(j)
        n_clusters += 1
    return label, n_clusters
