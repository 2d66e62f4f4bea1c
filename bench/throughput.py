"""Tabular Q-learning throughput: env steps per second of training, against the seed's own loop, in one run.

    python bench/throughput.py [--steps 500000] [--reference /path/to/other/checkout [--rounds 5]] [--markdown]

Rows: the seed document's hot path (a ``KBinsDiscretizer`` fitted on every step, one ``gymnasium`` env), our loop
with one environment (the ``seed`` preset's settings), and our ``fast`` preset's 32 vectorized environments
trained past its first solve. Ratios are to the seed's loop measured in the same process, so a busy machine
shifts every row alike.

``--reference`` compares with another checkout of the lab (e.g. the commit before a refactoring): the ``fast``
preset's run of each, in a fresh interpreter of its own checkout, in turn for ``--rounds`` rounds; the table adds
their medians and the ratio ours / reference.
"""

from __future__ import annotations

import argparse
import json
import math
import statistics
import subprocess
import sys
import time
from pathlib import Path

if not __package__:  # run as ``python bench/throughput.py``: make the repo root importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import gymnasium as gym
import numpy as np
from sklearn.preprocessing import KBinsDiscretizer

from cartpole_core.config.presets import preset_config
from cartpole_core.engine.train import train


def seed_loop_steps_per_s(steps: int) -> float:
    """The seed's training step, as written there: refit the discretizer for every observation."""
    n_bins = (6, 12)
    lower, upper = [-0.41887903, -math.radians(50)], [0.41887903, math.radians(50)]

    def discretize(obs: np.ndarray) -> tuple[int, ...]:
        est = KBinsDiscretizer(n_bins=n_bins, encode="ordinal", strategy="uniform")
        est.fit([lower, upper])
        return tuple(map(int, est.transform([[obs[2], obs[3]]])[0]))

    env = gym.make("CartPole-v1")
    q = np.zeros((*n_bins, 2))
    rng = np.random.default_rng(0)
    obs, _ = env.reset(seed=0)
    state = discretize(obs)
    started = time.perf_counter()
    for _ in range(steps):
        action = int(rng.integers(2)) if rng.random() < 0.1 else int(np.argmax(q[state]))
        obs, reward, terminated, truncated, _ = env.step(action)
        new_state = discretize(obs)
        q[state][action] = 0.9 * q[state][action] + 0.1 * (reward + np.max(q[new_state]))
        state = new_state
        if terminated or truncated:
            obs, _ = env.reset()
            state = discretize(obs)
    return steps / (time.perf_counter() - started)


def ours_steps_per_s(preset: str, steps: int) -> float:
    config = preset_config("qlearning", preset, total_env_steps=steps, max_episodes=None, stop_on_solve=False,
                           eval_every_steps=steps)
    return train(config, seed=0)[1].env_steps_per_s


# The fast preset's run in a fresh interpreter of a checkout, which may predate the layering of cartpole_core.
_STEPS_PER_S_IN_CHECKOUT = """
import json, sys
sys.path.insert(0, sys.argv[1])
try:
    from cartpole_core.config.presets import preset_config
    from cartpole_core.engine.train import train
except ModuleNotFoundError:  # a checkout from before cartpole_core was grouped by layer
    from cartpole_core.presets import preset_config
    from cartpole_core.training import train
steps = int(sys.argv[2])
config = preset_config("qlearning", "fast", total_env_steps=steps, max_episodes=None, stop_on_solve=False,
                       eval_every_steps=steps)
print(json.dumps(train(config, seed=0)[1].env_steps_per_s))
"""


def steps_per_s_in_checkout(root: Path, steps: int) -> float:
    done = subprocess.run([sys.executable, "-c", _STEPS_PER_S_IN_CHECKOUT, str(root), str(steps)], cwd=root,
                          capture_output=True, text=True, check=True)
    return float(json.loads(done.stdout.strip().splitlines()[-1]))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=500_000, help="env steps for our vectorized run")
    parser.add_argument("--reference", type=Path, default=None, metavar="CHECKOUT",
                        help="another checkout of the lab to compare the fast preset's run with, in turn")
    parser.add_argument("--rounds", type=int, default=5, help="with --reference: runs of each checkout")
    parser.add_argument("--markdown", action="store_true", help="print a GitHub markdown table")
    args = parser.parse_args(argv)
    if args.steps < 10_000:
        parser.error("--steps must be at least 10000")
    if args.reference is not None and not (args.reference / "cartpole_core").is_dir():
        parser.error(f"--reference: {args.reference} is not a checkout of the lab (no cartpole_core/ in it)")
    if args.rounds < 1:
        parser.error("--rounds must be at least 1")

    rows = [
        ("seed's loop (refit per step, 1 env)", seed_loop_steps_per_s(3_000)),
        ("ours, 1 env (seed preset)", ours_steps_per_s("seed", 50_000)),
        ("ours, 32 envs (fast preset)", ours_steps_per_s("fast", args.steps)),
    ]
    if args.reference is not None:
        root, reference = Path(__file__).resolve().parents[1], args.reference.resolve()
        ours, theirs = [], []
        for _ in range(args.rounds):
            ours.append(steps_per_s_in_checkout(root, args.steps))
            theirs.append(steps_per_s_in_checkout(reference, args.steps))
        rows += [(f"ours, fast, fresh process (median of {args.rounds})", statistics.median(ours)),
                 (f"reference checkout, same (median of {args.rounds})", statistics.median(theirs))]
    baseline = rows[0][1]
    if args.markdown:
        print("| loop | env steps/s | × seed's loop |\n|---|---:|---:|")
        for name, rate in rows:
            print(f"| {name} | {rate:,.0f} | {rate / baseline:,.1f} |")
    else:
        for name, rate in rows:
            print(f"{name:50} {rate:>12,.0f} steps/s  {rate / baseline:>8,.1f}×")
    if args.reference is not None:
        print(f"{'- ' if args.markdown else ''}ours / reference, fast preset: "
              f"{statistics.median(ours) / statistics.median(theirs):.2f}× (rounds: "
              + ", ".join(f"{a / b:.2f}" for a, b in zip(ours, theirs)) + ")")
    return 0


if __name__ == "__main__":
    sys.exit(main())
