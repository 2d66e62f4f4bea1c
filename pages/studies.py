"""Studies: search hyperparameters — each trial a group of seeded runs, chosen by Optuna — and watch a study."""

import time

import pandas as pd
import streamlit as st

from cartpole_core import ALGORITHMS
from cartpole_core.config.limits import NAME_MAX, SEEDS_PER_LAUNCH_MAX
from cartpole_core.config.models import ConfigError
from cartpole_core.config.presets import preset_names
from cartpole_core.figures.studies import (
    best_so_far_figure,
    contour_figure,
    importance_figure,
    parallel_coordinates_figure,
    slice_figure,
)
from cartpole_core.runs.compare import fmt_value
from cartpole_core.runs.presets import DESCRIPTION_MAX, NAME_RULE, PRESET_NAME_MAX, PresetError, save_preset
from cartpole_core.stats import iqm_estimate
from cartpole_core.studies import space, storage
from cartpole_core.studies.api import new_spec
from cartpole_core.studies.objectives import OBJECTIVES, chance_to_beat
from cartpole_core.studies.space import Dimension, SpaceError
from cartpole_core.studies.storage import StudyError
from dashboard import form, handles, studies
from dashboard.labels import ALGORITHM_TITLES, plain
from dashboard.page import page
from dashboard.widgets import sidebar_active_runs

SAMPLER_HELP = {"tpe": "TPE: learns from the trials so far which values do well (Optuna's default).",
                "random": "Random: every trial drawn independently; a fair baseline.",
                "grid": f"Grid: {storage.GRID_POINTS} values per range (log-spaced when log) × every choice, each "
                        "once, in a seeded order."}
PRUNER_HELP = {"none": "Every trial runs its whole budget.",
               "median": "Stops a trial whose evaluation return falls below the median of the trials before it at "
                         "the same point (from a third of the budget on).",
               "halving": "Successive halving: at each rung only the best third of the trials go on."}
STATE_ICONS = {"complete": "✓", "pruned": "✂", "fail": "✗", "running": "▶", "interrupted": "!"}
REFRESH_S = 2.0
ACTION_WAIT_S = 3.0  # how long Stop and Resume wait for the driver to act, so the page shows the new status


def dimension_input(algo: str, field: str) -> tuple[Dimension, str | None]:
    """One varied field's range (low, high, log) or choices, starting at its default; the dimension and what is
    wrong with it."""
    default = space.default_dimension(algo, field)
    key = f"study_dim.{algo}.{field}"
    columns = st.columns([2, 1, 1, 1], vertical_alignment="bottom")
    columns[0].markdown(f"`{field}`")
    if default.kind == "categorical":
        options = studies.sampled_choices(default)
        config_values = dict(zip(options, default.choices))
        chosen = columns[1].multiselect("choices", options, default=options, key=f"{key}.choices",
                                        label_visibility="collapsed", width="stretch")
        dimension = Dimension(field, "categorical", choices=tuple(config_values[choice] for choice in chosen))
    else:
        integer = default.kind == "int"
        step = 1 if integer else float(f"{(default.high - default.low) / 10:.1g}")
        number_format = "%d" if integer else "%g"
        low = columns[1].number_input("low", value=default.low, step=step, format=number_format, key=f"{key}.low")
        high = columns[2].number_input("high", value=default.high, step=step, format=number_format,
                                       key=f"{key}.high")
        log = columns[3].checkbox("log", value=default.log, key=f"{key}.log", help="Sample on a log scale")
        dimension = Dimension(field, default.kind, low, high, log=log)
    try:
        space.check_space(algo, [dimension])
    except SpaceError as err:
        st.error(plain(err), icon=":material/block:")
        return dimension, str(err)
    return dimension, None


def new_study_form(home) -> None:
    """Everything a study needs, checked as it is typed; Launch creates it and opens its live view. A Train share
    link (``?algo=…&preset=…&cfg=…``) sets the base: its algorithm and preset, with its changed fields."""
    linked, link_problem = studies.linked_setup(st.query_params.to_dict())
    if link_problem:
        st.warning(plain(link_problem) + " The form starts from a preset instead.", icon=":material/link_off:")
    if linked is not None and st.session_state.get("study_link") != linked.key:
        st.session_state["study_link"] = linked.key  # picked once; the user may then choose another base
        st.session_state["study_algo"] = linked.algo
        st.session_state[f"study_preset.{linked.algo}"] = linked.preset
    top = st.columns([2, 2, 3])
    algo = top[0].selectbox("Algorithm", ALGORITHMS, format_func=ALGORITHM_TITLES.get, key="study_algo")
    users, _ = form.user_presets(algo)  # a damaged preset file is named on the Train page
    presets = preset_names(algo) + list(users)
    preset = top[1].selectbox("Preset", presets, index=presets.index(form.default_preset(algo)),
                              format_func=lambda name: form.preset_label(name, users), key=f"study_preset.{algo}",
                              help="The base config every trial starts from: a built-in preset or yours.")
    fields = top[2].multiselect("Fields to vary", space.varyable_fields(algo), key=f"study_vary.{algo}",
                                help="Each starts at its typical range (or every choice); edit it below. The budget, "
                                     "evaluation and stopping are the same for every trial.")
    problems: dict[str, str] = {}
    dimensions = []
    for field in fields:
        dimension, problem = dimension_input(algo, field)
        dimensions.append(dimension)
        if problem:
            problems[field] = problem

    settings = st.columns(4)
    objective = settings[0].selectbox("Objective", list(OBJECTIVES), format_func=lambda name: OBJECTIVES[name].title,
                                      key="study_objective")
    sampler = settings[1].selectbox("Sampler", storage.SAMPLERS, key="study_sampler",
                                    help=" ".join(SAMPLER_HELP.values()))
    pruner = settings[2].selectbox("Pruner", storage.PRUNERS, index=1, key="study_pruner",
                                   help=" ".join(f"**{name}**: {text}" for name, text in PRUNER_HELP.items()))
    if linked is not None and (linked.algo, linked.preset) != (algo, preset):
        linked = None  # the user chose another base than the link's
    overrides = linked.overrides if linked is not None else {}
    if overrides:
        st.caption("Base: preset " + f"`{preset}` with the Train link's " + ", ".join(
            f"`{name}={value}`" for name, value in overrides.items()))
    budget_key = f"study_budget.{algo}.{preset}.{hash(linked.key) if linked is not None else ''}"
    budget = settings[3].number_input("Budget per run (env steps)", 1, value=form.base_config(algo, preset, overrides)
                                      .total_env_steps, step=1000, key=budget_key)
    st.caption(f"**{OBJECTIVES[objective].title}.** {OBJECTIVES[objective].definition} · {SAMPLER_HELP[sampler]} · "
               f"Pruner {pruner}: {PRUNER_HELP[pruner]}")

    counts = st.columns([1, 1, 1, 1, 3, 2], vertical_alignment="bottom")
    trials = counts[0].number_input("Trials", 1, storage.TRIALS_MAX, 20, key="study_trials")
    seeds = counts[1].number_input("Seeds per trial", 1, SEEDS_PER_LAUNCH_MAX, 3, key="study_seeds",
                                   help="Every trial runs on the same seeds; its value is the IQM across them.")
    confirm_trials = counts[2].number_input(
        "Confirm the best", 0, storage.CONFIRM_TRIALS_MAX, storage.CONFIRM_TRIALS, key="study_confirm_trials",
        help="Once every trial ended, re-run this many of the best on fresh seeds before naming the study's best: "
             "the best of a few seeds is an optimistic pick. 0: name the best trial as it is.")
    confirm_seeds = counts[3].number_input(
        "on fresh seeds", 1, SEEDS_PER_LAUNCH_MAX, storage.CONFIRM_SEEDS, key="study_confirm_seeds",
        disabled=confirm_trials == 0, help="Seeds no trial trained on. The best is the confirmed trial that solved "
                                           "on the most of them, then the best over all its seeds.")
    suggested = f"{algo}/{preset}: {', '.join(fields)}"[:100] if fields else f"{algo}/{preset}"
    name = counts[4].text_input("Name", key="study_name", max_chars=NAME_MAX, placeholder=suggested).strip()
    confirm_runs = f" + {confirm_trials * confirm_seeds} to confirm the best" if confirm_trials else ""

    if sampler == "grid" and dimensions and not problems:
        try:
            space.grid(dimensions, storage.GRID_POINTS)
            size = space.grid_size(dimensions, storage.GRID_POINTS)
            trials = min(trials, size)
            st.caption(f"Grid: {size} configuration(s) × {seeds} seed(s) = **{size * seeds} runs**{confirm_runs} "
                       f"({trials} trial(s) planned).")
        except SpaceError as err:
            problems["grid"] = str(err)
    elif dimensions:
        st.caption(f"{trials} trial(s) × {seeds} seed(s): at most **{trials * seeds} runs**{confirm_runs} (pruned "
                   f"trials stop early).")

    spec = None
    try:
        base = form.base_config(algo, preset, {**overrides, "total_env_steps": int(budget)})
    except ConfigError as err:
        problems["budget"] = "; ".join(message for _, message in err.problems) or str(err)
    if fields and not problems:
        try:
            spec = new_spec(algo, dimensions, base=base, preset=preset, trials=trials, seeds=seeds, sampler=sampler,
                            pruner=pruner, objective=objective, name=name or suggested,
                            confirm_trials=confirm_trials, confirm_seeds=confirm_seeds,
                            cpus=handles.scheduler(str(home)).cpus)  # the cluster's, when runs train on Ray
        except ValueError as err:  # e.g. a name too long for the trials' run names
            problems["study"] = str(err)
    for key in ("grid", "budget", "study"):
        if key in problems:
            st.error(plain(problems[key]), icon=":material/block:")
    if not fields:
        st.info("Pick at least one field to vary.", icon=":material/science:")
    launch = counts[5].button("Launch study", type="primary", icon=":material/science:", width="stretch",
                              disabled=spec is None or bool(problems))
    if launch and spec is not None and not problems:
        storage.create_study(home, spec)
        handles.study_driver(str(home))
        st.query_params["study"] = spec.study_id
        st.session_state["study_pick"] = spec.study_id
        st.rerun()


def study_label(spec: storage.StudySpec) -> str:
    made = time.strftime("%b %d %H:%M", time.localtime(spec.created_at))
    return f"{spec.name} · {spec.status} · {made} · {spec.study_id.rsplit('-', 1)[-1]}"


def wait_for_status(home, study_id: str, leaving: str) -> None:
    """Give the driver a moment to act on Stop or Resume, so the page reruns with the study's new status."""
    deadline = time.monotonic() + ACTION_WAIT_S
    while time.monotonic() < deadline and storage.load_spec(home, study_id).status == leaving:
        time.sleep(0.1)


def study_panel(study_id: str, drawn_status: str) -> None:
    """The study now: status, counts, best, Stop/Resume, charts and the trial table."""
    store = handles.store()
    try:
        view = studies.read_study(store, study_id)
    except StudyError as err:
        st.error(plain(err), icon=":material/error:")
        return
    if view.spec.status != drawn_status:
        st.rerun(scope="app")  # the page refreshes only while the study runs
    spec, summary, objective = view.spec, view.summary, OBJECTIVES[view.spec.objective]
    runner = handles.study_driver(str(store.home))

    st.subheader(plain(spec.name))
    st.caption(f"`{spec.study_id}` · {ALGORITHM_TITLES[spec.algo]} on preset `{spec.preset}`, "
               f"{spec.base().total_env_steps:,} env steps a run · {spec.sampler} sampler · {spec.pruner} pruner · "
               f"{spec.seeds} seed(s) a trial · varies {', '.join(f'`{dim.to_text()}`' for dim in spec.dimensions)}")
    best = summary["best"]
    metrics = st.columns([1, 1, 2, 1, 2], vertical_alignment="bottom")
    metrics[0].metric("Status", "confirming" if view.status == "running" and summary["confirming"] else view.status)
    metrics[1].metric("Trials", f"{summary['trials']} / {summary['trials_planned']}")
    metrics[2].metric(f"Best: {objective.title}", "—" if best is None else f"{best['objective']:,.4g}",
                      help=objective.definition)
    metrics[3].metric("Pruned · failed", f"{summary['trials_pruned']} · {summary['trials_failed']}")
    with metrics[4]:
        if view.status == "running":
            if st.button("Stop study", icon=":material/stop:", key="study_stop",
                         help="Cancels the trials in flight (their configurations run again on resume)."):
                studies.request_stop(store.home, study_id)
                wait_for_status(store.home, study_id, "running")
                st.rerun(scope="app")
        elif view.status == "stopped":
            if st.button("Resume study", icon=":material/play_arrow:", key="study_resume"):
                runner.resume(study_id)
                wait_for_status(store.home, study_id, "stopped")
                st.rerun(scope="app")
        elif view.status == "interrupted":
            st.caption("No controller drives it now (a server restart?): this server resumes it in a moment.")
    if problem := runner.errors.get(study_id):
        st.warning(f"The study driver's last problem with this study: {plain(problem)}", icon=":material/warning:")

    links = st.columns(3, vertical_alignment="center")
    links[0].page_link("pages/runs.py", label="All its runs in Runs & compare", icon=":material/stacked_line_chart:",
                       query_params={"tag": spec.tag})
    if best is not None:
        links[1].page_link("pages/train.py", label=f"Open the best trial ({best['trial']}) in Train",
                           icon=":material/rocket_launch:", query_params=studies.train_query(spec, best["params"]))
        with links[2].popover("Save the best as a preset", icon=":material/bookmark_add:"):
            save_best_as_preset(store.home, spec, best)
        st.markdown("Best parameters: " + ", ".join(f"`{field}={fmt_value(value)}`"
                                                     for field, value in best["params"].items()))
        st.caption(confirmation_text(spec, summary, objective.title))

    rows = view.rows
    completed = [row for row in rows if row["value"] is not None]
    charts = st.columns(2)
    with charts[0]:
        st.markdown("**Best so far**")
        st.plotly_chart(best_so_far_figure([row["trial"] for row in rows], [row["value"] for row in rows],
                                           objective.direction, objective.title), key=f"best_so_far.{study_id}")
    with charts[1]:
        st.markdown("**Parameters of the completed trials**")
        if completed:
            st.plotly_chart(parallel_coordinates_figure(studies.param_axes(spec, completed),
                                                        [row["value"] for row in completed], objective.direction,
                                                        objective.title), key=f"parallel.{study_id}")
        else:
            st.caption("Drawn once a trial completes.")

    best_values = next((row["run_values"] for row in rows if best is not None and row["trial"] == best["trial"]), [])
    table = pd.DataFrame([{
        "trial": row["trial"], "state": f"{STATE_ICONS.get(row['state'], '')} {row['state']}",
        objective.title: row["value"], "IQM [95 % CI] (n)": _estimate_text(row["run_values"]),
        "beats the best": (chance_to_beat(spec.objective, row["run_values"], best_values)
                           if row["run_values"] and best_values else None),
        **{dim.field: _shown(row["params"].get(dim.field)) for dim in spec.dimensions},
        "runs": studies.runs_link(spec, row["run_ids"]) if row["run_ids"] else None,
        **({"solved on fresh seeds": _confirmation_cell(spec, row["confirmation"])} if spec.confirm_trials else {}),
        "note": row["reason"] or "",
    } for row in rows])
    st.container(key="study_trial_table").dataframe(table, hide_index=True, column_config={
        "IQM [95 % CI] (n)": st.column_config.TextColumn(
            help="The trial's value (the IQM across its seeds) with its 95 % bootstrap confidence interval and the "
                 "number of seeds behind it."),
        "beats the best": st.column_config.ProgressColumn(
            format="percent", min_value=0.0, max_value=1.0,
            help="Probability of improvement: how often one of this trial's seeds does better than one of the best "
                 "trial's, over all pairs of seeds (ties count half). 50 %: as good as the best; near 0: clearly "
                 "worse."),
        "runs": st.column_config.LinkColumn("runs", display_text="open runs",
                                            help="The trial's runs, selected in Runs & compare"),
        "solved on fresh seeds": st.column_config.TextColumn(
            help=f"The best {spec.confirm_trials} trial(s), re-run on {spec.confirm_seeds} seed(s) no trial trained "
                 "on once every trial ended: on how many the configuration solved (for the final-return objective: "
                 "ended solved).")})
    st.caption(f"{objective.title}: {objective.definition} Statistics as in Agarwal et al. (2021), across each "
               f"trial's {spec.seeds} seed(s).")

    if not completed:
        return
    axes = studies.param_axes(spec, completed)
    values = [row["value"] for row in completed]
    st.markdown("**Each parameter against the objective** (one point per completed trial, later trials darker)")
    st.plotly_chart(slice_figure(axes, values, [row["trial"] for row in completed], objective.title),
                    key=f"slices.{study_id}")
    scores = studies.importances(study_id, len(completed), view.study)
    ranked = sorted(axes, key=lambda axis: -scores.get(axis.name, 0.0)) if scores else axes
    charts = st.columns(2) if len(axes) >= 2 else [st.container()]
    with charts[0]:
        st.markdown("**Parameter importance**")
        if scores is None:
            st.caption(f"Estimated once {studies.IMPORTANCE_MIN_TRIALS} trials completed with different values.")
        else:
            st.plotly_chart(importance_figure(scores, studies.IMPORTANCE_ESTIMATOR), key=f"importance.{study_id}")
            st.caption(f"{studies.IMPORTANCE_ESTIMATOR} (`optuna.importance.get_param_importances`, its default "
                       f"evaluator) over the {len(completed)} completed trials: how much of the objective's variance "
                       "each parameter explains. A rough guide with few trials.")
    if len(axes) >= 2:
        with charts[1]:
            first, second = ranked[:2]
            st.markdown(f"**{plain(first.name)} × {plain(second.name)}**"
                        + (" (the two most important)" if scores else ""))
            st.plotly_chart(contour_figure(first, second, values, objective.direction, objective.title),
                            key=f"contour.{study_id}")
            st.caption("Points: completed trials. The surface between them is interpolated (inverse-distance "
                       "weighting): a sketch of the landscape, exact only at the points.")


def confirmation_text(spec: storage.StudySpec, summary: dict, title: str) -> str:
    """What stands behind the best: its trial's seeds only, the confirmation under way, or the confirmation."""
    best, confirmation = summary["best"], summary["best"]["confirmation"]
    if confirmation is not None:
        seeds = confirmation["seeds"]
        return (f"Confirmed: re-run on fresh seeds {seeds[0]}–{seeds[-1]}, it solved on **{confirmation['held']} of "
                f"{len(seeds)}**; {title.lower()} over all {len(best['run_ids']) + len(seeds)} seeds (IQM): "
                f"{confirmation['objective']:,.4g}.")
    if not spec.confirm_trials:
        return f"The best trial on its {spec.seeds} seed(s); this study confirms nothing on fresh seeds."
    if summary["confirming"]:
        return (f"Confirming: the best {spec.confirm_trials} trial(s) are re-running on {spec.confirm_seeds} fresh "
                "seeds; the study's best is named once they end.")
    return (f"The best so far on its {spec.seeds} seed(s). Once every trial ended, the best {spec.confirm_trials} "
            f"are re-run on {spec.confirm_seeds} fresh seeds before the study names its best.")


def _confirmation_cell(spec: storage.StudySpec, confirmation: dict | None) -> str:
    if confirmation is None:
        return ""
    if confirmation["run_values"] is None:
        return "running…"
    return f"{confirmation['held']}/{spec.confirm_seeds}"


def save_best_as_preset(home, spec: storage.StudySpec, best: dict) -> None:
    """The best trial's configuration as the user's preset: in the Train page's picker, `train --preset NAME` and a
    study's base."""
    key = f"study_best_preset.{spec.study_id}"
    name = st.text_input("Preset name", key=f"{key}.name", max_chars=PRESET_NAME_MAX,
                         help=f"Allowed: {plain(NAME_RULE)}; not a built-in preset's name.")
    summary = ", ".join(f"{field}={fmt_value(value)}" for field, value in best["params"].items())
    description = st.text_input("Description", value=f"Best of study {spec.name}: {summary}"[:DESCRIPTION_MAX],
                                key=f"{key}.description", max_chars=DESCRIPTION_MAX)
    replace = st.checkbox("Replace my preset of that name", key=f"{key}.replace")
    if st.button("Save", type="primary", icon=":material/save:", key=f"{key}.save"):
        try:
            saved = save_preset(home, spec.algo, name, space.apply(spec.base(), best["params"]), description,
                                source=f"study {spec.study_id} · trial {best['trial']}", replace=replace)
        except (PresetError, OSError) as err:
            st.error(plain(err), icon=":material/block:")
        else:
            st.success(f"Saved as your preset **{plain(saved.name)}**.", icon=":material/check:")
            st.page_link("pages/train.py", label=f"Open {saved.name} in Train", icon=":material/rocket_launch:",
                         query_params={"algo": spec.algo, "preset": saved.name})


def _estimate_text(values: list[float]) -> str:
    if not values:
        return ""
    estimate = iqm_estimate(values)
    if estimate.low == estimate.high:
        return f"{estimate.iqm:,.4g} (n={estimate.n})"
    return f"{estimate.iqm:,.4g} [{estimate.low:,.4g}, {estimate.high:,.4g}] (n={estimate.n})"


def _shown(value):
    """A parameter in the trial table: four significant digits (a sampled 0.9774406751963662 reads 0.9774), still a
    number so the column sorts; lists and booleans as text."""
    if isinstance(value, float):
        return float(f"{value:.4g}")
    return fmt_value(value) if isinstance(value, (bool, list, tuple)) else value


with page():  # past the access gate; a damaged store is a message, not a traceback
    home = handles.store().home
    st.title("Studies")
    st.caption("A study searches hyperparameters: each trial is one configuration trained on several seeds, its "
               "value the interquartile mean across them. Optuna picks the next configuration; runs train in the "
               "queue like any other, tagged `study:<id>`.")
    specs, unreadable = storage.list_studies(home)
    for problem in unreadable:
        st.warning(plain(problem), icon=":material/folder_off:")

    with st.expander("New study", expanded="study" not in st.query_params, icon=":material/add:"):
        new_study_form(home)

    ids = [spec.study_id for spec in specs]
    wanted = st.query_params.get("study")
    if wanted in ids and st.session_state.get("study_pick") != wanted:
        st.session_state["study_pick"] = wanted  # a link to ?study=ID
    labels = {spec.study_id: study_label(spec) for spec in specs}
    picked = st.selectbox("Study", ids, format_func=labels.get, key="study_pick", index=None,
                          placeholder="Pick a study" if ids else "No study yet: launch one above")
    if picked is not None:
        st.query_params["study"] = picked
        status = next(spec for spec in specs if spec.study_id == picked).status
        st.fragment(study_panel, run_every=REFRESH_S if status == "running" else None)(picked, status)
    elif wanted is not None:
        st.warning(f"There is no study {plain(wanted)} in this lab.", icon=":material/search_off:")
    sidebar_active_runs()
