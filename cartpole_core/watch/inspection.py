"""What a trained policy does across the state space, as arrays and Plotly heatmaps — testable without a browser.

- Tabular Q-learning: ``qtable_slice`` cuts the Q-table along two binned observation dimensions; every other
  binned dimension is fixed at one bin or averaged over (mean Q, summed visits). It returns the greedy action
  (NaN where no state of the cell was ever visited: the table still holds its initial zeros there, and
  ``argmax`` of zeros would read as a decision to push left), max-Q and visit counts, with bin-range tick labels.
- DQN and PPO: ``policy_grid`` evaluates the network on a (pole angle × angular velocity) grid with the cart's
  position and velocity given, in one batched call: greedy action, action preference (P(right) for PPO,
  Q(right) − Q(left) for DQN) and value (max Q for DQN, the critic's V for PPO).

Arrays are laid out as Plotly heatmaps want them: ``z[row][column]`` = ``[y index][x index]``.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np
import plotly.graph_objects as go

from cartpole_core.config.models import OBS_NAMES
from cartpole_core.engine.agent import Agent, DQNAgent, PPOAgent, QTableAgent
from cartpole_core.figures.plots import PALETTE

AVERAGE = "average"  # in ``qtable_slice``'s ``fixed``: average over this dimension instead of fixing one bin
OBS_TITLES = ("cart position (m)", "cart velocity (m/s)", "pole angle (rad)", "pole angular velocity (rad/s)")
ACTION_NAMES = ("left", "right")
POLE_ANGLE_LIMIT_RAD = math.radians(12)  # CartPole-v1 terminates beyond ±12°
ANGULAR_VELOCITY_LIMIT = 3.0  # rad/s; a balancing policy rarely sees more than about ±2
MAX_RESOLUTION = 201
LEFT_COLOR, RIGHT_COLOR, UNVISITED_COLOR = PALETTE[0], PALETTE[1], "#d1d5db"
PREFERENCE_SCALE = "RdBu_r"  # diverging: blue = push left, red = push right, white = indifferent


@dataclass(frozen=True)
class QTableSlice:
    """Two binned dimensions of a Q-table; arrays have shape (bins of y_dim, bins of x_dim)."""

    x_dim: int
    y_dim: int
    fixed: dict[int, int | str]  # every other binned dimension: its bin index or AVERAGE
    q_values: np.ndarray  # (ny, nx, 2) Q(left), Q(right), averaged over the AVERAGE dimensions
    visits: np.ndarray  # (ny, nx) summed over the AVERAGE dimensions
    x_labels: list[str]
    y_labels: list[str]

    @property
    def max_q(self) -> np.ndarray:
        return self.q_values.max(axis=-1)

    @property
    def greedy_action(self) -> np.ndarray:
        """0 = left, 1 = right as the agent decides (ties go left), NaN where no state of the cell was visited."""
        return np.where(self.visits > 0, self.q_values.argmax(axis=-1), np.nan)


@dataclass(frozen=True)
class PolicyGrid:
    """A network's policy over (pole angle, angular velocity); arrays have shape (len(velocities), len(angles))."""

    algo: str
    angles: np.ndarray
    angular_velocities: np.ndarray
    cart_position: float
    cart_velocity: float
    action_values: np.ndarray  # (ny, nx, 2): Q-values (DQN) or action probabilities (PPO)
    value: np.ndarray  # (ny, nx): max Q (DQN) or the critic's V (PPO)

    @property
    def preference_title(self) -> str:
        return "Q(right) − Q(left)" if self.algo == "dqn" else "P(right)"

    @property
    def value_title(self) -> str:
        return "max Q" if self.algo == "dqn" else "critic V"

    @property
    def greedy_action(self) -> np.ndarray:
        return self.action_values.argmax(axis=-1)

    @property
    def preference(self) -> np.ndarray:
        """How much the policy prefers right: Q(right) − Q(left) for DQN (0 = tie), P(right) for PPO (0.5 = tie)."""
        if self.algo == "dqn":
            return self.action_values[..., 1] - self.action_values[..., 0]
        return self.action_values[..., 1]

    @property
    def indifferent_at(self) -> float:
        return 0.0 if self.algo == "dqn" else 0.5


# ------------------------------------------------------------------------------------------------ Q-tables


def bin_labels(edges: np.ndarray) -> list[str]:
    """Ranges of the bins between ``edges`` (the inner edges), the outer two open-ended: "< -0.14", "[-0.14, 0)"."""
    text = [f"{0.0 if abs(edge) < 1e-12 else edge:.3g}" for edge in edges]  # sklearn's middle edge may be 1e-17
    if not text:
        return ["all"]
    return [f"< {text[0]}", *(f"[{lo}, {hi})" for lo, hi in zip(text[:-1], text[1:])), f"≥ {text[-1]}"]


def dim_bin_labels(agent: QTableAgent, dim: int) -> list[str]:
    """Tick labels of one observation dimension's bins (["all"] for a dimension the agent ignores)."""
    dims = agent.discretizer.dims
    return bin_labels(agent.discretizer.inner_edges[dims.index(dim)]) if dim in dims else ["all"]


def qtable_slice(agent: QTableAgent, x_dim: int, y_dim: int,
                 fixed: Mapping[int, int | str] | None = None) -> QTableSlice:
    """The Q-table over binned dimensions ``x_dim`` × ``y_dim`` (indices into OBS_NAMES).

    ``fixed`` maps each other binned dimension to a bin index or ``AVERAGE`` (the default for any not given):
    averaged dimensions contribute the mean of their Q-values and the sum of their visits.
    """
    bins = agent.discretizer.bins
    binned = agent.discretizer.dims
    allowed = ", ".join(f"{d} ({OBS_NAMES[d]})" for d in binned) or "none"
    for role, dim in (("x_dim", x_dim), ("y_dim", y_dim)):
        if dim not in binned:
            name = f" ({OBS_NAMES[dim]}, {bins[dim]} bin)" if dim in range(len(OBS_NAMES)) else ""
            raise ValueError(f"{role} {dim}{name} is not a binned dimension of this Q-table; allowed: {allowed}")
    if x_dim == y_dim:
        raise ValueError(f"x_dim and y_dim must differ, both are {x_dim} ({OBS_NAMES[x_dim]})")
    others = [d for d in binned if d not in (x_dim, y_dim)]
    fixed = dict(fixed or {})
    for dim, choice in fixed.items():
        if dim not in others:
            names = ", ".join(f"{d} ({OBS_NAMES[d]})" for d in others) or "none"
            raise ValueError(f"fixed names dimension {dim}, which is not one of the other binned dimensions; "
                             f"allowed: {names}")
        valid = choice == AVERAGE if isinstance(choice, str) else \
            isinstance(choice, int | np.integer) and 0 <= choice < bins[dim]
        if not valid:
            raise ValueError(f"fixed bin for {OBS_NAMES[dim]} ({choice!r}) must be {AVERAGE!r} or a bin index "
                             f"from 0 to {bins[dim] - 1}")
    choices = {d: fixed.get(d, AVERAGE) for d in others}

    # Index the table: keep x, y and averaged dimensions whole, pick the fixed bin (bin 0 of an ignored one).
    kept = [d for d in range(len(bins)) if d in (x_dim, y_dim) or choices.get(d) == AVERAGE]
    index = tuple(slice(None) if d in kept else int(choices.get(d, 0)) for d in range(len(bins)))
    averaged = tuple(kept.index(d) for d in kept if d not in (x_dim, y_dim))
    q_values = agent.q_table[index].mean(axis=averaged)
    visits = agent.visits.reshape(bins)[index].sum(axis=averaged)
    if x_dim < y_dim:  # the remaining axes are in dimension order; heatmaps want (y, x)
        q_values, visits = q_values.transpose(1, 0, 2), visits.T
    return QTableSlice(x_dim=x_dim, y_dim=y_dim, fixed=choices, q_values=q_values, visits=visits,
                       x_labels=dim_bin_labels(agent, x_dim), y_labels=dim_bin_labels(agent, y_dim))


QTABLE_QUANTITIES = ("greedy_action", "max_q", "visits")


def qtable_figure(view: QTableSlice, quantity: str) -> go.Figure:
    """A heatmap of ``quantity`` (greedy_action, max_q or visits); hover shows Q(left), Q(right) and visits."""
    if quantity not in QTABLE_QUANTITIES:
        raise ValueError(f"quantity {quantity!r} is unknown; allowed: {', '.join(QTABLE_QUANTITIES)}")
    customdata = np.dstack([view.q_values, view.visits])
    hover = (f"{OBS_NAMES[view.x_dim]} %{{x}}<br>{OBS_NAMES[view.y_dim]} %{{y}}<br>Q(left) %{{customdata[0]:.3f}}"
             f"<br>Q(right) %{{customdata[1]:.3f}}<br>visits %{{customdata[2]:,}}")
    if quantity == "greedy_action":
        greedy = view.greedy_action
        text = np.where(np.isnan(greedy), "never visited", np.where(greedy == 1, "push right", "push left"))
        trace = go.Heatmap(z=greedy, zmin=0, zmax=1, text=text,
                           colorscale=[[0, LEFT_COLOR], [0.5, LEFT_COLOR], [0.5, RIGHT_COLOR], [1, RIGHT_COLOR]],
                           colorbar={"title": {"text": "greedy action"}, "tickvals": [0.25, 0.75],
                                     "ticktext": list(ACTION_NAMES)},
                           hovertemplate=f"%{{text}}<br>{hover}<extra></extra>")
    elif quantity == "max_q":
        trace = go.Heatmap(z=view.max_q, colorscale="Viridis", colorbar={"title": {"text": "max Q"}},
                           hovertemplate=f"max Q %{{z:.3f}}<br>{hover}<extra></extra>")
    else:
        # Visits span orders of magnitude (the upright states dominate): colour by log10(1 + visits).
        ticks = [0, *(10 ** k for k in range(len(str(max(1, int(view.visits.max()))))))]  # 0, 1, 10, … ≤ max
        trace = go.Heatmap(z=np.log10(1 + view.visits), zmin=0, colorscale="Blues",
                           colorbar={"title": {"text": "visits"}, "tickvals": np.log10(1 + np.array(ticks)),
                                     "ticktext": [f"{tick:,}" for tick in ticks]},
                           hovertemplate=f"{hover}<extra></extra>")
    trace.update(x=view.x_labels, y=view.y_labels, customdata=customdata)
    fig = go.Figure(trace)
    fig.update_xaxes(type="category", title=OBS_TITLES[view.x_dim])
    fig.update_yaxes(type="category", title=OBS_TITLES[view.y_dim])
    return _layout(fig)


# ------------------------------------------------------------------------------------------- DQN and PPO


def policy_grid(agent: Agent, *, cart_position: float = 0.0, cart_velocity: float = 0.0, resolution: int = 61,
                angle_limit: float = POLE_ANGLE_LIMIT_RAD,
                angular_velocity_limit: float = ANGULAR_VELOCITY_LIMIT) -> PolicyGrid:
    """Policy and value of a DQN or PPO agent on a ``resolution`` × ``resolution`` grid of pole angle in
    ±``angle_limit`` and angular velocity in ±``angular_velocity_limit``, the cart's state as given."""
    if not isinstance(agent, DQNAgent | PPOAgent):
        raise ValueError(f"policy_grid needs a DQN or PPO agent, got {type(agent).__name__}; "
                         "inspect a Q-table with qtable_slice")
    if not 2 <= resolution <= MAX_RESOLUTION:
        raise ValueError(f"resolution ({resolution}) must be between 2 and {MAX_RESOLUTION}")
    for name, limit in (("angle_limit", angle_limit), ("angular_velocity_limit", angular_velocity_limit)):
        if not (math.isfinite(limit) and limit > 0):
            raise ValueError(f"{name} ({limit}) must be a positive number")
    angles = np.linspace(-angle_limit, angle_limit, resolution)
    velocities = np.linspace(-angular_velocity_limit, angular_velocity_limit, resolution)
    angle_grid, velocity_grid = np.meshgrid(angles, velocities)  # (ny, nx): rows are angular velocities
    obs = np.stack([np.full(angle_grid.size, cart_position), np.full(angle_grid.size, cart_velocity),
                    angle_grid.ravel(), velocity_grid.ravel()], axis=1).astype(np.float32)
    action_values = agent.action_values(obs)
    value = agent.state_value(obs) if isinstance(agent, PPOAgent) else action_values.max(axis=1)
    shape = angle_grid.shape
    return PolicyGrid(algo=agent.config.algo, angles=angles, angular_velocities=velocities,
                      cart_position=float(cart_position), cart_velocity=float(cart_velocity),
                      action_values=action_values.reshape(*shape, 2), value=np.asarray(value).reshape(shape))


GRID_QUANTITIES = ("preference", "value")


def policy_grid_figure(grid: PolicyGrid, quantity: str) -> go.Figure:
    """A heatmap of the action preference (diverging, centred on indifference, the greedy action's boundary
    drawn as a black line) or of the value; hover shows both action values and the greedy action."""
    if quantity not in GRID_QUANTITIES:
        raise ValueError(f"quantity {quantity!r} is unknown; allowed: {', '.join(GRID_QUANTITIES)}")
    pair = "Q(left) %{customdata[0]:.3f}, Q(right) %{customdata[1]:.3f}" if grid.algo == "dqn" else \
        "P(left) %{customdata[0]:.3f}, P(right) %{customdata[1]:.3f}"
    hover = f"angle %{{x:.3f}} rad<br>angular velocity %{{y:.2f}} rad/s<br>{pair}<br>push %{{text}}"
    text = np.where(grid.greedy_action == 1, "right", "left")
    common = {"x": grid.angles, "y": grid.angular_velocities, "customdata": grid.action_values, "text": text}
    if quantity == "preference":
        z, title = grid.preference, grid.preference_title
        # Symmetric about indifference, so white means "either action": P in [0, 1], Q-differences ± their largest.
        spread = 0.5 if grid.algo == "ppo" else float(np.abs(z).max()) or 1.0
        traces = [go.Heatmap(z=z, colorscale=PREFERENCE_SCALE, zmin=grid.indifferent_at - spread,
                             zmax=grid.indifferent_at + spread, colorbar={"title": {"text": title}},
                             hovertemplate=f"{title} %{{z:.3f}}<br>{hover}<extra></extra>", **common),
                  go.Contour(z=z, x=grid.angles, y=grid.angular_velocities, showscale=False, hoverinfo="skip",
                             contours={"coloring": "none", "start": grid.indifferent_at, "end": grid.indifferent_at,
                                       "size": 1.0}, line={"color": "black", "width": 2}, name="decision boundary")]
    else:
        title = grid.value_title
        traces = [go.Heatmap(z=grid.value, colorscale="Viridis", colorbar={"title": {"text": title}},
                             hovertemplate=f"{title} %{{z:.3f}}<br>{hover}<extra></extra>", **common)]
    fig = go.Figure(traces)
    fig.update_xaxes(title=OBS_TITLES[2])
    fig.update_yaxes(title=OBS_TITLES[3])
    return _layout(fig)


def _layout(fig: go.Figure) -> go.Figure:
    # NaN cells are transparent: the grey plot background is what marks unvisited states.
    fig.update_layout(height=440, margin={"l": 10, "r": 10, "t": 30, "b": 10}, plot_bgcolor=UNVISITED_COLOR)
    return fig
