"""Greedy evaluation: K episodes on fixed seeds, stepped together in one vectorized CartPole.

"Solved" everywhere means mean return ≥ 475 over the 20 evaluation episodes, confirmed once: the first evaluation
that reaches it counts only if a second, larger one on other episodes (``CONFIRM_EPISODES`` from ``CONFIRM_SEED``)
reaches it too. A single lucky 20-episode evaluation is a noisy rule to stop training on.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
from gymnasium.utils.seeding import np_random

from cartpole_core.engine.envs import MAX_EPISODE_STEPS, SOLVED_RETURN, make_vec_env

EVAL_EPISODES = 20
EVAL_SEED = 1_000_003  # far from training seeds, so evaluation episodes are never training episodes
CONFIRM_EPISODES = 100
CONFIRM_SEED = 3_000_017  # far from training seeds, from EVAL_SEED and from the held-out checks' 2,000,000 + i

BatchPolicy = Callable[[np.ndarray], np.ndarray]


def evaluate_returns(policy: BatchPolicy, episodes: int = EVAL_EPISODES, seed: int = EVAL_SEED,
                     max_episode_steps: int = MAX_EPISODE_STEPS, **physics: float) -> np.ndarray:
    """Return of each of ``episodes`` greedy episodes; ``policy`` maps a (N, 4) batch to N actions."""
    env = make_vec_env(episodes, max_episode_steps=max_episode_steps, **physics)
    obs, _ = env.reset(seed=seed)
    returns = np.zeros(episodes)
    running = np.ones(episodes, dtype=bool)
    while running.any():
        obs, reward, terminated, truncated, _ = env.step(np.asarray(policy(obs), dtype=np.int64))
        returns += reward * running
        running &= ~(terminated | truncated)
    env.close()
    return returns


def is_solved(mean_return: float) -> bool:
    return mean_return >= SOLVED_RETURN


def evaluate_population_returns(policy: BatchPolicy, members: int, episodes: int = EVAL_EPISODES,
                                seed: int = EVAL_SEED) -> np.ndarray:
    """``evaluate_returns`` for several members at once, shape (members, episodes): every member plays the start
    states of ``evaluate_returns(…, seed)``; ``policy`` maps a (members, episodes, 4) batch to (members, episodes)
    actions."""
    env = make_vec_env(members * episodes)
    env.reset(seed=seed)
    cartpole = env.unwrapped
    starts = np_random(seed)[0].uniform(cartpole.low, cartpole.high, size=(4, episodes))  # as reset(seed=seed) draws
    cartpole.state = np.tile(starts, members)
    obs = cartpole.state.T.astype(np.float32)
    returns = np.zeros(members * episodes)
    running = np.ones(members * episodes, dtype=bool)
    while running.any():
        actions = policy(obs.reshape(members, episodes, -1))
        obs, reward, terminated, truncated, _ = env.step(np.asarray(actions, dtype=np.int64).reshape(-1))
        returns += reward * running
        running &= ~(terminated | truncated)
    env.close()
    return returns.reshape(members, episodes)


def confirms_solve(policy: BatchPolicy) -> bool:
    """The second look at a solved-looking evaluation: mean return ≥ 475 over ``CONFIRM_EPISODES`` other episodes."""
    return is_solved(float(evaluate_returns(policy, CONFIRM_EPISODES, CONFIRM_SEED).mean()))
