"""One module per algorithm: ``train(config, run) -> Agent`` (the loop) and ``update`` (its learning step)."""

from __future__ import annotations

from collections.abc import Callable

from cartpole_core.engine.algos import dqn, ppo, qlearning

ALGORITHM_LOOPS: dict[str, Callable] = {"qlearning": qlearning.train, "dqn": dqn.train, "ppo": ppo.train}
