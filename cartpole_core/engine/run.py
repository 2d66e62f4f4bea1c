"""Train one run from (config, seed): the bookkeeping every algorithm shares.

``engine.train.train(config, seed, observer=...)`` runs the algorithm loop for ``config.algo`` with a ``Run``. The
algorithm loops own the learning; this module owns everything around it, so the three loops stay short:

- counting env steps and episodes, and the budget (``total_env_steps``, ``max_episodes``);
- the training clock, which pauses during evaluation (time-to-solve counts training wall-clock only);
- periodic greedy evaluation every ``eval_every_steps`` and the final one, "solved" = mean ≥ 475 over 20, the
  first such evaluation confirmed on 100 other episodes before it counts (``engine.evaluate``);
- the stop request, checked by the loops once per update (``run.done``);
- telling the run's observer (``RunObserver``) about it: ``EpisodeEnded`` / ``Updated`` / ``Evaluated`` events,
  checkpoints (``"periodic"``, ``"best"``, ``"final"``), and asking it whether to stop.

Same config and seed give the same curve on the CPU: all randomness comes from ``seed``.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager

import numpy as np
import torch

from cartpole_core.config.models import Schedule, TrainConfig
from cartpole_core.config.schedules import value_at
from cartpole_core.engine.agent import Agent
from cartpole_core.engine.evaluate import CONFIRM_EPISODES, CONFIRM_SEED, evaluate_returns, is_solved
from cartpole_core.engine.observers import RunObserver
from cartpole_core.records import EpisodeEnded, Evaluated, RunResult, Updated

STOP_CHECK_INTERVAL_S = 0.02


class Run:
    """Shared state of one training run, handed to the algorithm loop."""

    def __init__(self, config: TrainConfig, seed: int, observer: RunObserver | None = None,
                 checkpoint_every_steps: int | None = None):
        self.config = config
        self.seed = seed
        self.rng = np.random.default_rng(seed)
        self.env_steps = 0  # transitions: the steps that only reset a finished episode are not counted
        self.steps_taken = 0  # env steps taken, those included: what evaluations are scheduled on
        self.episodes = 0
        self.updates = 0
        self.stopped = False
        self.solved_at: tuple[float, int] | None = None  # (train seconds, env steps) at the first confirmed solve
        self.last_eval: Evaluated | None = None
        self.best_eval_mean: float | None = None
        self.observer = observer or RunObserver()
        self._checkpoint_every = checkpoint_every_steps
        self._next_checkpoint = checkpoint_every_steps or 0
        self._next_eval = config.eval_every_steps
        self._next_stop_check = 0.0
        self._clock_start = time.perf_counter()
        self._paused_s = 0.0
        self._stops = 0  # nested ``clock_stopped`` blocks open
        self._stopped_at = 0.0

    # ---- clock

    @property
    def train_seconds(self) -> float:
        """Training wall-clock so far: it stands still inside ``clock_stopped``."""
        now = self._stopped_at if self._stops else time.perf_counter()
        return now - self._clock_start - self._paused_s

    @contextmanager
    def clock_stopped(self) -> Iterator[None]:
        """The training clock stands still in this block (evaluations, checkpoints): events stamped inside it carry
        the time the block began, and its duration never counts."""
        if not self._stops:
            self._stopped_at = time.perf_counter()
        self._stops += 1
        try:
            yield
        finally:
            self._stops -= 1
            if not self._stops:
                self._paused_s += time.perf_counter() - self._stopped_at

    # ---- progress reported by the algorithm loop

    def scheduled(self, schedule: Schedule) -> float:
        """A schedule's value now, on its own unit's clock (env steps or finished episodes)."""
        return value_at(schedule, self.episodes if schedule.unit == "episodes" else self.env_steps)

    def add_steps(self, n: int, taken: int | None = None) -> None:
        """``n`` transitions in ``taken`` env steps (default ``n``): a vector step of N envs takes N."""
        self.env_steps += n
        self.steps_taken += n if taken is None else taken

    def log_episode(self, episode_return: float, length: int, epsilon: float | None, learning_rate: float) -> None:
        self.episodes += 1
        self.observer.on_event(EpisodeEnded(self.episodes, self.env_steps, float(episode_return), int(length),
                                    None if epsilon is None else float(epsilon), float(learning_rate),
                                    self.train_seconds))

    def log_update(self, **metrics: float) -> None:
        self.updates += 1
        self.observer.on_event(Updated(self.updates, self.env_steps, {k: float(v) for k, v in metrics.items()},
                               self.train_seconds))

    @property
    def done(self) -> bool:
        """Budget spent, stop requested, or solved with ``stop_on_solve``: the loop ends at its next check."""
        now = time.perf_counter()
        if now >= self._next_stop_check:  # the request may cost a syscall: ask at most every 20 ms
            self._next_stop_check = now + STOP_CHECK_INTERVAL_S
            self.stopped = self.stopped or bool(self.observer.should_stop())
        budget_spent = self.env_steps >= self.config.total_env_steps or (
            self.config.max_episodes is not None and self.episodes >= self.config.max_episodes)
        return self.stopped or budget_spent or (self.config.stop_on_solve and self.solved_at is not None)

    @property
    def evaluation_due(self) -> bool:
        """The periodic evaluation is due: ``after_step`` runs it (a population evaluates its due members together
        and hands each its returns)."""
        return self.steps_taken >= self._next_eval

    def after_step(self, agent: Agent, eval_returns: np.ndarray | None = None,
                   confirm_returns: np.ndarray | None = None) -> None:
        """Run the periodic evaluation and checkpoint when due; call once per loop iteration. ``eval_returns`` and
        ``confirm_returns``: that evaluation's returns and its confirmation's, if already computed (see
        ``evaluate``)."""
        if self.steps_taken >= self._next_eval:
            every = self.config.eval_every_steps
            self._next_eval = (self.steps_taken // every + 1) * every
            self.evaluate(agent, eval_returns, confirm_returns)
        if self._checkpoint_every and self.env_steps >= self._next_checkpoint:
            self._next_checkpoint = (self.env_steps // self._checkpoint_every + 1) * self._checkpoint_every
            self._paused(lambda: self.observer.on_checkpoint(agent, "periodic", self.env_steps))

    def _paused(self, work: Callable[[], object]) -> object:
        with self.clock_stopped():
            return work()

    def needs_confirmation(self, returns: np.ndarray) -> bool:
        """Whether an evaluation with these returns looks solved for the first time, so ``evaluate`` would confirm
        it (a population plays its members' confirmations together and hands them in)."""
        return self.solved_at is None and is_solved(float(returns.mean()))

    def evaluate(self, agent: Agent, returns: np.ndarray | None = None,
                 confirm_returns: np.ndarray | None = None) -> Evaluated:
        """A greedy evaluation, off the clock; ``returns``, when given, are that evaluation's returns computed
        outside (a population evaluates its members together, off every member's clock). Until the run has solved,
        one that reaches 475 is solved only if its confirmation on ``CONFIRM_EPISODES`` other episodes (played here
        unless ``confirm_returns`` are given) reaches it too; if it does not, the event says not solved and
        training goes on."""
        if returns is None:
            returns = self._paused(lambda: evaluate_returns(agent.act_batch))
        mean = float(returns.mean())
        if self.needs_confirmation(returns) and confirm_returns is None:
            confirm_returns = self._paused(lambda: evaluate_returns(agent.act_batch, CONFIRM_EPISODES, CONFIRM_SEED))
        solved = is_solved(mean) and (self.solved_at is not None or is_solved(float(confirm_returns.mean())))
        event = Evaluated(self.env_steps, self.episodes, mean, float(returns.std()), solved, self.train_seconds)
        self.last_eval = event
        if event.solved and self.solved_at is None:
            self.solved_at = (event.time_s, event.env_steps)
        self.observer.on_event(event)
        if self.best_eval_mean is None or mean > self.best_eval_mean:
            self.best_eval_mean = mean
            self._paused(lambda: self.observer.on_checkpoint(agent, "best", self.env_steps))
        return event

    def finish(self, agent: Agent) -> RunResult:
        seconds = self.train_seconds
        last = self.last_eval
        if last is None or last.env_steps != self.env_steps:
            last = self.evaluate(agent)
        self.observer.on_checkpoint(agent, "final", self.env_steps)
        return RunResult(
            algo=self.config.algo, seed=self.seed, status="stopped" if self.stopped else "completed",
            env_steps=self.env_steps, episodes=self.episodes, train_seconds=seconds,
            solved=self.solved_at is not None,
            time_to_solve_s=None if self.solved_at is None else self.solved_at[0],
            steps_to_solve=None if self.solved_at is None else self.solved_at[1],
            final_eval_mean=last.mean_return, final_eval_std=last.std_return, best_eval_mean=self.best_eval_mean,
            env_steps_per_s=self.env_steps / seconds if seconds > 0 else 0.0,
        )


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)
