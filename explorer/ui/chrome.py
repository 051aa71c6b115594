"""Makes every page run inside the app's navigation and sidebar, whatever URL the browser opened.

Streamlit treats a ``pages/`` folder next to the main script as a version-1 multipage app until the first
run that calls ``st.navigation``: on a freshly started server, a deep link such as ``/results`` would run
``explorer/pages/results.py`` on its own, without ``explorer/app.py`` (no sidebar, no page sections).
Each page therefore starts with :func:`ensure_app`, which, in that case, switches Streamlit to the
``st.navigation`` mode (what ``st.navigation`` itself does on its first call) and reruns: the rerun runs
``explorer/app.py``, whose navigation opens the same URL's page inside the app.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterator

_state = threading.local()  # Streamlit runs each session's script in its own thread
_pages: dict[str, object] = {}  # page title -> the st.Page the app registered (for st.switch_page)


def register_page(title: str, page: object) -> object:
    """Remember the app's ``st.Page`` for ``title`` (called by the app when it builds its navigation)."""
    _pages[title] = page
    return page


def page(title: str) -> object:
    """The app's ``st.Page`` titled ``title``, to pass to ``st.switch_page``."""
    return _pages[title]


@contextlib.contextmanager
def app_running() -> Iterator[None]:
    """Mark the current script run as running inside ``explorer.app.main`` (used by the app)."""
    previous = getattr(_state, "active", False)
    _state.active = True
    try:
        yield
    finally:
        _state.active = previous


def ensure_app(page_title: str) -> bool:
    """If this page was started on its own (not by the app's navigation), rerun the app around it.

    Returns False when the page runs inside the app and should draw itself. Otherwise it reruns the
    script (never returning), or, should Streamlit's internals have changed, returns True after telling
    the user to open the app's main page.
    """
    if getattr(_state, "active", False):
        return False
    import streamlit as st

    try:
        from streamlit.runtime.pages_manager import PagesManager

        PagesManager.uses_pages_directory = False
    except (ImportError, AttributeError):
        st.warning(f"Open the app's main page (the '{page_title}' link works from there).")
        return True
    st.rerun()
    return True
