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
    layout = _axis_layout(axis)
    return {"label": label, "values": [math.nan if p is None else p for p in _positions(axis)],
            **{key: value for key, value in layout.items() if key in ("tickvals", "ticktext", "range")}}


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


SLICE_COLUMNS = 3  # slice plots per row
CONTOUR_GRID = 40  # the interpolated contour's points per axis


def slice_figure(axes: Sequence[ParamAxis], values: Sequence[float], trials: Sequence[int],
                 objective_title: str) -> go.Figure:
    """One panel per parameter: each completed trial's objective against that parameter's value (a log axis where
    the parameter is log-scaled, the choices in order where it is categorical), coloured by trial number — later
    trials darker, so a sampler closing in on a region shows."""
    from plotly.subplots import make_subplots

    rows = math.ceil(len(axes) / SLICE_COLUMNS)
    columns = min(len(axes), SLICE_COLUMNS)
    figure = make_subplots(rows=rows, cols=columns, shared_yaxes=True, horizontal_spacing=0.04,
                           vertical_spacing=0.18, subplot_titles=[plotly_text(axis.name) for axis in axes])
    for i, axis in enumerate(axes):
        row, column = divmod(i, SLICE_COLUMNS)
        xs = _positions(axis)
        figure.add_trace(go.Scatter(
            x=xs, y=list(values), mode="markers", showlegend=False,
            text=[f"trial {trial}" for trial in trials], hovertemplate="%{text}<br>%{x}: %{y:.4g}<extra></extra>",
            marker={"color": list(trials), "colorscale": "Blues", "cmin": min(trials, default=0) - 1, "size": 8,
                    "line": {"width": 0.5, "color": "#333"}, "showscale": i == 0,
                    "colorbar": {"title": {"text": "trial"}, "len": 0.8}}), row=row + 1, col=column + 1)
        figure.update_xaxes(**_axis_layout(axis), row=row + 1, col=column + 1)
    figure.update_yaxes(title_text=plotly_text(objective_title), row=1, col=1)
    figure.update_layout(height=280 * rows + 40, margin={"l": 60, "r": 20, "t": 40, "b": 40})
    return figure


def contour_figure(x: ParamAxis, y: ParamAxis, values: Sequence[float],
                   direction: Literal["minimize", "maximize"], objective_title: str) -> go.Figure:
    """The objective over two parameters: the completed trials as points, and between them a surface interpolated
    by inverse-distance weighting (in log space on a log axis) — a sketch of the landscape, exact only at the
    points."""
    xs, ys = _positions(x), _positions(y)
    points = [(px, py, value) for px, py, value in zip(xs, ys, values)
              if px is not None and py is not None and math.isfinite(px) and math.isfinite(py)]
    data = []
    if len(points) >= 3:
        import numpy as np

        px, py, pz = (np.array(column, dtype=float) for column in zip(*points))
        gx = np.linspace(px.min(), px.max(), CONTOUR_GRID) if np.ptp(px) > 0 else np.array([px[0]])
        gy = np.linspace(py.min(), py.max(), CONTOUR_GRID) if np.ptp(py) > 0 else np.array([py[0]])
        # Distances in units of each axis's span, so a parameter in 1e-4 and one in 0.9 weigh alike.
        sx, sy = max(np.ptp(px), 1e-12), max(np.ptp(py), 1e-12)
        dx = (gx[None, :, None] - px[None, None, :]) / sx
        dy = (gy[:, None, None] - py[None, None, :]) / sy
        weights = 1.0 / np.maximum(dx ** 2 + dy ** 2, 1e-9)
        surface = (weights * pz).sum(axis=2) / weights.sum(axis=2)
        data.append(go.Contour(x=gx, y=gy, z=surface, colorscale="Blues", reversescale=direction == "minimize",
                               contours={"coloring": "heatmap"}, opacity=0.85, hoverinfo="skip",
                               colorbar={"title": {"text": "objective"}}))
    data.append(go.Scatter(x=[p[0] for p in points], y=[p[1] for p in points], mode="markers", showlegend=False,
                           text=[f"{value:.4g}" for _, _, value in points],
                           hovertemplate=f"{plotly_text(objective_title)}: %{{text}}<extra></extra>",
                           marker={"color": "#d62728", "size": 7, "line": {"width": 1, "color": "white"}}))
    figure = go.Figure(data)
    figure.update_xaxes(title_text=plotly_text(x.name), **_axis_layout(x))
    figure.update_yaxes(title_text=plotly_text(y.name), **_axis_layout(y))
    figure.update_layout(height=420, margin={"l": 60, "r": 20, "t": 20, "b": 50})
    return figure


def _positions(axis: ParamAxis) -> list[float | None]:
    """Where each value sits on the axis: its log10 on a log axis, its index among the choices on a categorical."""
    if axis.categories is not None:
        index = {category: i for i, category in enumerate(axis.categories)}
        return [index.get(value) for value in axis.values]
    numbers = [None if value is None else float(value) for value in axis.values]
    if axis.log:
        return [math.log10(value) if value is not None and value > 0 else None for value in numbers]
    return numbers


def _axis_layout(axis: ParamAxis) -> dict[str, Any]:
    """Ticks in the parameter's own units: decades on a log axis (drawn as log10), choice names on a categorical."""
    if axis.categories is not None:
        return {"tickvals": list(range(len(axis.categories))),
                "ticktext": [plotly_text(_text(category)) for category in axis.categories],
                "range": [-0.5, len(axis.categories) - 0.5]}
    if not axis.log:
        return {}
    finite = [p for p in _positions(axis) if p is not None]
    if not finite:
        return {}
    decades = list(range(math.floor(min(finite)), math.ceil(max(finite)) + 1))
    return {"tickvals": decades, "ticktext": [f"{10.0 ** d:g}" for d in decades]}
