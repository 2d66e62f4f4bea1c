"""Checkpoints: every agent type survives save/load unchanged; anything else is a CheckpointError naming the file."""

from __future__ import annotations

import pickle
import zipfile
from pathlib import Path

import gymnasium as gym
import numpy as np
import pytest
import torch

from cartpole_core.config.models import DQNConfig, PPOConfig, QLearningConfig
from cartpole_core.engine.agent import (
    CHECKPOINT_VERSION,
    CheckpointError,
    DQNAgent,
    PPOAgent,
    QTableAgent,
    build_actor_critic,
    build_q_network,
    load_agent,
    save_checkpoint,
)

MARKER_NAME = "pickle-code-ran"


def qlearning_agent() -> QTableAgent:
    config = QLearningConfig(bins=[3, 2, 6, 12], gamma=1.0)
    rng = np.random.default_rng(0)
    q_table = rng.normal(size=(3, 2, 6, 12, 2))
    visits = rng.integers(0, 100, size=3 * 2 * 6 * 12)
    return QTableAgent(config, q_table, visits)


def scrambled(module: torch.nn.Module) -> torch.nn.Module:
    """Weights drawn wide, as after training, so the greedy action varies across observations."""
    torch.manual_seed(0)
    for parameter in module.parameters():
        torch.nn.init.normal_(parameter)
    return module


def dqn_agent() -> DQNAgent:
    config = DQNConfig(hidden_sizes=[32, 16, 8], activation="leaky_relu")
    return DQNAgent(config, scrambled(build_q_network(config)))


def ppo_agent(shared: bool = False) -> PPOAgent:
    config = PPOConfig(hidden_sizes=[100], activation="relu", shared_network=shared)
    return PPOAgent(config, scrambled(build_actor_critic(config)))


AGENTS = {"qlearning": qlearning_agent, "dqn": dqn_agent, "ppo": ppo_agent, "ppo-shared": lambda: ppo_agent(True)}


def observations(n: int = 500) -> np.ndarray:
    """float32 observations over a wide range, so states and network outputs vary."""
    rng = np.random.default_rng(1)
    return (rng.normal(size=(n, 4)) * [1.5, 2.0, 0.25, 1.5]).astype(np.float32)


class WritesMarker:
    """Unpickling this would create a file: a checkpoint loader must never run it."""

    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return (Path.touch, (self.marker,))


def assert_rejected(path: Path, *fragments: str) -> CheckpointError:
    with pytest.raises(CheckpointError) as info:
        load_agent(path)
    message = str(info.value)
    assert str(path) in message
    for fragment in fragments:
        assert fragment in message
    return info.value


@pytest.fixture
def dqn_checkpoint(tmp_path: Path) -> Path:
    return save_checkpoint(dqn_agent(), tmp_path / "dqn.pt")


# ---------------------------------------------------------------------------------------------- round trips


@pytest.mark.parametrize("kind", AGENTS)
def test_save_then_load_gives_the_same_policy(kind, tmp_path):
    agent = AGENTS[kind]()
    path = save_checkpoint(agent, tmp_path / "deep" / "dir" / f"{kind}.pt", episodes=12, note="best")
    loaded = load_agent(path)
    assert type(loaded) is type(agent)
    assert loaded.config == agent.config
    assert loaded.meta == {"episodes": 12, "note": "best"}
    obs = observations()
    np.testing.assert_array_equal(loaded.action_values(obs), agent.action_values(obs))
    np.testing.assert_array_equal(loaded.act_batch(obs), agent.act_batch(obs))
    assert [loaded.act(o) for o in obs[:50]] == [agent.act(o) for o in obs[:50]]
    assert len(set(agent.act_batch(obs).tolist())) == 2  # a policy that varies, so the comparison means something


@pytest.mark.parametrize("kind", AGENTS)
def test_loaded_agent_acts_on_a_plain_gymnasium_observation(kind, tmp_path):
    loaded = load_agent(save_checkpoint(AGENTS[kind](), tmp_path / "agent.pt"))
    env = gym.make("CartPole-v1")
    obs, _ = env.reset(seed=0)
    values = loaded.action_values(obs)
    assert values.shape == (2,)
    assert loaded.act(obs) in (0, 1)
    assert loaded.act(obs) == int(np.argmax(values))
    obs, *_ = env.step(loaded.act(obs))  # and keeps acting on what the env returns
    assert loaded.act(obs) in (0, 1)
    env.close()


def test_ppo_action_values_are_probabilities(tmp_path):
    loaded = load_agent(save_checkpoint(ppo_agent(), tmp_path / "ppo.pt"))
    values = loaded.action_values(observations())
    assert values.shape == (500, 2)
    assert (values >= 0).all()
    np.testing.assert_allclose(values.sum(axis=1), 1.0, rtol=1e-6)


def test_qtable_checkpoint_keeps_table_and_visit_counts(tmp_path):
    agent = qlearning_agent()
    loaded = load_agent(save_checkpoint(agent, tmp_path / "q.pt"))
    np.testing.assert_array_equal(loaded.q_table, agent.q_table)
    np.testing.assert_array_equal(loaded.visits, agent.visits)
    assert loaded.discretizer.bins == (3, 2, 6, 12)


def test_saving_replaces_an_existing_checkpoint_and_leaves_no_temp_file(tmp_path):
    path = tmp_path / "agent.pt"
    save_checkpoint(dqn_agent(), path)
    save_checkpoint(qlearning_agent(), path)
    assert isinstance(load_agent(path), QTableAgent)
    assert [p.name for p in tmp_path.iterdir()] == ["agent.pt"]


# ---------------------------------------------------------------------------------------------- rejections


def test_missing_path_is_rejected(tmp_path):
    assert_rejected(tmp_path / "nope.pt", "does not exist")


def test_empty_file_is_rejected(tmp_path):
    path = tmp_path / "empty.pt"
    path.write_bytes(b"")
    assert_rejected(path, "not a CartPole Lab checkpoint")


def test_random_bytes_are_rejected(tmp_path):
    path = tmp_path / "noise.pt"
    path.write_bytes(np.random.default_rng(0).bytes(4096))
    assert_rejected(path, "not a CartPole Lab checkpoint")


@pytest.mark.parametrize("fraction", [0.02, 0.3, 0.5, 0.9, 0.999])
def test_truncated_checkpoint_is_rejected(dqn_checkpoint, fraction):
    data = dqn_checkpoint.read_bytes()
    dqn_checkpoint.write_bytes(data[:int(len(data) * fraction)])
    assert_rejected(dqn_checkpoint)


@pytest.mark.filterwarnings("ignore:Detected pickle protocol")
def test_checkpoint_with_any_byte_of_its_pickle_flipped_is_rejected_or_still_valid(tmp_path):
    """Bit rot inside the pickled payload: CheckpointError (or, if harmless, a working agent) — never a crash."""
    path = save_checkpoint(qlearning_agent(), tmp_path / "q.pt")
    data = path.read_bytes()
    with zipfile.ZipFile(path) as archive:
        pickled = archive.read(next(name for name in archive.namelist() if name.endswith("data.pkl")))
    start = data.index(pickled)
    crashes = []
    flipped = tmp_path / "flipped.pt"
    for position in range(start, start + len(pickled)):
        corrupt = bytearray(data)
        corrupt[position] ^= 0xFF
        flipped.write_bytes(bytes(corrupt))
        try:
            load_agent(flipped).act(np.zeros(4, dtype=np.float32))
        except CheckpointError:
            pass
        except Exception as err:  # collect every crash, to report them all
            crashes.append((position - start, f"{type(err).__name__}: {err}"))
    assert crashes == []


def test_foreign_torch_file_is_rejected(tmp_path):
    path = tmp_path / "foreign.pt"
    torch.save({"a": torch.zeros(1)}, path)
    assert_rejected(path, "not a CartPole Lab checkpoint")


def test_foreign_state_dict_is_rejected(tmp_path):
    path = tmp_path / "model.pt"
    torch.save(torch.nn.Linear(4, 2).state_dict(), path)
    assert_rejected(path, "not a CartPole Lab checkpoint")


@pytest.mark.filterwarnings("ignore:Detected pickle protocol")
@pytest.mark.parametrize("writer", ["pickle", "torch"])
def test_pickled_object_is_rejected_without_running_its_code(tmp_path, writer):
    marker = tmp_path / MARKER_NAME
    # The payload really does run code when unpickled the unsafe way.
    pickle.loads(pickle.dumps(WritesMarker(marker)))
    assert marker.exists()
    marker.unlink()

    path = tmp_path / "evil.pt"
    if writer == "pickle":
        path.write_bytes(pickle.dumps({"format": "cartpole-lab-checkpoint", "payload": WritesMarker(marker)}))
    else:
        torch.save({"format": "cartpole-lab-checkpoint", "payload": WritesMarker(marker)}, path)
    assert_rejected(path, "not a CartPole Lab checkpoint")
    assert not marker.exists()


def test_future_checkpoint_version_is_rejected_clearly(dqn_checkpoint):
    payload = torch.load(dqn_checkpoint, weights_only=True)
    payload["version"] = CHECKPOINT_VERSION + 1
    torch.save(payload, dqn_checkpoint)
    assert_rejected(dqn_checkpoint, f"checkpoint version {CHECKPOINT_VERSION + 1}",
                    f"this version reads {CHECKPOINT_VERSION}")


def test_damaged_config_is_rejected(dqn_checkpoint):
    payload = torch.load(dqn_checkpoint, weights_only=True)
    payload["config_json"] = payload["config_json"].replace('"gamma": 0.99', '"gamma": 7')
    torch.save(payload, dqn_checkpoint)
    assert_rejected(dqn_checkpoint, "damaged config", "gamma (7)")


def test_state_that_does_not_fit_the_config_is_rejected(tmp_path):
    path = save_checkpoint(ppo_agent(), tmp_path / "ppo.pt")
    payload = torch.load(path, weights_only=True)
    payload["config_json"] = PPOConfig(hidden_sizes=[64, 64]).to_json()  # the saved weights are 100 wide
    torch.save(payload, path)
    assert_rejected(path, "damaged config or state")


def test_qtable_state_of_the_wrong_size_is_rejected(tmp_path):
    path = save_checkpoint(qlearning_agent(), tmp_path / "q.pt")
    payload = torch.load(path, weights_only=True)
    payload["state"]["q_table"] = torch.zeros(3)
    torch.save(payload, path)
    assert_rejected(path, "damaged config or state")


def test_directory_is_rejected(tmp_path):
    assert_rejected(tmp_path)
