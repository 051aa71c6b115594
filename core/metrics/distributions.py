"""Score distributions of positive and other cases under each condition: why an AUC moves.

An AUC says how often a positive case outranks a negative one; it does not say whether a perturbation
lowered the positives, raised the negatives, or squeezed everything together. :func:`class_distributions`
gives, per condition, each group's count, median, quartiles and mean, the shift of its median against the
unperturbed condition (and the median of the per-case changes), and the AUC with its bootstrap interval
(the numbers of :func:`core.metrics.auc_table`, same resamples). :func:`case_scores` gives every case's
score, change and rank under each condition, for finding the cases that rise or fall most.

Cases are breasts (the mean of their views' scores, :func:`core.metrics.breast_level`, as the AUC of a run
uses) or images. Optional *subgroups* split the cases further, e.g. by the kinds of finding a synthetic
breast holds (:func:`breast_findings` from a cohort's ``findings.csv``).
"""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np
import pandas as pd

from core.errors import MetricsError
from core.metrics.auc import DEFAULT_RESAMPLES, bootstrap_auc
from core.metrics.parameters import axis_for, base_perturbation, is_matched, is_unperturbed
from core.metrics.scores import BREAST_KEY, CONDITION_COLUMNS, UNPERTURBED, level_table
from core.metrics.tables import auc_table

OTHER = "other"
CASE_KEY = ("exam_id", "laterality", "view", "image_id")
DISTRIBUTION_COLUMNS = (
    *CONDITION_COLUMNS,
    "level",
    "group",
    "positive",
    "n",
    "median",
    "q1",
    "q3",
    "iqr",
    "mean",
    "median_shift",
    "median_change",
    "share_up",
    "auc_vs_other",
    "ci_low",
    "ci_high",
    "flag",
)
NO_FINDING = "no finding"
BENIGN_FINDING = "benign finding only"


def breast_findings(findings: pd.DataFrame) -> pd.DataFrame:
    """What each breast of a synthetic cohort holds, from its ``findings.csv`` (``docs/cohort.md``).

    Parameters
    ----------
    findings : DataFrame
        Columns ``exam_id, laterality, kind, pathology`` at least; one row per finding and view.

    Returns
    -------
    DataFrame with ``exam_id, laterality, subgroup``: the malignant kinds of the breast joined by ``+``
    (``"calc_cluster"``, ``"spiculated_mass"``, ``"calc_cluster+spiculated_mass"``; single specks that
    belong to a cluster are not kinds of their own), else ``"benign finding only"``. Breasts without any
    finding are absent: :func:`case_scores` calls them ``"no finding"``.
    """
    need = {"exam_id", "laterality", "kind", "pathology"}
    missing = need - set(findings.columns)
    if missing:
        raise MetricsError(f"findings table: missing column(s) {', '.join(sorted(missing))}")
    f = findings.astype({"exam_id": str, "laterality": str, "kind": str, "pathology": str})
    if "part_of" in f.columns:  # a cluster's specks carry the cluster's id; the cluster row names the kind
        f = f[f["part_of"].isna() | (f["part_of"].astype(str) == "")]
    rows = []
    for (exam, lat), grp in f.groupby(list(BREAST_KEY), sort=True):
        malignant = sorted(set(grp.loc[grp["pathology"] == "malignant", "kind"]))
        rows.append((exam, lat, "+".join(malignant) if malignant else BENIGN_FINDING))
    return pd.DataFrame(rows, columns=["exam_id", "laterality", "subgroup"])


def _cases(scores: pd.DataFrame, level: str, target: str) -> pd.DataFrame:
    frame = level_table(scores, level)
    if frame.empty:
        raise MetricsError(f"the scores table has no {level}-level rows")
    out = frame[[*CONDITION_COLUMNS, *CASE_KEY, f"label_{target}", f"score_{target}"]]
    return out.rename(columns={f"label_{target}": "label", f"score_{target}": "score"})


def _unperturbed_scores(cases: pd.DataFrame) -> pd.DataFrame:
    """Each case's unperturbed score per model, weights (and seed where the table has one per seed)."""
    none = cases[
        [is_unperturbed(p, s) for p, s in zip(cases["perturbation"], cases["severity"], strict=True)]
    ]
    if none.empty:
        return pd.DataFrame(columns=["model", "weights", *CASE_KEY, "score_unperturbed"])
    if none["perturbation"].nunique() > 1:  # prefer "none" over a severity-0 copy of another perturbation
        none = (
            none[none["perturbation"] == UNPERTURBED] if (none["perturbation"] == UNPERTURBED).any() else none
        )
    keys = ["model", "weights", *CASE_KEY]
    first = none.sort_values("seed").drop_duplicates(keys)
    return first[[*keys, "score"]].rename(columns={"score": "score_unperturbed"})


def case_scores(
    scores: pd.DataFrame,
    *,
    level: str = "breast",
    target: str = "malignant",
    subgroups: pd.DataFrame | None = None,
) -> pd.DataFrame:
    """Every case's score under every condition, with its unperturbed score, change and rank.

    Parameters
    ----------
    scores : DataFrame
        A validated scores table (:func:`core.metrics.read_scores`).
    level : {"breast", "image"}
    target : {"malignant", "benign"}
        Positive cases have ``label_<target>`` 1; their group is called ``target``, the others ``"other"``.
    subgroups : DataFrame, optional
        ``exam_id, laterality, subgroup`` (e.g. :func:`breast_findings`); breasts it lacks are
        ``"no finding"``.

    Returns
    -------
    DataFrame: the condition columns, ``exam_id, laterality, view, image_id`` (view and image_id empty at
    breast level), ``label``, ``group``, ``subgroup`` (empty without ``subgroups``), ``score``,
    ``score_unperturbed`` (NaN where the case has no unperturbed score), ``change`` (score minus it) and
    ``rank_pct`` (the case's rank within its condition, 0 lowest .. 1 highest; ties averaged).
    """
    cases = _cases(scores, level, target)
    cases = cases.merge(_unperturbed_scores(cases), on=["model", "weights", *CASE_KEY], how="left")
    cases["change"] = cases["score"] - cases["score_unperturbed"]
    cases["group"] = np.where(cases["label"] == 1, target, OTHER)
    if subgroups is not None:
        sub = subgroups[["exam_id", "laterality", "subgroup"]].astype(str).drop_duplicates(list(BREAST_KEY))
        cases = cases.merge(sub, on=list(BREAST_KEY), how="left")
        cases["subgroup"] = cases["subgroup"].fillna(NO_FINDING)
    else:
        cases["subgroup"] = ""
    n = cases.groupby(list(CONDITION_COLUMNS), dropna=False)["score"].transform("size")
    rank = cases.groupby(list(CONDITION_COLUMNS), dropna=False)["score"].rank(method="average")
    cases["rank_pct"] = (rank - 1) / (n - 1).where(n > 1, 1)
    order = [*CONDITION_COLUMNS, "exam_id", "laterality", "view", "image_id"]
    cols = [*CONDITION_COLUMNS, *CASE_KEY, "label", "group", "subgroup", "score", "score_unperturbed"]
    return cases.sort_values(order)[[*cols, "change", "rank_pct"]].reset_index(drop=True)


def _summary(values: np.ndarray, changes: np.ndarray) -> dict:
    q1, med, q3 = np.quantile(values, [0.25, 0.5, 0.75])
    ch = changes[np.isfinite(changes)]
    return {
        "n": int(values.size),
        "median": float(med),
        "q1": float(q1),
        "q3": float(q3),
        "iqr": float(q3 - q1),
        "mean": float(values.mean()),
        "median_change": float(np.median(ch)) if ch.size else np.nan,
        "share_up": float((ch > 0).mean()) if ch.size else np.nan,
    }


def _group_rows(grp: pd.DataFrame, target: str, n_resamples: int, seed: int) -> list[dict]:
    """Rows of one condition: the positive group, the others, then each subgroup (positive subgroups with
    their AUC against the condition's other cases)."""
    neg = grp.loc[grp["label"] == 0, "score"].to_numpy(np.float64)
    rows = []
    parts = [(target, True, grp[grp["label"] == 1]), (OTHER, False, grp[grp["label"] == 0])]
    if (grp["subgroup"] != "").any():
        for (sub, label), part in grp.groupby(["subgroup", "label"], sort=True):
            name = f"{target}: {sub}" if label == 1 else f"{OTHER}: {sub}"
            parts.append((name, bool(label == 1), part))
    for name, positive, part in parts:
        if part.empty:
            continue
        rec = {"group": name, "positive": positive}
        rec.update(_summary(part["score"].to_numpy(np.float64), part["change"].to_numpy(np.float64)))
        if positive and name != target and neg.size:
            s = np.concatenate([part["score"].to_numpy(np.float64), neg])
            y = np.r_[np.ones(len(part), int), np.zeros(neg.size, int)]
            est = bootstrap_auc(s, y, n_resamples=max(n_resamples, 1), seed=seed)
            rec.update(auc_vs_other=est.auc, ci_low=est.ci_low, ci_high=est.ci_high)
            if n_resamples <= 0:
                rec.update(ci_low=np.nan, ci_high=np.nan)
        rows.append(rec)
    return rows


def class_distributions(
    scores: pd.DataFrame,
    *,
    level: str = "breast",
    target: str = "malignant",
    subgroups: pd.DataFrame | None = None,
    conditions: Iterable[str] | None = None,
    n_resamples: int = DEFAULT_RESAMPLES,
    seed: int = 0,
) -> pd.DataFrame:
    """Per condition, the score distribution of the positive cases and of the others, and the AUC.

    Parameters
    ----------
    scores : DataFrame
        A validated scores table (:func:`core.metrics.read_scores`), e.g. a run's
        (:func:`core.runs.load_scores`).
    level : {"breast", "image"}
        Breast level: a breast's score is the mean of its views' scores, as in the run's breast AUC.
    target : {"malignant", "benign"}
    subgroups : DataFrame, optional
        ``exam_id, laterality, subgroup``: adds a row per subgroup of each class (e.g. by finding kind).
    conditions : iterable of str, optional
        Keep these conditions (:func:`select_conditions`: ``"noise"``, ``"matched-noise:5"``, ...) and the
        unperturbed one; default all.
    n_resamples, seed
        Bootstrap of the AUC intervals (those of :func:`core.metrics.auc_table` with the same settings);
        0 resamples: no intervals.

    Returns
    -------
    DataFrame with columns :data:`DISTRIBUTION_COLUMNS`, in :func:`condition_order`. Scores are the
    model's probabilities (0..1). ``median_shift``: the group's median minus its median unperturbed (same
    model and weights); ``median_change``: the median of the cases' own changes; ``share_up``: the share
    of the group's cases whose score rose. ``auc_vs_other`` (with ``ci_low``, ``ci_high``) is the AUC of the
    group's cases against the condition's other cases: the condition's AUC on the ``target`` row, a
    subgroup's on its row, NaN on the rows of negative cases. ``flag`` repeats the AUC's small-sample flag.
    """
    cases = case_scores(scores, level=level, target=target, subgroups=subgroups)
    aucs = auc_table(scores, target=target, levels=[level], n_resamples=n_resamples, seed=seed)
    aucs = aucs.set_index(list(CONDITION_COLUMNS))
    rows = []
    for cond, grp in cases.groupby(list(CONDITION_COLUMNS), sort=False, dropna=False):
        base = dict(zip(CONDITION_COLUMNS, cond, strict=True), level=level)
        for rec in _group_rows(grp, target, n_resamples, seed):
            if rec["group"] == target and cond in aucs.index:
                a = aucs.loc[cond]
                rec.update(auc_vs_other=a["auc"], ci_low=a["ci_low"], ci_high=a["ci_high"], flag=a["flag"])
            rows.append({**base, **rec})
    out = pd.DataFrame(rows).reindex(columns=list(DISTRIBUTION_COLUMNS))
    out["flag"] = out["flag"].fillna("")
    none = out[[is_unperturbed(p, s) for p, s in zip(out["perturbation"], out["severity"], strict=True)]]
    ref = none.drop_duplicates(["model", "weights", "group"]).set_index(["model", "weights", "group"])[
        "median"
    ]
    keys = pd.MultiIndex.from_frame(out[["model", "weights", "group"]])
    out["median_shift"] = out["median"].to_numpy() - ref.reindex(keys).to_numpy()
    return sort_conditions(select_conditions(out, conditions, keep_unperturbed=True))


def condition_order(frame: pd.DataFrame) -> list[tuple]:
    """The distinct conditions of ``frame`` in reading order: per model and weights, unperturbed first,
    then each perturbation by name and severity, its matched baseline right after it."""
    conds = frame[list(CONDITION_COLUMNS)].drop_duplicates()

    def key(row) -> tuple:
        unperturbed = is_unperturbed(row.perturbation, row.severity)
        return (
            row.model,
            row.weights,
            not unperturbed,
            base_perturbation(row.perturbation),
            row.severity,
            is_matched(row.perturbation),
            row.seed,
        )

    return sorted(conds.itertuples(index=False, name="Condition"), key=key)


def sort_conditions(frame: pd.DataFrame) -> pd.DataFrame:
    """``frame`` with its conditions in :func:`condition_order` (rows within a condition keep their order)."""
    order = {tuple(c): i for i, c in enumerate(condition_order(frame))}
    idx = [order[tuple(r)] for r in frame[list(CONDITION_COLUMNS)].itertuples(index=False)]
    return frame.iloc[np.argsort(idx, kind="stable")].reset_index(drop=True)


def condition_label(
    perturbation: str, parameter: float, severity, matched_parameter: float | None = None
) -> str:
    """``"unperturbed"``, ``"Gaussian noise, std = 1600 model units"``, ``"matched noise for patch
    shuffling, grid 8 x 8"`` (``matched_parameter``: the parameter of the condition a matched baseline
    matches; without it the severity is named)."""
    if is_unperturbed(perturbation, severity):
        return "unperturbed"
    axis = axis_for(perturbation)
    if is_matched(perturbation):
        what = axis.format(matched_parameter) if matched_parameter is not None else f"severity {severity}"
        return f"matched noise for {axis.title}, {what}"
    return f"{axis.title}, {axis.format(parameter)}"


def select_conditions(
    frame: pd.DataFrame, wanted: Iterable[str] | None, *, keep_unperturbed: bool = False
) -> pd.DataFrame:
    """Rows of ``frame`` whose perturbation is in ``wanted`` (names, e.g. ``"none"``, ``"noise"``,
    ``"matched-noise"``), or ``"NAME:SEVERITY"`` for one severity; all rows when ``wanted`` is empty.
    ``keep_unperturbed``: the unperturbed rows stay whatever ``wanted`` says.

    Raises
    ------
    MetricsError
        A wanted condition the table does not hold, or a severity that is not a number.
    """
    wanted = [w.strip() for w in (wanted or []) if w.strip()]
    if not wanted:
        return frame
    keep = np.zeros(len(frame), bool)
    if keep_unperturbed:
        keep |= [is_unperturbed(p, s) for p, s in zip(frame["perturbation"], frame["severity"], strict=True)]
    for w in wanted:
        name, _, sev = w.partition(":")
        hit = frame["perturbation"].to_numpy() == name
        if sev:
            try:
                hit &= frame["severity"].to_numpy(np.float64) == float(sev)
            except ValueError:
                raise MetricsError(f"condition {w!r}: the severity must be a number (e.g. noise:5)") from None
        if not hit.any():
            have = ", ".join(sorted(set(frame["perturbation"])))
            raise MetricsError(f"condition {w!r} is not in the scores table (perturbations: {have})")
        keep |= hit
    return frame[keep]
