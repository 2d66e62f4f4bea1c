"""Live view: one run (``?run=ID``) or a group of seeds (``?group=ID``), refreshed from the store every second."""

import time

import streamlit as st

import lab_ui as ui
from cartpole_core.configs import config_from_json
from cartpole_core.jobs import cancel_run
from cartpole_core.plots import group_figure, reward_figure, series_figure
from cartpole_core.replay import ReplayError, cached_video
from cartpole_core.store import ACTIVE_STATUSES, Cursor, binned_mean_std

LIVE_REFRESH_S = 1.0  # once a second, as asked; faster refreshes cost the watched run its speed on 2 cores
CLIP_EVERY_S = 15.0  # a new clip of the current policy at most this often (encoding takes CPU from training)
CLIP_STEPS = 200  # four seconds of CartPole
CLIP_SCALE, CLIP_EVERY = 0.5, 2  # half size, every other frame at 25 fps (still real time): a quarter of the work

store = ui.store()
run_id, group_id = st.query_params.get("run"), st.query_params.get("group")
if not run_id and not group_id:
    latest = store.list_runs()
    if not latest:
        st.title("Live view")
        st.info("No runs yet. Launch one from **Train**.", icon=":material/info:")
        st.page_link("pages/train.py", label="Train an agent", icon=":material/rocket_launch:")
        st.stop()
    run_id = latest[0]["id"]
run_ids = [run_id] if run_id else [run["id"] for run in store.list_runs(group_id=group_id)]
if not run_ids or store.get_run(run_ids[0]) is None:
    st.title("Live view")
    st.error(f"No run or group {run_id or group_id!r} in {store.home}. It may have been deleted.")
    st.stop()

first = store.get_run(run_ids[0])
title = first["name"] if run_id else f"{first['algo']}/{first['preset'] or 'custom'} · {len(run_ids)} seeds"
st.title(title)
st.caption(f"{ui.ALGORITHM_TITLES[first['algo']]} · preset {first['preset'] or 'custom'} · "
           f"{'run ' + run_id if run_id else 'group ' + group_id}")

controls = st.columns([1, 1, 1, 1])
method = controls[0].selectbox("Smoothing", ["ema", "window", "none"], key="smooth_method",
                               format_func={"ema": "EMA", "window": "moving window", "none": "none"}.get)
amount = (controls[1].slider("EMA weight", 0.0, 0.99, 0.9, key="smooth_ema") if method == "ema" else
          controls[1].number_input("Window (episodes)", 1, 1000, 20, key="smooth_window") if method == "window"
          else 0)
x_axis = controls[2].selectbox("x axis", ["env_steps", "episode", "time_s"], key="x_axis",
                               format_func={"env_steps": "env steps", "episode": "episodes",
                                            "time_s": "training time"}.get)
paused = controls[3].toggle("Pause live updates", key="paused",
                            help="Holds the charts still while you read them. Zoom survives refreshes either way.")


def fetch(run_id: str) -> dict:
    """This run's metrics, fetched incrementally: only rows newer than what this session already has."""
    cache = st.session_state.setdefault(f"live.{run_id}", {"cursor": Cursor(), "episodes": [], "updates": [],
                                                          "evaluations": []})
    new, cache["cursor"] = store.poll(run_id, cache["cursor"])
    for kind, rows in new.items():
        cache[kind].extend(rows)
    return cache


def progress_line(run: dict) -> None:
    config = config_from_json(run["config_json"])
    fraction = run["env_steps"] / config.total_env_steps
    if config.max_episodes:
        fraction = max(fraction, run["episodes"] / config.max_episodes)
    rate = run["env_steps"] / run["train_seconds"] if run["train_seconds"] else 0.0
    eta = (config.total_env_steps - run["env_steps"]) / rate if rate and run["status"] == "running" else None
    solved = f" · solved in {ui.fmt_duration(run['time_to_solve_s'])}" if run["solved"] else ""
    status = f"{ui.STATUS_ICONS[run['status']]} {run['status']}"
    st.progress(min(1.0, fraction), text=f"{status} · {run['name']} · {run['env_steps']:,} / "
                                         f"{config.total_env_steps:,} env steps · {run['episodes']:,} episodes · "
                                         f"{rate:,.0f} steps/s · ETA {ui.fmt_duration(eta)}{solved}")
    if run["status"] == "failed":
        st.error(f"Failed: {run['error']}", icon=":material/error:")
    elif run["status"] == "interrupted":
        st.warning(f"Interrupted: {run['error']}", icon=":material/warning:")


def policy_clip(run: dict) -> None:
    """A short clip of the latest checkpoint's greedy policy, remade when a newer checkpoint exists (at most
    every CLIP_EVERY_S), so users watch the agent learn; the last clip stays on screen meanwhile."""
    artifacts = store.artifacts(run["id"])
    state = st.session_state.setdefault(f"clip.{run['id']}", {})
    if artifacts:
        latest = max(artifacts, key=lambda a: (a["created_at"], a["env_steps"]))
        stale = state.get("source") != (latest["path"], latest["created_at"])
        finished = run["status"] not in ACTIVE_STATUSES  # a finished run shows its last checkpoint at once
        if stale and (finished or time.monotonic() - state.get("made", -CLIP_EVERY_S) >= CLIP_EVERY_S):
            try:
                agent = ui.load_checkpoint(latest)
                video, episode = cached_video(agent, latest["path"], 0, max_steps=CLIP_STEPS, scale=CLIP_SCALE,
                                          every=CLIP_EVERY)
            except (ReplayError, OSError) as err:  # e.g. the run was deleted meanwhile
                st.caption(f"No clip: {err}")
                return
            state.update(source=(latest["path"], latest["created_at"]), made=time.monotonic(), video=str(video),
                         text=f"{ui.checkpoint_label(latest)} · episode seed 0 · return {episode.total_return:.0f}"
                              f"{'' if episode.terminated else ' (clip ends at ' + str(CLIP_STEPS) + ' steps)'}")
    st.caption("**Current policy**")
    if "video" in state:
        # While training, each new clip plays through once (a looping video keeps the browser compositing on the
        # cores the run trains on); once the run is over it loops.
        st.video(state["video"], autoplay=True, loop=run["status"] not in ACTIVE_STATUSES, muted=True)
        st.caption(state["text"])
        st.page_link("pages/replay.py", label="Full replay", icon=":material/movie:",
                     query_params={"run": run["id"]})
    else:
        st.caption("The first checkpoint is saved a tenth of the way into training; a clip of the policy "
                   "appears here then.")


# Refresh only while something shown is queued or training: a finished run's page is static (no CPU, zoom kept).
training = any(store.get_run(rid)["status"] in ACTIVE_STATUSES for rid in run_ids)


@st.fragment(run_every=LIVE_REFRESH_S if training and not paused else None)
def live() -> None:
    runs = [store.get_run(rid) for rid in run_ids]
    if training and not any(run["status"] in ACTIVE_STATUSES for run in runs):
        st.rerun()  # the last run just ended: one full rerun draws the final state and stops the refreshes
    data = {rid: fetch(rid) for rid in run_ids}
    active = [run for run in runs if run["status"] in ACTIVE_STATUSES]
    for run in runs:
        progress_line(run)
    # Always drawn (disabled once nothing runs): an element that comes and goes shifts everything after it, and
    # the browser then briefly shows the chart twice while the refresh replaces it.
    label = "Stop run" if len(run_ids) == 1 else f"Stop {len(active)} active runs" if active else "Stop runs"
    if st.button(label, icon=":material/stop_circle:", key="stop", disabled=not active) and active:
        for run in active:
            cancel_run(store, run["id"])
        st.toast("Stop requested: the run ends at its next update, keeping all its data.")

    # One view at a time (not tabs, which render every chart on every refresh): the server and the browser
    # redraw only what is shown, so a watched run keeps its training speed.
    view = st.segmented_control("View", ["Reward", "Exploration & learning rate", "Diagnostics"], key="view",
                                default="Reward", required=True, label_visibility="collapsed")
    if view == "Reward":
        if len(run_ids) == 1:
            rid = run_ids[0]
            figure = reward_figure(data[rid]["episodes"], data[rid]["evaluations"], x=x_axis, method=method,
                                   amount=amount)
        else:
            episodes = [data[rid]["episodes"] for rid in run_ids]
            figure = group_figure([{"name": title, "curve": binned_mean_std(episodes, x_axis),
                                    "runs": [(rows, []) for rows in episodes]}], x=x_axis, method=method,
                                  amount=amount)
        chart, clip = st.columns([3, 1]) if len(run_ids) == 1 else (st.container(), None)
        with chart:
            ui.live_chart(figure, key="reward_chart")
        points = sum(len(data[rid]["episodes"]) for rid in run_ids)
        chart.caption(f"{points:,} episodes plotted" + (" — waiting for the first episode…" if not points else ""))
        if clip is not None:
            with clip:
                policy_clip(runs[0])
    shown = data[run_ids[0]]
    if view == "Exploration & learning rate":
        ui.live_chart(series_figure(shown["episodes"], ["epsilon"], x=x_axis, y_title="exploration ε"),
                      key="epsilon_chart")
        ui.live_chart(series_figure(shown["episodes"], ["learning_rate"], x=x_axis, y_title="learning rate"),
                      key="lr_chart")
    if view == "Diagnostics":
        keys = sorted({key for row in shown["updates"] for key in row} -
                      {"update", "env_steps", "time_s", "epsilon", "learning_rate"})
        if not keys:
            st.caption("No updates yet.")
        for key in keys:
            ui.live_chart(series_figure(shown["updates"], [key], x=x_axis if x_axis != "episode" else "env_steps",
                                        y_title=key.replace("_", " ")), key=f"diag.{key}")


live()
ui.sidebar_active_runs(refresh_s=None)
