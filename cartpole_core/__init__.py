"""CartPole Lab's engine: configs, schedules, the three algorithms, agents, checkpoints and the CLI.

Never imports streamlit — the dashboard (``app.py``, ``pages/``) calls into this package.

The names below are loaded on first use (PEP 562 module ``__getattr__``): ``import cartpole_core`` — and the
import-light layers — ``cartpole_core.config``, ``cartpole_core.records``, ``cartpole_core.runs`` and the queue in
``cartpole_core.jobs`` — load no torch, Gymnasium or scikit-learn (seconds and ~400 MB), so the CLI's store
commands start in well under a second.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

# name → the module that defines it
_EXPORTS = {
    "Agent": "cartpole_core.engine.agent",
    "CheckpointError": "cartpole_core.engine.agent",
    "load_agent": "cartpole_core.engine.agent",
    "save_checkpoint": "cartpole_core.engine.agent",
    "ALGORITHMS": "cartpole_core.config.models",
    "ConfigError": "cartpole_core.config.models",
    "DQNConfig": "cartpole_core.config.models",
    "PPOConfig": "cartpole_core.config.models",
    "QLearningConfig": "cartpole_core.config.models",
    "TrainConfig": "cartpole_core.config.models",
    "config_from_json": "cartpole_core.config.models",
    "field_specs": "cartpole_core.config.models",
    "preset_config": "cartpole_core.config.presets",
    "preset_names": "cartpole_core.config.presets",
    "RunResult": "cartpole_core.records",
    "train": "cartpole_core.engine.train",
}

__all__ = [
    "ALGORITHMS", "Agent", "CheckpointError", "ConfigError", "DQNConfig", "PPOConfig", "QLearningConfig",
    "RunResult", "TrainConfig", "config_from_json", "field_specs", "load_agent", "preset_config", "preset_names",
    "save_checkpoint", "train",
]
assert sorted(__all__) == sorted(_EXPORTS)

if TYPE_CHECKING:  # for type checkers and IDEs; at run time the names load lazily
    from cartpole_core.config.models import (
        ALGORITHMS,
        ConfigError,
        DQNConfig,
        PPOConfig,
        QLearningConfig,
        TrainConfig,
        config_from_json,
        field_specs,
    )
    from cartpole_core.config.presets import preset_config, preset_names
    from cartpole_core.engine.agent import Agent, CheckpointError, load_agent, save_checkpoint
    from cartpole_core.engine.train import train
    from cartpole_core.records import RunResult


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'cartpole_core' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value  # the next access is a plain lookup
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_EXPORTS))
