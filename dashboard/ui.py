"""Shared dashboard pieces: the store and scheduler handles, the config form generated from field metadata,
URL sharing of a configuration, and small display helpers. Pages stay thin and call into this and
``cartpole_core``; nothing here trains or touches SQL directly."""

from __future__ import annotations

import contextlib
import json
import math
import re
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import plotly
import plotly.io
import streamlit as st
from streamlit.components import v1 as components

from cartpole_core.config.limits import NAME_MAX, SEEDS_PER_LAUNCH_MAX
from cartpole_core.config.models import (
    OBS_NAMES,
    ConfigError,
    FieldSpec,
    TrainConfig,
    config_class,
    field_specs,
    spec_lookup,
    with_overrides,
)
from cartpole_core.config.presets import preset_config, preset_names
from cartpole_core.jobs.scheduler import Scheduler
from cartpole_core.runs.home import DataHomeError, data_home
from cartpole_core.runs.store import ACTIVE_STATUSES, RunStore, StoreError
from dashboard import access as lab_access
from dashboard.live import endpoint as lab_api
from dashboard.live.feed import STATUS_ICONS, LiveRequest, chart_spec

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


# ------------------------------------------------------------------------------------------------ access


def require_access() -> None:
    """With the access gate on (a server others can reach, :mod:`lab_access`), nothing draws until this session
    has given the token. Called by app.py and again by each page (:func:`page`), which Streamlit may run alone."""
    if not lab_access.gated() or st.session_state.get("_signed_in"):
        return
    st.title("CartPole Lab")
    with st.form("sign_in"):
        given = st.text_input("Access token", type="password",
                              help=f"This lab is shared: the person who started it set {lab_access.TOKEN_ENV}.")
        if st.form_submit_button("Sign in", type="primary"):
            if lab_access.session_allowed(given):
                st.session_state["_signed_in"] = True
                st.rerun()
            st.error("That is not this lab's access token.", icon=":material/lock:")
    st.stop()


# ------------------------------------------------------------------------------------------------ handles


@contextlib.contextmanager
def page() -> Iterator[None]:
    """Every page's body runs inside this: past the access gate, and with a damaged or unreadable store shown as a
    message instead of a traceback. (app.py applies both too, but Streamlit may run a page file on its own.)"""
    require_access()
    with store_problems_shown():
        yield


@contextlib.contextmanager
def store_problems_shown() -> Iterator[None]:
    """Run a page (or fragment); if the run store or data home cannot be read or written — a damaged database, a
    file that is not the lab's, a full disk, a read-only folder — say so and what to do, instead of a traceback.
    Everything already stored stays as it is."""
    try:
        yield
    except (StoreError, DataHomeError) as err:
        st.error(f"**The lab's data cannot be used right now.** {plain(err)}", icon=":material/database:")
        st.markdown("To check the store: `python -m cartpole_core runs check`. To save everything readable into a "
                    "fresh data home: `python -m cartpole_core runs salvage --to NEW_FOLDER`, then start the lab "
                    "with `CARTPOLE_LAB_HOME=NEW_FOLDER`.")
        st.stop()


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


_MARKDOWN = re.compile(r"([\\`*_{}\[\]()#+\-.!:<>|~$&])")


def plain(text: Any) -> str:
    """User text (a name, a tag) for an element that renders Markdown — titles, captions, page links, image
    captions: every Markdown, directive (``:red[…]``), LaTeX (``$…$``) and HTML character escaped, so it reads
    exactly as typed. Widgets' options and tables show text as is and need none of this."""
    return _MARKDOWN.sub(r"\\\1", str(text))


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
            st.page_link("pages/live.py", label=plain(run_label(run)), query_params={"run": run["id"]})
        if not runs:
            st.caption("Nothing training. Launch a run from **Train**.")

    with st.sidebar:
        if refresh_s is None:
            active()
        else:
            st.fragment(active, run_every=refresh_s)()


# ------------------------------------------------------------------------------------------------ live view

# Progress lines and charts that stay mounted and redraw in place (dashboard/live/live_view.js). Plotly.js itself is
# served from the installed plotly package (a file-serving component rooted at its package_data), so it always
# matches plotly.py and nothing is vendored.
_LIVE_VIEW = st.components.v2.component(
    "cartpole_lab.live_view", js=(Path(__file__).parent / "live" / "live_view.js").read_text(),
    isolate_styles=False)  # Plotly styles its toolbar and hover labels from the document's head
_PLOTLY_JS = components.declare_component("plotly_js", path=str(Path(plotly.__file__).parent / "package_data"))


def live_feed_url(request: LiveRequest) -> str | None:
    """Where the live view's elements fetch fresh snapshots, or None when this server has no live endpoint (a
    script run without app.py's ``st.App``, e.g. in AppTest): the page then refreshes by rerunning."""
    query = lab_access.signed_query(request.query())
    return lab_api.url_path(f"{lab_api.LIVE_PATH}?{query}") if lab_api.served else None


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
    """Progress bars (one per run, :func:`dashboard.live.feed.progress`) that refresh themselves from ``feed``.

    ``feed`` may also carry ``layout`` (the snapshot's layout key) and ``clip``/``clip_due_ms`` (the checkpoint
    the page's clip shows, and when a newer one may replace it): when the endpoint's snapshot differs, the
    element asks for one rerun of the page (or fragment) it is in.
    """
    _LIVE_VIEW(key=key, data={"kind": "progress", "progress": progress, "feed": feed}, on_changed_change=lambda: None)


# ------------------------------------------------------------------------------------------------ the form
#
# Every Train widget keeps its value for the whole session (``persist_state="session"``): Streamlit otherwise drops
# a widget's state when its page is left or the widget is not drawn (another algorithm shown), and the form came
# back with every field at its minimum while the page still described the preset.

KEEP = "session"
LAUNCH_LIMITS = {"seeds": (1, SEEDS_PER_LAUNCH_MAX), "seed": (0, 1_000_000)}


def form_key(algo: str, name: str) -> str:
    """The session-state key of one field's widget on the Train page."""
    return f"cfg.{algo}.{name}"


def field_label(name: str) -> str:
    """A field as people read it: ``learning_rate.start`` → ``learning rate start``."""
    return name.replace(".", " ").replace("_", " ")


def humanize(message: str, names: list[str] | tuple[str, ...]) -> str:
    """A validation message with the config's code names (``batch_size``) replaced by their labels."""
    for name in sorted(names, key=len, reverse=True):
        message = re.sub(rf"(?<![\w.]){re.escape(name)}(?![\w])", field_label(name), message)
    return message


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
    """Put the preset's values, and then any overrides, into the form's widget state."""
    values = {**_flat(preset_config(algo, preset)), **(overrides or {})}
    for name, value in values.items():
        st.session_state[form_key(algo, name)] = _widget_value(value)
    st.session_state[f"_loaded.{algo}"] = preset
    st.session_state[f"_form_version.{algo}"] = st.session_state.get(f"_form_version.{algo}", 0) + 1


def form_loaded(algo: str) -> bool:
    return st.session_state.get(f"_loaded.{algo}") is not None and form_key(algo, "total_env_steps") in st.session_state


def _widget_value(value: Any) -> Any:
    """A field's value as its widget holds it; lists as text, every float written exactly (``0.41887903``, not a
    rounding that would read back as a change from the preset)."""
    if isinstance(value, list):
        return ", ".join(repr(v) if isinstance(v, float) else str(v) for v in value)
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
        key = form_key(algo, spec.name)
        if key in st.session_state:
            value = st.session_state[key]
            values[spec.name] = _parse_list(value, spec.kind) if spec.kind.endswith("list") else value
    return values


def validate(algo: str, preset: str) -> tuple[TrainConfig | None, dict[str, str]]:
    """The config the form describes, or the problems per field (``{field: message}``, in words people read)."""
    try:
        return with_overrides(preset_config(algo, preset), form_values(algo)), {}
    except ConfigError as err:
        names = [spec.name for spec in field_specs(config_class(algo))]
        return None, {field: humanize(message, names) for field, message in err.problems}


def schedule_preview(algo: str, schedule: str, config: TrainConfig | None, preset: str) -> tuple[Any, int] | None:
    """The schedule the form describes and the horizon to draw it over — from the schedule's own fields, so the
    preview stays while some other field is invalid. None when the schedule's own fields are invalid."""
    cls = config_class(algo).model_fields[schedule].annotation
    form = form_values(algo)
    values = {name.split(".", 1)[1]: value for name, value in form.items() if name.startswith(f"{schedule}.")}
    try:
        sched = cls(**values)
    except ConfigError:
        return None
    base = config or preset_config(algo, preset)
    steps, episodes = form.get("total_env_steps"), form.get("max_episodes")
    steps = steps if isinstance(steps, int) and steps > 0 else base.total_env_steps
    episodes = episodes if isinstance(episodes, int) and episodes > 0 else base.max_episodes
    return sched, steps if sched.unit == "steps" else (episodes or 1000)


def _help(spec: FieldSpec) -> str:
    parts = [spec.description + "."]
    if spec.typical:
        parts.append(f"Typical: {spec.typical[0]:g} – {spec.typical[1]:g}.")
    parts.append(f"Allowed: {spec.allowed()}.")
    if spec.log:
        parts.append("Log-scaled: change it by factors, not steps.")
    return " ".join(parts)


def preset_values(algo: str, preset: str) -> dict[str, Any]:
    """The preset's value of every field, by dotted name (what log sliders always offer)."""
    return _flat(preset_config(algo, preset))


def field_widget(algo: str, spec: FieldSpec, problems: dict[str, str], label: str | None = None,
                 preset: dict[str, Any] | None = None) -> None:
    """One widget for one field, bounded by its hard limits, with its inline error underneath. ``preset``: the
    preset's values (:func:`preset_values`), computed once per page run."""
    key, label, help_text = form_key(algo, spec.name), label or spec.name.split(".")[-1].replace("_", " "), _help(spec)
    if spec.kind == "bool":
        st.toggle(label, key=key, help=help_text, persist_state=KEEP)
    elif spec.kind == "choice":
        st.selectbox(label, spec.choices, key=key, help=help_text, persist_state=KEEP)
    elif spec.log and spec.kind in ("int", "float") and spec.high is not None:
        # Log-scaled: a slider over 1-2-5 steps per decade, plus the preset's value and the current one, so
        # 1e-4 → 1e-3 is as far as 1e-3 → 1e-2 and the preset's value is always one move away.
        options = log_options(spec, st.session_state.get(key), (preset or {}).get(spec.name))
        st.select_slider(label, options, key=key, help=help_text, persist_state=KEEP,
                         format_func=lambda v: f"{v:,}" if isinstance(v, int) else f"{v:g}")
    elif spec.kind in ("int", "optional_int"):
        st.number_input(label, min_value=None if spec.low is None else int(spec.low + spec.low_open),
                        max_value=None if spec.high is None else int(spec.high), step=1, key=key, help=help_text,
                        placeholder="no limit" if spec.kind == "optional_int" else None, persist_state=KEEP)
    elif spec.kind in ("float", "optional_float"):
        small = spec.log or (spec.high is not None and spec.high <= 1e-2)
        st.number_input(label, min_value=None if spec.low is None or spec.low_open else float(spec.low),
                        max_value=None if spec.high is None else float(spec.high), key=key, help=help_text,
                        format="%.2e" if small else "%.4g" if spec.high is None or spec.high > 10 else "%.4f",
                        step=None, placeholder="none" if spec.kind == "optional_float" else None,
                        persist_state=KEEP)
    else:  # lists, e.g. hidden sizes "64, 64"
        st.text_input(label, key=key, help=help_text + " Comma-separated.", persist_state=KEEP)
    if spec.name in problems:
        st.error(problems[spec.name], icon=":material/error:")


def log_options(spec: FieldSpec, *keep: Any) -> list:
    """1-2-5 values per decade within the field's bounds (open zero bounds start two decades below typical), plus
    the values in ``keep`` (the current value, the preset's) so neither is lost by moving the slider."""
    low = spec.low if spec.low and spec.low > 0 else (spec.typical[0] / 100 if spec.typical and spec.typical[0]
                                                      else 1e-6)
    values = []
    for exponent in range(math.floor(math.log10(low)), math.ceil(math.log10(spec.high)) + 1):
        for mantissa in (1, 2, 5):
            value = mantissa * 10.0**exponent
            if low <= value <= spec.high and not (spec.low_open and value <= spec.low):
                values.append(int(value) if spec.kind == "int" else float(f"{value:.6g}"))
    values += [value for value in keep if isinstance(value, (int, float)) and not isinstance(value, bool)]
    return sorted(set(values))


# ------------------------------------------------------------------------------------------------ share links
#
# A Train URL carries the whole page: algo, preset, the fields that differ from the preset (``cfg``, JSON), the
# number of seeds and the first one, the run name and tags. A link with a value that cannot be used restores the
# rest and names what it dropped.

def share_url_state(algo: str, preset: str) -> None:
    """Write the page's setup into the URL (only the fields that differ from the preset go into ``cfg``)."""
    overrides = {}
    base = _flat(preset_config(algo, preset))
    for name, value in form_values(algo).items():
        if name in base and value != base[name]:
            overrides[name] = value
    params = {"algo": algo, "preset": preset}
    if overrides:
        params["cfg"] = json.dumps(overrides, separators=(",", ":"))
    for param, key, default in (("seeds", "n_seeds", 1), ("seed", "first_seed", 0), ("name", "run_name", ""),
                                ("tags", "run_tags", "")):
        value = st.session_state.get(key, default)
        if value not in (default, None):
            params[param] = str(value)
    current = {key: st.query_params.get(key) for key in st.query_params}
    if current != params:
        st.query_params.from_dict(params)
    _remember_written(params)


def _url_key(params: dict[str, Any]) -> str:
    return json.dumps(params, sort_keys=True)


def _remember_written(params: dict[str, Any]) -> None:
    """Our own URLs are never restored as if they were shared links: a rerun may still carry an older one of them
    (the browser sends the query string it had when the user clicked)."""
    written = st.session_state.setdefault("_url_written", [])
    key = _url_key(params)
    if key in written:
        written.remove(key)
    written.append(key)
    del written[:-_URLS_REMEMBERED]


_URLS_REMEMBERED = 100


def default_preset(algo: str) -> str:
    names = preset_names(algo)
    return "fast" if "fast" in names else names[0]


def _usable(spec: FieldSpec, value: Any) -> bool:
    """Whether a value from a link can go into the field's widget (type and hard bounds); cross-field rules are
    left to the form, which shows them inline."""
    if spec.kind == "bool":
        return isinstance(value, bool)
    if spec.kind == "choice":
        return value in spec.choices
    if spec.kind.endswith("list"):
        return isinstance(value, list) and all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in value)
    if value is None:
        return spec.kind.startswith("optional")
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        return False
    if spec.kind.endswith("int") and not float(value).is_integer():
        return False
    if spec.low is not None and (value < spec.low or (spec.low_open and value == spec.low)):
        return False
    return spec.high is None or value <= spec.high


def _coerce(spec: FieldSpec, value: Any) -> Any:
    """A usable link value as its widget holds it: ``5.0`` for an integer field is 5, ``1`` for a float is 1.0."""
    if value is None or spec.kind not in ("int", "optional_int", "float", "optional_float"):
        return value
    return int(value) if spec.kind.endswith("int") else float(value)


def _shown(value: Any) -> str:
    text = json.dumps(value) if not isinstance(value, str) else repr(value)
    return text if len(text) <= 40 else text[:37] + "..."


def restore_url_state(algorithms: tuple[str, ...]) -> None:
    """Take the setup from the URL when it carries one this session did not write itself (a shared link opened, or a
    link followed to Train); name anything not applied.

    Keyed on the URL, not on "the session's first run": a session's first run may come before the browser's query
    string reaches the server, and the shared link must still be restored on the run that brings it.
    """
    current = {key: st.query_params.get(key) for key in st.query_params}
    algo = current.get("algo")
    if algo is None or _url_key(current) in st.session_state.get("_url_written", []):
        return
    _remember_written(current)  # restored once: the form is the truth from here on
    problems = []
    if algo not in algorithms:
        st.session_state["_url_problem"] = (f"The shared link's algorithm {_shown(algo)} is unknown (allowed: "
                                            f"{', '.join(algorithms)}); nothing was restored.")
        return
    preset = st.query_params.get("preset")
    if preset not in preset_names(algo):
        problems.append(f"preset {_shown(preset)} (allowed: {', '.join(preset_names(algo))}; "
                        f"{default_preset(algo)} used)")
        preset = default_preset(algo)
    try:
        shared = json.loads(st.query_params.get("cfg", "{}"))
    except (ValueError, RecursionError):
        shared = None
    if not isinstance(shared, dict):
        problems.append("the configuration (not a JSON object of field values)")
        shared = {}
    specs = spec_lookup(config_class(algo))
    overrides = {}
    for name, value in shared.items():
        if name not in specs:
            problems.append(f"{_shown(name)} (not a field of {ALGORITHM_TITLES[algo]})")
        elif not _usable(specs[name], value):
            problems.append(f"{field_label(name)} = {_shown(value)} (must be {specs[name].allowed()})")
        else:
            overrides[name] = _coerce(specs[name], value)
    st.session_state["algo"] = algo
    st.session_state[f"preset.{algo}"] = preset
    load_preset(algo, preset, overrides)
    for param, key, (low, high) in (("seeds", "n_seeds", LAUNCH_LIMITS["seeds"]),
                                    ("seed", "first_seed", LAUNCH_LIMITS["seed"])):
        if param in st.query_params:
            text = st.query_params.get(param, "")
            if text.isdigit() and low <= int(text) <= high:
                st.session_state[key] = int(text)
            else:
                label = "Seeds" if param == "seeds" else "First seed"
                problems.append(f"{label} = {_shown(text)} (must be an integer from {low:,} to {high:,})")
    name = st.query_params.get("name", "")
    if len(name) > NAME_MAX:
        problems.append(f"name ({len(name):,} characters; at most {NAME_MAX})")
    elif name:
        st.session_state["run_name"] = name
    tags = st.query_params.get("tags", "")
    if tags:
        st.session_state["run_tags"] = tags
    if problems:
        st.session_state["_url_problem"] = ("The shared link's setup was restored except: " + "; ".join(problems)
                                            + ".")


def bins_editor(algo: str, problems: dict[str, str]) -> None:
    """Bins and bounds per observation dimension as one table, parsed back into the bins/low/high fields."""
    import pandas as pd

    bins = _parse_list(st.session_state[form_key(algo, "bins")], "int_list")
    low = _parse_list(st.session_state[form_key(algo, "low")], "float_list")
    high = _parse_list(st.session_state[form_key(algo, "high")], "float_list")
    if not (isinstance(bins, list) and isinstance(low, list) and isinstance(high, list)):
        bins, low, high = [1, 1, 6, 12], [-2.4, -3.0, -0.42, -0.87], [2.4, 3.0, 0.42, 0.87]
    table = pd.DataFrame({"dimension": list(OBS_NAMES), "bins": bins, "low": low, "high": high})
    editor_key = f"bins_editor.{algo}.{st.session_state.get(f'_form_version.{algo}', 0)}"

    def apply_edits() -> None:  # runs before the script, so this rerun validates the edited table
        values = {"bins": list(bins), "low": list(low), "high": list(high)}
        for row, changes in st.session_state[editor_key].get("edited_rows", {}).items():
            for column, value in changes.items():
                if column in values and value is not None:
                    values[column][int(row)] = value
        for column, column_values in values.items():
            st.session_state[form_key(algo, column)] = _widget_value(column_values)

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


def picker_label(run: dict[str, Any]) -> str:
    """A run in a selector: its status and name, and what tells look-alikes apart — when it was made and its id's
    unique tail (``ppo-20261123-204501-3fa2c1`` → ``3fa2c1``)."""
    made = time.strftime("%b %d %H:%M", time.localtime(run["created_at"]))
    return f"{run_label(run)} · {made} · {run['id'].rsplit('-', 1)[-1]}"


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
                             format_func=lambda rid: picker_label(by_id[rid]))
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
    from cartpole_core.engine.agent import load_agent
    return load_agent(path)


def load_checkpoint(artifact: dict[str, Any]) -> Any:
    """The agent of a checkpoint, cached per file version; a missing or unreadable file shows an error and stops."""
    from cartpole_core.engine.agent import CheckpointError
    path = artifact["path"]
    try:
        return _cached_agent(str(path), path.stat().st_mtime)
    except FileNotFoundError:
        st.error(f"The checkpoint file {path} is missing (deleted outside the lab?). Pick another checkpoint.")
    except CheckpointError as err:
        st.error(f"Cannot load {path}: {err}")
    st.stop()
