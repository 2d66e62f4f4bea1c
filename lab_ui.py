"""Shared dashboard pieces: the store and scheduler handles, the config form generated from field metadata,
URL sharing of a configuration, and small display helpers. Pages stay thin and call into this and
``cartpole_core``; nothing here trains or touches SQL directly."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import plotly
import plotly.io
import streamlit as st
from streamlit.components import v1 as components

import lab_api
from cartpole_core.configs import (
    OBS_NAMES,
    ConfigError,
    FieldSpec,
    TrainConfig,
    config_class,
    field_specs,
    with_overrides,
)
from cartpole_core.jobs import Scheduler
from cartpole_core.live import STATUS_ICONS, LiveRequest, chart_spec
from cartpole_core.paths import data_home
from cartpole_core.presets import preset_config, preset_names
from cartpole_core.store import ACTIVE_STATUSES, RunStore

ALGORITHM_TITLES = {"qlearning": "Tabular Q-learning", "dqn": "DQN", "ppo": "PPO"}
COMMON_FIELDS = ("total_env_steps", "max_episodes", "max_episode_steps", "n_envs", "eval_every_steps",
                 "stop_on_solve")
QTABLE_FIELDS = ("bins", "low", "high")


def _run_pages_through_the_app() -> None:
    """Every page runs inside app.py's navigation (its sections, the wide layout, the sidebar).

    Streamlit treats a ``pages/`` folder beside the entry point as a legacy multipage app until ``st.navigation``
    has been called once in the server process. So the first request after a server start that names a page — a
    reload of ``/live?run=…`` — ran that page alone: raw file names in the sidebar, a narrow layout, and the same
    for every later session until someone opened the root URL. Leave that mode (as ``st.navigation`` itself does)
    and rerun, which now goes through app.py; the URL and its query parameters are kept.
    """
    from streamlit.runtime.pages_manager import PagesManager

    if PagesManager.uses_pages_directory:
        PagesManager.uses_pages_directory = False
        st.rerun()


_run_pages_through_the_app()


# ------------------------------------------------------------------------------------------------ handles


@st.cache_resource
def scheduler(home: str) -> Scheduler:
    """One queue runner per server process and data home: starts queued runs in worker processes."""
    runner = Scheduler(data_home(home))
    runner.start()
    return runner


def store() -> RunStore:
    """This session's handle on the run store (SQLite connections are not shared between sessions)."""
    home = str(data_home())
    if st.session_state.get("_store_home") != home:
        st.session_state["_store"] = RunStore(data_home(home))
        st.session_state["_store_home"] = home
    scheduler(home)
    return st.session_state["_store"]


# ---------------------------------------------------------------------------------------------- formatting


def run_label(run: dict[str, Any]) -> str:
    return f"{STATUS_ICONS.get(run['status'], '')} {run['name']}"


def sidebar_active_runs(refresh_s: float | None = 2.0) -> None:
    """Runs queued or training now, each a link to its live view; refreshed every ``refresh_s`` (None: drawn
    once per page run — the live view passes None: a second refreshing fragment beside its chart cost a watched
    run ~10 % of its speed in the browser test, and the live view shows that progress itself).

    Labels carry no changing numbers: links whose text changes every refresh re-lay-out the page each time.
    """

    def active() -> None:
        runs = [r for r in store().list_runs() if r["status"] in ACTIVE_STATUSES]
        st.caption(f"**Active runs** ({len(runs)})")
        for run in runs[:12]:
            st.page_link("pages/live.py", label=run_label(run), query_params={"run": run["id"]})
        if not runs:
            st.caption("Nothing training. Launch a run from **Train**.")

    with st.sidebar:
        if refresh_s is None:
            active()
        else:
            st.fragment(active, run_every=refresh_s)()


# ------------------------------------------------------------------------------------------------ live view

# Progress lines and charts that stay mounted and redraw in place (frontend/live_view.js). Plotly.js itself is
# served from the installed plotly package (a file-serving component rooted at its package_data), so it always
# matches plotly.py and nothing is vendored.
_LIVE_VIEW = st.components.v2.component(
    "cartpole_lab.live_view", js=(Path(__file__).parent / "frontend" / "live_view.js").read_text(),
    isolate_styles=False)  # Plotly styles its toolbar and hover labels from the document's head
_PLOTLY_JS = components.declare_component("plotly_js", path=str(Path(plotly.__file__).parent / "package_data"))


def live_feed_url(request: LiveRequest) -> str | None:
    """Where the live view's elements fetch fresh snapshots, or None when this server has no live endpoint (a
    script run without app.py's ``st.App``, e.g. in AppTest): the page then refreshes by rerunning."""
    return lab_api.url_path(f"{lab_api.LIVE_PATH}?{request.query()}") if lab_api.served else None


def _plotly_src() -> str:
    return lab_api.url_path(f"/component/{_PLOTLY_JS.name}/plotly.min.js")


def preload_live_charts() -> None:
    """Load the live charts' Plotly.js in this browser tab now, while the user reads the page (it stays loaded
    across pages): its ~1 s of parsing then doesn't fall in the first seconds of the run just launched."""
    _LIVE_VIEW(key="preload_live_charts", data={"kind": "preload", "plotly_src": _plotly_src()})


def live_chart(figure: Any, *, key: str, caption: str = "", feed: dict[str, Any] | None = None) -> None:
    """Draw ``figure`` (a Plotly figure or its dict) as a chart that keeps its zoom while it refreshes.

    ``st.plotly_chart`` mounts a new chart for every changed figure: once a second, in a browser on the cores a
    run trains on, that was a large part of the live view's cost. This one keeps its chart and applies each new
    figure with ``Plotly.react``. With ``feed`` (``{"url", "every_ms"}``) it then refreshes itself from the live
    endpoint, drawing the snapshot's figure under its ``key``. The figure goes as JSON in the component's ``spec``
    (what tests read).
    """
    _LIVE_VIEW(key=key, data={"kind": "chart", "part": key, "spec": plotly.io.to_json(chart_spec(figure),
                                                                                      validate=False),
                              "caption": caption, "plotly_src": _plotly_src(),
                              "feed": feed})


def live_progress(progress: list[dict[str, Any]], *, key: str, feed: dict[str, Any] | None = None) -> None:
    """Progress bars (one per run, :func:`cartpole_core.live.progress`) that refresh themselves from ``feed``.

    ``feed`` may also carry ``layout`` (the snapshot's layout key) and ``clip``/``clip_due_ms`` (the checkpoint
    the page's clip shows, and when a newer one may replace it): when the endpoint's snapshot differs, the
    element asks for one rerun of the page (or fragment) it is in.
    """
    _LIVE_VIEW(key=key, data={"kind": "progress", "progress": progress, "feed": feed}, on_changed_change=lambda: None)


# ------------------------------------------------------------------------------------------------ the form


def _key(algo: str, name: str) -> str:
    return f"cfg.{algo}.{name}"


def _flat(config: TrainConfig) -> dict[str, Any]:
    """Dotted field name → value, as the specs name them."""
    out: dict[str, Any] = {}
    for name, value in config.model_dump().items():
        if isinstance(value, dict):
            out.update({f"{name}.{k}": v for k, v in value.items()})
        else:
            out[name] = value
    return out


def load_preset(algo: str, preset: str, overrides: dict[str, Any] | None = None) -> None:
    """Put the preset's values (and any overrides) into the form's widget state."""
    config = preset_config(algo, preset)
    if overrides:
        try:
            config = with_overrides(config, overrides)
        except ConfigError as err:
            st.session_state["_url_problem"] = f"The shared link's configuration was not applied: {err}"
    for name, value in _flat(config).items():
        st.session_state[_key(algo, name)] = _widget_value(value)
    st.session_state[f"_loaded.{algo}"] = preset


def _widget_value(value: Any) -> Any:
    if isinstance(value, list):
        return ", ".join(f"{v:g}" if isinstance(v, float) else str(v) for v in value)
    return value


def _parse_list(text: Any, kind: str) -> Any:
    if not isinstance(text, str):
        return text
    parts = [part.strip() for part in text.replace(";", ",").split(",") if part.strip()]
    try:
        return [int(p) if kind == "int_list" else float(p) for p in parts]
    except ValueError:
        return text  # validation names it


def form_values(algo: str) -> dict[str, Any]:
    """The form's current values as dotted overrides for a config."""
    values = {}
    for spec in field_specs(config_class(algo)):
        key = _key(algo, spec.name)
        if key in st.session_state:
            value = st.session_state[key]
            values[spec.name] = _parse_list(value, spec.kind) if spec.kind.endswith("list") else value
    return values


def validate(algo: str, preset: str) -> tuple[TrainConfig | None, dict[str, str]]:
    """The config the form describes, or the problems per field (``{field: message}``)."""
    try:
        return with_overrides(preset_config(algo, preset), form_values(algo)), {}
    except ConfigError as err:
        return None, dict(err.problems)


def _help(spec: FieldSpec) -> str:
    parts = [spec.description + "."]
    if spec.typical:
        parts.append(f"Typical: {spec.typical[0]:g} – {spec.typical[1]:g}.")
    parts.append(f"Allowed: {spec.allowed()}.")
    if spec.log:
        parts.append("Log-scaled: change it by factors, not steps.")
    return " ".join(parts)


def field_widget(algo: str, spec: FieldSpec, problems: dict[str, str], label: str | None = None) -> None:
    """One widget for one field, bounded by its hard limits, with its inline error underneath."""
    key, label, help_text = _key(algo, spec.name), label or spec.name.split(".")[-1].replace("_", " "), _help(spec)
    if spec.kind == "bool":
        st.toggle(label, key=key, help=help_text)
    elif spec.kind == "choice":
        st.selectbox(label, spec.choices, key=key, help=help_text)
    elif spec.log and spec.kind in ("int", "float") and spec.high is not None:
        # Log-scaled: a slider over 1-2-5 steps per decade (plus the current value), so 1e-4 → 1e-3 is as far
        # as 1e-3 → 1e-2.
        options = log_options(spec, st.session_state.get(key))
        st.select_slider(label, options, key=key, help=help_text,
                         format_func=lambda v: f"{v:,}" if isinstance(v, int) else f"{v:g}")
    elif spec.kind in ("int", "optional_int"):
        st.number_input(label, min_value=None if spec.low is None else int(spec.low + spec.low_open),
                        max_value=None if spec.high is None else int(spec.high), step=1, key=key, help=help_text,
                        placeholder="no limit" if spec.kind == "optional_int" else None)
    elif spec.kind in ("float", "optional_float"):
        small = spec.log or (spec.high is not None and spec.high <= 1e-2)
        st.number_input(label, min_value=None if spec.low is None or spec.low_open else float(spec.low),
                        max_value=None if spec.high is None else float(spec.high), key=key, help=help_text,
                        format="%.2e" if small else "%.4g" if spec.high is None or spec.high > 10 else "%.4f",
                        step=None, placeholder="none" if spec.kind == "optional_float" else None)
    else:  # lists, e.g. hidden sizes "64, 64"
        st.text_input(label, key=key, help=help_text + " Comma-separated.")
    if spec.name in problems:
        st.error(problems[spec.name], icon=":material/error:")


def log_options(spec: FieldSpec, current: Any) -> list:
    """1-2-5 values per decade within the field's bounds (open zero bounds start two decades below typical)."""
    low = spec.low if spec.low and spec.low > 0 else (spec.typical[0] / 100 if spec.typical and spec.typical[0]
                                                      else 1e-6)
    values = []
    for exponent in range(math.floor(math.log10(low)), math.ceil(math.log10(spec.high)) + 1):
        for mantissa in (1, 2, 5):
            value = mantissa * 10.0**exponent
            if low <= value <= spec.high and not (spec.low_open and value <= spec.low):
                values.append(int(value) if spec.kind == "int" else float(f"{value:.6g}"))
    if current is not None and current not in values:
        values.append(current)
    return sorted(set(values))


def share_url_state(algo: str, preset: str) -> None:
    """Write the configuration into the URL (algo, preset, and only the fields that differ from the preset)."""
    overrides = {}
    base = _flat(preset_config(algo, preset))
    for name, value in form_values(algo).items():
        if name in base and value != base[name]:
            overrides[name] = value
    st.query_params["algo"] = algo
    st.query_params["preset"] = preset
    if overrides:
        st.query_params["cfg"] = json.dumps(overrides, separators=(",", ":"))
    elif "cfg" in st.query_params:
        del st.query_params["cfg"]


def default_preset(algo: str) -> str:
    names = preset_names(algo)
    return "fast" if "fast" in names else names[0]


def restore_url_state(algorithms: tuple[str, ...]) -> None:
    """On a session's first run, take algo, preset and overrides from the URL (a shared link)."""
    if st.session_state.get("_url_restored"):
        return
    st.session_state["_url_restored"] = True
    algo = st.query_params.get("algo")
    if algo not in algorithms:
        return
    preset = st.query_params.get("preset")
    preset = preset if preset in preset_names(algo) else default_preset(algo)
    try:
        overrides = json.loads(st.query_params.get("cfg", "{}"))
    except ValueError:
        overrides = {}
        st.session_state["_url_problem"] = "The shared link's configuration is not valid JSON; preset loaded."
    st.session_state["algo"] = algo
    st.session_state[f"preset.{algo}"] = preset
    load_preset(algo, preset, overrides if isinstance(overrides, dict) else {})


def bins_editor(algo: str, problems: dict[str, str]) -> None:
    """Bins and bounds per observation dimension as one table, parsed back into the bins/low/high fields."""
    import pandas as pd

    bins = _parse_list(st.session_state[_key(algo, "bins")], "int_list")
    low = _parse_list(st.session_state[_key(algo, "low")], "float_list")
    high = _parse_list(st.session_state[_key(algo, "high")], "float_list")
    if not (isinstance(bins, list) and isinstance(low, list) and isinstance(high, list)):
        bins, low, high = [1, 1, 6, 12], [-2.4, -3.0, -0.42, -0.87], [2.4, 3.0, 0.42, 0.87]
    table = pd.DataFrame({"dimension": list(OBS_NAMES), "bins": bins, "low": low, "high": high})
    editor_key = f"bins_editor.{algo}.{st.session_state.get(f'_loaded.{algo}')}"

    def apply_edits() -> None:  # runs before the script, so this rerun validates the edited table
        values = {"bins": list(bins), "low": list(low), "high": list(high)}
        for row, changes in st.session_state[editor_key].get("edited_rows", {}).items():
            for column, value in changes.items():
                if column in values and value is not None:
                    values[column][int(row)] = value
        for column, column_values in values.items():
            st.session_state[_key(algo, column)] = _widget_value(column_values)

    st.data_editor(
        table, key=editor_key, on_change=apply_edits, hide_index=True,
        disabled=["dimension"], width="stretch",
        column_config={"bins": st.column_config.NumberColumn("bins", min_value=1, max_value=64, step=1,
                                                             help="1 ignores the dimension"),
                       "low": st.column_config.NumberColumn("low", format="%.3f"),
                       "high": st.column_config.NumberColumn("high", format="%.3f")})
    for name in QTABLE_FIELDS:
        if name in problems:
            st.error(problems[name], icon=":material/error:")


# ------------------------------------------------------------------------------------- runs and checkpoints


def checkpoint_label(artifact: dict[str, Any]) -> str:
    steps = f"{artifact['env_steps']:,} env steps"
    kind = {"best": "best evaluation", "final": "final"}.get(artifact["kind"])
    return f"{kind} · {steps}" if kind else f"at {steps}"


def runs_with_checkpoints(algos: tuple[str, ...] | None = None) -> list[dict[str, Any]]:
    """Runs (newest first) that have at least one checkpoint on disk, optionally of some algorithms only."""
    db = store()
    with_checkpoints = db.runs_with_artifacts()
    return [run for run in db.list_runs()
            if (algos is None or run["algo"] in algos) and run["id"] in with_checkpoints]


def pick_checkpoint(key: str, *, label: str = "Run", algos: tuple[str, ...] | None = None,
                    container: Any = None) -> tuple[dict[str, Any], dict[str, Any]] | None:
    """A run selector and a checkpoint selector (periodic ones in training order, then best and final).

    The run defaults to ``?run=ID`` when the URL names one. Returns (run, artifact) or None when no run has
    a checkpoint yet (after telling the user how to get one).
    """
    where = container or st
    runs = runs_with_checkpoints(algos)
    if not runs:
        where.info("No run has a checkpoint yet. Train one on **Train**; checkpoints are saved during training "
                   "and at its end.", icon=":material/info:")
        return None
    ids = [run["id"] for run in runs]
    by_id = {run["id"]: run for run in runs}
    wanted = st.query_params.get("run")
    if f"{key}.run" not in st.session_state or st.session_state[f"{key}.run"] not in by_id:
        st.session_state[f"{key}.run"] = wanted if wanted in by_id else ids[0]
    run_id = where.selectbox(label, ids, key=f"{key}.run",
                             format_func=lambda rid: f"{run_label(by_id[rid])} · {by_id[rid]['algo']} · "
                                                     f"seed {by_id[rid]['seed']}")
    artifacts = store().artifacts(run_id)
    order = {"periodic": 0, "best": 1, "final": 2}
    artifacts.sort(key=lambda a: (order.get(a["kind"], 3), a["env_steps"]))
    labels = [checkpoint_label(a) for a in artifacts]
    default = next((i for i, a in enumerate(artifacts) if a["kind"] == "final"),
                   next((i for i, a in enumerate(artifacts) if a["kind"] == "best"), len(artifacts) - 1))
    if run_id == wanted:  # a link may name the checkpoint file (?checkpoint=step-000020000.pt)
        default = next((i for i, a in enumerate(artifacts) if a["path"].name == st.query_params.get("checkpoint")),
                       default)
    index = where.selectbox("Checkpoint", range(len(artifacts)), index=default, key=f"{key}.checkpoint.{run_id}",
                            format_func=labels.__getitem__,
                            help="Periodic checkpoints show the policy at stages of training; best is the "
                                 "highest evaluation, final the end of training.")
    return by_id[run_id], artifacts[index]


@st.cache_resource(max_entries=32)
def _cached_agent(path: str, mtime: float) -> Any:
    from cartpole_core.agent import load_agent
    return load_agent(path)


def load_checkpoint(artifact: dict[str, Any]) -> Any:
    """The agent of a checkpoint, cached per file version; a missing or unreadable file shows an error and stops."""
    from cartpole_core.agent import CheckpointError
    path = artifact["path"]
    try:
        return _cached_agent(str(path), path.stat().st_mtime)
    except FileNotFoundError:
        st.error(f"The checkpoint file {path} is missing (deleted outside the lab?). Pick another checkpoint.")
    except CheckpointError as err:
        st.error(f"Cannot load {path}: {err}")
    st.stop()
