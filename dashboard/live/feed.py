"""What the live view shows, as data: snapshots (``snapshot.Snapshot``) of one run or a group of seeds — progress
lines, charts and their captions.

The Live view page draws the first snapshot; after that, while runs train, the browser asks the app's live endpoint
(``endpoint.py``) for a fresh one every 0.8 s instead of rerunning the page, which costs a run trained on the same
cores far less. Both go through :class:`LiveFeed`, so the page and the endpoint draw the same thing.

Rows are read from the store incrementally and shared by every viewer in the process (one feed per data home).
"""

from __future__ import annotations

import math
import threading
import time
from collections import OrderedDict
from collections.abc import Sequence
from typing import Any

from cartpole_core.config.models import config_from_json
from cartpole_core.figures.plots import group_figure, reward_figure, series_figure
from cartpole_core.runs.compare import group_label, stopped_on_solve
from cartpole_core.runs.store import ACTIVE_STATUSES, Cursor, RunStore, binned_mean_std
from dashboard.labels import STATUS_ICONS
from dashboard.live.snapshot import LiveRequest, ProgressLine, Snapshot, UnknownRunError, layout_key

# Points per drawn curve. A live chart's plot area is 600-900 px wide, and redrawing every episode of a long run once
# a second costs the browser more CPU each minute (bench/live_cost.py). Longer curves keep each of 500 slices'
# lowest and highest: at most one slice per pixel, so the drawn curve looks the same.
MAX_POINTS = 1000
_NOT_DIAGNOSTICS = {"update", "env_steps", "time_s", "epsilon", "learning_rate"}


def fmt_duration(seconds: float | None) -> str:
    if seconds is None or not math.isfinite(seconds):
        return "–"
    if seconds < 1:  # tabular Q-learning solves in hundredths of a second: not "0.0 s"
        return f"{seconds:.2f} s"
    if seconds < 60:
        return f"{seconds:.1f} s"
    minutes, secs = divmod(int(seconds), 60)
    return f"{minutes} min {secs:02d} s" if minutes < 60 else f"{minutes // 60} h {minutes % 60:02d} min"


def progress(run: dict[str, Any]) -> ProgressLine:
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
    """Every watched run's metrics, read incrementally and kept for the runs most recently watched.

    Used at once by Starlette's request threads (the endpoint) and Streamlit's script threads (the page). The
    feed's lock covers its cache of rows; the store's handle serializes each of its queries itself (an RLock per
    ``RunStore``, held for every query and transaction). What no lock gives is one moment across queries: a worker
    commits a batch of metrics and its run's counters together, but the run row and the metrics are read apart.
    So a snapshot reads the run rows first and then cuts an active run's metrics at its counters
    (:func:`as_of`): its progress line and its curves always describe the same moment.
    """

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

    def snapshot(self, request: LiveRequest, runs: Sequence[dict[str, Any]] | None = None) -> Snapshot:
        """What the live view shows now (:class:`~dashboard.live.snapshot.Snapshot`). ``runs``: the request's runs
        as the caller just read them from the store (read here otherwise); a group is titled by
        :func:`~cartpole_core.runs.compare.group_label`, as the page titles it."""
        runs = list(runs) if runs is not None else self.runs(request)
        data = {run["id"]: as_of(run, self.rows(run["id"])) for run in runs}
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
                figure = group_figure([{"name": group_label(runs), "curve": binned_mean_std(episodes, request.x),
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
        layout = layout_key([run["status"] for run in runs], list(figures))
        checkpoint = checkpoint_key(self.latest_checkpoint(runs[0]["id"]))
        return {"progress": [progress(run) for run in runs],
                "figures": {key: chart_spec(figure) for key, figure in figures.items()}, "captions": captions,
                "layout": layout, "checkpoint": checkpoint,
                "active": any(run["status"] in ACTIVE_STATUSES for run in runs),
                "rerun": request.drawn is not None and request.drawn.must_rerun(layout, checkpoint, time.time())}

    def latest_checkpoint(self, run_id: str) -> dict[str, Any] | None:
        """The run's newest checkpoint: what the live view's policy clip shows."""
        artifacts = self.store.artifacts(run_id)
        return max(artifacts, key=lambda a: (a["created_at"], a["env_steps"])) if artifacts else None


def as_of(run: dict[str, Any], rows: dict[str, list[dict[str, Any]]]) -> dict[str, list[dict[str, Any]]]:
    """An active run's rows cut at the moment of its run row (read before them): episodes up to its episode count,
    updates and evaluations up to its env steps. A worker's batch lands in one transaction with the counters, so
    rows beyond them came later. A finished run's counters are final: its rows are all shown."""
    if run["status"] not in ACTIVE_STATUSES:
        return rows
    return {"episodes": _until(rows["episodes"], "episode", run["episodes"]),
            "updates": _until(rows["updates"], "env_steps", run["env_steps"]),
            "evaluations": _until(rows["evaluations"], "env_steps", run["env_steps"])}


def _until(rows: list[dict[str, Any]], column: str, last: float) -> list[dict[str, Any]]:
    end = len(rows)
    while end and rows[end - 1][column] > last:  # rows are in order; the few read ahead are at the end
        end -= 1
    return rows if end == len(rows) else rows[:end]


def checkpoint_key(artifact: dict[str, Any] | None) -> str | None:
    """A checkpoint version, as the policy clip and snapshots name it: its file (``best.pt`` is rewritten as
    evaluations improve) and when it was written. No folder: the key travels in live URLs."""
    return f"{artifact['path'].name}@{artifact['created_at']}" if artifact else None


_feeds: dict[str, LiveFeed] = {}
_feeds_lock = threading.Lock()


def shared_feed(home: Any) -> LiveFeed:
    """The process's feed for a data home (the page and the endpoint share it, and so share the rows read)."""
    key = str(home)
    with _feeds_lock:
        if key not in _feeds:
            _feeds[key] = LiveFeed(RunStore(home))
        return _feeds[key]
