"""CartPole Lab's engine, by layer (each imports only those below it; none imports streamlit):

- ``cli``: ``python -m cartpole_core``;
- ``studies``: hyperparameter studies with Optuna (``run_study`` from a notebook);
- ``jobs``: the queue, dispatch to executors (local worker processes), execution of a run through a sink;
- ``watch``: rollouts, frames and video, inspection, robustness; ``figures``: metrics → Plotly figures;
- ``runs``: the SQLite run store, the data home, export/import, comparisons across runs, the user's presets;
- ``engine``: environments, networks, agents and checkpoints, evaluation, run bookkeeping and its observers,
  ``train`` and the algorithm loops;
- ``config``: validated configs with field metadata, schedules, presets, input limits; ``records``: events and
  ``RunResult``.

The names below are loaded on first use (PEP 562 module ``__getattr__``): ``import cartpole_core``, ``config``,
``records``, ``runs``, the queue and dispatch of ``jobs`` and ``engine.observers`` load no torch, Gymnasium or
scikit-learn (seconds and ~400 MB), so a driver that only queues and watches runs — the CLI's store commands, the
dashboard's scheduler — starts in well under a second.
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
    "PresetError": "cartpole_core.runs.presets",
    "UserPreset": "cartpole_core.runs.presets",
    "all_preset_names": "cartpole_core.runs.presets",
    "delete_preset": "cartpole_core.runs.presets",
    "is_user_preset": "cartpole_core.runs.presets",
    "load_preset_config": "cartpole_core.runs.presets",
    "save_preset": "cartpole_core.runs.presets",
    "user_presets": "cartpole_core.runs.presets",
    "RunResult": "cartpole_core.records",
    "Callbacks": "cartpole_core.engine.observers",
    "EventLog": "cartpole_core.engine.observers",
    "Observers": "cartpole_core.engine.observers",
    "RunObserver": "cartpole_core.engine.observers",
    "train": "cartpole_core.engine.train",
    "resume_study": "cartpole_core.studies.api",
    "run_study": "cartpole_core.studies.api",
    "study_summary": "cartpole_core.studies.api",
}

__all__ = [
    "ALGORITHMS", "Agent", "Callbacks", "CheckpointError", "ConfigError", "DQNConfig", "EventLog", "Observers",
    "PPOConfig", "PresetError", "QLearningConfig", "RunObserver", "RunResult", "TrainConfig", "UserPreset",
    "all_preset_names", "config_from_json", "delete_preset", "field_specs", "is_user_preset", "load_agent",
    "load_preset_config", "preset_config", "preset_names", "resume_study", "run_study", "save_checkpoint",
    "save_preset", "study_summary", "train", "user_presets",
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
    from cartpole_core.engine.observers import Callbacks, EventLog, Observers, RunObserver
    from cartpole_core.engine.train import train
    from cartpole_core.records import RunResult
    from cartpole_core.runs.presets import (
        PresetError,
        UserPreset,
        all_preset_names,
        delete_preset,
        is_user_preset,
        load_preset_config,
        save_preset,
        user_presets,
    )
    from cartpole_core.studies.api import resume_study, run_study, study_summary


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'cartpole_core' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value  # the next access is a plain lookup
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_EXPORTS))
