"""Honest numbers: when an AUC rests on too few cases, has a wide interval, or is 0.5 by ties.

Thresholds: fewer than :data:`MIN_CASES` positives or negatives, or a 95% interval wider than
:data:`MAX_CI_WIDTH`. With 30 positives and 30 negatives the standard error of an AUC near 0.8 is
about 0.06 (Hanley & McNeil 1982), so its 95% interval is about 0.2 wide: below that, differences of the
size the study reports (0.01-0.15) cannot be told from chance.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

MIN_CASES = 30
MAX_CI_WIDTH = 0.2


def sample_flag(n_pos: float, n_neg: float, ci_low: float = math.nan, ci_high: float = math.nan) -> str:
    """Why an AUC is not to be trusted, or ``""``.

    >>> sample_flag(6, 18, 0.2, 0.9)
    'n_pos 6 < 30; n_neg 18 < 30; 95% CI width 0.70 > 0.2'
    """
    parts = []
    if n_pos < MIN_CASES:
        parts.append(f"n_pos {int(n_pos)} < {MIN_CASES}")
    if n_neg < MIN_CASES:
        parts.append(f"n_neg {int(n_neg)} < {MIN_CASES}")
    width = ci_high - ci_low
    if np.isfinite(width) and width > MAX_CI_WIDTH:
        parts.append(f"95% CI width {width:.2f} > {MAX_CI_WIDTH:g}")
    return "; ".join(parts)


def ties_note(pos: np.ndarray, neg: np.ndarray, auc: float | None = None) -> str:
    """Why an AUC sits at (or is pulled towards) 0.5: constant, nearly constant or mostly tied scores, or
    an exact 0.5 from distinct scores that rank no better than chance; else ``""``.

    Parameters
    ----------
    pos, neg : ndarray
        Scores of the positives and of the negatives.
    auc : float, optional
        Their AUC, to explain an exact 0.5.
    """
    both = np.concatenate([pos, neg])
    if both.size == 0:
        return ""
    lo, hi = float(both.min()), float(both.max())
    if lo == hi:
        return f"constant scores (every case scored {lo:.3g}): AUC 0.5 by ties"
    if hi - lo <= 1e-6 * max(1.0, abs(hi)):
        return f"scores constant to within {hi - lo:.1g} ({lo:.6g}..{hi:.6g}): the model ignores the input"
    neg_sorted = np.sort(neg)
    tied = np.searchsorted(neg_sorted, pos, "right") - np.searchsorted(neg_sorted, pos, "left")
    share = tied.sum() / max(1, pos.size * neg.size)
    if share >= 0.5:
        return (
            f"{share:.0%} of positive-negative pairs tied (coarse or saturated scores); ties count one half, "
            "pulling the AUC towards 0.5"
        )
    if auc is not None and auc == 0.5:
        return (
            f"AUC exactly 0.5 with distinct scores ({lo:.3g}..{hi:.3g}): they rank positives above negatives "
            f"as often as below ({pos.size} positive, {neg.size} negative cases)"
        )
    return ""


def flag_column(aucs: pd.DataFrame) -> pd.Series:
    """:func:`sample_flag` of every row of an AUC table (columns n_pos, n_neg, ci_low, ci_high)."""
    return pd.Series(
        [
            sample_flag(p, n, lo, hi)
            for p, n, lo, hi in zip(
                aucs["n_pos"], aucs["n_neg"], aucs["ci_low"], aucs["ci_high"], strict=True
            )
        ],
        index=aucs.index,
        dtype=object,
    )


def small_sample_warning(aucs: pd.DataFrame) -> str:
    """One sentence for a page or report when any AUC of the table is flagged, else ``""``."""
    if aucs.empty or "flag" not in aucs:
        return ""
    flagged = aucs[aucs["flag"].astype(str) != ""]
    if flagged.empty:
        return ""
    few = flagged[(flagged["n_pos"] < MIN_CASES) | (flagged["n_neg"] < MIN_CASES)]
    parts = []
    if len(few):
        parts.append(
            f"{len(few)} of {len(aucs)} AUCs rest on fewer than {MIN_CASES} positive or negative cases "
            f"(as few as {int(few['n_pos'].min())} positive, {int(few['n_neg'].min())} negative)"
        )
    wide = flagged[(flagged["ci_high"] - flagged["ci_low"]) > MAX_CI_WIDTH]
    if len(wide):
        parts.append(f"{len(wide)} have a 95% interval wider than {MAX_CI_WIDTH:g}")
    return (
        "Small samples: "
        + "; ".join(parts)
        + ". Such AUCs move by chance far more than the effects under study; marked points and cells "
        "are not evidence of a change."
    )
