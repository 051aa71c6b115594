"""Figures of the report: AUC versus severity with bands, and ROC curves.

Interactive figures are plotly (written to HTML next to one shared ``plotly.min.js``, so they work
offline). PNG copies come from kaleido when it is installed, else from matplotlib; :func:`write_png`
says which renderer it used.
"""

from __future__ import annotations

import textwrap
from pathlib import Path

import numpy as np
import pandas as pd

_COLORS = ("#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f", "#17becf")


def _series(curves: pd.DataFrame):
    """(model, label, frame) per curve, with a stable colour index per label."""
    labels = sorted({f"{w} · {p}" for w, p in zip(curves["weights"], curves["perturbation"], strict=True)})
    colour = {lab: _COLORS[i % len(_COLORS)] for i, lab in enumerate(labels)}
    for (model, weights, pert), grp in curves.groupby(["model", "weights", "perturbation"], sort=True):
        lab = f"{weights} · {pert}"
        yield model, lab, colour[lab], grp.sort_values("severity")


def _tick_text(curves: pd.DataFrame) -> tuple[list, list[str]]:
    """Severity ticks, with the parameter under each when every curve shares it (one perturbation)."""
    ticks, text = [], []
    for sev, grp in curves.groupby("severity", sort=True):
        params = grp["parameter"].dropna().unique()
        ticks.append(sev)
        text.append(f"{sev:g}<br>({params[0]:g})" if len(params) == 1 else f"{sev:g}")
    return ticks, text


def auc_vs_severity_figure(curves: pd.DataFrame, *, title: str = "AUC versus severity"):
    """Plotly figure, one panel per model; a line per weights family and perturbation, with its band.

    ``curves`` is the output of :func:`core.metrics.auc_vs_severity` for one level.
    """
    import plotly.graph_objects as go
    from plotly.subplots import make_subplots

    models = sorted(curves["model"].unique())
    fig = make_subplots(rows=1, cols=len(models), subplot_titles=models, shared_yaxes=True)
    shown = set()
    for model, lab, col, grp in _series(curves):
        c = models.index(model) + 1
        x = grp["severity"].to_numpy()
        rgba = "rgba({},{},{},0.15)".format(*(int(col[i : i + 2], 16) for i in (1, 3, 5)))
        band = grp.dropna(subset=["band_low", "band_high"])
        if len(band):
            fig.add_trace(
                go.Scatter(
                    x=np.concatenate([band["severity"], band["severity"][::-1]]),
                    y=np.concatenate([band["band_high"], band["band_low"][::-1]]),
                    mode="lines",
                    fill="toself",
                    fillcolor=rgba,
                    line={"width": 0},
                    hoverinfo="skip",
                    showlegend=False,
                    legendgroup=lab,
                ),
                row=1,
                col=c,
            )
        fig.add_trace(
            go.Scatter(
                x=x,
                y=grp["auc"],
                mode="lines+markers",
                name=lab,
                legendgroup=lab,
                line={"color": col},
                showlegend=lab not in shown,
                customdata=np.stack(
                    [grp["parameter"], grp["band_low"], grp["band_high"], grp["band"]], axis=1
                ),
                hovertemplate="severity %{x} (parameter %{customdata[0]})<br>AUC %{y:.3f}"
                "<br>band %{customdata[1]:.3f}..%{customdata[2]:.3f} (%{customdata[3]})<extra>"
                + lab
                + "</extra>",
            ),
            row=1,
            col=c,
        )
        shown.add(lab)
    ticks, text = _tick_text(curves)
    fig.update_xaxes(title_text="severity (parameter)", tickvals=ticks, ticktext=text, tickangle=0)
    fig.update_yaxes(title_text="AUC", row=1, col=1)
    fig.add_hline(y=0.5, line_dash="dot", line_color="grey")
    fig.update_layout(title=title, template="plotly_white", height=450, width=max(520, 480 * len(models)))
    return fig


def roc_figure(roc: pd.DataFrame, *, title: str = "ROC curves"):
    """Plotly figure of ROC points (output of :func:`core.metrics.roc_points`), one panel per model."""
    import plotly.graph_objects as go
    from plotly.subplots import make_subplots

    models = sorted(roc["model"].unique())
    fig = make_subplots(rows=1, cols=len(models), subplot_titles=models, shared_yaxes=True)
    keys = ["model", "weights", "perturbation", "severity", "seed"]
    for i, (key, grp) in enumerate(roc.groupby(keys, sort=True)):
        model, weights, pert, sev, seed = key
        fig.add_trace(
            go.Scatter(
                x=grp["fpr"],
                y=grp["tpr"],
                mode="lines",
                name=f"{model} {weights} {pert} s{sev}",
                line={"color": _COLORS[i % len(_COLORS)]},
            ),
            row=1,
            col=models.index(model) + 1,
        )
    fig.update_xaxes(title_text="false-positive rate", range=[0, 1])
    fig.update_yaxes(title_text="true-positive rate", range=[0, 1], row=1, col=1)
    fig.update_layout(title=title, template="plotly_white", height=450, width=max(520, 480 * len(models)))
    return fig


def write_html(fig, path: Path) -> Path:
    """Write a plotly figure to HTML that loads ``plotly.min.js`` from the same folder (works offline)."""
    path = Path(path)
    fig.write_html(path, include_plotlyjs="directory", full_html=True)
    return path


def _png_matplotlib_curves(curves: pd.DataFrame, path: Path, title: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    models = sorted(curves["model"].unique())
    fig, axes = plt.subplots(1, len(models), figsize=(5.2 * len(models), 4.4), sharey=True, squeeze=False)
    ticks, text = _tick_text(curves)
    for model, lab, col, grp in _series(curves):
        ax = axes[0, models.index(model)]
        ax.fill_between(grp["severity"], grp["band_low"], grp["band_high"], color=col, alpha=0.15, lw=0)
        ax.plot(grp["severity"], grp["auc"], "o-", color=col, label=lab, ms=3)
    for ax, model in zip(axes[0], models, strict=True):
        ax.set_title(model)
        ax.axhline(0.5, color="grey", ls=":", lw=1)
        ax.set_xticks(ticks, [t.replace("<br>", "\n") for t in text], fontsize=7)
        ax.set_xlabel("severity (parameter)")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7, loc="lower left")
    axes[0, 0].set_ylabel("AUC")
    fig.suptitle(textwrap.fill(title, 70 * len(models)), fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def _png_matplotlib_roc(roc: pd.DataFrame, path: Path, title: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    models = sorted(roc["model"].unique())
    fig, axes = plt.subplots(1, len(models), figsize=(4.6 * len(models), 4.4), sharey=True, squeeze=False)
    keys = ["model", "weights", "perturbation", "severity", "seed"]
    for i, (key, grp) in enumerate(roc.groupby(keys, sort=True)):
        model, weights, pert, sev, _ = key
        ax = axes[0, models.index(model)]
        ax.step(
            grp["fpr"],
            grp["tpr"],
            where="post",
            color=_COLORS[i % len(_COLORS)],
            label=f"{weights} {pert} s{sev}",
        )
    for ax, model in zip(axes[0], models, strict=True):
        ax.plot([0, 1], [0, 1], color="grey", ls=":", lw=1)
        ax.set_title(model)
        ax.set_xlabel("false-positive rate")
        ax.legend(fontsize=6, loc="lower right")
        ax.set_aspect("equal")
    axes[0, 0].set_ylabel("true-positive rate")
    fig.suptitle(title)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def png_renderer() -> str | None:
    """``"kaleido"``, ``"matplotlib"`` or None: what :func:`write_png` will use."""
    import importlib.util

    for name in ("kaleido", "matplotlib"):
        if importlib.util.find_spec(name) is not None:
            return name
    return None


def write_png(fig, path: Path, *, kind: str, data: pd.DataFrame, title: str) -> str | None:
    """Write a PNG of a report figure; returns the renderer used, or None when none is installed.

    kaleido renders the plotly figure itself; if it is missing or fails (it needs a Chrome), matplotlib
    redraws the same data (``kind`` "curves" or "roc").
    """
    renderer = png_renderer()
    if renderer == "kaleido":
        try:
            fig.write_image(path)
            return "kaleido"
        except Exception:  # kaleido present but cannot start a browser: fall back
            renderer = "matplotlib" if __import__("importlib").util.find_spec("matplotlib") else None
    if renderer == "matplotlib":
        (_png_matplotlib_curves if kind == "curves" else _png_matplotlib_roc)(data, Path(path), title)
        return "matplotlib"
    return None
