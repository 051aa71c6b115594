"""Background work of the image lab's "Model's eye": one thread, keyed jobs by priority, results kept.

GMIC takes a few tenths of a second per image on the CPU, and the score-versus-R curve needs one full
perturbation and one forward pass per radius, so this work never runs in the page's script: the page
asks for it (:meth:`EyeWorker.request`) and shows what is done (:meth:`EyeWorker.job`), polling while
anything it asked for is still on its way. One worker thread (the machine's cores are better spent on
one forward pass at a time); lower ``priority`` values run first, so the explanation of the image the
user is looking at overtakes the curve's remaining radii; a new request in a ``group`` drops the jobs of
that group not started yet (an explanation for a slider stop the user has left). Nothing here touches
Streamlit.
"""

from __future__ import annotations

import heapq
import itertools
import threading
from collections import OrderedDict
from collections.abc import Callable, Hashable, Iterable
from dataclasses import dataclass
from typing import Any

QUEUED, RUNNING, DONE, FAILED = "queued", "running", "done", "failed"


@dataclass
class Job:
    """One keyed piece of work: its state, and its value (``DONE``) or exception (``FAILED``)."""

    key: Hashable
    compute: Callable[[], Any] | None
    priority: int
    group: Hashable | None
    state: str = QUEUED
    value: Any = None
    error: BaseException | None = None

    @property
    def finished(self) -> bool:
        return self.state in (DONE, FAILED)


class EyeWorker:
    """Runs requested jobs in one daemon thread; keeps the last ``max_results`` finished ones."""

    def __init__(self, max_results: int = 96) -> None:
        self._max = max(1, int(max_results))
        self._jobs: OrderedDict[Hashable, Job] = OrderedDict()
        self._queue: list[tuple[int, int, Hashable]] = []
        self._order = itertools.count()
        self._cond = threading.Condition()
        self._thread = threading.Thread(target=self._run, name="model-eye", daemon=True)
        self._thread.start()

    def request(
        self, key: Hashable, compute: Callable[[], Any], *, priority: int = 1, group: Hashable | None = None
    ) -> Job:
        """Queue ``compute`` under ``key`` unless that key is queued, running or done (a failed job is
        tried again); in ``group``, queued jobs for other keys are dropped first. Returns the job."""
        with self._cond:
            if group is not None:
                for other in [k for k, j in self._jobs.items() if j.group == group and j.state == QUEUED]:
                    if other != key:
                        del self._jobs[other]
            job = self._jobs.get(key)
            if job is not None and job.state != FAILED:
                self._jobs.move_to_end(key)
                return job
            job = Job(key, compute, priority, group)  # a failed job is replaced, so it runs again
            self._jobs[key] = job
            heapq.heappush(self._queue, (priority, next(self._order), key))
            self._trim()
            self._cond.notify()
            return job

    def job(self, key: Hashable) -> Job | None:
        """The job under ``key`` (any state), or None when never requested or forgotten."""
        with self._cond:
            return self._jobs.get(key)

    def pending(self, keys: Iterable[Hashable]) -> bool:
        """True while any of ``keys`` is queued or running."""
        with self._cond:
            return any((j := self._jobs.get(k)) is not None and not j.finished for k in keys)

    def _trim(self) -> None:
        finished = [k for k, j in self._jobs.items() if j.finished]
        for key in finished[: max(0, len(self._jobs) - self._max)]:
            del self._jobs[key]

    def _next(self) -> Job:
        with self._cond:
            while True:
                while self._queue:
                    _, _, key = heapq.heappop(self._queue)
                    job = self._jobs.get(key)
                    if job is not None and job.state == QUEUED:
                        job.state = RUNNING
                        return job
                self._cond.wait()

    def _run(self) -> None:
        while True:
            job = self._next()
            try:
                value, error, state = job.compute(), None, DONE
            except Exception as exc:  # kept for the page, which shows it as a message
                value, error, state = None, exc.with_traceback(None), FAILED  # no frames kept alive
            with self._cond:
                job.value, job.error, job.state = value, error, state
                job.compute = None  # the closure holds the image and its FFT: let them go with the caches
                self._trim()
