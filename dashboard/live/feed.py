"""What the live view shows, as data: progress lines and charts for one run or a group of seeds.

The Live view page draws it once; after that, while runs train, the browser asks the app's live endpoint
(``lab_api.py``) for a fresh snapshot every 0.8 s instead of rerunning the page, which costs a run trained on the
same cores far less. Both go through :class:`LiveFeed`, so the page and the endpoint draw the same thing.

Rows are read from the store incrementally and shared by every viewer in the process (one feed per data home).
"""

from __future__ import annotations

import math
import threading
from collections import OrderedDict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlencode

from cartpole_core.config.models import config_class, config_from_json
from cartpole_core.figures.plots import group_figure, reward_figure, series_figure
from cartpole_core.runs.compare import stopped_on_solve
from cartpole_core.runs.store import ACTIVE_STATUSES, Cursor, RunStore, binned_mean_std

# Plain symbols every font has (emoji are missing on many Linux machines).
STATUS_ICONS = {"queued": "…", "running": "▶", "completed": "✓", "failed": "✗", "cancelled": "■", "interrupted": "!"}
VIEWS = ("Reward", "Exploration & learning rate", "Diagnostics")
X_AXES = {"env_steps": "env steps", "episode": "episodes", "time_s": "training time"}
SMOOTHING = {"ema": "EMA", "window": "moving window", "none": "none"}
EMA_RANGE, WINDOW_RANGE = (0.0, 0.99), (1, 1000)
MAX_RUNS = 64  # a group larger than this is not a live view
# Points per drawn curve. A live chart's plot area is 600-900 px wide, and redrawing every episode of a long run once
# a second costs the browser more CPU each minute (bench/live_cost.py). Longer curves keep each of 500 slices'
# lowest and highest: at most one slice per pixel, so the drawn curve looks the same.
MAX_POINTS = 1000
_NOT_DIAGNOSTICS = {"update", "env_steps", "time_s", "epsilon", "learning_rate"}


class LiveRequestError(ValueError):
    """A live view asked for something that doesn't exist or isn't allowed; the message says what."""


class UnknownRunError(LiveRequestError):
    """A live view named a run that isn't in the store (never was, or was deleted)."""


def view_label(view: str, algo: str) -> str:
    """A view's name as the page shows it: "Learning rate" for an algorithm without ε-greedy exploration (PPO)."""
    if view == "Exploration & learning rate" and not has_epsilon(algo):
        return "Learning rate"
    return view


def has_epsilon(algo: str) -> bool:
    return "epsilon" in config_class(algo).model_fields


def fmt_duration(seconds: float | None) -> str:
    if seconds is None or not math.isfinite(seconds):
        return "–"
    if seconds < 1:  # tabular Q-learning solves in hundredths of a second: not "0.0 s"
        return f"{seconds:.2f} s"
    if seconds < 60:
        return f"{seconds:.1f} s"
    minutes, secs = divmod(int(seconds), 60)
    return f"{minutes} min {secs:02d} s" if minutes < 60 else f"{minutes // 60} h {minutes % 60:02d} min"


@dataclass(frozen=True)
class LiveRequest:
    """Which runs, which view and how to plot them: what the page shows, and what it asks the endpoint for."""

    run_ids: tuple[str, ...]
    view: str = "Reward"
    x: str = "env_steps"
    method: str = "ema"
    amount: float = 0.9
    title: str = ""  # the group's name in a multi-seed chart

    def __post_init__(self) -> None:
        if not self.run_ids or len(self.run_ids) > MAX_RUNS:
            raise LiveRequestError(f"runs: give 1 to {MAX_RUNS} run ids, got {len(self.run_ids)}")
        for name, value, allowed in (("view", self.view, VIEWS), ("x", self.x, X_AXES),
                                     ("method", self.method, SMOOTHING)):
            if value not in allowed:
                raise LiveRequestError(f"{name}: {value!r} is not one of {', '.join(map(repr, allowed))}")
        low, high = EMA_RANGE if self.method == "ema" else WINDOW_RANGE if self.method == "window" else (0, 0)
        if not (math.isfinite(self.amount) and low <= self.amount <= high):
            raise LiveRequestError(f"amount: {self.amount} is outside {low}–{high} for smoothing {self.method!r}")

    def query(self) -> str:
        return urlencode({"runs": ",".join(self.run_ids), "view": self.view, "x": self.x, "method": self.method,
                          "amount": self.amount, "title": self.title})

    @classmethod
    def from_query(cls, params: Mapping[str, str]) -> LiveRequest:
        unknown = set(params) - {"runs", "view", "x", "method", "amount", "title"}
        if unknown:
            raise LiveRequestError(f"unknown parameter(s) {', '.join(sorted(unknown))}; allowed: runs, view, x, "
                                   "method, amount, title")
        try:
            amount = float(params.get("amount", 0.9))
        except ValueError:
            raise LiveRequestError(f"amount: {params['amount']!r} is not a number") from None
        run_ids = tuple(part for part in params.get("runs", "").split(",") if part)
        return cls(run_ids, params.get("view", "Reward"), params.get("x", "env_steps"),
                   params.get("method", "ema"), amount, params.get("title", ""))


def progress(run: dict[str, Any]) -> dict[str, Any]:
    """The run's progress bar: the fraction done and its line of text (status, steps, episodes, speed, ETA)."""
    config = config_from_json(run["config_json"])
    fraction = run["env_steps"] / config.total_env_steps
    if config.max_episodes:
        fraction = max(fraction, run["episodes"] / config.max_episodes)
    rate = run["env_steps"] / run["train_seconds"] if run["train_seconds"] else 0.0
    eta = (config.total_env_steps - run["env_steps"]) / rate if rate and run["status"] == "running" else None
    solved = f" · solved in {fmt_duration(run['time_to_solve_s'])}" if run["solved"] else ""
    text = (f"{STATUS_ICONS[run['status']]} {run['status']} · {run['name']} · {run['env_steps']:,} / "
            f"{config.total_env_steps:,} env steps · {run['episodes']:,} episodes · {rate:,.0f} steps/s · "
            f"ETA {fmt_duration(eta)}{solved}")
    return {"fraction": min(1.0, fraction), "text": text, "status": run["status"]}


def chart_spec(figure: Any, height: int = 380) -> dict[str, Any]:
    """A figure as the live chart draws it: Plotly's template left out (the chart follows the app's theme)."""
    spec = figure if isinstance(figure, dict) else figure.to_plotly_json()
    layout = {key: value for key, value in spec.get("layout", {}).items() if key != "template"}
    layout.setdefault("height", height)
    return {**spec, "layout": layout}


class LiveFeed:
    """Every watched run's metrics, read incrementally and kept for the runs most recently watched."""

    def __init__(self, store: RunStore, max_runs: int = 32):
        self.store = store
        self._max_runs = max_runs
        self._rows: OrderedDict[str, dict[str, Any]] = OrderedDict()
        self._lock = threading.Lock()

    def rows(self, run_id: str) -> dict[str, list[dict[str, Any]]]:
        """The run's episodes, updates and evaluations so far (copies of the lists: safe to read meanwhile)."""
        with self._lock:
            cache = self._rows.pop(run_id, None) or {"cursor": Cursor(), "episodes": [], "updates": [],
                                                     "evaluations": []}
            self._rows[run_id] = cache
            while len(self._rows) > self._max_runs:
                self._rows.popitem(last=False)
            new, cache["cursor"] = self.store.poll(run_id, cache["cursor"])
            for kind, rows in new.items():
                cache[kind].extend(rows)
            return {kind: list(cache[kind]) for kind in ("episodes", "updates", "evaluations")}

    def runs(self, request: LiveRequest) -> list[dict[str, Any]]:
        runs = [self.store.get_run(run_id) for run_id in request.run_ids]
        missing = [run_id for run_id, run in zip(request.run_ids, runs, strict=True) if run is None]
        if missing:
            raise UnknownRunError(f"no run {', '.join(missing)} in the run store; it may have been deleted")
        return runs

    def snapshot(self, request: LiveRequest, runs: Sequence[dict[str, Any]] | None = None) -> dict[str, Any]:
        """What the live view shows now: ``progress`` (one line per run), ``figures`` by chart key (as
        :func:`chart_spec`), ``captions`` by chart key, ``layout`` — a key that changes when the page itself
        must be redrawn (a status changed, or a new diagnostic appeared) — and the first run's newest
        ``checkpoint``."""
        runs = list(runs) if runs is not None else self.runs(request)
        data = {run["id"]: self.rows(run["id"]) for run in runs}
        first = data[runs[0]["id"]]
        figures: dict[str, Any] = {}
        captions: dict[str, str] = {}
        if request.view == "Reward":
            cap = max(config_from_json(run["config_json"]).max_episode_steps for run in runs)
            if len(runs) == 1:
                figure = reward_figure(first["episodes"], first["evaluations"], x=request.x, method=request.method,
                                       amount=request.amount, max_points=MAX_POINTS, episode_cap=cap)
            else:
                episodes = [data[run["id"]]["episodes"] for run in runs]
                figure = group_figure([{"name": request.title, "curve": binned_mean_std(episodes, request.x),
                                        "runs": [(data[run["id"]]["episodes"], data[run["id"]]["evaluations"])
                                                 for run in runs],
                                        "stopped": [stopped_on_solve(run) for run in runs]}],
                                      x=request.x, method=request.method, amount=request.amount,
                                      max_points=MAX_POINTS, episode_cap=cap)
            figures["reward_chart"] = figure
            points = sum(len(rows["episodes"]) for rows in data.values())
            longest = max(len(rows["episodes"]) for rows in data.values())
            captions["reward_chart"] = f"{points:,} episodes plotted" + (
                " — waiting for the first episode…" if not points else
                f" (each curve through {MAX_POINTS:,} points: every slice's high and low)" if longest > MAX_POINTS
                else "")
        elif request.view == "Exploration & learning rate":
            # Only charts with data: PPO has no ε, and an empty ε chart reads as "exploration is broken".
            for key, column, y_title in (("epsilon_chart", "epsilon", "exploration ε"),
                                         ("lr_chart", "learning_rate", "learning rate")):
                if any(row.get(column) is not None for row in first["episodes"]):
                    figures[key] = series_figure(first["episodes"], [column], x=request.x, y_title=y_title,
                                                 max_points=MAX_POINTS)
        else:
            keys = sorted({key for row in first["updates"] for key in row} - _NOT_DIAGNOSTICS)
            x = request.x if request.x != "episode" else "env_steps"
            for key in keys:
                figures[f"diag.{key}"] = series_figure(first["updates"], [key], x=x, y_title=key.replace("_", " "),
                                                       max_points=MAX_POINTS)
        layout = ";".join(run["status"] for run in runs) + "|" + ",".join(figures)
        return {"progress": [progress(run) for run in runs],
                "figures": {key: chart_spec(figure) for key, figure in figures.items()}, "captions": captions,
                "layout": layout, "checkpoint": checkpoint_key(self.latest_checkpoint(runs[0]["id"])),
                "active": any(run["status"] in ACTIVE_STATUSES for run in runs)}

    def latest_checkpoint(self, run_id: str) -> dict[str, Any] | None:
        """The run's newest checkpoint: what the live view's policy clip shows."""
        artifacts = self.store.artifacts(run_id)
        return max(artifacts, key=lambda a: (a["created_at"], a["env_steps"])) if artifacts else None


def checkpoint_key(artifact: dict[str, Any] | None) -> str | None:
    return f"{artifact['path']}@{artifact['created_at']}" if artifact else None


_feeds: dict[str, LiveFeed] = {}
_feeds_lock = threading.Lock()


def shared_feed(home: Any) -> LiveFeed:
    """The process's feed for a data home (the page and the endpoint share it, and so share the rows read)."""
    key = str(home)
    with _feeds_lock:
        if key not in _feeds:
            _feeds[key] = LiveFeed(RunStore(home))
        return _feeds[key]
