"""Runs: configure a robustness run, see the work it implies, start it in a worker process, watch, cancel,
resume, delete, list the images it could not score, and open a finished run in Results.

Everything runs through ``core.runs``: the page builds a ``RunConfig``, checks its weights and the allowed
folders (``core.runs.check_access``, ``check_weights``) and asks ``estimate_work`` what it will cost, and
``submit_run`` queues it for the detached runner (``mammo-robust run --runner``), the same code path as
the command line. Progress is polled from the run's SQLite store in a fragment that reruns itself. Run
actions need the runs token where ``explorer.ui.guard`` says so.
"""

from __future__ import annotations

import os
from typing import Any

import streamlit as st

from core.errors import ExplorerError
from core.models.demo_weights import DEMO_LABELS, demo_path, describe_demo
from explorer.ui import guard
from explorer.ui.runs_views import error_summary, progress_text, runs_table

WEIGHTS_HELP = (
    "'demo': weights trained on the synthetic demo cohort at the study's 0.1 mm pixels (they see up to 5 "
    "cycles/mm), to show the method: they are not a clinical model. 'demo-fast': the same at 0.3 mm pixels "
    "(a ninth of the work; they see up to 1.67 cycles/mm, below the study's band). 'random': untrained, "
    "to test the plumbing. Or the path of a weights file (official NYU weights or your own); weight files "
    "are loaded as tensors only."
)
POLL_S = 2.0
RESUMABLE = ("cancelled", "interrupted", "failed")
RETRY_HELP = (
    "Score again the images this run could not read or score (after fixing their files); a plain resume "
    "does not retry them."
)


GOTO_RESULTS = "runs_goto_results"  # set by "Open in Results"; the next full run switches pages


@st.cache_data(max_entries=16, show_spinner="Counting the work (the cohort is generated on first use)...")
def _estimate(config_json: str, roots: tuple[str, ...]) -> dict:
    from core.runs import RunConfig, estimate_work

    return estimate_work(RunConfig.from_json(config_json), roots=roots)


@st.cache_data(max_entries=16, show_spinner="Checking the weights...")
def _weights_problem(model: str, weights: str, signature: tuple | None) -> str:
    """Why the run could not load these weights (``""``: it can); cached per file content."""
    from core.runs import RunConfig, check_weights

    try:
        check_weights(RunConfig(model=model, manifest="tiny", weights=weights))
    except ExplorerError as exc:
        return str(exc)
    return ""


def _signature(path: str) -> tuple | None:
    try:
        st_ = os.stat(path)
    except OSError:
        return None
    return (st_.st_size, st_.st_mtime_ns)


def _roots() -> tuple[str, ...]:
    from core.access import allowed_roots

    return tuple(str(r) for r in allowed_roots())


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
    choice = c2.selectbox(
        "Weights", [*DEMO_LABELS, "random", "file..."], key="run_weights", help=WEIGHTS_HELP
    )
    weights = choice
    if choice == "file...":
        weights = c2.text_input("Weights file on the server", key="run_weights_path").strip()
    elif choice in DEMO_LABELS:
        demo = demo_path(model, choice)  # where core.models.create_model looks
        c2.caption(
            f"{choice} weights: {describe_demo(choice)}; trained on the synthetic cohort; not a clinical "
            "model."
        )
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
    """Check the files (allowed folders, weights) and show the work a run implies; True when it can start."""
    from core.runs import check_access

    try:
        check_access(config, _roots())
    except ExplorerError as exc:
        st.error(str(exc))
        return False
    problem = _weights_problem(config.model, config.weights, _signature(config.weights))
    if problem:
        st.error(problem)
        return False
    try:
        est = _estimate(config.to_json(), _roots())
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


def _notice(run_id: str, kind: str, text: str, *, while_status: tuple[str, ...] = ()) -> None:
    """A message about an action on a run, shown in the runs panel until the next action; with
    ``while_status`` only while the run is in one of those states (no banner outlives what it says)."""
    st.session_state["runs_notice"] = {"run": run_id, "kind": kind, "text": text, "while": while_status}


def _show_notice(statuses: dict[str, str]) -> None:
    note = st.session_state.get("runs_notice")
    if not note:
        return
    if note["while"] and statuses.get(note["run"]) not in note["while"]:
        st.session_state.pop("runs_notice", None)
        return
    (st.success if note["kind"] == "success" else st.error)(note["text"])


def _act(run_id: str, action, done_text: str = "", **kwargs) -> bool:
    """Run a core.runs action on a run if this session may; its error becomes the panel's notice."""
    if not guard.may_change_runs():  # the buttons are disabled then; this refuses a forged click too
        _notice(run_id, "error", guard.refusal())
        st.error(guard.refusal())
        return False
    try:
        action(run_id, **kwargs)
    except ExplorerError as exc:
        _notice(run_id, "error", str(exc))  # kept until the next action (the panel reruns every few s)
        st.error(str(exc))
        return False
    st.session_state.pop("runs_notice", None)
    if done_text:
        st.toast(done_text)
    return True


@st.fragment(run_every=POLL_S)
def _runs_table() -> None:
    """Every run with live progress; reruns itself every POLL_S seconds."""
    from core.runs import cancel_run, list_runs, run_status

    runs = list_runs()
    _show_notice(dict(zip(runs["run_id"], runs["status"], strict=True)))
    if runs.empty:
        st.info("No runs yet.")
        return
    allowed = guard.may_change_runs()
    for run_id in runs.loc[runs["status"].isin(["running", "queued"]), "run_id"]:
        try:
            s = run_status(run_id)
        except ExplorerError:
            continue  # gone or damaged since the list was read: the table says so
        c1, c2 = st.columns([6, 1], vertical_alignment="bottom")
        c1.progress(s.fraction, text=progress_text(s))
        if c2.button("Cancel", key=f"cancel_{run_id}", disabled=not allowed):
            _act(run_id, cancel_run, f"Cancelling {run_id}")
    st.dataframe(runs_table(runs), hide_index=True, width="stretch")
    _picked_run(runs, allowed)


def _picked_run(runs, allowed: bool) -> None:
    """The chosen run: resume, retry its errors, delete, open in Results; its failure or error list."""
    from core.runs import delete_run, resume_run, run_errors
    from explorer.ui import chrome

    ids = list(runs["run_id"])
    if st.session_state.get("runs_pick") not in ids:
        st.session_state["runs_pick"] = ids[0]
    c = st.columns([3, 1, 1, 1, 1.3], vertical_alignment="bottom")
    pick = c[0].selectbox("Run", ids, key="runs_pick", label_visibility="collapsed")
    row = runs.set_index("run_id").loc[pick]
    status, n_err = row["status"], int(row["errors"])
    if c[1].button("Resume", key="runs_resume", disabled=not allowed or status not in RESUMABLE):
        _act(pick, resume_run, f"Queued {pick} again")
    retry = not allowed or not n_err or status in ("running", "queued", "damaged")
    if c[2].button("Retry errors", key="runs_retry", disabled=retry, help=RETRY_HELP):
        _act(pick, resume_run, f"Queued {pick} to retry its {n_err} error rows", retry_errors=True)
    if c[3].button("Delete", key="runs_delete", disabled=not allowed or status == "running"):
        if _act(pick, delete_run, f"Deleted {pick}"):
            st.session_state.pop("runs_pick", None)
            st.rerun()
    if c[4].button("Open in Results", key="runs_open", disabled=status != "done" or not row["done"]):
        chrome.request_run(pick)
        # Switch from a full run, not from inside the polling fragment: a page switch made by a fragment
        # could leave the Results page blank when the fragment's timer fired during the switch.
        st.session_state[GOTO_RESULTS] = True
        st.rerun(scope="app")
    if not allowed:
        st.caption(guard.refusal())
    if status == "damaged":
        st.error(f"Damaged store: {row['problem']}")
        return
    failure = _failure(pick)
    if failure and status == "failed":
        st.error(f"{pick}: {failure}")
    if n_err:
        table = error_summary(run_errors(pick))
        st.warning(
            f"{pick}: {n_err} error rows: {len(table)} image(s) or breast(s) could not be scored "
            "(not counted as scores; Retry errors scores them again once their files are fixed)",
            icon=":material/broken_image:",
        )
        st.dataframe(
            table,
            hide_index=True,
            width="stretch",
            key="runs_errors",
            height=min(400, 35 * (len(table) + 1) + 3),
            column_config={"message": st.column_config.TextColumn(width="large")},
        )


def _failure(run_id: str) -> str:
    from core.runs import run_status

    try:
        return run_status(run_id).error
    except ExplorerError as exc:
        return str(exc)


def render() -> None:
    if st.session_state.pop(GOTO_RESULTS, False):
        from explorer.ui import chrome

        st.switch_page(chrome.page("Results"))
    st.header("Runs")
    st.caption(
        "A run scores every image (GMIC) or breast (DMV) of a cohort under each perturbation and severity, "
        "in a separate worker process; results are stored as they come, an image that cannot be read "
        "becomes an error row, and a killed run resumes."
    )
    allowed = guard.may_change_runs()
    with st.container(border=True):
        config = _form()
        ok = config is not None and _estimate_box(config)
        if st.button("Start run", type="primary", disabled=not ok or not allowed, key="run_start"):
            _start(config)
        if not allowed:
            st.info(guard.refusal())
    st.subheader("Runs in this data folder")
    _runs_table()


def _start(config: Any) -> None:
    from core.runs import submit_run

    if not guard.may_change_runs():
        return
    try:
        run_id = submit_run(config, roots=_roots())
    except ExplorerError as exc:
        st.error(str(exc))
        return
    st.session_state["runs_pick"] = run_id
    _notice(
        run_id, "success", f"Queued {run_id}; the worker starts it in a moment.", while_status=("queued",)
    )


render()
