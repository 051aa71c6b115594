"""The model's eye's background worker (explorer.ui.eye_worker): one real thread, priorities, groups whose
stale requests are dropped, failures kept for the page and retried on request."""

from __future__ import annotations

import threading
import time

from explorer.ui.eye_worker import DONE, FAILED, EyeWorker


def _wait(worker: EyeWorker, keys, timeout: float = 20.0) -> None:
    deadline = time.time() + timeout
    while worker.pending(keys):
        assert time.time() < deadline, "the worker did not finish"
        time.sleep(0.01)


def _blocked(worker: EyeWorker) -> threading.Event:
    """Occupy the worker until the returned event is set."""
    release, started = threading.Event(), threading.Event()

    def block():
        started.set()
        release.wait(20)

    worker.request("block", block, priority=-1)
    assert started.wait(20)
    return release


def test_lower_priority_values_run_first_and_each_key_runs_once():
    worker = EyeWorker()
    order: list[str] = []
    calls = {"a": 0}
    release = _blocked(worker)

    def job(name):
        def run():
            calls[name] = calls.get(name, 0) + 1
            order.append(name)
            return name.upper()

        return run

    worker.request("a", job("a"), priority=2)
    worker.request("a", job("a"), priority=2)  # the same key again: not queued twice
    worker.request("b", job("b"), priority=0)
    assert worker.pending(["a", "b"]) and worker.job("a").state == "queued"
    release.set()
    _wait(worker, ["a", "b", "block"])
    assert order == ["b", "a"] and calls["a"] == 1
    assert worker.job("a").state == DONE and worker.job("a").value == "A"
    assert not worker.pending(["a", "b"])
    worker.request("a", job("a"))  # done: kept, not computed again
    assert calls["a"] == 1


def test_a_new_request_in_a_group_drops_the_groups_queued_jobs():
    worker = EyeWorker()
    release = _blocked(worker)
    ran: list[str] = []
    worker.request("eye-R1", lambda: ran.append("R1"), priority=0, group="eye")
    worker.request("curve", lambda: ran.append("curve"), priority=1)
    worker.request("eye-R2", lambda: ran.append("R2"), priority=0, group="eye")
    assert worker.job("eye-R1") is None  # the user moved on before it started
    release.set()
    _wait(worker, ["eye-R2", "curve"])
    assert ran == ["R2", "curve"]


def test_a_failure_is_kept_for_the_page_and_retried_when_asked_again():
    worker = EyeWorker()
    attempts = []

    def flaky():
        attempts.append(1)
        if len(attempts) == 1:
            raise ValueError("first try fails")
        return 42

    worker.request("k", flaky)
    _wait(worker, ["k"])
    job = worker.job("k")
    assert job.state == FAILED and isinstance(job.error, ValueError) and job.finished
    worker.request("k", flaky)
    _wait(worker, ["k"])
    assert worker.job("k").state == DONE and worker.job("k").value == 42


def test_finished_results_are_bounded():
    worker = EyeWorker(max_results=3)
    for i in range(6):
        worker.request(i, lambda i=i: i)
        _wait(worker, [i])
    kept = [i for i in range(6) if worker.job(i) is not None]
    assert kept == [3, 4, 5]
