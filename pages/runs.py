"""Runs & Compare: every stored run with the settings that differ among them; groups ranked by how (and how fast)
their seeds solved; overlay groups' evaluations or training returns as mean ± std bands; diff configs; manage runs.
"""

import hashlib
import json
import tempfile
from collections import Counter
from pathlib import Path

import pandas as pd
import streamlit as st

from cartpole_core import ALGORITHMS
from cartpole_core.config.limits import check_name, check_tags
from cartpole_core.figures.plots import evaluation_figure, group_figure
from cartpole_core.records import EPISODE_COLUMNS
from cartpole_core.runs.archive import ImportRejected, export_runs, import_runs
from cartpole_core.runs.compare import (
    METRICS,
    base_name,
    compare_groups,
    config_diff,
    differing_fields,
    evaluation_rows,
    fmt_value,
    group_labels,
    group_runs,
    group_summary,
    run_config,
    stopped_on_solve,
)
from cartpole_core.runs.store import ACTIVE_STATUSES, STATUSES, RunStore, StoreError, binned_mean_std
from dashboard import handles
from dashboard.labels import ALGORITHM_TITLES, STATUS_ICONS, plain
from dashboard.page import page
from dashboard.widgets import sidebar_active_runs, smoothing_inputs, x_axis_input

with page():  # past the access gate; a damaged store is a message, not a traceback


    store = handles.store()
    st.title("Runs & compare")

    with st.sidebar.expander("Import runs", icon=":material/upload:"):
        upload = st.file_uploader("A zip exported from CartPole Lab", type=["zip"], key="import_zip")
        if upload is not None and st.button("Import", key="do_import"):
            with tempfile.TemporaryDirectory() as folder:
                path = Path(folder) / "import.zip"
                path.write_bytes(upload.getvalue())
                try:
                    st.success(f"Imported {', '.join(import_runs(store, path))}")
                except ImportRejected as err:
                    st.error(f"Not imported: {plain(err)}")
                except (StoreError, OSError) as err:  # rolled back: nothing of the zip was kept
                    st.error(f"Not imported — the store could not be written, nothing was kept: {plain(err)}")

    filters = st.columns(4)
    algo = filters[0].selectbox("Algorithm", [None, *ALGORITHMS], format_func=lambda a: "all" if a is None else
                                ALGORITHM_TITLES[a], key="filter_algo")
    status = filters[1].selectbox("Status", [None, *STATUSES], format_func=lambda s: "all" if s is None else s,
                                  key="filter_status")
    all_tags = sorted({tag for run in store.list_runs() for tag in run["tags"]})
    if "filter_tag" not in st.session_state:  # ``?tag=NAME`` opens the page filtered, e.g. a sweep's shared link
        st.session_state["filter_tag"] = st.query_params.get("tag") if st.query_params.get("tag") in all_tags else None
    tag = filters[2].selectbox("Tag", [None, *all_tags], format_func=lambda t: "all" if t is None else t,
                               key="filter_tag")
    if tag is None:
        st.query_params.pop("tag", None)
    else:
        st.query_params["tag"] = tag
    sort = filters[3].selectbox("Sort by", ["newest", "final evaluation", "steps to solve", "time to solve"],
                                key="sort")
    runs = store.list_runs(algo=algo, status=status, tag=tag)
    if sort == "final evaluation":
        runs.sort(key=lambda r: -(r["final_eval"] or -1))
    elif sort in ("steps to solve", "time to solve"):
        column = "steps_to_solve" if sort == "steps to solve" else "time_to_solve_s"
        runs.sort(key=lambda r: r[column] if r[column] is not None else float("inf"))
    if not runs:
        st.info("No runs match. Launch one from **Train** or import a zip.", icon=":material/info:")
        st.stop()

    hyperparameters = differing_fields(runs)
    MISSING = object()  # the field is not a setting of that run's algorithm


    def field_cells(field: str, rows: list[dict]) -> list:
        """A hyperparameter column: numbers as numbers (so it sorts), anything else as the compact text names use."""
        values = [run_config(row).get(field, MISSING) for row in rows]
        if all(isinstance(v, (int, float)) and not isinstance(v, bool) or v is MISSING for v in values):
            return [None if v is MISSING else v for v in values]
        return ["—" if v is MISSING else fmt_value(v) for v in values]


    table = pd.DataFrame([{
        "status": f"{STATUS_ICONS[r['status']]} {r['status']}", "name": r["name"]} for r in runs])
    for field in hyperparameters:
        table[field] = field_cells(field, runs)
    table = table.join(pd.DataFrame([{
        "algo": r["algo"], "preset": r["preset"], "seed": r["seed"], "env steps": r["env_steps"],
        "episodes": r["episodes"],
        "final eval": r["final_eval"], "best eval": r["best_eval"], "steps to solve": r["steps_to_solve"],
        "time to solve (s)": r["time_to_solve_s"], "tags": ", ".join(r["tags"]), "group": r["group_id"], "id": r["id"]}
        for r in runs]))
    # The selection is kept as run ids (``?select=id,id``, which also shares a comparison as a link), never as row
    # numbers: the table is a new widget whenever its rows change (a filter, a delete, a new run), its selection
    # rebuilt from the ids — a row number kept across a delete would select runs the user never picked.
    preselected = [i for i, r in enumerate(runs) if r["id"] in st.query_params.get("select", "").split(",")]
    rows_key = hashlib.sha1(",".join(r["id"] for r in runs).encode()).hexdigest()[:12]
    selection = st.dataframe(table, key=f"runs_table.{rows_key}", on_select="rerun", selection_mode="multi-row",
                             hide_index=True,
                             selection_default=({"selection": {"rows": preselected, "columns": []}}
                                                if preselected else None),
                             column_config={"final eval": st.column_config.NumberColumn(format="%.1f"),
                                            "best eval": st.column_config.NumberColumn(format="%.1f"),
                                            "time to solve (s)": st.column_config.NumberColumn(format="%.2f"),
                                            "group": st.column_config.TextColumn(width="large")})
    selected = [runs[i] for i in selection.selection.rows]
    if selected:
        st.query_params["select"] = ",".join(run["id"] for run in selected)
    elif "select" in st.query_params:
        del st.query_params["select"]
    st.caption("Select rows to compare, export or manage them. Runs of one group (its seeds) are compared as one "
               "mean ± std band." + (f" Columns {', '.join(hyperparameters)}: the settings that differ among these "
                                     "runs." if hyperparameters else ""))

    st.subheader("Groups, best first")
    summary = group_summary(runs)
    estimates = {name: f"{metric.title}: IQM [95 % CI]" for name, metric in METRICS.items()}
    summary_table = pd.DataFrame([{
        "group": row["label"], **row["hyperparameters"], "algo": row["algo"], "seeds": row["seeds"],
        "solved": row["solved_fraction"],
        estimates["steps_to_solve"]: row["steps_to_solve"].iqm, "steps to solve (min – max)": row["steps_range"],
        estimates["time_to_solve"]: row["time_to_solve"].iqm, "time to solve (min – max)": row["time_range"],
        estimates["final_eval"]: row["final_eval"].iqm if row["final_eval"] is not None else None,
        **({"still training": row["active"]} if any(r["active"] for r in summary) else {}),
        "group id": row["group_id"]} for row in summary])
    # Styled, not converted to text: a cell reads "12,000 [10,000, 14,000] (n=4)" or "not solved […]" yet its column
    # sorts by the IQM, a number (∞ when not solved: it sorts last).
    styled = summary_table.style.format({"solved": "{:.0%}"})
    for index, row in enumerate(summary):  # one call per row, a slice: cell by cell would cost 0.5 s for 200 groups
        texts = {column: METRICS[name].estimate_text(row[name]) for name, column in estimates.items()}
        styled = styled.format({column: lambda _, text=text: text for column, text in texts.items()},
                               subset=pd.IndexSlice[index:index, :])
    st.container(key="group_summary").dataframe(styled, hide_index=True)
    st.caption("One row per group of the runs listed (a run without a group is its own). Best first: the most seeds "
               "solved, then the fewest env steps to solve. Solved: a greedy evaluation's mean return over 20 episodes "
               "reached 475, confirmed on 100 other episodes; steps and time to solve are at that first solved "
               "evaluation (time counts training only; seeds trained together as one population share one clock, so a "
               "member's time is the population's training time up to its solve). "
               "IQM [95 % CI] (n): the interquartile mean over n seeds — the mean of the middle half, a quarter "
               "trimmed from each end (none of fewer than 4) — and its bootstrap confidence interval. A seed that has "
               "not solved counts as never solving, so the IQM is *not solved* when it keeps one: one lucky seed "
               "cannot make a group look fast. Min – max is over the seeds; final eval is each run's last evaluation "
               "(n: the runs evaluated so far).")
    if not selected:
        st.stop()

    st.subheader("Compare")
    VIEWS = {"evaluation": "Evaluation (greedy, 20 episodes)", "training": "Training returns"}
    view = st.segmented_control("Curve", list(VIEWS), format_func=VIEWS.get, default="evaluation", required=True,
                                key="cmp_view")
    options = st.columns(4)
    x_axis = x_axis_input(options[0], key="cmp_x")
    if view == "training":
        method, amount = smoothing_inputs(options[1], options[2], key="cmp", ema_weight=0.8)
    show_seeds = options[3].toggle("Show each seed", value=True, key="cmp_seeds")

    groups = group_runs(selected)
    labels = group_labels(list(groups.values()))
    if view == "evaluation":
        evaluations = {run["id"]: store.evaluations(run["id"]) for run in selected}
        # The compared range ends at the last evaluation of any selected run: runs that stopped on solve reach it.
        end = max((rows[-1]["episodes" if x_axis == "episode" else x_axis] for rows in evaluations.values() if rows),
                  default=None)
        curves = []
        for label, members in zip(labels, groups.values()):
            rows = [evaluation_rows(evaluations[run["id"]], x_axis, until=end if stopped_on_solve(run) else None)
                    for run in members]
            curves.append({"name": label, "curve": binned_mean_std(rows, x_axis, "mean_return"), "runs": rows})
        st.plotly_chart(evaluation_figure(curves, x=x_axis, seeds=show_seeds), key="compare_chart")
        st.caption("Each evaluation is the greedy policy's mean return over 20 fixed-seed episodes; the line is the "
                   "mean across a group's seeds, the band ± std. A seed that stopped training because it solved keeps "
                   "its last (solved) evaluation, dotted, to the end of the range: it is solved, not gone.")
    else:
        curves = []
        for label, members in zip(labels, groups.values()):
            episodes = [store.episodes(run["id"]) for run in members]
            curves.append({"name": label, "curve": binned_mean_std(episodes, x_axis),
                           "runs": [(rows, []) for rows in episodes],
                           "stopped": [stopped_on_solve(r) for r in members]})
        cap = max(json.loads(run["config_json"]).get("max_episode_steps", 500) for run in selected)
        st.plotly_chart(group_figure(curves, x=x_axis, method=method, amount=amount, seeds=show_seeds, episode_cap=cap),
                        key="compare_chart")
        st.caption("Training episodes' returns (with exploration), smoothed: mean ± std across a group's seeds. A star "
                   "marks a seed that stopped training because it solved; after it the mean is over the seeds still "
                   "training.")

    if len(groups) > 1:
        st.markdown("**Which is better?**")
        metric = st.segmented_control("Better at", list(METRICS), format_func=lambda name: METRICS[name].title,
                                      default="final_eval", required=True, key="better_metric")
        comparison = compare_groups(selected, metric)
        lines = [f"- **{plain(pair.better)}** beats **{plain(pair.worse)}** in {100 * pair.probability:.0f} % of seed "
                 f"pairs ({pair.seeds[0]} × {pair.seeds[1]} seeds)" for pair in comparison.pairs]
        st.container(key="which_is_better").markdown(
            "\n".join(lines) or "Fewer than two of these groups have a final eval yet: nothing to compare.")
        st.caption(f"Probability of improvement: over every pair of a seed of one group and a seed of the other, the "
                   f"share where the first does better ({comparison.metric.better}"
                   f"{'; a seed that never solved is slowest' if comparison.metric.to_solve else ''}), ties counting "
                   f"half. 50 %: no telling them apart; near 100 %: one is better, seed after seed.")
        unevaluated = [plain(label) for label, n in comparison.seeds.items() if n == 0]
        if unevaluated:
            st.caption(f"Not compared, no evaluation yet: {', '.join(unevaluated)}.")
        single = [plain(label) for label, n in comparison.seeds.items() if n == 1]
        if len(single) == len(comparison.seeds):
            st.warning("One seed per group: each percentage compares two single runs (0, 50 or 100 %) and means "
                       "little. Launch more seeds per setting (Train → Seeds).", icon=":material/warning:")
        elif single:
            st.warning(f"One seed behind {', '.join(single)}: a percentage that rests on one run means little. "
                       "Launch more seeds per setting (Train → Seeds).", icon=":material/warning:")

    if len(selected) > 1:
        diff = config_diff(selected)
        if len(diff.columns) > 1 and diff.fields:
            st.markdown("**Config differences**")
            st.container(key="config_diff").dataframe(pd.DataFrame(diff.table()))
            st.caption("One column per config: a group's seeds share theirs. — : not a setting of that algorithm.")
        else:
            st.markdown("**Configs are identical**")

    st.subheader("Manage")
    manage = st.columns(3)
    selected_ids = [run["id"] for run in selected]


    # Downloads are built when clicked (on Streamlit's download thread, with its own store handle), not on every rerun.
    def metrics_csv() -> str:
        reader = RunStore(store.home, recover=False)
        return pd.concat([pd.DataFrame(reader.episodes(run_id), columns=EPISODE_COLUMNS).assign(run_id=run_id)
                          for run_id in selected_ids]).to_csv(index=False)


    def runs_zip() -> bytes:
        with tempfile.TemporaryDirectory() as folder:
            archive = export_runs(RunStore(store.home, recover=False), selected_ids, Path(folder) / "runs.zip")
            return archive.read_bytes()


    manage[0].download_button("Metrics CSV", metrics_csv, file_name="cartpole-lab-metrics.csv", mime="text/csv",
                              icon=":material/download:", key="download_csv")
    manage[1].download_button("Export zip", runs_zip, file_name="cartpole-lab-runs.zip", mime="application/zip",
                              icon=":material/archive:", key="download_zip")



    def save_names_and_tags(name: str, tags: str) -> None:
        """One run takes the name as typed; several take it as their base and keep their `` · seed N``. Everything is
        checked before anything is written, so a bad name leaves every run as it was."""
        base = check_name(name)
        names = {run["id"]: base if len(selected) == 1 else check_name(f"{base_name(base)} · seed {run['seed']}")
                 for run in selected}
        clean = check_tags(tags)
        for run in selected:
            store.rename(run["id"], names[run["id"]])
            store.set_tags(run["id"], clean)


    # Keyed by the selection: a form left from another selection must not offer that selection's name.
    form_id = hashlib.sha1(",".join(selected_ids).encode()).hexdigest()[:8]
    with st.form("rename_form"):
        if len(selected) == 1:
            name = st.text_input("Name", value=selected[0]["name"], key=f"rename_name.{form_id}")
        else:
            base = Counter(base_name(run["name"]) for run in selected).most_common(1)[0][0]
            name = st.text_input(f"Name of the {len(selected)} selected runs", value=base, key=f"rename_name.{form_id}",
                                 help="Each run keeps its ' · seed N'.")
        tags = st.text_input("Tags (comma-separated)", key=f"rename_tags.{form_id}",
                             value=", ".join(sorted({tag for run in selected for tag in run["tags"]})),
                             help="Set on every selected run (replacing its tags).")
        if st.form_submit_button("Save" if len(selected) == 1 else f"Save for {len(selected)} runs"):
            try:
                save_names_and_tags(name, tags)
                st.rerun()
            except ValueError as err:
                st.error(str(err))
    deletable = [run for run in selected if run["status"] not in ACTIVE_STATUSES]
    if manage[2].button(f"Delete {len(deletable)} run(s)", icon=":material/delete:", disabled=not deletable,
                        key="delete", help="Deletes metrics and checkpoints. Active runs must be stopped first."):
        st.session_state["confirm_delete"] = [run["id"] for run in deletable]
    if st.session_state.get("confirm_delete"):
        st.warning(f"Delete {len(st.session_state['confirm_delete'])} run(s) with their metrics and checkpoints?")
        yes, no = st.columns(2)
        if yes.button("Yes, delete", type="primary", key="confirm_yes"):
            deleted = st.session_state.pop("confirm_delete")
            for run_id in deleted:
                store.delete_run(run_id)
            kept = [run_id for run_id in st.query_params.get("select", "").split(",")
                    if run_id and run_id not in deleted]
            if kept:
                st.query_params["select"] = ",".join(kept)
            else:
                st.query_params.pop("select", None)
            st.rerun()
        if no.button("Cancel", key="confirm_no"):
            st.session_state.pop("confirm_delete")
            st.rerun()
    sidebar_active_runs()
