"""The app's HTTP endpoint for the live view, mounted by app.py (``st.App`` routes) beside Streamlit's own.

``GET /lab/api/live?runs=ID[,ID…]&view=Reward&x=env_steps&method=ema&amount=0.9[&drawn=…&clip=…&clip_due=…]``
(``snapshot.LiveRequest``) answers with the live view's snapshot as JSON (``snapshot.Snapshot``, made by
``feed.LiveFeed.snapshot``): progress lines, chart figures, captions, and whether the page that drew ``drawn``
must rerun. While runs train, the live view's components fetch it every 0.8 s and redraw in place. Refreshing by
rerunning the page instead cost a run trained on the same two cores 10–25 % of its speed: each rerun is a round of
server work and of React rendering in the browser.

Bad requests get a 400 (unknown runs a 404) whose ``error`` names what was wrong and what is allowed; no message
carries a path of this machine. Requests whose ``Host`` is not one this server answers to get a 403 — a web page on
another site cannot read metrics by pointing its own host name at this address (DNS rebinding). With the access
gate on (``CARTPOLE_LAB_TOKEN``, see :mod:`dashboard.access`), a request must also carry the ``key`` the page
signed for it.
"""

from __future__ import annotations

from typing import Any

from plotly.io.json import to_json_plotly
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from cartpole_core.runs.home import data_home
from cartpole_core.runs.store import StoreError
from dashboard import access
from dashboard.live.feed import shared_feed
from dashboard.live.snapshot import LiveRequest, LiveRequestError, UnknownRunError

LIVE_PATH = "/lab/api/live"
served = False  # True in a server started from app.py: the live view then refreshes through LIVE_PATH


def live(request: Request) -> Response:
    """The live view's snapshot (a plain function: Starlette runs it in its thread pool, off the event loop)."""
    host = request.headers.get("host", "")
    if not access.host_allowed(host):
        return JSONResponse({"error": f"host {host[:100]!r} is not served here; allowed: "
                                      f"{', '.join(access.allowed_hosts())} (set {access.HOSTS_ENV} to add "
                                      "names this server is reached by)"}, status_code=403)
    params = dict(request.query_params)
    key = params.pop("key", "")
    if not access.request_allowed(request.url.query, key):
        return JSONResponse({"error": "this lab is gated: open it in the browser and sign in"}, status_code=403)
    try:
        live_request = LiveRequest.from_query(params)
        feed = shared_feed(data_home())
        snapshot = feed.snapshot(live_request)
    except LiveRequestError as err:
        return JSONResponse({"error": str(err)}, status_code=404 if isinstance(err, UnknownRunError) else 400)
    except StoreError:  # its message names files on this machine: not for the network
        return JSONResponse({"error": "the run store cannot be read; the dashboard says why"}, status_code=503)
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
