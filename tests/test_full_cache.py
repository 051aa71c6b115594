"""explorer.ui.full_cache: the lab's full-resolution results, computed once, neighbours ahead of time."""

from __future__ import annotations

import threading
import time

import pytest

from explorer.ui.full_cache import FullResCache


def test_get_computes_once_and_evicts_the_oldest():
    cache = FullResCache(max_entries=2)
    calls = []
    for key in ("a", "b", "a", "c", "b"):
        cache.get(key, lambda key=key: calls.append(key) or key.upper())
    assert calls == ["a", "b", "c", "b"]  # "b" was evicted by "c" ("a" had been used more recently)
    assert "a" not in cache and "c" in cache and "b" in cache


def test_get_waits_for_a_prefetch_in_flight_instead_of_computing_again():
    cache = FullResCache()
    started, release, calls = threading.Event(), threading.Event(), []

    def slow():
        calls.append("prefetch")
        started.set()
        release.wait(5)
        return 42

    cache.prefetch({"k": slow})
    cache.prefetch({"k": lambda: calls.append("again") or 0})  # already on its way: not queued again
    started.wait(5)
    threading.Timer(0.05, release.set).start()
    assert cache.get("k", lambda: calls.append("inline") or -1) == 42
    assert calls == ["prefetch"]


def test_a_failed_prefetch_is_computed_again_where_the_error_can_be_shown():
    cache = FullResCache()

    def broken():
        raise ValueError("bad parameter")

    cache.prefetch({"k": broken})
    time.sleep(0.05)
    with pytest.raises(ValueError, match="bad parameter"):
        cache.get("k", broken)
    assert cache.get("k", lambda: 7) == 7


def test_queued_prefetches_for_stops_the_user_left_are_dropped():
    cache = FullResCache()
    gate = threading.Event()
    cache.prefetch({"busy": lambda: gate.wait(5)})  # occupies the single worker
    cache.prefetch({"busy": lambda: 0, "old": lambda: "old"})
    cache.prefetch({"busy": lambda: 0, "new": lambda: "new"})
    assert "old" not in cache and "new" in cache and "busy" in cache  # "busy" runs: it cannot be cancelled
    gate.set()
    assert cache.get("new", lambda: "inline") == "new"


def test_a_request_drops_prefetches_not_started_yet():
    """Work ahead for stops the user skipped must not slow down the one asked for."""
    cache = FullResCache()
    calls = []
    cache.prefetch({"later": lambda: calls.append("later") or 1}, delay=0.2)
    assert cache.get("now", lambda: "now") == "now"
    time.sleep(0.4)
    assert calls == [] and "later" not in cache
    cache.prefetch({"next": lambda: calls.append("next") or 2}, delay=0.05)
    time.sleep(0.3)
    assert calls == ["next"] and cache.get("next", lambda: -1) == 2


def test_peek_returns_finished_results_only_and_keeps_the_prefetches():
    """Background readers (the model's eye) peek: nothing computed, nothing waited for, nothing dropped."""
    cache = FullResCache()
    calls = []
    assert cache.peek("a") is None
    cache.get("a", lambda: "A")
    cache.prefetch({"later": lambda: calls.append("later") or 1}, delay=0.1)
    assert cache.peek("a") == "A" and cache.peek("later") is None
    time.sleep(0.4)
    assert calls == ["later"] and cache.peek("later") == 1  # the delayed prefetch was not dropped

    def broken():
        raise ValueError("no")

    cache.prefetch({"bad": broken})
    time.sleep(0.1)
    assert cache.peek("bad") is None
