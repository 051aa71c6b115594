"""The image lab's full-resolution perturbed images, cached per (image, parameters), with the slider's
neighbouring stops computed ahead in a background thread.

A slider step costs one full-resolution perturbation (an inverse FFT of the whole image for the filters,
30-100 ms on two cores) before the visible window can be cut. When the user pauses on a result, one worker
thread computes the stops on either side of it, so a key press on the slider usually finds its result
ready. The work starts only after a short pause (``delay``), and a request in the foreground drops every
prefetch not started yet: on a machine with few cores, work done ahead for a stop the user skips would
otherwise slow down the one asked for. Nothing here touches Streamlit.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Callable, Hashable
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any


class FullResCache:
    """A small LRU of results (``Future``s) by key; :meth:`get` computes in the caller's thread on a miss,
    :meth:`prefetch` in the background. ``max_entries`` bounds memory: a 3328 x 2560 perturbed image and
    its difference take 68 MB."""

    def __init__(self, max_entries: int = 6) -> None:
        self._max = max(1, int(max_entries))
        self._items: OrderedDict[Hashable, Future] = OrderedDict()
        self._lock = threading.Lock()
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="lab-prefetch")
        self._timer: threading.Timer | None = None

    def _store(self, key: Hashable, future: Future) -> None:
        self._items[key] = future
        self._items.move_to_end(key)
        while len(self._items) > self._max:
            self._items.popitem(last=False)

    def _drop_pending(self, keep: frozenset = frozenset()) -> None:
        """Cancel the delayed start and every queued prefetch not in ``keep`` (call with the lock held)."""
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        for key in [k for k, f in self._items.items() if k not in keep and f.cancel()]:
            del self._items[key]

    def get(self, key: Hashable, compute: Callable[[], Any]) -> Any:
        """The result for ``key``: cached, awaited from a prefetch in flight, or computed now."""
        with self._lock:
            self._drop_pending(frozenset([key]))
            future = self._items.get(key)
            if future is not None:
                self._items.move_to_end(key)
        if future is not None:
            try:
                return future.result()
            except Exception:  # a failed prefetch: compute again here, so the error reaches the page
                with self._lock:
                    if self._items.get(key) is future:
                        del self._items[key]
        result = compute()
        done: Future = Future()
        done.set_result(result)
        with self._lock:
            self._store(key, done)
        return result

    def prefetch(self, jobs: dict[Hashable, Callable[[], Any]], delay: float = 0.0) -> None:
        """Compute these keys (in this order) in the background after ``delay`` seconds, unless cached or
        on their way; prefetches queued earlier for other keys and not started are dropped."""
        with self._lock:
            self._drop_pending(frozenset(jobs))
            if delay > 0:
                self._timer = threading.Timer(delay, self._submit, args=(jobs,))
                self._timer.daemon = True
                self._timer.start()
                return
        self._submit(jobs)

    def _submit(self, jobs: dict[Hashable, Callable[[], Any]]) -> None:
        with self._lock:
            self._timer = None
            for key, compute in jobs.items():
                if key not in self._items:
                    self._store(key, self._pool.submit(compute))

    def peek(self, key: Hashable) -> Any:
        """The finished result for ``key``, or None; unlike :meth:`get` it neither computes, waits nor drops
        queued prefetches (for background work that must not slow the slider down)."""
        with self._lock:
            future = self._items.get(key)
        if future is None or not future.done() or future.cancelled() or future.exception() is not None:
            return None
        return future.result()

    def __contains__(self, key: Hashable) -> bool:
        with self._lock:
            return key in self._items
