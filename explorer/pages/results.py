"""Results page (being wired to core)."""

import streamlit as st

st.header("Results")
st.info("This page is being built.")
