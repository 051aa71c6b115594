"""Mammo Robustness Explorer: ``streamlit run explorer/app.py``.

Builds the navigation over the four pages and the sidebar image chooser they share. All numerics live in
``core``; see ``docs/architecture.md``.
"""

from __future__ import annotations

import sys
from pathlib import Path

# `streamlit run explorer/app.py` puts explorer/ on sys.path, not the repository root.
_ROOT = Path(__file__).resolve().parent.parent
if str(_ROOT) not in sys.path:
    sys.path.insert(0, str(_ROOT))

import streamlit as st  # noqa: E402

from explorer.ui.chrome import register_page  # noqa: E402
from explorer.ui.guard import sidebar_token  # noqa: E402
from explorer.ui.source import sidebar_source  # noqa: E402

# Not "pages": Streamlit would run a folder of that name as a version-1 multipage app, each page without
# this script, until st.navigation is first called.
PAGES = Path(__file__).resolve().parent / "app_pages"
FAVICON = _ROOT / "assets" / "icons" / "favicon.png"


def main(default_page: str = "Image lab") -> None:
    """Configure the page, draw the shared sidebar and run the selected page.

    ``default_page`` (a page title) is the page opened at the bare URL; tests use it to open one page.
    """
    # A local file, not ":material/...": Streamlit fetches a Material favicon from fonts.gstatic.com,
    # which an offline installation cannot reach.
    st.set_page_config(page_title="Mammo Robustness Explorer", page_icon=str(FAVICON), layout="wide")
    nav = st.navigation(
        {
            "Images": [
                _page("image_lab.py", "Image lab", ":material/tune:", default_page),
                _page("calcifications.py", "Calcifications", ":material/grain:", default_page),
            ],
            "Experiments": [
                _page("runs.py", "Runs", ":material/play_circle:", default_page),
                _page("results.py", "Results", ":material/monitoring:", default_page),
            ],
        }
    )
    st.sidebar.title("Mammo Robustness Explorer")
    # Drawn on every page: Streamlit forgets the state of widgets a run does not draw.
    sidebar_source()
    sidebar_token()
    nav.run()


def _page(file: str, title: str, icon: str, default_page: str):
    return register_page(title, st.Page(PAGES / file, title=title, icon=icon, default=title == default_page))


if __name__ == "__main__":  # `streamlit run` executes this file as __main__
    main()
