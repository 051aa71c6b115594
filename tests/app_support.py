"""Helpers for the explorer's AppTest and browser tests (imported by tests/test_app*.py, test_browser*.py)."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
APP = REPO / "explorer" / "app.py"


def open_page(page: str = "Image lab", state: dict | None = None, timeout: float = 120):
    """An AppTest of the whole app opened on ``page`` (a page title), not yet run.

    The app is started from a two-line main script that calls ``explorer.app.main(default_page=...)``:
    ``AppTest.switch_page`` would run a file of ``explorer/app_pages/`` on its own, without the main script
    and its sidebar.
    """
    from streamlit.testing.v1 import AppTest

    script = f"from explorer.app import main\nmain(default_page={page!r})\n"
    at = AppTest.from_string(script, default_timeout=timeout)
    for key, value in (state or {}).items():
        at.session_state[key] = value
    return at


def errors(at) -> list[str]:
    """Text of every st.error and every exception element on the page."""
    return [e.value for e in at.error] + [str(e.value) for e in at.exception]


def run(at):
    """Run (or rerun) an AppTest and fail on any uncaught exception; returns it for chaining."""
    at.run()
    assert not at.exception, at.exception
    return at


def tiny_cohort_env(folder: Path) -> Iterator[Path]:
    """Body of a module fixture: a private data folder holding the 'tiny' cohort; yields its manifest."""
    old = use_tiny_cohort(folder)
    try:
        from core.phantom import ensure_cohort

        yield ensure_cohort("tiny")
    finally:
        restore_env(old)


def use_tiny_cohort(folder: Path) -> dict[str, str]:
    """Point the app at a private data folder and the fast 'tiny' cohort; returns the previous values."""
    old = {k: os.environ.get(k, "") for k in ("MAMMO_ROBUST_DATA", "MAMMO_EXPLORER_COHORT")}
    os.environ["MAMMO_ROBUST_DATA"] = str(folder)
    os.environ["MAMMO_EXPLORER_COHORT"] = "tiny"
    return old


def restore_env(old: dict[str, str]) -> None:
    for key, value in old.items():
        if value:
            os.environ[key] = value
        else:
            os.environ.pop(key, None)
