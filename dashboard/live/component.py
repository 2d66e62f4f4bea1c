"""The live view's browser component (``live_view.js``) from Python: progress lines and charts that stay mounted
and redraw in place, refreshing themselves from the live endpoint.

Plotly.js itself is served from the installed plotly package (a file-serving component rooted at its
``package_data``), so it always matches plotly.py and nothing is vendored.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import plotly
import plotly.io
import streamlit as st
from streamlit.components import v1 as components

from dashboard import access
from dashboard.live import endpoint
from dashboard.live.feed import chart_spec
from dashboard.live.snapshot import LiveRequest, ProgressLine

REFRESH_S = 0.8  # "at least once a second": with some room for a fetch or a draw that lands late

_LIVE_VIEW = st.components.v2.component(
    "cartpole_lab.live_view", js=Path(__file__).with_name("live_view.js").read_text(),
    isolate_styles=False)  # Plotly styles its toolbar and hover labels from the document's head
_PLOTLY_JS = components.declare_component("plotly_js", path=str(Path(plotly.__file__).parent / "package_data"))


def feed_for(request: LiveRequest) -> dict[str, Any] | None:
    """Where the live view's elements fetch fresh snapshots and how often (``{"url", "every_ms"}``, signed when the
    access gate is on), or None when this server has no live endpoint (a script run without app.py's ``st.App``,
    e.g. in AppTest): the page then refreshes by rerunning. Every element of a page gets the same URL, so they
    share one request per refresh."""
    if not endpoint.served:
        return None
    query = access.signed_query(request.query())
    return {"url": endpoint.url_path(f"{endpoint.LIVE_PATH}?{query}"), "every_ms": int(REFRESH_S * 1000)}


def _plotly_src() -> str:
    return endpoint.url_path(f"/component/{_PLOTLY_JS.name}/plotly.min.js")


def preload_live_charts() -> None:
    """Load the live charts' Plotly.js in this browser tab now, while the user reads the page (it stays loaded
    across pages): its ~1 s of parsing then doesn't fall in the first seconds of the run just launched."""
    _LIVE_VIEW(key="preload_live_charts", data={"kind": "preload", "plotly_src": _plotly_src()})


def live_chart(figure: Any, *, key: str, caption: str = "", feed: dict[str, Any] | None = None) -> None:
    """Draw ``figure`` (a Plotly figure or its dict) as a chart that keeps its zoom while it refreshes.

    ``st.plotly_chart`` mounts a new chart for every changed figure: once a second, in a browser on the cores a
    run trains on, that was a large part of the live view's cost. This one keeps its chart and applies each new
    figure with ``Plotly.react``. With ``feed`` (:func:`feed_for`) it then refreshes itself, drawing the
    snapshot's figure under its ``key``. The figure goes as JSON in the component's ``spec`` (what tests read).
    """
    _LIVE_VIEW(key=key, data={"kind": "chart", "part": key, "spec": plotly.io.to_json(chart_spec(figure),
                                                                                      validate=False),
                              "caption": caption, "plotly_src": _plotly_src(), "feed": feed})


def live_progress(progress: list[ProgressLine], *, key: str, feed: dict[str, Any] | None = None) -> None:
    """Progress bars (one per run) that refresh themselves from ``feed`` (:func:`feed_for`). When a snapshot says
    the page must rerun (``rerun``, see ``snapshot.DrawnPage``), this element asks for one rerun of the page (or
    fragment) it is in."""
    _LIVE_VIEW(key=key, data={"kind": "progress", "progress": progress, "feed": feed}, on_changed_change=lambda: None)
