"""``mammo-robust report``: every table and figure of a scores table, written to a folder."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from core.errors import MetricsError
from core.metrics.auc import DEFAULT_RESAMPLES
from core.metrics.figures import auc_vs_severity_figure, roc_figure, write_html, write_png
from core.metrics.scores import UNPERTURBED, read_scores, validate_scores
from core.metrics.tables import auc_table, auc_vs_severity, roc_points, table1


@dataclass
class Report:
    """What :func:`write_report` produced."""

    out_dir: Path
    files: list[Path] = field(default_factory=list)
    png_renderer: str | None = None
    seconds: float = 0.0
    auc: pd.DataFrame | None = None
    curves: pd.DataFrame | None = None
    table1: pd.DataFrame | None = None


def _roc_selection(scores: pd.DataFrame, level: str) -> pd.DataFrame:
    """ROC points of one weights per model (most rows, then first by name): unperturbed and each
    perturbation's top severity."""
    sizes = scores.groupby(["model", "weights"]).size().reset_index(name="n")
    sizes = sizes.sort_values(["model", "n", "weights"], ascending=[True, False, True]).drop_duplicates(
        "model"
    )
    first = sizes.set_index("model")["weights"]
    rows = scores[scores["weights"] == scores["model"].map(first)]
    parts = []
    for (_model, pert), grp in rows.groupby(["model", "perturbation"]):
        for sev in sorted({grp["severity"].min(), grp["severity"].max()}):
            if pert != UNPERTURBED or sev == 0:
                parts.append(roc_points(grp[grp["severity"] == sev], level=level))
    return pd.concat(parts, ignore_index=True) if parts else pd.DataFrame()


def write_report(
    scores: pd.DataFrame | str | Path,
    out_dir: str | Path,
    *,
    target: str = "malignant",
    n_resamples: int = DEFAULT_RESAMPLES,
    seed: int = 0,
    figures: bool = True,
) -> Report:
    """Compute AUCs (image and breast level), curves and Table 1, and write them to ``out_dir``.

    Files: ``auc.csv`` (model, weights, perturbation, severity, parameter, seed, level, auc, ci_low,
    ci_high, n_pos, n_neg), ``auc_vs_severity.csv`` (curves per weights family), ``table1.csv``, and per
    level ``auc_vs_severity_<level>.html``/``.png`` and ``roc_<level>.html``/``.png``.
    """
    t0 = time.perf_counter()
    if isinstance(scores, (str, Path)):
        scores = read_scores(scores, target=target)
    else:
        scores = validate_scores(scores, target=target)
    out = Path(out_dir)
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise MetricsError(f"{out}: cannot create the report folder ({exc})") from exc
    rep = Report(out_dir=out)
    rep.auc = auc_table(scores, target=target, n_resamples=n_resamples, seed=seed)
    rep.curves = auc_vs_severity(rep.auc)
    rep.table1 = table1(scores, rep.auc, target=target)
    for name, frame in (
        ("auc.csv", rep.auc),
        ("auc_vs_severity.csv", rep.curves),
        ("table1.csv", rep.table1),
    ):
        frame.to_csv(out / name, index=False, float_format="%.6g")
        rep.files.append(out / name)
    if figures:
        for level, curves in rep.curves.groupby("level"):
            title = (
                f"{target} AUC versus severity, {level} level "
                "(band: 95% bootstrap CI of one weights; min-max over seeds/readers of a family)"
            )
            fig = auc_vs_severity_figure(curves, title=title)
            rep.files.append(write_html(fig, out / f"auc_vs_severity_{level}.html"))
            rep.png_renderer = write_png(
                fig, out / f"auc_vs_severity_{level}.png", kind="curves", data=curves, title=title
            )
            roc = _roc_selection(scores, level)
            if not roc.empty:
                title = f"ROC curves, {level} level"
                fig = roc_figure(roc, title=title)
                rep.files.append(write_html(fig, out / f"roc_{level}.html"))
                write_png(fig, out / f"roc_{level}.png", kind="roc", data=roc, title=title)
        rep.files += sorted(out.glob("*.png"))
    rep.seconds = time.perf_counter() - t0
    return rep
