"""CartPole Lab — Streamlit entry point: routes to the pages under pages/."""

import streamlit as st

st.set_page_config(page_title="CartPole Lab", page_icon=":material/science:", layout="wide")

navigation = st.navigation(
    {"Lab": [st.Page("pages/home.py", title="Overview", icon=":material/home:", default=True)]}
)
navigation.run()
