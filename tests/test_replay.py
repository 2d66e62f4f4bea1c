"""Replays: greedy rollouts, their frames and overlays, MP4/GIF files, the cached video, checkpoint choice, the
``replay`` command and the Replay page — all with real agents, real encoders and real decoders."""

import io
import json
import math
import os
import re

import gymnasium as gym
import imageio_ffmpeg
import numpy as np
import pytest
import torch
from app_support import app, figure, shown, trained_group
from PIL import Image
from test_cli import run_cli

from cartpole_core.cli import main
from cartpole_core.config.presets import preset_config
from cartpole_core.engine.agent import PPOAgent, QTableAgent, load_agent, save_checkpoint
from cartpole_core.engine.envs import CONDITIONS, PHYSICS_DEFAULTS, SOLVED_RETURN, ConditionError, make_env
from cartpole_core.engine.train import train
from cartpole_core.runs.store import RunStore
from cartpole_core.watch import replay
from cartpole_core.watch.replay import (
    ACTION_NAMES,
    MIN_TEXT_PX,
    OVERLAY_VERSION,
    ReplayError,
    cached_side_by_side,
    cached_video,
    choose_checkpoint,
    encode_gif,
    encode_mp4,
    encode_side_by_side,
    frame_size,
    overlay_lines,
    overlay_text_size,
    render_frame,
    replay_key,
    rollout,
    side_by_side_frame,
    slug,
)

HEIGHT, WIDTH = 400, 600


# ------------------------------------------------------------------------------------------------- fixtures


@pytest.fixture(scope="module")
def solver():
    """Tabular Q-learning, fast preset: solves CartPole in a fraction of a second."""
    agent, result = train(preset_config("qlearning", "fast"), seed=0)
    assert result.final_eval_mean >= SOLVED_RETURN
    return agent


@pytest.fixture(scope="module")
def solved(solver):
    """The solver's first episode (from episode seed 0 on) that lasts the full 500 steps."""
    return next(episode for episode in (rollout(solver, seed) for seed in range(20)) if episode.steps == 500)


@pytest.fixture(scope="module")
def untrained():
    """All-zero Q-table: always pushes left, the pole falls after a few steps."""
    return QTableAgent(preset_config("qlearning", "fast"))


@pytest.fixture(scope="module")
def ppo_agent():
    """A real (freshly initialised) PPO actor-critic: its action values are probabilities."""
    torch.manual_seed(0)
    return PPOAgent(preset_config("ppo", "fast"))


@pytest.fixture(scope="module")
def lab(tmp_path_factory):
    """A data home with two stored Q-learning runs, each with periodic, best and final checkpoints."""
    folder = tmp_path_factory.mktemp("lab")
    run_ids = trained_group(folder, seeds=(1, 0))  # the newest run (the default) balances longest
    return folder, run_ids


@pytest.fixture
def lab_home(lab, monkeypatch):
    monkeypatch.setenv("CARTPOLE_LAB_HOME", str(lab[0]))
    return lab


def decode(path) -> tuple[dict, list[np.ndarray]]:
    reader = imageio_ffmpeg.read_frames(str(path))
    meta = next(reader)
    width, height = meta["size"]
    return meta, [np.frombuffer(data, dtype=np.uint8).reshape(height, width, 3) for data in reader]


def artifact(folder, run_id, kind):
    return next(a for a in RunStore(folder).artifacts(run_id) if a["kind"] == kind)


# --------------------------------------------------------------------------------------------------- frames


def test_frames_have_the_environments_shape_and_equal_what_gym_renders(solved):
    env = make_env(render_mode="rgb_array")
    env.reset(seed=0)
    reference = env.render()
    env.close()
    assert reference.shape == (HEIGHT, WIDTH, 3) and reference.dtype == np.uint8
    for overlay in (False, True):
        frame = render_frame(solved, 0, overlay=overlay)
        assert frame.shape == reference.shape and frame.dtype == reference.dtype

    gym_env = gym.make("CartPole-v1", render_mode="rgb_array")  # replay the recorded actions in a plain env
    gym_env.reset(seed=solved.seed)
    checked = {0, 1, 137, solved.steps}
    for t in range(solved.steps + 1):
        if t in checked:
            np.testing.assert_array_equal(render_frame(solved, t, overlay=False), gym_env.render(), err_msg=f"t={t}")
        if t < solved.steps:
            gym_env.step(int(solved.actions[t]))
    gym_env.close()


def test_overlay_changes_only_the_text_box_and_the_preference_bar(solved):
    plain = render_frame(solved, 10, overlay=False)
    changed = np.any(render_frame(solved, 10) != plain, axis=2)
    scene = np.any(plain != 255, axis=2)  # cart, pole and track on the white background
    assert scene.any() and not (changed & scene).any()  # the overlay never hides the cart or the pole
    rows, cols = np.nonzero(changed)
    assert rows.min() >= 4 and rows.max() < HEIGHT // 2  # both overlays sit at the top
    bar_x0 = WIDTH - WIDTH // 4 - 10
    left, right = cols[cols < WIDTH // 2], cols[cols >= WIDTH // 2]
    assert left.size and left.min() >= 4  # the text box at the top left
    assert right.size and right.min() >= bar_x0  # the preference bar at the top right
    assert not changed[:, WIDTH // 2:bar_x0].any()  # nothing in between

    last_plain = render_frame(solved, solved.steps, overlay=False)
    last = np.any(render_frame(solved, solved.steps) != last_plain, axis=2)
    assert last[:, :WIDTH // 2].any() and not last[:, WIDTH // 2:].any()  # episode over: no action, no bar


def test_the_preference_bar_follows_the_action(solver):
    episode = rollout(solver, 0, max_steps=40)
    left_t = int(np.flatnonzero(episode.actions == 0)[0])
    right_t = int(np.flatnonzero(episode.actions == 1)[0])
    bar = (slice(10, 26), slice(WIDTH - WIDTH // 4 - 10, WIDTH - 10))
    red, blue = np.array([214, 39, 40]), np.array([31, 119, 180])
    left_bar, right_bar = render_frame(episode, left_t)[bar], render_frame(episode, right_t)[bar]
    # The Inspect page's colours: blue for pushing left, red for pushing right.
    assert np.all(left_bar == blue, axis=2).any() and not np.all(left_bar == red, axis=2).any()
    assert np.all(right_bar == red, axis=2).any() and not np.all(right_bar == blue, axis=2).any()


def test_every_overlay_character_has_a_glyph_in_the_overlay_font(solved, untrained, ppo_agent):
    """A character the font lacks is drawn as a box (this once hit the action arrows '←'/'→', and the dash '—')."""
    for size in (overlay_text_size(HEIGHT), MIN_TEXT_PX):
        font = replay._font(size)
        missing = bytes(font.getmask("\uffff"))
        episodes = [solved, rollout(untrained, 0), rollout(ppo_agent, 0)]
        text = "".join(line for episode in episodes for t in (0, episode.steps) for compact in (False, True)
                       for line in overlay_lines(episode, t, compact=compact))
        text += "run · final · ended at step 12"  # the side-by-side video's label strip
        boxes = {char for char in set(text) - {" "} if bytes(font.getmask(char)) == missing}
        assert not boxes, size


def text_rows(frame: np.ndarray, plain: np.ndarray, box: tuple[slice, slice]) -> list[int]:
    """Heights of the bands of rows holding dark text pixels inside ``box`` (the overlay's text box)."""
    text = np.any(frame[box] != plain[box], axis=2) & (frame[box].max(axis=2) < 110)
    rows = np.flatnonzero(text.any(axis=1))
    bands = np.split(rows, np.flatnonzero(np.diff(rows) > 1) + 1)
    return [int(band[-1] - band[0] + 1) for band in bands if band.size]


def test_half_size_overlay_text_stays_readable(solved):
    """The live view's clip is encoded at half size: its overlay is drawn after scaling, with a size floor, in a
    compact form (values left to the preference bar), instead of shrinking to 10-pixel text."""
    half = frame_size(0.5)
    assert half == (WIDTH // 2, HEIGHT // 2)
    frame, plain = render_frame(solved, 10, size=half), render_frame(solved, 10, size=half, overlay=False)
    assert frame.shape == (HEIGHT // 2, WIDTH // 2, 3)
    lines = overlay_lines(solved, 10, compact=True)
    assert lines == ["step 10 / 500", ACTION_NAMES[solved.actions[10]], "return 10"]
    bands = text_rows(frame, plain, (slice(0, HEIGHT // 4), slice(0, WIDTH // 4)))
    assert len(bands) == len(lines)
    # "step" and "push" from ascender to descender, "return 10" a digit's height: 9 pixels and more (the full-size
    # overlay scaled down to half gave 6 to 8, blurred).
    assert bands[0] >= 12 and min(bands) >= 9, bands
    left_of_bar = WIDTH // 2 - WIDTH // 8 - 10
    assert not np.any(frame[:, WIDTH // 4:left_of_bar] != plain[:, WIDTH // 4:left_of_bar])  # text box stays small
    assert OVERLAY_VERSION >= 4  # clips cached with the old, shrunken overlay are made again


# -------------------------------------------------------------------------------------------------- episodes


def test_same_seed_same_episode_and_the_start_is_gyms_reset_state(solver):
    first, again, other = rollout(solver, 5), rollout(solver, 5), rollout(solver, 6)
    for name in ("observations", "seen", "actions", "action_values", "rewards"):
        np.testing.assert_array_equal(getattr(first, name), getattr(again, name))
    assert (first.terminated, first.truncated) == (again.terminated, again.truncated)
    assert not np.array_equal(first.observations[0], other.observations[0])
    for seed in (0, 5, 6):
        start, _ = gym.make("CartPole-v1").reset(seed=seed)
        np.testing.assert_array_equal(rollout(solver, seed, max_steps=1).observations[0], start)


def test_a_solving_agent_balances_for_500_steps(solver, solved):
    assert sum(rollout(solver, seed).steps == 500 for seed in range(20)) >= 15  # mostly (it scored ≥ 475)
    assert solved.steps == 500 and solved.total_return == 500.0
    assert solved.truncated and not solved.terminated
    assert solved.observations.shape == (501, 4) and solved.action_values.shape == (500, 2)
    assert solved.outcome() == "balanced for all 500 steps"
    table = solved.state_table()
    assert list(table["return"][[0, 1, 250, 500]]) == [0, 1, 250, 500]
    assert table["action"][-1] == -1 and len(table["step"]) == 501


@pytest.mark.parametrize("which", ["solver", "ppo_agent"])
def test_recorded_values_are_what_the_agent_returns_and_actions_their_argmax(which, request):
    agent = request.getfixturevalue(which)
    episode = rollout(agent, 3)
    assert episode.value_kind == ("P" if which == "ppo_agent" else "Q")
    np.testing.assert_array_equal(episode.seen, episode.observations)  # no noise: it saw the true state
    for t in range(episode.steps):
        values = agent.action_values(episode.observations[t])
        np.testing.assert_array_equal(episode.action_values[t], values)
        assert episode.actions[t] == int(np.argmax(values))


@pytest.mark.parametrize("which", ["solver", "ppo_agent"])
def test_overlay_text_shows_step_action_values_and_return(which, request):
    agent = request.getfixturevalue(which)
    episode = rollout(agent, 0)
    fmt, name = ("{:.3f}", "P") if which == "ppo_agent" else ("{:.2f}", "Q")
    for t in sorted({0, 1, episode.steps // 2, episode.steps - 1}):
        left, right = agent.action_values(episode.observations[t])
        action = int(np.argmax([left, right]))
        lines = overlay_lines(episode, t)
        text = "\n".join(lines)
        assert lines[0] == f"step {t} / {episode.steps}" and lines[-1] == f"return {t}"  # 1 point per step so far
        assert f"{name}(left) {fmt.format(left)}" in text and f"{name}(right) {fmt.format(right)}" in text
        assert ACTION_NAMES[action] in text and ACTION_NAMES[1 - action] not in text
    last = overlay_lines(episode, episode.steps)
    assert any(line.startswith("episode over") for line in last)
    assert f"return {episode.steps}" in last


def test_the_last_frame_says_how_the_episode_ended(solved, untrained, solver):
    assert "episode over: time limit" in overlay_lines(solved, 500)
    fallen = rollout(untrained, 0)
    assert fallen.terminated and fallen.steps < 20 and set(fallen.actions) == {0}
    assert "episode over: terminated" in overlay_lines(fallen, fallen.steps)
    assert fallen.outcome() == f"the pole fell (or the cart left the track) after {fallen.steps} steps"
    cut = rollout(solver, 0, max_steps=30)
    assert cut.steps == 30 and not (cut.terminated or cut.truncated)
    assert "episode over: stopped" in overlay_lines(cut, 30)


def test_observation_noise_changes_what_the_agent_sees_reproducibly(solver):
    noisy, again = rollout(solver, 0, obs_noise=0.1), rollout(solver, 0, obs_noise=0.1)
    np.testing.assert_array_equal(noisy.seen, again.seen)
    assert not np.array_equal(noisy.seen[:-1], noisy.observations[:-1])
    for t in (0, noisy.steps - 1):  # it acted on what it saw, not on the true state
        values = solver.action_values(noisy.seen[t])
        np.testing.assert_array_equal(noisy.action_values[t], values)
        assert noisy.actions[t] == int(np.argmax(values))


def test_a_longer_pole_is_a_different_episode_and_picture(solver, solved):
    longer = rollout(solver, solved.seed, physics={"length": 1.0})
    assert longer.physics == {"length": 1.0}
    np.testing.assert_array_equal(longer.observations[0], solved.observations[0])  # same start
    n = min(longer.steps, solved.steps) + 1
    assert not np.array_equal(longer.observations[:n], solved.observations[:n])
    twin = rollout(solver, solved.seed)  # a default-physics episode whose frame 0 shows the same state
    assert not np.array_equal(render_frame(longer, 0, overlay=False), render_frame(twin, 0, overlay=False))


@pytest.mark.parametrize(("kwargs", "named"), [
    ({"physics": {"gravity": -1.0}}, "gravity (gravity) must be a number in [0.98, 98] m/s², got -1"),
    ({"physics": {"length": 0}}, "half pole length (length) must be a number in [0.05, 5] m, got 0"),
    ({"physics": {"length": 1e300}}, "half pole length (length) must be a number in [0.05, 5] m, got 1e+300"),
    ({"physics": {"force_mag": 1e308}}, "push force (force_mag) must be a number in [1, 100] N, got 1e+308"),
    ({"physics": {"masspole": float("nan")}}, "pole mass (masspole) must be a number in [0.01, 1] kg, got nan"),
    ({"physics": {"wind": 1.0}}, "unknown physics parameter 'wind'"),
    ({"obs_noise": -0.1}, "observation noise σ (obs_noise) must be a number in [0, 1] obs. units, got -0.1"),
    ({"obs_noise": "lots"}, "observation noise σ (obs_noise) must be a number in [0, 1] obs. units, got 'lots'"),
    ({"physics": {"length": True}}, "half pole length (length) must be a number in [0.05, 5] m, got True"),
    ({"seed": -1}, "got -1"),
    ({"seed": 2**31}, f"got {2**31}"),
    ({"seed": 1.5}, "got 1.5"),
    ({"max_steps": 0}, "max_steps must be in [1, 100000], got 0"),
])
def test_invalid_replay_input_names_the_value(untrained, kwargs, named):
    kwargs = {"seed": 0, **kwargs}
    error = ConditionError if "physics" in kwargs or "obs_noise" in kwargs else ReplayError
    with pytest.raises(error) as err:
        rollout(untrained, kwargs.pop("seed"), **kwargs)
    assert named in str(err.value)


def test_frame_index_outside_the_episode_is_rejected(untrained):
    episode = rollout(untrained, 0)
    for t in (-1, episode.steps + 1):
        with pytest.raises(ReplayError, match=rf"frame {t} is outside this episode; allowed: 0 … {episode.steps}"):
            render_frame(episode, t)
    with pytest.raises(ReplayError, match="GIF width must be in"):
        encode_gif(episode, width=10)
    with pytest.raises(ReplayError, match=r"GIF frame rate must be in \[1, 50\] per second, got 0"):
        encode_gif(episode, fps=0)


# ---------------------------------------------------------------------------------------------------- videos


def test_mp4_is_h264_yuv420p_with_one_frame_per_state(solved, tmp_path):
    path = tmp_path / "solved.mp4"
    data = encode_mp4(solved, path)
    assert path.read_bytes() == data
    meta, decoded = decode(path)
    assert meta["codec"] == "h264" and meta["pix_fmt"].startswith("yuv420p")
    assert meta["size"] == (WIDTH, HEIGHT) and meta["fps"] == 50
    assert len(decoded) == solved.steps + 1 == 501
    for t in (0, 250, 500):  # lossy, but it is the right picture
        error = np.abs(decoded[t].astype(int) - render_frame(solved, t).astype(int)).mean()
        assert error < 4, (t, error)


def test_half_rate_half_size_clip_still_plays_in_real_time(solved, tmp_path):
    # The live view's clip: every other frame at 25 fps (the same 4 s as 200 steps at 50 fps), half size.
    episode = solved
    path = tmp_path / "clip.mp4"
    encode_mp4(episode, path, every=2, scale=0.5)
    meta, decoded = decode(path)
    assert meta["fps"] == 25 and meta["size"] == (WIDTH // 2, HEIGHT // 2)
    assert len(decoded) == math.ceil((episode.steps + 1) / 2)
    with pytest.raises(ReplayError, match="every must be 1, 2, 5 or 10"):
        encode_mp4(episode, every=3)


def test_short_episodes_give_short_videos(untrained, solver, tmp_path):
    fallen = rollout(untrained, 0)
    weak = rollout(solver, 0, physics={"force_mag": 1.0, "gravity": 98.0})  # a tenth of the push, 10× gravity
    assert weak.terminated and weak.steps < 500
    for name, episode in (("fallen", fallen), ("weak", weak)):
        path = tmp_path / f"{name}.mp4"
        encode_mp4(episode, path)
        assert len(decode(path)[1]) == episode.steps + 1


def test_gif_is_animated_small_and_loops(untrained, tmp_path):
    episode = rollout(untrained, 0)
    path = tmp_path / "fallen.gif"
    encode_gif(episode, path)
    with Image.open(path) as gif:
        assert gif.format == "GIF" and gif.is_animated
        assert gif.n_frames == math.ceil((episode.steps + 1) / 2)  # every other step at 25 fps
        assert gif.size == (320, round(HEIGHT * 320 / WIDTH))
        assert gif.info["loop"] == 0 and gif.info["duration"] == 40


@pytest.mark.parametrize("end", ["low", "high"])
def test_the_extremes_of_the_allowed_physics_simulate_and_render(solver, end):
    physics = {name: getattr(spec, end) for name, spec in CONDITIONS.items() if name in PHYSICS_DEFAULTS}
    episode = rollout(solver, 0, physics=physics)
    assert episode.steps >= 1 and np.isfinite(episode.observations).all()
    for t in (0, episode.steps):
        frame = render_frame(episode, t, overlay=False)
        assert frame.shape == (HEIGHT, WIDTH, 3) and (frame != 255).any()  # the cart and pole are drawn
    assert not np.array_equal(render_frame(episode, 0, overlay=False), render_frame(rollout(solver, 0), 0,
                                                                                     overlay=False))


# ------------------------------------------------------------------------------------------- side by side


@pytest.fixture(scope="module")
def pair(solver, untrained):
    """A 60-step episode and an 11-step one (the untrained agent's pole falls), same seed."""
    return [rollout(solver, 0, max_steps=60), rollout(untrained, 0)], ["solver · final", "untrained · step-0"]


def test_side_by_side_frames_show_both_episodes_on_the_same_step(pair):
    (long, short), labels = pair
    assert short.steps < long.steps
    frame = side_by_side_frame(*pair, 5)
    strip = frame.shape[0] - HEIGHT
    assert frame.shape == (HEIGHT + strip, 2 * WIDTH + replay.PANEL_GAP_PX, 3) and strip > 0
    right = WIDTH + replay.PANEL_GAP_PX
    np.testing.assert_array_equal(frame[strip:, :WIDTH], render_frame(long, 5))
    np.testing.assert_array_equal(frame[strip:, right:], render_frame(short, 5))

    # After the short episode ends, its half holds its last frame (faded, its label strip changed) while the
    # other half plays on.
    ended = [side_by_side_frame(*pair, t) for t in (short.steps + 1, long.steps)]
    np.testing.assert_array_equal(ended[0][:, right:], ended[1][:, right:])
    assert not np.array_equal(ended[0][:, :WIDTH], ended[1][:, :WIDTH])
    last = side_by_side_frame(*pair, short.steps)
    assert not np.array_equal(last[:strip, right:], ended[0][:strip, right:])  # the strip says it has ended
    with pytest.raises(ReplayError, match=rf"frame 61 is outside these episodes; allowed: 0 … {long.steps}"):
        side_by_side_frame(*pair, 61)


def test_side_by_side_video_is_one_video_as_long_as_the_longer_episode(pair, tmp_path):
    (long, short), labels = pair
    path = cached_side_by_side(*pair, tmp_path)
    meta, decoded = decode(path)
    assert meta["size"] == (2 * WIDTH + replay.PANEL_GAP_PX, decoded[0].shape[0]) and meta["fps"] == 50
    assert len(decoded) == long.steps + 1
    strip = decoded[0].shape[0] - HEIGHT
    for t in (0, short.steps + 5, long.steps):  # each frame holds both episodes at the same step
        error = np.abs(decoded[t].astype(int) - side_by_side_frame(*pair, t).astype(int)).mean()
        assert error < 4, (t, error)
    assert np.abs(decoded[3][strip:, :WIDTH].astype(int) - render_frame(long, 3).astype(int)).mean() < 4
    before = path.stat().st_mtime_ns
    assert cached_side_by_side(*pair, tmp_path) == path and path.stat().st_mtime_ns == before  # made once
    assert cached_side_by_side([long, short], ["other", "labels"], tmp_path) != path
    with Image.open(io.BytesIO(encode_side_by_side(*pair, kind="gif", every=2, scale=320 / 600))) as gif:
        assert gif.n_frames == math.ceil((long.steps + 1) / 2) and gif.size[0] == 2 * 320 + replay.PANEL_GAP_PX


@pytest.mark.parametrize(("text", "expected"), [
    ("qlearning/fast · seed 0-final-seed3", "qlearning-fast-seed-0-final-seed3"),
    ("Émile's run #2 (v1.5)", "Emile-s-run-2-v1.5"),
    ("dqn_seed-1.best", "dqn_seed-1.best"),
    ("··· / ", "replay"),
    ("../../etc/passwd", "etc-passwd"),
])
def test_download_names_are_safe_slugs(text, expected):
    assert slug(text) == expected
    assert len(slug("x" * 500)) <= 120


# ------------------------------------------------------------------------------------------ the cached video


def test_cached_video_is_made_once_per_checkpoint_version_and_conditions(solver, tmp_path):
    checkpoint = save_checkpoint(solver, tmp_path / "final.pt")
    path, episode = cached_video(solver, checkpoint, 0, max_steps=40)
    assert episode.steps == 40
    np.testing.assert_array_equal(episode.observations, rollout(solver, 0, max_steps=40).observations)
    assert path.parent == tmp_path / "replays" and path.suffix == ".mp4"
    assert len(decode(path)[1]) == 41
    before = (path.read_bytes(), path.stat().st_mtime_ns)

    again, same = cached_video(solver, checkpoint, 0, max_steps=40)
    assert again == path
    assert (path.read_bytes(), path.stat().st_mtime_ns) == before  # not encoded again
    np.testing.assert_array_equal(same.observations, episode.observations)

    other_seed, _ = cached_video(solver, checkpoint, 1, max_steps=40)
    other_physics, _ = cached_video(solver, checkpoint, 0, max_steps=40, physics={"length": 1.0})
    gif, _ = cached_video(solver, checkpoint, 0, max_steps=40, kind="gif")
    assert len({path, other_seed, other_physics, gif}) == 4 and gif.suffix == ".gif"

    key = replay_key(checkpoint, 0, None, 0.0, 40, "mp4")
    assert key == path.name
    save_checkpoint(solver, checkpoint)  # training rewrote the checkpoint
    stat = checkpoint.stat()
    os.utime(checkpoint, ns=(stat.st_atime_ns, stat.st_mtime_ns + 1_000_000_000))
    assert replay_key(checkpoint, 0, None, 0.0, 40, "mp4") != key
    rewritten, _ = cached_video(solver, checkpoint, 0, max_steps=40)
    assert rewritten != path and rewritten.exists() and path.exists()

    with pytest.raises(ReplayError, match="mp4 or gif, got 'avi'"):
        cached_video(solver, checkpoint, 0, kind="avi")


# -------------------------------------------------------------------------------------- choosing checkpoints


def test_choose_checkpoint_by_name_on_a_stored_run(lab):
    folder, (run_id, _) = lab
    artifacts = RunStore(folder).artifacts(run_id)
    kinds = {a["kind"] for a in artifacts}
    assert kinds == {"periodic", "best", "final"}
    assert choose_checkpoint(artifacts)["kind"] == "final"
    assert choose_checkpoint(artifacts, "final")["path"].name == "final.pt"
    assert choose_checkpoint(artifacts, "best")["path"].name == "best.pt"
    periodic = [a for a in artifacts if a["kind"] == "periodic"][2]
    for name in (f"step-{periodic['env_steps']}", str(periodic["env_steps"]), periodic["path"].name):
        assert choose_checkpoint(artifacts, name) == periodic, name
    assert choose_checkpoint([a for a in artifacts if a["kind"] != "final"])["kind"] == "best"
    only_periodic = [a for a in artifacts if a["kind"] == "periodic"]
    assert choose_checkpoint(only_periodic) == max(only_periodic, key=lambda a: a["env_steps"])

    with pytest.raises(ReplayError) as err:
        choose_checkpoint(artifacts, "step-7")
    message = str(err.value)
    assert message.startswith("no checkpoint 'step-7'; this run has: ")
    assert all(name in message for name in ("final", "best", f"step-{periodic['env_steps']}"))
    with pytest.raises(ReplayError, match="no checkpoint yet"):
        choose_checkpoint([])


# ------------------------------------------------------------------------------------------- the command line


def replay_cli(capsys, *args: str) -> tuple[int, str, str]:
    code = main(["replay", *args])
    out, err = capsys.readouterr()
    return code, out, err


def test_cli_replay_writes_an_mp4_and_a_json_line(lab, tmp_path, capsys):
    folder, (run_id, _) = lab
    out = tmp_path / "videos" / "run.mp4"
    code, stdout, stderr = replay_cli(capsys, run_id, "--seed", "3", "--max-steps", "120", "--out", str(out),
                                      "--json", "--home", str(folder))
    assert code == 0, stderr
    summary = json.loads(stdout.strip().splitlines()[-1])
    expected = rollout(load_agent(artifact(folder, run_id, "final")["path"]), 3, max_steps=120)
    assert summary["checkpoint"] == "final.pt" and summary["seed"] == 3
    assert summary["steps"] == expected.steps and summary["return"] == expected.total_return
    assert summary["file"] == str(out) and summary["bytes"] == out.stat().st_size
    assert len(decode(out)[1]) == expected.steps + 1

    gif = tmp_path / "best.gif"
    code, stdout, stderr = replay_cli(capsys, run_id, "--checkpoint", "best", "--physics", "length=1.0",
                                      "--max-steps", "40", "--out", str(gif), "--home", str(folder))
    assert code == 0, stderr
    assert "best.pt" in stdout and str(gif) in stdout
    expected = rollout(load_agent(artifact(folder, run_id, "best")["path"]), 0, physics={"length": 1.0},
                       max_steps=40)
    with Image.open(gif) as image:
        assert image.n_frames == math.ceil((expected.steps + 1) / 2)


def test_replay_command_runs_as_a_user_runs_it(lab, tmp_path):
    folder, (run_id, _) = lab
    out = tmp_path / "replay.mp4"
    result = run_cli("replay", run_id, "--checkpoint", "best", "--seed", "2", "--max-steps", "30", "--out", str(out),
                     "--json", home=folder)
    assert result.returncode == 0, result.stderr
    summary = json.loads(result.stdout.strip().splitlines()[-1])
    assert summary["checkpoint"] == "best.pt" and summary["file"] == str(out)
    assert len(decode(out)[1]) == summary["steps"] + 1


@pytest.mark.parametrize(("args", "named"), [
    (["--out", "{tmp}/x.avi"], "--out must end in .mp4 or .gif, got"),
    (["--checkpoint", "step-7", "--out", "{tmp}/x.mp4"], "no checkpoint 'step-7'; this run has: "),
    (["--physics", "gravity=-1", "--out", "{tmp}/x.mp4"], "gravity (gravity) must be a number in [0.98, 98] m/s², "
                                                           "got -1"),
    (["--physics", "length=1e300", "--out", "{tmp}/x.mp4"], "half pole length (length) must be a number in "
                                                             "[0.05, 5] m, got 1e+300"),
    (["--physics", "force_mag=true", "--out", "{tmp}/x.mp4"], "push force (force_mag) must be a number in [1, 100] "
                                                               "N, got True"),
    (["--physics", "wind=3", "--out", "{tmp}/x.mp4"], "unknown physics parameter 'wind'"),
    (["--physics", "gravity=heavy", "--out", "{tmp}/x.mp4"], "gravity (gravity) must be a number in [0.98, 98] "
                                                              "m/s², got 'heavy'"),
    (["--physics", "gravity", "--out", "{tmp}/x.mp4"], "expects field=value"),
    (["--seed", "-1", "--out", "{tmp}/x.gif"], "--seed must be an integer from 0 to 2,147,483,647, got -1"),
    (["--obs-noise", "-0.5", "--out", "{tmp}/x.mp4"], "observation noise σ (obs_noise) must be a number in [0, 1] "
                                                       "obs. units, got -0.5"),
    (["--out", "{tmp}/x.mp4", "--max-steps", "0"], "--max-steps must be an integer from 1 to 100,000, got 0"),
    (["--seed", "abc", "--out", "{tmp}/x.mp4"], "--seed"),
])
def test_cli_replay_bad_input_exits_2_with_one_line_and_writes_nothing(lab, tmp_path, capsys, args, named):
    folder, (run_id, _) = lab
    args = [arg.replace("{tmp}", str(tmp_path)) for arg in args]
    code, stdout, stderr = replay_cli(capsys, run_id, *args, "--home", str(folder))
    assert code == 2
    lines = stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and named in lines[0], stderr
    assert stdout == "" and list(tmp_path.iterdir()) == []


def test_cli_replay_of_an_unknown_run_exits_2(lab, tmp_path, capsys):
    code, stdout, stderr = replay_cli(capsys, "nope", "--out", str(tmp_path / "x.mp4"), "--home", str(lab[0]))
    assert code == 2 and stdout == ""
    assert len(stderr.strip().splitlines()) == 1 and stderr.startswith("error: no run 'nope'")
    assert not (tmp_path / "x.mp4").exists()


# ------------------------------------------------------------------------------------------------- the page


def test_page_without_checkpoints_says_how_to_get_one(home):  # noqa: F811
    test = app("pages/replay.py")
    assert not test.exception
    assert any("No run has a checkpoint yet" in info.value for info in test.info)
    assert not test.get("video")


def trace_x(chart) -> list[list[int]]:
    return [trace["x"] for trace in figure(chart)["data"]]


def test_page_shows_the_video_a_scrubber_and_the_state_trace(lab_home, download_names):
    folder, run_ids = lab_home
    shown_id = RunStore(folder).list_runs()[0]["id"]  # newest first: the page's default
    test = app("pages/replay.py")
    assert not test.exception and not test.error
    assert len(test.get("video")) == 1
    expected = rollout(load_agent(artifact(folder, shown_id, "final")["path"]), 0)
    assert (shown_id, "final.pt", expected.steps) == (test.selectbox(key="replay.run").value, "final.pt",
                                                      test.slider(key="replay_frame").max)
    assert any(f"Return **{expected.total_return:.0f}**" in caption.value for caption in test.caption)
    name = RunStore(folder).get_run(shown_id)["name"]
    assert " " in name  # run names hold spaces (and "·", "/"): the files downloaded do not
    assert sorted(download_names) == [f"{slug(name)}-final-seed0.gif", f"{slug(name)}-final-seed0.mp4"]
    assert all(re.fullmatch(r"[A-Za-z0-9._-]+", download) for download in download_names)

    k = expected.steps // 2
    test.slider(key="replay_frame").set_value(k).run()
    assert not test.exception
    (image,) = test.get("image")
    assert [shown(caption) for caption in image.captions] == [
        f"{RunStore(folder).get_run(shown_id)['name']} · frame {k} of {expected.steps}"]
    spec = figure(test.get("plotly_chart")[0])
    assert all(x == list(range(expected.steps + 1)) for x in trace_x(test.get("plotly_chart")[0]))
    cart_position = next(trace for trace in spec["data"] if trace.get("showlegend", True))
    np.testing.assert_allclose(cart_position["y"], expected.observations[:, 0], atol=1e-5)
    assert any(shape.get("x0") == k == shape.get("x1") for shape in spec["layout"]["shapes"])  # the cursor


def test_page_link_selects_run_checkpoint_seed_and_physics(lab_home):
    folder, run_ids = lab_home
    store = RunStore(folder)
    other = next(run_id for run_id in run_ids if run_id != store.list_runs()[0]["id"])  # not the default run
    test = app("pages/replay.py", run=other, checkpoint="best.pt", seed="3", length="1.0")
    assert not test.exception and not test.error
    assert test.selectbox(key="replay.run").value == other
    assert test.number_input(key="replay_seed").value == 3
    assert test.number_input(key="replay_length").value == 1.0
    assert any("best evaluation" in markdown.value for markdown in test.markdown)
    assert any("Changed: half pole length (m) 1" in caption.value for caption in test.caption)
    expected = rollout(load_agent(artifact(folder, other, "best")["path"]), 3, physics={"length": 1.0})
    assert test.slider(key="replay_frame").max == expected.steps
    cart_position = figure(test.get("plotly_chart")[0])["data"][0]
    np.testing.assert_allclose(cart_position["y"], expected.observations[:, 0], atol=1e-5)
    assert len(test.get("video")) == 1


@pytest.fixture
def download_names(monkeypatch) -> list[str]:
    """The file names the pages' download buttons save under (AppTest has no runtime to serve the files from, so
    the buttons are watched as they are made)."""
    from streamlit.elements.widgets.button import ButtonMixin

    names, make = [], ButtonMixin.download_button

    def watched(self, label, data, file_name=None, *args, **kwargs):
        names.append(file_name)
        return make(self, label, data, file_name, *args, **kwargs)

    monkeypatch.setattr(ButtonMixin, "download_button", watched)
    return names


def test_side_by_side_shows_both_episodes_in_one_video(lab_home, download_names):
    folder, run_ids = lab_home
    test = app("pages/replay.py")
    first = test.selectbox(key="replay.run").value
    second = next(run_id for run_id in run_ids if run_id != first)
    test.session_state["replay_b.run"] = second  # the second picker, once it appears, shows the other run
    test.toggle(key="replay_compare").set_value(True).run()
    assert not test.exception and not test.error
    assert test.selectbox(key="replay_b.run").value == second
    assert len(test.get("video")) == 1  # one video: its two halves cannot drift apart as two players would
    names = [RunStore(folder).get_run(run_id)["name"] for run_id in (first, second)]
    images = test.get("image")
    assert [shown(image.captions[0]).rsplit(" · frame ", 1)[0] for image in images] == names
    spec = figure(test.get("plotly_chart")[0])
    assert [trace["name"] for trace in spec["data"] if trace.get("showlegend")] == \
        [f"{name} · final · {artifact(folder, run_id, 'final')['env_steps']:,} env steps"
         for name, run_id in zip(names, (first, second))]
    start, _ = gym.make("CartPole-v1").reset(seed=0)
    starts = [trace["y"][0] for trace in spec["data"] if trace.get("showlegend")]
    assert starts == pytest.approx([start[0]] * 2, abs=1e-5)
    episodes = [rollout(load_agent(artifact(folder, run_id, "final")["path"]), 0) for run_id in (first, second)]
    assert test.slider(key="replay_frame").max == max(episode.steps for episode in episodes)

    (made,) = (RunStore(folder).run_dir(first) / "replays").glob("side-by-side-seed0-*.mp4")
    meta, decoded = decode(made)
    assert meta["size"][0] == 2 * WIDTH + replay.PANEL_GAP_PX  # both episodes in every frame
    assert len(decoded) == max(episode.steps for episode in episodes) + 1
    stem = f"{slug(names[0])}-final-vs-{slug(names[1])}-final-seed0"
    assert set(download_names[-2:]) == {f"{stem}.mp4", f"{stem}.gif"}
def test_side_by_side_of_the_same_checkpoint_asks_for_another_instead_of_crashing(lab_home):
    test = app("pages/replay.py")
    test.toggle(key="replay_compare").set_value(True).run()  # both pickers default to the newest final checkpoint
    assert not test.exception
    assert len(test.get("video")) == 1
    assert any("same checkpoint" in info.value for info in test.info)


def test_page_link_with_an_unreadable_seed_falls_back_to_seed_0(lab_home):
    test = app("pages/replay.py", seed="abc")
    assert not test.exception
    assert test.number_input(key="replay_seed").value == 0


@pytest.mark.parametrize("seed, clamped", [("-1", 0), ("3000000000", 2**31 - 1)])
def test_page_link_with_an_out_of_range_seed_is_clamped(lab_home, seed, clamped):
    test = app("pages/replay.py", seed=seed)
    assert not test.exception
    assert test.number_input(key="replay_seed").value == clamped
