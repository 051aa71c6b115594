"""Runs page (being wired to core)."""

import streamlit as st

st.header("Runs")
st.info("This page is being built.")
