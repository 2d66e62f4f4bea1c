"""The pages through Streamlit's AppTest, shared by the page tests: open a page as a user would (query parameters
and all), train small runs to show, and read what the pages drew."""

from __future__ import annotations

import json
import re

from streamlit.testing.v1 import AppTest

from cartpole_core.config.presets import preset_config
from cartpole_core.jobs.execution import execute_stored_run
from cartpole_core.jobs.queue import submit
from cartpole_core.runs.store import RunStore

APP = "../app.py"


def app(page: str | None = None, **query: str) -> AppTest:
    """app.py run once, showing ``page`` (e.g. ``pages/live.py``) with ``query`` in its URL."""
    test = AppTest.from_file(APP, default_timeout=60)
    for key, value in query.items():
        test.query_params[key] = value
    if page:
        test.switch_page(page)
    return test.run()


def trained_group(home, seeds=(0, 1), total_env_steps=4000) -> list[str]:
    """Q-learning `fast` runs trained to completion in ``home`` (a group: one run per seed)."""
    store = RunStore(home)
    config = preset_config("qlearning", "fast", total_env_steps=total_env_steps, stop_on_solve=False)
    _, run_ids = submit(store, config, list(seeds), preset="fast")
    for run_id in run_ids:
        store.claim(run_id)
        execute_stored_run(store, run_id)
    return run_ids


def shown(markdown: str) -> str:
    """What an element that renders Markdown shows: user text reaches it escaped (``dashboard.labels.plain``), so
    remove the backslash escapes to compare with the text itself."""
    return re.sub(r"\\(.)", r"\1", markdown)


def figure(element) -> dict:
    """An st.plotly_chart's figure."""
    return json.loads(element.proto.spec)


def live_elements(test: AppTest, kind: str) -> list[dict]:
    """The data the live view sent its components of ``kind`` ("chart" or "progress": ``live_chart`` and
    ``live_progress`` of ``dashboard.live.component``)."""
    elements = [json.loads(element.proto.json) for element in test.get("bidi_component")
                if element.proto.component_name.endswith("live_view")]
    return [data for data in elements if data["kind"] == kind]


def live_figures(test: AppTest) -> list[dict]:
    """The figures of the live view's charts, as first drawn (they then refresh themselves in a browser)."""
    return [json.loads(data["spec"]) for data in live_elements(test, "chart")]
