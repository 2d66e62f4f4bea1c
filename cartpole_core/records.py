"""Plain records of a training run: the events it emits (the store and the UI consume them) and its summary.

Import-light (no torch, Gymnasium or scikit-learn), so the store and the CLI's store commands start fast.
``time_s`` is training wall-clock since the start, excluding evaluation time (what time-to-solve counts).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field


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
    solved: bool
    time_s: float


Event = EpisodeEnded | Updated | Evaluated


def event_dict(event: Event) -> dict:
    return {"type": type(event).__name__, **asdict(event)}


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
