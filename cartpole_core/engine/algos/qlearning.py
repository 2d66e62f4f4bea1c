"""Tabular Q-learning over uniformly binned CartPole observations.

What it is: a table Q[state, action] over discretized observations, ε-greedy exploration, and the one-step
update ``Q(s, a) += α (r + γ max_a' Q(s', a') − Q(s, a))``.

What the seed did: bins 6 × 12 on pole angle and angular velocity (cart position and velocity ignored), the
log-decay schedule ``max(min, min(1, 1 − log10((n+1)/25)))`` per episode for both ε (floor 0.1) and α (floor
0.01), γ = 1, episodes capped at 100 steps; it refit a ``KBinsDiscretizer`` on every step.

What we changed and why:
- the discretizer is fitted once (``agent.Discretizer``) — the seed's per-step refit cost ~0.5 ms a step;
- no bootstrap from a terminal state (the seed bootstrapped from it); truncation (step cap) still bootstraps;
- optionally N environments in one vectorized CartPole share the table. Their updates are applied together;
  when two copies update the same (s, a) in the same step, one update wins — a negligible loss next to the
  throughput gained (the table sees 100 000+ steps a second instead of ~15 000);
- one loop trains a population: N members (a lone run is a population of one), their tables stacked on a member
  axis (members × states × actions, one flat index for all), their environments one vector env
  (``PopulationCartPole``). Member k keeps everything a lone run with seed k has — its environments' resets, its
  ε draws (``run.rng``), its own ε and α schedules, γ, bin bounds, budget and evaluation — and no update crosses
  members (their table rows are apart), so its episodes, evaluations and table are exactly the lone run's. A
  member leaves the batch when it is done or fails, without holding the others back.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from functools import partial

import numpy as np

from cartpole_core.config.models import QLearningConfig
from cartpole_core.engine.agent import QTableAgent
from cartpole_core.engine.envs import PopulationCartPole
from cartpole_core.engine.evaluate import evaluate_population_returns
from cartpole_core.engine.population import (
    MemberFailed,
    MemberGuard,
    PopulationEpisodes,
    evaluate_due,
    release_members,
)
from cartpole_core.engine.run import Run
from cartpole_core.records import RunResult

DIAGNOSTICS_EVERY_STEPS = 2000


def update(q: np.ndarray, s: np.ndarray, a: np.ndarray, reward: np.ndarray, s_next: np.ndarray,
           terminated: np.ndarray, alpha: float | np.ndarray, gamma: float | np.ndarray) -> np.ndarray:
    """One Q-learning update of the flat table ``q`` (states × actions) for a batch of transitions; ``alpha`` and
    ``gamma`` are one value or one per transition (a population's members differ).

    Returns the TD errors. Bootstraps on truncation (the step cap) but not on termination: a fallen pole has
    no future return, and bootstrapping from it (as the seed did) inflates the values of failing states.
    """
    target = reward + gamma * q[s_next].max(axis=1) * ~terminated
    td_error = target - q[s, a]
    q[s, a] += alpha * td_error
    return td_error


class _MemberAgent(QTableAgent):
    """A member's table and visit counts: views of its rows of the population's stacks while it trains."""

    def detach(self) -> None:
        """The member left the batch: its own copies, so the agent no longer holds the whole population's stack."""
        self.q_table = self.q_table.copy()
        self.q_flat = self.q_table.reshape(-1, 2)
        self.visits = self.visits.copy()


class _Member:
    """One member's state in the population loop. ``index`` is its place in the stacked tables (fixed); ``row`` its
    place among the live members (slots ``[row·n_envs, (row+1)·n_envs)``), which moves as others leave."""

    def __init__(self, config: QLearningConfig, run: Run, index: int, tables: np.ndarray, visits: np.ndarray):
        self.config, self.run, self.index, self.row = config, run, index, index
        self.agent = _MemberAgent(config, tables[index], visits[index])
        self.next_diagnostics = DIAGNOSTICS_EVERY_STEPS

        self.guard = run.observer if isinstance(run.observer, MemberGuard) else None

    @property
    def error(self) -> BaseException | None:
        """The first exception its observer raised."""
        return None if self.guard is None else self.guard.error


class _StateIndex:
    """Flat indices into the stacked table (members·states) for observations laid out as ``per_member`` slots per
    member, each member binned with its own bounds. Bins are a shape field, so the dimensions and strides agree."""

    def __init__(self, members: Sequence[_Member], per_member: int):
        discretizers = [member.agent.discretizer for member in members]
        first = discretizers[0]
        self.dims, self.strides = first.dims, first.strides
        self.offsets = np.repeat(np.array([member.index * first.n_states for member in members], dtype=np.int64),
                                 per_member)
        self.shared = all(np.array_equal(a, b) for d in discretizers[1:]
                          for a, b in zip(d.inner_edges, first.inner_edges))
        if self.shared:  # one set of bounds (a lone run, or a population that differs elsewhere): searchsorted
            self.edges = first.inner_edges
        else:  # each slot's edges: counting the edges ≤ x is searchsorted(…, side="right"), compared in float64
            self.edges = [np.repeat(np.stack([d.inner_edges[i] for d in discretizers]), per_member, axis=0)
                          for i in range(len(self.dims))]

    def __call__(self, obs: np.ndarray) -> np.ndarray:
        index = self.offsets.copy()
        for d, edges, stride in zip(self.dims, self.edges, self.strides):
            if self.shared:
                index += np.searchsorted(edges, obs[:, d], side="right") * stride
            else:
                index += (obs[:, d, None] >= edges).sum(axis=1) * stride
        return index


def _evaluate_together(q: np.ndarray, members: Sequence[_Member], episodes: int, seed: int) -> np.ndarray:
    """Greedy returns of these members, shape (M, episodes): one batched evaluation, each on
    ``evaluate_returns(…, episodes, seed)``'s starts."""
    state_index = _StateIndex(members, episodes)

    def act(obs: np.ndarray) -> np.ndarray:
        return q[state_index(obs.reshape(-1, obs.shape[-1]))].argmax(axis=1)

    return evaluate_population_returns(act, len(members), episodes, seed)


Outcome = tuple[QTableAgent, RunResult] | MemberFailed


def train(configs: Sequence[QLearningConfig], runs: Sequence[Run],
          on_member_done: Callable[[int, Outcome], None] | None = None) -> list[Outcome]:
    """Train a population (shape fields equal, see ``config.population.population_key``); member k's outcome, in
    order: its final agent and result, or its failure. Each member's ``Run`` is finished when it leaves, and
    ``on_member_done(k, outcome)`` told then."""
    first = configs[0]
    n = first.n_envs
    n_states = int(np.prod(first.bins))
    # The member axis: member k's table is tables[k]; q is the same memory as one flat (members·states) × actions.
    tables = np.zeros((len(configs), n_states, 2))
    visits = np.zeros((len(configs), n_states), dtype=np.int64)
    q, visits_flat = tables.reshape(-1, 2), visits.reshape(-1)
    members = [_Member(config, run, k, tables, visits) for k, (config, run) in enumerate(zip(configs, runs))]
    env = PopulationCartPole([run.seed for run in runs], n, max_episode_steps=first.max_episode_steps)
    obs, _ = env.reset()
    episodes = PopulationEpisodes(list(runs), n)
    outcomes: dict[int, Outcome] = {}
    live = list(members)
    state_index = _StateIndex(live, n)
    state = state_index(obs)
    gammas = np.repeat([member.config.gamma for member in live], n)
    alphas, alpha_slots = [], None
    td_abs = np.zeros(len(live) * n)  # |TD error| summed per slot since its member's last Updated event
    td_count = np.zeros(len(live) * n, dtype=np.int64)

    while True:
        # ---- members that are done (budget, solved with stop_on_solve, stop request) or failed leave the batch
        if any([member.run.done or member.error is not None for member in live]):
            remaining = release_members(live, members, outcomes, partial(_evaluate_together, q),
                                        on_member_done)
            if not remaining:
                break
            slots = np.concatenate([np.arange(member.row * n, (member.row + 1) * n) for member in remaining])
            live = remaining
            env.keep([member.row for member in live])
            episodes.keep([member.row for member in live])
            state, gammas, td_abs, td_count = state[slots], gammas[slots], td_abs[slots], td_count[slots]
            for row, member in enumerate(live):
                member.row = row
            state_index = _StateIndex(live, n)
            alphas = []
        size = len(live)  # the member axis: size members × n envs; slots [k·n, (k+1)·n) are member k's

        # ---- ε-greedy, each member from its own rng and schedules
        epsilons, explore, random_actions, last_alphas = [], [], [], alphas
        alphas = []
        for member in live:
            run = member.run
            epsilon = run.scheduled(member.config.epsilon)
            epsilons.append(epsilon)
            alphas.append(run.scheduled(member.config.learning_rate))
            explore.append(run.rng.random(n) < epsilon)
            random_actions.append(run.rng.integers(0, 2, n))
        if alphas != last_alphas:  # α moves per episode or step, not every vector step: spread it only then
            alpha_slots = np.repeat(alphas, n)
        greedy = q[state].argmax(axis=1)
        actions = np.where(np.concatenate(explore), np.concatenate(random_actions), greedy)
        obs, reward, terminated, truncated, _ = env.step(actions)
        next_state = state_index(obs)

        # The vector env's NEXT_STEP autoreset: a copy that ended last step was only reset now — no transition.
        real = episodes.live
        s = state[real]
        td_error = update(q, s, actions[real], reward[real], next_state[real], terminated[real], alpha_slots[real],
                          gammas[real])
        np.add.at(visits_flat, s, 1)
        episodes.record(reward, terminated, truncated, epsilons, alphas)
        td_abs[real] += np.abs(td_error)
        td_count += real
        state = next_state

        # ---- diagnostics, then evaluations (the members due evaluated together) and checkpoints
        for member in live:
            run = member.run
            if run.env_steps >= member.next_diagnostics:
                member.next_diagnostics = run.env_steps + DIAGNOSTICS_EVERY_STEPS
                mine = slice(member.row * n, (member.row + 1) * n)
                run.log_update(td_error_abs=td_abs[mine].sum() / max(td_count[mine].sum(), 1),
                               visited_states=float((member.agent.visits > 0).mean()),
                               max_q=float(member.agent.q_flat.max()))
                td_abs[mine], td_count[mine] = 0.0, 0
        if size == 1:  # a lone run: its own evaluations and checkpoints are off its clock already
            if live[0].error is None:
                live[0].run.after_step(live[0].agent)
            continue
        evaluate_due(live, partial(_evaluate_together, q))

    env.close()
    return [outcomes[k] for k in range(len(members))]
