"""The live view's request and snapshot: one shape for the feed that makes snapshots (``feed.LiveFeed``), the
endpoint that serves them as JSON (``endpoint``), the page that draws the first one (``pages/live.py``) and the
browser component that redraws the next ones (``live_view.js``) — and the one rule for when the page must rerun.

Between reruns, the page's progress lines and charts redraw themselves from snapshots. What only a rerun of the
page can show is listed in :class:`DrawnPage`: the page says what it drew in its live URL, each snapshot answers
``rerun`` for it, and the progress element then asks Streamlit for one rerun.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, TypedDict
from urllib.parse import urlencode

from cartpole_core.config.models import config_class
from cartpole_core.figures.plots import DEFAULT_AMOUNT, DEFAULT_METHOD, SMOOTHING, SMOOTHING_RANGES, X_AXES

VIEWS = ("Reward", "Exploration & learning rate", "Diagnostics")
MAX_RUNS = 64  # a group larger than this is not a live view
QUERY_PARAMS = ("runs", "view", "x", "method", "amount", "drawn", "clip", "clip_due")


class LiveRequestError(ValueError):
    """A live view asked for something that doesn't exist or isn't allowed; the message says what."""


class UnknownRunError(LiveRequestError):
    """A live view named a run that isn't in the store (never was, or was deleted)."""


class ProgressLine(TypedDict):
    fraction: float  # of the run's budget done, 0–1
    text: str  # status, name, env steps, episodes, speed, ETA
    status: str


class Snapshot(TypedDict):
    """The live view at one moment, as ``GET /lab/api/live`` sends it (JSON) and ``LiveFeed.snapshot`` returns it.

    ``live_view.js`` reads ``progress``, ``figures``, ``captions`` and ``rerun``; the page and the tests read all.
    """

    progress: list[ProgressLine]  # one line per run, in the request's order
    figures: dict[str, dict[str, Any]]  # chart key ("reward_chart", "epsilon_chart", "diag.td_loss", …) → figure
    captions: dict[str, str]  # chart key → the line under the chart
    layout: str  # what of this snapshot only a rerun can draw: see layout_key
    checkpoint: str | None  # the first run's newest checkpoint (checkpoint_key), what the policy clip shows
    active: bool  # some run is queued or training: the view keeps refreshing
    rerun: bool  # the page that asked (LiveRequest.drawn) must rerun to show this snapshot


def layout_key(statuses: Sequence[str], charts: Sequence[str]) -> str:
    """The runs' statuses and the charts shown (``running|reward_chart``): a change of either is a new page — the
    Stop button and failure messages follow the statuses, and a chart that appears (a first diagnostic) is a new
    element."""
    return ";".join(statuses) + "|" + ",".join(charts)


@dataclass(frozen=True)
class DrawnPage:
    """What a live page drew that its elements cannot redraw themselves, and so when it must rerun.

    A rerun is due when a snapshot's :func:`layout_key` differs from the one drawn, or — when the page shows a
    policy clip (``clip_due_at`` not None) — when the first run has a newer checkpoint than the clip's (``clip``,
    None before the first) and ``clip_due_at`` (Unix time) has passed: a clip costs the training run CPU, so one
    at most every ``CLIP_EVERY_S`` (``pages/live.py``).
    """

    layout: str
    clip: str | None = None
    clip_due_at: float | None = None

    def must_rerun(self, layout: str, checkpoint: str | None, now: float) -> bool:
        new_clip = self.clip_due_at is not None and checkpoint != self.clip and now >= self.clip_due_at
        return layout != self.layout or new_clip

    def params(self) -> dict[str, Any]:
        params: dict[str, Any] = {"drawn": self.layout}
        if self.clip_due_at is not None:
            params["clip_due"] = self.clip_due_at
            if self.clip is not None:
                params["clip"] = self.clip
        return params

    @classmethod
    def from_params(cls, params: Mapping[str, str]) -> DrawnPage | None:
        if "drawn" not in params:
            return None
        due = _number(params, "clip_due") if "clip_due" in params else None
        return cls(params["drawn"], params.get("clip"), due)


@dataclass(frozen=True)
class LiveRequest:
    """Which runs, which view and how to plot them (the figures' choices, :mod:`cartpole_core.figures.plots`); in a
    live URL also what the page drew (``drawn``), which the snapshot's ``rerun`` answers for."""

    run_ids: tuple[str, ...]
    view: str = "Reward"
    x: str = "env_steps"
    method: str = DEFAULT_METHOD
    amount: float = DEFAULT_AMOUNT
    drawn: DrawnPage | None = None

    def __post_init__(self) -> None:
        if not self.run_ids or len(self.run_ids) > MAX_RUNS:
            raise LiveRequestError(f"runs: give 1 to {MAX_RUNS} run ids, got {len(self.run_ids)}")
        for name, value, allowed in (("view", self.view, VIEWS), ("x", self.x, X_AXES),
                                     ("method", self.method, SMOOTHING)):
            if value not in allowed:
                raise LiveRequestError(f"{name}: {value!r} is not one of {', '.join(map(repr, allowed))}")
        low, high = SMOOTHING_RANGES[self.method]
        if not (math.isfinite(self.amount) and low <= self.amount <= high):
            raise LiveRequestError(f"amount: {self.amount} is outside {low}–{high} for smoothing {self.method!r}")

    def query(self) -> str:
        return urlencode({"runs": ",".join(self.run_ids), "view": self.view, "x": self.x, "method": self.method,
                          "amount": self.amount, **(self.drawn.params() if self.drawn else {})})

    @classmethod
    def from_query(cls, params: Mapping[str, str]) -> LiveRequest:
        unknown = set(params) - set(QUERY_PARAMS)
        if unknown:
            raise LiveRequestError(f"unknown parameter(s) {', '.join(sorted(unknown))}; allowed: "
                                   f"{', '.join(QUERY_PARAMS)}")
        amount = _number(params, "amount") if "amount" in params else DEFAULT_AMOUNT
        run_ids = tuple(part for part in params.get("runs", "").split(",") if part)
        return cls(run_ids, params.get("view", "Reward"), params.get("x", "env_steps"),
                   params.get("method", DEFAULT_METHOD), amount, DrawnPage.from_params(params))



def _number(params: Mapping[str, str], name: str) -> float:
    try:
        return float(params[name])
    except ValueError:
        raise LiveRequestError(f"{name}: {params[name]!r} is not a number") from None


def view_label(view: str, algo: str) -> str:
    """A view's name as the page shows it: "Learning rate" for an algorithm without ε-greedy exploration (PPO)."""
    if view == "Exploration & learning rate" and not has_epsilon(algo):
        return "Learning rate"
    return view


def has_epsilon(algo: str) -> bool:
    return "epsilon" in config_class(algo).model_fields
