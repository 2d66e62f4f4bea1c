"""Pure functions from metrics to Plotly figures — what the dashboard draws, testable without a browser.

Raw per-episode returns are drawn faint with a smoothed line over them (EMA or a moving window: a display
choice, the store keeps raw numbers); evaluations are markers; groups of seeds are a mean line in a ± std band.

The "solved" line (475) is drawn where a curve can reach it: a run whose episodes are capped below 475 (the
Q-learning seed's 100 steps) gets its cap line instead, so its curve is not squashed at the bottom of a 0–500 axis.
A run that stopped because it solved (``stop_on_solve``) is drawn as solved, never as a curve that drops out.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import plotly.graph_objects as go

from cartpole_core.engine.envs import MAX_EPISODE_STEPS, SOLVED_RETURN

# What a curve can be plotted against and smoothed with: the live view, Runs & compare and the live endpoint offer
# (and accept) exactly these. Keys are the rows' columns and smooth()'s methods; values are how selectors name them.
X_AXES = {"env_steps": "env steps", "episode": "episodes", "time_s": "training time"}
X_TITLES = {"env_steps": "env steps", "episode": "episode", "time_s": "training time (s)"}  # as axis titles
SMOOTHING = {"ema": "EMA", "window": "moving window", "none": "none"}
SMOOTHING_RANGES = {"ema": (0.0, 0.99), "window": (1, 1000), "none": (0, 0)}  # the amount: EMA weight, episodes
SMOOTHING_DEFAULTS = {"ema": 0.9, "window": 20, "none": 0}
DEFAULT_METHOD = "ema"
DEFAULT_AMOUNT = SMOOTHING_DEFAULTS[DEFAULT_METHOD]
PALETTE = ("#2563eb", "#dc2626", "#16a34a", "#9333ea", "#ea580c", "#0891b2", "#ca8a04", "#db2777")
NEAR_SOLVED = 0.8  # evaluations at 80 % of 475 or more: the solved line is worth showing even above the episode cap
STOPPED_TEXT = "solved — training stopped"


def plotly_text(text: str) -> str:
    """User text (a run's or group's name) as Plotly shows it literally: Plotly reads ``<b>``, ``<a href>`` and
    entities in names and hover labels, and ``%{…}`` in hover templates; each becomes an entity it prints as is."""
    return (str(text).replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;").replace("%", "&#37;")
            .replace("{", "&#123;"))


def smooth(values: Sequence[float], method: str = DEFAULT_METHOD, amount: float = DEFAULT_AMOUNT) -> np.ndarray:
    """EMA with weight ``amount`` on the past (0 = raw), or a trailing window of ``int(amount)`` episodes
    (:data:`SMOOTHING`)."""
    y = np.asarray(values, dtype=float)
    if len(y) == 0 or method == "none":
        return y
    if method == "window":
        window = max(1, int(amount))
        cumulative = np.cumsum(np.insert(y, 0, 0.0))
        counts = np.minimum(np.arange(1, len(y) + 1), window)
        return (cumulative[1:] - cumulative[np.maximum(0, np.arange(1, len(y) + 1) - window)]) / counts
    if not 0 <= amount < 1:
        raise ValueError(f"EMA weight must be in [0, 1), got {amount}")
    out = np.empty_like(y)
    running = y[0]
    for i, value in enumerate(y):  # debiased start: the first point is the first value, not 0
        running = amount * running + (1 - amount) * value
        out[i] = running
    return out


def keep_indices(values: Sequence[float], max_points: int | None) -> np.ndarray | None:
    """Which of ``values`` to draw when there are more than ``max_points`` (None: draw all): the first and the
    last, and each of ``max_points // 2`` equal slices' lowest and highest, so spikes and dips stay visible."""
    n = len(values)
    if max_points is None or n <= max_points:
        return None
    y = np.asarray(values, dtype=float)
    edges = np.linspace(0, n, max(1, max_points // 2) + 1).astype(int)
    keep = [0, n - 1]
    for lo, hi in zip(edges[:-1], edges[1:], strict=True):
        if hi > lo:
            keep += [lo + int(np.argmin(y[lo:hi])), lo + int(np.argmax(y[lo:hi]))]
    return np.unique(keep)


def _pick(values: Sequence[Any], keep: np.ndarray | None) -> Any:
    return values if keep is None else np.asarray(values)[keep]


def _rgba(color: str, alpha: float) -> str:
    r, g, b = (int(color[i:i + 2], 16) for i in (1, 3, 5))
    return f"rgba({r},{g},{b},{alpha})"


def _layout(fig: go.Figure, x: str, y_title: str, height: int = 380) -> go.Figure:
    fig.update_layout(height=height, margin={"l": 10, "r": 10, "t": 30, "b": 10}, hovermode="x unified",
                      legend={"orientation": "h", "y": 1.12}, xaxis_title=X_TITLES.get(x, x), yaxis_title=y_title,
                      uirevision="keep")  # keeps the user's zoom across live refreshes
    return fig


def reward_figure(episodes: list[dict[str, Any]], evaluations: list[dict[str, Any]], *, x: str = "env_steps",
                  method: str = DEFAULT_METHOD, amount: float = DEFAULT_AMOUNT, name: str = "",
                  color: str = PALETTE[0], max_points: int | None = None,
                  episode_cap: int | None = None) -> go.Figure:
    """One run: raw episode returns (faint), the smoothed curve, evaluation means with their std. With
    ``max_points``, longer curves are drawn through :func:`keep_indices` (smoothed over every episode first);
    ``episode_cap`` is the run's ``max_episode_steps`` (see :func:`add_return_lines`)."""
    fig = go.Figure()
    add_run_traces(fig, episodes, evaluations, x=x, method=method, amount=amount, name=name, color=color,
                   max_points=max_points)
    add_return_lines(fig, episode_cap, max((row["mean_return"] for row in evaluations), default=None))
    return _layout(fig, x, "episode return")


def add_return_lines(fig: go.Figure, episode_cap: int | None = None, best_eval: float | None = None) -> None:
    """The solved line (475) when training can reach it (episodes capped at 475 or more) or evaluations, which
    always run full 500-step episodes, come near it; the episode cap's line when it is below 475. Without a
    fixed line at 475 the axis fits the data, so a 100-step-capped curve is not squashed into a fifth of it."""
    cap = MAX_EPISODE_STEPS if episode_cap is None else episode_cap
    if cap >= SOLVED_RETURN or (best_eval is not None and best_eval >= NEAR_SOLVED * SOLVED_RETURN):
        fig.add_hline(y=SOLVED_RETURN, line_dash="dot", line_color="#6b7280", annotation_text="solved (475)",
                      annotation_position="bottom right")
    if cap < SOLVED_RETURN:
        fig.add_hline(y=cap, line_dash="dash", line_color="#9ca3af", annotation_text=f"episode cap ({cap})",
                      annotation_position="top right")


def add_run_traces(fig: go.Figure, episodes: list[dict[str, Any]], evaluations: list[dict[str, Any]], *,
                   x: str, method: str, amount: float, name: str, color: str, raw: bool = True,
                   max_points: int | None = None) -> None:
    returns = [row["episode_return"] for row in episodes]
    keep = keep_indices(returns, max_points)
    xs = _pick([row[x] for row in episodes], keep)
    label = f"{plotly_text(name)} " if name else ""
    if raw:
        fig.add_trace(go.Scatter(x=xs, y=_pick(returns, keep), mode="lines", name=f"{label}return",
                                 line={"width": 1}, line_color=_rgba(color, 0.25), showlegend=not name))
    fig.add_trace(go.Scatter(x=xs, y=_pick(smooth(returns, method, amount), keep), mode="lines",
                             name=f"{label}smoothed", line={"width": 2.5, "color": color}))
    if evaluations:
        # Markers with error bars cost the browser more than line points: a fifth as many.
        keep = keep_indices([row["mean_return"] for row in evaluations], max_points and max(2, max_points // 5))
        rows = [evaluations[i] for i in keep] if keep is not None else evaluations
        fig.add_trace(go.Scatter(
            x=[row[x if x != "episode" else "episodes"] for row in rows], y=[row["mean_return"] for row in rows],
            mode="markers", name=f"{label}evaluation",
            marker={"symbol": "diamond", "size": 9, "color": color, "line": {"width": 1, "color": "white"}},
            error_y={"type": "data", "array": [row["std_return"] for row in rows], "visible": True,
                     "color": _rgba(color, 0.5)}))


def group_figure(groups: list[dict[str, Any]], *, x: str = "env_steps", method: str = DEFAULT_METHOD,
                 amount: float = DEFAULT_AMOUNT, seeds: bool = True, max_points: int | None = None,
                 episode_cap: int | None = None) -> go.Figure:
    """Training returns of several groups, each ``{"name", "curve": group_curve(...), "runs": [(episodes,
    evaluations), ...], "stopped": [bool per run]}`` ("stopped" optional): each seed's smoothed curve faint (when
    ``seeds``; at most about ``max_points`` points each), the group's mean ± std band, the mean ± std across seeds
    of its evaluations (when the runs come with them), and a marker where a seed stopped because it solved — the
    mean of the seeds still training continues from there, so without it a solved seed reads as a drop."""
    groups = [{**group, "name": plotly_text(group["name"])} for group in groups]
    fig = go.Figure()
    best_eval = None
    for index, group in enumerate(groups):
        color = PALETTE[index % len(PALETTE)]
        runs = group.get("runs", [])
        stopped = group.get("stopped") or [False] * len(runs)
        if seeds:
            for episodes, _ in runs:
                smoothed = smooth([row["episode_return"] for row in episodes], method, amount)
                keep = keep_indices(smoothed, max_points)
                fig.add_trace(go.Scatter(x=_pick([row[x] for row in episodes], keep), y=_pick(smoothed, keep),
                                         mode="lines", line={"width": 1, "color": _rgba(color, 0.3)},
                                         showlegend=False, hoverinfo="skip"))
        _add_band(fig, group["curve"], group["name"], color, method, amount)
        _add_stop_markers(fig, [episodes for (episodes, _), done in zip(runs, stopped) if done and episodes],
                          group["name"], color, x, method, amount)
        evaluations = mean_evaluations([evaluations for _, evaluations in runs], x, stopped)
        if evaluations["x"]:
            best_eval = max(best_eval or -np.inf, max(evaluations["mean"]))
            fig.add_trace(go.Scatter(
                x=evaluations["x"], y=evaluations["mean"], mode="markers", name=f"{group['name']} evaluation",
                customdata=evaluations["n"], legendgroup=group["name"],
                hovertemplate="evaluation %{y:.1f} (mean over %{customdata} seeds)",
                marker={"symbol": "diamond", "size": 9, "color": color, "line": {"width": 1, "color": "white"}},
                error_y={"type": "data", "array": evaluations["std"], "visible": True, "color": _rgba(color, 0.5)}))
    add_return_lines(fig, episode_cap, best_eval)
    return _layout(fig, x, "episode return (mean ± std across seeds)")


def _add_band(fig: go.Figure, curve: dict[str, np.ndarray], name: str, color: str, method: str = "none",
              amount: float = 0.0) -> None:
    """A group's mean line (hover: how many seeds it is the mean of) in its ± std band."""
    present = curve["n"] > 0
    cx, mean, std = curve["x"][present], smooth(curve["mean"][present], method, amount), curve["std"][present]
    fig.add_trace(go.Scatter(x=np.concatenate([cx, cx[::-1]]), y=np.concatenate([mean + std, (mean - std)[::-1]]),
                             fill="toself", fillcolor=_rgba(color, 0.15), line={"width": 0},
                             name=f"{name} ± std", hoverinfo="skip", legendgroup=name, showlegend=False))
    fig.add_trace(go.Scatter(x=cx, y=mean, mode="lines", name=f"{name} mean", line={"width": 2.5, "color": color},
                             customdata=curve["n"][present].astype(int), legendgroup=name,
                             hovertemplate="%{y:.1f} (mean of %{customdata} seeds)"))


def _add_stop_markers(fig: go.Figure, stopped_runs: list[list[dict[str, Any]]], name: str, color: str, x: str,
                      method: str, amount: float) -> None:
    """A star at the end of each seed's smoothed curve that ended because it solved."""
    if not stopped_runs:
        return
    ends = [(episodes[-1][x], smooth([row["episode_return"] for row in episodes], method, amount)[-1])
            for episodes in stopped_runs]
    fig.add_trace(go.Scatter(x=[end[0] for end in ends], y=[end[1] for end in ends], mode="markers",
                             name=f"{name} {STOPPED_TEXT}", showlegend=False, legendgroup=name,
                             hovertemplate=f"{STOPPED_TEXT}<extra>{name}</extra>",
                             marker={"symbol": "star", "size": 13, "color": color,
                                     "line": {"width": 1, "color": "white"}}))


def mean_evaluations(runs: Sequence[Sequence[dict[str, Any]]], x: str = "env_steps",
                     stopped: Sequence[bool] | None = None) -> dict[str, list]:
    """The mean ± std across seeds of each evaluation: a group's seeds share one schedule, so their k-th
    evaluations are one point (at the seeds' mean ``x``: vectorized envs put them a few steps apart); ``n`` counts
    the seeds. A seed that stopped because it solved counts with its last (solved) evaluation at every later one,
    as it stays solved — otherwise the mean would fall to the seeds still training and read as a collapse."""
    stopped = stopped or [False] * len(runs)
    key = "episodes" if x == "episode" else x
    out: dict[str, list] = {"x": [], "mean": [], "std": [], "n": []}
    for k in range(max((len(rows) for rows in runs), default=0)):
        rows = [seed[k] for seed in runs if len(seed) > k]
        carried = [seed[-1] for seed, done in zip(runs, stopped) if done and 0 < len(seed) <= k]
        values = [row["mean_return"] for row in rows + carried]
        out["x"].append(float(np.mean([row[key] for row in rows])))
        out["mean"].append(float(np.mean(values)))
        out["std"].append(float(np.std(values)))
        out["n"].append(len(values))
    return out


def evaluation_figure(groups: list[dict[str, Any]], *, x: str = "env_steps", seeds: bool = True) -> go.Figure:
    """Greedy evaluations of several groups, each ``{"name", "curve": binned_mean_std(rows, x, "mean_return"),
    "runs": [compare.evaluation_rows(...), ...]}``: the mean ± std across seeds and, when ``seeds``, each seed's
    evaluations faint. A seed's rows marked ``carried`` (it stopped because it solved) continue dotted to the end
    of the compared range: a solved run is drawn as solved, not as a curve that ends."""
    groups = [{**group, "name": plotly_text(group["name"])} for group in groups]
    fig = go.Figure()
    for index, group in enumerate(groups):
        color = PALETTE[index % len(PALETTE)]
        for rows in group.get("runs", []) if seeds else []:
            measured = [row for row in rows if not row["carried"]]
            fig.add_trace(go.Scatter(x=[row[x] for row in measured], y=[row["mean_return"] for row in measured],
                                     mode="lines+markers", line={"width": 1, "color": _rgba(color, 0.35)},
                                     marker={"size": 4}, showlegend=False, hoverinfo="skip"))
            if rows and rows[-1]["carried"]:
                fig.add_trace(go.Scatter(x=[rows[-2][x], rows[-1][x]], y=[rows[-2]["mean_return"]] * 2,
                                         mode="lines", line={"width": 1, "dash": "dot", "color": _rgba(color, 0.6)},
                                         showlegend=False, hovertemplate=f"{STOPPED_TEXT}<extra>{group['name']}"
                                                                         "</extra>"))
        _add_band(fig, group["curve"], group["name"], color)
    add_return_lines(fig)  # evaluations run full 500-step episodes: 475 is always reachable
    return _layout(fig, x, "greedy evaluation return (mean ± std across seeds)")


def series_figure(rows: list[dict[str, Any]], keys: Sequence[str], *, x: str = "env_steps",
                  y_title: str = "", log_y: bool = False, max_points: int | None = None) -> go.Figure:
    """Lines of ``keys`` from rows such as per-update diagnostics or per-episode ε / learning rate (at most about
    ``max_points`` points each, as :func:`keep_indices` picks them)."""
    fig = go.Figure()
    for index, key in enumerate(keys):
        points = [(row[x], row[key]) for row in rows if row.get(key) is not None]
        if points:
            xs, ys = zip(*points)
            keep = keep_indices(ys, max_points)
            fig.add_trace(go.Scatter(x=_pick(xs, keep), y=_pick(ys, keep), mode="lines", name=key,
                                     line={"color": PALETTE[index % len(PALETTE)]}))
    if log_y:
        fig.update_yaxes(type="log")
    return _layout(fig, x, y_title, height=300)


def schedule_figure(t: np.ndarray, values: np.ndarray, unit: str, title: str) -> go.Figure:
    fig = go.Figure(go.Scatter(x=t, y=values, mode="lines", line={"color": PALETTE[0], "width": 2.5}))
    fig.update_layout(height=220, margin={"l": 10, "r": 10, "t": 30, "b": 10}, title=title,
                      xaxis_title=unit, yaxis_title=None)
    return fig


def bin_edges_figure(edges: list[np.ndarray], names: Sequence[str], low: Sequence[float],
                     high: Sequence[float]) -> go.Figure:
    """One row per observation dimension, each on its own x-axis from its low to its high bound, with its inner bin
    edges as ticks. (One shared axis drew the pole angle's ±0.42 rad as a sliver beside the cart's ±2.4 m.)"""
    rows, gap = len(names), 0.12
    height = (1 - gap * (rows - 1)) / rows
    fig = go.Figure()
    for row, (name, dim_edges, lo, hi) in enumerate(zip(names, edges, low, high)):
        suffix = "" if row == 0 else str(row + 1)
        top = 1 - row * (height + gap)
        axes = {"xaxis": f"x{suffix}", "yaxis": f"y{suffix}"}
        fig.add_trace(go.Scatter(x=[lo, hi], y=[0, 0], mode="lines", line={"color": "#9ca3af", "width": 6},
                                 showlegend=False, hoverinfo="skip", **axes))
        if len(dim_edges):
            fig.add_trace(go.Scatter(x=dim_edges, y=[0] * len(dim_edges), mode="markers", showlegend=False,
                                     marker={"symbol": "line-ns-open", "size": 18, "color": PALETTE[0]},
                                     hovertemplate=f"{name}: %{{x:.3f}}<extra></extra>", **axes))
        span = (hi - lo) * 0.02
        fig.update_layout({
            f"xaxis{suffix}": {"anchor": f"y{suffix}", "range": [lo - span, hi + span], "tickfont": {"size": 10}},
            f"yaxis{suffix}": {"domain": [max(0.0, round(top - height, 6)), round(top, 6)], "anchor": f"x{suffix}",
                               "tickvals": [0], "ticktext": [name if len(dim_edges) else f"{name} (1 bin: ignored)"],
                               "fixedrange": True, "showgrid": False, "zeroline": False}})
    fig.update_layout(height=40 + 70 * rows, margin={"l": 10, "r": 10, "t": 10, "b": 10})
    return fig


TRACE_ROWS = (  # state variable, axis title, CartPole-v1's termination limit (None: unbounded)
    ("cart_position", "cart position (m)", 2.4),
    ("cart_velocity", "cart velocity (m/s)", None),
    ("pole_angle", "pole angle (rad)", 12 * 2 * np.pi / 360),
    ("pole_angular_velocity", "angular velocity (rad/s)", None),
)


def episode_trace_figure(episodes: Sequence[tuple[str, Any]], cursor: int | None = None) -> dict[str, Any]:
    """The four state variables over an episode (one colour per labelled ``replay.Episode``), the termination
    limits dashed, and a vertical cursor at frame ``cursor`` (the scrubber's position).

    Returned as a plain Plotly figure dict: the scrubber redraws it on every move, and building it through
    ``make_subplots``/``add_hline`` costs over a second where this costs milliseconds.
    """
    rows = len(TRACE_ROWS)
    gap = 0.04
    height = (1 - gap * (rows - 1)) / rows
    data, shapes, layout = [], [], {}
    for row, (name, title, limit) in enumerate(TRACE_ROWS):
        suffix = "" if row == 0 else str(row + 1)
        top = 1 - row * (height + gap)
        layout[f"yaxis{suffix}"] = {"domain": [max(0.0, round(top - height, 6)), round(top, 6)],
                                    "title": {"text": title, "font": {"size": 11}}, "anchor": f"x{suffix}"}
        layout[f"xaxis{suffix}"] = {"anchor": f"y{suffix}", "matches": "x" if row else None,
                                    "showticklabels": row == rows - 1,
                                    **({"title": {"text": "step"}} if row == rows - 1 else {})}
        for i, (label, episode) in enumerate(episodes):
            label = plotly_text(label)
            table = episode.state_table()
            data.append({"type": "scatter", "mode": "lines", "x": table["step"].tolist(),
                         "y": np.round(table[name], 5).tolist(), "name": label, "legendgroup": label,
                         "showlegend": row == 0, "xaxis": f"x{suffix}", "yaxis": f"y{suffix}",
                         "line": {"color": PALETTE[i % len(PALETTE)], "width": 1.6},
                         "hovertemplate": f"{title} %{{y:.3f}} at step %{{x}}<extra>{label}</extra>"})
        if limit is not None:
            for sign in (-1, 1):
                shapes.append({"type": "line", "xref": f"x{suffix} domain", "yref": f"y{suffix}", "x0": 0, "x1": 1,
                               "y0": sign * limit, "y1": sign * limit,
                               "line": {"dash": "dash", "color": "#9ca3af", "width": 1}})
    if cursor is not None:
        shapes.append({"type": "line", "xref": "x", "yref": "paper", "x0": cursor, "x1": cursor, "y0": 0, "y1": 1,
                       "line": {"color": "#111827", "width": 1.5}})
    for axis in [key for key in layout if key.startswith("xaxis")]:
        if layout[axis]["matches"] is None:
            del layout[axis]["matches"]
    layout.update(height=520, margin={"l": 10, "r": 10, "t": 30, "b": 10}, hovermode="x unified", shapes=shapes,
                  legend={"orientation": "h", "y": 1.06, "x": 0}, template=_TEMPLATE)
    return {"data": data, "layout": layout}


_TEMPLATE = go.layout.Template(layout={"plot_bgcolor": "white", "paper_bgcolor": "white",
                                       "xaxis": {"gridcolor": "#ebf0f8", "zeroline": False},
                                       "yaxis": {"gridcolor": "#ebf0f8", "zerolinecolor": "#ebf0f8"}}).to_plotly_json()
