"""The app's pages as ``st.Page`` objects, registered by :mod:`explorer.app`, for ``st.switch_page``.

The page scripts live in ``explorer/app_pages/`` and run only inside the app's ``st.navigation`` (a folder
named ``pages/`` would make Streamlit run each page on its own, without the app's sidebar, until the
navigation is first called).
"""

from __future__ import annotations

PENDING_RUN = "results_pending_run"  # a run the Results page should open with (set by other pages)
_pages: dict[str, object] = {}  # page title -> the st.Page the app registered (for st.switch_page)


def register_page(title: str, page: object) -> object:
    """Remember the app's ``st.Page`` for ``title`` (called by the app when it builds its navigation)."""
    _pages[title] = page
    return page


def page(title: str) -> object:
    """The app's ``st.Page`` titled ``title``, to pass to ``st.switch_page``."""
    return _pages[title]


def request_run(run_id: str) -> None:
    """Ask the Results page to open with this run selected (call before ``st.switch_page``).

    Stored under a plain key and applied by the Results page before it draws its run selector, since a
    widget's value cannot be changed once the widget is drawn in a run.
    """
    import streamlit as st

    st.session_state[PENDING_RUN] = str(run_id)
