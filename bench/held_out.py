"""The held-out check: a trained agent's greedy return on episodes no evaluation during training used.

One plain ``gymnasium.make("CartPole-v1")`` per episode seed 2,000,000 + i, reset with that seed (the episode the
Replay page shows for it), all stepped together with one batched policy call a step. Only Gymnasium and NumPy, no
``cartpole_core``: ``bench/solve.py`` loads this file into another checkout's interpreter, so an agent trained
before a change and one trained after it are judged by the very same episodes.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import gymnasium
import numpy as np

HELD_OUT_EPISODE_SEEDS = range(2_000_000, 2_000_100)


def held_out_returns(act_batch: Callable[[np.ndarray], np.ndarray],
                     seeds: Sequence[int] = HELD_OUT_EPISODE_SEEDS) -> np.ndarray:
    """The greedy return of each episode seed; ``act_batch`` maps an (N, 4) batch of observations to N actions."""
    envs = [gymnasium.make("CartPole-v1") for _ in seeds]
    obs = np.stack([env.reset(seed=int(seed))[0] for env, seed in zip(envs, seeds)])
    returns = np.zeros(len(envs))
    playing = np.ones(len(envs), dtype=bool)
    while playing.any():
        indices = np.flatnonzero(playing)
        for index, action in zip(indices, act_batch(obs[indices])):
            obs[index], reward, terminated, truncated, _ = envs[index].step(int(action))
            returns[index] += reward
            playing[index] = not (terminated or truncated)
    for env in envs:
        env.close()
    return returns
