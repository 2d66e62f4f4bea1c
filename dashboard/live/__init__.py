"""The live view: ``snapshot`` (the request, the snapshot's JSON shape, when the page must rerun), ``feed`` (snapshots
from the store), ``endpoint`` (GET /lab/api/live) and ``component`` (the browser component, ``live_view.js``)."""
