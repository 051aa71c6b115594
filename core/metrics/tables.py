"""Tables computed from a validated scores table: AUC per condition, AUC versus severity, Table 1,
ROC points and per-case score changes.

Bootstrap resamples are drawn per *case set* (the cases of a condition, in case-key order) from
``numpy.random.default_rng(seed)``: a condition's interval depends only on its own cases, scores and the
seed, and conditions scored on the same cases share their resamples (a paired bootstrap, and the draws
are made once for all of them). Paired tests of two conditions use DeLong (:func:`core.metrics.delong_test`).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

import numpy as np
import pandas as pd

from core.errors import MetricsError
from core.metrics.auc import (
    DEFAULT_RESAMPLES,
    delong_test,
    paired_bootstrap_aucs,
    resample_indices,
    roc_curve,
)
from core.metrics.flags import flag_column, ties_note
from core.metrics.scores import (
    CONDITION_COLUMNS,
    LEVELS,
    MATCHED_PREFIX,
    UNPERTURBED,
    level_table,
    weights_family,
)

AUC_COLUMNS = (
    "model",
    "weights",
    "perturbation",
    "severity",
    "parameter",
    "seed",
    "level",
    "auc",
    "ci_low",
    "ci_high",
    "n_pos",
    "n_neg",
    "note",
    "flag",
)


def _case_key(frame: pd.DataFrame) -> pd.Series:
    return frame["exam_id"] + "|" + frame["laterality"] + "|" + frame["view"] + "|" + frame["image_id"]


def _levels_present(scores: pd.DataFrame, levels: Iterable[str] | None) -> list[str]:
    if levels is None:
        has_images = bool((scores["image_id"] != "").any())
        return ["image", "breast"] if has_images else ["breast"]
    levels = list(levels)
    for lv in levels:
        if lv not in LEVELS:
            raise MetricsError(f"unknown level {lv!r} (use one of {LEVELS})")
    return levels


def auc_table(
    scores: pd.DataFrame,
    *,
    target: str = "malignant",
    levels: Iterable[str] | None = None,
    n_resamples: int = DEFAULT_RESAMPLES,
    ci_level: float = 0.95,
    seed: int = 0,
) -> pd.DataFrame:
    """AUC with a stratified-bootstrap interval for every condition and level.

    Parameters
    ----------
    scores : DataFrame
        Output of :func:`core.metrics.read_scores` / :func:`validate_scores`.
    target : {"malignant", "benign"}
    levels : iterable of {"image", "breast"}, optional
        Default: both when the table has image rows, else breast only.
    n_resamples, ci_level, seed
        Bootstrap settings; ``n_resamples=0`` skips the intervals (NaN).

    Returns
    -------
    DataFrame with columns :data:`AUC_COLUMNS`. A condition lacking positives or negatives keeps its row
    with ``auc`` NaN and its counts, so nothing disappears silently. ``note`` says why an AUC sits at
    0.5 by ties (constant or saturated scores, :func:`core.metrics.flags.ties_note`); ``flag`` why it is
    not to be trusted (fewer than 30 positives or negatives, or an interval wider than 0.2;
    :func:`core.metrics.flags.sample_flag`).
    """
    score_col, label_col = f"score_{target}", f"label_{target}"
    rows = []
    for level in _levels_present(scores, levels):
        frame = level_table(scores, level)
        if frame.empty:
            continue
        frame = frame.assign(_key=_case_key(frame)).sort_values(list(CONDITION_COLUMNS) + ["_key"])
        frame["_hash"] = pd.util.hash_pandas_object(frame["_key"], index=False).to_numpy()
        # Conditions grouped by case set (same cases, same labels): they share their resamples.
        case_sets: dict[tuple, list[tuple[dict, np.ndarray]]] = {}
        for cond, grp in frame.groupby(list(CONDITION_COLUMNS), sort=True, dropna=False):
            s = grp[score_col].to_numpy(np.float64)
            y = grp[label_col].to_numpy()
            rec = dict(zip(CONDITION_COLUMNS, cond, strict=True))
            n_pos = int(y.sum())
            rec.update(
                level=level, n_pos=n_pos, n_neg=int(y.size - n_pos), auc=np.nan, ci_low=np.nan, ci_high=np.nan
            )
            rec["note"] = "no positive case" if n_pos == 0 else "no negative case" if n_pos == y.size else ""
            rows.append(rec)
            if n_pos == 0 or n_pos == y.size or np.isnan(s).any():
                continue  # no AUC: the row stays, with its counts
            pos, neg = s[y == 1], s[y == 0]
            lo = np.searchsorted(np.sort(neg), pos, side="left")
            hi = np.searchsorted(np.sort(neg), pos, side="right")
            rec["auc"] = float((lo.sum() + 0.5 * (hi - lo).sum()) / (pos.size * neg.size))
            rec["note"] = ties_note(pos, neg, rec["auc"])
            case_sets.setdefault(
                (grp["_hash"].to_numpy().tobytes(), y.astype(np.int64).tobytes()), []
            ).append((rec, s))
        if n_resamples <= 0:
            continue
        for (_, y_bytes), members in case_sets.items():
            y = np.frombuffer(y_bytes, dtype=np.int64)
            rng = np.random.default_rng(seed)
            n_pos = int(y.sum())
            cp = resample_indices(n_pos, n_resamples, rng)
            cn = resample_indices(y.size - n_pos, n_resamples, rng)
            for start in range(0, len(members), 64):
                batch = members[start : start + 64]
                boot = paired_bootstrap_aucs(np.stack([m[1] for m in batch]), y, cp, cn)
                qs = np.quantile(boot, [(1 - ci_level) / 2, (1 + ci_level) / 2], axis=1)
                for (rec, _), low, high in zip(batch, qs[0], qs[1], strict=True):
                    rec["ci_low"], rec["ci_high"] = float(low), float(high)
    out = pd.DataFrame(rows, columns=list(AUC_COLUMNS))
    out["flag"] = flag_column(out) if len(out) else pd.Series(dtype=object)
    return out


def _with_unperturbed_per_perturbation(aucs: pd.DataFrame) -> pd.DataFrame:
    """Copy the ``"none"`` rows to severity 0 of every perturbation of the same model/weights/level."""
    none = aucs[aucs["perturbation"] == UNPERTURBED]
    rest = aucs[aucs["perturbation"] != UNPERTURBED]
    if none.empty:
        return rest
    pairs = rest[["model", "weights", "level", "perturbation"]].drop_duplicates()
    copies = none.drop(columns="perturbation").merge(pairs, on=["model", "weights", "level"])
    copies = copies.assign(severity=0)
    return pd.concat([rest, copies[rest.columns]], ignore_index=True)


def auc_vs_severity(aucs: pd.DataFrame, *, by_family: bool = True) -> pd.DataFrame:
    """AUC-versus-severity curves, one per model, weights (family), perturbation and level.

    The unperturbed condition (``"none"``) appears as severity 0 of every perturbation's curve. With
    ``by_family`` the weights are grouped by :func:`weights_family` (e.g. five training seeds, or ten
    readers) and seeds of the perturbation are pooled: ``auc`` is the mean over members, ``band_low`` /
    ``band_high`` the min/max over members when there are several, else the member's bootstrap interval.

    Returns
    -------
    DataFrame with columns model, weights, perturbation, level, severity, parameter, auc, band_low,
    band_high, band (``"95% CI"`` or ``"min-max over N"``), n_members, sorted by severity.
    """
    data = _with_unperturbed_per_perturbation(aucs)
    data = data.assign(weights=data["weights"].map(weights_family) if by_family else data["weights"])
    keys = ["model", "weights", "perturbation", "level", "severity"]
    out = []
    for key, grp in data.groupby(keys, sort=True, dropna=False):
        valid = grp.dropna(subset=["auc"])
        n = len(valid)
        rec = dict(zip(keys, key, strict=True))
        rec["parameter"] = grp["parameter"].iloc[0]
        rec["n_members"] = n
        if n == 0:
            rec.update(auc=np.nan, band_low=np.nan, band_high=np.nan, band="")
        elif n == 1:
            r = valid.iloc[0]
            rec.update(auc=r["auc"], band_low=r["ci_low"], band_high=r["ci_high"], band="95% CI")
        else:
            rec.update(
                auc=valid["auc"].mean(),
                band_low=valid["auc"].min(),
                band_high=valid["auc"].max(),
                band=f"min-max over {n}",
            )
        out.append(rec)
    cols = keys[:4] + ["severity", "parameter", "auc", "band_low", "band_high", "band", "n_members"]
    return pd.DataFrame(out, columns=cols)


def _paired_p(cases: Mapping, key_a: tuple, key_b: tuple) -> float:
    """DeLong p-value of two conditions (keys into ``cases``) when they share exactly the same cases."""
    if key_a not in cases or key_b not in cases:
        return np.nan
    a, b = cases[key_a], cases[key_b]
    if len(a) != len(b) or not a.index.is_unique or not a.index.sort_values().equals(b.index.sort_values()):
        return np.nan  # not the same cases: no paired test
    b = b.loc[a.index]
    y = a["label"].to_numpy()
    if (y == 1).sum() < 2 or (y == 0).sum() < 2:
        return np.nan
    return delong_test(a["score"].to_numpy(), b["score"].to_numpy(), y).p_value


def _fmt(auc: float, diff: float) -> str:
    if np.isnan(auc):
        return ""
    if np.isnan(diff):
        return f"{auc:.2f}"
    return f"{auc:.2f} ({diff:+.2f})".replace("-", "\u2212")


def table1(
    scores: pd.DataFrame,
    aucs: pd.DataFrame | None = None,
    *,
    level: str | None = None,
    target: str = "malignant",
) -> pd.DataFrame:
    """The study's Table 1: AUC per condition with its difference to the matched baseline.

    For every model, weights and condition at one level: ``auc``; ``diff_unperturbed`` (minus the
    unperturbed AUC: the ``"none"`` condition, else severity 0 of the same perturbation);
    ``baseline_auc`` and ``diff_baseline`` against the matched-noise baseline ``"matched-P"`` at the
    same severity when the table has one; paired DeLong p-values for both differences when the two
    conditions share their cases (one perturbation seed); and ``cell``, the study's text
    ``"0.77 (−0.01)"`` (difference to the matched baseline; the bare AUC when there is none).

    Parameters
    ----------
    aucs : DataFrame, optional
        Output of :func:`auc_table`, to reuse; computed without intervals when omitted.
    level : {"image", "breast"}, optional
        Default "breast" (available for every model).
    """
    level = level or "breast"
    if aucs is None:
        aucs = auc_table(scores, target=target, levels=[level], n_resamples=0)
    pooled = _pooled_aucs(aucs, level)
    cases = _condition_cases(scores, level, target)
    info = {
        (r.model, r.weights, r.perturbation, r.severity): (r.auc, r.n_seeds)
        for r in pooled.itertuples(index=False)
    }
    with_none = {(m, w) for (m, w, p, _) in info if p == UNPERTURBED}
    out = [
        _table1_row(r, level, info, with_none, cases)
        for r in pooled.itertuples(index=False)
        if not r.perturbation.startswith(MATCHED_PREFIX)
    ]
    return pd.DataFrame(out)


def _pooled_aucs(aucs: pd.DataFrame, level: str) -> pd.DataFrame:
    """AUC per model, weights and condition at ``level``, perturbation seeds pooled by averaging their AUCs
    (``n_seeds``: how many were pooled)."""
    a = aucs[aucs["level"] == level]
    keys = ["model", "weights", "perturbation", "severity", "parameter"]
    pooled = a.groupby(keys, dropna=False, sort=True).agg(auc=("auc", "mean"), n_seeds=("seed", "nunique"))
    return pooled.reset_index()


def _condition_cases(scores: pd.DataFrame, level: str, target: str) -> dict[tuple, pd.DataFrame]:
    """Score and label of every case (indexed by case key) per ``(model, weights, perturbation, severity)``:
    what the paired tests of :func:`_paired_p` compare."""
    frame = level_table(scores, level)
    score_col, label_col = f"score_{target}", f"label_{target}"
    frame = frame.assign(_key=_case_key(frame))
    return {
        key: pd.DataFrame(
            {"score": g[score_col].to_numpy(), "label": g[label_col].to_numpy()}, index=g["_key"]
        )
        for key, g in frame.groupby(["model", "weights", "perturbation", "severity"], sort=False)
    }


def _table1_row(r, level: str, info: Mapping, with_none: set, cases: Mapping) -> dict:
    """One row of :func:`table1` for the pooled condition ``r``; ``info`` maps every condition key to its
    ``(auc, n_seeds)``, ``with_none`` holds the (model, weights) that have an unperturbed condition."""
    key = (r.model, r.weights, r.perturbation, r.severity)
    has_none = (r.model, r.weights) in with_none
    base_key = (r.model, r.weights, UNPERTURBED, 0) if has_none else (r.model, r.weights, r.perturbation, 0)
    if base_key not in info and has_none:  # "none" stored at another severity label
        base_key = next(k for k in info if k[:3] == (r.model, r.weights, UNPERTURBED))
    matched_key = (r.model, r.weights, MATCHED_PREFIX + r.perturbation, r.severity)
    is_unperturbed = r.perturbation == UNPERTURBED or (not has_none and r.severity == 0)
    un_auc = info[base_key][0] if base_key in info and not is_unperturbed else np.nan
    m_auc = info[matched_key][0] if matched_key in info else np.nan
    p_un = p_m = np.nan
    if r.n_seeds == 1:
        if not np.isnan(un_auc) and info[base_key][1] == 1:
            p_un = _paired_p(cases, key, base_key)
        if not np.isnan(m_auc) and info[matched_key][1] == 1:
            p_m = _paired_p(cases, key, matched_key)
    return {
        "model": r.model,
        "weights": r.weights,
        "level": level,
        "perturbation": r.perturbation,
        "severity": r.severity,
        "parameter": r.parameter,
        "auc": r.auc,
        "diff_unperturbed": r.auc - un_auc,
        "p_unperturbed": p_un,
        "baseline_auc": m_auc,
        "diff_baseline": r.auc - m_auc,
        "p_baseline": p_m,
        "cell": _fmt(r.auc, r.auc - m_auc),
    }


def roc_points(
    scores: pd.DataFrame,
    *,
    level: str = "breast",
    target: str = "malignant",
    condition: Mapping | None = None,
) -> pd.DataFrame:
    """ROC curve points of every condition (or those matching ``condition``, a dict of column values).

    Returns a long DataFrame: the condition columns, ``level``, ``fpr``, ``tpr``, ``threshold``.
    """
    frame = level_table(scores, level)
    if condition:
        for col, val in condition.items():
            frame = frame[frame[col] == val]
    score_col, label_col = f"score_{target}", f"label_{target}"
    parts = []
    for cond, grp in frame.groupby(list(CONDITION_COLUMNS), sort=True, dropna=False):
        y = grp[label_col].to_numpy()
        if y.min() == y.max():
            continue
        fpr, tpr, thr = roc_curve(grp[score_col].to_numpy(), y)
        part = pd.DataFrame({"fpr": fpr, "tpr": tpr, "threshold": thr})
        for col, val in zip(CONDITION_COLUMNS, cond, strict=True):
            part.insert(len(part.columns) - 3, col, val)
        part.insert(len(part.columns) - 3, "level", level)
        parts.append(part)
    if not parts:
        return pd.DataFrame(columns=list(CONDITION_COLUMNS) + ["level", "fpr", "tpr", "threshold"])
    return pd.concat(parts, ignore_index=True)


def score_changes(
    scores: pd.DataFrame,
    condition_a: Mapping,
    condition_b: Mapping,
    *,
    level: str = "image",
    target: str = "malignant",
) -> pd.DataFrame:
    """Per-case scores under two conditions and their change ``score_b - score_a``.

    Parameters
    ----------
    condition_a, condition_b : mapping
        Column values picking each condition, e.g. ``{"perturbation": "none"}`` and
        ``{"perturbation": "lowpass", "severity": 3}``; model/weights too when the table has several.

    Returns
    -------
    DataFrame with exam_id, laterality, view, image_id, the labels, ``score_a``, ``score_b``, ``change``
    (NaN scores where a case is missing under one condition), sorted by ``abs(change)`` descending.
    """
    frame = level_table(scores, level)
    score_col = f"score_{target}"
    keys = ["exam_id", "laterality", "view", "image_id", "label_benign", "label_malignant"]

    def pick(cond: Mapping) -> pd.DataFrame:
        sub = frame
        for col, val in cond.items():
            if col not in frame.columns:
                raise MetricsError(f"score_changes: unknown column {col!r}")
            sub = sub[sub[col] == val]
        if sub.empty:
            raise MetricsError(f"score_changes: no rows match {dict(cond)}")
        if sub.duplicated(keys).any():
            raise MetricsError(
                f"score_changes: {dict(cond)} matches several conditions; add model/weights/seed"
            )
        return sub[keys + [score_col]]

    a = pick(condition_a).rename(columns={score_col: "score_a"})
    b = pick(condition_b).rename(columns={score_col: "score_b"})
    out = a.merge(b, on=keys, how="outer")
    out["change"] = out["score_b"] - out["score_a"]
    return out.sort_values("change", key=np.abs, ascending=False, na_position="last").reset_index(drop=True)
