"""``mammo-robust report``: every table and figure of a scores table, or a comparison of several, written
to a folder."""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from core.errors import MetricsError
from core.metrics.auc import DEFAULT_RESAMPLES
from core.metrics.compare import Comparison, compare_runs
from core.metrics.context import ScoreContext
from core.metrics.curve_figures import NYQUIST_NOTE, parameter_figure, parameter_png
from core.metrics.curves import auc_vs_parameter
from core.metrics.figures import roc_figure, write_html, write_png
from core.metrics.flags import small_sample_warning
from core.metrics.scores import UNPERTURBED, read_scores, validate_scores
from core.metrics.study_table import table1_cells
from core.metrics.table1_format import table1_latex, table1_layout
from core.metrics.tables import auc_table, auc_vs_severity, roc_points


@dataclass
class Report:
    """What :func:`write_report` produced."""

    out_dir: Path
    files: list[Path] = field(default_factory=list)
    png_renderer: str | None = None
    seconds: float = 0.0
    auc: pd.DataFrame | None = None
    curves: pd.DataFrame | None = None  # AUC versus severity index (auc_vs_severity), kept for old readers
    parameter_curves: pd.DataFrame | None = None  # AUC versus each perturbation's parameter
    table1: pd.DataFrame | None = None  # the study's layout (table1_layout)
    table1_cells: pd.DataFrame | None = None
    warnings: list[str] = field(default_factory=list)
    comparison: Comparison | None = None


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


def _folder(out_dir: str | Path) -> Path:
    out = Path(out_dir)
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise MetricsError(f"{out}: cannot create the report folder ({exc})") from exc
    return out


def curve_notes(curves: pd.DataFrame) -> list[str]:
    """Sentences that go with a parameter figure: Nyquist lines, baselines at 0.5, unknown noise std."""
    from core.metrics.parameters import axis_for

    notes = []
    for panel in dict.fromkeys(curves["panel"]):
        axis = axis_for(panel)
        if axis.note:
            notes.append(f"{axis.title}: the x axis is {axis.label}; {axis.note}.")
    nyq = curves.dropna(subset=["nyquist_mm"])
    if len(nyq) and nyq["panel"].isin(["lowpass", "highpass"]).any():
        where = "; ".join(
            f"{n:.3g} cycles/mm: {s}" for n, s in nyq.groupby("nyquist_mm")["input_source"].first().items()
        )
        notes.append(f"{NYQUIST_NOTE} ({where}.)")
    matched = curves[curves["kind"] == "matched"]
    if len(matched) and matched["matched_std"].isna().any():
        notes.append(
            "Matched baselines are drawn at the parameter of the perturbation they match; their noise std is "
            "not known where the image size is not (it is the L2 norm / sqrt(pixels))."
        )
    near_half = (curves["auc"] - 0.5).abs() < 0.05
    for r in curves[(curves["note"] != "") & (curves["kind"] != "unperturbed") & near_half].itertuples():
        notes.append(f"{r.series}, {r.perturbation} at {r.x:g}: AUC {r.auc:.2f}, {r.note}.")
    return notes


def _figures(rep: Report, scores: pd.DataFrame, target: str, label: str) -> None:
    out = rep.out_dir
    for level, curves in rep.parameter_curves.groupby("level"):
        prefix = f"{label}: " if label else ""
        title = f"{prefix}{target} AUC against each perturbation's parameter, {level} level"
        rep.files.append(
            write_html(parameter_figure(curves, title=title), out / f"auc_vs_parameter_{level}.html")
        )
        rep.files.append(parameter_png(curves, out / f"auc_vs_parameter_{level}.png", title=title))
        ckpt = curves.dropna(subset=["epoch"])
        if ckpt["series"].nunique() >= 2:
            title = f"{target} AUC per training checkpoint, {level} level (colour: epoch)"
            rep.files.append(
                write_html(parameter_figure(ckpt, title=title), out / f"checkpoints_{level}.html")
            )
            rep.files.append(parameter_png(ckpt, out / f"checkpoints_{level}.png", title=title))
        roc = _roc_selection(scores, level)
        if not roc.empty:
            title = f"ROC curves, {level} level"
            fig = roc_figure(roc, title=title)
            rep.files.append(write_html(fig, out / f"roc_{level}.html"))
            rep.png_renderer = write_png(fig, out / f"roc_{level}.png", kind="roc", data=roc, title=title)
            if (out / f"roc_{level}.png").is_file():
                rep.files.append(out / f"roc_{level}.png")


def write_report(
    scores: pd.DataFrame | str | Path,
    out_dir: str | Path,
    *,
    target: str = "malignant",
    n_resamples: int = DEFAULT_RESAMPLES,
    seed: int = 0,
    figures: bool = True,
    context: ScoreContext | None = None,
    group: str = "family",
    table1_parameters: Mapping[str, float] | None = None,
) -> Report:
    """Compute AUCs (image and breast level), curves and Table 1, and write them to ``out_dir``.

    Files: ``auc.csv`` (model, weights, perturbation, severity, parameter, seed, level, auc, ci_low,
    ci_high, n_pos, n_neg, note, flag); ``auc_vs_parameter.csv`` (curves against each perturbation's
    parameter, :func:`core.metrics.curves.auc_vs_parameter`) and ``auc_vs_severity.csv`` (by severity
    index); ``table1.csv`` and ``table1.tex`` (the study's layout, breast level, families pooled),
    ``table1_cells.csv`` (its numbers per weights, p-values included); ``summary.md`` (warnings and
    notes); figures ``auc_vs_parameter_<level>.html``/``.png``, ``roc_<level>.html``/``.png`` and, for
    checkpoint series (``<run>-epoch<N>``), ``checkpoints_<level>.html``/``.png``.
    """
    t0 = time.perf_counter()
    scores = (
        read_scores(scores, target=target)
        if isinstance(scores, (str, Path))
        else validate_scores(scores, target=target)
    )
    context = context or ScoreContext()
    rep = Report(out_dir=_folder(out_dir))
    rep.auc = auc_table(scores, target=target, n_resamples=n_resamples, seed=seed)
    rep.curves = auc_vs_severity(rep.auc)
    rep.parameter_curves = auc_vs_parameter(rep.auc, group=group, context=context)
    rep.table1_cells = table1_cells(
        scores, rep.auc, level="breast", target=target, parameters=table1_parameters
    )
    rep.table1 = table1_layout(rep.table1_cells, by_family=group == "family")
    frames = (
        ("auc.csv", rep.auc),
        ("auc_vs_severity.csv", rep.curves),
        ("auc_vs_parameter.csv", rep.parameter_curves),
        ("table1.csv", rep.table1),
        ("table1_cells.csv", rep.table1_cells),
    )
    for name, frame in frames:
        frame.to_csv(rep.out_dir / name, index=False, float_format="%.6g")
        rep.files.append(rep.out_dir / name)
    caption = f"{context.label}: " if context.label else ""
    tex = rep.out_dir / "table1.tex"
    tex.write_text(table1_latex(rep.table1, caption=f"{caption}Table 1, {target} AUC"))
    rep.files.append(tex)
    warning = small_sample_warning(rep.auc)
    rep.warnings = [warning] if warning else []
    if figures:
        _figures(rep, scores, target, context.label)
    summary = _summary(rep, context, target)
    (rep.out_dir / "summary.md").write_text(summary)
    rep.files.append(rep.out_dir / "summary.md")
    rep.seconds = time.perf_counter() - t0
    return rep


def _summary(rep: Report, context: ScoreContext, target: str) -> str:
    lines = [f"# Report{': ' + context.label if context.label else ''}", "", f"Target: {target}.", ""]
    if rep.warnings:
        lines += ["## Warnings", "", *[f"- {w}" for w in rep.warnings], ""]
    notes = curve_notes(rep.parameter_curves) if rep.parameter_curves is not None else []
    if notes:
        lines += ["## Curves", "", *[f"- {n}" for n in notes], ""]
    lines += [
        "## Table 1",
        "",
        rep.table1.to_markdown(index=False) if _has_tabulate() else rep.table1.to_string(index=False),
        "",
    ]
    lines += [f"- {n}" for n in rep.table1.attrs.get("footnotes", [])]
    return "\n".join(lines) + "\n"


def _has_tabulate() -> bool:
    import importlib.util

    return importlib.util.find_spec("tabulate") is not None


def write_comparison(
    tables: Mapping[str, pd.DataFrame | str | Path],
    out_dir: str | Path,
    *,
    reference: tuple[str, str, str] | None = None,
    level: str = "breast",
    group: str = "weights",
    target: str = "malignant",
    n_resamples: int = DEFAULT_RESAMPLES,
    seed: int = 0,
    contexts: Mapping[str, ScoreContext] | None = None,
    figures: bool = True,
) -> Report:
    """Several scores tables on one figure with paired DeLong tests per condition on their shared cases
    (:func:`core.metrics.compare.compare_runs`).

    Files: ``compare_auc.csv`` (AUCs with a ``source`` column), ``compare_curves.csv``,
    ``compare_tests.csv`` (reference, series, perturbation, parameter, seed, n_shared, n_pos, n_neg, AUCs,
    difference with its 95% interval, p) and ``compare_<level>.html``/``.png``.
    """
    t0 = time.perf_counter()
    loaded = {
        k: read_scores(v, target=target) if isinstance(v, (str, Path)) else v for k, v in tables.items()
    }
    rep = Report(out_dir=_folder(out_dir))
    comp = compare_runs(
        loaded,
        reference=reference,
        level=level,
        group=group,
        target=target,
        n_resamples=n_resamples,
        seed=seed,
        contexts=contexts,
    )
    rep.comparison, rep.auc, rep.parameter_curves = comp, comp.aucs, comp.curves
    for name, frame in (
        ("compare_auc.csv", comp.aucs),
        ("compare_curves.csv", comp.curves),
        ("compare_tests.csv", comp.tests),
    ):
        frame.to_csv(rep.out_dir / name, index=False, float_format="%.6g")
        rep.files.append(rep.out_dir / name)
    warning = small_sample_warning(comp.aucs)
    rep.warnings = [warning] if warning else []
    if figures and len(comp.curves):
        title = f"{target} AUC against each perturbation's parameter, {level} level: " + " vs ".join(loaded)
        rep.files.append(
            write_html(parameter_figure(comp.curves, title=title), rep.out_dir / f"compare_{level}.html")
        )
        rep.files.append(parameter_png(comp.curves, rep.out_dir / f"compare_{level}.png", title=title))
    rep.seconds = time.perf_counter() - t0
    return rep
