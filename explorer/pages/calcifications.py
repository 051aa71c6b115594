"""Calcifications page (being wired to core)."""

import streamlit as st

st.header("Calcifications")
st.info("This page is being built.")
