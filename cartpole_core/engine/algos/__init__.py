"""One module per algorithm: the loop and ``update`` (its learning step).

``POPULATION_LOOPS``: ``train(configs, runs, on_member_done) -> [(agent, result) | MemberFailed]``, a batched
population (a lone run is a population of one).
"""

from __future__ import annotations

from collections.abc import Callable

from cartpole_core.engine.algos import dqn, ppo, qlearning

POPULATION_LOOPS: dict[str, Callable] = {"dqn": dqn.train, "ppo": ppo.train, "qlearning": qlearning.train}
