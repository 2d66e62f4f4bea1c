"""Replay: watch a checkpoint's greedy policy on one episode — video, frame scrubber with the agent's values,
state trace — optionally next to a second checkpoint on the same episode, under changed physics or noise."""

import math

import streamlit as st

import lab_ui as ui
from cartpole_core.envs import PHYSICS_DEFAULTS
from cartpole_core.plots import episode_trace_figure
from cartpole_core.replay import (
    FPS,
    ReplayError,
    cached_video,
    encode_gif,
    render_frame,
    replay_key,
    rollout,
)
from cartpole_core.robustness import FACTORS, NOISE

MAX_SEED = 2**31 - 1
KEPT_EPISODES = 16  # rollouts kept per session (a few KB each: states, not frames)

st.title("Replay")
st.caption("The greedy policy of a checkpoint on one episode. Same episode seed, same start: compare checkpoints "
           "of one run to see how the policy evolved, or two runs on the same episode.")

side_by_side = st.toggle("Side by side: compare with a second checkpoint", key="replay_compare")
pick_columns = st.columns(2) if side_by_side else [st.container()]
picks = [ui.pick_checkpoint("replay", container=pick_columns[0])]
if picks[0] is None:
    st.stop()
if side_by_side:
    second = ui.pick_checkpoint("replay_b", label="Second run", container=pick_columns[1])
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


settings = st.columns([1, 3])
seed = settings[0].number_input("Episode seed", 0, MAX_SEED, min(max(int(url_number("seed", 0)), 0), MAX_SEED),
                                key="replay_seed",
                                help="Fixes the start state: the same seed is the same episode for every checkpoint.")
url_conditions = {name: url_number(name, spec.default) for name, spec in FACTORS.items()}
url_conditions = {name: value for name, value in url_conditions.items()
                  if not math.isclose(value, FACTORS[name].default)}
with settings[1].expander("Physics and observation noise" + (" (changed)" if url_conditions else ""),
                          expanded=bool(url_conditions), icon=":material/tune:"):
    sliders = st.columns(len(FACTORS))
    conditions = {}
    for column, spec in zip(sliders, FACTORS.values()):
        start = min(max(url_conditions.get(spec.name, spec.default), spec.low), spec.high)
        value = column.slider(spec.title, spec.low, spec.high, start, spec.step, key=f"replay_{spec.name}")
        if not math.isclose(value, spec.default):
            conditions[spec.name] = value
physics = {name: value for name, value in conditions.items() if name in PHYSICS_DEFAULTS}
noise = conditions.get(NOISE, 0.0)
if conditions:
    st.caption("Changed: " + ", ".join(f"{FACTORS[name].title} {value:g}" for name, value in conditions.items()))

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
    agent = ui.load_checkpoint(artifact)
    try:
        shown.append((run, artifact, agent, episode_for(artifact, agent)))
    except (ReplayError, OSError) as err:
        st.error(f"Cannot replay {artifact['path'].name} of {run['name']}: {err}")
        st.stop()

# ------------------------------------------------------------------------------------------------- videos


def video_panel(run: dict, artifact: dict, agent, episode) -> None:
    """The replay video (encoded once per checkpoint version and conditions, then cached on disk), its outcome
    and the downloads. Drawn after the scrubber, so the episode is on screen while the video encodes."""
    st.markdown(f"**{run['name']}** · {ui.checkpoint_label(artifact)}")
    try:
        with st.spinner("Encoding the video …"):
            video, _ = cached_video(agent, artifact["path"], seed, physics=physics, obs_noise=noise, episode=episode)
    except (ReplayError, OSError) as err:
        st.error(f"Cannot encode the replay of {artifact['path'].name}: {err}")
        return
    st.video(str(video), autoplay=True, loop=True, muted=True)
    st.caption(f"Return **{episode.total_return:.0f}** — {episode.outcome()}. {FPS} frames per second: real time.")
    downloads = st.columns(2)
    stem = f"{run['name']}-{artifact['path'].stem}-seed{seed}"
    downloads[0].download_button("MP4", video.read_bytes, f"{stem}.mp4", "video/mp4", icon=":material/download:",
                                 key=f"mp4_{video.name}", on_click="ignore", width="stretch")
    downloads[1].download_button("GIF", lambda: encode_gif(episode), f"{stem}.gif", "image/gif",
                                 icon=":material/download:", key=f"gif_{video.name}", on_click="ignore",
                                 width="stretch", help="320 px wide, 25 frames per second; made on click.")


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
        column.image(render_frame(episode, t), caption=f"{run['name']} · frame {t} of {episode.steps}",
                     width="stretch")
    st.plotly_chart(episode_trace_figure([(f"{run['name']} · {ui.checkpoint_label(artifact)}", episode)
                                          for run, artifact, _, episode in shown], cursor=step),
                    key="replay_trace")


if len(shown) == 1:
    left, right = st.columns(2, gap="large")
    with right:
        scrubber()  # first: the episode is on screen while the video encodes
    with left:
        video_panel(*shown[0])
else:
    panels = [column.container() for column in st.columns(len(shown), gap="large")]
    scrubber()
    for panel, replay in zip(panels, shown):
        with panel:
            video_panel(*replay)
ui.sidebar_active_runs()
