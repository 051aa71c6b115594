"""``mammo-robust report``: on a small table end to end, and on the published perception scores."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from core.cli import main
from core.metrics import write_report
from core.paths import perception_scores_csv
from tests.test_metrics_tables import make_scores


def test_report_cli_writes_tables_and_figures(tmp_path, capsys):
    src = tmp_path / "scores.parquet"
    make_scores(n_exams=40).to_parquet(src, index=False)
    out = tmp_path / "rep"
    assert main(["report", str(src), "--out", str(out), "--resamples", "200"]) == 0
    printed = capsys.readouterr().out
    assert "PNG figures rendered with:" in printed
    auc = pd.read_csv(out / "auc.csv")
    for col in (
        "model",
        "weights",
        "perturbation",
        "severity",
        "level",
        "auc",
        "ci_low",
        "ci_high",
        "n_pos",
        "n_neg",
    ):
        assert col in auc.columns
    assert set(auc["level"]) == {"image", "breast"}
    # Table 1's numbers per weights; table1.csv holds the study's layout (tests/test_table1.py).
    t1 = pd.read_csv(out / "table1_cells.csv")
    assert {"cell", "diff_baseline", "p_baseline"} <= set(t1.columns)
    for name in (
        "auc_vs_parameter_breast.html",
        "auc_vs_parameter_image.html",
        "roc_breast.html",
        "plotly.min.js",
    ):
        assert (out / name).stat().st_size > 1000
    if "matplotlib" in printed or "kaleido" in printed:
        assert (out / "auc_vs_parameter_breast.png").read_bytes()[:4] == b"\x89PNG"


def test_report_cli_reports_bad_input(tmp_path, capsys):
    src = tmp_path / "scores.csv"
    make_scores(n_exams=10).drop(columns=["label_malignant"]).to_csv(src, index=False)
    assert main(["report", str(src), "--out", str(tmp_path / "rep")]) == 2
    err = capsys.readouterr().err
    assert "scores.csv" in err and "label_malignant" in err


@pytest.mark.slow
def test_report_on_published_perception_scores(tmp_path):
    path = perception_scores_csv()
    if not path.is_file():
        pytest.skip(f"published perception scores not found at {path}")
    rep = write_report(path, tmp_path, n_resamples=200, figures=False)
    auc = rep.auc
    assert set(auc["level"]) == {"breast"}
    assert len(auc) == 269
    curves = rep.curves.set_index(["model", "weights", "severity"])["auc"]
    for model in ("gmic", "dmv"):
        plain = curves[(model, "nyu-trained-unperturbed")]
        filt = curves[(model, "nyu-trained-filtered")]
        # AUC falls with the filtering, and falls less for networks trained on filtered images.
        assert plain.loc[0] - plain.loc[8] > 0.25
        assert np.corrcoef(plain.index, plain.to_numpy())[0, 1] < -0.85
        assert filt.loc[8] > plain.loc[8] + 0.1
    readers = curves[("radiologist", "reader")]
    assert readers.loc[0] > readers.loc[8]


@pytest.mark.slow
def test_report_cli_on_published_scores_gives_families_and_parameter_curves(tmp_path):
    """`python3 -m core.cli report scores.csv`: Table 1 families (five seeds, ten readers) as mean ± sd
    [min-max], curves against the study's low-pass label, table1.csv and table1.tex."""
    import os
    import subprocess
    import sys
    from pathlib import Path

    path = perception_scores_csv()
    if not path.is_file():
        pytest.skip(f"published perception scores not found at {path}")
    repo = Path(__file__).resolve().parent.parent
    out = tmp_path / "rep"
    env = {**os.environ, "PYTHONPATH": str(repo), "MAMMO_ROBUST_DATA": str(tmp_path / "data")}
    proc = subprocess.run(
        [sys.executable, "-m", "core.cli", "report", str(path), "--out", str(out), "--resamples", "200"],
        capture_output=True, text=True, env=env, cwd=repo, timeout=900,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    assert "warning: Small samples" in proc.stdout  # readers read few malignant breasts each
    t1 = pd.read_csv(out / "table1.csv", dtype=str, keep_default_na=False).set_index(["model", "weights"])
    assert list(t1.index) == [
        ("dmv", "nyu-trained-filtered"),
        ("dmv", "nyu-trained-unperturbed"),
        ("gmic", "nyu-trained-filtered"),
        ("gmic", "nyu-trained-unperturbed"),
        ("radiologist", "reader"),
    ]
    assert t1.loc[("gmic", "nyu-trained-unperturbed"), "members"] == "5"
    assert t1.loc[("radiologist", "reader"), "members"] == "10"
    assert list(t1.columns[3:]) == [
        "unperturbed",
        "high-pass R = 2 cycles/mm",
        "low-pass (Gaussian) label = 2",
        "noise std = 1600 model units",
        "shuffle grid 8 x 8",
    ]
    auc = pd.read_csv(out / "auc.csv")
    for model, weights, prefix in (
        ("gmic", "nyu-trained-unperturbed", "nyu-trained-unperturbed-seed"),
        ("radiologist", "reader", "reader-"),
    ):
        members = auc[
            (auc["model"] == model) & auc["weights"].str.startswith(prefix) & (auc["severity"] == 0)
        ]
        a = members["auc"].dropna().to_numpy()
        assert len(a) == (5 if model == "gmic" else 10)
        expected = f"{a.mean():.2f} ± {a.std(ddof=1):.2f} [{a.min():.2f}\u2013{a.max():.2f}]"
        assert t1.loc[(model, weights), "unperturbed"].startswith(expected)
    assert t1.loc[("gmic", "nyu-trained-unperturbed"), "high-pass R = 2 cycles/mm"] == "n/a"
    tex = (out / "table1.tex").read_text()
    assert r"\toprule" in tex and "nyu-trained-unperturbed" in tex and "no shuffle condition" in tex
    curves = pd.read_csv(out / "auc_vs_parameter.csv")
    gmic = curves[(curves["weights"] == "nyu-trained-unperturbed") & (curves["model"] == "gmic")]
    pts = gmic[gmic["kind"] == "perturbation"]
    assert list(pts["x"]) == [0.17, 0.22, 0.33, 0.5, 0.67, 1, 2, 4] and set(pts["panel"]) == {
        "lowpass-gaussian"
    }
    assert (gmic["kind"] == "unperturbed").sum() == 1 and (gmic["n_members"] == 5).all()
    assert pts["auc"].iloc[0] - pts["auc"].iloc[-1] > 0.25
    assert "not cycles/mm" in (out / "summary.md").read_text()
    assert (out / "auc_vs_parameter_breast.png").read_bytes()[:4] == b"\x89PNG"
