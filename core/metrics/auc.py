"""Area under the ROC curve: point estimate, ROC points, bootstrap intervals and DeLong's test.

All functions take a score per case (any real number; larger means "more likely positive") and a binary
label per case (1 positive, 0 negative). Ties between a positive and a negative score count one half, so
the AUC equals the Mann-Whitney U statistic divided by ``n_pos * n_neg`` and lies in 0..1.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.stats import norm

from core.errors import MetricsError

DEFAULT_RESAMPLES = 2000
# Bootstrap work is done in chunks of resamples so that the count matrices stay under ~32 MB.
_CHUNK_ELEMENTS = 4_000_000


def _split(scores, labels, name: str = "scores") -> tuple[np.ndarray, np.ndarray]:
    s = np.asarray(scores, dtype=np.float64).ravel()
    y = np.asarray(labels).ravel()
    if s.shape != y.shape:
        raise MetricsError(f"{name}: {s.size} scores but {y.size} labels")
    if np.isnan(s).any():
        raise MetricsError(f"{name}: {int(np.isnan(s).sum())} scores are NaN")
    if not np.isin(y, (0, 1)).all():
        raise MetricsError(f"{name}: labels must be 0 or 1")
    pos, neg = s[y == 1], s[y == 0]
    if pos.size == 0 or neg.size == 0:
        raise MetricsError(
            f"{name}: AUC needs positives and negatives ({pos.size} positive, {neg.size} negative)"
        )
    return pos, neg


def _less_equal_counts(pos: np.ndarray, neg_sorted: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """For each positive, the index range [lo, hi) of negatives equal to it in ``neg_sorted``."""
    lo = np.searchsorted(neg_sorted, pos, side="left")
    hi = np.searchsorted(neg_sorted, pos, side="right")
    return lo, hi


def auc(scores, labels) -> float:
    """Area under the ROC curve (Mann-Whitney; ties count one half).

    Parameters
    ----------
    scores : array_like, shape (n,)
        Scores; larger means more likely positive. NaN is an error.
    labels : array_like, shape (n,)
        0 or 1; at least one of each.

    Returns
    -------
    float
        AUC in 0..1.
    """
    pos, neg = _split(scores, labels)
    lo, hi = _less_equal_counts(pos, np.sort(neg))
    return float((lo.sum() + 0.5 * (hi - lo).sum()) / (pos.size * neg.size))


def roc_curve(scores, labels) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """ROC curve points, one per distinct score, from (0, 0) to (1, 1).

    Returns
    -------
    fpr, tpr : ndarray, shape (k + 1,)
        False- and true-positive rates (0..1) when calling positive every score >= threshold.
    thresholds : ndarray, shape (k + 1,)
        Descending; the first is +inf (nothing called positive).
    """
    pos, neg = _split(scores, labels)
    thresholds = np.unique(np.concatenate([pos, neg]))[::-1]
    # Count of scores >= each threshold, via the sorted arrays.
    tp = pos.size - np.searchsorted(np.sort(pos), thresholds, side="left")
    fp = neg.size - np.searchsorted(np.sort(neg), thresholds, side="left")
    fpr = np.concatenate([[0.0], fp / neg.size])
    tpr = np.concatenate([[0.0], tp / pos.size])
    return fpr, tpr, np.concatenate([[np.inf], thresholds])


def resample_indices(n: int, n_resamples: int, rng: np.random.Generator) -> np.ndarray:
    """Case indices of ``n_resamples`` bootstrap samples of size ``n`` (with replacement).

    Returns an int32 array of shape (n_resamples, n) with values in 0..n-1.
    """
    return rng.integers(0, n, size=(n_resamples, n), dtype=np.int32)


def _row_bincount(values: np.ndarray, n_bins: int) -> np.ndarray:
    """Per-row histogram of a (rows, k) array of bin indices in 0..n_bins-1 -> (rows, n_bins)."""
    rows = values.shape[0]
    flat = (values + (np.arange(rows, dtype=np.int64) * n_bins)[:, None]).ravel()
    return np.bincount(flat, minlength=rows * n_bins).reshape(rows, n_bins)


def resample_counts(n: int, n_resamples: int, rng: np.random.Generator) -> np.ndarray:
    """How often each of ``n`` cases is drawn in each of ``n_resamples`` bootstrap samples of size ``n``.

    The same draws as :func:`resample_indices` with the same generator state, as counts: an int32 array
    of shape (n_resamples, n) whose rows sum to ``n``.
    """
    return _row_bincount(resample_indices(n, n_resamples, rng), n).astype(np.int32)


def bootstrap_aucs_from_counts(
    pos: np.ndarray, neg: np.ndarray, pos_counts: np.ndarray, neg_counts: np.ndarray
) -> np.ndarray:
    """AUC of each bootstrap resample, given how often each case is drawn.

    Parameters
    ----------
    pos, neg : ndarray, shapes (n1,), (n0,)
        Scores of the positives and negatives.
    pos_counts, neg_counts : ndarray, shapes (B, n1), (B, n0)
        Draw counts per resample (see :func:`resample_counts`); rows sum to n1 and n0.

    Returns
    -------
    ndarray, shape (B,)
        ``sum_ij c_i d_j psi(pos_i, neg_j) / (n1 n0)`` with psi 1, 1/2, 0 for above, tied, below: for
        each positive the negatives below and tied with it are a fixed range of the sorted negatives, so
        a cumulative sum of the negatives' counts gives every pair count in O(B (n0 + n1)).
    """
    pos = np.asarray(pos, dtype=np.float64)
    neg = np.asarray(neg, dtype=np.float64)
    n_res = pos_counts.shape[0]
    out = np.empty(n_res, dtype=np.float64)
    order = np.argsort(neg, kind="stable")
    lo, hi = _less_equal_counts(pos, neg[order])
    step = max(1, _CHUNK_ELEMENTS // max(1, neg.size))
    for start in range(0, n_res, step):
        d = neg_counts[start : start + step][:, order]
        cum = np.zeros((d.shape[0], d.shape[1] + 1), dtype=np.int64)
        np.cumsum(d, axis=1, out=cum[:, 1:])
        below = cum[:, lo]
        tied = cum[:, hi] - below
        out[start : start + step] = ((below + 0.5 * tied) * pos_counts[start : start + step]).sum(axis=1)
    return out / (pos.size * neg.size)


def bootstrap_aucs_from_draws(
    pos: np.ndarray, neg: np.ndarray, pos_idx: np.ndarray, neg_idx: np.ndarray
) -> np.ndarray:
    """AUC of each bootstrap resample, given the drawn case indices.

    Parameters
    ----------
    pos, neg : ndarray, shapes (n1,), (n0,)
    pos_idx, neg_idx : ndarray, shapes (B, n1), (B, n0)
        Indices into ``pos`` and ``neg`` drawn for each resample (see :func:`resample_indices`).

    Returns
    -------
    ndarray, shape (B,)
        The same values as :func:`bootstrap_aucs_from_counts` on the counts of these draws. The smaller
        class's distinct scores cut the other class into 2m + 1 bins (between or on them); each
        resample then needs only a histogram of its draws over those bins, which costs a gather and a
        bincount per draw. ``AUC(pos, neg) == AUC(-neg, -pos)`` lets either class be the small one.
    """
    pos = np.asarray(pos, dtype=np.float64)
    neg = np.asarray(neg, dtype=np.float64)
    n1, n0 = pos.size, neg.size
    if n1 > n0:
        pos, neg, pos_idx, neg_idx = -neg, -pos, neg_idx, pos_idx
    uniq, inverse = np.unique(pos, return_inverse=True)
    m = uniq.size
    lo = np.searchsorted(uniq, neg, side="left")
    equal = (lo < m) & (uniq[np.minimum(lo, m - 1)] == neg)
    bin_of = (2 * lo + equal).astype(np.int32)
    inverse = inverse.astype(np.int32)
    n_res = pos_idx.shape[0]
    out = np.empty(n_res, dtype=np.float64)
    step = max(1, _CHUNK_ELEMENTS // max(1, neg.size))
    for start in range(0, n_res, step):
        bins = _row_bincount(bin_of[neg_idx[start : start + step]], 2 * m + 1)
        below = np.cumsum(bins, axis=1)[:, 0 : 2 * m : 2]  # bins 0..2k lie strictly below uniq[k]
        tied = bins[:, 1 : 2 * m + 1 : 2]
        c_pos = _row_bincount(inverse[pos_idx[start : start + step]], m)
        out[start : start + step] = ((below + 0.5 * tied) * c_pos).sum(axis=1)
    return out / (n1 * n0)


def paired_bootstrap_aucs(score_matrix, labels, pos_idx: np.ndarray, neg_idx: np.ndarray) -> np.ndarray:
    """Bootstrap AUCs of several conditions scored on the same cases, with the same resamples.

    Parameters
    ----------
    score_matrix : array_like, shape (k, n)
        Scores of the same n cases under k conditions.
    labels : array_like, shape (n,)
    pos_idx, neg_idx : ndarray, shapes (B, n1), (B, n0)
        Drawn indices into the positives and the negatives, in the order they appear in ``labels``.

    Returns
    -------
    ndarray, shape (k, B)
        Row i equals :func:`bootstrap_aucs_from_draws` of condition i. When one class is small (<= 128
        cases, e.g. the cancers of a screening cohort) the conditions go through one float32 matrix
        product of the large class's draw counts with the stacked pair matrices psi, which BLAS does
        several times faster than a histogram per condition.
    """
    mat = np.atleast_2d(np.asarray(score_matrix, dtype=np.float64))
    y = np.asarray(labels)
    pos, neg = mat[:, y == 1], mat[:, y == 0]
    k, n1 = pos.shape
    n0 = neg.shape[1]
    if min(n1, n0) > 128 or max(n1, n0) >= 2**22:
        return np.stack([bootstrap_aucs_from_draws(pos[i], neg[i], pos_idx, neg_idx) for i in range(k)])
    if n1 > n0:  # the negatives are the small class: AUC(pos, neg) == AUC(-neg, -pos)
        pos, neg, pos_idx, neg_idx, n1, n0 = -neg, -pos, neg_idx, pos_idx, n0, n1
    n_res = pos_idx.shape[0]
    out = np.empty((k, n_res), dtype=np.float64)
    per_batch = max(1, _CHUNK_ELEMENTS // (n0 * n1))
    step = max(1, _CHUNK_ELEMENTS // max(n0, per_batch * n1))
    counts = None
    if n_res * n0 <= 4 * _CHUNK_ELEMENTS:  # small enough to count the draws once for all batches
        counts = (_row_bincount(neg_idx, n0).astype(np.float32), _row_bincount(pos_idx, n1))
    for c0 in range(0, k, per_batch):
        kb = min(per_batch, k - c0)
        p, q = pos[c0 : c0 + kb], neg[c0 : c0 + kb]
        # psi[j, i, c]: negative j against positive c under condition i (1 below, 1/2 tied); exact in float32.
        psi = (q.T[:, :, None] < p[None, :, :]) + 0.5 * (q.T[:, :, None] == p[None, :, :])
        psi = psi.reshape(n0, kb * n1).astype(np.float32)
        for start in range(0, n_res, step):
            if counts is not None:
                d, c = counts[0][start : start + step], counts[1][start : start + step]
            else:
                d = _row_bincount(neg_idx[start : start + step], n0).astype(np.float32)
                c = _row_bincount(pos_idx[start : start + step], n1)
            part = (d @ psi).reshape(-1, kb, n1) * c[:, None, :]
            out[c0 : c0 + kb, start : start + step] = part.sum(axis=2).T
    return out / (n1 * n0)


def bootstrap_aucs(pos, neg, n_resamples: int, rng: np.random.Generator) -> np.ndarray:
    """AUCs of ``n_resamples`` stratified bootstrap resamples (each class resampled with replacement).

    Draws the positives' indices, then the negatives', from ``rng`` (:func:`resample_indices`).

    Returns
    -------
    ndarray, shape (n_resamples,)
    """
    pos = np.asarray(pos, dtype=np.float64)
    neg = np.asarray(neg, dtype=np.float64)
    pos_idx = resample_indices(pos.size, n_resamples, rng)
    neg_idx = resample_indices(neg.size, n_resamples, rng)
    return bootstrap_aucs_from_draws(pos, neg, pos_idx, neg_idx)


@dataclass(frozen=True)
class AucEstimate:
    """An AUC with its 95% (or other) interval and the class sizes."""

    auc: float
    ci_low: float
    ci_high: float
    n_pos: int
    n_neg: int


def bootstrap_auc(
    scores, labels, *, n_resamples: int = DEFAULT_RESAMPLES, level: float = 0.95, seed: int = 0
) -> AucEstimate:
    """AUC with a percentile interval from a stratified bootstrap.

    Positives and negatives are resampled separately (with replacement, keeping their counts), so every
    resample has both classes. Same inputs and seed give the same interval.

    Parameters
    ----------
    n_resamples : int
        Number of bootstrap resamples (default 2000).
    level : float
        Coverage of the interval, in (0, 1); 0.95 gives the 2.5th and 97.5th percentiles.
    seed : int
        Seed of the resampling.
    """
    pos, neg = _split(scores, labels)
    if not 0 < level < 1:
        raise MetricsError(f"interval level must be in (0, 1), got {level}")
    boot = bootstrap_aucs(pos, neg, n_resamples, np.random.default_rng(seed))
    lo, hi = np.quantile(boot, [(1 - level) / 2, (1 + level) / 2])
    return AucEstimate(auc(scores, labels), float(lo), float(hi), int(pos.size), int(neg.size))


def structural_components(scores, labels) -> tuple[np.ndarray, np.ndarray]:
    """DeLong's structural components.

    Returns
    -------
    v10 : ndarray, shape (n_pos,)
        For each positive, the fraction of negatives it outranks (ties one half).
    v01 : ndarray, shape (n_neg,)
        For each negative, the fraction of positives that outrank it (ties one half).
    Both have mean equal to the AUC.
    """
    pos, neg = _split(scores, labels)
    lo, hi = _less_equal_counts(pos, np.sort(neg))
    v10 = (lo + 0.5 * (hi - lo)) / neg.size
    pos_sorted = np.sort(pos)
    above_lo = np.searchsorted(pos_sorted, neg, side="left")
    above_hi = np.searchsorted(pos_sorted, neg, side="right")
    v01 = ((pos.size - above_hi) + 0.5 * (above_hi - above_lo)) / pos.size
    return v10, v01


def delong_covariance(score_matrix, labels) -> tuple[np.ndarray, np.ndarray]:
    """AUCs of several score sets on the same cases and DeLong's estimate of their covariance.

    Parameters
    ----------
    score_matrix : array_like, shape (k, n)
        One row of scores per condition (model, perturbation...), all on the same n cases.
    labels : array_like, shape (n,)

    Returns
    -------
    aucs : ndarray, shape (k,)
    cov : ndarray, shape (k, k)
        ``S10 / n_pos + S01 / n_neg`` with S10, S01 the sample covariances (ddof 1) of the structural
        components (DeLong, DeLong & Clarke-Pearson, Biometrics 1988).
    """
    mat = np.atleast_2d(np.asarray(score_matrix, dtype=np.float64))
    comps = [structural_components(row, labels) for row in mat]
    v10 = np.stack([c[0] for c in comps])
    v01 = np.stack([c[1] for c in comps])
    n1, n0 = v10.shape[1], v01.shape[1]
    if n1 < 2 or n0 < 2:
        raise MetricsError(f"DeLong variance needs at least 2 positives and 2 negatives ({n1}, {n0})")
    s10 = np.atleast_2d(np.cov(v10, ddof=1))
    s01 = np.atleast_2d(np.cov(v01, ddof=1))
    return v10.mean(axis=1), s10 / n1 + s01 / n0


def delong_variance(scores, labels) -> tuple[float, float]:
    """AUC and its DeLong variance, for one score set. Returns ``(auc, variance)``."""
    aucs, cov = delong_covariance(np.asarray(scores)[None, :], labels)
    return float(aucs[0]), float(cov[0, 0])


@dataclass(frozen=True)
class DelongResult:
    """Paired comparison of two AUCs on the same cases."""

    auc_a: float
    auc_b: float
    difference: float  # auc_a - auc_b
    se: float
    z: float
    p_value: float  # two-sided
    ci_low: float  # interval of the difference at the requested level
    ci_high: float


def delong_test(scores_a, scores_b, labels, *, level: float = 0.95) -> DelongResult:
    """DeLong's paired test that two conditions scored on the same cases have equal AUC.

    Parameters
    ----------
    scores_a, scores_b : array_like, shape (n,)
        Scores of the same n cases under two conditions (e.g. unperturbed and low-pass filtered).
    labels : array_like, shape (n,)
    level : float
        Coverage of the normal interval of the difference.

    Returns
    -------
    DelongResult
        ``z = (auc_a - auc_b) / se`` with ``se^2 = var_a + var_b - 2 cov_ab``; two-sided p-value from the
        standard normal. When both score sets give identical structural components, se is 0 and p is 1.
    """
    a = np.asarray(scores_a, dtype=np.float64).ravel()
    b = np.asarray(scores_b, dtype=np.float64).ravel()
    if a.shape != b.shape:
        raise MetricsError(f"paired DeLong test needs the same cases: {a.size} vs {b.size} scores")
    aucs, cov = delong_covariance(np.stack([a, b]), labels)
    var = max(cov[0, 0] + cov[1, 1] - 2 * cov[0, 1], 0.0)
    se = float(np.sqrt(var))
    diff = float(aucs[0] - aucs[1])
    if se == 0.0:
        z, p = 0.0 if diff == 0 else float(np.sign(diff) * np.inf), 1.0 if diff == 0 else 0.0
    else:
        z = diff / se
        p = float(2 * norm.sf(abs(z)))
    half = float(norm.ppf((1 + level) / 2)) * se
    return DelongResult(float(aucs[0]), float(aucs[1]), diff, se, float(z), p, diff - half, diff + half)
