"""Share links of the Train page: its URL carries the whole setup — algorithm, preset, the fields that differ from
the preset (``cfg``, JSON), the number of seeds and the first one, the run name and tags — so a link opens the same
form. A link with a value that cannot be used restores the rest and names what it dropped (:func:`url_problem`).

A user preset is carried by its name, like a built-in: the link opens the same form in the lab that has the preset
(the data home it was saved in); elsewhere it says the preset is missing.
"""

from __future__ import annotations

import json
import math
from typing import Any

import streamlit as st

from cartpole_core.config.limits import NAME_MAX
from cartpole_core.config.models import FieldSpec, config_class, spec_lookup
from cartpole_core.runs.home import data_home
from cartpole_core.runs.presets import all_preset_names
from dashboard.form import LAUNCH_LIMITS, default_preset, field_label, form_values, load_preset, preset_values
from dashboard.labels import ALGORITHM_TITLES

URLS_REMEMBERED = 100  # this session's own URLs, never restored as shared links


def share_url_state(algo: str, preset: str) -> None:
    """Write the page's setup into the URL (only the fields that differ from the preset go into ``cfg``)."""
    overrides = {}
    base = preset_values(algo, preset)
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
    del written[:-URLS_REMEMBERED]


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
    presets = all_preset_names(data_home(), algo)
    if preset is None:  # a link that names no preset means the default one, as the Train page opens
        preset = default_preset(algo)
    elif preset not in presets:
        problems.append(f"preset {_shown(preset)} (this lab has no {ALGORITHM_TITLES[algo]} preset of that name — a "
                        f"preset saved in another lab travels by name only; the link's changes were applied to "
                        f"{default_preset(algo)}; presets here: {', '.join(presets)})")
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


def url_problem() -> str | None:
    """What the shared link just restored could not apply, once (the Train page shows it as a warning)."""
    return st.session_state.pop("_url_problem", None)
