"""Runs: configure a robustness run, see the work it implies, start it in a worker process, watch, cancel.

Everything runs through ``core.runs``: the page builds a ``RunConfig``, asks ``estimate_work`` what it will
cost, and ``submit_run`` queues it for the detached runner (``mammo-robust run --runner``), the same code
path as the command line. Progress is polled from the run's SQLite store in a fragment that reruns itself.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

import pandas as pd
import streamlit as st

from core.errors import ExplorerError

WEIGHTS_HELP = (
    "'demo': weights trained on the synthetic demo cohort, to show the method: they are not a clinical "
    "model. 'random': untrained, to test the plumbing. Or the path of a weights file (official NYU "
    "weights or your own); weight files are loaded as tensors only."
)
POLL_S = 2.0


def weights_label(weights: str) -> str:
    """How the UI names a weights value; demo weights are always labelled as such."""
    if weights == "demo":
        return "demo weights (synthetic cohort; not for clinical use)"
    if weights == "random":
        return "random weights (untrained)"
    if weights == "imported":
        return "imported scores"
    return weights


@st.cache_data(max_entries=16, show_spinner="Counting the work (the cohort is generated on first use)...")
def _estimate(config_json: str) -> dict:
    from core.runs import RunConfig, estimate_work

    return estimate_work(RunConfig.from_json(config_json))


def _severity_label(name: str, sev: int) -> str:
    from core.perturb import PERTURBATIONS

    p = PERTURBATIONS[name]
    return f"{sev}: {p.parameter} {p.grid[sev]:g}"


def _perturbation_inputs() -> tuple[dict[str, list[int]], dict[str, str]]:
    """Per perturbation: severities of its grid, and a box for values of one's own (raw text)."""
    from core.perturb import PERTURBATIONS, SEVERITIES

    st.markdown(
        "**Perturbations: severities, or values of your own** (the unperturbed condition is always included)"
    )
    grid: dict[str, list[int]] = {}
    values: dict[str, str] = {}
    cols = st.columns(len(PERTURBATIONS))
    for col, name in zip(cols, PERTURBATIONS, strict=True):
        p = PERTURBATIONS[name]
        sevs = col.multiselect(
            f"{name} ({p.parameter}, {p.unit})",
            [s for s in SEVERITIES if s > 0],
            key=f"run_sev_{name}",
            format_func=lambda s, n=name: _severity_label(n, s),
        )
        if sevs:
            grid[name] = sorted(int(s) for s in sevs)
        values[name] = col.text_input(
            f"{name} values ({p.unit})",
            key=f"run_par_{name}",
            placeholder="e.g. 3, 2.5, 1.5" if p.unit == "cycles/mm" else "comma-separated",
            help=f"Explicit {p.parameter} values in {p.unit}, checked against the perturbation's range.",
        )
    return grid, values


def _parse_values(values: dict[str, str]) -> dict[str, list[float]] | None:
    """The values boxes as numbers (the run config checks their ranges); None after an error."""
    parameters: dict[str, list[float]] = {}
    for name, text in values.items():
        try:
            chosen = [float(v) for v in text.replace(" ", "").split(",") if v]
        except ValueError:
            st.error(f"{name} values: expected numbers separated by commas, got {text!r}")
            return None
        if chosen:
            parameters[name] = chosen
    return parameters


def _form() -> Any:
    """The run's settings; returns a validated ``RunConfig`` or None (after showing why)."""
    from core.runs import RunConfig

    c1, c2, c3 = st.columns(3)
    model = c1.radio("Model", ["gmic", "dmv"], format_func=str.upper, key="run_model", horizontal=True)
    choice = c2.selectbox("Weights", ["demo", "random", "file..."], key="run_weights", help=WEIGHTS_HELP)
    weights = choice
    if choice == "file...":
        weights = c2.text_input("Weights file on the server", key="run_weights_path").strip()
    elif choice == "demo":
        from core.paths import ASSETS_DIR

        demo = ASSETS_DIR / "weights" / f"{model}-demo.pt"  # where core.models.create_model looks
        c2.caption("Demo weights: trained on the synthetic cohort; not a clinical model.")
        if not demo.is_file():
            c2.warning(
                f"{demo.name} is not installed in {demo.parent}: train it (`mammo-robust train`) or "
                "choose other weights."
            )
            weights = ""
    cohort = c3.selectbox("Cohort", ["tiny", "demo", "manifest..."], key="run_cohort")
    manifest = cohort
    if cohort == "manifest...":
        manifest = c3.text_input("Manifest CSV on the server", key="run_manifest").strip()
    split = c3.selectbox("Split", ["all", "train", "val", "test"], key="run_split")

    grid, values = _perturbation_inputs()
    c1, c2, c3, c4 = st.columns(4)
    matched = c1.checkbox(
        "Matched-noise baselines",
        key="run_matched",
        help="For every filter and shuffle condition, Gaussian noise with the same average L2 norm over "
        "the cohort (the study's baseline, Table 1).",
    )
    seeds_text = c2.text_input("Seeds (comma-separated)", "0", key="run_seeds")
    max_images = int(c3.number_input("Max images (0: all)", 0, 100_000, 0, key="run_max_images"))
    batch = int(c4.number_input("Batch size", 1, 256, 8, key="run_batch"))
    name = st.text_input("Name (optional)", key="run_name")
    if not weights or not manifest:
        if choice != "demo":
            st.info("Give the weights file and the manifest path.")
        return None
    try:
        seeds = [int(s) for s in seeds_text.replace(" ", "").split(",") if s]
    except ValueError:
        st.error(f"Seeds: expected integers separated by commas, got {seeds_text!r}")
        return None
    parameters = _parse_values(values)
    if parameters is None:
        return None
    try:
        return RunConfig(
            model=model,
            manifest=manifest,
            weights=weights,
            perturbations=grid,
            parameters=parameters,
            seeds=seeds,
            matched_baseline=matched,
            split=None if split == "all" else split,
            max_images=max_images or None,
            batch_size=batch,
            name=name,
        )
    except ExplorerError as exc:
        st.error(str(exc))
        return None


def _estimate_box(config: Any) -> bool:
    """Show the work a run implies; True when it can start."""
    try:
        est = _estimate(config.to_json())
    except ExplorerError as exc:
        st.error(str(exc))
        return False
    c = st.columns(5)
    c[0].metric("Items (images)" if config.model == "gmic" else "Items (exams)", est["n_items"])
    c[1].metric("Images", est["n_images"])
    c[2].metric("Conditions", est["n_conditions"])
    c[3].metric("Score rows", est["n_rows"])
    c[4].metric("Model inputs", est["n_inputs"])
    if est["problems"]:
        with st.expander(f"{len(est['problems'])} item(s) left out"):
            for p in est["problems"]:
                st.write(str(p))
    return est["n_items"] > 0


def _fmt_time(seconds: float | None) -> str:
    if seconds is None:
        return "–"
    return str(dt.timedelta(seconds=int(seconds)))


@st.fragment(run_every=POLL_S)
def _runs_table() -> None:
    """Every run with live progress; reruns itself every POLL_S seconds."""
    from core.runs import cancel_run, delete_run, list_runs, resume_run, run_status

    runs = list_runs()
    if runs.empty:
        st.info("No runs yet.")
        return
    active = runs[runs["status"].isin(["running", "queued"])]
    for _, row in active.iterrows():
        s = run_status(row["run_id"])
        label = f"{s.run_id} · {s.model} · {weights_label(s.weights)} · {s.status}"
        rate = f"{s.rate:.2f} rows/s" if s.rate else "rate –"
        st.progress(s.fraction, text=f"{label}: {s.done}/{s.total} rows · {rate} · ETA {_fmt_time(s.eta_s)}")
        if st.button("Cancel", key=f"cancel_{s.run_id}"):
            cancel_run(s.run_id)
            st.toast(f"Cancelling {s.run_id}")
    table = runs.assign(
        weights=runs["weights"].map(weights_label),
        created=pd.to_datetime(runs["created"], unit="s").dt.strftime("%Y-%m-%d %H:%M:%S"),
        progress=[f"{d}/{t}" for d, t in zip(runs["done"], runs["total"], strict=True)],
    )[["run_id", "name", "model", "weights", "status", "progress", "created"]]
    st.dataframe(table, hide_index=True, width="stretch")
    c1, c2, c3 = st.columns([3, 1, 1])
    pick = c1.selectbox("Run", list(runs["run_id"]), key="runs_pick", label_visibility="collapsed")
    status = runs.set_index("run_id").loc[pick, "status"] if pick else None
    if c2.button("Resume", key="runs_resume", disabled=status not in ("cancelled", "interrupted", "failed")):
        try:
            resume_run(pick)
        except ExplorerError as exc:
            st.error(str(exc))
    if c3.button("Delete", key="runs_delete", disabled=status in ("running", None)):
        try:
            delete_run(pick)
            st.rerun(scope="fragment")
        except ExplorerError as exc:
            st.error(str(exc))
    if pick:
        err = run_status(pick).error
        if err:
            st.error(f"{pick}: {err}")


def render() -> None:
    st.header("Runs")
    st.caption(
        "A run scores every image (GMIC) or breast (DMV) of a cohort under each perturbation and severity, "
        "in a separate worker process; results are stored as they come and a killed run resumes."
    )
    with st.container(border=True):
        config = _form()
        ok = config is not None and _estimate_box(config)
        if st.button("Start run", type="primary", disabled=not ok, key="run_start"):
            from core.runs import submit_run

            try:
                run_id = submit_run(config)
                st.session_state["runs_pick"] = run_id
                st.success(f"Queued {run_id}; the worker starts it in a moment.")
            except ExplorerError as exc:
                st.error(str(exc))
    st.subheader("Runs in this data folder")
    _runs_table()


render()
