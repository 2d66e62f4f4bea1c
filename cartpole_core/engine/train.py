"""``train(config, seed, ...)``: one run from (config, seed); ``train_population``: many runs in one process.

The only module that imports the algorithm loops (``engine.algos``); the bookkeeping around them is ``engine.run``,
what members of a population share is ``engine.population``.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from cartpole_core.config.models import TrainConfig
from cartpole_core.engine.agent import Agent
from cartpole_core.engine.population import MemberFailed, MemberGuard, check_population
from cartpole_core.engine.run import Run, RunObserver
from cartpole_core.records import RunResult

MemberOutcome = tuple[Agent, RunResult] | MemberFailed


def train(config: TrainConfig, seed: int = 0, observer: RunObserver | None = None,
          checkpoint_every_steps: int | None = None) -> tuple[Agent, RunResult]:
    """Train one run (a population of one); returns the final agent and its summary. A run that fails raises its
    error — ``FloatingPointError("diverged at step N")`` when the loss is no longer finite."""
    (outcome,) = train_population([config], [seed], [observer], checkpoint_every_steps)
    if isinstance(outcome, MemberFailed):
        raise outcome.error
    return outcome


def train_population(configs: Sequence[TrainConfig], seeds: Sequence[int],
                     observers: Sequence[RunObserver | None] | None = None,
                     checkpoint_every_steps: int | Sequence[int | None] | None = None,
                     on_member_done: Callable[[int, MemberOutcome], None] | None = None) -> list[MemberOutcome]:
    """Train one member per (config, seed), each with its own ``Run`` and observer: member k's events, checkpoints
    and result are those of the run trained alone. Returns member k's ``(agent, result)`` or ``MemberFailed``, in
    order; a member that fails (diverges, or its observer raises) leaves, the others go on.
    ``checkpoint_every_steps``: one for all members, or one per member. ``on_member_done(k, outcome)`` is called as
    member k leaves (a store can mark that run finished while the others still train).

    Every algorithm trains its members in one batched loop (their shape fields must agree: ``population_key``;
    ValueError otherwise).
    """
    import torch._dynamo  # noqa: F401  torch.optim imports it on the first optimizer (~3 s): keep it off the clock

    from cartpole_core.engine.algos import POPULATION_LOOPS

    observers = _per_member([None] * len(configs) if observers is None else observers, len(configs), "observer")
    checkpoints = _per_member(checkpoint_every_steps, len(configs), "checkpoint interval")
    check_population(configs, seeds)
    runs = [Run(config, seed, MemberGuard(observer or RunObserver()), every)
            for config, seed, observer, every in zip(configs, seeds, observers, checkpoints)]
    return POPULATION_LOOPS[configs[0].algo](list(configs), runs, on_member_done)


def _per_member(value: Any, members: int, what: str) -> list:
    """``value`` as one item per member: a sequence of ``members`` items, or one number (or None) for all."""
    if isinstance(value, Sequence):
        if len(value) != members:
            raise ValueError(f"a population needs one {what} per member: got {len(value)} for {members} members")
        return list(value)
    if value is not None and not isinstance(value, int):
        raise ValueError(f"a population needs one {what} per member (a list), got one {type(value).__name__}")
    return [value] * members
