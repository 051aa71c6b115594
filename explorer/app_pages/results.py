"""Results: AUC against each perturbation's parameter with interval bands, the study's Table 1 (CSV and
LaTeX), runs compared with paired DeLong tests, ROC curves and per-image or per-breast score changes of a run
(or of a scores table imported from elsewhere); open an image in the lab with the perturbation that changed
its score. AUCs resting on few cases are marked and warned about.

All numbers come from ``core.metrics`` (AUCs, bootstrap intervals, DeLong tests, curves and their
figures); scores and what a run knows beyond them (model resolution, image sizes) from ``core.runs``.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import streamlit as st

from core.errors import ExplorerError
from explorer.ui import guard, results_views


@st.cache_data(max_entries=4, show_spinner="Loading scores...")
def _scores(run_id: str, n_rows: int) -> pd.DataFrame:
    from core.metrics import validate_scores
    from core.runs import load_scores

    return validate_scores(load_scores(run_id))


@st.cache_data(max_entries=4, show_spinner="AUCs with bootstrap intervals...")
def _aucs(run_id: str, n_rows: int, n_resamples: int) -> pd.DataFrame:
    from core.metrics import auc_table

    return auc_table(_scores(run_id, n_rows), n_resamples=n_resamples)


@st.cache_data(max_entries=8, show_spinner="Table 1 (paired DeLong tests)...")
def _table1(run_id: str, n_rows: int, n_resamples: int, level: str, params: tuple, by_family: bool):
    from core.metrics.study_table import table1_cells
    from core.metrics.table1_format import table1_layout

    cells = table1_cells(
        _scores(run_id, n_rows), _aucs(run_id, n_rows, n_resamples), level=level, parameters=dict(params)
    )
    return table1_layout(cells, by_family=by_family), cells


@st.cache_data(max_entries=8, show_spinner="Reading the run's model and cohort...")
def _context(run_id: str, n_rows: int):
    from core.runs.context import run_context

    return run_context(run_id)


@st.cache_data(max_entries=4, show_spinner=False)
def _images(run_id: str) -> pd.DataFrame:
    """image_id, exam_id, laterality, view, path of the run's cohort (empty for imported tables, whose
    images are not here)."""
    from core.runs import RunStore, resolve_manifest
    from core.runs.context import cohort_present

    cols = ["image_id", "exam_id", "laterality", "view", "path"]
    try:
        config = RunStore.open(run_id).config()
        if config.weights == "imported" or not cohort_present(config.manifest):
            return pd.DataFrame(columns=cols)
        df = resolve_manifest(config)
    except (ExplorerError, OSError):
        return pd.DataFrame(columns=cols)
    return df[cols].astype(str)


def _import_box() -> None:
    from core.metrics.scores import read_scores_bytes
    from core.paths import perception_scores_csv
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
        allowed = guard.may_change_runs()
        if not allowed:
            st.caption(guard.refusal())
        if st.button("Import", key="res_import", disabled=not allowed) and guard.may_change_runs():
            try:
                with st.spinner("Checking and importing..."):
                    if up is not None:  # validated in memory: nothing is written unless it passes
                        frame = read_scores_bytes(up.getvalue(), Path(up.name).name)
                        run_id = import_scores(frame, source=Path(up.name).name)
                        what = up.name
                    elif path:
                        _check_readable(path, default)
                        run_id, what = import_scores(path), path
                    else:
                        raise ExplorerError("give a scores file or upload one")
                st.session_state["res_run"] = run_id
                st.success(f"Imported {what} as run {run_id}.")
            except (ExplorerError, OSError) as exc:
                st.error(str(exc))


def _check_readable(path: str, published: Path) -> None:
    """A server file the app may read: inside the allowed folders, or the published NYU scores file."""
    from core.access import check_allowed

    if published.is_file() and Path(path).is_file() and Path(path).samefile(published):
        return
    check_allowed(path)


def _runs() -> pd.DataFrame:
    from core.runs import list_runs

    runs = list_runs()
    return runs[runs["done"] > 0]


def _pick_run(runs: pd.DataFrame) -> tuple[str, int] | None:
    if runs.empty:
        st.info("No run with scores yet: start one on the Runs page, or import a scores table above.")
        return None
    from explorer.ui.chrome import PENDING_RUN

    labels = {
        r.run_id: f"{r.name or r.model} · {r.status} · {r.done} rows"
        + (f" · {r.errors} error rows" if r.errors else "")
        + f" · {r.run_id}"
        for r in runs.itertuples()
    }
    pending = st.session_state.pop(PENDING_RUN, None)  # "Open in Results" on the Runs page
    if pending in labels:
        st.session_state["res_run"] = pending
    if st.session_state.get("res_run") not in labels:
        st.session_state["res_run"] = next(iter(labels))
    run_id = st.selectbox("Run", list(labels), format_func=labels.get, key="res_run")
    done = int(runs.set_index("run_id").loc[run_id, "done"])
    return run_id, done


def _cond_label(c: pd.Series | dict) -> str:
    seed = f", seed {c['seed']}" if str(c.get("seed", "0")) not in ("0", "0.0") else ""
    if c["perturbation"] == "none":
        return f"{c['model']} · {c['weights']} · unperturbed{seed}"
    if str(c["perturbation"]).startswith("matched-"):  # its parameter is an L2 norm, not the target's
        return (
            f"{c['model']} · {c['weights']} · {c['perturbation']} sev {c['severity']} "
            f"(noise of L2 norm {c['parameter']:.0f} model units){seed}"
        )
    return (
        f"{c['model']} · {c['weights']} · {c['perturbation']} sev {c['severity']} ({c['parameter']:g}){seed}"
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


def _open_in_lab(run_id: str, table: pd.DataFrame, selected: int | None, cond: pd.Series, level: str) -> None:
    """Pick an image of the table (the clicked row by default; at breast level, one of the breast's views)
    and open it in the lab with ``cond``."""
    from core.perturb import PERTURBATIONS
    from explorer.ui import chrome
    from explorer.ui.lab import request_perturbation
    from explorer.ui.source import request_image

    images = _images(run_id)
    if images.empty:
        st.caption("This table's images are not on this server (e.g. imported scores): nothing to open.")
        return
    paths = dict(zip(images["image_id"], images["path"], strict=True))
    if level == "image":
        ids = [i for i in table["image_id"].astype(str) if i in paths]
        if selected is not None and str(table.iloc[selected]["image_id"]) in paths:
            st.session_state["res_open_image"] = str(table.iloc[selected]["image_id"])
    else:  # a breast: its views, in the order of the table's rows
        breast = images["exam_id"] + "|" + images["laterality"]
        order = {
            b: i for i, b in enumerate(table["exam_id"].astype(str) + "|" + table["laterality"].astype(str))
        }
        rows = images.assign(_o=breast.map(order)).dropna(subset=["_o"]).sort_values(["_o", "view"])
        ids = list(rows["image_id"])
        if selected is not None:
            pick = table.iloc[selected]
            mine = rows[
                (rows["exam_id"] == str(pick["exam_id"])) & (rows["laterality"] == str(pick["laterality"]))
            ]
            if len(mine):
                st.session_state["res_open_image"] = mine["image_id"].iloc[0]
    if not ids:
        st.caption("None of these cases' images is in the run's cohort here: nothing to open.")
        return
    if st.session_state.get("res_open_image") not in ids:
        st.session_state.pop("res_open_image", None)
    name = str(cond["perturbation"])
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
    base = [
        i for i, (_, c) in enumerate(conds.iterrows()) if c["perturbation"] == "none" or c["severity"] == 0
    ]
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
    pooled = level == "breast" and bool((scores["image_id"].astype(str) != "").any())
    unit = "images" if level == "image" else "breasts (mean over their views)" if pooled else "breasts"
    openable = "; click a row to open its image" if not _images(run_id).empty else ""
    st.caption(f"{len(table)} {unit}, largest score change first{openable}.")
    if level == "breast":
        table = table.drop(columns=["view", "image_id"])
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
    _open_in_lab(run_id, table, rows[0] if rows else None, cb, level)


def _counts(aucs: pd.DataFrame, level: str) -> str:
    """``"61 malignant and 1379 other breasts"`` of the unperturbed conditions (range over weights)."""
    from core.metrics.parameters import is_unperturbed

    a = aucs[aucs["level"] == level]
    un = a[[is_unperturbed(p, s) for p, s in zip(a["perturbation"], a["severity"], strict=True)]]
    un = un if len(un) else a

    def rng(col: str) -> str:
        lo, hi = int(un[col].min()), int(un[col].max())
        return f"{lo}" if lo == hi else f"{lo}-{hi}"

    unit = "images" if level == "image" else "breasts"
    return f"n_pos {rng('n_pos')} malignant and n_neg {rng('n_neg')} other {unit} per condition"


def render() -> None:
    st.header("Results")
    _import_box()
    runs = _runs()
    picked = _pick_run(runs)
    if picked is None:
        return
    run_id, done = picked
    try:
        scores = _scores(run_id, done)
        context = _context(run_id, done)
    except ExplorerError as exc:
        st.error(str(exc))
        return
    from core.metrics import conditions
    from core.metrics.flags import small_sample_warning

    has_images = scores["image_id"].astype(str).str.len().gt(0).any()
    levels = ["image", "breast"] if has_images else ["breast"]
    c1, c2, c3 = st.columns([1, 1, 2])
    level = c1.radio("Level", levels, key="res_level", horizontal=True)
    n_res = c2.select_slider("Bootstrap resamples", [0, 200, 1000, 2000], 200, key="res_boot")
    weights = sorted(scores["weights"].astype(str).unique())
    demo = [w for w in weights if w == "demo"]
    n_series = len(scores[["model", "weights"]].drop_duplicates())
    try:
        aucs = _aucs(run_id, done, int(n_res))
    except ExplorerError as exc:
        st.error(str(exc))
        return
    c3.caption(
        f"{results_views.md_text(context.label)} · {len(scores)} score rows · "
        f"models {', '.join(sorted(scores['model'].astype(str).unique()))}"
        f" · {n_series} series (model · weights) · {_counts(aucs, level)}"
        + (" · **demo weights: synthetic training, not a clinical model**" if demo else "")
    )
    warning = small_sample_warning(aucs[aucs["level"] == level])
    if warning:
        st.warning(warning, icon="⚠️")
    conds = conditions(scores).reset_index(drop=True)
    tabs = st.tabs(["AUC vs parameter", "Table 1", "Compare runs", "ROC", "Per case", "AUC table"])
    with tabs[0]:
        results_views.curves_view(aucs, level, context)
    with tabs[1]:
        results_views.table1_view(
            scores,
            aucs,
            level,
            run_id,
            lambda params, fam: _table1(run_id, done, int(n_res), level, params, fam),
        )
    with tabs[2]:
        results_views.compare_view(
            run_id,
            runs,
            level,
            lambda r: _scores(r, int(runs.set_index("run_id").loc[r, "done"])),
            lambda r: _context(r, int(runs.set_index("run_id").loc[r, "done"])),
        )
    with tabs[3]:
        _roc(scores, conds, level)
    with tabs[4]:
        _changes(run_id, scores, conds, level)
    with tabs[5]:
        st.dataframe(aucs[aucs["level"] == level], hide_index=True, width="stretch")
        st.download_button(
            "Download AUC table (CSV)",
            aucs.to_csv(index=False).encode(),
            file_name=f"{run_id}_auc.csv",
            mime="text/csv",
            key="res_dl_auc",
        )


render()
