"""The handles pages work through: this session's run store, the process's queue runner, study runner and live
feed."""

from __future__ import annotations

import streamlit as st

from cartpole_core.jobs.scheduler import Scheduler
from cartpole_core.runs.home import data_home
from cartpole_core.runs.store import RunStore
from cartpole_core.studies.driver import StudyDriver
from dashboard.live.feed import LiveFeed, shared_feed


@st.cache_resource
def scheduler(home: str) -> Scheduler:
    """One queue runner per server process and data home: starts queued runs in worker processes."""
    runner = Scheduler(data_home(home))
    runner.start()
    return runner


@st.cache_resource
def study_driver(home: str) -> StudyDriver:
    """One study runner per server process and data home: drives the studies that should be running (a study
    left running when a server stopped goes on when the next one starts)."""
    runner = StudyDriver(data_home(home))
    runner.start()
    return runner


def store() -> RunStore:
    """This session's handle on the run store (SQLite connections are not shared between sessions)."""
    home = str(data_home())
    if st.session_state.get("_store_home") != home:
        st.session_state["_store"] = RunStore(data_home(home))
        st.session_state["_store_home"] = home
    scheduler(home)
    study_driver(home)
    return st.session_state["_store"]


def live_feed() -> LiveFeed:
    """The process's live feed for this session's data home: the live page and the live endpoint share its rows."""
    return shared_feed(store().home)
