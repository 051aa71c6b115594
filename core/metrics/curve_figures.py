"""Figures of AUC against each perturbation's parameter (:func:`core.metrics.curves.auc_vs_parameter`):
one panel per perturbation, in its own units, like the study's Figure 2.

Marks: a line per series with its band (light, optional); the matched-noise baseline dashed with square
markers at the parameter it matches; the unperturbed AUC as a dotted level; open markers where a point
rests on fewer than 30 positives or negatives or has an interval wider than 0.2; on the filter panels a
vertical line at the model input's Nyquist frequency, above which nothing reaches the model. Checkpoints of
one training run are coloured along their epochs.

:func:`parameter_figure` draws with plotly (the page, HTML); :func:`parameter_png` redraws the same with
matplotlib for reports without kaleido.
"""

from __future__ import annotations

import textwrap
from pathlib import Path

import numpy as np
import pandas as pd

from core.metrics.curves import panel_order
from core.metrics.parameters import axis_for

_COLORS = ("#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f", "#17becf")
BAND_ALPHA = 0.08
KEY = (
    "solid: perturbation; band: 95% CI (one weights) or min-max (family); dashed squares: matched noise at "
    "the parameter it matches (σ: its std, model units); dotted: unperturbed; open markers: n_pos or n_neg "
    "< 30 or CI wider than 0.2; grey dashed: model input Nyquist frequency"
)
NYQUIST_NOTE = (
    "Dashed grey line: the Nyquist frequency of the model's input (1 / (2 x its pixel spacing)). The "
    "model never sees frequencies above it, so a low-pass above it changes nothing the model sees and a "
    "high-pass above it leaves nothing: there the curve measures the model's resolution, not its robustness."
)


def _viridis(t: float) -> str:
    """A colour along a dark-to-light ramp (approximate viridis), ``t`` in 0..1."""
    stops = np.array([[68, 1, 84], [59, 82, 139], [33, 145, 140], [94, 201, 98], [253, 231, 37]], float)
    pos = np.clip(t, 0, 1) * (len(stops) - 1)
    i = min(int(pos), len(stops) - 2)
    rgb = stops[i] + (pos - i) * (stops[i + 1] - stops[i])
    return "#{:02x}{:02x}{:02x}".format(*(int(round(v)) for v in rgb))


def series_colors(curves: pd.DataFrame) -> dict[str, str]:
    """A stable colour per series; checkpoints of one run along a ramp by epoch. A run with one checkpoint
    in the figure gets a colour of its own like any other series (two runs compared at the same epoch must
    not share the ramp's first colour)."""
    colors: dict[str, str] = {}
    epochs = curves.dropna(subset=["epoch"]).drop_duplicates("series")
    for _, grp in epochs.groupby(epochs["weights"].str.replace(r"[-_]epoch.*$", "", regex=True)):
        lo, hi = grp["epoch"].min(), grp["epoch"].max()
        if len(grp) < 2 or hi <= lo:
            continue
        for s, e in zip(grp["series"], grp["epoch"], strict=True):
            colors[s] = _viridis(0.85 * (e - lo) / (hi - lo))
    others = [s for s in dict.fromkeys(curves["series"]) if s not in colors]
    colors.update({s: _COLORS[i % len(_COLORS)] for i, s in enumerate(others)})
    return colors


def _rgba(col: str, alpha: float) -> str:
    return "rgba({},{},{},{})".format(*(int(col[i : i + 2], 16) for i in (1, 3, 5)), alpha)


def _hover(r) -> str:
    axis = axis_for(r.panel)
    if r.kind == "unperturbed":
        head = "unperturbed"
    elif r.kind == "matched":
        std = (
            f"noise std {r.matched_std:.4g} model units"
            if r.matched_std == r.matched_std
            else "noise std unknown"
        )
        head = f"matched noise for {axis.format(r.x)}: {std} (L2 norm {r.matched_norm:.4g})"
    else:
        head = axis.format(r.x)
    band = f" [{r.band_low:.3f}, {r.band_high:.3f}] {r.band}" if r.band else ""
    lines = [r.series, head, f"AUC {r.auc:.3f}{band}", f"n_pos {r.n_pos}, n_neg {r.n_neg}"]
    lines += [f"⚠ {r.flag}"] if r.flag else []
    lines += [r.note] if r.note else []
    return "<br>".join(lines)


def panels_of(curves: pd.DataFrame) -> list[str]:
    return [p for p in panel_order(curves["panel"]) if p != "none"]


def nyquist_lines(curves: pd.DataFrame, panel: str) -> list[tuple[float, str]]:
    """``(nyquist cycles/mm, where the spacing comes from)`` to mark on a frequency panel."""
    if not axis_for(panel).frequency:
        return []
    sub = curves[(curves["panel"] == panel)].dropna(subset=["nyquist_mm"])
    return [(float(n), str(g["input_source"].iloc[0])) for n, g in sub.groupby("nyquist_mm")]


def _x_range(sub: pd.DataFrame, panel: str, curves: pd.DataFrame) -> tuple[float, float]:
    xs = sub["x"].dropna().to_numpy(float)
    xs = np.concatenate([xs, [n for n, _ in nyquist_lines(curves, panel)]])
    if xs.size == 0:
        return 0.0, 1.0
    return float(xs.min()), float(xs.max())


def _plotly_series(go, grp: pd.DataFrame, col: str, first: bool, bands: bool, x_span) -> list:
    """The traces of one series in one panel: band, perturbation line, matched baseline, unperturbed level."""
    series = grp["series"].iloc[0]
    common = {"legendgroup": series, "hovertemplate": "%{text}<extra></extra>"}
    traces = []
    pts = grp[grp["kind"] == "perturbation"].sort_values("x")
    band = pts.dropna(subset=["band_low", "band_high"])
    if bands and len(band):
        traces.append(go.Scatter(
            x=np.concatenate([band["x"], band["x"][::-1]]),
            y=np.concatenate([band["band_high"], band["band_low"][::-1]]),
            mode="lines", fill="toself", fillcolor=_rgba(col, BAND_ALPHA), line={"width": 0},
            hoverinfo="skip", showlegend=False, legendgroup=series,
        ))  # fmt: skip
    traces.append(go.Scatter(
        x=pts["x"], y=pts["auc"], mode="lines+markers", name=series, showlegend=first,
        line={"color": col, "width": 2},
        marker={"color": np.where(pts["flag"] != "", "white", col), "size": 8,
                "line": {"color": col, "width": 2}},
        text=[_hover(r) for r in pts.itertuples()], **common,
    ))  # fmt: skip
    m = grp[grp["kind"] == "matched"].dropna(subset=["x"]).sort_values("x")
    if len(m):
        traces.append(go.Scatter(
            x=m["x"], y=m["auc"], mode="lines+markers+text", textposition="bottom center",
            textfont={"size": 9, "color": col},
            texttemplate=[f"σ {v:.3g}" if v == v else "" for v in m["matched_std"]],
            name=f"{series} · matched noise", showlegend=False,
            line={"color": col, "dash": "dash", "width": 1},
            marker={"symbol": "square", "size": 7, "color": np.where(m["flag"] != "", "white", col),
                    "line": {"color": col, "width": 1.5}},
            text=[_hover(r) for r in m.itertuples()], **common,
        ))  # fmt: skip
    u = grp[grp["kind"] == "unperturbed"]
    if len(u):
        traces.append(go.Scatter(
            x=list(x_span), y=[u["auc"].iloc[0]] * 2, mode="lines",
            line={"color": col, "dash": "dot", "width": 1},
            showlegend=False, text=[_hover(next(u.itertuples()))] * 2, **common,
        ))  # fmt: skip
    return traces


def _plotly_nyquist(go, curves: pd.DataFrame, panel: str, y_span) -> list:
    """Vertical Nyquist lines of a filter panel, as traces (shapes take log10 units on log axes)."""
    return [
        go.Scatter(
            x=[nyq, nyq], y=list(y_span), mode="lines+text",
            line={"color": "grey", "dash": "dash", "width": 1},
            text=["", f"model Nyquist {nyq:.3g}"], textposition="bottom left",
            textfont={"size": 10, "color": "grey"},
            hovertext=f"model input Nyquist {nyq:.3g} cycles/mm ({source}): nothing above it reaches "
            "the model",
            hoverinfo="text", showlegend=False,
        )
        for nyq, source in nyquist_lines(curves, panel)
    ]  # fmt: skip


def parameter_figure(curves: pd.DataFrame, *, title: str = "AUC versus parameter", bands: bool = True):
    """Plotly figure: a panel per perturbation, a line per series; see the module docstring."""
    import plotly.graph_objects as go
    from plotly.subplots import make_subplots

    panels = panels_of(curves)
    n = max(1, len(panels))
    titles = [axis_for(p).title for p in panels] or [""]
    fig = make_subplots(rows=1, cols=n, subplot_titles=titles, shared_yaxes=True, horizontal_spacing=0.06)
    colors = series_colors(curves)
    shown = set()
    values = pd.concat([curves["auc"], curves["band_low"], curves["band_high"]]).dropna()
    y_span = (float(values.min()), float(values.max())) if len(values) else (0.5, 1.0)
    for c, panel in enumerate(panels, start=1):
        sub = curves[curves["panel"] == panel]
        x_span = _x_range(sub, panel, curves)
        for series, grp in sub.groupby("series", sort=False):
            for trace in _plotly_series(go, grp, colors[series], series not in shown, bands, x_span):
                fig.add_trace(trace, row=1, col=c)
            shown.add(series)
        for trace in _plotly_nyquist(go, curves, panel, y_span):
            fig.add_trace(trace, row=1, col=c)
        axis = axis_for(panel)
        ticks = sorted(set(sub["x"].dropna()))
        fig.update_xaxes(title_text=axis.label, type="log" if axis.log else "linear", tickvals=ticks,
                         ticktext=[f"{t:g}" for t in ticks], row=1, col=c)  # fmt: skip
    fig.update_yaxes(title_text="AUC", row=1, col=1)
    fig.add_hline(y=0.5, line_dash="dot", line_color="lightgrey")
    # The legend goes under the axes, one row per series (long labels), so the figure grows with them.
    rows = curves["series"].nunique()
    plot_px = 340
    fig.update_layout(
        title=title,
        template="plotly_white",
        height=plot_px + 170 + 21 * rows,
        width=max(560, 430 * n),
        legend={"orientation": "v", "yanchor": "top", "y": -70 / plot_px, "x": 0},
        margin={"t": 80, "b": 60 + 21 * rows},
    )
    return fig


def _png_series(ax, grp: pd.DataFrame, col: str, bands: bool, x_span) -> None:
    """One series in one matplotlib panel (the marks of :func:`_plotly_series`)."""
    series = grp["series"].iloc[0]
    pts = grp[grp["kind"] == "perturbation"].sort_values("x")
    if bands:
        ax.fill_between(pts["x"], pts["band_low"], pts["band_high"], color=col, alpha=BAND_ALPHA, lw=0)
    ax.plot(pts["x"], pts["auc"], "-", color=col, lw=1.6, label=series)
    flagged = pts["flag"] != ""
    ax.scatter(pts["x"][~flagged], pts["auc"][~flagged], color=col, s=18, zorder=3)
    ax.scatter(pts["x"][flagged], pts["auc"][flagged], facecolor="white", edgecolor=col, s=24, zorder=3)
    m = grp[grp["kind"] == "matched"].dropna(subset=["x"]).sort_values("x")
    if len(m):
        ax.plot(m["x"], m["auc"], "s--", color=col, lw=0.9, ms=4, mfc="white")
        for r in m[m["matched_std"].notna()].itertuples():
            ax.annotate(f"σ {r.matched_std:.3g}", (r.x, r.auc), textcoords="offset points", xytext=(0, -9),
                        ha="center", fontsize=6, color=col)  # fmt: skip
    u = grp[grp["kind"] == "unperturbed"]
    if len(u):
        ax.plot(list(x_span), [u["auc"].iloc[0]] * 2, ":", color=col, lw=1)


def _png_axes(ax, curves: pd.DataFrame, panel: str) -> None:
    """Nyquist lines, scale, ticks and titles of one matplotlib panel."""
    axis = axis_for(panel)
    for nyq, _ in nyquist_lines(curves, panel):
        ax.axvline(nyq, color="grey", ls="--", lw=1)
        # beside the line at the foot of the panel: clear of the curves' markers at the grid radii
        ax.annotate(f"model Nyquist {nyq:.3g}", (nyq, 0.0), xycoords=("data", "axes fraction"),
                    xytext=(3, 3), textcoords="offset points", ha="left", va="bottom", fontsize=7,
                    color="grey")  # fmt: skip
    if axis.log:
        ax.set_xscale("log")
    ticks = sorted(set(curves.loc[curves["panel"] == panel, "x"].dropna()))
    ax.set_xticks(ticks, [f"{t:g}" for t in ticks], fontsize=7)
    ax.minorticks_off()
    ax.set_xlabel(axis.label, fontsize=8)
    ax.set_title(axis.title, fontsize=10)
    ax.axhline(0.5, color="lightgrey", ls=":", lw=1)
    ax.grid(alpha=0.25)


def parameter_png(curves: pd.DataFrame, path: str | Path, *, title: str = "", bands: bool = True) -> Path:
    """The same figure with matplotlib (Agg), written to ``path``."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    panels = panels_of(curves)
    n = max(1, len(panels))
    width = max(8.0, 4.6 * n)
    ncol = max(1, int(width // 3.4))
    legend_rows = -(-curves["series"].nunique() // ncol)
    height = 4.4 + 0.2 * legend_rows
    fig, axes = plt.subplots(1, n, figsize=(width, height), sharey=True, squeeze=False)
    colors = series_colors(curves)
    for ax, panel in zip(axes[0], panels, strict=False):
        sub = curves[curves["panel"] == panel]
        x_span = _x_range(sub, panel, curves)
        for series, grp in sub.groupby("series", sort=False):
            _png_series(ax, grp, colors[series], bands, x_span)
        _png_axes(ax, curves, panel)
    axes[0, 0].set_ylabel("AUC")
    handles, labels = [], []
    for ax in axes[0]:
        for h, lab in zip(*ax.get_legend_handles_labels(), strict=True):
            if lab not in labels:
                handles.append(h)
                labels.append(lab)
    bottom = 0.3 + 0.2 * legend_rows  # inches below the axes: legend rows and the key
    anchor = (0.5, 0.25 / height)
    fig.legend(handles, labels, loc="lower center", bbox_to_anchor=anchor, ncol=ncol, fontsize=7, frameon=0)
    fig.text(0.01, 0.04 / height, textwrap.fill(KEY, int(18 * width)), fontsize=6, color="dimgrey")
    fig.suptitle(textwrap.fill(title, int(13 * width)), fontsize=9)  # ~13 characters of 9-point text an inch
    fig.tight_layout(rect=(0, bottom / height, 1, 1))
    path = Path(path)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
