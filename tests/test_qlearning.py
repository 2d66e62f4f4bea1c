"""Tabular Q-learning: binning (against scikit-learn), the TD update by hand, what the loop reports and bootstraps
(the contract every algorithm keeps — determinism, stopping, budgets, solving — is tests/test_contract.py)."""

from __future__ import annotations

import math

import numpy as np
import pytest
from sklearn.preprocessing import KBinsDiscretizer

from cartpole_core.config.models import QLearningConfig
from cartpole_core.config.presets import preset_config
from cartpole_core.config.schedules import value_at
from cartpole_core.engine.agent import Discretizer
from cartpole_core.engine.algos import qlearning
from cartpole_core.engine.observers import Callbacks
from cartpole_core.engine.train import train
from cartpole_core.records import EpisodeEnded, Evaluated

SEED_BOUNDS = ([-4.8, -3.0, -0.41887903, -math.radians(50)], [4.8, 3.0, 0.41887903, math.radians(50)])


def sklearn_bins(bins, low, high, obs: np.ndarray) -> np.ndarray:
    """Per-dimension bins the seed's way: a KBinsDiscretizer fitted on [low, high] of the dims with > 1 bin."""
    dims = [d for d, count in enumerate(bins) if count > 1]
    est = KBinsDiscretizer(n_bins=[bins[d] for d in dims], encode="ordinal", strategy="uniform")
    est.fit([[low[d] for d in dims], [high[d] for d in dims]])
    out = np.zeros((len(obs), len(bins)), dtype=np.int64)
    out[:, dims] = est.transform(obs[:, dims]).astype(np.int64)
    return out


def random_observations(low, high, n: int, seed: int) -> np.ndarray:
    """float32 observations (as CartPole gives them) over twice the bin range, so many lie out of bounds."""
    low, high = np.asarray(low), np.asarray(high)
    span = high - low
    rng = np.random.default_rng(seed)
    return rng.uniform(low - span / 2, high + span / 2, size=(n, 4)).astype(np.float32)


def run_events(config: QLearningConfig, seed: int = 0):
    events: list = []
    agent, result = train(config, seed=seed, observer=Callbacks(on_event=events.append))
    return agent, result, events


# ------------------------------------------------------------------------------------------------ discretizer


@pytest.mark.parametrize(("bins", "low", "high"), [
    ([1, 1, 6, 12], *SEED_BOUNDS),
    ([3, 1, 6, 12], *SEED_BOUNDS),
    ([4, 5, 2, 7], [-2.4, -3.0, -0.2, -2.0], [2.4, 3.0, 0.2, 2.0]),
    ([2, 2, 2, 2], [-1.0, -1.0, -1.0, -1.0], [1.0, 1.0, 1.0, 1.0]),
])
def test_discretizer_bins_equal_sklearn_kbins(bins, low, high):
    obs = random_observations(low, high, 5000, seed=sum(bins))
    discretizer = Discretizer(bins, low, high)
    expected = sklearn_bins(bins, low, high, obs)
    got = discretizer.bin_indices(obs)
    np.testing.assert_array_equal(got, expected)
    # Out-of-bound observations fall in the first and last bins, as in sklearn.
    assert got.min() == 0 and (got.max(axis=0) == np.asarray(bins) - 1).all()
    for d, count in enumerate(bins):
        if count == 1:
            assert (got[:, d] == 0).all()
    np.testing.assert_array_equal(discretizer.state_index(obs), np.ravel_multi_index(got.T, bins))
    assert discretizer.n_states == math.prod(bins)


def test_discretizer_bins_equal_sklearn_on_the_bin_edges():
    """Observations exactly on (and one float32 step either side of) each inner edge get sklearn's bin."""
    bins, (low, high) = [1, 1, 6, 12], SEED_BOUNDS
    est = KBinsDiscretizer(n_bins=[6, 12], encode="ordinal", strategy="uniform").fit([low[2:], high[2:]])
    rows = []
    for column, edges in zip((2, 3), est.bin_edges_):
        for edge in edges[1:-1]:
            x = np.float32(edge)
            for value in (np.nextafter(x, np.float32(-np.inf)), x, np.nextafter(x, np.float32(np.inf))):
                row = np.zeros(4, dtype=np.float32)
                row[column] = value
                rows.append(row)
    obs = np.array(rows)
    np.testing.assert_array_equal(Discretizer(bins, low, high).bin_indices(obs), sklearn_bins(bins, low, high, obs))


def test_discretizer_with_every_dimension_ignored_has_one_state():
    discretizer = Discretizer([1, 1, 1, 1], *SEED_BOUNDS)
    obs = random_observations(*SEED_BOUNDS, 10, seed=0)
    assert discretizer.n_states == 1
    assert discretizer.state_index(obs).tolist() == [0] * 10


# -------------------------------------------------------------------------------------------------- TD update


def one_transition_table() -> np.ndarray:
    q = np.zeros((4, 2))
    q[0, 1] = 0.5
    q[2] = [3.0, 4.0]
    return q


def test_td_update_non_terminal_bootstraps_from_max_next_q():
    """Also what a truncated (time-limit) transition gets: terminated is False there."""
    q = one_transition_table()
    td = qlearning.update(q, np.array([0]), np.array([1]), np.array([1.0]), np.array([2]), np.array([False]),
                          alpha=0.1, gamma=0.9)
    # target = 1 + 0.9 * max(3, 4) = 4.6; td = 4.6 - 0.5 = 4.1; Q = 0.5 + 0.1 * 4.1 = 0.91
    assert td.tolist() == pytest.approx([4.1])
    assert q[0, 1] == pytest.approx(0.91)
    expected = one_transition_table()
    expected[0, 1] = q[0, 1]
    np.testing.assert_array_equal(q, expected)  # nothing else changed


def test_td_update_terminal_does_not_bootstrap():
    q = one_transition_table()
    td = qlearning.update(q, np.array([0]), np.array([1]), np.array([1.0]), np.array([2]), np.array([True]),
                          alpha=0.1, gamma=0.9)
    # target = 1 (a fallen pole has no future); td = 0.5; Q = 0.5 + 0.1 * 0.5 = 0.55
    assert td.tolist() == pytest.approx([0.5])
    assert q[0, 1] == pytest.approx(0.55)
    assert q[2].tolist() == [3.0, 4.0]


def test_td_update_matches_the_seed_formula_with_gamma_one():
    """The seed: Q = (1 - lr) Q + lr (r + max Q(s')), with γ = 1."""
    q = one_transition_table()
    lr = 0.37
    seed_value = (1 - lr) * q[0, 1] + lr * (1.0 + q[2].max())
    qlearning.update(q, np.array([0]), np.array([1]), np.array([1.0]), np.array([2]), np.array([False]), lr, 1.0)
    assert q[0, 1] == pytest.approx(seed_value)


def test_td_update_batch_uses_the_table_before_the_update():
    q = np.arange(12, dtype=float).reshape(6, 2) / 10  # q[s] = [0.2 s, 0.2 s + 0.1]
    s = np.array([0, 1, 3])
    a = np.array([0, 1, 0])
    reward = np.array([1.0, 1.0, 0.0])
    s_next = np.array([1, 0, 4])
    terminated = np.array([False, False, True])
    td = qlearning.update(q, s, a, reward, s_next, terminated, alpha=0.5, gamma=0.9)
    # (0, 0): 1 + 0.9 * 0.3 - 0.0 = 1.27      (1, 1): 1 + 0.9 * 0.1 - 0.3 = 0.79 (q[0] before its update)
    # (3, 0): terminal, 0 - 0.6 = -0.6
    assert td.tolist() == pytest.approx([1.27, 0.79, -0.6])
    assert q[0, 0] == pytest.approx(0.635)
    assert q[1, 1] == pytest.approx(0.695)
    assert q[3, 0] == pytest.approx(0.3)
    untouched = np.arange(12, dtype=float).reshape(6, 2) / 10
    mask = np.ones_like(q, dtype=bool)
    mask[s, a] = False
    np.testing.assert_array_equal(q[mask], untouched[mask])


def test_td_update_same_state_action_twice_in_a_batch_applies_one_of_them():
    """Documented: when two environments update the same (s, a) in one step, one update wins."""
    q = np.zeros((3, 2))
    q[2] = [1.0, 2.0]
    qlearning.update(q, np.array([0, 0]), np.array([1, 1]), np.array([1.0, 3.0]), np.array([2, 2]),
                     np.array([False, False]), alpha=0.5, gamma=1.0)
    singles = {0.5 * (1.0 + 2.0), 0.5 * (3.0 + 2.0)}
    assert q[0, 1] in singles


# ------------------------------------------------------------------------------------------------ the loop


def test_seed_preset_episodes_respect_the_100_step_cap_and_the_episode_budget():
    config = preset_config("qlearning", "seed", max_episodes=150)
    _, result, events = run_events(config, seed=0)
    episodes = [e for e in events if isinstance(e, EpisodeEnded)]
    lengths = [e.length for e in episodes]
    assert result.episodes == len(episodes) == 150
    assert max(lengths) == 100  # the cap is reached (the agent learns within 150 episodes) ...
    assert all(1 <= length <= 100 for length in lengths)  # ... and never exceeded
    # One environment: every step belongs to a finished episode, so env_steps is the running sum of lengths.
    assert [e.env_steps for e in episodes] == np.cumsum(lengths).tolist()
    assert result.env_steps == sum(lengths)
    # ε and α reported for episode n (1-based) are the seed's log-decay at n - 1 finished episodes.
    for e in episodes:
        assert e.epsilon == pytest.approx(max(0.1, min(1.0, 1.0 - math.log10(e.episode / 25))))
        assert e.learning_rate == pytest.approx(max(0.01, min(1.0, 1.0 - math.log10(e.episode / 25))))


def test_episode_events_and_periodic_evaluations():
    config = preset_config("qlearning", "fast", total_env_steps=20_000, eval_every_steps=2000)
    _, result, events = run_events(config)
    episodes = [e for e in events if isinstance(e, EpisodeEnded)]
    assert [e.episode for e in episodes] == list(range(1, len(episodes) + 1))
    assert all(e.episode_return == e.length for e in episodes)  # reward 1 per step
    steps = [e.env_steps for e in episodes]
    assert steps == sorted(steps)
    assert all(done <= at for done, at in zip(np.cumsum([e.length for e in episodes]), steps))
    # ε is computed before each vector step: from one of the episode counts that step can start from.
    for e in episodes:
        assert e.epsilon in {value_at(config.epsilon, n) for n in range(max(0, e.episode - config.n_envs), e.episode)}
    evaluations = [e for e in events if isinstance(e, Evaluated)]
    # Evaluation k comes at the first vector step whose env steps taken reach k · 2000. Taken: the transitions and
    # one reset step for each episode that ended before this step (e.episodes counts this step's too: ≤ n_envs).
    due = (result.env_steps + result.episodes) // 2000  # at most this many periodic ones; + the final one
    assert due - 1 <= len(evaluations) <= due + 1
    for k, e in enumerate(evaluations[:-1], start=1):
        assert k * 2000 <= e.env_steps + e.episodes < k * 2000 + 2 * config.n_envs
    for e in evaluations:
        assert e.solved <= (e.mean_return >= 475)  # a solved-looking evaluation may fail its confirmation
    first_solved = next((k for k, e in enumerate(evaluations) if e.solved), len(evaluations))
    assert all(e.solved == (e.mean_return >= 475) for e in evaluations[first_solved:])  # confirmed once per run
    assert evaluations[-1].env_steps == result.env_steps
    assert evaluations[-1].mean_return == result.final_eval_mean
    assert result.best_eval_mean == max(e.mean_return for e in evaluations)


def test_the_loop_bootstraps_on_truncation_but_not_on_termination(monkeypatch):
    """With a 10-step cap most episodes are truncated; only real falls may reach the update as terminated."""
    flags: list[np.ndarray] = []

    update = qlearning.update

    def recording_update(q, s, a, reward, s_next, terminated, alpha, gamma):
        flags.append(np.asarray(terminated).copy())
        return update(q, s, a, reward, s_next, terminated, alpha, gamma)

    monkeypatch.setattr(qlearning, "update", recording_update)
    config = preset_config("qlearning", "seed", max_episode_steps=10, max_episodes=200)
    _, _, events = run_events(config)
    lengths = [e.length for e in events if isinstance(e, EpisodeEnded)]
    fell = sum(length < 10 for length in lengths)
    capped = sum(length == 10 for length in lengths)
    terminated = int(np.concatenate(flags).sum())
    assert capped > 100
    # A fall on exactly the 10th step is both terminated and truncated; allow a few of those.
    assert fell <= terminated <= fell + capped // 10
