"""Replay speed: a 500-step replay ready to watch (rollout, render, encode) and the server time of one scrub.

    python bench/replay.py [--repeats 5] [--markdown]

Trains a PPO `fast` agent (solves, so its episodes run the full 500 steps), then times, median over repeats:
the rollout alone; rendering every frame (raw, and with the overlay); the whole MP4 (rollout + render + overlay
+ libx264 encode, what the Replay page waits for); the GIF download; and one scrub — what the page's fragment
does when the slider moves: render and overlay one frame, encode it as PNG (as st.image does), rebuild the state
trace with the cursor and validate it into a Plotly figure (as st.plotly_chart does).
Targets: replay ready ≤ 2 s, scrub ≤ 100 ms.
"""

from __future__ import annotations

import argparse
import io
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import torch  # noqa: E402

from cartpole_core.config.presets import preset_config  # noqa: E402
from cartpole_core.engine.train import train  # noqa: E402
from cartpole_core.figures.plots import episode_trace_figure  # noqa: E402
from cartpole_core.watch import replay  # noqa: E402


def timed(fn, repeats: int) -> tuple[float, object]:
    times, result = [], None
    for _ in range(repeats):
        replay.text_mask.cache_clear()  # every repeat draws its overlay text afresh, as a new replay would
        start = time.perf_counter()
        result = fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times), result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--markdown", action="store_true", help="print the table as Markdown")
    args = parser.parse_args()
    torch.set_num_threads(1)

    agent, _ = train(preset_config("ppo", "fast"), seed=0)
    episode = replay.rollout(agent, 0)
    replay.render_frame(episode, 0)  # pygame and the font load once per process, not per replay
    steps = episode.steps
    rows = []

    rollout_s, _ = timed(lambda: replay.rollout(agent, 0), args.repeats)
    rows.append(("rollout (greedy policy, no frames)", rollout_s, None))
    raw_s, _ = timed(lambda: [replay.render_frame(episode, t, overlay=False) for t in range(steps + 1)], args.repeats)
    rows.append((f"render {steps + 1} rgb_array frames", raw_s, None))
    over_s, _ = timed(lambda: [replay.render_frame(episode, t) for t in range(steps + 1)], args.repeats)
    rows.append((f"render {steps + 1} frames with overlay", over_s, None))
    with tempfile.TemporaryDirectory() as folder:
        out = Path(folder) / "replay.mp4"
        mp4_s, data = timed(lambda: replay.encode_mp4(replay.rollout(agent, 0), out), args.repeats)
        rows.append((f"**replay ready: rollout + render + H.264 MP4** ({len(data) // 1024} KB)", mp4_s, 2.0))
        gif_s, gif = timed(lambda: replay.encode_gif(episode), max(1, args.repeats // 2))
        rows.append((f"GIF download, 320 px, 25 fps ({len(gif) // 1024} KB)", gif_s, None))

    def scrub(t: int = steps // 2) -> None:
        import plotly.graph_objects as go
        from PIL import Image
        frame = replay.render_frame(episode, t)
        Image.fromarray(frame).save(io.BytesIO(), format="PNG")
        go.Figure(episode_trace_figure([("run", episode)], cursor=t)).to_json()

    scrub_s, _ = timed(scrub, args.repeats * 4)
    rows.append(("**scrub one frame: render + overlay + PNG + trace figure**", scrub_s, 0.1))

    if args.markdown:
        print("| step | median time | target |\n|---|---:|---:|")
        for name, seconds, target in rows:
            print(f"| {name} | {seconds * 1000:,.0f} ms | {'' if target is None else f'≤ {target * 1000:,.0f} ms'} |")
    else:
        print(f"{'step':70} {'median':>10} {'target':>10}")
        for name, seconds, target in rows:
            print(f"{name.replace('**', ''):70} {seconds * 1000:8,.0f} ms "
                  f"{'' if target is None else f'≤ {target * 1000:,.0f} ms':>10}")


if __name__ == "__main__":
    main()
