"""``mammo-robust run``: execute a robustness run (the same code path the UI starts), resume one, work the
queue, list, cancel or export runs."""

from __future__ import annotations

import argparse
import sys
import time


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "run",
        help="execute a robustness run from a config (JSON/TOML), resume one, or work the run queue",
        description="Execute a robustness run: model x cohort x perturbation grid, scores written "
        "incrementally to data_dir()/runs/<run_id>/run.sqlite. A killed run resumes with --resume. An "
        "image that cannot be read or scored becomes error rows (--errors RUN_ID) and the run goes on.",
    )
    p.add_argument("config", nargs="?", help="run config file (.json or .toml); see core.runs.RunConfig")
    p.add_argument("--run-id", help="id for the new run (default: time-model-random)")
    p.add_argument(
        "--weights",
        help="weights instead of the config's ('demo', 'random' or a file): one sweep config for every "
        "checkpoint of a training run (docs/training-experiments.md)",
    )
    p.add_argument("--resume", metavar="RUN_ID", help="continue a stored run where it stopped")
    p.add_argument(
        "--retry-errors",
        action="store_true",
        help="with --resume: score again the images that failed before (by default they are not retried)",
    )
    p.add_argument("--runner", action="store_true", help="work the queue of submitted runs, one at a time")
    p.add_argument("--submit", action="store_true", help="queue the config's run for the runner instead")
    p.add_argument("--list", action="store_true", help="list the stored runs (damaged stores included)")
    p.add_argument("--errors", metavar="RUN_ID", help="list the images of a run that could not be scored")
    p.add_argument("--cancel", metavar="RUN_ID", help="ask a run to stop")
    p.add_argument(
        "--export", nargs=2, metavar=("RUN_ID", "FILE"), help="write a run's scores (.csv/.parquet)"
    )
    p.add_argument("--quiet", action="store_true", help="no progress lines")
    p.set_defaults(func=run)


def _log(quiet: bool):
    def log(msg: str) -> None:
        if not quiet:
            print(f"{time.strftime('%H:%M:%S')} {msg}", flush=True)

    return log


def _list_text(table) -> str:
    """The runs table, then why each damaged store is damaged (the reasons are long)."""
    import pandas as pd

    shown = table.drop(columns=["problem", "queued"])
    for col in ("created", "finished"):
        shown[col] = pd.to_datetime(shown[col], unit="s").dt.strftime("%Y-%m-%d %H:%M:%S").fillna("")
    text = shown.to_string(index=False)
    damaged = table[table["status"] == "damaged"]
    notes = [f"{r.run_id}: damaged: {r.problem}" for r in damaged.itertuples()]
    return "\n".join([text, *notes])


def run(args: argparse.Namespace) -> int:
    from core import runs

    log = _log(args.quiet)
    if args.list:
        table = runs.list_runs()
        print(_list_text(table) if len(table) else "no runs")
        return 0
    if args.errors:
        errors = runs.run_errors(args.errors)
        print(errors.to_string(index=False) if len(errors) else f"run {args.errors}: no errors")
        return 0
    if args.cancel:
        runs.cancel_run(args.cancel)
        return 0
    if args.export:
        print(runs.export_scores(*args.export))
        return 0
    if args.runner:
        runs.runner_loop(log=log)
        return 0
    if args.resume:
        status = runs.execute_run(args.resume, log=log, retry_errors=args.retry_errors)
        return 0 if status == "done" else 3
    if not args.config:
        print("mammo-robust run: give a CONFIG file, --resume RUN_ID, --runner, --list, --cancel or --export",
              file=sys.stderr)  # fmt: skip
        return 2
    config = runs.load_config(args.config)
    if args.weights:
        import dataclasses

        config = dataclasses.replace(config, weights=args.weights)
    if args.submit:
        print(runs.submit_run(config))
        return 0
    run_id = runs.create_run(config, args.run_id)
    print(f"run {run_id}", flush=True)
    status = runs.execute_run(run_id, log=log)
    return 0 if status == "done" else 3
