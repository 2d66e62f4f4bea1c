"""Runs & Compare: every stored run; overlay groups or runs with mean ± std bands; diff configs; manage runs."""

import json
import tempfile
from pathlib import Path

import pandas as pd
import streamlit as st

import lab_ui as ui
from cartpole_core import ALGORITHMS
from cartpole_core.archive import EPISODE_COLUMNS, ImportRejected, export_runs, import_runs
from cartpole_core.plots import group_figure
from cartpole_core.store import ACTIVE_STATUSES, STATUSES, RunStore, binned_mean_std

store = ui.store()
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
                st.error(f"Not imported: {err}")

filters = st.columns(4)
algo = filters[0].selectbox("Algorithm", [None, *ALGORITHMS], format_func=lambda a: "all" if a is None else
                            ui.ALGORITHM_TITLES[a], key="filter_algo")
status = filters[1].selectbox("Status", [None, *STATUSES], format_func=lambda s: "all" if s is None else s,
                              key="filter_status")
all_tags = sorted({tag for run in store.list_runs() for tag in run["tags"]})
tag = filters[2].selectbox("Tag", [None, *all_tags], format_func=lambda t: "all" if t is None else t,
                           key="filter_tag")
sort = filters[3].selectbox("Sort by", ["newest", "final evaluation", "time to solve"], key="sort")
runs = store.list_runs(algo=algo, status=status, tag=tag)
if sort == "final evaluation":
    runs.sort(key=lambda r: -(r["final_eval"] or -1))
elif sort == "time to solve":
    runs.sort(key=lambda r: r["time_to_solve_s"] if r["time_to_solve_s"] is not None else float("inf"))
if not runs:
    st.info("No runs match. Launch one from **Train** or import a zip.", icon=":material/info:")
    st.stop()

table = pd.DataFrame([{
    "status": f"{ui.STATUS_ICONS[r['status']]} {r['status']}", "name": r["name"], "algo": r["algo"],
    "preset": r["preset"], "seed": r["seed"], "env steps": r["env_steps"], "episodes": r["episodes"],
    "final eval": r["final_eval"], "best eval": r["best_eval"], "time to solve (s)": r["time_to_solve_s"],
    "tags": ", ".join(r["tags"]), "group": r["group_id"], "id": r["id"]} for r in runs])
# ``?select=id,id`` preselects runs, so a comparison can be shared as a link.
preselected = [i for i, r in enumerate(runs) if r["id"] in st.query_params.get("select", "").split(",")]
selection = st.dataframe(table, key="runs_table", on_select="rerun", selection_mode="multi-row", hide_index=True,
                         selection_default={"selection": {"rows": preselected, "columns": []}} if preselected else None,
                         column_config={"final eval": st.column_config.NumberColumn(format="%.1f"),
                                        "best eval": st.column_config.NumberColumn(format="%.1f"),
                                        "time to solve (s)": st.column_config.NumberColumn(format="%.2f")})
selected = [runs[i] for i in selection.selection.rows]
if selected:
    st.query_params["select"] = ",".join(run["id"] for run in selected)
elif "select" in st.query_params:
    del st.query_params["select"]
st.caption("Select rows to compare, export or manage them. Runs of one group (its seeds) are compared as one "
           "mean ± std band.")
if not selected:
    st.stop()

st.subheader("Compare")
options = st.columns(4)
x_axis = options[0].selectbox("x axis", ["env_steps", "episode", "time_s"], key="cmp_x",
                              format_func={"env_steps": "env steps", "episode": "episodes",
                                           "time_s": "training time"}.get)
method = options[1].selectbox("Smoothing", ["ema", "window", "none"], key="cmp_method")
amount = (options[2].slider("EMA weight", 0.0, 0.99, 0.8, key="cmp_ema") if method == "ema" else
          options[2].number_input("Window", 1, 1000, 20, key="cmp_window") if method == "window" else 0)
show_seeds = options[3].toggle("Show each seed", value=True, key="cmp_seeds")

groups: dict[str, list[dict]] = {}
for run in selected:
    groups.setdefault(run["group_id"] or run["id"], []).append(run)
curves = []
for members in groups.values():
    episodes = [store.episodes(run["id"]) for run in members]
    head = members[0]
    name = head["name"] if len(members) == 1 else f"{head['algo']}/{head['preset'] or 'custom'} ×{len(members)}"
    curves.append({"name": name, "curve": binned_mean_std(episodes, x_axis),
                   "runs": [(rows, []) for rows in episodes]})
st.plotly_chart(group_figure(curves, x=x_axis, method=method, amount=amount, seeds=show_seeds), key="compare_chart")

if len(selected) > 1:
    configs = {run["name"]: json.loads(run["config_json"]) for run in selected}
    flat = {name: pd.json_normalize(config).iloc[0] for name, config in configs.items()}
    frame = pd.DataFrame(flat).astype(str)
    differing = frame[frame.nunique(axis=1) > 1]
    st.markdown("**Config differences**" if len(differing) else "**Configs are identical**")
    if len(differing):
        st.dataframe(differing, key="config_diff")

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
        return export_runs(RunStore(store.home, recover=False), selected_ids, Path(folder) / "runs.zip").read_bytes()


manage[0].download_button("Metrics CSV", metrics_csv, file_name="cartpole-lab-metrics.csv", mime="text/csv",
                          icon=":material/download:", key="download_csv")
manage[1].download_button("Export zip", runs_zip, file_name="cartpole-lab-runs.zip", mime="application/zip",
                          icon=":material/archive:", key="download_zip")

if len(selected) == 1:
    run = selected[0]
    with st.form("rename_form"):
        name = st.text_input("Name", value=run["name"], key="rename_name")
        tags = st.text_input("Tags (comma-separated)", value=", ".join(run["tags"]), key="rename_tags")
        if st.form_submit_button("Save"):
            try:
                store.rename(run["id"], name)
                store.set_tags(run["id"], tags.split(","))
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
        for run_id in st.session_state.pop("confirm_delete"):
            store.delete_run(run_id)
        st.rerun()
    if no.button("Cancel", key="confirm_no"):
        st.session_state.pop("confirm_delete")
        st.rerun()
ui.sidebar_active_runs()
