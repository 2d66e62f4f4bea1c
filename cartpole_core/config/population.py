"""Which runs may train together as one population, and how queued runs are split into populations.

A population is N runs trained in one process with their weights stacked on a member axis (``engine.population``).
Members must agree on every field that gives a tensor its shape or the loop its rhythm (``SHAPE_FIELDS``); every
other field — learning rates and schedules, γ, λ, clip range, coefficients, budget, evaluation, stopping — is each
member's own. Import-light: the dispatcher plans populations without loading the engine.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

from cartpole_core.config.models import TrainConfig

# The fields that fix a tensor's shape or the loop's rhythm: members of one population must agree on them.
SHAPE_FIELDS: dict[str, tuple[str, ...]] = {
    "ppo": ("hidden_sizes", "activation", "shared_network", "n_envs", "rollout_steps", "minibatch_size", "epochs",
            "max_episode_steps"),
    "dqn": ("hidden_sizes", "activation", "n_envs", "buffer_size", "batch_size", "train_freq", "gradient_steps",
            "learning_starts", "max_episode_steps"),
    "qlearning": ("bins", "n_envs", "max_episode_steps"),
}
BATCHED_ALGOS = ("dqn", "ppo", "qlearning")  # their loop trains a population batched
POPULATION_MAX = 64  # members of one population (the memory of 64 PPO `fast` members: see docs/BENCHMARKS.md)


def population_key(config: TrainConfig) -> tuple[Any, ...]:
    """Configs with equal keys can train as one population: the algorithm and its shape fields."""
    return (config.algo, *(_hashable(getattr(config, name)) for name in SHAPE_FIELDS[config.algo]))


def _hashable(value: Any) -> Any:
    return tuple(value) if isinstance(value, list) else value


def plan_populations(queued: Sequence[tuple[str, TrainConfig | None]], slots: int) -> list[list[str]]:
    """Queued runs (id and config, oldest first; None for a config that cannot be read) as at most ``slots``
    populations, one per free worker: runs that may train together (a batched algorithm, equal keys) are grouped,
    oldest group first, at most ``POPULATION_MAX`` each; spare slots split the largest groups, so every core trains.
    Runs left out wait for the next free slot."""
    if slots <= 0:
        return []
    groups: dict[Any, list[str]] = {}
    for run_id, config in queued:
        key = population_key(config) if config is not None and config.algo in BATCHED_ALGOS else run_id
        groups.setdefault(key, []).append(run_id)
    populations = [members[:POPULATION_MAX] for members in list(groups.values())[:slots]]
    while len(populations) < slots:
        largest = max(range(len(populations)), key=lambda index: len(populations[index]), default=None)
        if largest is None or len(populations[largest]) < 2:
            break
        members = populations.pop(largest)
        half = math.ceil(len(members) / 2)
        populations[largest:largest] = [members[:half], members[half:]]
    return populations
