"""Parts of the Runs page: a run's progress line, the runs table, and the list of images a run could not
score. Statuses, rates and ETAs come from ``core.runs``; this module only words and lays them out."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pandas as pd


def weights_label(weights: str) -> str:
    """How the UI names a weights value; demo weights are always labelled as such, with their resolution."""
    from core.models.demo_weights import describe_demo, is_demo_label

    if is_demo_label(weights):
        return f"{weights} weights ({describe_demo(weights)}; synthetic cohort, not for clinical use)"
    if weights == "random":
        return "random weights (untrained)"
    if weights == "imported":
        return "imported scores"
    return Path(weights).name  # the file's name, as in the scores table; not the server's folders


def fmt_duration(seconds: float | None) -> str:
    if seconds is None:
        return "–"
    return str(dt.timedelta(seconds=int(round(seconds))))


def progress_text(s) -> str:
    """One line for a queued or running run (a ``core.runs.RunStatus``): items and rows done, the rate
    and the time left, from the first image on."""
    head = f"{s.run_id} · {s.model.upper()} · {weights_label(s.weights)} · {s.label}"
    if s.status == "queued":
        return f"{head}: waiting for the worker"
    if not s.total:
        return f"{head}: loading the cohort and the model"
    items = f"{s.items_done}/{s.n_items} {s.item_kind}" if s.n_items else ""
    rows = f"{s.settled}/{s.total} rows"
    if s.item_rate:
        one = s.item_kind[:-1]
        fast = s.item_rate >= 0.1
        per = f"{s.item_rate:.2f} {s.item_kind}/s" if fast else f"{1 / s.item_rate:.0f} s per {one}"
        speed = f"{per} · ETA {fmt_duration(s.eta_s)}"
    else:
        speed = "rate and ETA after the first image"
    return f"{head}: " + " · ".join(p for p in (items, rows, speed) if p)


def runs_table(runs: pd.DataFrame) -> pd.DataFrame:
    """The table of :func:`core.runs.list_runs` for people: status with its error count, progress, times."""

    def status(r) -> str:
        if r.status == "damaged":
            return "damaged"
        return f"{r.status}, {r.errors} error{'s' if r.errors != 1 else ''}" if r.errors else r.status

    def when(col: str) -> pd.Series:
        return pd.to_datetime(runs[col], unit="s").dt.strftime("%Y-%m-%d %H:%M:%S").fillna("")

    return pd.DataFrame(
        {
            "run_id": runs["run_id"],
            "name": runs["name"],
            "model": runs["model"],
            "weights": runs["weights"].map(weights_label),
            "status": [status(r) for r in runs.itertuples()],
            "progress": [
                "" if r.status == "damaged" else f"{r.done + r.errors}/{r.total}" for r in runs.itertuples()
            ],
            "created": when("created"),
            "finished": when("finished"),
        }
    )


def error_summary(errors: pd.DataFrame) -> pd.DataFrame:
    """The error rows of a run (:func:`core.runs.run_errors`) one line per image or breast and message:
    image, exam, breast, stage, how many conditions, which, and the message."""
    if errors.empty:
        return pd.DataFrame(columns=["image", "exam", "breast", "stage", "conditions", "which", "message"])
    df = errors.assign(
        condition=[
            p if p == "none" else f"{p} {s} ({v:g})"
            for p, s, v in zip(errors["perturbation"], errors["severity"], errors["parameter"], strict=True)
        ]
    )
    keys = ["image_id", "exam_id", "laterality", "stage", "message"]
    out = (
        df.groupby(keys, sort=False)["condition"]
        .agg(conditions="count", which=lambda c: ", ".join(dict.fromkeys(c)))
        .reset_index()
    )
    out = out.rename(columns={"image_id": "image", "exam_id": "exam", "laterality": "breast"})
    return out[["image", "exam", "breast", "stage", "conditions", "which", "message"]]
