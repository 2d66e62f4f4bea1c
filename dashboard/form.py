"""The Train page's form, generated from the configs' field metadata (``FieldSpec``): one widget per field within
its hard limits, presets loaded into the widgets — the built-in ones and the user's (``runs.presets``, in the data
home), the form's values validated into a config with each problem in words beside its field, the schedule previews,
the Q-table's bins editor, and Save as preset.

Every Train widget keeps its value for the whole session (``persist_state="session"``, :data:`KEEP`): Streamlit
otherwise drops a widget's state when its page is left or the widget is not drawn (another algorithm shown), and
the form came back with every field at its minimum while the page still described the preset.
"""

from __future__ import annotations

import math
import re
import time
from typing import Any

import streamlit as st

from cartpole_core.config.limits import SEEDS_PER_LAUNCH_MAX
from cartpole_core.config.models import (
    OBS_NAMES,
    ConfigError,
    FieldSpec,
    TrainConfig,
    config_class,
    field_specs,
    with_overrides,
)
from cartpole_core.config.presets import preset_description, preset_names
from cartpole_core.runs.compare import default_name
from cartpole_core.runs.home import data_home
from cartpole_core.runs.presets import PresetError, UserPreset, load_preset_config, save_preset
from cartpole_core.runs.presets import user_presets as stored_user_presets
from dashboard.labels import plain

KEEP = "session"
LAUNCH_LIMITS = {"seeds": (1, SEEDS_PER_LAUNCH_MAX), "seed": (0, 1_000_000)}

COMMON_FIELDS = ("total_env_steps", "max_episodes", "max_episode_steps", "n_envs", "eval_every_steps",
                 "stop_on_solve")
QTABLE_FIELDS = ("bins", "low", "high")


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


def base_config(algo: str, preset: str, overrides: dict[str, Any] | None = None) -> TrainConfig:
    """The config of a preset the form starts from: built-in, or the user's in the data home (with ``overrides``,
    dotted field names)."""
    return load_preset_config(data_home(), algo, preset, overrides)


def user_presets(algo: str) -> tuple[dict[str, UserPreset], list[str]]:
    """The user's presets of ``algo`` by name, and a line for each preset file that cannot be used."""
    presets, problems = stored_user_presets(data_home(), algo)
    return {preset.name: preset for preset in presets}, problems


def preset_label(name: str, users: dict[str, UserPreset]) -> str:
    """A preset in the picker: the user's are marked as theirs."""
    return f"{name} · yours" if name in users else name


def preset_caption(algo: str, name: str, users: dict[str, UserPreset]) -> str:
    """What a preset is, as Markdown: a built-in's description, or a user preset's with where it came from."""
    if name not in users:
        return preset_description(algo, name)
    preset = users[name]
    origin = f", from {plain(preset.source)}" if preset.source else ""
    saved = time.strftime("%b %d %Y %H:%M", time.localtime(preset.created_at))
    return f"Your preset{origin}, saved {saved}" + (f": {plain(preset.description)}" if preset.description else ".")


SAVE_KEYS = {"name": "preset_save.name", "description": "preset_save.description", "replace": "preset_save.replace"}


def save_as_preset(algo: str, preset: str) -> None:
    """Save as preset (a button's callback, so it runs before the page): the form's config under the name typed,
    then selected in the picker; a bad or taken name is kept for the page to show beside the field, nothing
    written."""
    config, problems = validate(algo, preset)
    name = st.session_state.get(SAVE_KEYS["name"], "")
    try:
        if config is None:
            raise PresetError(f"fix {len(problems)} field(s) first: " + "; ".join(problems.values()))
        saved = save_preset(data_home(), algo, name, config, st.session_state.get(SAVE_KEYS["description"], ""),
                            source=default_name(config, preset, base_config(algo, preset)),
                            replace=bool(st.session_state.get(SAVE_KEYS["replace"])))
    except (PresetError, OSError) as err:
        st.session_state["_preset_save.error"] = str(err)
        return
    st.session_state[f"preset.{algo}"] = saved.name  # the form now shows exactly this preset
    st.session_state[f"_loaded.{algo}"] = saved.name
    st.session_state[SAVE_KEYS["name"]] = st.session_state[SAVE_KEYS["description"]] = ""
    st.session_state["_preset_save.done"] = f"Saved your {algo} preset {saved.name!r}; it is now the preset selected."


def save_outcome() -> tuple[str | None, str | None]:
    """What the last Save as preset did, once: (success message, error message)."""
    return st.session_state.pop("_preset_save.done", None), st.session_state.pop("_preset_save.error", None)


def load_preset(algo: str, preset: str, overrides: dict[str, Any] | None = None) -> None:
    """Put the preset's values, and then any overrides, into the form's widget state."""
    values = {**_flat(base_config(algo, preset)), **(overrides or {})}
    for name, value in values.items():
        st.session_state[form_key(algo, name)] = widget_value(value)
    st.session_state[f"_loaded.{algo}"] = preset
    st.session_state[f"_form_version.{algo}"] = st.session_state.get(f"_form_version.{algo}", 0) + 1


def form_loaded(algo: str) -> bool:
    return st.session_state.get(f"_loaded.{algo}") is not None and form_key(algo, "total_env_steps") in st.session_state


def widget_value(value: Any) -> Any:
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
        return with_overrides(base_config(algo, preset), form_values(algo)), {}
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
    base = config or base_config(algo, preset)
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
    """The preset's value of every field, by dotted name: what a share link is compared with, and what log sliders
    always offer."""
    return _flat(base_config(algo, preset))


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


def default_preset(algo: str) -> str:
    names = preset_names(algo)
    return "fast" if "fast" in names else names[0]


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
            st.session_state[form_key(algo, column)] = widget_value(column_values)

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
