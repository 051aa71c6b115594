"""AUC against the perturbation's own parameter, one panel per perturbation (the study's Figure 2).

A *series* is one curve: a model with one weights, or a family of weights (training seeds, readers) pooled
(:func:`core.metrics.weights_family`), from one source (run) when runs are compared. In each panel:

* the perturbation's points at its parameter (R in cycles/mm, noise std in model units, shuffle grid);
* its matched-noise baseline (``"matched-P"``) drawn at the parameter of the condition it matches, with its
  noise std in model units when the image size is known (:func:`core.metrics.context.matched_std`);
* the unperturbed AUC of the series (``"none"``, or severity 0) as a reference level (x is NaN).

Every point carries n_pos / n_neg (the smallest over the members) and a ``flag`` when it rests on fewer
than 30 positives or negatives or its interval is wider than 0.2 (:mod:`core.metrics.flags`).
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import pandas as pd

from core.metrics.context import ScoreContext, matched_std
from core.metrics.parameters import (
    AXES,
    base_perturbation,
    checkpoint_of,
    is_matched,
    is_unperturbed,
    natural_key,
)
from core.metrics.scores import weights_family

CURVE_COLUMNS = (
    "source",
    "model",
    "weights",
    "series",
    "level",
    "panel",
    "perturbation",
    "kind",
    "severity",
    "parameter",
    "x",
    "auc",
    "band_low",
    "band_high",
    "band",
    "n_members",
    "n_pos",
    "n_neg",
    "flag",
    "note",
    "matched_norm",
    "matched_std",
    "epoch",
    "nyquist_mm",
    "input_source",
)
GROUPS = ("family", "weights")


def panel_order(panels) -> list[str]:
    """Known perturbations in the registry's order (low-pass, high-pass, noise, shuffle, ...), then others."""
    known = list(AXES)
    return sorted(set(panels), key=lambda p: (known.index(p) if p in known else len(known), natural_key(p)))


def _context_for(context, source: str) -> ScoreContext:
    if context is None:
        return ScoreContext()
    if isinstance(context, ScoreContext):
        return context
    return context.get(source, ScoreContext())


def _prepare(aucs: pd.DataFrame, group: str) -> pd.DataFrame:
    data = aucs.copy()
    if "source" not in data:
        data["source"] = ""
    data["source"] = data["source"].astype(str)
    data["member"] = data["weights"].astype(str)
    data["series_weights"] = data["member"].map(weights_family) if group == "family" else data["member"]
    epochs = data["member"].map(checkpoint_of)
    data["epoch"] = [np.nan if e is None else e[1] for e in epochs]
    data["unperturbed"] = [
        is_unperturbed(p, s) for p, s in zip(data["perturbation"], data["severity"], strict=True)
    ]
    data["matched"] = data["perturbation"].map(is_matched)
    data["panel"] = data["perturbation"].map(base_perturbation)
    return data


def _matched_x(data: pd.DataFrame) -> pd.Series:
    """For each matched row, the parameter of the condition it matches (same member and severity)."""
    targets = data[~data["matched"] & ~data["unperturbed"]]
    lookup = (
        targets.groupby(["source", "model", "member", "level", "panel", "severity"])["parameter"]
        .first()
        .to_dict()
    )
    keys = zip(
        data["source"],
        data["model"],
        data["member"],
        data["level"],
        data["panel"],
        data["severity"],
        strict=True,
    )
    return pd.Series([lookup.get(k, np.nan) for k in keys], index=data.index, dtype=np.float64)


def _pool(grp: pd.DataFrame) -> dict:
    """One point of a series from its members' rows (each member possibly with several seeds).

    Plain Python over the few rows of a point (a groupby per point costs more than the work)."""
    members: dict[str, dict] = {}
    cols = ("member", "auc", "ci_low", "ci_high", "seed", "n_pos", "n_neg")
    for m, a, lo, hi, seed, n_pos, n_neg in zip(*(grp[c].to_numpy() for c in cols), strict=True):
        d = members.setdefault(
            m, {"aucs": [], "lo": lo, "hi": hi, "seeds": set(), "pos": n_pos, "neg": n_neg}
        )
        d["aucs"].append(a)
        d["seeds"].add(seed)
        d["pos"], d["neg"] = min(d["pos"], n_pos), min(d["neg"], n_neg)
    valid = {m: d for m, d in members.items() if not np.isnan(d["aucs"]).all()}
    means = np.array([np.nanmean(d["aucs"]) for d in valid.values()])
    n = len(valid)
    rec = dict(
        n_members=n,
        n_pos=int(min(d["pos"] for d in members.values())),
        n_neg=int(min(d["neg"] for d in members.values())),
        auc=np.nan,
        band_low=np.nan,
        band_high=np.nan,
        band="",
    )
    if n == 1 and len(next(iter(valid.values()))["seeds"]) == 1:
        d = next(iter(valid.values()))
        rec.update(auc=float(means[0]), band_low=float(d["lo"]), band_high=float(d["hi"]), band="95% CI")
    elif n >= 1:
        spread = means if n > 1 else np.array([a for a in next(iter(valid.values()))["aucs"] if a == a])
        what = f"over {n} weights" if n > 1 else f"over {len(spread)} seeds"
        rec.update(
            auc=float(means.mean()),
            band_low=float(spread.min()),
            band_high=float(spread.max()),
            band=f"min-max {what}",
        )
    if "flag" in grp:
        flags = [(m, f) for m, f in zip(grp["member"], grp["flag"].astype(str), strict=True) if f]
        if flags:
            who = f"{flags[0][0]}: " if n > 1 else ""
            more = f" (and {len(flags) - 1} more member(s))" if len(flags) > 1 else ""
            rec["flag"] = f"{who}{flags[0][1]}{more}"
    if "note" in grp:
        notes = [(m, n) for m, n in zip(grp["member"], grp["note"].astype(str), strict=True) if n]
        if notes and n > 1:
            more = f" (and {len(notes) - 1} more member(s))" if len(notes) > 1 else ""
            rec["note"] = f"{notes[0][0]}: {notes[0][1]}{more}"
        elif notes:
            rec["note"] = notes[0][1]
    return rec


SERIES_KEYS = ["source", "model", "series_weights", "level"]


def _points(data: pd.DataFrame, context) -> list[dict]:
    """Records of the perturbation and matched-baseline points of every series."""
    out = []
    point_keys = SERIES_KEYS + ["panel", "perturbation", "severity"]
    for key, grp in data[~data["unperturbed"]].groupby(point_keys, sort=False, dropna=False):
        rec = dict(zip(point_keys, key, strict=True))
        rec.update(_pool(grp))
        matched = bool(grp["matched"].iloc[0])
        rec.update(member=grp["member"].iloc[0], parameter=float(grp["parameter"].iloc[0]),
                   x=float(grp["x"].iloc[0]), epoch=grp["epoch"].iloc[0],
                   kind="matched" if matched else "perturbation")  # fmt: skip
        if matched:
            pixels = _context_for(context, rec["source"]).image_pixels
            rec.update(matched_norm=rec["parameter"], matched_std=matched_std(rec["parameter"], pixels))
        out.append(rec)
    return out


def _unperturbed_levels(data: pd.DataFrame, points: list[dict]) -> list[dict]:
    """The unperturbed AUC of each series, once per panel in which the series has points."""
    panels: dict[tuple, set] = {}
    for rec in points:
        panels.setdefault(tuple(rec[k] for k in SERIES_KEYS), set()).add(rec["panel"])
    out = []
    for key, grp in data[data["unperturbed"]].groupby(SERIES_KEYS, sort=False, dropna=False):
        pooled = _pool(grp)
        for panel in sorted(panels.get(tuple(key), {"none"})):
            rec = dict(zip(SERIES_KEYS, key, strict=True))
            rec.update(pooled)
            first = grp.iloc[0]
            rec.update(
                panel=panel,
                perturbation=first["perturbation"],
                severity=0,
                parameter=np.nan,
                x=np.nan,
                kind="unperturbed",
                epoch=first["epoch"],
                member=first["member"],
            )
            out.append(rec)
    return out


def auc_vs_parameter(
    aucs: pd.DataFrame,
    *,
    group: str = "family",
    context: ScoreContext | Mapping[str, ScoreContext] | None = None,
) -> pd.DataFrame:
    """Curves of AUC against each perturbation's parameter.

    Parameters
    ----------
    aucs : DataFrame
        Output of :func:`core.metrics.auc_table`; an optional ``source`` column names the run of each row
        (see :func:`core.metrics.compare.compare_aucs`).
    group : {"family", "weights"}
        Pool the weights of a family (seeds, readers; mean line, min-max band) or keep each weights apart.
        Checkpoints of one training run (``<run>-epoch<N>``) stay one series each, with their ``epoch``.
    context : ScoreContext or mapping source -> ScoreContext, optional
        Supplies the image size that turns a matched baseline's L2 norm into its noise std.

    Returns
    -------
    DataFrame with :data:`CURVE_COLUMNS`: ``kind`` is ``"perturbation"``, ``"matched"`` or ``"unperturbed"``;
    ``x`` the plotting position (the perturbation's parameter; for a baseline the parameter it matches;
    NaN for the unperturbed level, which is repeated in each panel of its series); ``parameter`` the row's own
    (a baseline's is its L2 norm, also in ``matched_norm``); ``matched_std`` in model units (NaN: unknown).
    """
    if group not in GROUPS:
        raise ValueError(f"group must be one of {GROUPS}, got {group!r}")
    if aucs.empty:
        return pd.DataFrame(columns=list(CURVE_COLUMNS))
    data = _prepare(aucs, group)
    data["x"] = np.where(data["matched"], _matched_x(data), data["parameter"].astype(np.float64))
    data.loc[data["unperturbed"], "x"] = np.nan
    out = _points(data, context)
    out += _unperturbed_levels(data, out)
    curves = pd.DataFrame(out).rename(columns={"series_weights": "weights"})
    curves["series"] = [
        _series_label(s, m, w)
        for s, m, w in zip(curves["source"], curves["model"], curves["weights"], strict=True)
    ]
    for col in CURVE_COLUMNS:
        if col not in curves:
            curves[col] = np.nan if col in ("matched_norm", "matched_std", "epoch") else ""
    inputs = [
        _context_for(context, s).model_input(m, w)
        for s, m, w in zip(curves["source"], curves["model"], curves["member"], strict=True)
    ]
    curves["nyquist_mm"] = [np.nan if i.nyquist_mm is None else i.nyquist_mm for i in inputs]
    curves["input_source"] = [i.source for i in inputs]
    curves["flag"] = curves["flag"].fillna("").astype(str)
    curves["note"] = curves["note"].fillna("").astype(str)
    order = curves.assign(
        _p=curves["panel"].map({p: i for i, p in enumerate(panel_order(curves["panel"]))}),
        _s=curves["series"].map(natural_key),
        _k=curves["kind"].map({"unperturbed": 0, "perturbation": 1, "matched": 2}),
    ).sort_values(["level", "_p", "_s", "_k", "x"])
    return order[list(CURVE_COLUMNS)].reset_index(drop=True)


def _series_label(source: str, model: str, weights: str) -> str:
    label = f"{model} · {weights}"
    return f"{source} · {label}" if source else label
