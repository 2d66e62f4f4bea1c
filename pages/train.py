"""Train: choose an algorithm and preset (built-in or yours), tune every hyperparameter, launch one or several seeds;
save the form as your own preset."""

import numpy as np
import streamlit as st

from cartpole_core import ALGORITHMS, field_specs
from cartpole_core.config.limits import NAME_MAX, LimitError, check_name, check_tags
from cartpole_core.config.models import OBS_NAMES, config_class
from cartpole_core.config.presets import preset_names
from cartpole_core.config.schedules import curve
from cartpole_core.engine.agent import Discretizer
from cartpole_core.figures.plots import bin_edges_figure, schedule_figure
from cartpole_core.jobs.queue import submit
from cartpole_core.runs.compare import default_name
from cartpole_core.runs.presets import DESCRIPTION_MAX, NAME_RULE, PRESET_NAME_MAX
from dashboard import form, handles, share
from dashboard.labels import ALGORITHM_TITLES, plain
from dashboard.live.component import preload_live_charts
from dashboard.page import page
from dashboard.widgets import sidebar_active_runs

with page():  # past the access gate; a damaged store is a message, not a traceback

    share.restore_url_state(ALGORITHMS)
    st.title("Train an agent")
    if problem := share.url_problem():
        st.warning(plain(problem), icon=":material/link_off:")  # it quotes the link's text
    with st.expander("New here? How the lab works", expanded=not handles.store().list_runs(), icon=":material/school:"):
        st.markdown(
            "1. **Pick an algorithm and a preset** below. `fast` presets solve CartPole in seconds; `seed` reproduces "
            "the settings of the original blog post; *Save as preset* keeps a setup of yours among them.\n"
            "2. **Launch training.** The Live view opens and draws the reward curve as the agent learns.\n"
            "3. **Change one hyperparameter and launch again** — with 3 or more seeds, since one seed can be lucky. "
            "Runs are named after what you changed (`dqn/fast lr=5e-3`).\n"
            "4. **Compare** on *Runs & compare*: a summary per group says which setting solved, and how fast.\n"
            "5. **Watch** what an agent learned on *Replay*, *Inspect policy* and *Robustness*.")

    st.session_state.setdefault("algo", "ppo")
    top = st.columns([5, 3, 2], vertical_alignment="bottom")
    algo = top[0].segmented_control("Algorithm", ALGORITHMS, format_func=ALGORITHM_TITLES.get, key="algo",
                                    required=True, persist_state=form.KEEP)
    users, preset_problems = form.user_presets(algo)
    presets = preset_names(algo) + list(users)
    preset_key = f"preset.{algo}"
    if st.session_state.get(preset_key) not in presets:
        st.session_state[preset_key] = form.default_preset(algo)
    preset = top[1].selectbox("Preset", presets, key=preset_key, persist_state=form.KEEP,
                              format_func=lambda name: form.preset_label(name, users),
                              help="The built-in presets, then yours (marked · yours): save this form as one with "
                                   "*Save as preset*, or from the command line with `presets save`.",
                              on_change=lambda: form.load_preset(algo, st.session_state[preset_key]))
    if not form.form_loaded(algo):
        form.load_preset(algo, preset)
    st.caption(form.preset_caption(algo, preset, users))
    study_slot = st.container()  # filled once the URL holds this run's setup, below
    for problem in preset_problems:
        st.warning(plain(problem), icon=":material/warning:")

    config, problems = form.validate(algo, preset)
    with top[2].popover("Save as preset", icon=":material/bookmark_add:", width="stretch",
                        help="Keep this form as your own preset: it joins the picker, share links and the command "
                             "line (`train --preset NAME`)."):
        st.text_input("Preset name", key=form.SAVE_KEYS["name"], max_chars=PRESET_NAME_MAX, placeholder="e.g. my-dqn",
                      help=f"Allowed: {plain(NAME_RULE)}; not a built-in preset's name.")
        st.text_input("Description", key=form.SAVE_KEYS["description"], max_chars=DESCRIPTION_MAX,
                      placeholder="optional: what it is for")
        st.checkbox("Replace my preset of that name", key=form.SAVE_KEYS["replace"])
        st.button("Save", type="primary", icon=":material/save:", on_click=form.save_as_preset, args=(algo, preset),
                  disabled=config is None, help="Fix the form's errors first." if config is None else None)
        saved, save_error = form.save_outcome()
        if save_error:
            st.error(plain(save_error), icon=":material/error:")
        if saved:
            st.success(plain(saved), icon=":material/check:")
    defaults = form.preset_values(algo, preset)
    specs = {spec.name: spec for spec in field_specs(config_class(algo))}
    schedule_names = sorted({name.split(".")[0] for name in specs if "." in name})
    algorithm_fields = [name for name in specs if "." not in name and name not in form.COMMON_FIELDS
                        and name not in form.QTABLE_FIELDS]

    # ------------------------------------------------------------------------------ launch (above the fold)

    for key, value in (("n_seeds", 1), ("first_seed", 0), ("run_name", ""), ("run_tags", "")):
        st.session_state.setdefault(key, value)
    with st.container(border=True):
        name_column, tags_column, seeds_column, first_column, launch_column = st.columns(
            [3, 2, 1, 1, 2], vertical_alignment="bottom")
        suggested = (default_name(config, preset, form.base_config(algo, preset)) if config is not None
                     else f"{algo}/{preset}")
        run_name = name_column.text_input("Name", key="run_name", max_chars=NAME_MAX, placeholder=suggested,
                                          persist_state=form.KEEP,
                                          help="Empty: named after what differs from the preset, e.g. "
                                               f"`{suggested}`. Each seed's run adds ` · seed N`.")
        run_tags = tags_column.text_input("Tags", key="run_tags", placeholder="e.g. lr-sweep",
                                          persist_state=form.KEEP,
                                          help="Comma-separated; filter by them on Runs & compare.")
        n_seeds = seeds_column.number_input("Seeds", *form.LAUNCH_LIMITS["seeds"], key="n_seeds",
                                            persist_state=form.KEEP,
                                            help="One run per seed, as a group: the live view shows mean ± std and "
                                                 "Runs & compare summarizes them. 3 or more to compare settings.")
        first_seed = first_column.number_input("First seed", *form.LAUNCH_LIMITS["seed"], key="first_seed",
                                               persist_state=form.KEEP, help="Seeds first seed, first seed + 1, …")
        try:
            tags = check_tags(run_tags)
            if run_name.strip():
                check_name(run_name)
        except LimitError as err:
            problems["name_tags"] = str(err)
        launch = launch_column.button("Launch training", type="primary", icon=":material/rocket_launch:",
                                      disabled=bool(problems), width="stretch")
        if problems:
            st.error(plain(f"Fix {len(problems)} field(s) before launching: " + "; ".join(problems.values())),
                     icon=":material/block:")

    # ------------------------------------------------------------------------------------------------ the form

    left, right = st.columns([3, 2], gap="large")
    with left:
        with st.expander("Budget and evaluation", expanded=True, icon=":material/timer:"):
            columns = st.columns(2)
            for index, name in enumerate(form.COMMON_FIELDS):
                with columns[index % 2]:
                    form.field_widget(algo, specs[name], problems, preset=defaults)
        with st.expander(f"{ALGORITHM_TITLES[algo]} hyperparameters", expanded=True, icon=":material/tune:"):
            columns = st.columns(2)
            for index, name in enumerate(algorithm_fields):
                with columns[index % 2]:
                    form.field_widget(algo, specs[name], problems, preset=defaults)
        if algo == "qlearning":
            with st.expander("Bins per observation dimension", expanded=True, icon=":material/grid_on:"):
                form.bins_editor(algo, problems)
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
                form.field_widget(algo, specs[f"{schedule}.kind"], problems, label="shape", preset=defaults)
                kind = st.session_state[form.form_key(algo, f"{schedule}.kind")]
                shown = ["start", "end", "unit"] + {"linear": ["duration"], "exponential": ["factor"],
                                                    "log_decay": ["k"]}.get(kind, [])
                columns = st.columns(2)
                for index, part in enumerate(shown):
                    with columns[index % 2]:
                        form.field_widget(algo, specs[f"{schedule}.{part}"], problems, preset=defaults)
                preview = form.schedule_preview(algo, schedule, config, preset)
                if preview is not None:
                    sched, horizon = preview
                    t, values = curve(sched, horizon)
                    st.plotly_chart(schedule_figure(t, values, sched.unit, ""), key=f"preview.{schedule}")
                else:
                    st.caption("The preview returns when this schedule's fields are valid.")

    share.share_url_state(algo, preset)
    study_slot.page_link("pages/studies.py", label="Search hyperparameters around this setup in Studies",
                         icon=":material/science:",
                         query_params={name: st.query_params[name] for name in ("algo", "preset", "cfg")
                                       if name in st.query_params})
    sidebar_active_runs()
    preload_live_charts()  # Launch opens the live view

    if launch and config is not None and not problems:
        try:
            group_id, run_ids = submit(handles.store(), config, list(range(first_seed, first_seed + n_seeds)),
                                       preset=preset, name=run_name.strip() or suggested, tags=tuple(tags))
        except ValueError as err:  # the queue is full, or a name or seed outside the lab's limits: nothing was queued
            st.error(f"Not launched: {plain(err)}", icon=":material/block:")
            st.stop()
        params = {"run": run_ids[0]} if len(run_ids) == 1 else {"group": group_id}
        st.switch_page("pages/live.py", query_params=params)
