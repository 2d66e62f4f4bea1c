"""Replays: roll out a greedy policy, render ``rgb_array`` frames with overlays, encode H.264 MP4 and GIF.

A rollout records the states, actions and the agent's action values, not pixels: CartPole's frame is a pure
function of its 4-number state, so any frame is re-rendered on demand (scrubbing costs one render, and a 500-step
episode does not hold 360 MB of frames). Videos stream frames straight into ffmpeg (libx264, yuv420p — what
browsers play). The overlay on frame ``t`` describes the observation the agent saw at ``t``: the step, the action
it took there, its action values for that observation, and the return collected before it; it is drawn on the
frame at its final size, so a small clip's text stays readable. Two episodes compared are one video, side by side
on the same frame index: two players would start at different moments and drift apart.
"""

from __future__ import annotations

import functools
import hashlib
import io
import itertools
import json
import os
import re
import tempfile
import threading
import unicodedata
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from cartpole_core.config.models import OBS_NAMES
from cartpole_core.engine.envs import (
    MAX_EPISODE_STEPS,
    add_noise,
    check_obs_noise,
    check_physics,
    make_env,
    noise_generator,
)

os.environ.setdefault("SDL_VIDEODRIVER", "dummy")  # pygame renders off-screen; no display needed
os.environ.setdefault("SDL_AUDIODRIVER", "dummy")

FPS = 50  # CartPole's own render_fps: one second of video is 50 steps, real time
ACTION_NAMES = ("push left", "push right")
OVERLAY_VERSION = 4  # bump when the overlay's look (or the noise stream) changes, so cached videos are re-made
FRAME_WIDTH, FRAME_HEIGHT = 600, 400  # CartPole's rgb_array frame
MIN_TEXT_PX = 13  # overlay text size floor: a half-size clip would otherwise shrink it to an unreadable 10 px
COMPACT_BELOW_PX = 300  # frames lower than this get the compact overlay (step, action, return; values in the bar)
PANEL_GAP_PX = 4  # the grey divider between the two episodes of a side-by-side video
MAX_SLUG = 120


class ReplayError(ValueError):
    """Bad replay input (seed, max_steps, frame, output file). Bad physics or noise raise ``envs.ConditionError``,
    the one check (and message) the Robustness page shares."""


@dataclass
class Episode:
    """One greedy episode: ``observations[t]`` is the state at step t (t = 0 … steps), ``actions[t]`` and
    ``action_values[t]`` what the agent chose and returned for the observation it saw at t (t < steps)."""

    observations: np.ndarray  # (steps + 1, 4) true states
    seen: np.ndarray  # (steps + 1, 4) what the agent saw (observations plus noise, if any)
    actions: np.ndarray  # (steps,)
    action_values: np.ndarray  # (steps, 2)
    rewards: np.ndarray  # (steps,)
    terminated: bool
    truncated: bool
    seed: int
    value_kind: str  # "Q" for Q-values, "P" for action probabilities
    physics: dict[str, float] = field(default_factory=dict)
    obs_noise: float = 0.0

    @property
    def steps(self) -> int:
        return len(self.actions)

    @property
    def total_return(self) -> float:
        return float(self.rewards.sum())

    def return_before(self, t: int) -> float:
        return float(self.rewards[:t].sum())

    def outcome(self) -> str:
        if self.terminated:
            return f"the pole fell (or the cart left the track) after {self.steps} steps"
        if self.truncated:
            return f"balanced for all {self.steps} steps"
        return f"stopped after {self.steps} steps"

    def state_table(self) -> dict[str, np.ndarray]:
        """Per-step columns for a trace plot: step, the four state variables, action, values, return so far."""
        steps = np.arange(self.steps + 1)
        table = {"step": steps}
        for d, name in enumerate(OBS_NAMES):
            table[name] = self.observations[:, d]
        table["action"] = np.append(self.actions, -1)
        table["return"] = np.concatenate([[0.0], np.cumsum(self.rewards)])
        return table


def rollout(agent: Any, seed: int = 0, *, physics: dict[str, float] | None = None, obs_noise: float = 0.0,
            max_steps: int = MAX_EPISODE_STEPS) -> Episode:
    """Run the greedy policy for one episode on ``seed`` (same seed, same start state) and record it.

    ``obs_noise`` adds Gaussian noise (std) to what the agent sees, from ``envs.noise_generator(seed)``: the
    stream a robustness evaluation on this seed draws from. Physics and noise outside the ranges the Robustness
    page offers raise ``envs.ConditionError``.
    """
    if not isinstance(seed, (int, np.integer)) or not 0 <= int(seed) < 2**31:
        raise ReplayError(f"episode seed must be an integer in [0, 2**31), got {seed!r}")
    obs_noise = check_obs_noise(obs_noise)
    if not 1 <= int(max_steps) <= 100_000:
        raise ReplayError(f"max_steps must be in [1, 100000], got {max_steps!r}")
    physics = check_physics(physics)
    env = make_env(**physics)
    rng = noise_generator(int(seed))
    obs, _ = env.reset(seed=int(seed))
    observations, seen, actions, values, rewards = [obs], [], [], [], []
    terminated = truncated = False
    for _ in range(int(max_steps)):
        view = add_noise(obs, rng, obs_noise) if obs_noise else obs
        q = np.asarray(agent.action_values(view), dtype=np.float64)
        action = int(q.argmax())
        obs, reward, terminated, truncated, _ = env.step(action)
        seen.append(view)
        actions.append(action)
        values.append(q)
        rewards.append(reward)
        observations.append(obs)
        if terminated or truncated:
            break
    env.close()
    seen.append(observations[-1])
    kind = getattr(agent, "value_kind", "Q")
    return Episode(np.array(observations, dtype=np.float64), np.array(seen, dtype=np.float64),
                   np.array(actions, dtype=np.int64), np.array(values).reshape(-1, 2), np.array(rewards),
                   bool(terminated), bool(truncated), int(seed), kind, physics, float(obs_noise))


# ---------------------------------------------------------------------------------------------- rendering


class Renderer:
    """Renders CartPole states to (400, 600, 3) uint8 frames; thread-safe, reusable across episodes."""

    def __init__(self, physics: dict[str, float] | None = None):
        self.physics = check_physics(physics)
        self._env = make_env(render_mode="rgb_array", **self.physics)
        self._env.reset(seed=0)
        self._lock = threading.Lock()

    def frame(self, state: np.ndarray) -> np.ndarray:
        with self._lock:
            self._env.unwrapped.state = np.asarray(state, dtype=np.float64)
            return self._env.render()

    def close(self) -> None:
        self._env.close()


_renderers: dict[str, Renderer] = {}
_renderers_lock = threading.Lock()


def renderer_for(physics: dict[str, float] | None = None) -> Renderer:
    """A shared renderer per physics (only the pole length changes the picture, but keep them apart anyway)."""
    key = json.dumps(check_physics(physics), sort_keys=True)
    with _renderers_lock:
        if key not in _renderers:
            _renderers[key] = Renderer(physics)
        return _renderers[key]


def overlay_lines(episode: Episode, t: int, *, compact: bool = False) -> list[str]:
    """The text drawn on frame ``t``: step, the action taken there, the action values behind it, return so far.
    ``compact`` (small frames) leaves out the values, which the preference bar still shows, and shortens the
    ending, so the text can stay large enough to read."""
    if not 0 <= t <= episode.steps:
        raise ReplayError(f"frame {t} is outside this episode; allowed: 0 … {episode.steps}")
    lines = [f"step {t} / {episode.steps}"]
    ending = "terminated" if episode.terminated else "time limit" if episode.truncated else "stopped"
    if t < episode.steps:
        action = int(episode.actions[t])
        left, right = episode.action_values[t]
        name = "Q" if episode.value_kind == "Q" else "P"
        fmt = "{:.2f}" if episode.value_kind == "Q" else "{:.3f}"
        lines.append(ACTION_NAMES[action] if compact else f"action: {ACTION_NAMES[action]}")
        if not compact:
            lines.append(f"{name}(left) {fmt.format(left)}  {name}(right) {fmt.format(right)}")
    else:
        lines.append(ending if compact else f"episode over: {ending}")
    lines.append(f"return {episode.return_before(t):.0f}")
    return lines


def overlay_text_size(height: int) -> int:
    """Overlay font size (pixels) on a frame ``height`` pixels high: a twentieth of it, never below MIN_TEXT_PX."""
    return max(MIN_TEXT_PX, height // 20)


_font_cache: dict[int, Any] = {}
_glyph_cache: dict[tuple[int, str], tuple[np.ndarray, float]] = {}


def _font(size: int) -> Any:
    from PIL import ImageFont
    if size not in _font_cache:
        _font_cache[size] = ImageFont.load_default(size=size)
    return _font_cache[size]


def _glyph(size: int, char: str) -> tuple[np.ndarray, float]:
    """A character's coverage mask (line height × advance + overhang, 0–255) and its advance, drawn once."""
    key = (size, char)
    if key not in _glyph_cache:
        from PIL import Image, ImageDraw
        font = _font(size)
        advance = font.getlength(char)
        image = Image.new("L", (int(np.ceil(advance)) + 3, size + size // 3 + 2))
        ImageDraw.Draw(image).text((0, 0), char, fill=255, font=font)
        _glyph_cache[key] = (np.asarray(image, dtype=np.uint16), advance)
    return _glyph_cache[key]


@functools.lru_cache(maxsize=4096)
def text_mask(text: str, size: int) -> np.ndarray:
    """Coverage mask of one line of text, composed from cached glyphs: drawing text with PIL on every frame cost
    more than rendering the frame itself."""
    glyphs = [_glyph(size, char) for char in text]
    width = int(np.ceil(sum(advance for _, advance in glyphs))) + 4
    height = glyphs[0][0].shape[0] if glyphs else size
    mask = np.zeros((height, width), dtype=np.uint16)
    x = 0.0
    for glyph, advance in glyphs:
        left = int(round(x))
        w = min(glyph.shape[1], width - left)
        np.maximum(mask[:, left:left + w], glyph[:, :w], out=mask[:, left:left + w])
        x += advance
    return mask


def _blend(out: np.ndarray, y: int, x: int, mask: np.ndarray, color: tuple[int, int, int]) -> None:
    h, w = min(mask.shape[0], out.shape[0] - y), min(mask.shape[1], out.shape[1] - x)
    if h <= 0 or w <= 0:
        return
    alpha = mask[:h, :w, None]  # integer blending: float arrays cost more than the text itself
    region = out[y:y + h, x:x + w].astype(np.uint16)
    out[y:y + h, x:x + w] = ((region * (255 - alpha) + np.asarray(color, np.uint16) * alpha) // 255).astype(np.uint8)


def _box(out: np.ndarray, y0: int, x0: int, y1: int, x1: int, fill: tuple[int, int, int], opacity: float = 1.0,
         outline: tuple[int, int, int] | None = (120, 120, 120)) -> None:
    y1, x1 = min(y1, out.shape[0] - 1), min(x1, out.shape[1] - 1)
    region = out[y0:y1 + 1, x0:x1 + 1]
    if opacity >= 1.0:
        region[:] = fill
    else:
        keep = int(round(256 * (1 - opacity)))
        region[:] = ((region.astype(np.uint16) * keep + np.asarray(fill, np.uint16) * (256 - keep)) >> 8).astype(
            np.uint8)
    if outline is not None:
        region[[0, -1], :] = outline
        region[:, [0, -1]] = outline


def draw_overlay(frame: np.ndarray, lines: list[str], action: int | None = None,
                 values: np.ndarray | None = None, value_kind: str = "Q") -> np.ndarray:
    """Text box at the top left and a left/right preference bar at the top right, drawn into a copy. Drawn on the
    frame at its final size (text is sized by ``overlay_text_size``, not scaled with the picture)."""
    out = np.array(frame)  # writable copy
    height, width = frame.shape[:2]
    size = overlay_text_size(height)
    small = max(MIN_TEXT_PX - 2, size - 4)
    pad, line_h = 6, size + 4
    masks = [text_mask(line, size) for line in lines]
    box_w = min(width - 9, max(mask.shape[1] for mask in masks) + 2 * pad)
    box_h = min(height - 9, len(lines) * line_h + pad)
    _box(out, 4, 4, 4 + box_h, 4 + box_w, (255, 255, 255), opacity=0.85)
    for i, mask in enumerate(masks):
        _blend(out, 4 + pad // 2 + i * line_h, 4 + pad, mask, (20, 20, 20))
    if values is not None and action is not None:
        # Preference bar: share of "right" (the probability, or a logistic of Q(right) - Q(left)).
        v = np.asarray(values, dtype=np.float64)
        right = float(v[1]) if value_kind == "P" else float(1.0 / (1.0 + np.exp(np.clip(v[0] - v[1], -50, 50))))
        bar_w, bar_h = width // 4, size
        x0, y0 = width - bar_w - 10, 10
        _box(out, y0, x0, y0 + bar_h, x0 + bar_w, (230, 230, 230))
        split = x0 + int(round(bar_w * (1 - right)))
        # Blue for left, red for right, as on the Inspect page.
        if action == 1 and split < x0 + bar_w:
            _box(out, y0 + 1, split, y0 + bar_h - 1, x0 + bar_w - 1, (214, 39, 40), outline=None)
        elif action == 0 and split > x0:
            _box(out, y0 + 1, x0 + 1, y0 + bar_h - 1, split, (31, 119, 180), outline=None)
        _blend(out, y0 + bar_h + 2, x0, text_mask("left", small), (60, 60, 60))
        label = text_mask("right", small)
        _blend(out, y0 + bar_h + 2, x0 + bar_w - label.shape[1] + 4, label, (60, 60, 60))
    return out


def frame_size(scale: float = 1.0) -> tuple[int, int]:
    """(width, height) of a frame scaled by ``scale``, rounded to even numbers (H.264 in yuv420p needs them)."""
    if not 0.1 <= scale <= 2.0:
        raise ReplayError(f"video scale must be in [0.1, 2], got {scale!r}")
    return int(round(FRAME_WIDTH * scale / 2)) * 2, int(round(FRAME_HEIGHT * scale / 2)) * 2


def render_frame(episode: Episode, t: int, *, overlay: bool = True,
                 size: tuple[int, int] | None = None) -> np.ndarray:
    """Frame ``t`` of the episode (state after t steps), resized to ``size`` = (width, height) if given, then with
    the overlay unless ``overlay=False`` (drawn after resizing, so its text stays readable on small frames)."""
    overlay_lines(episode, t)  # validates t
    frame = renderer_for(episode.physics).frame(episode.observations[t])
    if size is not None and tuple(size) != (frame.shape[1], frame.shape[0]):
        from PIL import Image
        frame = np.asarray(Image.fromarray(frame).resize(tuple(size), Image.BILINEAR))
    if not overlay:
        return frame
    acting = t < episode.steps
    lines = overlay_lines(episode, t, compact=frame.shape[0] < COMPACT_BELOW_PX)
    return draw_overlay(frame, lines, int(episode.actions[t]) if acting else None,
                        episode.action_values[t] if acting else None, episode.value_kind)


def frames(episode: Episode, *, overlay: bool = True, every: int = 1,
           size: tuple[int, int] | None = None) -> Iterator[np.ndarray]:
    for t in range(0, episode.steps + 1, every):
        yield render_frame(episode, t, overlay=overlay, size=size)


# ------------------------------------------------------------------------------------------- side by side


def _label_strip(width: int, text: str, size: int, ended: bool) -> np.ndarray:
    """A band above a panel naming its episode: grey while it plays, amber once it has ended."""
    strip = np.full((size + 10 + size % 2, width, 3), (253, 230, 138) if ended else (243, 244, 246), dtype=np.uint8)
    _blend(strip, 4, 6, text_mask(text, size), (20, 20, 20))
    return strip


def side_by_side_frame(episodes: Sequence[Episode], labels: Sequence[str], t: int, *,
                       size: tuple[int, int] | None = None) -> np.ndarray:
    """Frame ``t`` of every episode, next to each other under their labels, so they play in lockstep. An episode
    shorter than ``t`` holds its last frame, faded, its label strip turned amber and saying when it ended."""
    if len(episodes) != len(labels) or not episodes:
        raise ReplayError(f"side by side needs one label per episode, got {len(episodes)} episodes and "
                          f"{len(labels)} labels")
    longest = max(episode.steps for episode in episodes)
    if not 0 <= t <= longest:
        raise ReplayError(f"frame {t} is outside these episodes; allowed: 0 … {longest}")
    panels = []
    for episode, label in zip(episodes, labels):
        ended = t > episode.steps
        frame = render_frame(episode, min(t, episode.steps), size=size)
        if ended:
            frame = (frame // 2 + 128).astype(np.uint8)  # faded towards white: this side is over
        text = f"{label} · ended at step {episode.steps}" if ended else label
        strip = _label_strip(frame.shape[1], text, overlay_text_size(frame.shape[0]), ended)
        panels.append(np.vstack([strip, frame]))
    divider = np.full((panels[0].shape[0], PANEL_GAP_PX, 3), 160, dtype=np.uint8)
    parts = [panels[0]]
    for panel in panels[1:]:
        parts += [divider, panel]
    return np.hstack(parts)


def side_by_side_frames(episodes: Sequence[Episode], labels: Sequence[str], *, every: int = 1,
                        size: tuple[int, int] | None = None) -> Iterator[np.ndarray]:
    for t in range(0, max(episode.steps for episode in episodes) + 1, every):
        yield side_by_side_frame(episodes, labels, t, size=size)


# ----------------------------------------------------------------------------------------------- encoding


def _check_every(every: int) -> int:
    if every not in (1, 2, 5, 10):
        raise ReplayError(f"every must be 1, 2, 5 or 10 (a whole frame rate), got {every!r}")
    return every


def _write_mp4(stream: Iterator[np.ndarray], path: str | os.PathLike | None, fps: int) -> bytes:
    """H.264 (libx264, yuv420p, faststart) MP4 of ``stream``'s frames (all of the first one's even size), written
    to ``path`` if given. Returns the bytes."""
    import imageio_ffmpeg

    first = next(stream)
    height, width = first.shape[:2]
    with tempfile.TemporaryDirectory() as folder:
        # Encoded beside the target when there is one (then renamed into place: readers never see half a file).
        out = Path(path).with_name(f".{Path(path).stem}.{os.getpid()}.part.mp4") if path is not None else \
            Path(folder) / "replay.mp4"
        out.parent.mkdir(parents=True, exist_ok=True)
        writer = imageio_ffmpeg.write_frames(str(out), (width, height), fps=fps, codec="libx264",
                                             pix_fmt_out="yuv420p", macro_block_size=2, quality=None,
                                             # One x264 thread: this process renders on the other core;
                                             # more threads fight the renderer and end later (bench/replay.py).
                                             output_params=["-preset", "veryfast", "-crf", "23", "-threads", "1",
                                                            "-movflags", "+faststart"])
        writer.send(None)
        for frame in itertools.chain([first], stream):
            writer.send(np.ascontiguousarray(frame))
        writer.close()
        data = out.read_bytes()
        if path is not None:
            os.replace(out, path)
    return data


def _write_gif(stream: Iterator[np.ndarray], path: str | os.PathLike | None, every: int) -> bytes:
    """An animated GIF of ``stream``'s frames, each shown for ``every`` steps of real time; loops forever."""
    from PIL import Image

    images = [Image.fromarray(frame).quantize(colors=64, method=Image.Quantize.MEDIANCUT, dither=Image.Dither.NONE)
              for frame in stream]
    buffer = io.BytesIO()
    images[0].save(buffer, format="GIF", save_all=True, append_images=images[1:], loop=0,
                   duration=int(1000 * every / FPS), optimize=False, disposal=1)
    data = buffer.getvalue()
    if path is not None:
        _write_atomic(Path(path), data)
    return data


def encode_mp4(episode: Episode, path: str | os.PathLike | None = None, *, every: int = 1, overlay: bool = True,
               scale: float = 1.0) -> bytes:
    """H.264 MP4 of every ``every``-th frame, ``scale`` times CartPole's 600 × 400, played in real time
    (50 / every fps); written to ``path`` if given. Returns the bytes."""
    every = _check_every(every)
    return _write_mp4(frames(episode, overlay=overlay, every=every, size=frame_size(scale)), path, FPS // every)


def encode_gif(episode: Episode, path: str | os.PathLike | None = None, *, width: int = 320, fps: int = 25,
               overlay: bool = True) -> bytes:
    """An animated GIF ``width`` pixels wide (Streamlit shows only the first frame of GIFs wider than the page,
    so keep it small), at ``fps`` (every other step at the default 25). Loops forever."""
    if not 64 <= width <= 1200:
        raise ReplayError(f"GIF width must be in [64, 1200] pixels, got {width}")
    if not 1 <= fps <= FPS:
        raise ReplayError(f"GIF frame rate must be in [1, {FPS}] per second, got {fps}")
    every = max(1, round(FPS / fps))
    size = (width, round(FRAME_HEIGHT * width / FRAME_WIDTH))
    return _write_gif(frames(episode, overlay=overlay, every=every, size=size), path, every)


def encode_side_by_side(episodes: Sequence[Episode], labels: Sequence[str], path: str | os.PathLike | None = None,
                        *, kind: str = "mp4", every: int = 1, scale: float = 1.0) -> bytes:
    """One video of the episodes next to each other (``side_by_side_frame``): two ``st.video`` elements start
    at different moments, one video's halves cannot drift apart. As long as the longest episode; MP4 or GIF."""
    if kind not in ("mp4", "gif"):
        raise ReplayError(f"video format must be mp4 or gif, got {kind!r}")
    every = _check_every(every)
    stream = side_by_side_frames(episodes, labels, every=every, size=frame_size(scale))
    return _write_mp4(stream, path, FPS // every) if kind == "mp4" else _write_gif(stream, path, every)


def _write_atomic(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_bytes(data)
    os.replace(tmp, path)


def slug(text: str, fallback: str = "replay") -> str:
    """``text`` as a safe file name part: ASCII letters, digits, ``-``, ``_`` and ``.`` only (run names hold
    spaces, ``/`` and ``·``, which downloads, shells and some file systems mangle); accents lose their marks."""
    ascii_text = unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode()
    cleaned = re.sub(r"[^A-Za-z0-9._-]+", "-", ascii_text)
    cleaned = re.sub(r"-{2,}", "-", cleaned)[:MAX_SLUG].strip("-._")
    return cleaned or fallback


# -------------------------------------------------------------------------------------- cached replay files


def replay_key(checkpoint: Path, seed: int, physics: dict[str, float] | None, obs_noise: float,
               max_steps: int, kind: str, scale: float = 1.0, every: int = 1) -> str:
    """A file name for a replay of this checkpoint version and these conditions (checkpoints can be rewritten)."""
    stat = checkpoint.stat()
    blob = json.dumps([checkpoint.name, stat.st_mtime_ns, stat.st_size, int(seed), check_physics(physics),
                       float(obs_noise), int(max_steps), float(scale), int(every), OVERLAY_VERSION], sort_keys=True)
    digest = hashlib.sha1(blob.encode()).hexdigest()[:12]
    return f"{checkpoint.stem}-seed{int(seed)}-{digest}.{kind}"


def cached_video(agent: Any, checkpoint: Path, seed: int = 0, *, physics: dict[str, float] | None = None,
                 obs_noise: float = 0.0, max_steps: int = MAX_EPISODE_STEPS, kind: str = "mp4", scale: float = 1.0,
                 every: int = 1, folder: Path | None = None, episode: Episode | None = None) -> tuple[Path, Episode]:
    """The episode (rolled out unless given) and its replay video under ``<run dir>/replays/``, encoded only if
    not there yet: the rollout is cheap, the encoding is not."""
    if kind not in ("mp4", "gif"):
        raise ReplayError(f"video format must be mp4 or gif, got {kind!r}")
    folder = folder or checkpoint.parent / "replays"
    path = folder / replay_key(checkpoint, seed, physics, obs_noise, max_steps, kind, scale, every)
    if episode is None:
        episode = rollout(agent, seed, physics=physics, obs_noise=obs_noise, max_steps=max_steps)
    if not path.exists():
        if kind == "mp4":
            encode_mp4(episode, path, scale=scale, every=every)
        else:
            encode_gif(episode, path, width=int(320 * scale))
    return path, episode


def side_by_side_key(episodes: Sequence[Episode], labels: Sequence[str], kind: str = "mp4", every: int = 1,
                     scale: float = 1.0) -> str:
    """A file name for a side-by-side video of exactly these episodes (their recorded states, actions and values:
    what the frames show) under these labels."""
    digest = hashlib.sha1()
    for episode in episodes:
        for array in (episode.observations, episode.actions, episode.action_values):
            digest.update(np.ascontiguousarray(array).tobytes())
        digest.update(json.dumps([episode.value_kind, episode.physics], sort_keys=True).encode())
    digest.update(json.dumps([list(labels), kind, int(every), float(scale), OVERLAY_VERSION]).encode())
    seeds = "-".join(dict.fromkeys(str(episode.seed) for episode in episodes))
    return f"side-by-side-seed{seeds}-{digest.hexdigest()[:12]}.{kind}"


def cached_side_by_side(episodes: Sequence[Episode], labels: Sequence[str], folder: Path, *, kind: str = "mp4",
                        every: int = 1, scale: float = 1.0) -> Path:
    """The side-by-side video of these episodes in ``folder`` (e.g. the first run's ``replays/``), encoded only
    if not there yet."""
    path = Path(folder) / side_by_side_key(episodes, labels, kind, every, scale)
    if not path.exists():
        encode_side_by_side(episodes, labels, path, kind=kind, every=every, scale=scale)
    return path


# ------------------------------------------------------------------------------------- choosing checkpoints


def choose_checkpoint(artifacts: list[dict[str, Any]], name: str | None = None) -> dict[str, Any]:
    """The stored checkpoint called ``name``: ``final``, ``best``, ``step-N`` / ``N`` (a periodic one at N env
    steps) or a file name; without a name the final one, else the best, else the latest periodic."""
    if not artifacts:
        raise ReplayError("this run has no checkpoint yet (checkpoints are saved during training and at its end)")

    def label(a: dict[str, Any]) -> str:
        return a["kind"] if a["kind"] in ("final", "best") else f"step-{a['env_steps']}"

    available = ", ".join(dict.fromkeys(label(a) for a in artifacts))
    if name is None:
        for kind in ("final", "best"):
            found = [a for a in artifacts if a["kind"] == kind]
            if found:
                return found[-1]
        return max(artifacts, key=lambda a: a["env_steps"])
    wanted = name.strip()
    steps = wanted.removeprefix("step-").replace("_", "").replace(",", "")
    for a in reversed(artifacts):
        periodic_match = a["kind"] == "periodic" and steps.isdigit() and int(steps) == a["env_steps"]
        if wanted == a["kind"] != "periodic" or wanted == Path(a["path"]).name or periodic_match:
            return a
    raise ReplayError(f"no checkpoint {name!r}; this run has: {available}")
