"""``train(config, seed, ...)``: one run from (config, seed), by the algorithm loop for ``config.algo``.

The only module that imports the algorithm loops (``engine.algos``); the bookkeeping around them is ``engine.run``.
"""

from __future__ import annotations

from cartpole_core.config.models import TrainConfig
from cartpole_core.engine.agent import Agent
from cartpole_core.engine.run import Run, RunObserver, seed_everything
from cartpole_core.records import RunResult


def train(config: TrainConfig, seed: int = 0, observer: RunObserver | None = None,
          checkpoint_every_steps: int | None = None) -> tuple[Agent, RunResult]:
    """Train one run; returns the final agent and its summary."""
    import torch._dynamo  # noqa: F401  torch.optim imports it on the first optimizer (~3 s): keep it off the clock

    from cartpole_core.engine.algos import ALGORITHM_LOOPS

    seed_everything(seed)
    run = Run(config, seed, observer, checkpoint_every_steps)
    agent = ALGORITHM_LOOPS[config.algo](config, run)
    return agent, run.finish(agent)
