"""What a population shares across its members: who may train together, the per-member episode bookkeeping, a
member's failure, evaluating members together, and Adam over weights stacked on a member axis.

A population is N runs trained in one process, member k with its own config, seed and ``Run`` (observer, counters,
evaluation, checkpoints, result), exactly what the run trained alone produces up to the order floating-point sums
are taken in. Members must share every field that gives a tensor its shape (``population_key``); every other field
— learning rates and their schedules, γ, λ, clip range, coefficients, budgets, evaluation, stopping — is per member.
"""

from __future__ import annotations

import traceback
from collections.abc import Callable, Iterator, Sequence
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from cartpole_core.config.models import TrainConfig
from cartpole_core.config.population import SHAPE_FIELDS
from cartpole_core.engine.evaluate import CONFIRM_EPISODES, CONFIRM_SEED, EVAL_EPISODES, EVAL_SEED
from cartpole_core.engine.observers import RunObserver
from cartpole_core.engine.run import Run
from cartpole_core.records import Event

EvaluationReturns = tuple[np.ndarray, np.ndarray | None]  # an evaluation's returns, and its confirmation's if any


def check_population(configs: Sequence[TrainConfig], seeds: Sequence[int]) -> None:
    """ValueError naming the first member whose shape fields differ from member 0's, and the fields."""
    if len(configs) != len(seeds):
        raise ValueError(f"a population needs one seed per config: got {len(configs)} configs and {len(seeds)} seeds")
    if not configs:
        raise ValueError("a population needs at least one member")
    first = configs[0]
    for member, config in enumerate(configs[1:], start=1):
        if config.algo != first.algo:
            raise ValueError(f"member {member} is {config.algo} but member 0 is {first.algo}: "
                             "a population trains one algorithm")
        differing = [name for name in SHAPE_FIELDS[first.algo] if getattr(config, name) != getattr(first, name)]
        if differing:
            shown = ", ".join(f"{name} ({getattr(config, name)!r} vs {getattr(first, name)!r})" for name in differing)
            raise ValueError(f"member {member} cannot train with member 0: {shown} differ; members of a "
                             f"{first.algo} population must share {', '.join(SHAPE_FIELDS[first.algo])}")


@dataclass(frozen=True)
class MemberFailed:
    """A member that left the population without a result: ``reason`` as a run's error shows it (e.g. "diverged
    at step 1234"), and the exception, which ``train`` raises for a population of one."""

    reason: str
    error: BaseException

    @classmethod
    def of(cls, error: BaseException) -> MemberFailed:
        reason = str(error) if isinstance(error, FloatingPointError) else \
            traceback.format_exception_only(type(error), error)[-1].strip()
        return cls(reason, error)


class MemberGuard(RunObserver):
    """A member's observer whose first exception is kept, not raised: a member whose store write fails leaves the
    population with that error; the others go on. After the error it forwards nothing."""

    def __init__(self, observer: RunObserver):
        self.observer = observer
        self.error: Exception | None = None

    def _call(self, method: str, *args: Any) -> Any:
        if self.error is None:
            try:
                return getattr(self.observer, method)(*args)
            except Exception as err:  # kept for the member's failure, raised again by ``train`` for a lone run
                self.error = err
        return None

    def on_event(self, event: Event) -> None:
        self._call("on_event", event)

    def on_checkpoint(self, agent: Any, kind: str, env_steps: int) -> None:
        self._call("on_checkpoint", agent, kind, env_steps)

    def should_stop(self) -> bool:
        return bool(self._call("should_stop"))


class PopulationEpisodes:
    """Episode bookkeeping for a population stepped as one vector env that autoresets in ``NEXT_STEP`` mode: slots
    ``[k·n_envs, (k+1)·n_envs)`` are the member whose run is ``runs[k]``. The step after an episode ends only resets
    that slot (reward 0, action ignored): it is no transition. ``live`` marks the slots whose current step is a real
    one — read it before ``record``, which counts each member's transitions and steps taken into its run, reports
    every episode that ended, and moves ``live`` on to the next step."""

    def __init__(self, runs: list[Run], n_envs: int):
        self.runs, self.n_envs = list(runs), n_envs
        self.returns = np.zeros(len(runs) * n_envs)
        self.lengths = np.zeros(len(runs) * n_envs, dtype=np.int64)
        self.live = np.ones(len(runs) * n_envs, dtype=bool)

    def record(self, reward: np.ndarray, terminated: np.ndarray, truncated: np.ndarray,
               epsilons: Sequence[float] | None, learning_rates: Sequence[float]) -> None:
        """Count this step's live slots into each member's run and log the episodes that ended, with the member's
        ε (``epsilons`` None: a policy without ε) and learning rate at this step."""
        live = self.live
        for run, steps in zip(self.runs, live.reshape(len(self.runs), self.n_envs).sum(axis=1).tolist()):
            run.add_steps(steps, self.n_envs)
        self.returns += reward * live
        self.lengths += live
        done = terminated | truncated
        for slot in np.flatnonzero(done):
            member = slot // self.n_envs
            self.runs[member].log_episode(self.returns[slot], self.lengths[slot],
                                          None if epsilons is None else epsilons[member], learning_rates[member])
        self.returns[done] = 0.0
        self.lengths[done] = 0
        self.live = ~done

    def keep(self, members: list[int]) -> None:
        """Only these members (in this order) stay."""
        slots = (np.asarray(members)[:, None] * self.n_envs + np.arange(self.n_envs)).reshape(-1)
        self.runs = [self.runs[k] for k in members]
        self.returns, self.lengths, self.live = self.returns[slots], self.lengths[slots], self.live[slots]


class StackedAdam:
    """Adam over the weights of N members held in one tensor (``member_index`` says whose each weight is), each
    member with its own step count and a learning rate per weight (a member's actor and critic may differ). For
    one member it is ``torch.optim.Adam`` (same formula, float rounding aside).

    ``step(..., active)``: a member not active this step keeps its weights, moments and step count — a member
    whose rollout had fewer minibatches than another's sits out the extra steps.
    """

    def __init__(self, member_index: torch.Tensor, betas: tuple[float, float] = (0.9, 0.999), eps: float = 1e-8):
        self.beta1, self.beta2 = betas
        self.eps = eps
        self.exp_avg = torch.zeros(member_index.shape)
        self.exp_avg_sq = torch.zeros(member_index.shape)
        self.steps = torch.zeros(int(member_index.max()) + 1 if len(member_index) else 0, dtype=torch.float64)

    @torch.no_grad()
    def step(self, params: torch.Tensor, grads: torch.Tensor, learning_rates: torch.Tensor,
             member_index: torch.Tensor, active: torch.Tensor | None = None) -> None:
        """``learning_rates``: one per weight, shaped as ``params``."""
        if active is not None and bool(active.all()):
            active = None
        if active is None and bool((self.steps == self.steps[0]).all()):
            self._fused_step(params, grads, learning_rates)
            return
        if active is not None:
            resting = ~active[member_index]
            kept = self.exp_avg[resting], self.exp_avg_sq[resting]
            self.steps += active
        else:
            self.steps += 1
        self.exp_avg.lerp_(grads, 1 - self.beta1)
        self.exp_avg_sq.mul_(self.beta2).addcmul_(grads, grads, value=1 - self.beta2)
        bias_correction1 = 1 - self.beta1 ** self.steps
        bias_correction2_sqrt = (1 - self.beta2 ** self.steps).sqrt()
        step_sizes = learning_rates / bias_correction1.float().clamp(min=1e-12)[member_index]
        if active is not None:
            step_sizes[resting] = 0.0
        denom = (self.exp_avg_sq.sqrt() / bias_correction2_sqrt.float().clamp(min=1e-12)[member_index]).add_(self.eps)
        params.sub_(self.exp_avg / denom * step_sizes)
        if active is not None:
            self.exp_avg[resting], self.exp_avg_sq[resting] = kept

    def _fused_step(self, params: torch.Tensor, grads: torch.Tensor, learning_rates: torch.Tensor) -> None:
        """The usual step — every member active, one step count for all — as torch's fused Adam kernel: one op over
        the moments where the formula above takes nine. It runs with a learning rate of 1 into ``direction`` (the
        step each weight would take at rate 1), which each weight's own rate then scales."""
        self.steps += 1
        step = self.steps[0].float()  # the kernel reads the step count; torch.optim advances it before the call
        direction = torch.zeros_like(params)
        torch._fused_adam_([direction], [grads], [self.exp_avg], [self.exp_avg_sq], [], [step], amsgrad=False,
                           lr=1.0, beta1=self.beta1, beta2=self.beta2, weight_decay=0.0, eps=self.eps,
                           maximize=False)
        params.addcmul_(direction, learning_rates)

    def keep(self, members: list[int], take: Callable[[torch.Tensor, list[int]], torch.Tensor]) -> None:
        """Only these members' state (in this order) stays; ``take`` picks their weights' entries."""
        self.exp_avg, self.exp_avg_sq = take(self.exp_avg, members), take(self.exp_avg_sq, members)
        self.steps = self.steps[members]


@contextmanager
def off_clock(members: Sequence[Any]) -> Iterator[None]:
    """Every member's training clock stopped (``Run.clock_stopped``): while one member is evaluated the population
    trains none of them, and an evaluation's event carries the time it began, not when it ended."""
    with ExitStack() as stack:
        for member in members:
            stack.enter_context(member.run.clock_stopped())
        yield


# A population's evaluation of some of its members: (members, episodes, seed) → their greedy returns (M, episodes).
EvaluateTogether = Callable[[Sequence[Any], int, int], np.ndarray]


def evaluate_members(members: Sequence[Any], evaluate_together: EvaluateTogether) -> list[EvaluationReturns]:
    """These members' greedy evaluations, played together, and the confirmations of those that look solved for the
    first time, played together too (one batched evaluation each, where lone runs would play one per member): each
    member's returns and its confirmation's (None when it needs none), for ``Run.after_step`` / ``Run.evaluate``."""
    if not members:
        return []
    returns = list(evaluate_together(members, EVAL_EPISODES, EVAL_SEED))
    confirming = [k for k, (member, mine) in enumerate(zip(members, returns)) if member.run.needs_confirmation(mine)]
    confirmations: list[np.ndarray | None] = [None] * len(members)
    if confirming:
        played = evaluate_together([members[k] for k in confirming], CONFIRM_EPISODES, CONFIRM_SEED)
        for k, mine in zip(confirming, played):
            confirmations[k] = mine
    return list(zip(returns, confirmations))


def evaluate_due(live: Sequence[Any], evaluate_together: EvaluateTogether) -> None:
    """Each member still training (no error) past its step's work: the ones whose periodic evaluation is due are
    evaluated together (``evaluate_members``), then every one runs ``Run.after_step`` (evaluation, checkpoints) —
    all off every member's clock, as the population trains none of them meanwhile."""
    going_on = [member for member in live if member.error is None]
    with off_clock(live):
        due = [member for member in going_on if member.run.evaluation_due]
        given = dict(zip(map(id, due), evaluate_members(due, evaluate_together)))
        for member in going_on:
            member.run.after_step(member.agent, *given.get(id(member), (None, None)))


def release_members(live: list[Any], members: Sequence[Any], outcomes: dict[int, Any],
                    evaluate_together: EvaluateTogether,
                    on_member_done: Callable[[int, Any], None] | None) -> list[Any]:
    """The members that are done (budget, solved with stop_on_solve, stop request) or failed leave the batch: a
    finished one gets its final evaluation (batched with the others leaving, off every clock) and its result, each
    outcome goes to ``outcomes[k]`` and ``on_member_done(k, outcome)``. Returns the members still training, in
    order. A member has ``run``, ``agent`` (with ``detach``) and ``error``."""
    failed = [member for member in live if member.error is not None]
    finished = [member for member in live if member.error is None and member.run.done]
    last_unevaluated = [member for member in finished
                        if member.run.last_eval is None or member.run.last_eval.env_steps != member.run.env_steps]
    if last_unevaluated:
        with off_clock(live):
            final = evaluate_members(last_unevaluated, evaluate_together)
        for member, (returns, confirm_returns) in zip(last_unevaluated, final):
            member.run.evaluate(member.agent, returns, confirm_returns)
    for member in finished + failed:
        result = member.run.finish(member.agent) if member in finished else None
        member.agent.detach()
        k = members.index(member)
        outcomes[k] = (member.agent, result) if member.error is None else MemberFailed.of(member.error)
        if on_member_done is not None:
            on_member_done(k, outcomes[k])
    return [member for member in live if member not in failed and member not in finished]

