"""Replay: watch a checkpoint's greedy policy on one episode — video, frame scrubber with the agent's values,
state trace — optionally next to a second checkpoint on the same episode (one video, both halves in lockstep),
under changed physics or noise: any condition the Robustness page can produce, shown and replayed exactly."""

import math

import streamlit as st

from cartpole_core.engine.envs import (
    CONDITIONS,
    OBS_NOISE,
    PHYSICS_DEFAULTS,
    ConditionError,
    check_condition,
    exact_text,
)
from cartpole_core.figures.plots import episode_trace_figure
from cartpole_core.watch.replay import (
    FPS,
    ReplayError,
    cached_side_by_side,
    cached_video,
    encode_gif,
    encode_side_by_side,
    render_frame,
    replay_key,
    rollout,
    slug,
)
from dashboard.checkpoints import load_checkpoint, pick_checkpoint
from dashboard.labels import checkpoint_label, plain
from dashboard.page import page
from dashboard.widgets import sidebar_active_runs

with page():  # past the access gate; a damaged store is a message, not a traceback

    MAX_SEED = 2**31 - 1
    KEPT_EPISODES = 16  # rollouts kept per session (a few KB each: states, not frames)

    st.title("Replay")
    st.caption("The greedy policy of a checkpoint on one episode. Same episode seed, same start: compare checkpoints "
               "of one run to see how the policy evolved, or two runs on the same episode.")

    side_by_side = st.toggle("Side by side: compare with a second checkpoint", key="replay_compare")
    pick_columns = st.columns(2) if side_by_side else [st.container()]
    picks = [pick_checkpoint("replay", container=pick_columns[0])]
    if picks[0] is None:
        st.stop()
    if side_by_side:
        second = pick_checkpoint("replay_b", label="Second run", container=pick_columns[1])
        if second is not None and second[1]["path"] == picks[0][1]["path"]:
            pick_columns[1].info("Both sides show the same checkpoint: pick another run or checkpoint to compare.",
                                 icon=":material/info:")
        else:
            picks.append(second)

    # ------------------------------------------------------------------------------------------- conditions


    def url_number(name: str, default: float) -> float:
        try:
            value = float(st.query_params.get(name, default))
        except ValueError:
            return default
        return value if math.isfinite(value) else default


    def link_conditions() -> dict[str, float]:
        """The conditions in the page's link, exactly as given; a value the lab does not accept is named in a warning
        (with the allowed range) and left at its default, never silently moved into range."""
        found = {}
        for name, spec in CONDITIONS.items():
            if name not in st.query_params:
                continue
            raw = st.query_params[name]
            try:
                number = float(raw)
            except ValueError:
                number = raw  # check_condition names it: "must be a number in [...], got 'abc'"
            try:
                value = check_condition(name, number)
            except ConditionError as err:
                st.warning(f"The link's {err}. Replaying the default {exact_text(spec.default)} {spec.unit} instead.",
                           icon=":material/warning:")
                continue
            if value != spec.default:
                found[name] = value
        return found


    settings = st.columns([1, 3])
    seed = settings[0].number_input("Episode seed", 0, MAX_SEED, min(max(int(url_number("seed", 0)), 0), MAX_SEED),
                                    key="replay_seed",
                                    help="Fixes the start state: the same seed is the same episode for every "
                                         "checkpoint.")
    url_conditions = link_conditions()
    with settings[1].expander("Physics and observation noise" + (" (changed)" if url_conditions else ""),
                              expanded=bool(url_conditions), icon=":material/tune:"):
        inputs = st.columns(len(CONDITIONS))
        conditions = {}
        for column, spec in zip(inputs, CONDITIONS.values()):
            # Number inputs, not sliders: a slider snaps to its steps, and the link's value must be replayed as is.
            value = column.number_input(spec.title, spec.low, spec.high, url_conditions.get(spec.name, spec.default),
                                        spec.step, format="%g", key=f"replay_{spec.name}",
                                        help=f"{exact_text(spec.low)} to {exact_text(spec.high)}; "
                                             f"default {exact_text(spec.default)}.")
            if value != spec.default:
                conditions[spec.name] = value
    physics = {name: value for name, value in conditions.items() if name in PHYSICS_DEFAULTS}
    noise = conditions.get(OBS_NOISE, 0.0)
    if conditions:
        st.caption("Changed: " + ", ".join(f"{CONDITIONS[name].title} {exact_text(value)}"
                                           for name, value in conditions.items()))

    # ---------------------------------------------------------------------------------------------- rollouts


    def episode_for(artifact: dict, agent):
        """The greedy episode for this checkpoint and these conditions (a few milliseconds; kept per session)."""
        key = replay_key(artifact["path"], seed, physics, noise, 500, "episode")
        episodes = st.session_state.setdefault("replay_episodes", {})
        if key not in episodes:
            episodes[key] = rollout(agent, seed, physics=physics, obs_noise=noise)
            while len(episodes) > KEPT_EPISODES:
                episodes.pop(next(iter(episodes)))
        return episodes[key]


    shown = []
    for run, artifact in [pick for pick in picks if pick is not None]:
        agent = load_checkpoint(artifact)
        try:
            shown.append((run, artifact, agent, episode_for(artifact, agent)))
        except (ReplayError, ConditionError, OSError) as err:
            st.error(f"Cannot replay {artifact['path'].name} of {plain(run['name'])}: {err}")
            st.stop()

    # ------------------------------------------------------------------------------------------------- videos


    def downloads(video, gif, stem: str) -> None:
        """MP4 (the cached file) and GIF (made on click) buttons; file names are slugs (run names hold spaces, ``/``
        and ``·``)."""
        columns = st.columns(2)
        columns[0].download_button("MP4", video.read_bytes, f"{slug(stem)}.mp4", "video/mp4",
                                   icon=":material/download:",
                                   key=f"mp4_{video.name}", on_click="ignore", width="stretch")
        columns[1].download_button("GIF", gif, f"{slug(stem)}.gif", "image/gif", icon=":material/download:",
                                   key=f"gif_{video.name}", on_click="ignore", width="stretch",
                                   help="320 px wide per episode, 25 frames per second; made on click.")


    def video_panel(run: dict, artifact: dict, agent, episode) -> None:
        """The replay video (encoded once per checkpoint version and conditions, then cached on disk), its outcome
        and the downloads. Drawn after the scrubber, so the episode is on screen while the video encodes."""
        st.markdown(f"**{plain(run['name'])}** · {checkpoint_label(artifact)}")
        try:
            with st.spinner("Encoding the video …"):
                video, _ = cached_video(agent, artifact["path"], seed, physics=physics, obs_noise=noise,
                                        episode=episode)
        except (ReplayError, ConditionError, OSError) as err:
            st.error(f"Cannot encode the replay of {artifact['path'].name}: {err}")
            return
        st.video(str(video), autoplay=True, loop=True, muted=True)
        st.caption(f"Return **{episode.total_return:.0f}** — {episode.outcome()}. {FPS} frames per second: real time.")
        downloads(video, lambda: encode_gif(episode), f"{run['name']}-{artifact['path'].stem}-seed{seed}")


    def pair_panel(replays: list) -> None:
        """Both episodes in one video, side by side on the same frame index (two videos would start at different
        moments and drift apart); the shorter one holds its last frame, marked as ended. Cached on disk."""
        labels = [f"{run['name']} · {checkpoint_label(artifact)}" for run, artifact, _, _ in replays]
        episodes = [episode for *_, episode in replays]
        st.markdown(" **vs** ".join(f"**{plain(run['name'])}** · {checkpoint_label(artifact)}"
                                    for run, artifact, _, _ in replays))
        try:
            with st.spinner("Encoding the side-by-side video …"):
                video = cached_side_by_side(episodes, labels, replays[0][1]["path"].parent / "replays")
        except (ReplayError, OSError) as err:
            st.error(f"Cannot encode the side-by-side replay: {err}")
            return
        st.video(str(video), autoplay=True, loop=True, muted=True)
        st.caption(" · ".join(f"{plain(run['name'])}: return **{episode.total_return:.0f}** — {episode.outcome()}"
                              for run, _, _, episode in replays) + f". {FPS} frames per second: real time.")
        stem = "-vs-".join(f"{run['name']}-{artifact['path'].stem}" for run, artifact, _, _ in replays)
        downloads(video, lambda: encode_side_by_side(episodes, labels, kind="gif", every=2, scale=320 / 600),
                  f"{stem}-seed{seed}")


    @st.fragment
    def scrubber() -> None:
        """The slider, the frame(s) at its position and the state trace with its cursor. Only this fragment reruns
        while scrubbing: one render per episode and a light trace figure."""
        longest = max(episode.steps for *_, episode in shown)
        step = st.slider("Frame", 0, longest, 0, key="replay_frame",
                         help="Step through the episode; the overlay shows the action taken at this frame, the "
                              "agent's values for this observation and the return so far.")
        frames = st.columns(len(shown))
        for column, (run, _, _, episode) in zip(frames, shown):
            t = min(step, episode.steps)
            column.image(render_frame(episode, t), caption=f"{plain(run['name'])} · frame {t} of {episode.steps}",
                         width="stretch")
        st.plotly_chart(episode_trace_figure([(f"{run['name']} · {checkpoint_label(artifact)}", episode)
                                              for run, artifact, _, episode in shown], cursor=step),
                        key="replay_trace")


    if len(shown) == 1:
        left, right = st.columns(2, gap="large")
        with right:
            scrubber()  # first: the episode is on screen while the video encodes
        with left:
            video_panel(*shown[0])
    else:
        panel = st.container()
        scrubber()  # first: the episodes are on screen while the video encodes
        with panel:
            pair_panel(shown)
    sidebar_active_runs()
