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
    t1 = pd.read_csv(out / "table1.csv")
    assert {"cell", "diff_baseline", "p_baseline"} <= set(t1.columns)
    for name in (
        "auc_vs_severity_breast.html",
        "auc_vs_severity_image.html",
        "roc_breast.html",
        "plotly.min.js",
    ):
        assert (out / name).stat().st_size > 1000
    if "matplotlib" in printed or "kaleido" in printed:
        assert (out / "auc_vs_severity_breast.png").read_bytes()[:4] == b"\x89PNG"


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
