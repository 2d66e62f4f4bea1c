"""Trained policies and their checkpoints.

An agent answers ``act(obs) -> int`` (greedy) and ``action_values(obs)`` (Q-values for Q-learning and DQN,
action probabilities for PPO) for one observation from a plain ``gymnasium.make("CartPole-v1")``, and the
batched ``act_batch`` / ``action_values`` for an (N, 4) array.

A checkpoint is one file written by ``torch.save`` holding only tensors, strings and numbers: the agent's
arrays / state dict, the config as JSON and a little metadata. ``load_agent`` reads it back with
``torch.load(weights_only=True)``, so a checkpoint can never run code, and rejects anything that is not one.
"""

from __future__ import annotations

import io
import os
from pathlib import Path
from typing import Any

import numpy as np
import torch
from sklearn.preprocessing import KBinsDiscretizer

from cartpole_core.config.models import (
    ConfigError,
    DQNConfig,
    PPOConfig,
    QLearningConfig,
    TrainConfig,
    config_from_json,
)
from cartpole_core.engine.nets import OBS_DIM, ActorCritic, mlp

CHECKPOINT_FORMAT = "cartpole-lab-checkpoint"
CHECKPOINT_VERSION = 1


class CheckpointError(ValueError):
    """A file that is not a readable CartPole Lab checkpoint."""


class Agent:
    """Greedy policy over batched observations; subclasses implement ``action_values`` on (N, 4) arrays."""

    config: TrainConfig
    value_kind = "Q"  # what action_values returns: "Q" (Q-values) or "P" (action probabilities)

    def _values(self, obs: np.ndarray) -> np.ndarray:
        raise NotImplementedError

    def state(self) -> dict[str, torch.Tensor]:
        """Everything needed to rebuild the agent from its config."""
        raise NotImplementedError

    def action_values(self, obs: Any) -> np.ndarray:
        """Q-values (or action probabilities) for one observation, shape (2,), or a batch, shape (N, 2)."""
        batch = np.asarray(obs, dtype=np.float32)
        single = batch.ndim == 1
        values = self._values(batch.reshape(-1, OBS_DIM))
        return values[0] if single else values

    def act_batch(self, obs: np.ndarray) -> np.ndarray:
        return self._values(np.asarray(obs, dtype=np.float32).reshape(-1, OBS_DIM)).argmax(axis=1)

    def act(self, obs: Any) -> int:
        return int(self.act_batch(obs)[0])


class Discretizer:
    """Uniform bins per observation dimension, fitted once with scikit-learn's ``KBinsDiscretizer``.

    The seed refits a ``KBinsDiscretizer`` on every step (about 0.5 ms each); we fit once and index with
    ``np.searchsorted`` on the same inner edges, which gives identical bins at a tiny fraction of the cost.
    Dimensions with one bin are ignored (sklearn needs at least two bins, and one bin carries no information).
    """

    def __init__(self, bins: list[int], low: list[float], high: list[float]):
        self.bins = tuple(int(b) for b in bins)
        self.dims = [d for d, count in enumerate(self.bins) if count > 1]
        self.inner_edges: list[np.ndarray] = []
        if self.dims:
            est = KBinsDiscretizer(n_bins=[self.bins[d] for d in self.dims], encode="ordinal", strategy="uniform")
            est.fit([[low[d] for d in self.dims], [high[d] for d in self.dims]])
            self.estimator = est
            self.inner_edges = [edges[1:-1] for edges in est.bin_edges_]  # float64, as sklearn compares
        # Row-major strides into the flattened table of shape ``bins``.
        self.strides = [int(np.prod(self.bins[d + 1:])) for d in self.dims]
        self.n_states = int(np.prod(self.bins))

    def state_index(self, obs: np.ndarray) -> np.ndarray:
        """Flat table index for each row of an (N, 4) observation batch."""
        index = np.zeros(len(obs), dtype=np.int64)
        for d, edges, stride in zip(self.dims, self.inner_edges, self.strides):
            index += np.searchsorted(edges, obs[:, d], side="right") * stride
        return index

    def bin_indices(self, obs: np.ndarray) -> np.ndarray:
        """Per-dimension bin index, shape (N, 4) (0 for ignored dimensions)."""
        out = np.zeros((len(obs), len(self.bins)), dtype=np.int64)
        for d, edges in zip(self.dims, self.inner_edges):
            out[:, d] = np.searchsorted(edges, obs[:, d], side="right")
        return out


class QTableAgent(Agent):
    def __init__(self, config: QLearningConfig, q_table: np.ndarray | None = None, visits: np.ndarray | None = None):
        self.config = config
        self.discretizer = Discretizer(config.bins, config.low, config.high)
        shape = (*self.discretizer.bins, 2)
        self.q_table = np.zeros(shape) if q_table is None else np.asarray(q_table, dtype=np.float64).reshape(shape)
        self.q_flat = self.q_table.reshape(-1, 2)  # a view: updates through it change q_table
        self.visits = np.zeros(self.discretizer.n_states, dtype=np.int64) if visits is None else \
            np.asarray(visits, dtype=np.int64).reshape(-1)

    def _values(self, obs: np.ndarray) -> np.ndarray:
        return self.q_flat[self.discretizer.state_index(obs)]

    def state(self) -> dict[str, torch.Tensor]:
        return {"q_table": torch.from_numpy(self.q_table.copy()),
                "visits": torch.from_numpy(self.visits.reshape(self.discretizer.bins).copy())}


class DQNAgent(Agent):
    def __init__(self, config: DQNConfig, q_net: torch.nn.Module | None = None):
        self.config = config
        self.q_net = q_net if q_net is not None else build_q_network(config)

    def _values(self, obs: np.ndarray) -> np.ndarray:
        with torch.no_grad():
            return self.q_net(torch.from_numpy(obs)).numpy()

    def state(self) -> dict[str, torch.Tensor]:
        return {f"q_net.{k}": v.detach().clone() for k, v in self.q_net.state_dict().items()}


class PPOAgent(Agent):
    """Greedy = the most probable action; ``action_values`` are the action probabilities."""

    value_kind = "P"

    def __init__(self, config: PPOConfig, model: ActorCritic | None = None):
        self.config = config
        self.model = model if model is not None else build_actor_critic(config)

    def _values(self, obs: np.ndarray) -> np.ndarray:
        with torch.no_grad():
            return torch.softmax(self.model.logits(torch.from_numpy(obs)), dim=-1).numpy()

    def state_value(self, obs: Any) -> np.ndarray:
        with torch.no_grad():
            return self.model(torch.as_tensor(np.asarray(obs, dtype=np.float32).reshape(-1, OBS_DIM)))[1].numpy()

    def state(self) -> dict[str, torch.Tensor]:
        return {f"model.{k}": v.detach().clone() for k, v in self.model.state_dict().items()}


def build_q_network(config: DQNConfig) -> torch.nn.Module:
    return mlp(OBS_DIM, list(config.hidden_sizes), 2, config.activation)


def build_actor_critic(config: PPOConfig) -> ActorCritic:
    return ActorCritic(list(config.hidden_sizes), config.activation, config.shared_network)


# ------------------------------------------------------------------------------------------------- checkpoints


def checkpoint_bytes(agent: Agent, **meta: float | int | str | bool) -> bytes:
    """A checkpoint's content (what ``save_checkpoint`` writes): a sink can ship it to the store of another process."""
    payload = {
        "format": CHECKPOINT_FORMAT,
        "version": CHECKPOINT_VERSION,
        "algo": agent.config.algo,
        "config_json": agent.config.to_json(),
        "state": agent.state(),
        "meta": dict(meta),
    }
    buffer = io.BytesIO()
    torch.save(payload, buffer)
    return buffer.getvalue()


def save_checkpoint(agent: Agent, path: str | os.PathLike, **meta: float | int | str | bool) -> Path:
    """Write atomically (temp file + rename) so a crash never leaves a half-written checkpoint."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_bytes(checkpoint_bytes(agent, **meta))
    os.replace(tmp, path)
    return path


def read_checkpoint(path: str | os.PathLike) -> dict[str, Any]:
    """The checkpoint's payload, validated; raises ``CheckpointError`` naming the file and what is wrong."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"checkpoint {path} does not exist")
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # weights_only=True runs no code, so any failure here just means "not readable"
        raise CheckpointError(f"{path} is not a CartPole Lab checkpoint (cannot be read as a tensor file: "
                              f"{type(err).__name__})") from None
    if not isinstance(payload, dict) or payload.get("format") != CHECKPOINT_FORMAT:
        raise CheckpointError(f"{path} is not a CartPole Lab checkpoint (no {CHECKPOINT_FORMAT!r} marker)")
    if payload.get("version") != CHECKPOINT_VERSION:
        raise CheckpointError(f"{path} has checkpoint version {payload.get('version')!r}; "
                              f"this version reads {CHECKPOINT_VERSION}")
    return payload


def agent_from_state(config: TrainConfig, state: dict[str, torch.Tensor]) -> Agent:
    if isinstance(config, QLearningConfig):
        return QTableAgent(config, state["q_table"].numpy(), state["visits"].numpy())
    if isinstance(config, DQNConfig):
        agent = DQNAgent(config)
        agent.q_net.load_state_dict({k.removeprefix("q_net."): v for k, v in state.items()})
        return agent
    agent = PPOAgent(config)
    agent.model.load_state_dict({k.removeprefix("model."): v for k, v in state.items()})
    return agent


def load_agent(path: str | os.PathLike) -> Agent:
    """Load a checkpoint written by ``save_checkpoint``; ``CheckpointError`` if it is corrupt or foreign."""
    payload = read_checkpoint(path)
    try:
        config = config_from_json(payload["config_json"])
        agent = agent_from_state(config, payload["state"])
    except (ConfigError, KeyError, RuntimeError, ValueError, TypeError, AttributeError) as err:
        raise CheckpointError(f"{path} has a damaged config or state: {str(err).splitlines()[0]}") from None
    agent.meta = payload.get("meta", {})
    return agent
