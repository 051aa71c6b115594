"""Table 1 in the study's layout (core.metrics.study_table, core.metrics.table1_format)."""

from __future__ import annotations

import re

import numpy as np
import pandas as pd
import pytest

from core.metrics import auc_table, breast_level, delong_test, validate_scores
from core.metrics.study_table import table1_cells, table1_columns
from core.metrics.table1_format import latex_escape, table1_latex, table1_layout
from tests.test_metrics_tables import make_scores

GRID = [
    ("none", 0, 0.0),
    ("highpass", 4, 2.0),
    ("matched-highpass", 4, 640000.0),
    ("lowpass", 2, 2.0),
    ("lowpass", 3, 1.0),
    ("matched-lowpass", 2, 29000.0),
    ("noise", 1, 100.0),
    ("noise", 2, 200.0),
    ("noise", 5, 1600.0),
    ("shuffle", 5, 8.0),
    ("matched-shuffle", 5, 600000.0),
]


@pytest.fixture(scope="module")
def scores() -> pd.DataFrame:
    return validate_scores(
        make_scores(n_exams=120, conditions=GRID, weights=("w-seed10", "w-seed2", "w-seed1"))
    )


@pytest.fixture(scope="module")
def aucs(scores) -> pd.DataFrame:
    return auc_table(scores, levels=["breast"], n_resamples=200)


def _cases(scores, weights, pert, sev):
    b = breast_level(scores)
    b = b[(b["weights"] == weights) & (b["perturbation"] == pert) & (b["severity"] == sev)]
    return b.set_index(b["exam_id"] + "|" + b["laterality"]).sort_index()


def test_layout_rows_columns_and_numeric_order(scores, aucs):
    cells = table1_cells(scores, aucs)
    layout = table1_layout(cells, by_family=False)
    assert list(layout["weights"]) == ["w-seed1", "w-seed2", "w-seed10"]  # numbers, not text order
    assert list(layout.columns) == [
        "model",
        "weights",
        "members",
        "n_pos",
        "n_neg",
        "unperturbed",
        "high-pass R = 2 cycles/mm",
        "low-pass R = 2 cycles/mm",
        "noise std = 1600 model units",
        "shuffle grid 8 x 8",
    ]
    rec = cells[(cells["weights"] == "w-seed2") & (cells["column"] == "noise")].iloc[0]
    assert rec["parameter"] == 1600.0 and rec["severity"] == 5
    # n_pos / n_neg of the unperturbed breasts
    un = _cases(scores, "w-seed2", "none", 0)
    row = layout.set_index("weights").loc["w-seed2"]
    assert row["n_pos"] == str(un["label_malignant"].sum()) and row["n_neg"] == str(
        (un["label_malignant"] == 0).sum()
    )


def test_cells_match_direct_auc_differences_and_delong(scores, aucs):
    cells = table1_cells(scores, aucs)
    rec = cells[(cells["weights"] == "w-seed1") & (cells["column"] == "low-pass")].iloc[0]
    lp, un, base = (
        _cases(scores, "w-seed1", p, s) for p, s in (("lowpass", 2), ("none", 0), ("matched-lowpass", 2))
    )
    y = lp["label_malignant"].to_numpy()
    t_un = delong_test(lp["score_malignant"], un["score_malignant"], y)
    t_base = delong_test(lp["score_malignant"], base["score_malignant"], y)
    assert rec["auc"] == pytest.approx(t_un.auc_a)
    assert rec["diff_unperturbed"] == pytest.approx(t_un.difference)
    assert rec["p_unperturbed"] == pytest.approx(t_un.p_value)
    assert rec["diff_baseline"] == pytest.approx(t_base.difference)
    assert rec["p_baseline"] == pytest.approx(t_base.p_value)
    assert rec["n_shared_unperturbed"] == len(y)
    mark = "**" if t_un.p_value < 0.01 else "*" if t_un.p_value < 0.05 else ""
    bmark = "††" if t_base.p_value < 0.01 else "†" if t_base.p_value < 0.05 else ""
    expected = f"{t_un.auc_a:.2f}{mark} ({t_base.difference:+.2f}{bmark})".replace("-", "\u2212")
    assert rec["cell"] == expected + (" §" if rec["flag"] else "")
    noise = cells[(cells["weights"] == "w-seed1") & (cells["column"] == "noise")].iloc[0]
    assert np.isnan(noise["diff_baseline"]) and "(" not in noise["cell"]  # noise is its own baseline


def test_families_are_mean_sd_min_max(scores, aucs):
    cells = table1_cells(scores, aucs)
    layout = table1_layout(cells)
    assert len(layout) == 1 and layout["weights"].iloc[0] == "w" and layout["members"].iloc[0] == 3
    members = cells[cells["column"] == "low-pass"]
    a, d = members["auc"].to_numpy(), members["diff_baseline"].to_numpy()
    text = layout["low-pass R = 2 cycles/mm"].iloc[0]
    head = f"{a.mean():.2f} ± {a.std(ddof=1):.2f} [{a.min():.2f}\u2013{a.max():.2f}]"
    assert text.startswith(head), text
    assert f"({d.mean():+.2f} ± {d.std(ddof=1):.2f}".replace("-", "\u2212") in text
    notes = " ".join(layout.attrs["footnotes"])
    assert "mean ± sd" in notes and "DeLong" in notes and "matched" in notes


def test_paired_test_uses_only_shared_cases(scores, aucs):
    keep = breast_level(scores)
    keep = keep[keep["weights"] == "w-seed1"]
    lp = keep[(keep["perturbation"] == "lowpass") & (keep["severity"] == 2)]
    dropped = lp.iloc[::3]  # a third of the breasts were not scored under the low-pass
    part = keep.drop(index=dropped.index)
    cells = table1_cells(part, auc_table(part, levels=["breast"], n_resamples=0))
    rec = cells[cells["column"] == "low-pass"].iloc[0]
    lp_cases = _cases(part, "w-seed1", "lowpass", 2)
    un = _cases(part, "w-seed1", "none", 0).loc[lp_cases.index]
    t = delong_test(lp_cases["score_malignant"], un["score_malignant"], lp_cases["label_malignant"])
    assert rec["n_shared_unperturbed"] == len(lp) - len(dropped)
    assert rec["p_unperturbed"] == pytest.approx(t.p_value)


def test_missing_columns_and_chosen_parameters(scores, aucs):
    sub = scores[scores["perturbation"].isin(["none", "lowpass", "matched-lowpass"])]
    a = aucs[aucs["perturbation"].isin(["none", "lowpass", "matched-lowpass"])]
    layout = table1_layout(table1_cells(sub, a))
    notes = " ".join(layout.attrs["footnotes"])
    assert "no high-pass condition in this table" in notes and "no shuffle condition" in notes
    assert layout["high-pass R = 2 cycles/mm"].iloc[0] == "n/a"
    cols = table1_columns(a, {"low-pass": 1.0})
    assert next(c for c in cols if c["title"] == "low-pass")["parameter"] == 1.0
    cells = table1_cells(sub, a, parameters={"low-pass": 1.0})
    assert "low-pass R = 1 cycles/mm" in set(cells["heading"])
    cells = table1_cells(sub, a, parameters={"low-pass": 3.0})
    assert any("no R = 3 cycles/mm" in m for m in cells["missing"])


def test_latex_is_escaped_and_balanced(scores, aucs):
    odd = scores.assign(weights=scores["weights"].str.replace("w-", "w_&%#$", regex=False))
    cells = table1_cells(odd, auc_table(odd, levels=["breast"], n_resamples=0))
    layout = table1_layout(cells, by_family=False)
    tex = table1_latex(layout, caption="demo_run 50% ~ {x}")
    body = [ln for ln in tex.splitlines() if ln.endswith(r"\\") and not ln.startswith(r"\parbox")]
    n_cols = len(layout.columns) - 2  # n_pos and n_neg are left out of the LaTeX table
    assert len(body) == len(layout) + 1  # header + rows
    for line in body:
        assert len(re.findall(r"(?<!\\)&", line)) == n_cols - 1, line
    assert r"w\_\&\%\#\$seed1" in tex
    stripped = re.sub(r"\\[{}]", "", tex)
    assert stripped.count("{") == stripped.count("}")
    assert stripped.count("$") - tex.count(r"\$") * 0 >= 0 and (tex.count("$") - tex.count(r"\$")) % 2 == 0
    assert r"\toprule" in tex and r"\bottomrule" in tex and "±" not in tex and "\u2212" not in tex
    assert latex_escape("0.77** (−0.01††) §") == r"0.77$^{**}$ ($-$0.01$^{\dagger\dagger}$) $^{\S}$"
