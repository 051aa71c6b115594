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

from explorer.ui.source import sidebar_source  # noqa: E402

PAGES = Path(__file__).resolve().parent / "pages"


def main() -> None:
    st.set_page_config(
        page_title="Mammo Robustness Explorer", page_icon=":material/radiology:", layout="wide"
    )
    nav = st.navigation(
        {
            "Images": [
                st.Page(PAGES / "image_lab.py", title="Image lab", icon=":material/tune:", default=True),
                st.Page(PAGES / "calcifications.py", title="Calcifications", icon=":material/grain:"),
            ],
            "Experiments": [
                st.Page(PAGES / "runs.py", title="Runs", icon=":material/play_circle:"),
                st.Page(PAGES / "results.py", title="Results", icon=":material/monitoring:"),
            ],
        }
    )
    st.sidebar.title("Mammo Robustness Explorer")
    # Drawn on every page: Streamlit forgets the state of widgets a run does not draw.
    sidebar_source()
    nav.run()


main()
