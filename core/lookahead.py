"""Work done ahead in threads, consumed in order: the bounded look-ahead map that the run stream, DMV's
augmented predictions and training's window batches share."""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

T = TypeVar("T")

_END = object()


def ordered_map(
    pool: ThreadPoolExecutor, fn: Callable[[Any], T], values: Iterable, lookahead: int
) -> Iterator[T]:
    """Like ``pool.map`` but with at most ``lookahead`` (>= 1) results pending (bounded memory), in order:
    the next values are computed while the caller uses the current result."""
    pending: deque = deque()
    it = iter(values)
    for v in it:
        pending.append(pool.submit(fn, v))
        if len(pending) >= lookahead:
            break
    while pending:
        result = pending.popleft().result()
        nxt = next(it, _END)
        if nxt is not _END:
            pending.append(pool.submit(fn, nxt))
        yield result
