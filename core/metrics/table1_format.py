"""Table 1 as text: the study's layout for the page and CSV (:func:`table1_layout`) and LaTeX
(:func:`table1_latex`), from the numbers of :func:`core.metrics.study_table.table1_cells`.

Cells: ``"0.77** (−0.01†)"`` for one weights; a family of seeds or readers as
``"0.78 ± 0.02 [0.76–0.81] (−0.05 ± 0.02)"`` (mean ± sd over members, then min-max, as the study reports).
"""

from __future__ import annotations

import re

import numpy as np
import pandas as pd

from core.metrics.flags import MAX_CI_WIDTH, MIN_CASES
from core.metrics.parameters import axis_for, natural_key
from core.metrics.scores import weights_family

MARKS = ((0.01, "**"), (0.05, "*"))
BASELINE_MARKS = ((0.01, "††"), (0.05, "†"))
SMALL_MARK = "§"
MINUS, EN_DASH = "\u2212", "\u2013"
MISSING = "n/a"


def _num(x: float, signed: bool = False) -> str:
    return (f"{x:+.2f}" if signed else f"{x:.2f}").replace("-", MINUS)


def _mark(ps: np.ndarray, marks) -> str:
    """The strongest mark every p-value earns (all members of a family must), ``""`` if any is NaN."""
    ps = np.asarray(ps, dtype=np.float64)
    if ps.size == 0 or np.isnan(ps).any():
        return ""
    return next((m for thr, m in marks if (ps < thr).all()), "")


def _cell(members: pd.DataFrame, is_unperturbed: bool) -> str:
    """Text of one cell from its members' records (one per weights)."""
    valid = members.dropna(subset=["auc"])
    if valid.empty:
        return MISSING
    aucs = valid["auc"].to_numpy()
    mark = "" if is_unperturbed else _mark(valid["p_unperturbed"], MARKS)
    diffs = valid["diff_baseline"].dropna().to_numpy()
    if len(valid) == 1:
        text = _num(aucs[0]) + mark
        if diffs.size:
            text += f" ({_num(diffs[0], True)}{_mark(valid['p_baseline'], BASELINE_MARKS)})"
    else:
        text = (
            f"{_num(aucs.mean())} ± {_num(aucs.std(ddof=1))} [{_num(aucs.min())}{EN_DASH}{_num(aucs.max())}]"
        )
        text += mark
        if diffs.size:
            spread = f" ± {_num(diffs.std(ddof=1))}" if diffs.size > 1 else ""
            text += f" ({_num(diffs.mean(), True)}{spread}{_mark(valid['p_baseline'], BASELINE_MARKS)})"
    if (valid["flag"].astype(str) != "").any():
        text += f" {SMALL_MARK}"
    return text


def cell_text(record: pd.DataFrame) -> str:
    """The cell of one weights' record of :func:`~core.metrics.study_table.table1_cells` (one row)."""
    return _cell(record, record["column"].iloc[0] == "unperturbed")


def _range(values: pd.Series) -> str:
    v = values.dropna().astype(int)
    if v.empty:
        return "?"
    return f"{v.min()}" if v.min() == v.max() else f"{v.min()}{EN_DASH}{v.max()}"


def table1_layout(cells: pd.DataFrame, *, by_family: bool = True) -> pd.DataFrame:
    """The study's Table 1 from :func:`~core.metrics.study_table.table1_cells`.

    Rows: model x weights, or model x family (weights named like ``x-seed0..4`` or ``reader-0..9`` pooled,
    :func:`core.metrics.weights_family`), in numeric order. Columns: ``model``, ``weights``, ``members``,
    ``n_pos``, ``n_neg`` (the unperturbed cases; a range over members), ``unperturbed`` and one per
    perturbation column, headed with its parameter.

    ``attrs["footnotes"]`` holds the notes that go under the table (what the cells and marks mean, the
    columns that are missing and why); ``attrs["level"]`` the level.
    """
    if cells.empty:
        out = pd.DataFrame(columns=["model", "weights", "members", "n_pos", "n_neg", "unperturbed"])
        out.attrs.update(footnotes=["No AUC at this level."], level="")
        return out
    data = cells.assign(row=cells["weights"].map(weights_family) if by_family else cells["weights"])
    headings = list(dict.fromkeys(data["heading"]))
    rows = []
    for (model, row), grp in sorted(
        data.groupby(["model", "row"]), key=lambda kv: tuple(map(natural_key, kv[0]))
    ):
        members = grp["weights"].nunique()
        un = grp[grp["column"] == "unperturbed"]
        rec = {
            "model": model,
            "weights": row,
            "members": members,
            "n_pos": _range(un["n_pos"]),
            "n_neg": _range(un["n_neg"]),
        }
        for heading, cell in grp.groupby("heading", sort=False):
            rec[heading] = _cell(cell, heading == "unperturbed")
        rows.append(rec)
    out = pd.DataFrame(rows, columns=["model", "weights", "members", "n_pos", "n_neg", *headings]).fillna(
        MISSING
    )
    out.attrs.update(footnotes=_footnotes(cells, by_family), level=str(cells["level"].iloc[0]))
    return out


def _footnotes(cells: pd.DataFrame, by_family: bool) -> list[str]:
    level = str(cells["level"].iloc[0])
    unit = "breasts" if level == "breast" else "images"
    notes = [
        f"Malignancy AUC at the {level} level. In parentheses: the difference to the matched-noise "
        "baseline of the same perturbation (Gaussian noise with the perturbation's mean L2 norm), where "
        "the table has one.",
    ]
    if by_family and (cells.groupby("model")["weights"].nunique() > 1).any():
        notes.append(
            "Families (training seeds, readers): mean ± sd over the members [min–max]; the difference "
            "likewise."
        )
    notes.append(
        f"* p < 0.05, ** p < 0.01: DeLong's paired test of the AUC against the unperturbed AUC of the same "
        f"weights, on the {unit} scored under both conditions; † p < 0.05, †† p < 0.01: the same test "
        "against "
        "the matched baseline. A family is marked only when every member is. With several noise or shuffle "
        "seeds the largest p counts. No mark: not significant, or no paired test possible (fewer than 2 "
        "positive and 2 negative shared cases)."
    )
    if (cells["flag"].astype(str) != "").any():
        notes.append(
            f"{SMALL_MARK} fewer than {MIN_CASES} positive or negative cases, or a 95% interval wider than "
            f"{MAX_CI_WIDTH:g}: not evidence of a change."
        )
    no_pair = cells[(cells["column"] != "unperturbed") & cells["auc"].notna() & cells["p_unperturbed"].isna()]
    if len(no_pair):
        who = sorted({weights_family(w) if by_family else w for w in no_pair["weights"]}, key=natural_key)
        shared = no_pair["n_shared_unperturbed"].fillna(0).astype(int)
        notes.append(
            f"Not tested against unperturbed: {', '.join(who)} (at most {shared.max()} shared {unit}; "
            "e.g. readers "
            "who read each exam at one severity only)."
        )
    for missing in dict.fromkeys(m for m in cells["missing"].astype(str) if m and "not scored" not in m):
        notes.append(f"Missing: {missing}.")
    for pert in dict.fromkeys(cells["perturbation"].dropna().astype(str)):
        axis = axis_for(pert)
        if axis.note and pert in set(cells.loc[cells["auc"].notna(), "perturbation"]):
            notes.append(f"{axis.title}: {axis.note}.")
    return notes


_LATEX = {
    "\\": r"\textbackslash{}",
    "&": r"\&",
    "%": r"\%",
    "$": r"\$",
    "#": r"\#",
    "_": r"\_",
    "{": r"\{",
    "}": r"\}",
    "~": r"\textasciitilde{}",
    "^": r"\textasciicircum{}",
    "±": r"$\pm$",
    MINUS: r"$-$",
    EN_DASH: "--",
    "·": r"$\cdot$",
    "×": r"$\times$",
    "<": r"$<$",
    ">": r"$>$",
    "**": r"$^{**}$",
    "*": r"$^{*}$",
    "††": r"$^{\dagger\dagger}$",
    "†": r"$^{\dagger}$",
    SMALL_MARK: r"$^{\S}$",
}
_LATEX_TOKEN = re.compile("|".join(re.escape(k) for k in sorted(_LATEX, key=len, reverse=True)))


def latex_escape(text: str) -> str:
    """Text safe inside a LaTeX table cell: special characters escaped, the table's symbols as maths."""
    out = _LATEX_TOKEN.sub(lambda m: _LATEX[m.group(0)], str(text))
    return re.sub(r"(?<!\\)\$\$", "", out)  # adjacent formulas merge into one


def table1_latex(layout: pd.DataFrame, *, caption: str = "") -> str:
    """A booktabs ``table`` of :func:`table1_layout` with its footnotes (needs ``\\usepackage{booktabs}``)."""
    cols = [c for c in layout.columns if c not in ("n_pos", "n_neg")]
    lines = [
        "% Table 1, written by mammo-robust (core.metrics.table1_latex); needs \\usepackage{booktabs}",
        r"\begin{table}[tbp]",
        r"\centering",
        r"\scriptsize",
        r"\begin{tabular}{" + "l" * 2 + "r" + "l" * (len(cols) - 3) + "}",
        r"\toprule",
        " & ".join(latex_escape(c) for c in cols) + r" \\",
        r"\midrule",
    ]
    for _, row in layout.iterrows():
        lines.append(" & ".join(latex_escape(row[c]) for c in cols) + r" \\")
    lines += [r"\bottomrule", r"\end{tabular}"]
    notes = layout.attrs.get("footnotes", [])
    if notes:
        lines.append(r"\par\smallskip")
        lines.append(r"\parbox{\linewidth}{\scriptsize " + r" \\ ".join(latex_escape(n) for n in notes) + "}")
    if caption:
        lines.append(r"\caption{" + latex_escape(caption) + "}")
    lines.append(r"\end{table}")
    return "\n".join(lines) + "\n"
