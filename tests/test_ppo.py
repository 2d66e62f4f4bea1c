"""PPO: GAE by hand, the NEXT_STEP autoreset slot, the logged metrics, stopping only between rollouts (the contract
every algorithm keeps — determinism, stopping, budgets, solving — is tests/test_contract.py)."""

from __future__ import annotations

import numpy as np
import pytest

from cartpole_core.config.models import PPOConfig
from cartpole_core.engine.algos.ppo import compute_gae
from cartpole_core.engine.observers import Callbacks
from cartpole_core.engine.train import train
from cartpole_core.records import EpisodeEnded, Updated

TINY = {"hidden_sizes": [16], "n_envs": 4, "rollout_steps": 16, "minibatch_size": 32, "epochs": 2,
        "total_env_steps": 1000, "eval_every_steps": 100_000}


def _train_recording(config: PPOConfig, seed: int = 0):
    events = []
    agent, result = train(config, seed=seed, observer=Callbacks(on_event=events.append))
    return agent, result, events


def _episodes(events) -> list[EpisodeEnded]:
    return [e for e in events if isinstance(e, EpisodeEnded)]


# ------------------------------------------------------------------------------------------------------ GAE


def _gae(rewards, values, terminated, truncated, last_value, bootstrap, gamma=0.9, lam=0.5):
    return compute_gae(np.array(rewards, dtype=np.float32), np.array(values, dtype=np.float32),
                       np.array(terminated), np.array(truncated), np.array(last_value, dtype=np.float32),
                       gamma, lam, bootstrap)


# One env, NEXT_STEP layout: t0 real, t1 real and the episode ends, t2 the reset slot (reward 0, its observation
# is the ended episode's final one, V = 5 there), t3 the first step of the next episode; V after the rollout = 4.
REWARDS, VALUES, LAST = [1, 1, 0, 1], [2, 1, 5, 3], 4.0
REAL = [0, 1, 3]


def test_gae_bootstraps_a_truncation_from_the_final_observation():
    advantages, returns = _gae(REWARDS, VALUES, [False] * 4, [False, True, False, False], LAST, bootstrap=True)
    # t1: 1 + 0.9·5 − 1 = 4.5 (the chain stops there); t0: (1 + 0.9·1 − 2) + 0.9·0.5·4.5 = 1.925;
    # t3: rollout end, 1 + 0.9·4 − 3 = 1.6.
    np.testing.assert_allclose(advantages[REAL], [1.925, 4.5, 1.6], rtol=1e-6)
    np.testing.assert_allclose(returns[REAL], [3.925, 5.5, 4.6], rtol=1e-6)


def test_gae_never_bootstraps_a_termination():
    advantages, _ = _gae(REWARDS, VALUES, [False, True, False, False], [False] * 4, LAST, bootstrap=True)
    # t1: the pole fell, 1 − 1 = 0; t0: −0.1 + 0.45·0 = −0.1; t3 still bootstraps the rollout end.
    np.testing.assert_allclose(advantages[REAL], [-0.1, 0.0, 1.6], rtol=1e-6, atol=1e-7)


def test_gae_without_bootstrap_treats_truncation_and_rollout_end_as_zero_future():
    advantages, _ = _gae(REWARDS, VALUES, [False] * 4, [False, True, False, False], LAST, bootstrap=False)
    np.testing.assert_allclose(advantages[REAL], [-0.1, 0.0, -2.0], rtol=1e-6, atol=1e-7)


def test_gae_with_lambda_one_and_no_bootstrap_is_the_seeds_monte_carlo_advantage():
    gamma = 0.99
    rng = np.random.default_rng(3)
    rewards = rng.uniform(0, 2, size=7).astype(np.float32)
    values = rng.normal(size=7).astype(np.float32)
    terminated = np.array([False, False, True, False, False, False, False])  # episodes t0–t2 and t3–t6 (cut)

    def seed_returns(episode_rewards):  # the seed's loop, verbatim in spirit
        returns, running = [], 0.0
        for r in episode_rewards[::-1]:
            running = r + gamma * running
            returns.insert(0, running)
        return returns

    expected = np.array(seed_returns(rewards[:3]) + seed_returns(rewards[3:])) - values
    advantages, returns = compute_gae(rewards, values, terminated, np.zeros(7, dtype=bool), np.float32(9.0),
                                      gamma, 1.0, False)
    np.testing.assert_allclose(advantages, expected, rtol=1e-5)
    np.testing.assert_allclose(returns, expected + values, rtol=1e-5)


def test_gae_handles_envs_as_columns_independently():
    rewards = np.ones((3, 2), dtype=np.float32)
    values = np.zeros((3, 2), dtype=np.float32)
    terminated = np.array([[False, True], [False, False], [False, False]])
    advantages, _ = compute_gae(rewards, values, terminated, np.zeros((3, 2), dtype=bool),
                                np.zeros(2, dtype=np.float32), 1.0, 1.0, True)
    np.testing.assert_allclose(advantages[:, 0], [3, 2, 1])
    np.testing.assert_allclose(advantages[0, 1], 1)  # env 1 fell at t0: nothing after it counts


# ------------------------------------------------------------------------------------------ training loop


def test_reset_slot_is_not_a_transition_single_env():
    config = PPOConfig(**{**TINY, "n_envs": 1, "rollout_steps": 64, "max_episode_steps": 20,
                          "total_env_steps": 600})
    _, result, events = _train_recording(config)
    episodes = _episodes(events)
    lengths = np.array([e.length for e in episodes])
    assert len(episodes) > 20 and lengths.max() == 20 and lengths.min() < 20  # both truncations and falls
    np.testing.assert_array_equal([e.episode_return for e in episodes], lengths)  # reward 1 per real step
    # Each episode ends exactly its length after the previous one: no reset step was counted.
    np.testing.assert_array_equal([e.env_steps for e in episodes], np.cumsum(lengths))
    assert 0 <= result.env_steps - lengths.sum() < 20  # the one unfinished episode


def test_reset_slots_are_not_counted_with_many_envs():
    config = PPOConfig(**{**TINY, "n_envs": 8, "max_episode_steps": 10, "total_env_steps": 2000})
    _, result, events = _train_recording(config)
    episodes = _episodes(events)
    lengths = np.array([e.length for e in episodes])
    np.testing.assert_array_equal([e.episode_return for e in episodes], lengths)
    assert lengths.max() == 10
    assert 0 <= result.env_steps - lengths.sum() <= 8 * 9  # at most one unfinished episode per env


@pytest.mark.parametrize("shared", [False, True])
def test_updates_log_metrics_and_follow_the_learning_rate_schedule(shared):
    config = PPOConfig(**{**TINY, "shared_network": shared,
                          "learning_rate": {"kind": "linear", "start": 1e-3, "end": 0.0, "duration": 1000}})
    _, _, events = _train_recording(config)
    updates = [e for e in events if isinstance(e, Updated)]
    assert updates[-2].env_steps < 1000 <= updates[-1].env_steps  # one update per rollout until the budget
    for previous, update in zip([None, *updates], updates):
        steps_before = 0 if previous is None else previous.env_steps
        assert update.metrics["learning_rate"] == pytest.approx(1e-3 * (1 - steps_before / 1000))
    assert set(updates[0].metrics) == {"policy_loss", "value_loss", "entropy", "approx_kl", "clip_fraction",
                                       "explained_variance", "learning_rate"}
    assert 0.0 < updates[0].metrics["entropy"] <= np.log(2) + 1e-6


def test_stop_request_during_training_ends_at_an_update():
    config = PPOConfig(**{**TINY, "total_env_steps": 1_000_000})
    updated = []
    agent, result = train(config, seed=0, observer=Callbacks(
        on_event=lambda e: updated.append(e) if isinstance(e, Updated) else None, should_stop=lambda: bool(updated)))
    assert result.status == "stopped"
    assert result.env_steps < 10_000 and result.env_steps == updated[-1].env_steps
