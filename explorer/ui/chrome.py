"""The app's pages as ``st.Page`` objects, registered by :mod:`explorer.app`, for ``st.switch_page``.

The page scripts live in ``explorer/app_pages/`` and run only inside the app's ``st.navigation`` (a folder
named ``pages/`` would make Streamlit run each page on its own, without the app's sidebar, until the
navigation is first called).
"""

from __future__ import annotations

_pages: dict[str, object] = {}  # page title -> the st.Page the app registered (for st.switch_page)


def register_page(title: str, page: object) -> object:
    """Remember the app's ``st.Page`` for ``title`` (called by the app when it builds its navigation)."""
    _pages[title] = page
    return page


def page(title: str) -> object:
    """The app's ``st.Page`` titled ``title``, to pass to ``st.switch_page``."""
    return _pages[title]
