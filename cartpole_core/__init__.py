"""CartPole Lab's engine: configs, schedules, the three algorithms, agents, checkpoints and the CLI.

Never imports streamlit — the dashboard (``app.py``, ``pages/``) calls into this package.
"""

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
from cartpole_core.training import RunResult, train

__all__ = [
    "ALGORITHMS", "Agent", "CheckpointError", "ConfigError", "DQNConfig", "PPOConfig", "QLearningConfig",
    "RunResult", "TrainConfig", "config_from_json", "field_specs", "load_agent", "preset_config", "preset_names",
    "save_checkpoint", "train",
]
