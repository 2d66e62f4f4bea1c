"""Epsilon and learning-rate schedules: small pure functions of training progress.

Every schedule maps a progress count ``t`` (episodes or environment steps, see ``unit``) to a value:

- ``constant``:    ``start``
- ``linear``:      from ``start`` to ``end`` over ``duration`` units, then ``end``
- ``exponential``: ``max(end, start * factor ** t)`` — the seed's DQN epsilon (1.0 → 0.2, ×0.99 per episode)
- ``log_decay``:   ``max(end, min(start, 1 - log10((t + 1) / k)))`` — the seed's tabular schedule
  (``start = 1``, ``k = 25``, floor 0.1 for epsilon and 0.01 for the step size)

``end`` is the floor (or, for ``linear``, the final value). The functions take scalars and return floats so
the training loops can call them once per episode or step without any allocation.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from cartpole_core.config.models import Schedule



def constant(t: float, start: float) -> float:
    return float(start)


def linear(t: float, start: float, end: float, duration: float) -> float:
    fraction = min(1.0, max(0.0, t / duration))
    return float(start + fraction * (end - start))


def exponential(t: float, start: float, end: float, factor: float) -> float:
    return float(max(end, start * factor**t))


def log_decay(t: float, start: float, end: float, k: float) -> float:
    return float(max(end, min(start, 1.0 - math.log10((t + 1) / k))))


def value_at(schedule: Schedule, t: float) -> float:
    """The schedule's value after ``t`` units (episodes or env steps) of training."""
    kind = schedule.kind
    if kind == "constant":
        return constant(t, schedule.start)
    if kind == "linear":
        return linear(t, schedule.start, schedule.end, schedule.duration)
    if kind == "exponential":
        return exponential(t, schedule.start, schedule.end, schedule.factor)
    return log_decay(t, schedule.start, schedule.end, schedule.k)


def curve(schedule: Schedule, horizon: int, points: int = 200) -> tuple[np.ndarray, np.ndarray]:
    """``(t, value)`` arrays over ``[0, horizon]`` — what the dashboard's schedule preview plots."""
    t = np.unique(np.linspace(0, max(1, horizon), points).round())
    return t, np.array([value_at(schedule, x) for x in t])
