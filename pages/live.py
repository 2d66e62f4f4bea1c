"""Live view: one run (``?run=ID``) or a group of seeds (``?group=ID``), refreshed from the store every second."""

import time

import streamlit as st

from cartpole_core.engine.evaluate import EVAL_EPISODES
from cartpole_core.jobs.queue import cancel_run
from cartpole_core.runs.compare import group_label
from cartpole_core.runs.store import ACTIVE_STATUSES
from cartpole_core.watch.replay import ReplayError, cached_video
from dashboard import ui
from dashboard.live import endpoint as lab_api
from dashboard.live.feed import (
    EMA_RANGE,
    SMOOTHING,
    VIEWS,
    WINDOW_RANGE,
    X_AXES,
    LiveRequest,
    checkpoint_key,
    shared_feed,
    view_label,
)

with ui.page():  # past the access gate; a damaged store is a message, not a traceback

    LIVE_REFRESH_S = 0.8  # "at least once a second": with some room for a fetch or a draw that lands late
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
    title = first["name"] if run_id else group_label([store.get_run(rid) for rid in run_ids])
    st.title(ui.plain(title))
    st.caption(f"{ui.ALGORITHM_TITLES[first['algo']]} · preset {first['preset'] or 'custom'} · "
               f"{'run ' + run_id if run_id else f'group {group_id} · {len(run_ids)} seeds'}")

    controls = st.columns([1, 1, 1, 1])
    method = controls[0].selectbox("Smoothing", list(SMOOTHING), key="smooth_method", format_func=SMOOTHING.get)
    amount = (controls[1].slider("EMA weight", *EMA_RANGE, 0.9, key="smooth_ema") if method == "ema" else
              controls[1].number_input("Window (episodes)", *WINDOW_RANGE, 20, key="smooth_window")
              if method == "window"
              else 0)
    x_axis = controls[2].selectbox("x axis", list(X_AXES), key="x_axis", format_func=X_AXES.get)
    paused = controls[3].toggle("Pause live updates", key="paused",
                                help="Holds the charts still while you read them. Zoom survives refreshes either way.")
    feed = shared_feed(store.home)


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


    def latest_evaluation(rid: str) -> str:
        """The run's latest evaluation beside the clip: what "solved" is decided on."""
        evaluations = feed.rows(rid)["evaluations"]
        if not evaluations:
            return "No evaluation yet."
        last = evaluations[-1]
        verdict = "solved" if last["solved"] else "not solved"
        return (f"Latest evaluation: mean return {last['mean_return']:.0f} ± {last['std_return']:.0f} over "
                f"{EVAL_EPISODES} episodes at {last['env_steps']:,} env steps — {verdict} (≥ 475).")


    def policy_clip(run: dict) -> dict:
        """A short clip of the latest checkpoint's greedy policy, remade when a newer checkpoint exists (at most
        every CLIP_EVERY_S), so users watch the agent learn; the last clip stays on screen meanwhile. Returns what
        the live feed needs to know when to ask for the next one: the checkpoint shown and when a newer one is due."""
        latest = feed.latest_checkpoint(run["id"])
        state = st.session_state.setdefault(f"clip.{run['id']}", {})
        if latest:
            stale = state.get("key") != checkpoint_key(latest)
            finished = run["status"] not in ACTIVE_STATUSES  # a finished run shows its last checkpoint at once
            if stale and (finished or time.monotonic() - state.get("made", -CLIP_EVERY_S) >= CLIP_EVERY_S):
                try:
                    agent = ui.load_checkpoint(latest)
                    video, episode = cached_video(agent, latest["path"], 0, max_steps=CLIP_STEPS, scale=CLIP_SCALE,
                                              every=CLIP_EVERY)
                except (ReplayError, OSError) as err:  # e.g. the run was deleted meanwhile
                    st.caption(f"No clip: {err}")
                    return {}
                state.update(key=checkpoint_key(latest), made=time.monotonic(), video=str(video),
                             text=clip_caption(ui.checkpoint_label(latest), episode))
        st.caption("**Current policy**")
        if "video" in state:
            # While training, each new clip plays through once (a looping video keeps the browser compositing on the
            # cores the run trains on); once the run is over it loops.
            st.video(state["video"], autoplay=True, loop=run["status"] not in ACTIVE_STATUSES, muted=True)
            st.caption(state["text"])
            st.caption(latest_evaluation(run["id"]))
            st.page_link("pages/replay.py", label="Full replay", icon=":material/movie:",
                         query_params={"run": run["id"]})
        else:
            st.caption("The first checkpoint is saved a tenth of the way into training; a clip of the policy "
                       "appears here then.")
        due_s = max(0.0, CLIP_EVERY_S - (time.monotonic() - state.get("made", -CLIP_EVERY_S)))
        return {"clip": state.get("key"), "clip_due_ms": int(due_s * 1000)}


    # Refresh only while something shown is queued or training: a finished run's page is static (no CPU, zoom kept).
    # Served from app.py, the progress lines and charts refresh themselves from the live endpoint and the fragment
    # reruns only when the page must change; otherwise (AppTest, a bare script run) the fragment reruns every second.
    training = any(store.get_run(rid)["status"] in ACTIVE_STATUSES for rid in run_ids)


    @st.fragment(run_every=LIVE_REFRESH_S if training and not paused and not lab_api.served else None)
    def live() -> None:
        with ui.store_problems_shown():  # a fragment rerun is not inside app.py's guard
            live_view()


    def live_view() -> None:
        runs = [store.get_run(rid) for rid in run_ids]
        if training and not any(run["status"] in ACTIVE_STATUSES for run in runs):
            st.rerun()  # the last run just ended: one full rerun draws the final state and stops the refreshes
        active = [run for run in runs if run["status"] in ACTIVE_STATUSES]
        # The view is chosen below the Stop button; what it shows is needed now.
        view = st.session_state.get("view") or "Reward"
        request = LiveRequest(tuple(run_ids), view=view, x=x_axis, method=method, amount=amount, title=title)
        snapshot = feed.snapshot(request, runs)
        url = ui.live_feed_url(request) if active and not paused else None
        every = {"url": url, "every_ms": int(LIVE_REFRESH_S * 1000)} if url else None
        progress = st.empty()  # drawn last (it needs the clip's state to know when to ask for a rerun), shown first
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
        watch: dict = {}
        figures, captions = snapshot["figures"], snapshot["captions"]
        if view == "Reward":
            chart, clip = st.columns([3, 1]) if len(run_ids) == 1 else (st.container(), None)
            with chart:
                ui.live_chart(figures["reward_chart"], key="reward_chart", caption=captions["reward_chart"], feed=every)
            if clip is not None:
                with clip:
                    watch = policy_clip(runs[0])
        else:
            if len(runs) > 1:  # ε, learning rate and diagnostics are per run: say whose, and link the others
                st.caption(f"Showing {ui.plain(runs[0]['name'])}, the group's first run. Each run's own live view:")
                columns = st.columns(min(len(runs), 8))
                for index, run in enumerate(runs):
                    columns[index % len(columns)].page_link("pages/live.py", label=ui.plain(run["name"]),
                                                            query_params={"run": run["id"]})
            if not figures:
                st.caption("No updates yet." if view == "Diagnostics" else "No episodes yet.")
        for key, figure in figures.items():
            if key != "reward_chart":
                ui.live_chart(figure, key=key, feed=every)
        with progress.container():
            ui.live_progress(snapshot["progress"], key="progress",
                             feed=every and {**every, "layout": snapshot["layout"], **watch})


    live()
    ui.sidebar_active_runs(refresh_s=None)
