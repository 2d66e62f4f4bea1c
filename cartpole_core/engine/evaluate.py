"""Greedy evaluation: K episodes on fixed seeds, stepped together (``envs.advance`` on a (4, K) state).

"Solved" everywhere means mean return ≥ 475 over the 20 evaluation episodes, confirmed once: the first evaluation
that reaches it counts only if a second, larger one on other episodes (``CONFIRM_EPISODES`` from ``CONFIRM_SEED``)
reaches it too. A single lucky 20-episode evaluation is a noisy rule to stop training on.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
from gymnasium.utils.seeding import np_random

from cartpole_core.engine.envs import MAX_EPISODE_STEPS, SOLVED_RETURN, LeanCartPole, advance, apply_physics

EVAL_EPISODES = 20
EVAL_SEED = 1_000_003  # far from training seeds, so evaluation episodes are never training episodes
CONFIRM_EPISODES = 100
CONFIRM_SEED = 3_000_017  # far from training seeds, from EVAL_SEED and from the held-out checks' 2,000,000 + i

BatchPolicy = Callable[[np.ndarray], np.ndarray]


def evaluate_returns(policy: BatchPolicy, episodes: int = EVAL_EPISODES, seed: int = EVAL_SEED,
                     max_episode_steps: int = MAX_EPISODE_STEPS, **physics: float) -> np.ndarray:
    """Return of each of ``episodes`` greedy episodes; ``policy`` maps a (N, 4) batch to N actions. The episodes
    start where a vectorized CartPole's ``reset(seed=seed)`` puts its copies."""
    return _play(policy, start_states(episodes, seed), (episodes,), max_episode_steps, **physics)


def is_solved(mean_return: float) -> bool:
    return mean_return >= SOLVED_RETURN


def evaluate_population_returns(policy: BatchPolicy, members: int, episodes: int = EVAL_EPISODES,
                                seed: int = EVAL_SEED) -> np.ndarray:
    """``evaluate_returns`` for several members at once, shape (members, episodes): every member plays the start
    states of ``evaluate_returns(…, seed)``; ``policy`` maps a (members, episodes, 4) batch to (members, episodes)
    actions."""
    starts = np.tile(start_states(episodes, seed), members)
    return _play(policy, starts, (members, episodes), MAX_EPISODE_STEPS).reshape(members, episodes)


def start_states(episodes: int, seed: int) -> np.ndarray:
    """The (4, episodes) start states a vectorized CartPole's ``reset(seed=seed)`` draws."""
    return np_random(seed)[0].uniform(-0.05, 0.05, size=(4, episodes))


def _play(policy: BatchPolicy, starts: np.ndarray, batch: tuple[int, ...], max_episode_steps: int,
          **physics: float) -> np.ndarray:
    """Play one episode from each column of ``starts`` (4, K) greedily, all stepped together, the policy seeing the
    observations as a ``(*batch, 4)`` array; their returns (K,).
    Each episode is played once (no resets); a finished one is masked until every one has finished."""
    core = LeanCartPole(num_envs=starts.shape[1], max_episode_steps=max_episode_steps)
    if physics:
        apply_physics(core, **physics)
    state, returns = starts, np.zeros(starts.shape[1])
    running = np.ones(starts.shape[1], dtype=bool)
    for _ in range(max_episode_steps):
        actions = policy(state.T.astype(np.float32).reshape(*batch, -1))
        state, fell = advance(core, state, np.asarray(actions, dtype=np.int64).reshape(-1))
        returns += running
        running &= ~fell
        if not running.any():
            break
    return returns
