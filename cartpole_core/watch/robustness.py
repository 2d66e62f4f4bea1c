"""Robustness: how a trained policy fares when the world differs from the one it learned in.

Two kinds of change, called *factors*:

- physics — gravity, cart mass, pole mass, half pole length and push force (Gymnasium's names, see
  ``envs.CONDITIONS`` for their defaults and allowed ranges), set on the environment before the episodes start;
- ``obs_noise`` — Gaussian noise with standard deviation σ added to what the agent *sees*, in each observation
  dimension's own unit (m, m/s, rad, rad/s). The true state, and so the physics, is untouched: the noise only
  blurs the policy's input. It comes from ``envs.noise_generator`` of the evaluation seed (the stream a replay of
  that seed draws from), so the same seed gives the same returns, and σ = 0 leaves the policy unwrapped: exactly
  the plain evaluation.

A grid varies two factors over lists of values; every cell is one ``evaluate_returns`` call (its episodes
stepped together in one vectorized env) on the same episode seed, so cells differ only in their conditions,
and a cell at default conditions equals the plain evaluation the training curves show.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import plotly.graph_objects as go

from cartpole_core.engine.envs import (
    CONDITIONS,
    MAX_EPISODE_STEPS,
    OBS_NOISE,
    SOLVED_RETURN,
    Condition,
    add_noise,
    check_condition,
    check_conditions,
    exact_text,
    noise_generator,
    unknown_condition,
)
from cartpole_core.engine.evaluate import EVAL_EPISODES, EVAL_SEED, BatchPolicy, evaluate_returns

NOISE = OBS_NOISE
MAX_RETURN = float(MAX_EPISODE_STEPS)  # reward 1 per step up to CartPole-v1's cap: the top of every colour scale
# Red → yellow below "solved", green from 475 on (475 / 500 = 0.95), so solved cells stand out at a glance.
RETURN_COLORSCALE = [[0.0, "#b91c1c"], [0.5, "#facc15"], [0.949, "#bef264"], [0.95, "#4ade80"], [1.0, "#15803d"]]
DEFAULT_POINTS = 5  # per axis: 0.1×, 0.32×, 1×, 3.2×, 10× over the full range, the default in the middle
DEFAULT_NOISE_RANGE = (0.0, 0.2)  # σ: from none to where a solved agent usually fails

ProgressSink = Callable[[int, int], None]  # (cells done, cells in total)

# The factors and their ranges are the lab's one set (``envs.CONDITIONS``), so that every condition a grid can
# produce is one the Replay page and the ``replay`` command accept.
Factor = Condition
FACTORS: dict[str, Factor] = CONDITIONS


def _factor(name: str) -> Factor:
    if name not in FACTORS:
        raise unknown_condition(name, FACTORS, "factor")
    return FACTORS[name]


def validate_conditions(conditions: Mapping[str, float]) -> dict[str, float]:
    """The conditions as floats: ``envs.check_conditions``, the check the Replay page and the ``replay`` command use
    too (ConditionError, a ValueError, for an unknown factor or a value outside its allowed range)."""
    return check_conditions(conditions, FACTORS, "factor")


def multiple_range(factor: str) -> tuple[float, float]:
    """The allowed range of a physics factor as multiples of its default (0.1×, 10×): the grid's axis inputs."""
    spec = _factor(factor)
    return float(f"{spec.low / spec.default:.6g}"), float(f"{spec.high / spec.default:.6g}")


def noisy_policy(policy: BatchPolicy, obs_noise: float, seed: int = EVAL_SEED) -> BatchPolicy:
    """``policy`` acting on observations blurred by N(0, ``obs_noise``²) per dimension; σ = 0 returns it as is."""
    if obs_noise == 0:
        return policy
    rng = noise_generator(seed)

    def act(obs: np.ndarray) -> np.ndarray:
        return policy(add_noise(obs, rng, obs_noise))

    return act


def as_policy(agent_or_policy: Any) -> BatchPolicy:
    """An agent's greedy batch policy (``act_batch``), or a batch policy given directly."""
    return agent_or_policy.act_batch if hasattr(agent_or_policy, "act_batch") else agent_or_policy


def evaluate_under(agent_or_policy: Any, conditions: Mapping[str, float] | None = None,
                   episodes: int = EVAL_EPISODES, seed: int = EVAL_SEED) -> np.ndarray:
    """Returns of ``episodes`` greedy episodes under ``conditions`` (physics values and ``obs_noise``);
    with no conditions, exactly ``evaluate_returns(policy, episodes, seed)``."""
    physics = validate_conditions(conditions or {})
    obs_noise = physics.pop(NOISE, 0.0)
    return evaluate_returns(noisy_policy(as_policy(agent_or_policy), obs_noise, seed), episodes, seed, **physics)


def axis_values(factor: str, points: int, low: float, high: float) -> list[float]:
    """``points`` values of a factor from ``low`` to ``high``: multiples of the default, geometrically spaced,
    for physics (0.1× – 10× in 5 points gives 0.1, 0.32, 1, 3.2, 10 ×); σ itself, evenly spaced, for noise.
    Rounded to 6 significant digits, so the middle of a symmetric range is exactly the default; each value must
    lie in the factor's allowed range."""
    spec = _factor(factor)
    if points < 1:
        raise ValueError(f"{spec.label} needs at least 1 point, got {points}")
    if spec.is_physics:
        if not 0 < low <= high:
            raise ValueError(f"{spec.label} multiples must satisfy 0 < min ≤ max, got {low:g}× and {high:g}×")
        values = spec.default * np.geomspace(low, high, points)
    else:
        if not 0 <= low <= high:
            raise ValueError(f"{spec.label} must satisfy 0 ≤ min ≤ max, got {low:g} and {high:g}")
        values = np.linspace(low, high, points)
    return [check_condition(factor, float(f"{value:.6g}")) for value in values]


@dataclass
class RobustnessGrid:
    """Mean and std of return per cell, rows = ``y_values``, columns = ``x_values``."""

    x_factor: str
    x_values: list[float]
    y_factor: str
    y_values: list[float]
    mean: np.ndarray  # (len(y_values), len(x_values))
    std: np.ndarray
    episodes: int
    seed: int
    base: dict[str, float] = field(default_factory=dict)

    @property
    def solved(self) -> np.ndarray:
        return self.mean >= SOLVED_RETURN

    @property
    def solved_fraction(self) -> float:
        return float(self.solved.mean())

    @property
    def default_cell(self) -> tuple[int, int] | None:
        """(row, column) of the cell whose two factors are at their defaults, if the grid has one."""
        rows = [i for i, v in enumerate(self.y_values) if math.isclose(v, FACTORS[self.y_factor].default)]
        cols = [j for j, v in enumerate(self.x_values) if math.isclose(v, FACTORS[self.x_factor].default)]
        return (rows[0], cols[0]) if rows and cols else None

    def conditions(self, row: int, col: int) -> dict[str, float]:
        """Everything that was changed in one cell (``base`` plus the two axis values)."""
        return {**self.base, self.x_factor: self.x_values[col], self.y_factor: self.y_values[row]}

    def worst_cell(self) -> tuple[int, int]:
        return tuple(int(i) for i in np.unravel_index(np.argmin(self.mean), self.mean.shape))


def robustness_grid(agent_or_policy: Any, x_factor: str, x_values: Sequence[float], y_factor: str,
                    y_values: Sequence[float], episodes: int = EVAL_EPISODES, seed: int = EVAL_SEED,
                    base: Mapping[str, float] | None = None,
                    on_progress: ProgressSink | None = None) -> RobustnessGrid:
    """Evaluate under every (x, y) pair, other factors at ``base`` (e.g. a fixed noise σ) or their defaults.

    Every cell runs the same ``episodes`` seeded episodes, with its noise (if any) seeded afresh, so a cell's
    result does not depend on the rest of the grid: it equals ``evaluate_under`` of its conditions.
    """
    for name in (x_factor, y_factor):
        _factor(name)  # raises for an unknown name
    if x_factor == y_factor:
        raise ValueError(f"x and y are both {x_factor!r}: choose two different factors")
    for name, values in ((x_factor, x_values), (y_factor, y_values)):
        if len(values) == 0:
            raise ValueError(f"the {name} axis has no values; give at least one")
        for value in values:
            validate_conditions({name: value})
    if episodes < 1:
        raise ValueError(f"episodes per cell ({episodes}) must be at least 1")
    base = validate_conditions(base or {})
    base = {name: value for name, value in base.items() if name not in (x_factor, y_factor)}
    grid = RobustnessGrid(x_factor, [float(v) for v in x_values], y_factor, [float(v) for v in y_values],
                          np.zeros((len(y_values), len(x_values))), np.zeros((len(y_values), len(x_values))),
                          int(episodes), int(seed), base)
    total = grid.mean.size
    for row in range(len(grid.y_values)):
        for col in range(len(grid.x_values)):
            returns = evaluate_under(agent_or_policy, grid.conditions(row, col), episodes, seed)
            grid.mean[row, col], grid.std[row, col] = returns.mean(), returns.std()
            if on_progress:
                on_progress(row * len(grid.x_values) + col + 1, total)
    return grid


# ------------------------------------------------------------------------------------------------ display


def value_label(factor: str, value: float) -> str:
    """Tick label: ``4.9 (0.5×)`` for physics, ``0.1`` for noise."""
    spec = FACTORS[factor]
    return f"{value:.3g} ({value / spec.default:.2g}×)" if spec.is_physics else f"{value:.3g}"


def grid_figure(grid: RobustnessGrid) -> go.Figure:
    """Heatmap of mean return on a fixed 0–500 scale (grids stay comparable), each cell labelled with its mean,
    the default cell outlined; hover shows the std too."""
    x_ticks = [value_label(grid.x_factor, v) for v in grid.x_values]
    y_ticks = [value_label(grid.y_factor, v) for v in grid.y_values]
    text = [[f"{mean:.0f}" for mean in row] for row in grid.mean]
    default = grid.default_cell
    if default:
        text[default[0]][default[1]] += "<br>default"
    x_title, y_title = FACTORS[grid.x_factor].title, FACTORS[grid.y_factor].title
    fig = go.Figure(go.Heatmap(
        z=grid.mean.tolist(), x=x_ticks, y=y_ticks, zmin=0, zmax=MAX_RETURN, colorscale=RETURN_COLORSCALE,
        text=text, texttemplate="%{text}", customdata=grid.std.tolist(), colorbar={"title": {"text": "mean return"}},
        hovertemplate=f"{x_title}: %{{x}}<br>{y_title}: %{{y}}<br>return %{{z:.1f}} ± %{{customdata:.1f}}"
                      "<extra></extra>"))
    if default:  # categorical axes place category i at i, so the cell spans i ± 0.5
        row, col = default
        fig.add_shape(type="rect", x0=col - 0.5, x1=col + 0.5, y0=row - 0.5, y1=row + 0.5,
                      line={"color": "#111827", "width": 3})
    held = ", ".join(f"{FACTORS[name].label} {value:g}" for name, value in grid.base.items()
                     if not math.isclose(value, FACTORS[name].default))
    fig.update_layout(height=140 + 60 * len(grid.y_values), margin={"l": 10, "r": 10, "t": 40, "b": 10},
                      xaxis_title=x_title, yaxis_title=y_title,
                      title=f"Mean return over {grid.episodes} episodes per cell" + (f" · {held}" if held else ""))
    return fig


def grid_table(grid: RobustnessGrid) -> list[dict[str, Any]]:
    """One row per cell: the two factor values, mean and std of return, and whether it is solved."""
    return [{FACTORS[grid.x_factor].title: grid.x_values[col], FACTORS[grid.y_factor].title: grid.y_values[row],
             "mean return": float(grid.mean[row, col]), "std return": float(grid.std[row, col]),
             "solved": bool(grid.solved[row, col])}
            for row in range(len(grid.y_values)) for col in range(len(grid.x_values))]


def replay_query_params(run_id: str, checkpoint: str, seed: int,
                        conditions: Mapping[str, float]) -> dict[str, str]:
    """Query parameters for the Replay page: run, checkpoint file name, seed, and each non-default factor, written
    exactly (the Replay page then replays this very condition, not a rounding of it)."""
    params = {"run": run_id, "checkpoint": checkpoint, "seed": str(int(seed))}
    for name, value in validate_conditions(conditions).items():
        if value != FACTORS[name].default:
            params[name] = exact_text(value)
    return params
