"""DQN: the replay buffer, the TD target, what the loop stores, counts and logs, the seed presets (the contract every
algorithm keeps — determinism, stopping, budgets, solving — is tests/test_contract.py)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from cartpole_core.config.models import DQNConfig
from cartpole_core.config.presets import preset_config
from cartpole_core.engine.algos import dqn
from cartpole_core.engine.observers import Callbacks
from cartpole_core.engine.train import train
from cartpole_core.records import EpisodeEnded, Updated

SMALL = {"hidden_sizes": [16, 16], "learning_starts": 200, "batch_size": 32, "train_freq": 4, "gradient_steps": 2,
         "target_update_interval": 50, "total_env_steps": 1500, "eval_every_steps": 100_000}


def rows(values: list[int]) -> tuple[np.ndarray, ...]:
    """Transitions whose every field encodes the row's number, so a stored row can be recognised."""
    v = np.asarray(values)
    obs = np.repeat(v[:, None], 4, axis=1).astype(np.float32)
    return obs, v % 2, v.astype(np.float32), obs + 0.5, (v % 3 == 0).astype(np.float32), v / 100


def fixed_q(weight: list[list[float]]) -> nn.Module:
    """A Q-network whose values are a fixed linear function of the observation."""
    net = nn.Linear(4, 2, bias=False)
    with torch.no_grad():
        net.weight.copy_(torch.tensor(weight))
    return net


def collect(config: DQNConfig, seed: int):
    events = []
    agent, result = train(config, seed=seed, observer=Callbacks(on_event=events.append))
    return agent, result, events


# ------------------------------------------------------------------------------------------------ replay buffer


@pytest.mark.parametrize("chunks", [[3, 4], [7], [1] * 7], ids=["3+4", "7-at-once", "one-by-one"])
def test_replay_buffer_wraps_around_and_keeps_the_newest(chunks):
    buffer = dqn.ReplayBuffer(capacity=5)
    start = 0
    for size in chunks:
        buffer.add(*rows(list(range(start, start + size))))
        start += size

    assert len(buffer) == 5
    # Rows 0 and 1 were overwritten by 5 and 6 in place; 2, 3, 4 are where they were.
    assert buffer.obs[:, 0].tolist() == [5, 6, 2, 3, 4]
    assert buffer.actions.tolist() == [1, 0, 0, 1, 0]
    assert buffer.rewards.tolist() == [5, 6, 2, 3, 4]
    assert buffer.next_obs[:, 3].tolist() == [5.5, 6.5, 2.5, 3.5, 4.5]
    assert buffer.terminated.tolist() == [0, 1, 0, 1, 0]
    assert buffer.discounts.tolist() == pytest.approx([0.05, 0.06, 0.02, 0.03, 0.04])

    obs, actions, rewards, next_obs, terminated, discounts = buffer.sample(200, np.random.default_rng(0))
    assert obs.shape == (200, 4) and next_obs.shape == (200, 4) and actions.dtype == torch.int64
    assert set(rewards.tolist()) == {2, 3, 4, 5, 6}  # every stored row can come out; nothing else does
    # The fields of a sampled row still belong together.
    assert torch.equal(obs[:, 0], rewards) and torch.equal(next_obs[:, 0], rewards + 0.5)
    assert torch.equal(actions, rewards.long() % 2) and torch.allclose(discounts, rewards / 100)


def test_replay_buffer_samples_only_what_was_added_before_it_is_full():
    buffer = dqn.ReplayBuffer(capacity=100)
    buffer.add(*rows([7, 8]))
    _, _, rewards, _, _, _ = buffer.sample(50, np.random.default_rng(1))
    assert len(buffer) == 2 and set(rewards.tolist()) == {7, 8}  # never the zero-filled empty rows


# --------------------------------------------------------------------------------------------------- TD target

ONLINE = [[1, 0, 0, 0], [0, 1, 0, 0]]  # Q_online(s) = (s0, s1)
TARGET = [[0, 0, 1, 0], [0, 0, 0, 1]]  # Q_target(s) = (s2, s3)


def test_td_target_bootstraps_unless_terminated():
    next_obs = torch.tensor([[0, 0, 7, 4], [0, 0, 7, 4], [0, 0, 2, 3]], dtype=torch.float32)
    rewards = torch.tensor([1.0, 1.0, 0.5])
    terminated = torch.tensor([0.0, 1.0, 0.0])  # row 0: alive or truncated; row 1: the pole fell
    target = dqn.td_target(rewards, terminated, 0.9, fixed_q(TARGET)(next_obs))
    # 1 + 0.9 · max(7, 4) = 7.3;  terminated: just the reward 1;  0.5 + 0.9 · max(2, 3) = 3.2
    assert target.tolist() == pytest.approx([7.3, 1.0, 3.2])


def test_double_dqn_target_values_the_online_networks_choice_with_the_target_network():
    next_obs = torch.tensor([[2, 5, 7, 4], [6, 1, 7, 4]], dtype=torch.float32)
    rewards = torch.tensor([1.0, 1.0])
    terminated = torch.tensor([0.0, 0.0])
    target = dqn.td_target(rewards, terminated, 0.5, fixed_q(TARGET)(next_obs),
                           online_next_q=fixed_q(ONLINE)(next_obs))
    # Row 0: online prefers action 1 (5 > 2), target values it 4 → 1 + 0.5 · 4 = 3 (plain DQN would take 7).
    # Row 1: online prefers action 0 (6 > 1), target values it 7 → 1 + 0.5 · 7 = 4.5.
    assert target.tolist() == pytest.approx([3.0, 4.5])
    plain = dqn.td_target(rewards, terminated, 0.5, fixed_q(TARGET)(next_obs))
    assert plain.tolist() == pytest.approx([4.5, 4.5])


def test_td_target_discounts_each_transition_by_its_own_discount():
    """A k-step transition bootstraps with γ^k: rows of 1, 2 and 3 summed rewards at γ = 0.5."""
    next_obs = torch.tensor([[0, 0, 8, 0]] * 3, dtype=torch.float32)
    rewards = torch.tensor([1.0, 1.5, 1.75])  # 1; 1 + 0.5; 1 + 0.5 + 0.25
    target = dqn.td_target(rewards, torch.zeros(3), torch.tensor([0.5, 0.25, 0.125]), fixed_q(TARGET)(next_obs))
    assert target.tolist() == pytest.approx([5.0, 3.5, 2.75])


# ------------------------------------------------------------------------------------------------ n-step returns

def _steps(transitions: dqn.NStepReturns, rewards: list[list[float]], ends: dict[int, str], real=None):
    """Feed vector steps (one reward per env slot each); ``ends[t]`` = "terminated" / "truncated" ends every slot's
    episode at step t. Observation t of slot e is [t, e, 0, 0], the action t % 2. Returns each step's completed
    transitions as (slot, obs step, action, reward, next-obs step, terminated, discount) tuples."""
    out = []
    for t, step_rewards in enumerate(rewards):
        slots = len(step_rewards)
        obs = np.array([[t, e, 0, 0] for e in range(slots)], dtype=np.float32)
        next_obs = obs + np.array([1, 0, 0, 0], dtype=np.float32)
        end = ends.get(t)
        terminated = np.full(slots, end == "terminated")
        truncated = np.full(slots, end == "truncated")
        live = np.ones(slots, dtype=bool) if real is None else real[t]
        done = transitions.step(live, obs, np.full(slots, t % 2), np.asarray(step_rewards, dtype=np.float32),
                                next_obs, terminated, truncated)
        slot, o, a, r, no, term, disc = done
        out.append([(int(slot[i]), int(o[i, 0]), int(a[i]), float(r[i]), int(no[i, 0]), bool(term[i]),
                     float(disc[i])) for i in range(len(slot))])
    return out


def test_n_step_transitions_sum_n_rewards_and_bootstrap_n_steps_on():
    transitions = dqn.NStepReturns([3], [0.5], n_envs=1)
    out = _steps(transitions, [[1], [2], [4], [8], [16]], {})
    assert out[:2] == [[], []]  # nothing is complete before 3 rewards
    # s_0 → s_3: 1 + 0.5·2 + 0.25·4 = 3, discount 0.5³
    assert out[2] == [(0, 0, 0, 3.0, 3, False, 0.125)]
    assert out[3] == [(0, 1, 1, 2 + 2 + 2.0, 4, False, 0.125)]
    assert out[4] == [(0, 2, 0, 4 + 4 + 4.0, 5, False, 0.125)]


@pytest.mark.parametrize("end", ["terminated", "truncated"])
def test_an_episode_end_completes_the_open_transitions_with_the_rewards_it_had(end):
    """Each open transition ends at the episode's final observation with k < n rewards and discount γ^k; a fall is
    terminal for all of them, a time-limit cut is not (they bootstrap from the final observation)."""
    transitions = dqn.NStepReturns([3], [0.5], n_envs=1)
    fell = end == "terminated"
    out = _steps(transitions, [[1], [2], [4], [8], [100]], {3: end}, real=[[True]] * 4 + [[False]])
    assert sorted(out[3]) == [(0, 1, 1, 2 + 2 + 2.0, 4, fell, 0.125), (0, 2, 0, 4 + 4.0, 4, fell, 0.25),
                              (0, 3, 1, 8.0, 4, fell, 0.5)]
    assert out[4] == []  # the autoreset step is no transition, and nothing was left open


def test_one_step_transitions_are_the_steps_as_they_came():
    transitions = dqn.NStepReturns([1], [0.9], n_envs=2)
    out = _steps(transitions, [[1, 1], [1, 1]], {1: "terminated"})
    assert out == [[(0, 0, 0, 1.0, 1, False, pytest.approx(0.9)), (1, 0, 0, 1.0, 1, False, pytest.approx(0.9))],
                   [(0, 1, 1, 1.0, 2, True, pytest.approx(0.9)), (1, 1, 1, 1.0, 2, True, pytest.approx(0.9))]]


def test_members_keep_their_own_n_and_gamma_and_can_leave():
    """Member 0 (slots 0–1): n = 1, γ = 0.9; member 1 (slots 2–3): n = 2, γ = 0.5. Then member 0 leaves."""
    transitions = dqn.NStepReturns([1, 2], [0.9, 0.5], n_envs=2)
    out = _steps(transitions, [[1, 1, 1, 1], [2, 2, 2, 2]], {})
    assert [(slot, reward, discount) for slot, _, _, reward, _, _, discount in out[0]] == \
        [(0, 1.0, pytest.approx(0.9)), (1, 1.0, pytest.approx(0.9))]
    assert [(slot, reward, discount) for slot, _, _, reward, _, _, discount in out[1]] == \
        [(0, 2.0, pytest.approx(0.9)), (1, 2.0, pytest.approx(0.9)), (2, 2.0, 0.25), (3, 2.0, 0.25)]
    transitions.keep([1])  # member 1's slots are now 0–1, its open transitions with them
    (late,) = _steps(transitions, [[4, 4]], {0: "terminated"})
    assert [(slot, reward, discount, terminated) for slot, _, _, reward, _, terminated, discount in late] == \
        [(0, 2 + 2.0, 0.25, True), (0, 4.0, 0.5, True), (1, 2 + 2.0, 0.25, True), (1, 4.0, 0.5, True)]


# ----------------------------------------------------------------------------------------------- training loop


def train_with_12_step_episodes(monkeypatch, **changes):
    """A small run (3 envs, 12-step episodes, seed 5) and what it stored: its replay buffer, its result, its episodes,
    and which stored transitions end in a fall (their next observation is past the track's or the angle's limit)."""
    buffers = []

    class RecordingBuffer(dqn.ReplayBuffer):
        def __init__(self, *args, **kwargs):
            super().__init__(*args, **kwargs)
            buffers.append(self)

    monkeypatch.setattr(dqn, "ReplayBuffer", RecordingBuffer)
    config = DQNConfig(**{**SMALL, "n_envs": 3, "max_episode_steps": 12, "total_env_steps": 600,
                          "buffer_size": 1000, **changes})
    _, result, events = collect(config, seed=5)
    (buffer,) = buffers
    next_obs = buffer.next_obs[:len(buffer)]
    fell = (np.abs(next_obs[:, 0]) > 2.4) | (np.abs(next_obs[:, 2]) > 12 * 2 * np.pi / 360)
    return buffer, result, [e for e in events if isinstance(e, EpisodeEnded)], fell


def test_loop_stores_live_transitions_and_marks_only_real_falls_terminal(monkeypatch):
    """Time-limit cuts are stored as not terminated (they bootstrap); the autoreset step is not stored."""
    buffer, result, episodes, fell = train_with_12_step_episodes(monkeypatch)

    assert len(buffer) == result.env_steps  # one stored row per counted step: autoreset steps are neither
    assert sum(e.length for e in episodes) <= result.env_steps < sum(e.length for e in episodes) + 3 * 12
    terminated = buffer.terminated[:len(buffer)]
    assert np.array_equal(terminated == 1, fell)
    # Every episode shorter than the 12-step cap ended in a fall; some reached the cap without one (truncated).
    assert sum(e.length < 12 for e in episodes) <= terminated.sum() < len(episodes)


def test_the_loop_stores_n_step_transitions_that_end_where_their_episode_ends(monkeypatch):
    """n = 3, γ = 0.9, 12-step episodes: every stored transition sums k ≤ 3 rewards of 1 with discount γ^k; the
    ones with k < 3 are each episode's last two, ending at its final observation (a fall, or the cut at 12)."""
    buffer, result, episodes, fell = train_with_12_step_episodes(monkeypatch, n_step=3, gamma=0.9)
    stored = slice(0, len(buffer))
    rewards, discounts, terminated = buffer.rewards[stored], buffer.discounts[stored], buffer.terminated[stored]

    summed = np.rint(np.log(discounts) / np.log(0.9)).astype(int)  # k of each transition
    assert set(summed.tolist()) == {1, 2, 3}
    np.testing.assert_allclose(discounts, 0.9 ** summed, rtol=1e-6)
    np.testing.assert_allclose(rewards, (1 - 0.9 ** summed) / (1 - 0.9), rtol=1e-6)  # 1 + γ + … + γ^(k−1)
    # One transition begins at every counted step; the last two of each episode end short, with it. A run's last
    # steps may leave up to 2 per env open.
    assert result.env_steps - 3 * 2 <= len(buffer) <= result.env_steps
    assert (summed == 2).sum() == (summed == 1).sum() == len(episodes)
    assert np.array_equal(terminated == 1, fell)
    # A fall is terminal for the 3 transitions that reach it (3, 2 and 1 rewards); a cut at 12 steps for none.
    falls = int(terminated[summed == 1].sum())  # episodes whose last transition fell (some at step 12)
    assert terminated.sum() == 3 * falls and 0 < sum(e.length < 12 for e in episodes) <= falls < len(episodes)


def test_train_freq_counts_env_steps_taken_and_each_update_event_averages_100_gradient_steps(monkeypatch):
    """2 gradient steps every 4 env steps taken, with 1 env or 4: the update ratio does not change with n_envs.
    Steps taken include the ones that only reset a finished episode (12-step episodes here: many of them)."""
    update, step = dqn.update, dqn.PopulationCartPole.step
    taken = [0]  # env steps taken so far: vector steps × n_envs
    bursts = []  # (env steps taken, gradient steps) of each burst of the current run
    gradient_steps = []  # (td_loss, mean_q, grad_norm) of each gradient step of the current run

    def counting_step(env, actions):
        taken[0] += len(actions)
        return step(env, actions)

    def recording_update(*args):
        diagnostics = update(*args)
        bursts.append((taken[0], len(diagnostics)))
        gradient_steps.extend(diagnostics[:, 0])  # a lone run: member 0's steps
        return diagnostics

    monkeypatch.setattr(dqn.PopulationCartPole, "step", counting_step)
    monkeypatch.setattr(dqn, "update", recording_update)
    for n_envs in (1, 4):
        taken[0] = 0
        bursts.clear()
        gradient_steps.clear()
        config = DQNConfig(**{**SMALL, "n_envs": n_envs, "total_env_steps": 2000, "learning_starts": 400})
        _, result, events = collect(config, seed=0)

        # One burst of 2 every 4 steps taken, from the first past learning_starts to the end, none missed.
        first = bursts[0][0]
        assert 400 <= first <= 400 + (taken[0] - result.env_steps) + 4
        assert bursts == [(first + 4 * k, 2) for k in range(len(bursts))]
        assert taken[0] - 4 < bursts[-1][0] <= taken[0]
        assert taken[0] - result.env_steps >= result.episodes - n_envs > 50  # each episode's reset step counted

        updates = [e for e in events if isinstance(e, Updated)]
        every = dqn.LOG_EVERY_GRADIENT_STEPS
        assert len(updates) == len(gradient_steps) // every > 0  # one event per 100 gradient steps
        for k, event in enumerate(updates):
            assert set(event.metrics) == {"td_loss", "mean_q", "grad_norm", "epsilon", "learning_rate"}
            assert np.isfinite(list(event.metrics.values())).all()
            window = np.array(gradient_steps[k * every:(k + 1) * every])
            assert [event.metrics[name] for name in ("td_loss", "mean_q", "grad_norm")] == \
                pytest.approx(window.mean(axis=0).tolist())


@pytest.mark.parametrize("name", ["seed", "seed-large-batch"])
def test_seed_presets_run(name):
    config = preset_config("dqn", name, total_env_steps=3000)
    agent, result = train(config, seed=0)
    assert result.status == "completed" and result.env_steps >= 3000 and result.episodes > 0
    assert agent.act(np.zeros(4, dtype=np.float32)) in (0, 1)
