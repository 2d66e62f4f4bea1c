"""Statistics across seeds (cartpole_core.stats) and the objectives a study ranks its trials by (which use them),
against hand-computed values."""

from __future__ import annotations

import json
import math
from typing import Any

import numpy as np
import pytest
from scipy import stats as scipy_stats

from cartpole_core.config.presets import preset_config
from cartpole_core.records import Evaluated, RunResult
from cartpole_core.runs.store import RunStore
from cartpole_core.stats import Estimate, bootstrap_ci, iqm, iqm_estimate, probability_of_improvement
from cartpole_core.studies.objectives import (
    OBJECTIVES,
    intermediate_value,
    report_steps,
    run_value,
    trial_value,
)

# -------------------------------------------------------------------------------------------- statistics


@pytest.mark.parametrize(("values", "expected"), [
    ([1, 2, 3, 4, 5, 6, 7, 8], (3 + 4 + 5 + 6) / 4),  # two cut from each end
    ([1, 2, 3, 100], (2 + 3) / 2),  # the outlying seed does not count
    ([4, 1, 3, 2, 1000], (2 + 3 + 4) / 3),  # int(5 / 4) = 1 cut from each end, whatever the order
    ([10, 20, 30], 20),  # fewer than four: nothing to cut, the mean
    ([7.5], 7.5),
])
def test_iqm_is_the_mean_of_the_middle_half(values, expected):
    assert iqm(values) == pytest.approx(expected)


def test_iqm_is_scipys_trimmed_mean():
    rng = np.random.default_rng(1)
    for n in range(1, 30):
        values = rng.normal(size=n)
        assert iqm(values) == pytest.approx(scipy_stats.trim_mean(values, 0.25))


def test_the_interval_of_a_constant_is_that_constant():
    assert bootstrap_ci([212.0] * 5) == (212.0, 212.0)


def test_the_interval_holds_the_estimate_narrows_with_the_level_and_repeats_with_its_seed():
    values = [120.0, 180.0, 240.0, 300.0, 475.0, 500.0, 90.0, 410.0]
    low, high = bootstrap_ci(values)
    assert min(values) <= low < iqm(values) < high <= max(values)
    narrow = bootstrap_ci(values, level=0.5)
    assert low <= narrow[0] < narrow[1] <= high
    assert bootstrap_ci(values) == (low, high)
    assert iqm_estimate(values) == Estimate(iqm(values), low, high, n=8)


def test_the_interval_ends_are_resampled_iqms_never_interpolated():
    """Two seeds, 0 and 1: a resample is both 0s (a quarter of them), both 1s (a quarter) or one of each (half), with
    IQMs 0, 1 and ½; the ends of an interval are among those three, whatever the seed."""
    for seed in range(5):
        assert bootstrap_ci([0.0, 1.0], seed=seed) == (0.0, 1.0)  # 2.5 % and 97.5 % fall in the outer quarters
        assert bootstrap_ci([0.0, 1.0], level=0.1, seed=seed) == (0.5, 0.5)  # 45 % and 55 % in the middle half


def test_a_seed_that_never_reached_counts_above_every_number_and_stays_infinite():
    inf = math.inf
    assert iqm([6000, inf, 8000, 10_000]) == 9000  # trimmed with the fastest seed
    assert iqm([6000, inf, 8000, inf]) == inf  # the middle half keeps one: never reached
    assert iqm([1000, 2000, inf]) == inf  # fewer than four: nothing trimmed
    # A resample of [1, ∞] is [1, 1] a quarter of the time: the interval's bottom is 1, its top ∞ — not NaN.
    assert bootstrap_ci([1.0, inf]) == (1.0, inf)
    assert bootstrap_ci([inf, inf, inf]) == (inf, inf)
    assert probability_of_improvement([inf, 5], [inf, 3]) == (0.5 + 0.0 + 1.0 + 1.0) / 4  # ∞ ties ∞, beats 3 and 5


@pytest.mark.parametrize(("x", "y", "expected"), [
    ([3, 4, 5], [0, 1, 2], 1.0),
    ([0, 1, 2], [3, 4, 5], 0.0),
    ([1, 2, 3], [1, 2, 3], 0.5),
    ([1, 2], [1, 3], (0.5 + 0 + 1 + 0) / 4),  # 1 vs 1 ties, 1 vs 3 loses, 2 vs 1 wins, 2 vs 3 loses
])
def test_probability_of_improvement_counts_wins_and_half_the_ties_over_all_pairs(x, y, expected):
    assert probability_of_improvement(x, y) == pytest.approx(expected)
    assert probability_of_improvement(y, x) == pytest.approx(1 - expected)


def test_probability_of_improvement_is_mann_whitney_u_over_all_pairs():
    rng = np.random.default_rng(2)
    x, y = rng.integers(0, 5, size=7), rng.integers(0, 5, size=4)
    assert probability_of_improvement(x, y) == pytest.approx(scipy_stats.mannwhitneyu(x, y).statistic / (7 * 4))


def test_statistics_refuse_no_values_and_non_finite_ones():
    with pytest.raises(ValueError, match="at least one run"):
        iqm([])
    with pytest.raises(ValueError, match="must be numbers, or inf for never reached; got"):
        bootstrap_ci([1.0, float("nan")])
    with pytest.raises(ValueError, match="must be numbers"):
        iqm([1.0, -math.inf])
    with pytest.raises(ValueError, match=r"level \(1.5\)"):
        bootstrap_ci([1.0, 2.0], level=1.5)


# -------------------------------------------------------------------------------------------- objectives

BUDGET = 1000


def stored_run(**fields: Any) -> dict[str, Any]:
    """A run row as ``RunStore.get_run`` returns it, unsolved unless the fields say otherwise."""
    return {"config_json": json.dumps({"algo": "dqn", "total_env_steps": BUDGET}), "env_steps": BUDGET,
            "train_seconds": 10.0, "solved": False, "steps_to_solve": None, "time_to_solve_s": None,
            "final_eval": None, **fields}


def evaluation(env_steps: int, mean_return: float) -> dict[str, Any]:
    return {"env_steps": env_steps, "episodes": 0, "mean_return": mean_return, "std_return": 0.0,
            "solved": mean_return >= 475, "time_s": 0.0}


CURVE = [evaluation(250, 100.0), evaluation(500, 300.0), evaluation(750, 500.0)]


def test_objectives_say_how_they_are_optimized_and_how_an_unsolved_run_counts():
    assert {name: objective.direction for name, objective in OBJECTIVES.items()} == {
        "steps_to_solve": "minimize", "time_to_solve": "minimize", "auc": "maximize", "final": "maximize"}
    for name in ("steps_to_solve", "time_to_solve"):
        assert "never solves counts as 2 ×" in OBJECTIVES[name].definition


def test_steps_to_solve_of_an_unsolved_run_is_twice_its_budget():
    assert run_value("steps_to_solve", stored_run(solved=True, steps_to_solve=640), CURVE) == 640
    assert run_value("steps_to_solve", stored_run(), CURVE) == 2 * BUDGET
    assert run_value("steps_to_solve", stored_run(env_steps=300), CURVE[:1]) == 2 * BUDGET


def test_time_to_solve_of_an_unsolved_run_is_twice_the_time_of_its_whole_budget():
    assert run_value("time_to_solve", stored_run(solved=True, time_to_solve_s=4.5), CURVE) == 4.5
    assert run_value("time_to_solve", stored_run(), CURVE) == 2 * 10.0
    # Ended after a quarter of its budget (max_episodes): not four times faster than a run that used it all.
    assert run_value("time_to_solve", stored_run(env_steps=250, train_seconds=2.5), CURVE[:1]) == 2 * 10.0


def test_auc_is_the_mean_evaluation_return_over_the_budget():
    # 0 until step 250, 100 until 500, 300 until 750, 500 until the budget's end.
    assert run_value("auc", stored_run(), CURVE) == pytest.approx((100 * 250 + 300 * 250 + 500 * 250) / BUDGET)
    # Stopped at its solve (step 500): its last value holds to the budget's end; an evaluation past it counts none.
    assert run_value("auc", stored_run(), [evaluation(250, 100.0), evaluation(500, 480.0)]) == pytest.approx(
        (100 * 250 + 480 * 500) / BUDGET)
    assert run_value("auc", stored_run(), [*CURVE, evaluation(BUDGET + 8, 20.0)]) == pytest.approx(225.0)
    assert run_value("auc", stored_run(), []) == 0.0


def test_final_is_the_last_evaluation():
    assert run_value("final", stored_run(final_eval=488.5), CURVE) == 488.5
    assert run_value("final", stored_run(), CURVE) == 500.0
    assert run_value("final", stored_run(), []) == 0.0


def test_objectives_read_the_stores_run_rows(tmp_path):
    config = preset_config("dqn", "fast")
    store = RunStore(tmp_path)
    store.create_run("r1", config.to_json(), "dqn", 0)
    store.append_events("r1", [Evaluated(500, 3, 120.0, 5.0, False, 0.5), Evaluated(1000, 9, 490.0, 2.0, True, 1.1)])
    result = RunResult(algo="dqn", seed=0, status="completed", env_steps=1000, episodes=9, train_seconds=1.2,
                       solved=True, time_to_solve_s=1.1, steps_to_solve=1000, final_eval_mean=490.0,
                       final_eval_std=2.0, best_eval_mean=490.0, env_steps_per_s=800.0)
    store.finish_run("r1", result, "completed")
    run, evaluations = store.get_run("r1"), store.evaluations("r1")
    assert run_value("steps_to_solve", run, evaluations) == 1000
    assert run_value("time_to_solve", run, evaluations) == 1.1
    assert run_value("final", run, evaluations) == 490.0
    budget = config.total_env_steps
    assert run_value("auc", run, evaluations) == pytest.approx((120 * 500 + 490 * (budget - 1000)) / budget)


def test_a_trial_is_worth_the_iqm_of_its_seeds():
    assert trial_value("steps_to_solve", [900, 1000, 1100, 2000]) == 1050
    with pytest.raises(ValueError, match="objective 'speed' is unknown; allowed: steps_to_solve, time_to_solve"):
        trial_value("speed", [1.0])


def test_report_steps_are_tenths_of_the_budget():
    assert report_steps(preset_config("ppo", "fast", total_env_steps=25_000)) == list(range(2500, 25_001, 2500))
    assert report_steps(preset_config("ppo", "fast", total_env_steps=100), points=3) == [33, 67, 100]


def test_intermediate_value_is_the_iqm_of_each_runs_latest_evaluation_in_the_studys_direction():
    runs = [CURVE, [evaluation(250, 50.0), evaluation(700, 450.0)], [evaluation(400, 10.0)]]
    assert intermediate_value("auc", runs, 200) is None  # no run has evaluated yet
    assert intermediate_value("auc", runs, 300) is None  # the third has not
    assert intermediate_value("auc", runs, 500) == pytest.approx((300 + 50 + 10) / 3)
    assert intermediate_value("final", runs, 800) == pytest.approx((500 + 450 + 10) / 3)
    assert intermediate_value("steps_to_solve", runs, 800) == pytest.approx(-(500 + 450 + 10) / 3)
    assert intermediate_value("final", [], 800) is None
