"""What a study optimizes: one value per run from its stored row and evaluations, the IQM across a trial's seeds.

A run that never solves still needs a value for the *_to_solve objectives: it counts as a stated penalty, twice its
budget (in env steps, or in the seconds the whole budget takes at the run's speed), so that a solve within the
budget beats no solve (for time: at a like speed) and the penalty stands apart in a study's plots. Each
``Objective.definition`` says so in words, for pages and help.

While a trial's runs train, a pruner compares trials at fixed env-step points (``report_steps``, the same for every
trial of a study) by learning progress: ``intermediate_value`` is the IQM across seeds of each run's latest
evaluation return, negated for a minimized objective so that the study's direction applies to it too.

Import-light: plain run dicts and evaluation rows in, floats out.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Literal

from cartpole_core.config.models import TrainConfig
from cartpole_core.stats import iqm, probability_of_improvement

PENALTY_FACTOR = 2  # an unsolved run counts as this many times its budget (env steps, or the time they take)
REPORT_POINTS = 10  # intermediate values per run: at every tenth of the budget


@dataclass(frozen=True)
class Objective:
    """What a study optimizes, in words a user reads beside its results."""

    name: str
    direction: Literal["minimize", "maximize"]
    title: str
    definition: str  # shown to users; says how an unsolved run counts


OBJECTIVES: dict[str, Objective] = {objective.name: objective for objective in (
    Objective(
        "steps_to_solve", "minimize", "Env steps to solve",
        "Environment steps until the first solved evaluation (mean return ≥ 475 over 20 fixed-seed episodes, "
        "confirmed on 100 others); "
        f"a run that never solves counts as {PENALTY_FACTOR} × its budget (total_env_steps). Lower is better.",
    ),
    Objective(
        "time_to_solve", "minimize", "Time to solve (s)",
        "Training wall-clock seconds (evaluation excluded) until the first solved evaluation; a run that never "
        f"solves counts as {PENALTY_FACTOR} × the time its whole budget takes at its speed (train_seconds × "
        "total_env_steps / env_steps). Lower is better.",
    ),
    Objective(
        "auc", "maximize", "Mean evaluation return over training",
        "The area under the evaluation curve divided by the budget: each evaluation's mean return held until the "
        "next one (0 before the first, and to the end of the budget after a run's last — a run that stopped at its "
        "solve keeps it). From 0 to 500; it rewards learning early and staying solved. Higher is better.",
    ),
    Objective(
        "final", "maximize", "Final evaluation return",
        "The mean return of the run's last evaluation (20 fixed-seed episodes, 0 to 500); a run without an "
        "evaluation counts 0. Higher is better.",
    ),
)}


def run_value(objective: str | Objective, run: dict[str, Any], evaluations: Sequence[dict[str, Any]]) -> float:
    """One ended run's value: its store row (``RunStore.get_run``) and evaluations (``RunStore.evaluations``)."""
    return _RUN_VALUES[_objective(objective).name](run, evaluations)


def run_holds(objective: str | Objective, run: dict[str, Any], evaluations: Sequence[dict[str, Any]]) -> bool:
    """Whether an ended run reached what a study on ``objective`` is after: it solved — for ``final``, its last
    evaluation is a solved one. A confirmation counts the fresh seeds that hold."""
    if _objective(objective).name == "final":
        return bool(evaluations) and bool(max(evaluations, key=lambda row: row["env_steps"])["solved"])
    return bool(run["solved"])


def trial_value(objective: str | Objective, values: Sequence[float]) -> float:
    """A trial's value: the interquartile mean of its runs' values (one per seed)."""
    _objective(objective)
    return iqm(values)


def chance_to_beat(objective: str | Objective, values: Sequence[float], best: Sequence[float]) -> float:
    """How often a seed of a trial does better than a seed of the best trial (lower when minimizing), ties counting
    half: the probability of improvement, oriented by the objective's direction. The best trial against itself: ½."""
    if _objective(objective).direction == "minimize":
        return probability_of_improvement([-value for value in values], [-value for value in best])
    return probability_of_improvement(values, best)


def report_steps(config: TrainConfig, points: int = REPORT_POINTS) -> list[int]:
    """The env-step points where a trial reports intermediate values: ``points`` even steps up to the budget."""
    return sorted({round(config.total_env_steps * i / points) for i in range(1, points + 1)})


def intermediate_value(objective: str | Objective, evaluations_per_run: Sequence[Sequence[dict[str, Any]]],
                       step: int) -> float | None:
    """The IQM across a trial's runs of each one's latest evaluation return at or before ``step``, negated when
    the objective is minimized; None while a run has no evaluation by then. Call it once every run has reached
    ``step`` or ended: a run still short of it would be judged on an older evaluation."""
    direction = _objective(objective).direction
    latest = [_latest_return(evaluations, step) for evaluations in evaluations_per_run]
    if not latest or any(value is None for value in latest):
        return None
    value = iqm(latest)
    return -value if direction == "minimize" else value


def _objective(objective: str | Objective) -> Objective:
    name = objective.name if isinstance(objective, Objective) else objective
    if name not in OBJECTIVES:
        raise ValueError(f"objective {name!r} is unknown; allowed: {', '.join(OBJECTIVES)}")
    return OBJECTIVES[name]


def _latest_return(evaluations: Sequence[dict[str, Any]], step: int) -> float | None:
    reached = [row for row in evaluations if row["env_steps"] <= step]
    return max(reached, key=lambda row: row["env_steps"])["mean_return"] if reached else None


def _budget(run: dict[str, Any]) -> int:
    return json.loads(run["config_json"])["total_env_steps"]


def _steps_to_solve(run: dict[str, Any], evaluations: Sequence[dict[str, Any]]) -> float:
    if run["solved"] and run["steps_to_solve"] is not None:
        return float(run["steps_to_solve"])
    return float(PENALTY_FACTOR * _budget(run))


def _time_to_solve(run: dict[str, Any], evaluations: Sequence[dict[str, Any]]) -> float:
    if run["solved"] and run["time_to_solve_s"] is not None:
        return float(run["time_to_solve_s"])
    # Extrapolated to the whole budget: a run that ended early (max_episodes) must not look fast.
    return PENALTY_FACTOR * run["train_seconds"] * _budget(run) / max(run["env_steps"], 1)


def _auc(run: dict[str, Any], evaluations: Sequence[dict[str, Any]]) -> float:
    budget = _budget(run)
    curve = sorted((min(row["env_steps"], budget), row["mean_return"]) for row in evaluations)
    ends = [step for step, _ in curve[1:]] + [budget]
    return sum(mean_return * (end - step) for (step, mean_return), end in zip(curve, ends)) / budget


def _final(run: dict[str, Any], evaluations: Sequence[dict[str, Any]]) -> float:
    if run["final_eval"] is not None:
        return float(run["final_eval"])
    return float(evaluations[-1]["mean_return"]) if evaluations else 0.0


_RUN_VALUES: dict[str, Callable[[dict[str, Any], Sequence[dict[str, Any]]], float]] = {
    "steps_to_solve": _steps_to_solve, "time_to_solve": _time_to_solve, "auc": _auc, "final": _final,
}
