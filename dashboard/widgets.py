"""Small widgets several pages draw alike: the sidebar's active runs, and the x-axis and smoothing selectors of the
training curves (their choices are the figures' own, :mod:`cartpole_core.figures.plots`)."""

from __future__ import annotations

from typing import Any

import streamlit as st

from cartpole_core.figures.plots import SMOOTHING, SMOOTHING_DEFAULTS, SMOOTHING_RANGES, X_AXES
from cartpole_core.runs.home import data_home
from cartpole_core.runs.store import ACTIVE_STATUSES
from dashboard.handles import scheduler, store
from dashboard.labels import plain, run_label


def sidebar_active_runs(refresh_s: float | None = 2.0) -> None:
    """Runs queued or training now, each a link to its live view, and where they train (this machine or a Ray
    cluster, with its CPUs); refreshed every ``refresh_s`` (None: drawn once per page run — the live view passes
    None: a second refreshing fragment beside its chart cost a watched run ~10 % of its speed in the browser test,
    and the live view shows that progress itself).

    Labels carry no changing numbers: links whose text changes every refresh re-lay-out the page each time.
    """

    def active() -> None:
        runs = [r for r in store().list_runs() if r["status"] in ACTIVE_STATUSES]
        st.caption(f"**Active runs** ({len(runs)})")
        for run in runs[:12]:
            st.page_link("pages/live.py", label=plain(run_label(run)), query_params={"run": run["id"]})
        if not runs:
            st.caption("Nothing training. Launch a run from **Train**.")
        st.caption(f"Runs train on {plain(scheduler(str(data_home())).where())}.")

    with st.sidebar:
        if refresh_s is None:
            active()
        else:
            st.fragment(active, run_every=refresh_s)()


def x_axis_input(where: Any, *, key: str) -> str:
    """What training curves are plotted against (a key of ``X_AXES``)."""
    return where.selectbox("x axis", list(X_AXES), key=key, format_func=X_AXES.get)


def smoothing_inputs(method_column: Any, amount_column: Any, *, key: str,
                     ema_weight: float = SMOOTHING_DEFAULTS["ema"]) -> tuple[str, float]:
    """A smoothing method and its amount (an EMA weight, a window in episodes, 0 for none), within the ranges the
    figures take. Widget keys: ``{key}_method``, ``{key}_ema``, ``{key}_window``."""
    method = method_column.selectbox("Smoothing", list(SMOOTHING), key=f"{key}_method", format_func=SMOOTHING.get)
    low, high = SMOOTHING_RANGES[method]
    if method == "ema":
        return method, amount_column.slider("EMA weight", low, high, ema_weight, key=f"{key}_ema")
    if method == "window":
        return method, amount_column.number_input("Window (episodes)", low, high, SMOOTHING_DEFAULTS["window"],
                                                  key=f"{key}_window")
    return method, 0
