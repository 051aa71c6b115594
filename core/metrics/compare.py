"""Comparing runs: several scores tables (different weights, training regimes, checkpoints) on one figure,
with DeLong's paired test per condition on the cases they share (the study's Figure 4).

Each table is a *source* (a run, an imported file) with a label. A *series* is ``(source, model, weights)``.
Conditions are matched across series by what they do, not by their severity index: the perturbation and
its parameter (and seed); the unperturbed condition (``"none"`` or severity 0) with the unperturbed one; a
matched baseline by the parameter of the perturbation it matches. Checkpoints of one training run,
``<run>-epoch<N>[.pt]`` (:func:`core.metrics.parameters.checkpoint_of`), are series with an epoch: the
curves colour them along the epochs (the study's Figure 2).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np
import pandas as pd

from core.errors import MetricsError
from core.metrics.auc import DEFAULT_RESAMPLES
from core.metrics.context import ScoreContext
from core.metrics.curves import auc_vs_parameter
from core.metrics.parameters import base_perturbation, is_matched, is_unperturbed, natural_key
from core.metrics.scores import validate_scores
from core.metrics.study_table import case_tables, shared_delong
from core.metrics.tables import auc_table

TEST_COLUMNS = (
    "reference",
    "series",
    "perturbation",
    "parameter",
    "seed",
    "n_shared",
    "n_pos",
    "n_neg",
    "auc_reference",
    "auc_series",
    "difference",
    "ci_low",
    "ci_high",
    "p_value",
)


@dataclass
class Comparison:
    """What :func:`compare_runs` found: AUCs and curves of every series, and the paired tests."""

    aucs: pd.DataFrame
    curves: pd.DataFrame
    tests: pd.DataFrame
    reference: str
    level: str


def series_label(source: str, model: str, weights: str) -> str:
    """``"run A · gmic · demo"`` (the source is left out when empty)."""
    return " · ".join(str(x) for x in (source, model, weights) if str(x))


def _checked(tables: Mapping[str, pd.DataFrame], target: str) -> dict[str, pd.DataFrame]:
    if not tables:
        raise MetricsError("compare: no scores tables given")
    return {str(label): validate_scores(df, source=str(label), target=target) for label, df in tables.items()}


def compare_aucs(
    tables: Mapping[str, pd.DataFrame],
    *,
    target: str = "malignant",
    levels=None,
    n_resamples: int = DEFAULT_RESAMPLES,
    seed: int = 0,
) -> pd.DataFrame:
    """:func:`core.metrics.auc_table` of each table, with a ``source`` column holding its label."""
    parts = [
        auc_table(df, target=target, levels=levels, n_resamples=n_resamples, seed=seed).assign(source=label)
        for label, df in _checked(tables, target).items()
    ]
    return pd.concat(parts, ignore_index=True)


def _condition_keys(cases: Mapping[tuple, pd.DataFrame], frame_params: Mapping[tuple, float]) -> dict:
    """``(model, weights) -> {condition key: case-table key}``; condition keys compare across tables."""
    out: dict[tuple, dict] = {}
    for key in cases:
        model, weights, pert, sev, seed = key
        if is_unperturbed(pert, sev):
            cond = ("unperturbed", np.nan, 0)
        elif is_matched(pert):
            x = frame_params.get((model, weights, base_perturbation(pert), sev), np.nan)
            cond = (pert, round(float(x), 6), int(seed))
        else:
            cond = (pert, round(float(frame_params[(model, weights, pert, sev)]), 6), int(seed))
        out.setdefault((model, weights), {}).setdefault(cond, key)
    return out


def paired_tests(
    tables: Mapping[str, pd.DataFrame],
    reference: tuple[str, str, str] | None = None,
    *,
    level: str = "breast",
    target: str = "malignant",
    series: list[tuple[str, str, str]] | None = None,
) -> pd.DataFrame:
    """DeLong's paired test of every series against a reference series, per condition both have, on the
    cases (breasts or images) both scored.

    Parameters
    ----------
    tables : mapping label -> scores table
    reference : (source, model, weights), optional
        Default: the first series of the first table.
    series : list of (source, model, weights), optional
        The series to test (default: all but the reference).

    Returns
    -------
    DataFrame with :data:`TEST_COLUMNS`: ``difference = auc_series - auc_reference`` on the shared cases,
    its 95% interval and two-sided p; ``n_shared`` cases (``n_pos`` / ``n_neg`` of them). ``p_value`` is
    NaN where fewer than 2 positive or 2 negative cases are shared.
    """
    checked = _checked(tables, target)
    per_source = {}
    for label, df in checked.items():
        cases = case_tables(df, level, target)
        params = df.groupby(["model", "weights", "perturbation", "severity"])["parameter"].first().to_dict()
        per_source[label] = (cases, _condition_keys(cases, params))
    all_series = [(s, m, w) for s, (_, keys) in per_source.items() for (m, w) in keys]
    all_series.sort(key=lambda t: (list(per_source).index(t[0]), natural_key(t[1]), natural_key(t[2])))
    if not all_series:
        return pd.DataFrame(columns=list(TEST_COLUMNS))
    reference = tuple(reference) if reference else all_series[0]
    if reference not in all_series:
        raise MetricsError(f"compare: reference series {series_label(*reference)!r} is not in the tables")
    ref_cases, ref_keys = per_source[reference[0]][0], per_source[reference[0]][1][reference[1:]]
    rows = []
    for other in series or [s for s in all_series if s != reference]:
        if tuple(other) == reference or tuple(other) not in all_series:
            continue
        cases, keys = per_source[other[0]][0], per_source[other[0]][1][tuple(other[1:])]
        for cond, key in keys.items():
            if cond not in ref_keys:
                continue
            t = shared_delong(cases[key], ref_cases[ref_keys[cond]])
            rows.append(
                dict(
                    reference=series_label(*reference),
                    series=series_label(*other),
                    perturbation=cond[0],
                    parameter=cond[1],
                    seed=cond[2],
                    n_shared=t.n_shared,
                    n_pos=t.n_pos,
                    n_neg=t.n_neg,
                    auc_reference=t.auc_b,
                    auc_series=t.auc_a,
                    difference=t.difference,
                    ci_low=t.ci_low,
                    ci_high=t.ci_high,
                    p_value=t.p_value,
                )
            )
    out = pd.DataFrame(rows, columns=list(TEST_COLUMNS))
    out["_u"] = out["perturbation"] != "unperturbed"
    out = out.sort_values(["series", "_u", "perturbation", "parameter", "seed"], key=_numeric_or_natural)
    return out.drop(columns="_u").reset_index(drop=True)


def _numeric_or_natural(col: pd.Series) -> pd.Series:
    if pd.api.types.is_numeric_dtype(col):
        return col
    return col.map(natural_key)


def compare_runs(
    tables: Mapping[str, pd.DataFrame],
    *,
    reference: tuple[str, str, str] | None = None,
    level: str = "breast",
    group: str = "weights",
    target: str = "malignant",
    n_resamples: int = DEFAULT_RESAMPLES,
    seed: int = 0,
    contexts: Mapping[str, ScoreContext] | None = None,
) -> Comparison:
    """AUC-versus-parameter curves of several scores tables on one figure, and paired tests against a
    reference series (:func:`paired_tests`).

    ``group="family"`` pools the seeds of a family in the curves; the tests stay per weights.
    """
    checked = _checked(tables, target)
    aucs = compare_aucs(checked, target=target, levels=[level], n_resamples=n_resamples, seed=seed)
    curves = auc_vs_parameter(aucs, group=group, context=contexts)
    tests = paired_tests(checked, reference, level=level, target=target)
    ref = tests["reference"].iloc[0] if len(tests) else ""
    return Comparison(aucs=aucs, curves=curves, tests=tests, reference=ref, level=level)
