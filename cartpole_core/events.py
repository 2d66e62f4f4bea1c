"""Events a training run emits; the run store and the UI consume them.

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
