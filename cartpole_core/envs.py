"""Environment factory: single and vectorized CartPole-v1, with optional physics overrides.

Training and evaluation use Gymnasium's numpy-vectorized ``CartPoleVectorEnv`` (``gym.make_vec`` with
``vectorization_mode="vector_entry_point"``): one ``step`` advances every copy at the cost of about one
single-env step, which is what makes tabular Q-learning run at hundreds of thousands of steps per second.

The vector env auto-resets in ``NEXT_STEP`` mode: the step *after* an episode ends only resets that copy
(reward 0, the action is ignored). Loops must skip that transition — see ``prev_done`` in the algorithms.
"""

from __future__ import annotations

from typing import Any

import gymnasium as gym

ENV_ID = "CartPole-v1"
SOLVED_RETURN = 475.0
MAX_EPISODE_STEPS = 500
PHYSICS_DEFAULTS = {"gravity": 9.8, "masscart": 1.0, "masspole": 0.1, "length": 0.5, "force_mag": 10.0}


def apply_physics(env: Any, **overrides: float) -> None:
    """Change CartPole's physics in place (``length`` is half the pole's length, as in Gymnasium)."""
    unknown = set(overrides) - set(PHYSICS_DEFAULTS)
    if unknown:
        raise ValueError(f"unknown physics parameter(s) {sorted(unknown)}; allowed: {sorted(PHYSICS_DEFAULTS)}")
    core = env.unwrapped
    for name, value in overrides.items():
        if not value > 0:
            raise ValueError(f"physics {name} ({value}) must be positive")
        setattr(core, name, float(value))
    # Derived quantities the step function reads directly.
    core.total_mass = core.masspole + core.masscart
    core.polemass_length = core.masspole * core.length


def make_vec_env(n_envs: int, max_episode_steps: int = MAX_EPISODE_STEPS, render_mode: str | None = None,
                 **physics: float) -> gym.vector.VectorEnv:
    env = gym.make_vec(ENV_ID, num_envs=n_envs, vectorization_mode="vector_entry_point",
                       max_episode_steps=max_episode_steps, render_mode=render_mode)
    if physics:
        apply_physics(env, **physics)
    return env


def make_env(render_mode: str | None = None, **physics: float) -> gym.Env:
    env = gym.make(ENV_ID, render_mode=render_mode)
    if physics:
        apply_physics(env, **physics)
    return env
