"""Who may start, cancel, resume and delete runs and import score tables: the runs token.

On this machine only (the app bound to a loopback address, the default) and with no token configured,
everyone who can open the app is the operator: no prompt. When the app is served beyond this machine, or
whenever the operator configures a token (``MAMMO_RUNS_TOKEN``, or ``runs_token`` in
``.streamlit/secrets.toml``), those actions need the token, entered in the sidebar; served beyond this
machine without any token, they are off. Reading runs and results needs no token.
"""

from __future__ import annotations

import os

import streamlit as st

from core.access import RUNS_TOKEN_ENV, is_loopback, token_matches

TOKEN_KEY = "runs_token"  # the sidebar's token box
SECRET_NAME = "runs_token"  # its name in .streamlit/secrets.toml


def configured_token() -> str:
    """The operator's token: ``MAMMO_RUNS_TOKEN``, else ``runs_token`` of Streamlit's secrets, or ``""``."""
    token = os.environ.get(RUNS_TOKEN_ENV, "")
    if token:
        return token
    try:
        return str(st.secrets.get(SECRET_NAME, "") or "")
    except (FileNotFoundError, KeyError):  # no secrets file at all (StreamlitSecretNotFoundError)
        return ""


def served_beyond_loopback() -> bool:
    """Whether the app listens on an address other machines may reach (``server.address``)."""
    return not is_loopback(st.get_option("server.address"))


def token_required() -> bool:
    return bool(configured_token()) or served_beyond_loopback()


def sidebar_token() -> None:
    """The token box in the sidebar, on every page (Streamlit forgets a widget a run does not draw)."""
    if token_required():
        st.sidebar.text_input(
            "Runs token",
            type="password",
            key=TOKEN_KEY,
            help="Starting, cancelling, resuming and deleting runs and importing tables need the token the "
            "operator set (MAMMO_RUNS_TOKEN or runs_token in Streamlit's secrets).",
        )


def may_change_runs() -> bool:
    """True when this session may start, cancel, resume and delete runs and import tables."""
    if not token_required():
        return True
    return token_matches(st.session_state.get(TOKEN_KEY), configured_token())


def refusal() -> str:
    """Why the run actions are off, and what unlocks them."""
    if not configured_token():
        return (
            "This app is served beyond this machine and no runs token is set, so starting, cancelling, "
            f"resuming and deleting runs and importing tables are off. The operator sets {RUNS_TOKEN_ENV} "
            "(or runs_token in .streamlit/secrets.toml) to allow them for those who have the token."
        )
    if st.session_state.get(TOKEN_KEY):
        return "Wrong runs token: starting, cancelling, resuming and deleting runs and importing are off."
    return "Enter the runs token in the sidebar to start, cancel, resume or delete runs and to import tables."
