"""Comparing runs: one figure, DeLong's paired test per condition on the cases two runs share."""

from __future__ import annotations

import math
import os
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest

from core.metrics import breast_level, validate_scores
from core.metrics.compare import compare_runs, paired_tests
from tests.test_metrics_tables import make_scores

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def delong_by_hand(a: np.ndarray, b: np.ndarray, y: np.ndarray) -> tuple[float, float]:
    """DeLong, DeLong & Clarke-Pearson (1988) straight from the definitions: the placement values of each
    positive and negative from the full pair kernel psi (1 above, 1/2 tied, 0 below), their sample
    covariances, and the normal two-sided p of AUC_a - AUC_b. Returns (difference, p)."""
    comps = []
    for s in (a, b):
        pos, neg = s[y == 1], s[y == 0]
        psi = (pos[:, None] > neg[None, :]) + 0.5 * (pos[:, None] == neg[None, :])
        comps.append((psi.mean(axis=1), psi.mean(axis=0)))  # V10 per positive, V01 per negative
    v10 = np.stack([c[0] for c in comps])
    v01 = np.stack([c[1] for c in comps])
    m, n = v10.shape[1], v01.shape[1]
    s10 = np.cov(v10)
    s01 = np.cov(v01)
    var = (s10[0, 0] + s10[1, 1] - 2 * s10[0, 1]) / m + (s01[0, 0] + s01[1, 1] - 2 * s01[0, 1]) / n
    diff = v10[0].mean() - v10[1].mean()
    z = diff / math.sqrt(var)
    return diff, math.erfc(abs(z) / math.sqrt(2))


def _two_runs():
    """Run A scored exams e000..e079, run B e020..e099 (60 shared; same labels), both unperturbed and
    low-pass R = 2, B with the low-pass under an explicit-parameter severity label (101) and other scores."""
    full = make_scores(seed=3, n_exams=100, conditions=[("none", 0, 0.0), ("lowpass", 2, 2.0)])
    a = full[full["exam_id"] < "e080"].assign(weights="plain")
    rng = np.random.default_rng(4)
    b = full[full["exam_id"] >= "e020"].assign(weights="filtered")
    lp = b["perturbation"] == "lowpass"
    b.loc[lp, "severity"] = 101
    b.loc[lp, "score_malignant"] = 1 / (
        1 + np.exp(-(rng.normal(size=lp.sum()) + 1.6 * b.loc[lp, "label_malignant"]))
    )
    return validate_scores(a), validate_scores(b)


def test_paired_tests_on_shared_cases_match_the_formulas():
    a, b = _two_runs()
    tests = paired_tests({"A": a, "B": b}, level="breast")
    assert set(tests["perturbation"]) == {"unperturbed", "lowpass"}  # matched by parameter, not severity
    assert (tests["reference"] == "A · gmic · plain").all() and (
        tests["series"] == "B · gmic · filtered"
    ).all()
    row = tests[tests["perturbation"] == "lowpass"].iloc[0]
    assert row["parameter"] == 2.0
    ba, bb = breast_level(a), breast_level(b)
    ka = ba[ba["perturbation"] == "lowpass"].set_index(["exam_id", "laterality"])
    kb = bb[bb["perturbation"] == "lowpass"].set_index(["exam_id", "laterality"])
    shared = ka.index.intersection(kb.index)
    assert row["n_shared"] == len(shared) == 120  # 60 exams, two breasts each
    y = ka.loc[shared, "label_malignant"].to_numpy()
    diff, p = delong_by_hand(
        kb.loc[shared, "score_malignant"].to_numpy(), ka.loc[shared, "score_malignant"].to_numpy(), y
    )
    assert row["difference"] == pytest.approx(diff, abs=1e-12)
    assert row["p_value"] == pytest.approx(p, rel=1e-9)
    assert row["n_pos"] == y.sum() and row["n_neg"] == (y == 0).sum()
    assert row["ci_low"] < row["difference"] < row["ci_high"]


def test_compare_runs_draws_every_series_and_picks_a_reference():
    a, b = _two_runs()
    comp = compare_runs({"A": a, "B": b}, reference=("B", "gmic", "filtered"), n_resamples=100)
    assert set(comp.curves["series"]) == {"A · gmic · plain", "B · gmic · filtered"}
    lp = comp.curves[(comp.curves["kind"] == "perturbation")]
    assert set(lp["x"]) == {2.0} and set(lp["severity"]) == {2, 101}
    assert comp.reference == "B · gmic · filtered" and (comp.tests["series"] == "A · gmic · plain").all()
    # Tables that share no case give no test, not a wrong one.
    far = b.assign(exam_id="z" + b["exam_id"])
    empty = paired_tests({"A": a, "Z": far})
    assert (empty["n_shared"] == 0).all() and empty["p_value"].isna().all()


def test_report_cli_compares_two_tables(tmp_path):
    a, b = _two_runs()
    a.to_csv(tmp_path / "plain.csv", index=False)
    b.to_csv(tmp_path / "filtered.csv", index=False)
    out = tmp_path / "cmp"
    env = {**os.environ, "PYTHONPATH": REPO, "MAMMO_ROBUST_DATA": str(tmp_path / "data")}
    proc = subprocess.run(
        [sys.executable, "-m", "core.cli", "report", str(tmp_path / "plain.csv"),
         str(tmp_path / "filtered.csv"), "--out", str(out), "--resamples", "100",
         "--labels", "plain,filtered"],
        capture_output=True, text=True, env=env, cwd=REPO, timeout=600,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    assert "paired tests against plain · gmic · plain" in proc.stdout
    tests = pd.read_csv(out / "compare_tests.csv")
    expected = paired_tests({"plain": a, "filtered": b})
    assert np.allclose(tests["p_value"], expected["p_value"]) and list(tests["n_shared"]) == [120, 120]
    assert (out / "compare_breast.html").stat().st_size > 1000
    assert (out / "compare_breast.png").read_bytes()[:4] == b"\x89PNG"
