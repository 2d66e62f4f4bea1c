"""``train(config, seed, ...)``: one run from (config, seed); ``train_population``: many runs in one process.

The only module that imports the algorithm loops (``engine.algos``); the bookkeeping around them is ``engine.run``,
what members of a population share is ``engine.population``.
"""

from __future__ import annotations

from collections.abc import Sequence

from cartpole_core.config.models import TrainConfig
from cartpole_core.engine.agent import Agent
from cartpole_core.engine.population import MemberFailed, MemberGuard, check_population
from cartpole_core.engine.run import Run, RunObserver, seed_everything
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
                     checkpoint_every_steps: int | Sequence[int | None] | None = None) -> list[MemberOutcome]:
    """Train one member per (config, seed), each with its own ``Run`` and observer: member k's events, checkpoints
    and result are those of the run trained alone. Returns member k's ``(agent, result)`` or ``MemberFailed``, in
    order; a member that fails (diverges, or its observer raises) leaves, the others go on.

    PPO trains every member in one batched loop (their shape fields must agree: ``population_key``; ValueError
    otherwise). Q-learning and DQN train their members one after another, for now.
    """
    import torch._dynamo  # noqa: F401  torch.optim imports it on the first optimizer (~3 s): keep it off the clock

    from cartpole_core.engine.algos import ALGORITHM_LOOPS, POPULATION_LOOPS

    observers = list(observers) if observers is not None else [None] * len(configs)
    if len(observers) != len(configs):
        raise ValueError(f"a population needs one observer (or None) per member: got {len(observers)} observers "
                         f"for {len(configs)} members")
    check_population(configs, seeds)
    every = (list(checkpoint_every_steps) if isinstance(checkpoint_every_steps, Sequence)
             else [checkpoint_every_steps] * len(configs))  # periodic checkpoints: one interval, or one per member
    algo = configs[0].algo
    if algo in POPULATION_LOOPS:
        runs = [Run(config, seed, MemberGuard(observer or RunObserver()), interval)
                for config, seed, observer, interval in zip(configs, seeds, observers, every)]
        return POPULATION_LOOPS[algo](list(configs), runs)
    outcomes: list[MemberOutcome] = []
    for config, seed, observer, interval in zip(configs, seeds, observers, every):
        try:
            seed_everything(seed)
            run = Run(config, seed, observer, interval)
            agent = ALGORITHM_LOOPS[algo](config, run)
            outcomes.append((agent, run.finish(agent)))
        except Exception as err:  # this member's failure; the next members still train
            outcomes.append(MemberFailed.of(err))
    return outcomes
