"""Table 1 in the study's layout: one row per model and weights (or family), one column per perturbation at
the study's parameter, cells "AUC (difference to the matched baseline)" with DeLong marks.

:func:`table1_cells` computes the numbers (one record per weights and column), :func:`table1_layout`
writes the cells (families of seeds or readers as mean ± sd [min-max]), :func:`table1_latex` the same as a
booktabs table. Paired tests use only the cases (breasts or images) scored under both conditions
(:func:`shared_delong`).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np
import pandas as pd

from core.metrics.auc import delong_test
from core.metrics.flags import sample_flag
from core.metrics.parameters import (
    TABLE1_COLUMNS,
    axis_for,
    is_unperturbed,
    natural_key,
    same_parameter,
    study_parameter,
)
from core.metrics.scores import MATCHED_PREFIX, UNPERTURBED, level_table
from core.metrics.table1_format import cell_text


@dataclass(frozen=True)
class Paired:
    """DeLong's paired test on the cases two conditions share (NaN where no test was possible)."""

    p_value: float
    n_shared: int
    n_pos: int
    n_neg: int
    auc_a: float = np.nan
    auc_b: float = np.nan
    difference: float = np.nan  # auc_a - auc_b
    ci_low: float = np.nan  # 95% interval of the difference
    ci_high: float = np.nan


def shared_delong(a: pd.DataFrame, b: pd.DataFrame) -> Paired:
    """DeLong's test of two conditions on the cases both scored.

    Parameters
    ----------
    a, b : DataFrame
        Columns ``score`` and ``label``, indexed by a unique case key (exam, laterality, view, image).

    Returns
    -------
    Paired
        ``p_value`` NaN when fewer than 2 positives or 2 negatives are shared; cases whose labels differ
        between the tables are left out.
    """
    common = a.index.intersection(b.index)
    a, b = a.loc[common], b.loc[common]
    same = a["label"].to_numpy() == b["label"].to_numpy()
    a, b = a[same], b[same]
    y = a["label"].to_numpy()
    n_pos = int(y.sum())
    n_neg = int(y.size - n_pos)
    if n_pos < 2 or n_neg < 2:
        return Paired(np.nan, int(y.size), n_pos, n_neg)
    r = delong_test(a["score"].to_numpy(), b["score"].to_numpy(), y)
    return Paired(r.p_value, int(y.size), n_pos, n_neg, r.auc_a, r.auc_b, r.difference, r.ci_low, r.ci_high)


def case_tables(scores: pd.DataFrame, level: str, target: str = "malignant") -> dict[tuple, pd.DataFrame]:
    """``(model, weights, perturbation, severity, seed)`` -> cases (score, label) indexed by case key."""
    frame = level_table(scores, level)
    key = frame["exam_id"] + "|" + frame["laterality"] + "|" + frame["view"] + "|" + frame["image_id"]
    frame = pd.DataFrame(
        {
            "score": frame[f"score_{target}"].to_numpy(np.float64),
            "label": frame[f"label_{target}"].to_numpy(np.int64),
            "model": frame["model"].to_numpy(),
            "weights": frame["weights"].to_numpy(),
            "perturbation": frame["perturbation"].to_numpy(),
            "severity": frame["severity"].to_numpy(),
            "seed": frame["seed"].to_numpy(),
        },
        index=key.to_numpy(),
    )
    keys = ["model", "weights", "perturbation", "severity", "seed"]
    return {k: g[["score", "label"]] for k, g in frame.groupby(keys, sort=False)}


def table1_columns(aucs: pd.DataFrame, parameters: Mapping[str, float] | None = None) -> list[dict]:
    """The columns of Table 1 this AUC table can fill: title, perturbation and parameter (or why not).

    ``parameters`` maps a column title (``"low-pass"``) or a perturbation name to the parameter to show
    instead of the study's. A perturbation without that parameter gives a column with ``missing`` set.
    """
    parameters = dict(parameters or {})
    present = set(aucs["perturbation"])
    cols = []
    for title, candidates in TABLE1_COLUMNS:
        pert = next((p for p in candidates if p in present), None)
        if pert is None:
            cols.append(
                dict(
                    title=title,
                    perturbation=candidates[0],
                    parameter=study_parameter(candidates[0]),
                    missing=f"no {title} condition in this table",
                )
            )
            continue
        axis = axis_for(pert)
        value = parameters.get(title, parameters.get(pert, study_parameter(pert)))
        have = sorted({float(v) for v in aucs.loc[aucs["perturbation"] == pert, "parameter"] if v == v})
        col = dict(title=title, perturbation=pert, parameter=value, missing="")
        if value is None or not any(same_parameter(value, h) for h in have):
            want = "no parameter chosen" if value is None else f"no {axis.format(value)}"
            col["missing"] = f"{title}: {want} (this table has {', '.join(f'{h:g}' for h in have)})"
        cols.append(col)
    return cols


def column_heading(col: Mapping) -> str:
    """``"low-pass R = 2 cycles/mm"``, ``"low-pass (Gaussian) label = 2"``, ``"shuffle grid 8 x 8"``."""
    axis = axis_for(col["perturbation"])
    head = "low-pass (Gaussian)" if col["perturbation"] == "lowpass-gaussian" else col["title"]
    if col.get("parameter") is None:
        return head
    return f"{head} {axis.format(col['parameter'])}"


def _pool(rows: pd.DataFrame) -> dict:
    """A condition of one weights pooled over its perturbation seeds."""
    one = len(rows) == 1
    return dict(
        auc=float(rows["auc"].mean()),
        ci_low=float(rows["ci_low"].iloc[0]) if one else np.nan,
        ci_high=float(rows["ci_high"].iloc[0]) if one else np.nan,
        n_pos=int(rows["n_pos"].min()),
        n_neg=int(rows["n_neg"].min()),
        n_seeds=len(rows),
        severity=rows["severity"].iloc[0],
        seeds=[int(s) for s in rows["seed"]],
        note=next((n for n in rows.get("note", pd.Series(dtype=str)).astype(str) if n), ""),
    )


def _test(cases: Mapping, model, weights, pert, sev, seeds, other: tuple | None) -> Paired:
    """DeLong per perturbation seed against ``other`` (perturbation, severity, seed or None); largest p."""
    if other is None:
        return Paired(np.nan, 0, 0, 0)
    results = []
    for seed in seeds:
        a = cases.get((model, weights, pert, sev, seed))
        o_seed = seed if other[2] is None else other[2]
        b = cases.get((model, weights, other[0], other[1], o_seed))
        if b is None and other[2] is None:
            b = next((v for k, v in cases.items() if k[:4] == (model, weights, other[0], other[1])), None)
        if a is not None and b is not None:
            results.append(shared_delong(a, b))
    if not results:
        return Paired(np.nan, 0, 0, 0)
    ps = [r.p_value for r in results]
    return Paired(
        float(np.nan if np.isnan(ps).all() else np.nanmax(ps)),
        min(r.n_shared for r in results),
        min(r.n_pos for r in results),
        min(r.n_neg for r in results),
    )


def _needed_rows(scores: pd.DataFrame, aucs: pd.DataFrame, cols: list[dict]) -> pd.DataFrame:
    """The score rows Table 1's tests read: unperturbed conditions, each column's condition and its
    matched baseline (so the case tables are built for a few conditions, not for every sweep step)."""
    keep = {
        (p, s) for p, s in zip(aucs["perturbation"], aucs["severity"], strict=True) if is_unperturbed(p, s)
    }
    for col in cols:
        if col["missing"]:
            continue
        rows = aucs[aucs["perturbation"] == col["perturbation"]]
        for sev in rows.loc[[same_parameter(col["parameter"], v) for v in rows["parameter"]], "severity"]:
            keep |= {(col["perturbation"], sev), (MATCHED_PREFIX + col["perturbation"], sev)}
    mask = pd.Series(
        list(zip(scores["perturbation"], scores["severity"], strict=True)), index=scores.index
    ).isin(keep)
    return scores[mask]


def _unperturbed(grp: pd.DataFrame) -> pd.DataFrame:
    """The unperturbed rows of one weights: ``"none"``, else severity 0 of the first perturbation."""
    un = grp[[is_unperturbed(p, s) for p, s in zip(grp["perturbation"], grp["severity"], strict=True)]]
    if (un["perturbation"] == UNPERTURBED).any():
        un = un[un["perturbation"] == UNPERTURBED]
    if un.empty:
        return un
    first = un.iloc[0]
    return un[(un["perturbation"] == first["perturbation"]) & (un["severity"] == first["severity"])]


def _column_record(grp: pd.DataFrame, col: Mapping, cases: Mapping, un_key: tuple | None) -> dict:
    """The numbers of one weights' cell in one column (``missing`` says why there are none)."""
    model, weights = grp["model"].iloc[0], grp["weights"].iloc[0]
    rec = {
        "column": col["title"],
        "heading": column_heading(col),
        "perturbation": col["perturbation"],
        "parameter": col["parameter"],
        "missing": col["missing"],
    }
    rows = grp[grp["perturbation"] == col["perturbation"]]
    if not col["missing"]:
        rows = rows[[same_parameter(col["parameter"], v) for v in rows["parameter"]]]
    if col["missing"] or rows.empty:
        rec["missing"] = rec["missing"] or f"{model} {weights}: not scored"
        return rec
    rec.update(_pool(rows))
    sev, pert = rec["severity"], col["perturbation"]
    t = _test(cases, model, weights, pert, sev, rec["seeds"], un_key)
    rec.update(p_unperturbed=t.p_value, n_shared_unperturbed=t.n_shared)
    matched = grp[(grp["perturbation"] == MATCHED_PREFIX + pert) & (grp["severity"] == sev)]
    if len(matched):
        rec["baseline_auc"] = float(matched["auc"].mean())
        t = _test(cases, model, weights, pert, sev, rec["seeds"], (MATCHED_PREFIX + pert, sev, None))
        rec.update(p_baseline=t.p_value, n_shared_baseline=t.n_shared)
    return rec


def table1_cells(
    scores: pd.DataFrame,
    aucs: pd.DataFrame,
    *,
    level: str = "breast",
    target: str = "malignant",
    parameters: Mapping[str, float] | None = None,
) -> pd.DataFrame:
    """Numbers of Table 1: one record per model, weights and column (``"unperturbed"`` and each of
    :func:`table1_columns`).

    Returns
    -------
    DataFrame with model, weights, column, heading, perturbation, severity, parameter, auc, ci_low, ci_high,
    n_pos, n_neg, flag, note, unperturbed_auc, diff_unperturbed, p_unperturbed, n_shared_unperturbed,
    baseline_auc, diff_baseline, p_baseline, n_shared_baseline, missing, level, cell (the text of the cell
    for this weights alone). p-values are DeLong's
    paired test on the shared cases; with several perturbation seeds, the largest p over the seeds.
    """
    a = aucs[aucs["level"] == level]
    cols = table1_columns(a, parameters)
    cases = case_tables(_needed_rows(scores, a, cols), level, target)
    out = []
    groups = sorted(
        a.groupby(["model", "weights"]), key=lambda kv: (natural_key(kv[0][0]), natural_key(kv[0][1]))
    )
    for (model, weights), grp in groups:
        base = dict(model=model, weights=weights)
        un = _unperturbed(grp)
        un_key, un_auc = None, np.nan
        rec = {**base, "column": "unperturbed", "heading": "unperturbed", "parameter": np.nan}
        if len(un):
            first = un.iloc[0]
            un_key = (first["perturbation"], first["severity"], None)
            rec.update(perturbation=first["perturbation"], missing="", **_pool(un))
            un_auc = rec["auc"]
        else:
            rec["missing"] = "no unperturbed condition"
        out.append(rec)
        for col in cols:
            out.append({**base, **_column_record(grp, col, cases, un_key), "unperturbed_auc": un_auc})
    table = pd.DataFrame(out)
    for c in (
        "auc",
        "ci_low",
        "ci_high",
        "unperturbed_auc",
        "baseline_auc",
        "p_unperturbed",
        "p_baseline",
        "n_shared_unperturbed",
        "n_shared_baseline",
        "n_pos",
        "n_neg",
        "severity",
        "note",
    ):
        if c not in table:
            table[c] = np.nan
    table["note"] = table["note"].fillna("").astype(str)
    table["diff_unperturbed"] = table["auc"] - table["unperturbed_auc"]
    table["diff_baseline"] = table["auc"] - table["baseline_auc"]
    table["flag"] = [
        sample_flag(p, n, lo, hi) if a == a else ""
        for p, n, lo, hi, a in zip(
            table["n_pos"], table["n_neg"], table["ci_low"], table["ci_high"], table["auc"], strict=True
        )
    ]
    table["level"] = level
    table["cell"] = [cell_text(table.iloc[[i]]) for i in range(len(table))]
    return table.drop(columns=["seeds", "n_seeds"], errors="ignore")
