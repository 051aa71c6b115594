"""Files of :mod:`core.metrics.distributions` (:func:`write_distributions`, ``mammo-robust
distributions``): the tables as CSV and a figure with one panel per condition, the scores of the other
cases and of the positive cases side by side (box of the quartiles, every case as a jittered point,
coloured by subgroup when there are subgroups), with the condition's AUC and interval in the panel's
title.

Drawn with matplotlib (Agg), like the report's PNG figures.
"""

from __future__ import annotations

import math
import textwrap
from pathlib import Path

import numpy as np
import pandas as pd

from core.errors import MetricsError
from core.metrics.auc import DEFAULT_RESAMPLES
from core.metrics.distributions import (
    OTHER,
    case_scores,
    class_distributions,
    condition_label,
    condition_order,
)
from core.metrics.parameters import base_perturbation, is_matched
from core.metrics.scores import CONDITION_COLUMNS

_GROUP_COLORS = {OTHER: "#4c72b0"}
_POSITIVE_COLOR = "#c44e52"
_SUBGROUP_COLORS = ("#c44e52", "#8172b2", "#dd8452", "#937860", "#da8bc3", "#8c8c8c", "#64b5cd", "#55a868")
_NEUTRAL = {"no finding": "#9db4d6", "benign finding only": "#55a868"}
SCALES = ("auto", "linear", "logit")
_LOGIT_TICKS = (0.001, 0.003, 0.01, 0.03, 0.1, 0.2, 0.3, 0.5, 0.7, 0.8, 0.9, 0.97, 0.99, 0.997, 0.999)


def choose_scale(scores: np.ndarray, scale: str = "auto") -> str:
    """``"logit"`` for probabilities strictly inside (0, 1) that reach below 0.02 or above 0.98 (where a
    linear axis squeezes most cases into a line), else ``"linear"``; an explicit choice is kept."""
    if scale not in SCALES:
        raise MetricsError(f"unknown scale {scale!r} (use one of {SCALES})")
    if scale != "auto":
        return scale
    s = np.asarray(scores, dtype=np.float64)
    inside = s.size and (s > 0).all() and (s < 1).all()
    return "logit" if inside and (s.min() < 0.02 or s.max() > 0.98) else "linear"


def subgroup_colors(names) -> dict[str, str]:
    """A fixed colour per subgroup name: positives in warm colours, "no finding" and "benign finding only"
    in blue and green."""
    out, i = {}, 0
    for name in sorted(set(names)):
        tail = name.split(": ", 1)[-1]
        if tail in _NEUTRAL:
            out[name] = _NEUTRAL[tail]
        else:
            out[name] = _SUBGROUP_COLORS[i % len(_SUBGROUP_COLORS)]
            i += 1
    return out


def _title(cond, table: pd.DataFrame, target: str) -> str:
    sel = table[(table["model"] == cond.model) & (table["weights"] == cond.weights)]
    matched_parameter = None
    if is_matched(cond.perturbation):  # name it by what it matches: "matched noise for R = 2 cycles/mm"
        base = sel[
            (sel["perturbation"] == base_perturbation(cond.perturbation)) & (sel["severity"] == cond.severity)
        ]
        matched_parameter = float(base["parameter"].iloc[0]) if len(base) else None
    head = condition_label(cond.perturbation, cond.parameter, cond.severity, matched_parameter)
    for col, val in zip(CONDITION_COLUMNS, cond, strict=True):
        sel = sel[sel[col] == val]
    row = sel[sel["group"] == target]
    if row.empty or not np.isfinite(row["auc_vs_other"].iloc[0]):
        return textwrap.fill(head, 36)
    r = row.iloc[0]
    ci = f" [{r.ci_low:.2f}, {r.ci_high:.2f}]" if np.isfinite(r.ci_low) else ""
    return f"{textwrap.fill(head, 36)}\nAUC {r.auc_vs_other:.2f}{ci}"


def _score_axis(ax, scale: str, scores: np.ndarray) -> None:
    """Linear or logit axis with plain probability ticks (matplotlib's logit ticks read 1 - 10^-1)."""
    from matplotlib.ticker import FixedLocator, FuncFormatter, NullLocator

    ax.set_yscale(scale)
    if scale != "logit":
        return
    lo, hi = float(np.min(scores)), float(np.max(scores))
    ticks = [t for t in _LOGIT_TICKS if lo / 1.5 <= t <= 1 - (1 - hi) / 1.5]
    ax.yaxis.set_major_locator(FixedLocator(ticks))
    ax.yaxis.set_minor_locator(NullLocator())
    ax.yaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:g}"))
    ax.set_ylim(lo / 1.3, 1 - (1 - hi) / 1.3)


def _panel(ax, grp: pd.DataFrame, target: str, colors: dict[str, str], rng) -> None:
    for x, name in enumerate((OTHER, target)):
        part = grp[grp["group"] == name]
        if part.empty:
            continue
        vals = part["score"].to_numpy(np.float64)
        ax.boxplot(
            [vals], positions=[x], widths=0.55, showfliers=False, patch_artist=True,
            boxprops={"facecolor": "none", "edgecolor": "#333333"},
            medianprops={"color": "#111111", "lw": 1.6},
            whiskerprops={"color": "#555555"}, capprops={"color": "#555555"},
        )  # fmt: skip
        jitter = rng.uniform(-0.22, 0.22, vals.size)
        if (part["subgroup"] != "").any():
            cols = [colors[f"{name}: {s}"] for s in part["subgroup"]]
        else:
            cols = _GROUP_COLORS.get(name, _POSITIVE_COLOR)
        ax.scatter(x + jitter, vals, s=9 if name == OTHER else 16, c=cols, alpha=0.75, lw=0, zorder=3)
    n = {g: int((grp["group"] == g).sum()) for g in (OTHER, target)}
    ax.set_xticks([0, 1], [f"{OTHER}\n(n={n[OTHER]})", f"{target}\n(n={n[target]})"], fontsize=7)
    ax.set_xlim(-0.6, 1.6)
    ax.grid(axis="y", alpha=0.3)
    ax.tick_params(axis="y", labelsize=7)


def distribution_png(
    cases: pd.DataFrame,
    table: pd.DataFrame,
    path: str | Path,
    *,
    target: str = "malignant",
    title: str = "",
    scale: str = "auto",
    ncols: int = 4,
) -> Path:
    """Write the figure to ``path`` (PNG) and return the path.

    Parameters
    ----------
    cases : DataFrame
        :func:`core.metrics.distributions.case_scores` (the conditions of ``table`` are drawn).
    table : DataFrame
        :func:`core.metrics.distributions.class_distributions` of the same scores (titles: AUC, interval).
    scale : {"auto", "linear", "logit"}
        The score axis (:func:`choose_scale`); shared by all panels.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    conds = condition_order(table)
    if not conds:
        raise MetricsError("no condition to draw")
    keep = pd.MultiIndex.from_frame(table[list(CONDITION_COLUMNS)].drop_duplicates())
    cases = cases[pd.MultiIndex.from_frame(cases[list(CONDITION_COLUMNS)]).isin(keep)]
    yscale = choose_scale(cases["score"].to_numpy(), scale)
    colors = subgroup_colors(f"{g}: {s}" for g, s in zip(cases["group"], cases["subgroup"], strict=True))
    ncols = max(1, min(ncols, len(conds)))
    nrows = math.ceil(len(conds) / ncols)
    fig, axes = plt.subplots(nrows, ncols, figsize=(2.9 * ncols, 3.3 * nrows), sharey=True, squeeze=False)
    rng = np.random.default_rng(0)
    by_cond = {tuple(k): g for k, g in cases.groupby(list(CONDITION_COLUMNS), sort=False, dropna=False)}
    for ax, cond in zip(axes.ravel(), conds, strict=False):
        _panel(ax, by_cond[tuple(cond)], target, colors, rng)
        ax.set_title(_title(cond, table, target), fontsize=7.5)
        _score_axis(ax, yscale, cases["score"].to_numpy())
    for ax in axes.ravel()[len(conds) :]:
        ax.set_visible(False)
    for row in axes:
        row[0].set_ylabel(f"{target} score (probability)", fontsize=8)
    if (cases["subgroup"] != "").any():
        handles = [
            plt.Line2D([], [], marker="o", ls="", color=c, label=n.replace(": ", " · "))
            for n, c in colors.items()
        ]
        fig.legend(handles=handles, loc="lower center", ncol=min(4, len(handles)), fontsize=7, frameon=False)
    if title:
        fig.suptitle(textwrap.fill(title, 40 * ncols), fontsize=9)
    legend_space = 0.55 / fig.get_size_inches()[1] if (cases["subgroup"] != "").any() else 0.0
    fig.tight_layout(rect=(0, legend_space, 1, 1))
    path = Path(path)
    fig.savefig(path, dpi=90)
    plt.close(fig)
    return path


def write_distributions(
    scores: pd.DataFrame,
    out_dir: str | Path,
    *,
    level: str = "breast",
    target: str = "malignant",
    subgroups: pd.DataFrame | None = None,
    conditions=None,
    n_resamples: int = DEFAULT_RESAMPLES,
    seed: int = 0,
    scale: str = "auto",
    label: str = "",
) -> tuple[pd.DataFrame, list[Path]]:
    """Write ``distributions_<level>.csv`` (:func:`~core.metrics.distributions.class_distributions`),
    ``cases_<level>.csv`` (:func:`~core.metrics.distributions.case_scores` of the same conditions) and
    ``distributions_<level>.png`` (:func:`distribution_png`) to ``out_dir`` (created).

    Returns
    -------
    (table, files): the distributions table and the paths written.
    """
    out = Path(out_dir)
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise MetricsError(f"{out}: cannot create the output folder ({exc})") from exc
    table = class_distributions(
        scores, level=level, target=target, subgroups=subgroups, conditions=conditions,
        n_resamples=n_resamples, seed=seed,
    )  # fmt: skip
    cases = case_scores(scores, level=level, target=target, subgroups=subgroups)
    keep = table[list(CONDITION_COLUMNS)].drop_duplicates()
    cases = cases.merge(keep, on=list(CONDITION_COLUMNS))
    files = [out / f"distributions_{level}.csv", out / f"cases_{level}.csv"]
    table.to_csv(files[0], index=False, float_format="%.6g")
    cases.to_csv(files[1], index=False, float_format="%.6g")
    title = f"{label + ': ' if label else ''}{target} scores per condition, {level} level"
    files.append(
        distribution_png(
            cases, table, out / f"distributions_{level}.png", target=target, title=title, scale=scale
        )
    )
    return table, files
