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
        help="weights instead of the config's ('demo', 'demo-fast', 'random' or a file): one sweep config "
        "for every checkpoint of a training run (docs/training-experiments.md)",
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
    p.add_argument(
        "--engine", choices=("local", "ray"),
        help="where the grid is scored: local (default: this process) or ray (a Ray cluster with Ray Data; "
        "needs the ray extra); overrides the config's engine",
    )  # fmt: skip
    p.add_argument(
        "--address", help="Ray engine: the cluster to join (e.g. auto, head-node:6379, ray://head:10001); "
        "default RAY_ADDRESS, else a local Ray started for the run",
    )  # fmt: skip
    p.add_argument("--workers", type=int, help="Ray engine: model actors (default: one per GPU, else one)")
    p.add_argument(
        "--exact", action="store_true",
        help="the exact inference path (contiguous float32, as the official code) instead of the fast one",
    )  # fmt: skip
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
        if args.engine or args.address or args.workers is not None or args.exact:
            store = runs.RunStore.open(args.resume)  # e.g. a local run resumed on a cluster
            if not store.worker_alive():  # a running run keeps its options (resuming it fails below)
                store.set(config=_with_options(store.config(), args).to_json())
        status = runs.execute_run(args.resume, log=log, retry_errors=args.retry_errors)
        return 0 if status == "done" else 3
    if not args.config:
        print("mammo-robust run: give a CONFIG file, --resume RUN_ID, --runner, --list, --cancel or --export",
              file=sys.stderr)  # fmt: skip
        return 2
    config = _with_options(runs.load_config(args.config), args)
    if args.weights:
        import dataclasses

        config = dataclasses.replace(config, weights=args.weights)
    if config.engine == "ray":  # a clear error before anything is stored
        from core.runs.ray_engine import import_ray

        import_ray()
    if args.submit:
        print(runs.submit_run(config))
        return 0
    run_id = runs.create_run(config, args.run_id)
    print(f"run {run_id}", flush=True)
    status = runs.execute_run(run_id, log=log)
    return 0 if status == "done" else 3


def _with_options(config, args: argparse.Namespace):
    """The config with the command line's engine options applied (they are stored with the run, so a resumed
    run uses them too)."""
    from dataclasses import replace

    changes = {}
    if args.engine:
        changes["engine"] = args.engine
    if args.address:
        changes["address"] = args.address
        changes.setdefault("engine", "ray")
    if args.workers is not None:
        changes["workers"] = args.workers
    if args.exact:
        changes["fast"] = False
    return replace(config, **changes) if changes else config
