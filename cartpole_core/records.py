"""Plain records shared by training, the run store and the job runner — import-light (no torch, Gymnasium or
scikit-learn), so the store and the CLI's store commands start fast."""

from __future__ import annotations

from dataclasses import asdict, dataclass


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
