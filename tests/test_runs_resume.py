"""The worker as a separate process: SIGKILL mid-run and restart gives the table of an uninterrupted run;
the queue runner (what the UI starts) runs, cancels and resumes a run."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import pandas as pd
import pytest

from core.runs import (
    RunConfig,
    cancel_run,
    create_run,
    execute_run,
    load_scores,
    resume_run,
    run_status,
    submit_run,
)
from tests.test_runs import dmv_weights, gmic_weights, tiny_manifest  # noqa: F401 (fixtures)

pytestmark = pytest.mark.slow


def _config(tiny_manifest, gmic_weights) -> RunConfig:  # noqa: F811
    return RunConfig(
        model="gmic", manifest=str(tiny_manifest), weights=str(gmic_weights), device="cpu",
        perturbations={"lowpass": [4], "noise": [5]}, batch_size=2, max_images=8,
    )  # fmt: skip


def _wait(run_id: str, predicate, timeout: float = 300.0, proc=None):
    t0 = time.monotonic()
    while time.monotonic() - t0 < timeout:
        st = run_status(run_id)
        if predicate(st):
            return st
        if proc is not None and proc.poll() is not None and not predicate(run_status(run_id)):
            out = proc.stdout.read() if proc.stdout else ""
            raise AssertionError(f"worker exited early (rc {proc.returncode}): {out}")
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting on run {run_id}: {run_status(run_id)}")


def _worker(run_id: str) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "core", "run", "--resume", run_id, "--quiet"],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, start_new_session=True,
        env={**os.environ},
    )  # fmt: skip


def test_sigkill_and_restart_equals_uninterrupted_run(data_dir, tiny_manifest, gmic_weights):  # noqa: F811
    cfg = _config(tiny_manifest, gmic_weights)
    reference = create_run(cfg, "reference")
    assert execute_run(reference) == "done"
    expected = load_scores(reference)
    assert len(expected) == 8 * 3

    run_id = create_run(cfg, "killed")
    proc = _worker(run_id)
    st = _wait(run_id, lambda s: s.done >= 6, proc=proc)
    assert st.status == "running" and st.done < st.total, "the worker finished before it could be killed"
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait(timeout=30)
    st = run_status(run_id)
    assert st.status == "interrupted" and 0 < st.done < 24

    proc = _worker(run_id)
    assert proc.wait(timeout=600) == 0, proc.stdout.read()
    st = run_status(run_id)
    assert (st.status, st.done, st.total) == ("done", 24, 24)
    got = load_scores(run_id)
    assert not got.duplicated(["perturbation", "severity", "seed", "image_id"]).any()
    pd.testing.assert_frame_equal(got, expected, check_exact=True)


def test_queue_runner_cancel_and_resume(data_dir, tiny_manifest, gmic_weights):  # noqa: F811
    cfg = RunConfig(**{**_config(tiny_manifest, gmic_weights).to_dict(), "batch_size": 1})
    first = submit_run(cfg)  # spawns the detached runner, as the UI does
    second = submit_run(RunConfig(**{**cfg.to_dict(), "max_images": 2}), start_runner=False)
    st = _wait(first, lambda s: s.status == "running" and s.done >= 3)
    assert run_status(second).status == "queued"  # one at a time, in order
    cancel_run(first)
    st = _wait(first, lambda s: s.status == "cancelled")
    assert st.done < st.total
    # the runner goes on with the next queued run
    _wait(second, lambda s: s.status == "done")
    resume_run(first)
    st = _wait(first, lambda s: s.status == "done")
    assert st.done == st.total == 24
    ref = create_run(cfg, "ref")
    execute_run(ref)
    pd.testing.assert_frame_equal(load_scores(first), load_scores(ref), check_exact=True)


def test_sigterm_cancels_gracefully_and_the_run_resumes(data_dir, tiny_manifest, gmic_weights):  # noqa: F811
    cfg = RunConfig(**{**_config(tiny_manifest, gmic_weights).to_dict(), "batch_size": 1, "max_images": 6})
    run_id = create_run(cfg, "terminated")
    proc = _worker(run_id)
    _wait(run_id, lambda s: s.done >= 3, proc=proc)
    os.kill(proc.pid, signal.SIGTERM)
    assert proc.wait(timeout=120) == 3  # the worker's exit code for a run that did not finish
    st = run_status(run_id)
    assert st.status == "cancelled" and 0 < st.done < st.total == 18
    resume_run(run_id, start_runner=False)
    assert execute_run(run_id) == "done" and run_status(run_id).done == 18
