"""Train: choose an algorithm and preset, tune every hyperparameter, launch one or several seeds."""

import numpy as np
import streamlit as st

import lab_ui as ui
from cartpole_core import ALGORITHMS, field_specs
from cartpole_core.agent import Discretizer
from cartpole_core.configs import OBS_NAMES, config_class
from cartpole_core.jobs import submit
from cartpole_core.plots import bin_edges_figure, schedule_figure
from cartpole_core.presets import preset_description, preset_names
from cartpole_core.schedules import curve

ui.restore_url_state(ALGORITHMS)
st.title("Train an agent")
if problem := st.session_state.pop("_url_problem", None):
    st.warning(problem)

algo = st.segmented_control("Algorithm", ALGORITHMS, format_func=ui.ALGORITHM_TITLES.get, key="algo",
                            default="ppo", required=True)
presets = preset_names(algo)
preset_key = f"preset.{algo}"
if st.session_state.get(preset_key) not in presets:
    st.session_state[preset_key] = ui.default_preset(algo)
preset = st.selectbox("Preset", presets, key=preset_key,
                      on_change=lambda: ui.load_preset(algo, st.session_state[preset_key]))
if st.session_state.get(f"_loaded.{algo}") is None:
    ui.load_preset(algo, preset)
st.caption(preset_description(algo, preset))

config, problems = ui.validate(algo, preset)
specs = {spec.name: spec for spec in field_specs(config_class(algo))}
schedule_names = sorted({name.split(".")[0] for name in specs if "." in name})
algorithm_fields = [name for name in specs if "." not in name and name not in ui.COMMON_FIELDS
                    and name not in ui.QTABLE_FIELDS]

left, right = st.columns([3, 2], gap="large")
with left:
    with st.expander("Budget and evaluation", expanded=True, icon=":material/timer:"):
        columns = st.columns(2)
        for index, name in enumerate(ui.COMMON_FIELDS):
            with columns[index % 2]:
                ui.field_widget(algo, specs[name], problems)
    with st.expander(f"{ui.ALGORITHM_TITLES[algo]} hyperparameters", expanded=True, icon=":material/tune:"):
        columns = st.columns(2)
        for index, name in enumerate(algorithm_fields):
            with columns[index % 2]:
                ui.field_widget(algo, specs[name], problems)
    if algo == "qlearning":
        with st.expander("Bins per observation dimension", expanded=True, icon=":material/grid_on:"):
            ui.bins_editor(algo, problems)
            if config is not None:
                discretizer = Discretizer(config.bins, config.low, config.high)
                edges = [np.array([]) if count == 1 else
                         discretizer.inner_edges[discretizer.dims.index(d)] for d, count in enumerate(config.bins)]
                st.plotly_chart(bin_edges_figure(edges, OBS_NAMES, config.low, config.high), key="bin_edges")
                st.caption(f"Q-table: {' × '.join(map(str, config.bins))} states × 2 actions = "
                           f"**{discretizer.n_states * 2:,} values**")

with right:
    for schedule in schedule_names:
        with st.container(border=True):
            st.markdown(f"**{schedule.replace('_', ' ').capitalize()} schedule**")
            kind_spec = specs[f"{schedule}.kind"]
            ui.field_widget(algo, kind_spec, problems, label="shape")
            kind = st.session_state[ui._key(algo, f"{schedule}.kind")]
            shown = ["start", "end", "unit"] + {"linear": ["duration"], "exponential": ["factor"],
                                                "log_decay": ["k"]}.get(kind, [])
            columns = st.columns(2)
            for index, part in enumerate(shown):
                with columns[index % 2]:
                    ui.field_widget(algo, specs[f"{schedule}.{part}"], problems)
            if config is not None:
                sched = getattr(config, schedule)
                horizon = config.total_env_steps if sched.unit == "steps" else (config.max_episodes or 1000)
                t, values = curve(sched, horizon)
                st.plotly_chart(schedule_figure(t, values, sched.unit, ""), key=f"preview.{schedule}")

st.divider()
seeds_column, first_column, launch_column = st.columns([1, 1, 2], vertical_alignment="bottom")
n_seeds = seeds_column.number_input("Seeds", min_value=1, max_value=16, value=1, key="n_seeds",
                                    help="Launch one run per seed as a group; the live view shows mean ± std.")
first_seed = first_column.number_input("First seed", min_value=0, max_value=1_000_000, value=0, key="first_seed")
launch = launch_column.button("Launch training", type="primary", icon=":material/rocket_launch:",
                              disabled=config is None, width="stretch")
if problems:
    st.error(f"Fix {len(problems)} field(s) before launching: " + "; ".join(problems.values()),
             icon=":material/block:")
ui.share_url_state(algo, preset)
ui.sidebar_active_runs()
ui.preload_live_charts()  # Launch opens the live view

if launch and config is not None:
    group_id, run_ids = submit(ui.store(), config, list(range(first_seed, first_seed + n_seeds)), preset=preset)
    params = {"run": run_ids[0]} if len(run_ids) == 1 else {"group": group_id}
    st.switch_page("pages/live.py", query_params=params)
