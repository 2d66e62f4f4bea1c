"""CartPole Lab — Streamlit entry point: routes to the pages under pages/.

`streamlit run app.py` finds ``app`` below (an ``st.App``) and serves this same file as the app's script, plus the
live view's JSON endpoint (``dashboard/live/endpoint.py``). Streamlit runs the script as ``__main__``; the server
imports it as a module, which only builds the ``st.App``.
"""

import streamlit as st

if __name__ == "__main__":
    st.set_page_config(page_title="CartPole Lab", page_icon=":material/science:", layout="wide")

    navigation = st.navigation({
        "Lab": [
            st.Page("pages/train.py", title="Train", icon=":material/rocket_launch:", default=True),
            st.Page("pages/live.py", title="Live view", icon=":material/monitoring:"),
            st.Page("pages/runs.py", title="Runs & compare", icon=":material/stacked_line_chart:"),
            st.Page("pages/studies.py", title="Studies", icon=":material/science:"),
        ],
        "Watch": [
            st.Page("pages/replay.py", title="Replay", icon=":material/movie:"),
            st.Page("pages/inspect.py", title="Inspect policy", icon=":material/grid_on:"),
            st.Page("pages/robustness.py", title="Robustness", icon=":material/tune:"),
        ],
    })
    st.sidebar.caption("CartPole Lab · tune, train and watch RL agents balance a pole")
    from dashboard.page import require_access, store_problems_shown

    require_access()  # a served lab reachable by others asks each session for its token first
    with store_problems_shown():  # a damaged or unreadable store is a message on every page, not a traceback
        navigation.run()
else:
    from dashboard import access
    from dashboard.live import endpoint

    if problem := access.bind_problem():  # refuse to serve others without the access gate
        raise SystemExit(f"error: {problem}")
    app = st.App(__file__, routes=endpoint.routes())
