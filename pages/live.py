"""Live view: one run (``?run=ID``) or a group of seeds (``?group=ID``), refreshed from the store every second."""

import dataclasses
import math
import time

import streamlit as st

from cartpole_core.engine.evaluate import EVAL_EPISODES
from cartpole_core.jobs.queue import cancel_run
from cartpole_core.runs.compare import group_label
from cartpole_core.runs.store import ACTIVE_STATUSES
from cartpole_core.watch.replay import ReplayError, cached_video
from dashboard import handles
from dashboard.checkpoints import load_checkpoint
from dashboard.labels import ALGORITHM_TITLES, checkpoint_label, plain
from dashboard.live import endpoint
from dashboard.live.component import REFRESH_S, feed_for, live_chart, live_progress
from dashboard.live.feed import checkpoint_key
from dashboard.live.snapshot import VIEWS, DrawnPage, LiveRequest, view_label
from dashboard.page import page, store_problems_shown
from dashboard.widgets import sidebar_active_runs, smoothing_inputs, x_axis_input

with page():  # past the access gate; a damaged store is a message, not a traceback

    CLIP_EVERY_S = 15.0  # a new clip of the current policy at most this often (encoding takes CPU from training)
    CLIP_STEPS = 200  # four seconds of CartPole
    CLIP_SCALE, CLIP_EVERY = 0.5, 2  # half size, every other frame at 25 fps (still real time): a quarter of the work

    store = handles.store()
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
    st.title(plain(group_label([first] if run_id else [store.get_run(rid) for rid in run_ids])))
    st.caption(f"{ALGORITHM_TITLES[first['algo']]} · preset {first['preset'] or 'custom'} · "
               f"{'run ' + run_id if run_id else f'group {group_id} · {len(run_ids)} seeds'}")

    controls = st.columns([1, 1, 1, 1])
    method, amount = smoothing_inputs(controls[0], controls[1], key="smooth")
    x_axis = x_axis_input(controls[2], key="x_axis")
    paused = controls[3].toggle("Pause live updates", key="paused",
                                help="Holds the charts still while you read them. Zoom survives refreshes either way.")
    feed = handles.live_feed()


    def clip_caption(checkpoint: str, episode) -> str:
        """What the clip is: ONE greedy episode, cut at CLIP_STEPS — its return is not the evaluation's mean over 20
        full episodes, and a clip that ends at 200 steps with the pole up is not a failure."""
        head = f"{checkpoint} · one episode (seed {episode.seed})"
        if episode.terminated:
            return (f"{head}: the pole fell at step {episode.steps}, return {episode.total_return:.0f}. The clip shows "
                    f"at most {CLIP_STEPS} steps.")
        if episode.steps >= CLIP_STEPS:
            return (f"{head}, cut at {CLIP_STEPS} steps with the pole still up: return {episode.total_return:.0f} "
                    "(evaluation episodes run to 500).")
        return (f"{head}: {episode.steps} steps, return {episode.total_return:.0f}. The clip shows at most "
                f"{CLIP_STEPS} steps.")


    def checkpoint_evaluation(rid: str, env_steps: int) -> str:
        """Beside the clip, the evaluation of the policy it shows (the last one at or before its checkpoint's step):
        what "solved" is decided on. Not the run's latest: the clip is remade at most every CLIP_EVERY_S, while the
        chart shows every evaluation as it comes."""
        evaluations = [row for row in feed.rows(rid)["evaluations"] if row["env_steps"] <= env_steps]
        if not evaluations:
            return "This checkpoint has no evaluation yet."
        last = evaluations[-1]
        verdict = "solved" if last["solved"] else "not solved"
        return (f"This checkpoint's evaluation: mean return {last['mean_return']:.0f} ± {last['std_return']:.0f} "
                f"over {EVAL_EPISODES} episodes at {last['env_steps']:,} env steps — {verdict} (≥ 475).")


    def policy_clip(run: dict) -> tuple[str | None, float] | None:
        """A short clip of the latest checkpoint's greedy policy, remade when a newer checkpoint exists (at most
        every CLIP_EVERY_S), so users watch the agent learn; the last clip stays on screen meanwhile. Returns what
        the page drew for DrawnPage: the checkpoint shown (None before the first) and when a newer one may replace
        it (Unix time); None when no clip can be made."""
        latest = feed.latest_checkpoint(run["id"])
        state = st.session_state.setdefault(f"clip.{run['id']}", {})
        if latest:
            stale = state.get("key") != checkpoint_key(latest)
            finished = run["status"] not in ACTIVE_STATUSES  # a finished run shows its last checkpoint at once
            if stale and (finished or time.time() >= state.get("due_at", 0.0)):
                try:
                    agent = load_checkpoint(latest)
                    video, episode = cached_video(agent, latest["path"], 0, max_steps=CLIP_STEPS, scale=CLIP_SCALE,
                                                  every=CLIP_EVERY)
                except (ReplayError, OSError) as err:  # e.g. the run was deleted meanwhile
                    st.caption(f"No clip: {err}")
                    return None
                state.update(key=checkpoint_key(latest), due_at=round(time.time() + CLIP_EVERY_S, 1),
                             video=str(video), text=clip_caption(checkpoint_label(latest), episode),
                             env_steps=latest["env_steps"])
        st.caption("**Current policy**")
        if "video" in state:
            # While training, each new clip plays through once (a looping video keeps the browser compositing on the
            # cores the run trains on); once the run is over it loops.
            st.video(state["video"], autoplay=True, loop=run["status"] not in ACTIVE_STATUSES, muted=True)
            st.caption(state["text"])
            st.caption(checkpoint_evaluation(run["id"], state.get("env_steps", math.inf)))
            st.page_link("pages/replay.py", label="Full replay", icon=":material/movie:",
                         query_params={"run": run["id"]})
        else:
            st.caption("The first checkpoint is saved a tenth of the way into training; a clip of the policy "
                       "appears here then.")
        return state.get("key"), state.get("due_at", 0.0)


    # Refresh only while something shown is queued or training: a finished run's page is static (no CPU, zoom kept).
    # Served from app.py, the progress lines and charts refresh themselves from the live endpoint and the fragment
    # reruns only when the page must change; otherwise (AppTest, a bare script run) the fragment reruns every second.
    training = any(store.get_run(rid)["status"] in ACTIVE_STATUSES for rid in run_ids)


    @st.fragment(run_every=REFRESH_S if training and not paused and not endpoint.served else None)
    def live() -> None:
        with store_problems_shown():  # a fragment rerun is not inside app.py's guard
            live_view()


    def live_view() -> None:
        runs = [store.get_run(rid) for rid in run_ids]
        if training and not any(run["status"] in ACTIVE_STATUSES for run in runs):
            st.rerun()  # the last run just ended: one full rerun draws the final state and stops the refreshes
        active = [run for run in runs if run["status"] in ACTIVE_STATUSES]
        # The view is chosen below the Stop button; what it shows is needed now.
        view = st.session_state.get("view") or "Reward"
        request = LiveRequest(tuple(run_ids), view=view, x=x_axis, method=method, amount=amount)
        snapshot = feed.snapshot(request, runs)
        progress = st.empty()  # drawn last (its live URL names the clip drawn below), shown first
        for run in runs:
            if run["status"] == "failed":
                st.error(f"Failed: {run['error']}", icon=":material/error:")
            elif run["status"] == "interrupted":
                st.warning(f"Interrupted: {run['error']}", icon=":material/warning:")
        # Always drawn (disabled once nothing runs): an element that comes and goes shifts everything after it, and
        # the browser then briefly shows the chart twice while the refresh replaces it.
        label = "Stop run" if len(run_ids) == 1 else f"Stop {len(active)} active runs" if active else "Stop runs"
        if st.button(label, icon=":material/stop_circle:", key="stop", disabled=not active) and active:
            for run in active:
                cancel_run(store, run["id"])
            st.toast("Stop requested: the run ends at its next update, keeping all its data.")

        # One view at a time (not tabs, which render every chart on every refresh): the server and the browser
        # redraw only what is shown, so a watched run keeps its training speed.
        st.segmented_control("View", list(VIEWS), key="view", default="Reward", required=True,
                             label_visibility="collapsed", format_func=lambda name: view_label(name, first["algo"]))
        figures, captions = snapshot["figures"], snapshot["captions"]
        clip_shown = None
        if view == "Reward":
            chart, clip = st.columns([3, 1]) if len(run_ids) == 1 else (st.container(), None)
            if clip is not None:
                with clip:  # before the chart: the live URL of every element names the clip drawn
                    clip_shown = policy_clip(runs[0])
        clip_key, clip_due_at = clip_shown or (None, None)
        drawn = DrawnPage(snapshot["layout"], clip_key, clip_due_at)
        every = feed_for(dataclasses.replace(request, drawn=drawn)) if active and not paused else None
        if view == "Reward":
            with chart:
                live_chart(figures["reward_chart"], key="reward_chart", caption=captions["reward_chart"], feed=every)
        else:
            if len(runs) > 1:  # ε, learning rate and diagnostics are per run: say whose, and link the others
                st.caption(f"Showing {plain(runs[0]['name'])}, the group's first run. Each run's own live view:")
                columns = st.columns(min(len(runs), 8))
                for index, run in enumerate(runs):
                    columns[index % len(columns)].page_link("pages/live.py", label=plain(run["name"]),
                                                            query_params={"run": run["id"]})
            if not figures:
                st.caption("No updates yet." if view == "Diagnostics" else "No episodes yet.")
        for key, figure in figures.items():
            if key != "reward_chart":
                live_chart(figure, key=key, feed=every)
        with progress.container():
            live_progress(snapshot["progress"], key="progress", feed=every)


    live()
    sidebar_active_runs(refresh_s=None)
