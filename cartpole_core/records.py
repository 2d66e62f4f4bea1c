"""Plain records of a training run: the events it emits (the store and the UI consume them) and its summary.

Import-light (no torch, Gymnasium or scikit-learn), so the store and the CLI's store commands start fast.
``time_s`` is training wall-clock since the start, excluding evaluation time (what time-to-solve counts).

An event's fields are the columns of its stored row, in order (``columns``): of its table in the run store (a new
field needs a migration; tests/test_store.py holds the schema to the fields), of the dicts the store's reads return
and of an export's CSV file.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields
from typing import Any, get_type_hints


@dataclass(frozen=True)
class EpisodeEnded:
    """One finished training episode (raw return: smoothing is the UI's choice)."""

    episode: int  # 1-based count of finished training episodes
    env_steps: int  # total env steps when it ended
    episode_return: float
    length: int
    epsilon: float | None  # None for algorithms without ε-greedy exploration
    learning_rate: float
    time_s: float


@dataclass(frozen=True)
class Updated:
    """One optimisation update with its diagnostics (TD loss / mean Q for DQN; losses, entropy, KL … for PPO)."""

    update: int
    env_steps: int
    metrics: dict[str, float] = field(default_factory=dict)
    time_s: float = 0.0


@dataclass(frozen=True)
class Evaluated:
    """A greedy evaluation over the fixed evaluation seeds."""

    env_steps: int
    episodes: int
    mean_return: float
    std_return: float
    solved: bool  # mean ≥ 475, and the run's solve confirmed (at this evaluation or before)
    time_s: float


Event = EpisodeEnded | Updated | Evaluated


def event_dict(event: Event) -> dict:
    return {"type": type(event).__name__, **asdict(event)}


def columns(event_type: type[Event]) -> dict[str, Any]:
    """The columns of an event's stored row, in order, with their types (``int``, ``float``, ``bool`` or
    ``float | None``): its fields, but for ``Updated.metrics`` — a column per metric in the dicts ``RunStore.updates``
    returns and in updates.csv, one JSON column in the store (whose ``update`` column is ``update_index``)."""
    types = get_type_hints(event_type)
    return {f.name: types[f.name] for f in fields(event_type) if f.name != "metrics"}


EPISODE_COLUMNS: tuple[str, ...] = tuple(columns(EpisodeEnded))
EVALUATION_COLUMNS: tuple[str, ...] = tuple(columns(Evaluated))
UPDATE_COLUMNS: tuple[str, ...] = tuple(columns(Updated))  # then one column per metric


@dataclass
class RunResult:
    """The summary of one finished (or stopped) training run."""

    algo: str
    seed: int
    status: str  # "completed" or "stopped"
    env_steps: int
    episodes: int
    train_seconds: float
    solved: bool
    time_to_solve_s: float | None
    steps_to_solve: int | None
    final_eval_mean: float | None
    final_eval_std: float | None
    best_eval_mean: float | None
    env_steps_per_s: float

    def to_dict(self) -> dict:
        return asdict(self)
