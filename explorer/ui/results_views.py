"""Parts of the Results page: the curves against each perturbation's parameter, the study's Table 1 with its
downloads, and the comparison of runs. Numbers and figures come from ``core.metrics``; this module only
lays them out."""

from __future__ import annotations

import pandas as pd
import streamlit as st

from core.errors import ExplorerError

CURVES_HELP = (
    "Solid: the perturbation at its parameter; light band: the 95% bootstrap interval of one weights, or the "
    "min-max over the members of a family; dashed squares: the matched-noise baseline, drawn at the "
    "parameter "
    "of the perturbation it matches (hover for its noise std); dotted level: the unperturbed AUC; open "
    "markers: fewer than 30 positive or negative cases, or an interval wider than 0.2."
)


def md_text(text: str) -> str:
    """Plain text from core (footnotes, notes) safe to show with st.caption: markdown marks escaped."""
    for ch in ("\\", "*", "_", "$", "[", "]", "#", "`", "~"):
        text = text.replace(ch, "\\" + ch)
    return text


def flagged_points(curves: pd.DataFrame) -> pd.DataFrame:
    """The points of a curve table whose AUC is not to be trusted, for a warning's detail."""
    cols = ["series", "perturbation", "kind", "x", "auc", "n_pos", "n_neg", "flag"]
    flagged = curves.loc[curves["flag"] != "", cols].drop_duplicates(["series", "perturbation", "kind", "x"])
    return flagged.rename(columns={"x": "parameter"})


def curves_view(aucs: pd.DataFrame, level: str, context) -> None:
    """AUC against each perturbation's parameter, one panel per perturbation."""
    from core.metrics.curve_figures import parameter_figure
    from core.metrics.curves import auc_vs_parameter
    from core.metrics.report import curve_notes

    c1, c2 = st.columns(2)
    by_family = c1.toggle("Pool weights families (seeds, readers)", True, key="res_family")
    bands = c2.toggle("Show bands", True, key="res_bands")
    curves = auc_vs_parameter(
        aucs[aucs["level"] == level], group="family" if by_family else "weights", context=context
    )
    if curves.empty or curves["auc"].isna().all():
        st.info("No AUC at this level (a condition needs both positive and negative cases).")
        return
    fig = parameter_figure(
        curves, title=f"AUC against each perturbation's parameter ({level} level)", bands=bands
    )
    fig.update_layout(width=None)
    st.plotly_chart(fig, key="res_curves")
    st.caption(CURVES_HELP)
    for note in curve_notes(curves):
        st.caption(md_text(note))
    flagged = flagged_points(curves)
    if len(flagged):
        st.warning(
            f"{len(flagged)} point(s) marked with open markers: too few cases or too wide an interval to "
            "read a "
            "change from them."
        )
        with st.expander("Marked points"):
            st.dataframe(flagged, hide_index=True, width="stretch")
    with st.expander("Curve points (numbers)"):
        st.dataframe(curves, hide_index=True, width="stretch")


def _table1_parameters(aucs: pd.DataFrame) -> dict[str, float]:
    """Per Table 1 column, the parameter to show: the study's when the table has it, else the user's pick."""
    from core.metrics.parameters import axis_for
    from core.metrics.study_table import table1_columns

    chosen: dict[str, float] = {}
    cols = [c for c in table1_columns(aucs) if "condition in this table" not in c["missing"]]
    if not cols:
        return chosen
    widgets = st.columns(len(cols))
    for w, col in zip(widgets, cols, strict=True):
        pert = col["perturbation"]
        have = sorted({float(v) for v in aucs.loc[aucs["perturbation"] == pert, "parameter"]})
        index = (
            None if col["missing"] else have.index(next(h for h in have if abs(h - col["parameter"]) < 1e-9))
        )
        pick = w.selectbox(
            f"{col['title']} ({axis_for(pert).symbol})",
            have,
            index=index,
            key=f"res_t1_{col['title']}",
            format_func=lambda v: f"{v:g}",
            placeholder="not at the study's value: choose",
        )
        if pick is not None:
            chosen[col["title"]] = float(pick)
    return chosen


def table1_view(scores: pd.DataFrame, aucs: pd.DataFrame, level: str, file_stem: str, cached) -> None:
    """The study's Table 1 with CSV and LaTeX downloads. ``cached(params, by_family)`` returns the layout
    and its numbers (the page caches them)."""
    from core.metrics.table1_format import table1_latex

    a = aucs[aucs["level"] == level]
    st.caption(
        "Rows: model x weights (or family); columns: the study's perturbations at its parameters. "
        "Cells: AUC, "
        "and in parentheses its difference to the matched-noise baseline."
    )
    params = _table1_parameters(a)
    by_family = st.toggle("Families as mean ± sd [min-max]", True, key="res_t1_family")
    try:
        layout, cells = cached(tuple(sorted(params.items())), by_family)
    except ExplorerError as exc:
        st.error(str(exc))
        return
    st.dataframe(layout, hide_index=True, width="stretch", key="res_t1_table")
    for note in layout.attrs.get("footnotes", []):
        st.caption(md_text(note))
    c1, c2, c3 = st.columns(3)
    c1.download_button(
        "Table 1 (CSV)",
        layout.to_csv(index=False).encode(),
        file_name=f"{file_stem}_table1.csv",
        mime="text/csv",
        key="res_dl_t1_csv",
    )
    c2.download_button(
        "Table 1 (LaTeX)",
        table1_latex(layout).encode(),
        file_name=f"{file_stem}_table1.tex",
        mime="text/x-tex",
        key="res_dl_t1_tex",
    )
    c3.download_button(
        "Numbers per weights (CSV)",
        cells.to_csv(index=False).encode(),
        file_name=f"{file_stem}_table1_cells.csv",
        mime="text/csv",
        key="res_dl_t1_cells",
    )
    with st.expander("Numbers per weights (AUC, n, differences, DeLong p-values, shared cases)"):
        st.dataframe(cells, hide_index=True, width="stretch")


def _short(name: str, run_id: str) -> str:
    """A run's label in the comparison: its name, shortened, and the end of its id."""
    name = name if len(name) <= 28 else name[:27] + "…"
    return f"{name} ({run_id[-6:]})"


def compare_view(current: str, runs: pd.DataFrame, level: str, load, context_of) -> None:
    """Several runs on one figure, with DeLong's paired tests against a reference series on shared cases.

    ``load(run_id)`` returns a run's validated scores, ``context_of(run_id)`` its ScoreContext.
    """
    from core.metrics.compare import compare_runs, series_label
    from core.metrics.curve_figures import parameter_figure
    from core.metrics.parameters import natural_key
    from core.metrics.scores import weights_family

    shown = {r.run_id: _short(r.name or r.model, r.run_id) for r in runs.itertuples()}
    picked = st.multiselect(
        "Runs to compare", list(shown), [current], format_func=lambda r: shown.get(r, r), key="res_cmp_runs"
    )
    if not picked:
        st.info("Choose one or more runs.")
        return
    names = {r: "" if len(picked) == 1 else shown[r] for r in picked}  # one run: no run label needed
    tables = {names[r]: load(r) for r in picked}
    all_series = [
        (lab, m, w)
        for lab, df in tables.items()
        for m, w in sorted(
            df[["model", "weights"]].drop_duplicates().itertuples(index=False),
            key=lambda t: tuple(map(natural_key, t)),
        )
    ]
    labels = {series_label(*s): s for s in all_series}
    firsts = {}
    for lab, s in labels.items():  # by default one member per family (seed 0, reader 0) of each run
        firsts.setdefault((s[0], s[1], weights_family(s[2])), lab)
    default = list(firsts.values())[:8]
    chosen = st.multiselect("Series (model · weights)", list(labels), default, key="res_cmp_series")
    if len(chosen) < 2:
        st.info(
            "Choose at least two series (weights, runs) to compare; checkpoints `<run>-epoch<N>` form one."
        )
        return
    c1, c2 = st.columns([3, 1])
    ref = c1.selectbox("Reference of the paired tests", chosen, key="res_cmp_ref")
    by_family = c2.toggle("Pool families in the figure", False, key="res_cmp_family")
    sub = {}
    for lab, df in tables.items():
        keep = {(m, w) for (s_lab, m, w) in (labels[c] for c in chosen) if s_lab == lab}
        mask = pd.Series(list(zip(df["model"], df["weights"], strict=True)), index=df.index).isin(keep)
        if mask.any():
            sub[lab] = df[mask]
    try:
        comp = compare_runs(
            sub,
            reference=labels[ref],
            level=level,
            group="family" if by_family else "weights",
            n_resamples=200,
            contexts={names[r]: context_of(r) for r in picked},
        )
    except ExplorerError as exc:
        st.error(str(exc))
        return
    fig = parameter_figure(comp.curves, title=f"Compared runs ({level} level)")
    fig.update_layout(width=None)
    st.plotly_chart(fig, key="res_cmp_fig")
    st.caption(CURVES_HELP)
    st.markdown(f"**Paired DeLong tests against {ref}**, per condition, on the {level}s both scored")
    st.dataframe(
        comp.tests,
        hide_index=True,
        width="stretch",
        key="res_cmp_tests",
        column_config={"p_value": st.column_config.NumberColumn(format="%.4f")},
    )
    st.download_button(
        "Tests (CSV)",
        comp.tests.to_csv(index=False).encode(),
        file_name="compare_tests.csv",
        mime="text/csv",
        key="res_dl_cmp",
    )
