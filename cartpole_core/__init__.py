"""CartPole Lab's engine: configs, schedules, the three algorithms, agents, checkpoints and the CLI.

Never imports streamlit — the dashboard (``app.py``, ``pages/``) calls into this package.

The names below are loaded on first use (PEP 562 module ``__getattr__``): ``import cartpole_core`` — and the
import-light modules such as ``cartpole_core.store``, ``cartpole_core.jobs`` and ``cartpole_core.configs`` — load
no torch, Gymnasium or scikit-learn (seconds and ~400 MB), so the CLI's store commands start in well under a second.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

# name → the module that defines it
_EXPORTS = {
    "Agent": "cartpole_core.agent",
    "CheckpointError": "cartpole_core.agent",
    "load_agent": "cartpole_core.agent",
    "save_checkpoint": "cartpole_core.agent",
    "ALGORITHMS": "cartpole_core.configs",
    "ConfigError": "cartpole_core.configs",
    "DQNConfig": "cartpole_core.configs",
    "PPOConfig": "cartpole_core.configs",
    "QLearningConfig": "cartpole_core.configs",
    "TrainConfig": "cartpole_core.configs",
    "config_from_json": "cartpole_core.configs",
    "field_specs": "cartpole_core.configs",
    "preset_config": "cartpole_core.presets",
    "preset_names": "cartpole_core.presets",
    "RunResult": "cartpole_core.records",
    "train": "cartpole_core.training",
}

__all__ = [
    "ALGORITHMS", "Agent", "CheckpointError", "ConfigError", "DQNConfig", "PPOConfig", "QLearningConfig",
    "RunResult", "TrainConfig", "config_from_json", "field_specs", "load_agent", "preset_config", "preset_names",
    "save_checkpoint", "train",
]
assert sorted(__all__) == sorted(_EXPORTS)

if TYPE_CHECKING:  # for type checkers and IDEs; at run time the names load lazily
    from cartpole_core.agent import Agent, CheckpointError, load_agent, save_checkpoint
    from cartpole_core.configs import (
        ALGORITHMS,
        ConfigError,
        DQNConfig,
        PPOConfig,
        QLearningConfig,
        TrainConfig,
        config_from_json,
        field_specs,
    )
    from cartpole_core.presets import preset_config, preset_names
    from cartpole_core.records import RunResult
    from cartpole_core.training import train


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'cartpole_core' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value  # the next access is a plain lookup
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_EXPORTS))
