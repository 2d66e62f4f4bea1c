"""One module per algorithm: the loop and ``update`` (its learning step).

``ALGORITHM_LOOPS``: ``train(config, run) -> Agent``, one run. ``POPULATION_LOOPS``: ``train(configs, runs) ->
[(agent, result) | MemberFailed]``, a batched population (a lone run is a population of one).
"""

from __future__ import annotations

from collections.abc import Callable

from cartpole_core.engine.algos import dqn, ppo, qlearning

ALGORITHM_LOOPS: dict[str, Callable] = {"qlearning": qlearning.train}
POPULATION_LOOPS: dict[str, Callable] = {"dqn": dqn.train, "ppo": ppo.train}
