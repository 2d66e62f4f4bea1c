"""One module per algorithm; each exposes ``train(config, run) -> Agent``."""

from __future__ import annotations

from collections.abc import Callable

from cartpole_core.engine.algos import dqn, ppo, qlearning

ALGORITHM_LOOPS: dict[str, Callable] = {"qlearning": qlearning.train, "dqn": dqn.train, "ppo": ppo.train}
