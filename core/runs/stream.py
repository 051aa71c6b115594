"""The scoring stream of a run's work: items prepared in threads, scored by the model in the calling thread,
in item order; items that fail before the model are reported in order without taking a place in its
batches, and a failed forward pass falls back to scoring the remaining items one at a time.

Used by :func:`core.runs.work.score_batch`; nothing here touches the store.
"""

from __future__ import annotations

import os
from collections import deque
from concurrent.futures import ThreadPoolExecutor

from core.lookahead import ordered_map
from core.runs.failures import ItemFailure, describe


class Stopped(Exception):
    """Raised into the scoring stream when the run is asked to stop."""


def n_workers(workers: int | None) -> int:
    """Threads that load and perturb images: default min(4, CPU count)."""
    return max(1, int(workers)) if workers else max(1, min(4, os.cpu_count() or 1))


class Stream:
    """``(item, scores or ItemFailure)`` in item order: items prepared in threads, scored in this one.

    Raises :class:`Stopped` (after cancelling the pending preparations) when ``should_stop`` says so.
    """

    def __init__(self, model, items, prepare, batch_size: int, timings, should_stop, workers) -> None:
        self.model, self.items, self.prepare = model, list(items), prepare
        self.batch_size, self.timings = batch_size, timings
        self.should_stop, self.workers = should_stop, workers
        self.failed: deque = deque()  # items that failed before the model, not yet reported
        self.settled: set[str] = set()

    def _on_forward(self, seconds: float, n_inputs: int) -> None:
        self.timings.forward_s += seconds
        self.timings.n_inputs += n_inputs

    def _attempt(self, item):
        try:
            return item, self.prepare(item)
        except ItemFailure as failure:
            return item, failure

    def _stop(self) -> None:
        if self.should_stop is not None and self.should_stop():
            raise Stopped

    def _prepared(self, pool: ThreadPoolExecutor, lookahead: int):
        for item, unit in ordered_map(pool, self._attempt, self.items, lookahead):
            self._stop()
            if isinstance(unit, ItemFailure):
                self.failed.append((item, unit))
                continue
            self.timings.n_images += len(item.images)
            yield item, unit

    def _drain(self):
        while self.failed:
            item, failure = self.failed.popleft()
            self.settled.add(item.key)
            yield item, failure

    def __iter__(self):
        from core.models.forward import score_units

        # numpy, scipy.fft and torch release the GIL, so threads prepare items while this thread runs the
        # model. An exam holds 4 images x all conditions of crops (about 1 GB at the official size with 14
        # conditions), so at most two are prepared ahead.
        exams = any(len(item.images) > 1 for item in self.items)
        threads = min(2, n_workers(self.workers)) if exams else n_workers(self.workers)
        lookahead = threads if exams else threads + 1
        broken = None
        with ThreadPoolExecutor(max_workers=threads) as pool:
            try:
                stream = score_units(
                    self.model, self._prepared(pool, lookahead), batch_size=self.batch_size,
                    on_forward=self._on_forward,
                )  # fmt: skip
                for item, scores in stream:
                    yield from self._drain()
                    self.settled.add(item.key)
                    yield item, scores
            except Stopped:
                pool.shutdown(wait=True, cancel_futures=True)
                raise
            except Exception as exc:  # a forward pass failed; its batch may span several items
                pool.shutdown(wait=True, cancel_futures=True)
                broken = exc
        yield from self._drain()
        if broken is not None:
            yield from self._one_by_one(score_units)

    def _one_by_one(self, score_units):
        """After a failed forward pass: the items not yet settled, each scored alone."""
        for item in self.items:
            if item.key in self.settled:
                continue
            self._stop()
            item, unit = self._attempt(item)
            if not isinstance(unit, ItemFailure):
                single = item.images[0].image_id if len(item.images) == 1 else ""
                try:
                    ((_, scores),) = score_units(
                        self.model, [(item, unit)], batch_size=self.batch_size, on_forward=self._on_forward
                    )
                except Exception as exc:  # this item cannot be scored
                    unit = ItemFailure(single, "score", describe(exc))
                else:
                    self.timings.n_images += len(item.images)
                    unit = scores
            self.settled.add(item.key)
            yield item, unit
