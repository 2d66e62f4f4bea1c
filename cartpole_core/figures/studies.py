"""A study's figures: the best value so far by trial, parallel coordinates of the trials' parameters, and the
parameters' importance. Pure functions of plain data (trial rows, axes), like Optuna's ``visualization``.

A log-scaled parameter is drawn on a log axis: Plotly's parallel coordinates have none, so its values are drawn as
their log10 with ticks at the decades labelled in the parameter's own units.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal

import plotly.graph_objects as go

from cartpole_core.figures.plots import PALETTE, plotly_text


@dataclass(frozen=True)
class ParamAxis:
    """One varied parameter on the parallel coordinates: its value in each trial, in the order of ``values``."""

    name: str
    values: Sequence[Any]
    log: bool = False
    categories: Sequence[Any] | None = None  # a categorical parameter's choices, in order; None: a numeric axis


def best_so_far_figure(trials: Sequence[int], values: Sequence[float | None],
                       direction: Literal["minimize", "maximize"], objective_title: str) -> go.Figure:
    """Each completed trial's value (markers) and the best value up to it (a step line). ``values``: None for a
    trial without one (pruned, failed, still running) — it is skipped."""
    points = [(trial, value) for trial, value in zip(trials, values) if value is not None]
    best, running = [], None
    pick = min if direction == "minimize" else max
    for _, value in points:
        running = value if running is None else pick(running, value)
        best.append(running)
    xs = [trial for trial, _ in points]
    figure = go.Figure([
        go.Scatter(x=xs, y=[value for _, value in points], mode="markers", name="trial",
                   marker={"color": PALETTE[0], "size": 8, "opacity": 0.6}),
        go.Scatter(x=xs, y=best, mode="lines", line={"shape": "hv", "color": PALETTE[1], "width": 2},
                   name="best so far"),
    ])
    better = "lower" if direction == "minimize" else "higher"
    figure.update_layout(xaxis_title="trial", yaxis_title=f"{objective_title} ({better} is better)",
                         height=320, margin={"l": 60, "r": 20, "t": 30, "b": 40},
                         legend={"orientation": "h", "y": 1.12})
    return figure


def parallel_coordinates_figure(axes: Sequence[ParamAxis], values: Sequence[float],
                                direction: Literal["minimize", "maximize"], objective_title: str) -> go.Figure:
    """One line per trial through each parameter's axis to its objective value, coloured by that value (the better
    end darker)."""
    dimensions = [_dimension(axis) for axis in axes]
    dimensions.append({"label": plotly_text(objective_title), "values": list(values)})
    figure = go.Figure(go.Parcoords(
        dimensions=dimensions,
        line={"color": list(values), "colorscale": "Blues", "reversescale": direction == "minimize",
              "showscale": True, "colorbar": {"title": {"text": "objective"}}},
    ))
    figure.update_layout(height=380, margin={"l": 60, "r": 60, "t": 60, "b": 30})
    return figure


def _dimension(axis: ParamAxis) -> dict[str, Any]:
    label = plotly_text(axis.name + (" (log)" if axis.log else ""))
    if axis.categories is not None:
        index = {category: i for i, category in enumerate(axis.categories)}
        return {"label": label, "values": [index.get(value, math.nan) for value in axis.values],
                "tickvals": list(range(len(axis.categories))),
                "ticktext": [plotly_text(_text(category)) for category in axis.categories],
                "range": [-0.5, len(axis.categories) - 0.5]}
    numbers = [math.nan if value is None else float(value) for value in axis.values]
    if not axis.log:
        return {"label": label, "values": numbers}
    logs = [math.log10(value) if value > 0 else math.nan for value in numbers]
    finite = [value for value in logs if math.isfinite(value)]
    if not finite:
        return {"label": label, "values": logs}
    decades = list(range(math.floor(min(finite)), math.ceil(max(finite)) + 1))
    return {"label": label, "values": logs, "tickvals": decades, "ticktext": [f"{10.0 ** d:g}" for d in decades]}


def importance_figure(importances: dict[str, float], estimator: str) -> go.Figure:
    """Each parameter's share of the objective's variance, largest on top, as ``estimator`` measured it."""
    names = sorted(importances, key=importances.get)
    figure = go.Figure(go.Bar(x=[importances[name] for name in names], y=[plotly_text(name) for name in names],
                              orientation="h", marker={"color": PALETTE[0]}))
    figure.update_layout(xaxis_title=f"importance ({estimator})", xaxis_range=[0, max(1.0, *importances.values())],
                         height=max(160, 40 * len(names) + 80), margin={"l": 160, "r": 20, "t": 20, "b": 40})
    return figure


def _text(choice: Any) -> str:
    if isinstance(choice, bool):
        return "true" if choice else "false"
    return str(choice)
