"""Schedules at chosen points, computed by hand, and the seed's own formulas reproduced exactly."""

from __future__ import annotations

import math

import numpy as np
import pytest

from cartpole_core.config.models import EpsilonSchedule, LearningRateSchedule, Schedule, StepSizeSchedule
from cartpole_core.config.presets import preset_config
from cartpole_core.config.schedules import curve, value_at


def seed_learning_rate(n: int, min_rate: float = 0.01) -> float:
    """Copied from the seed document (tabular Q-learning)."""
    return max(min_rate, min(1.0, 1.0 - math.log10((n + 1) / 25)))


def seed_exploration_rate(n: int, min_rate: float = 0.1) -> float:
    """Copied from the seed document (tabular Q-learning)."""
    return max(min_rate, min(1.0, 1.0 - math.log10((n + 1) / 25)))


@pytest.mark.parametrize("t", [0, 1, 17.5, 10_000, 1e9])
def test_constant_is_start_everywhere(t):
    assert value_at(Schedule(kind="constant", start=0.3, end=0.9), t) == 0.3


@pytest.mark.parametrize(("t", "expected"), [
    (-10, 1.0),  # before the start: clamped to start
    (0, 1.0),
    (25, 1.0 - 0.25 * 0.95),
    (50, 0.525),
    (100, 0.05),
    (101, 0.05),  # after the duration: stays at end
    (1e9, 0.05),
])
def test_linear_decay(t, expected):
    schedule = Schedule(kind="linear", start=1.0, end=0.05, duration=100)
    assert value_at(schedule, t) == pytest.approx(expected, abs=1e-12)


def test_linear_warm_up_rises_from_start_to_end():
    schedule = Schedule(kind="linear", start=0.0, end=1.0, duration=10)
    assert [value_at(schedule, t) for t in (0, 5, 10, 20)] == pytest.approx([0.0, 0.5, 1.0, 1.0])


def test_exponential_seed_dqn_epsilon():
    """The seed: epsilon = max(0.2, 1.0 * 0.99 ** episode)."""
    epsilon = preset_config("dqn", "seed").epsilon
    assert value_at(epsilon, 0) == 1.0
    assert value_at(epsilon, 1) == pytest.approx(0.99)
    assert value_at(epsilon, 10) == pytest.approx(0.99**10)
    # 0.99 ** 160 = 0.2003 is still above the floor, 0.99 ** 161 = 0.1983 is not.
    assert value_at(epsilon, 160) == pytest.approx(0.99**160)
    assert value_at(epsilon, 161) == 0.2
    assert value_at(epsilon, 100_000) == 0.2
    for episode in range(0, 2500, 7):
        assert value_at(epsilon, episode) == pytest.approx(max(0.2, 1.0 * 0.99**episode))


def test_exponential_with_other_start_and_factor():
    schedule = Schedule(kind="exponential", start=0.5, end=0.1, factor=0.5)
    assert [value_at(schedule, t) for t in (0, 1, 2, 3, 50)] == pytest.approx([0.5, 0.25, 0.125, 0.1, 0.1])


@pytest.mark.parametrize(("n", "epsilon", "alpha"), [
    (0, 1.0, 1.0),  # 1 - log10(1/25) > 1: capped at 1
    (24, 1.0, 1.0),  # 1 - log10(1) = 1
    (99, 1 - math.log10(4), 1 - math.log10(4)),
    (124, 1 - math.log10(5), 1 - math.log10(5)),
    (224, 0.1, 1 - math.log10(9)),  # 0.0458: below ε's floor, above α's
    (249, 0.1, 0.01),  # 1 - log10(10) = 0: both at their floors
    (5000, 0.1, 0.01),
])
def test_log_decay_seed_points_by_hand(n, epsilon, alpha):
    config = preset_config("qlearning", "seed")
    assert value_at(config.epsilon, n) == pytest.approx(epsilon, abs=1e-12)
    assert value_at(config.learning_rate, n) == pytest.approx(alpha, abs=1e-12)


def test_log_decay_equals_seed_formula_for_both_floors():
    config = preset_config("qlearning", "seed")
    for n in range(0, 1500):
        assert value_at(config.epsilon, n) == pytest.approx(seed_exploration_rate(n), abs=1e-12)
        assert value_at(config.learning_rate, n) == pytest.approx(seed_learning_rate(n), abs=1e-12)


def test_log_decay_with_other_k_and_start():
    schedule = Schedule(kind="log_decay", start=0.8, end=0.05, k=100)
    assert value_at(schedule, 0) == 0.8  # 1 - log10(1/100) = 3, capped at start
    assert value_at(schedule, 199) == pytest.approx(1 - math.log10(2))
    assert value_at(schedule, 10**6) == 0.05


def test_subclass_defaults():
    assert value_at(EpsilonSchedule(), 0) == 1.0  # linear 1.0 → 0.05 over 1000
    assert value_at(EpsilonSchedule(), 500) == pytest.approx(0.525)
    assert value_at(StepSizeSchedule(), 12345) == 0.1  # constant
    assert value_at(LearningRateSchedule(), 12345) == 1e-3  # constant


def test_curve_long_horizon_has_requested_points_and_endpoints():
    schedule = Schedule(kind="linear", start=1.0, end=0.0, duration=10_000)
    t, values = curve(schedule, horizon=10_000, points=200)
    assert t.shape == values.shape == (200,)
    assert t[0] == 0 and t[-1] == 10_000
    assert np.all(np.diff(t) > 0)
    assert values[0] == 1.0 and values[-1] == 0.0
    assert values == pytest.approx([value_at(schedule, x) for x in t])


def test_curve_short_horizon_has_one_point_per_unit():
    schedule = Schedule(kind="exponential", start=1.0, end=0.2, factor=0.99)
    t, values = curve(schedule, horizon=50, points=200)
    assert t.tolist() == list(range(51))
    assert values == pytest.approx([max(0.2, 0.99**n) for n in range(51)])


def test_curve_zero_horizon_still_plots_a_segment():
    t, values = curve(Schedule(kind="constant", start=0.5), horizon=0)
    assert t.tolist() == [0, 1]
    assert values.tolist() == [0.5, 0.5]
