"""core.metrics.auc: AUC, ROC, bootstrap and DeLong against hand-computed cases and brute force."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy.stats import norm

from core.metrics import (
    MetricsError,
    auc,
    bootstrap_auc,
    bootstrap_aucs,
    bootstrap_aucs_from_counts,
    bootstrap_aucs_from_draws,
    delong_covariance,
    delong_test,
    delong_variance,
    paired_bootstrap_aucs,
    resample_counts,
    resample_indices,
    roc_curve,
    structural_components,
)


def brute_auc(scores, labels) -> float:
    s, y = np.asarray(scores, float), np.asarray(labels)
    pos, neg = s[y == 1], s[y == 0]
    diff = pos[:, None] - neg[None, :]
    return float(((diff > 0) + 0.5 * (diff == 0)).mean())


def test_auc_hand_case_with_a_tie():
    # pairs (3,1)=1, (3,2)=1, (2,1)=1, (2,2)=1/2 -> 3.5 / 4
    assert auc([3, 2, 1, 2], [1, 1, 0, 0]) == pytest.approx(0.875)
    assert auc([1, 1, 1, 1], [1, 0, 1, 0]) == pytest.approx(0.5)
    assert auc([0, 1], [1, 0]) == 0.0


@settings(max_examples=60, deadline=None)
@given(
    st.lists(st.integers(0, 6), min_size=2, max_size=40),
    st.lists(st.booleans(), min_size=2, max_size=40),
)
def test_auc_equals_pairwise_definition(values, flags):
    n = min(len(values), len(flags))
    y = np.array(flags[:n], dtype=int)
    if y.min() == y.max():
        y[0] = 1 - y[0]
    s = np.array(values[:n], dtype=float)
    assert auc(s, y) == pytest.approx(brute_auc(s, y))
    # The ROC curve's trapezoid area is the same number (ties give diagonal segments).
    fpr, tpr, thr = roc_curve(s, y)
    assert np.trapezoid(tpr, fpr) == pytest.approx(brute_auc(s, y))
    assert fpr[0] == tpr[0] == 0 and fpr[-1] == tpr[-1] == 1
    assert np.all(np.diff(fpr) >= 0) and np.all(np.diff(tpr) >= 0) and np.all(np.diff(thr) < 0)


def test_bad_input_raises_metrics_error():
    with pytest.raises(MetricsError, match="positive"):
        auc([0.1, 0.2], [0, 0])
    with pytest.raises(MetricsError, match="NaN"):
        auc([0.1, np.nan], [0, 1])
    with pytest.raises(MetricsError, match="0 or 1"):
        auc([0.1, 0.2], [0, 2])
    with pytest.raises(MetricsError, match="labels"):
        auc([0.1, 0.2, 0.3], [0, 1])


def test_delong_hand_case():
    # positives 3, 2; negatives 1, 2.  V10 = [1, 0.75], V01 = [1, 0.75]; S10 = S01 = 0.03125 (ddof 1);
    # var = S10/2 + S01/2 = 0.03125.
    v10, v01 = structural_components([3, 2, 1, 2], [1, 1, 0, 0])
    np.testing.assert_allclose(v10, [1, 0.75])
    np.testing.assert_allclose(v01, [1, 0.75])
    a, var = delong_variance([3, 2, 1, 2], [1, 1, 0, 0])
    assert a == pytest.approx(0.875)
    assert var == pytest.approx(0.03125)


def test_paired_delong_hand_case():
    y = [1, 1, 0, 0]
    a = [3, 2, 1, 2]  # AUC 0.875, V10 [1, .75], V01 [1, .75]
    b = [1, 3, 2, 0]  # AUC 0.75,  V10 [.5, 1],  V01 [.5, 1]
    # S10: var_a .03125, var_b .125, cov -.0625; S01 the same. var(diff) = 2 * (.03125 + .125 + .125) / 2.
    res = delong_test(a, b, y)
    assert res.auc_a == pytest.approx(0.875) and res.auc_b == pytest.approx(0.75)
    assert res.difference == pytest.approx(0.125)
    assert res.se == pytest.approx(np.sqrt(0.28125))
    assert res.p_value == pytest.approx(2 * norm.sf(0.125 / np.sqrt(0.28125)))
    assert res.ci_low < res.difference < res.ci_high
    _, cov = delong_covariance([a, b], y)
    np.testing.assert_allclose(cov, [[0.03125, -0.0625], [-0.0625, 0.125]])


def test_delong_identical_conditions_gives_p_one():
    rng = np.random.default_rng(0)
    s = rng.normal(size=50)
    y = (np.arange(50) % 3 == 0).astype(int)
    res = delong_test(s, s, y)
    assert res.difference == 0 and res.p_value == 1.0


def _cohort(rng, n_pos=40, n_neg=260, shift=1.0, k=2, rho=0.95):
    y = np.r_[np.ones(n_pos, int), np.zeros(n_neg, int)]
    base = rng.normal(size=n_pos + n_neg)
    mats = [
        rho * base + np.sqrt(1 - rho**2) * rng.normal(size=base.size) + shift * y * (1 - 0.3 * i)
        for i in range(k)
    ]
    return np.stack(mats), y


def test_delong_variance_agrees_with_bootstrap():
    rng = np.random.default_rng(1)
    mat, y = _cohort(rng)
    _, cov = delong_covariance(mat, y)
    pi = resample_indices(int(y.sum()), 4000, rng)
    ni = resample_indices(int((1 - y).sum()), 4000, rng)
    boot = paired_bootstrap_aucs(mat, y, pi, ni)
    assert boot[0].var() == pytest.approx(cov[0, 0], rel=0.15)
    assert boot[1].var() == pytest.approx(cov[1, 1], rel=0.15)
    # The paired difference: correlated conditions make its variance much smaller than the sum.
    var_diff = cov[0, 0] + cov[1, 1] - 2 * cov[0, 1]
    assert (boot[0] - boot[1]).var() == pytest.approx(var_diff, rel=0.2)
    assert var_diff < 0.5 * (cov[0, 0] + cov[1, 1])


@pytest.mark.parametrize(("n_pos", "n_neg"), [(7, 50), (50, 7), (140, 150)])
def test_bootstrap_draws_equal_explicit_resamples(n_pos, n_neg):
    rng = np.random.default_rng(2)
    pos = np.round(rng.normal(1, 1, n_pos), 1)  # rounded: plenty of ties
    neg = np.round(rng.normal(0, 1, n_neg), 1)
    pi, ni = resample_indices(n_pos, 30, rng), resample_indices(n_neg, 30, rng)
    fast = bootstrap_aucs_from_draws(pos, neg, pi, ni)
    explicit = [
        brute_auc(np.r_[pos[p], neg[q]], np.r_[np.ones(n_pos), np.zeros(n_neg)])
        for p, q in zip(pi, ni, strict=True)
    ]
    np.testing.assert_allclose(fast, explicit, atol=1e-12)
    pc = np.stack([np.bincount(r, minlength=n_pos) for r in pi])
    nc = np.stack([np.bincount(r, minlength=n_neg) for r in ni])
    np.testing.assert_allclose(bootstrap_aucs_from_counts(pos, neg, pc, nc), explicit, atol=1e-12)
    # Several conditions at once (the matrix-product path for a small class) give the same numbers.
    y = np.r_[np.ones(n_pos, int), np.zeros(n_neg, int)]
    mat = np.stack([np.r_[pos, neg], np.r_[pos[::-1], neg]])
    both = paired_bootstrap_aucs(mat, y, pi, ni)
    np.testing.assert_allclose(both[0], explicit, atol=1e-6)
    np.testing.assert_allclose(both[1], bootstrap_aucs_from_draws(pos[::-1], neg, pi, ni), atol=1e-6)


def test_resample_counts_are_the_same_draws():
    a = resample_counts(9, 5, np.random.default_rng(3))
    idx = resample_indices(9, 5, np.random.default_rng(3))
    assert a.shape == (5, 9) and (a.sum(axis=1) == 9).all()
    np.testing.assert_array_equal(a, [np.bincount(r, minlength=9) for r in idx])


def test_bootstrap_interval_is_seeded_and_covers():
    rng = np.random.default_rng(4)
    mat, y = _cohort(rng, k=1)
    s = mat[0]
    e1 = bootstrap_auc(s, y, seed=7)
    e2 = bootstrap_auc(s, y, seed=7)
    e3 = bootstrap_auc(s, y, seed=8)
    assert e1 == e2 and e1 != e3
    assert e1.ci_low < e1.auc < e1.ci_high
    assert (e1.n_pos, e1.n_neg) == (40, 260)
    # Width close to the normal interval from DeLong's variance.
    _, var = delong_variance(s, y)
    assert e1.ci_high - e1.ci_low == pytest.approx(2 * 1.96 * np.sqrt(var), rel=0.2)
    boot = bootstrap_aucs(s[y == 1], s[y == 0], 2000, np.random.default_rng(7))
    assert np.quantile(boot, 0.025) == pytest.approx(e1.ci_low)
