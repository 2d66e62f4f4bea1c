"""The app's HTTP endpoint for the live view, mounted by app.py (``st.App`` routes) beside Streamlit's own.

``GET /lab/api/live?runs=ID[,ID…]&view=Reward&x=env_steps&method=ema&amount=0.9&title=…`` answers with the live
view's snapshot as JSON (``cartpole_core.live.LiveFeed.snapshot``): progress lines, chart figures, captions and a
layout key. While runs train, the live view's components fetch it every 0.8 s and redraw in place. Refreshing by
rerunning the page instead cost a run trained on the same two cores 10–25 % of its speed: each rerun is a round of
server work and of React rendering in the browser.

Bad requests get a 400 (unknown runs a 404) whose ``error`` names what was wrong and what is allowed.
"""

from __future__ import annotations

from typing import Any

from plotly.io.json import to_json_plotly
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from cartpole_core.live import LiveRequest, LiveRequestError, UnknownRunError, shared_feed
from cartpole_core.paths import data_home

LIVE_PATH = "/lab/api/live"
served = False  # True in a server started from app.py: the live view then refreshes through LIVE_PATH


def live(request: Request) -> Response:
    """The live view's snapshot (a plain function: Starlette runs it in its thread pool, off the event loop)."""
    try:
        live_request = LiveRequest.from_query(request.query_params)
        feed = shared_feed(data_home())
        snapshot = feed.snapshot(live_request)
    except LiveRequestError as err:
        return JSONResponse({"error": str(err)}, status_code=404 if isinstance(err, UnknownRunError) else 400)
    return Response(to_json_plotly(snapshot), media_type="application/json", headers={"Cache-Control": "no-store"})


def url_path(path: str) -> str:
    """``path`` under the server's ``server.baseUrlPath``, where Streamlit serves its own routes too."""
    from streamlit import config

    base = (config.get_option("server.baseUrlPath") or "").strip("/")
    return f"{'/' + base if base else ''}{path}"


def routes() -> list[Any]:
    """The routes app.py mounts; calling this marks the live endpoint as served in this process."""
    global served
    served = True
    return [Route(url_path(LIVE_PATH), live, methods=["GET"])]
