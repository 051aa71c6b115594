"""Results: AUC versus severity with interval bands, ROC curves, the study's Table 1 and per-image score
changes of a run (or of a scores table imported from elsewhere); open an image in the lab with the
perturbation that changed its score.

All numbers come from ``core.metrics`` (AUCs, bootstrap intervals, DeLong tests, curves and their
figures); scores from ``core.runs``.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import streamlit as st

from core.errors import ExplorerError


@st.cache_data(max_entries=4, show_spinner="Loading scores...")
def _scores(run_id: str, n_rows: int) -> pd.DataFrame:
    from core.metrics import validate_scores
    from core.runs import load_scores

    return validate_scores(load_scores(run_id))


@st.cache_data(max_entries=4, show_spinner="AUCs with bootstrap intervals...")
def _aucs(run_id: str, n_rows: int, n_resamples: int) -> pd.DataFrame:
    from core.metrics import auc_table

    return auc_table(_scores(run_id, n_rows), n_resamples=n_resamples)


@st.cache_data(max_entries=4, show_spinner="Table 1 (paired DeLong tests)...")
def _table1(run_id: str, n_rows: int, n_resamples: int, level: str) -> pd.DataFrame:
    from core.metrics import table1

    return table1(_scores(run_id, n_rows), _aucs(run_id, n_rows, n_resamples), level=level)


@st.cache_data(max_entries=4, show_spinner=False)
def _image_paths(run_id: str) -> dict[str, str]:
    """image_id -> file of the run's cohort (empty for imported tables, which have no images here)."""
    from core.runs import RunStore, resolve_manifest

    try:
        df = resolve_manifest(RunStore.open(run_id).config())
    except (ExplorerError, OSError):
        return {}
    return dict(zip(df["image_id"].astype(str), df["path"].astype(str), strict=True))


def _import_box() -> None:
    from core.paths import data_dir, perception_scores_csv
    from core.runs import import_scores

    with st.expander("Import a scores table as a run (CSV or Parquet with the scores columns)"):
        default = perception_scores_csv()
        path = st.text_input(
            "Scores file on the server",
            str(default) if default.is_file() else "",
            key="res_import_path",
            help="e.g. the published NYU reader-study scores (perception-comparison/scores.csv).",
        )
        up = st.file_uploader("...or upload one", type=["csv", "parquet"], key="res_import_upload")
        if st.button("Import", key="res_import"):
            try:
                if up is not None:
                    target = data_dir() / "imports" / Path(up.name).name
                    target.parent.mkdir(parents=True, exist_ok=True)
                    target.write_bytes(up.getvalue())
                    path = str(target)
                if not path:
                    raise ExplorerError("give a scores file or upload one")
                with st.spinner("Importing..."):
                    run_id = import_scores(path)
                st.session_state["res_run"] = run_id
                st.success(f"Imported {path} as run {run_id}.")
            except (ExplorerError, OSError) as exc:
                st.error(str(exc))


def _pick_run() -> tuple[str, int] | None:
    from core.runs import list_runs

    runs = list_runs()
    runs = runs[runs["done"] > 0]
    if runs.empty:
        st.info("No run with scores yet: start one on the Runs page, or import a scores table above.")
        return None
    labels = {
        r.run_id: f"{r.run_id} · {r.name or r.model} · {r.status} · {r.done} rows" for r in runs.itertuples()
    }
    if st.session_state.get("res_run") not in labels:
        st.session_state["res_run"] = next(iter(labels))
    run_id = st.selectbox("Run", list(labels), format_func=labels.get, key="res_run")
    done = int(runs.set_index("run_id").loc[run_id, "done"])
    return run_id, done


def _cond_label(c: pd.Series | dict) -> str:
    seed = f", seed {c['seed']}" if str(c.get("seed", "0")) not in ("0", "0.0") else ""
    if c["perturbation"] == "none":
        return f"{c['model']} · {c['weights']} · unperturbed{seed}"
    return (
        f"{c['model']} · {c['weights']} · {c['perturbation']} sev {c['severity']} ({c['parameter']:g}){seed}"
    )


def _curves(aucs: pd.DataFrame, level: str) -> None:
    from core.metrics import auc_vs_severity
    from core.metrics.figures import auc_vs_severity_figure

    by_family = st.toggle(
        "Group weights by family (seeds / readers: mean line, min-max band)", True, key="res_family"
    )
    curves = auc_vs_severity(aucs[aucs["level"] == level], by_family=by_family)
    if curves.empty or curves["auc"].isna().all():
        st.info("No AUC at this level (a condition needs both positive and negative cases).")
        return
    fig = auc_vs_severity_figure(curves, title=f"AUC versus severity ({level} level)")
    fig.update_layout(height=460)
    st.plotly_chart(fig, key="res_curves")
    st.caption(
        "Severity 0 is the unperturbed condition. Bands: the 95% bootstrap interval of a single model, or "
        "the min-max over the members of a family."
    )


def _roc(scores: pd.DataFrame, conds: pd.DataFrame, level: str) -> None:
    from core.metrics import roc_points
    from core.metrics.figures import roc_figure

    labels = [_cond_label(c) for _, c in conds.iterrows()]
    unperturbed = [lab for lab, p in zip(labels, conds["perturbation"], strict=True) if p == "none"]
    default = (unperturbed + [lab for lab in labels if lab not in unperturbed])[:3]
    chosen = st.multiselect("Conditions", labels, default, key="res_roc_conds")
    if not chosen:
        return
    parts = []
    for lab in chosen:
        cond = conds.iloc[labels.index(lab)]
        pick = {k: cond[k] for k in ("model", "weights", "perturbation", "severity", "seed")}
        parts.append(roc_points(scores, level=level, condition=pick))
    roc = pd.concat(parts, ignore_index=True)
    if roc.empty:
        st.info("These conditions have no positive or no negative case at this level.")
        return
    fig = roc_figure(roc, title=f"ROC ({level} level)")
    fig.update_layout(height=460)
    st.plotly_chart(fig, key="res_roc")


def _open_in_lab(run_id: str, table: pd.DataFrame, selected: int | None, cond: pd.Series) -> None:
    """Pick an image of the table (the clicked row by default) and open it in the lab with ``cond``."""
    from core.perturb import PERTURBATIONS
    from explorer.ui import chrome
    from explorer.ui.lab import request_perturbation
    from explorer.ui.source import request_image

    paths = _image_paths(run_id)
    ids = [i for i in table["image_id"].astype(str) if i in paths]
    if not ids:
        st.caption("This table's images are not on this server (e.g. imported scores): nothing to open.")
        return
    name = str(cond["perturbation"])
    if selected is not None and str(table.iloc[selected]["image_id"]) in paths:
        st.session_state["res_open_image"] = str(table.iloc[selected]["image_id"])
    c1, c2 = st.columns([2, 3])
    image_id = c1.selectbox("Image to open", ids, key="res_open_image", label_visibility="collapsed")
    what = f"{name} {cond['parameter']:g}" if name in PERTURBATIONS else "no perturbation"
    if c2.button(f"Open in the image lab with {what}", key="res_open_lab"):
        request_image(paths[image_id])
        if name in PERTURBATIONS:
            request_perturbation(name, float(cond["parameter"]), int(cond["seed"]))
        st.switch_page(chrome.page("Image lab"))
    if name not in PERTURBATIONS:
        st.caption(f"The image lab has no control for '{name}'; the image opens unperturbed.")


def _changes(run_id: str, scores: pd.DataFrame, conds: pd.DataFrame, level: str) -> None:
    from core.metrics import score_changes

    labels = [_cond_label(c) for _, c in conds.iterrows()]
    base = [i for i, (_, c) in enumerate(conds.iterrows()) if c["perturbation"] == "none"]
    c1, c2 = st.columns(2)
    a = c1.selectbox("From", labels, index=base[0] if base else 0, key="res_chg_a")
    others = [lab for lab in labels if lab != a] or labels
    b = c2.selectbox("To", others, key="res_chg_b")
    ca, cb = conds.iloc[labels.index(a)], conds.iloc[labels.index(b)]
    keys = ("model", "weights", "perturbation", "severity", "seed")
    try:
        table = score_changes(scores, {k: ca[k] for k in keys}, {k: cb[k] for k in keys}, level=level)
    except ExplorerError as exc:
        st.error(str(exc))
        return
    st.caption(f"{len(table)} cases, largest score change first; click a row to open its image.")
    event = st.dataframe(
        table,
        hide_index=True,
        width="stretch",
        height=min(320, 35 * (len(table) + 1) + 3),
        on_select="rerun",
        selection_mode="single-row",
        key="res_changes",
        column_config={
            "change": st.column_config.NumberColumn(format="%+.4f"),
            "score_a": st.column_config.NumberColumn("score (from)", format="%.4f"),
            "score_b": st.column_config.NumberColumn("score (to)", format="%.4f"),
        },
    )
    rows = event.selection.rows if event is not None else []
    if level == "image":
        _open_in_lab(run_id, table, rows[0] if rows else None, cb)
    else:
        st.caption("Breast-level rows pool several images; switch to the image level to open one.")


def render() -> None:
    st.header("Results")
    _import_box()
    picked = _pick_run()
    if picked is None:
        return
    run_id, done = picked
    try:
        scores = _scores(run_id, done)
    except ExplorerError as exc:
        st.error(str(exc))
        return
    from core.metrics import conditions

    has_images = scores["image_id"].astype(str).str.len().gt(0).any()
    levels = ["image", "breast"] if has_images else ["breast"]
    c1, c2, c3 = st.columns([1, 1, 2])
    level = c1.radio("Level", levels, key="res_level", horizontal=True)
    n_res = c2.select_slider("Bootstrap resamples", [0, 200, 1000, 2000], 200, key="res_boot")
    weights = sorted(scores["weights"].astype(str).unique())
    demo = [w for w in weights if w == "demo"]
    c3.caption(
        f"{len(scores)} score rows · models {', '.join(sorted(scores['model'].astype(str).unique()))} · "
        f"{len(weights)} weights"
        + (" · **demo weights: synthetic training, not a clinical model**" if demo else "")
    )
    try:
        aucs = _aucs(run_id, done, int(n_res))
    except ExplorerError as exc:
        st.error(str(exc))
        return
    conds = conditions(scores).reset_index(drop=True)
    tabs = st.tabs(["AUC vs severity", "ROC", "Table 1", "Per image", "AUC table"])
    with tabs[0]:
        _curves(aucs, level)
    with tabs[1]:
        _roc(scores, conds, level)
    with tabs[2]:
        try:
            t1 = _table1(run_id, done, int(n_res), level)
            st.caption(
                "AUC per condition; in parentheses the difference to the matched-noise baseline (the study's "
                "Table 1), or the bare AUC when the run has no baseline."
            )
            view = t1.assign(column=t1["model"].astype(str) + " · " + t1["weights"].astype(str))
            view["condition"] = [
                "unperturbed" if p == "none" else f"{p} {par:g}"
                for p, par in zip(view["perturbation"], view["parameter"], strict=True)
            ]
            pivot = view.pivot_table(index="condition", columns="column", values="cell", aggfunc="first")
            st.dataframe(pivot, width="stretch")
            with st.expander("All columns (AUC, differences, DeLong p-values)"):
                st.dataframe(t1, hide_index=True, width="stretch")
        except ExplorerError as exc:
            st.error(str(exc))
    with tabs[3]:
        _changes(run_id, scores, conds, level)
    with tabs[4]:
        st.dataframe(aucs[aucs["level"] == level], hide_index=True, width="stretch")
        st.download_button(
            "Download AUC table (CSV)",
            aucs.to_csv(index=False).encode(),
            file_name=f"{run_id}_auc.csv",
            mime="text/csv",
            key="res_dl_auc",
        )


render()
