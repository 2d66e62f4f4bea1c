"""Deep Q-network (DQN) with a replay buffer and a target network.

What it is: a small MLP estimates Q(s, a) for both actions. Actions are ε-greedy. Transitions go into a
replay buffer, and each gradient step fits Q(s, a) on a random minibatch to the TD target
``r + γ (1 − terminated) max_a' Q_target(s', a')``. The target network is a lagging copy of the online network.
It is refreshed every ``target_update_interval`` gradient steps, either by a hard copy (τ = 1) or a Polyak
average (τ < 1). Double DQN is optional: the online network picks a', the target network values it.

What the seed did: a 32-16-8 leaky-ReLU network, Adam at lr 5e-4, a 10 000-transition deque buffer, batch 64,
γ 0.9, ε = max(0.2, 0.99^episode), MSE loss, and one gradient step per env step from the moment the buffer
held one batch. After every step it did a soft target update with τ = 1e-3. It stored ``done`` = terminated
and stopped once an episode lasted 400 steps. The ``seed`` preset reproduces these settings.

What we changed and why:
- the replay buffer is a set of preallocated numpy arrays with wrap-around. Sampling a batch is one fancy
  index per array, not a loop over a deque of tuples followed by ``np.vstack``;
- N environments step together in one vectorized CartPole, and one forward pass picks the greedy actions
  for all of them. ``train_freq`` counts env steps taken (vector steps × N), so N > 1 changes throughput, not the
  update ratio. A step that only resets a finished episode (no transition) counts as taken;
- updates are batched as in SB3 (``gradient_steps`` every ``train_freq`` env steps) and the target network
  has its own interval, so the update-to-data ratio and the target lag are separate knobs;
- Huber loss, gradient clipping, Double DQN, hard target updates and linear ε / learning-rate schedules are
  available as options. The ``fast`` preset uses SB3-style bursts: 8 gradient steps on batches of 256 every
  64 env steps, with the target network copied once per burst. On the CPU a small network's gradient step
  costs about the same at batch 64 or 256 (per-op overhead), so few large-batch steps at a high lr are cheaper;
- a burst samples all its minibatches with one draw and one fancy index per array (the same rows as batch
  by batch);
- n-step returns (``n_step``, off by default): a stored transition sums n rewards, discounted, and bootstraps from
  the state n steps on with γ^n (``NStepReturns``). A reward then reaches the Q-values of the states n steps back in
  one gradient step rather than n successive ones; the `fast` preset solves in about two thirds of the env steps.
  The returns are those of the ε-greedy behaviour, uncorrected (as in Rainbow): fine once ε is small;
- one loop trains a population: N members (a lone run is a population of one), their Q-networks and target
  networks stacked on a member axis (``StackedMLP``: one batched matmul per layer for all), their environments one
  vector env (``PopulationCartPole``). Member k keeps everything a lone run with seed k has — its initial weights,
  its environments' resets, its ε draws and replay sampling (``run.rng``), its own replay buffer and its own
  hyperparameters (ε and learning-rate schedules, γ, τ and target interval, Double DQN, loss, clipping). Its update
  is its own: the loss is summed over members, never averaged (a mean would divide every member's gradient by N);
  gradient clipping and Adam (``StackedAdam``) are per member. Since ``train_freq`` counts vector steps, every
  member bursts on the same step (counting each member's own transitions, the reset steps would drift members out
  of phase, and each burst would train a few of them: N bursts' worth of overhead). A member still short of
  ``learning_starts`` sits the burst out: the members due are gathered out of the stack and written back. A member
  leaves the batch when it is done or fails, without holding the others back.

Kept from the seed: ``done`` stored for the bootstrap is ``terminated`` only, so the 500-step time limit
(truncation) still bootstraps — see ``td_target``.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from functools import partial

import numpy as np
import torch
import torch.nn.functional as F

from cartpole_core.config.models import DQNConfig
from cartpole_core.engine.agent import DQNAgent, build_q_network
from cartpole_core.engine.envs import PopulationCartPole
from cartpole_core.engine.evaluate import evaluate_population_returns
from cartpole_core.engine.nets import N_ACTIONS, OBS_DIM, Kept
from cartpole_core.engine.population import (
    MemberFailed,
    MemberGuard,
    PopulationEpisodes,
    StackedAdam,
    evaluate_due,
    release_members,
)
from cartpole_core.engine.run import Run, seed_everything
from cartpole_core.engine.stacked import StackedMLP
from cartpole_core.records import RunResult

LOG_EVERY_GRADIENT_STEPS = 100  # one Updated event per this many gradient steps keeps the UI's event volume low
DIAGNOSTICS = ("td_loss", "mean_q", "grad_norm")


class ReplayBuffer:
    """Fixed-capacity FIFO of transitions in preallocated arrays. When full, new rows overwrite the oldest."""

    def __init__(self, capacity: int, obs_dim: int = OBS_DIM):
        self.capacity = capacity
        self.obs = np.zeros((capacity, obs_dim), dtype=np.float32)
        self.next_obs = np.zeros((capacity, obs_dim), dtype=np.float32)
        self.actions = np.zeros(capacity, dtype=np.int64)
        self.rewards = np.zeros(capacity, dtype=np.float32)
        self.terminated = np.zeros(capacity, dtype=np.float32)
        self.discounts = np.zeros(capacity, dtype=np.float32)  # γ^k: k rewards summed before the bootstrap
        self.position = 0  # the row the next transition goes to
        self.size = 0

    def __len__(self) -> int:
        return self.size

    @property
    def fields(self) -> tuple[np.ndarray, ...]:
        """The arrays in the order ``add`` takes them and ``draw`` returns them."""
        return self.obs, self.actions, self.rewards, self.next_obs, self.terminated, self.discounts

    def add(self, obs: np.ndarray, actions: np.ndarray, rewards: np.ndarray, next_obs: np.ndarray,
            terminated: np.ndarray, discounts: np.ndarray | float) -> None:
        """Append a batch of transitions (one row each). ``rewards``: each one's reward, or its discounted sum of k
        rewards for a k-step return, whose bootstrap state is ``next_obs`` and whose ``discounts`` is γ^k (one-step
        transitions: γ)."""
        n = len(actions)
        values = [obs, actions, rewards, next_obs, terminated, np.broadcast_to(discounts, (n,))]
        if n > self.capacity:  # only the newest `capacity` rows survive: skip the rest as if written and overwritten
            self.position = (self.position + n - self.capacity) % self.capacity
            values = [x[-self.capacity:] for x in values]
            n = self.capacity
        rows = (self.position + np.arange(n)) % self.capacity
        for field, value in zip(self.fields, values):
            field[rows] = value
        self.position = (self.position + n) % self.capacity
        self.size = min(self.size + n, self.capacity)

    def draw(self, rows: int, rng: np.random.Generator) -> tuple[np.ndarray, ...]:
        """``(obs, actions, rewards, next_obs, terminated, discounts)`` arrays of ``rows`` rows drawn with replacement.

        One draw and one fancy index per array for a whole burst: numpy's ``integers`` yields the same stream
        whether drawn at once or batch by batch, so a burst's batches (and the rng after) are those of one
        ``sample`` per gradient step.
        """
        index = rng.integers(0, self.size, rows)
        return tuple(x[index] for x in self.fields)

    def sample(self, batch_size: int, rng: np.random.Generator) -> tuple[torch.Tensor, ...]:
        """``draw``'s arrays as tensors, ``batch_size`` rows."""
        return tuple(torch.from_numpy(x) for x in self.draw(batch_size, rng))


class NStepReturns:
    """A population's env steps turned into the transitions its replay buffers store: with n-step returns (member k's
    ``n_step`` = n), a transition from s_t stores r_{t+1} + γ r_{t+2} + … + γ^(n−1) r_{t+n}, s_{t+n} and the discount
    γ^n, and is complete n steps after it began. An episode's end completes every transition still open in its env
    with the rewards up to the end (k < n of them: discount γ^k); its final observation is their s' — bootstrapped
    from when the episode was cut by the time limit, not when it terminated, as for one-step transitions. With
    n = 1 each step's transition is complete at once, the reward and s' as they came, the discount γ.

    Env slots ``[k·n_envs, (k+1)·n_envs)`` are member k's. Each slot keeps the transitions it has open in a ring of
    max n rows (row = transitions begun in that slot, modulo the ring's size): the oldest is complete before its row
    comes round again."""

    def __init__(self, n_steps: Sequence[int], gammas: Sequence[float], n_envs: int):
        self.n_envs = n_envs
        self.n_step = np.repeat(np.asarray(n_steps, dtype=np.int64), n_envs)  # per env slot
        self.gamma = np.repeat(np.asarray(gammas, dtype=np.float64), n_envs)
        rows, slots = max(n_steps), len(n_steps) * n_envs
        self.obs = np.zeros((rows, slots, OBS_DIM), dtype=np.float32)  # each open transition's s_t and a_t
        self.actions = np.zeros((rows, slots), dtype=np.int64)
        self.returns = np.zeros((rows, slots))  # its rewards so far, discounted
        self.summed = np.zeros((rows, slots), dtype=np.int64)  # how many
        self.open = np.zeros((rows, slots), dtype=bool)
        self.begun = np.zeros(slots, dtype=np.int64)

    def step(self, real: np.ndarray, obs: np.ndarray, actions: np.ndarray, rewards: np.ndarray,
             next_obs: np.ndarray, terminated: np.ndarray, truncated: np.ndarray) -> tuple[np.ndarray, ...]:
        """One vector step (``real``: the slots whose step is a transition, not an autoreset). Returns the
        transitions it completes: their slots (ascending; a slot's oldest transition first), then ``(obs, actions,
        rewards, next_obs, terminated, discounts)`` as ``ReplayBuffer.add`` takes them."""
        going_on = self.open & real
        self.returns[going_on] += (self.gamma ** self.summed * rewards)[going_on]
        self.summed += going_on
        begin = np.flatnonzero(real)
        row = self.begun[begin] % len(self.open)
        self.obs[row, begin], self.actions[row, begin] = obs[begin], actions[begin]
        self.returns[row, begin], self.summed[row, begin], self.open[row, begin] = rewards[begin], 1, True
        self.begun[begin] += 1
        ended = (terminated | truncated) & real
        rows, slots = np.nonzero(self.open & ((self.summed == self.n_step) | ended))
        order = np.lexsort((-self.summed[rows, slots], slots))  # by slot, the oldest (most rewards summed) first
        rows, slots = rows[order], slots[order]
        self.open[rows, slots] = False
        summed = self.summed[rows, slots]
        return (slots, self.obs[rows, slots], self.actions[rows, slots], self.returns[rows, slots].astype(np.float32),
                next_obs[slots], terminated[slots], (self.gamma[slots] ** summed).astype(np.float32))

    def keep(self, members: list[int]) -> None:
        """Only these members' env slots (in this order) stay."""
        slots = (np.asarray(members)[:, None] * self.n_envs + np.arange(self.n_envs)).reshape(-1)
        self.n_step, self.gamma, self.begun = self.n_step[slots], self.gamma[slots], self.begun[slots]
        self.obs, self.actions = self.obs[:, slots], self.actions[:, slots]
        self.returns, self.summed, self.open = self.returns[:, slots], self.summed[:, slots], self.open[:, slots]


def td_target(rewards: torch.Tensor, terminated: torch.Tensor, discounts: float | torch.Tensor, next_q: torch.Tensor,
              online_next_q: torch.Tensor | None = None, double: torch.Tensor | None = None) -> torch.Tensor:
    """The regression target ``r + γ (1 − terminated) Q_target(s', a')`` for a batch of transitions, (B,) — or
    (N, B) for a population's networks. ``discounts``: γ, or each transition's own (…, B): γ^k for a k-step return
    ``r`` = r₁ + γ r₂ + … + γ^(k−1) r_k, whose s' is the state k steps on. ``next_q``: the target network's values of
    the next observations, (…, B, 2).

    a' = argmax Q_target(s', ·) for plain DQN. With Double DQN (pass the online network's values ``online_next_q``),
    a' = argmax Q_online(s', ·): the online network picks the action and the target network values it, which removes
    the max's upward bias. ``double`` (N, 1, 1), when given, says which members use Double DQN; the others take the
    plain target.

    ``terminated`` is 1 only when the pole fell or the cart left the track. A transition cut by the time limit
    (truncated) has terminated = 0 and so bootstraps from s'. The episode stopped, but the state still has a
    future, and treating the cut as terminal teaches the network that a balanced pole at step 500 is worth 0.
    """
    if online_next_q is None:
        next_value = next_q.max(dim=-1).values
    else:
        next_action = online_next_q.argmax(dim=-1, keepdim=True)
        if double is not None:
            next_action = torch.where(double, next_action, next_q.argmax(dim=-1, keepdim=True))
        next_value = next_q.gather(-1, next_action).squeeze(-1)
    return rewards + discounts * (1.0 - terminated) * next_value


def _column(configs: Sequence[DQNConfig], value: Callable[[DQNConfig], float | None],
            missing: float = math.inf) -> torch.Tensor:
    """One value per member, shape (N,) (``missing`` where a member's is None)."""
    return torch.tensor([missing if (v := value(config)) is None else v for config in configs], dtype=torch.float32)


def _td_losses(q_taken: torch.Tensor, target: torch.Tensor,
               configs: Sequence[DQNConfig]) -> tuple[torch.Tensor, torch.Tensor]:
    """Each member's mean TD loss over its batch, (N,): Huber (δ = 1) or squared error, as its config says; and its
    gradient with respect to ``q_taken``, (N, B)."""
    kinds = [config.loss for config in configs]
    error = q_taken - target
    batch = error.shape[1]
    if len(set(kinds)) == 1:  # the usual population: one kind, one loss op
        if kinds[0] == "huber":
            return F.smooth_l1_loss(q_taken, target, reduction="none").mean(dim=1), error.clamp(-1.0, 1.0) / batch
        return error.square().mean(dim=1), error * (2.0 / batch)
    huber = torch.tensor([kind == "huber" for kind in kinds])[:, None]
    losses = torch.where(huber, F.smooth_l1_loss(q_taken, target, reduction="none"), error.square()).mean(dim=1)
    return losses, torch.where(huber, error.clamp(-1.0, 1.0), 2.0 * error) / batch


@dataclass(frozen=True)
class Batches:
    """One burst's minibatches for every member: K gradient steps, each of shape (N, B, …). ``active`` (K, N) says
    which members take step k (members may be given different numbers of steps)."""

    obs: torch.Tensor
    actions: torch.Tensor
    rewards: torch.Tensor
    next_obs: torch.Tensor
    terminated: torch.Tensor
    discounts: torch.Tensor
    active: torch.Tensor

    @classmethod
    def draw(cls, buffers: Sequence[ReplayBuffer], rngs: Sequence[np.random.Generator], steps: Sequence[int],
             batch_size: int) -> Batches:
        """Member k's ``steps[k]`` batches from its own buffer with its own rng, as a lone run draws them."""
        most = max(steps)
        fields = [np.zeros((len(buffers), most * batch_size, *x.shape[1:]), dtype=x.dtype) for x in buffers[0].fields]
        for member, (buffer, rng, count) in enumerate(zip(buffers, rngs, steps)):
            for field, drawn in zip(fields, buffer.draw(count * batch_size, rng)):
                field[member, :len(drawn)] = drawn
        by_step = [torch.from_numpy(np.ascontiguousarray(
            field.reshape(len(buffers), most, batch_size, *field.shape[2:]).swapaxes(0, 1))) for field in fields]
        return cls(*by_step, torch.arange(most)[:, None] < torch.tensor(steps)[None])


# Rows × width of one target pass at most: a pass over more steps only pays off while its activations stay small
# (8 steps of one member's batch of 128: 1024 × 128). Beyond, an (N, 1024, 128) stack runs ~5 × slower an element.
TARGET_PASS_ELEMENTS = 1 << 17


def _target_values(target_net: StackedMLP, next_obs: torch.Tensor, changes_after: np.ndarray) -> Iterator[torch.Tensor]:
    """The target network's values of each step's next observations, (N, B, 2) per step, for a burst whose target
    network changes after the steps ``changes_after`` (K,) marks. Between changes the network is fixed, so one
    forward pass covers several steps' batches (rows are computed independently: the numbers are each step's own),
    as many as ``TARGET_PASS_ELEMENTS`` allows. Lazy: a pass runs when its first step is asked for, after any change
    before it."""
    steps, members, batch = next_obs.shape[:3]
    per_pass = max(1, TARGET_PASS_ELEMENTS // (members * batch * max(target_net.sizes[1:])))
    ends = sorted({*(np.flatnonzero(changes_after[:-1]) + 1).tolist(), *range(per_pass, steps, per_pass), steps})
    start = 0
    for end in ends:
        with torch.no_grad():
            values = target_net(next_obs[start:end].transpose(0, 1).reshape(members, (end - start) * batch, -1))
        yield from values.view(members, end - start, batch, -1).unbind(1)
        start = end


def update(configs: Sequence[DQNConfig], net: StackedMLP, target_net: StackedMLP, optimizer: StackedAdam,
           learning_rates: torch.Tensor, gradient_steps_done: Sequence[int], batches: Batches) -> np.ndarray:
    """One gradient step per batch for every member at once, and each member's target network update whenever it
    is due (every ``target_update_interval`` of its own gradient steps, counted from ``gradient_steps_done``).

    ``learning_rates``: each member's rate for each of its weights, as ``net.flat``. Returns each step's
    ``(td_loss, mean_q, grad_norm)`` per member, shape (K, N, 3): nan where the member sat the step out, and for
    grad_norm where it does not clip. The caller checks for divergence.
    """
    double = torch.tensor([c.double_dqn for c in configs])[:, None, None]
    doubles = bool(double.any())
    max_grad_norms = _column(configs, lambda c: c.max_grad_norm)
    clipping = torch.tensor([c.max_grad_norm is not None for c in configs])
    clips = bool(clipping.any())
    interval = np.array([c.target_update_interval for c in configs])
    tau = _column(configs, lambda c: c.tau)
    active_steps = batches.active.numpy()
    # (K, N): whether member n's target network update falls due after step k
    due_after = active_steps & ((np.asarray(gradient_steps_done) + active_steps.cumsum(axis=0)) % interval == 0)
    target_values = _target_values(target_net, batches.next_obs, due_after.any(axis=1))
    losses, q_means, grad_norms = [], [], []
    for step, (obs, actions, rewards, next_obs, terminated, discounts, next_q) in enumerate(zip(
            batches.obs, batches.actions, batches.rewards, batches.next_obs, batches.terminated, batches.discounts,
            target_values)):
        with torch.no_grad():
            online_next_q = net(next_obs) if doubles else None
        target = td_target(rewards, terminated, discounts, next_q, online_next_q, double)
        kept: Kept = []
        q_values = net(obs, kept)
        taken = actions[..., None]
        q_taken = q_values.gather(2, taken).squeeze(2)
        step_losses, grad_q_taken = _td_losses(q_taken, target, configs)
        # The loss is the sum over members: each member's gradient is its own loss's, flowing only into Q(s, a).
        net.backward(kept, torch.zeros_like(q_values).scatter_(2, taken, grad_q_taken[..., None]))
        if clips:
            grad_norms.append(torch.where(clipping, net.clip_grad_norms_(max_grad_norms), math.nan))
        optimizer.step(net.flat, net.grad, learning_rates, net.member_index, batches.active[step])
        due = due_after[step]
        if due.any():  # τ = 1: a hard copy; τ < 1: Polyak, θ_target ← θ_target + τ (θ − θ_target)
            target_net.flat.lerp_(net.flat, net.per_weight(torch.where(torch.from_numpy(due), tau, 0.0)))
        losses.append(step_losses)
        q_means.append(q_taken)

    q_means = torch.stack(q_means).mean(dim=2)
    norms = torch.stack(grad_norms) if clips else torch.full_like(q_means, math.nan)
    diagnostics = torch.stack([torch.stack(losses), q_means, norms], dim=2)
    diagnostics[~batches.active] = math.nan
    return diagnostics.numpy()


class _MemberAgent(DQNAgent):
    """A member's Q-network as a plain ``nets.mlp``, refreshed from the stack when first used after a burst."""

    def __init__(self, config: DQNConfig, q_net: torch.nn.Module,
                 read_weights: Callable[[], dict[str, torch.Tensor]]):
        super().__init__(config, q_net)
        self.read_weights: Callable[[], dict[str, torch.Tensor]] | None = read_weights
        self.stale = False

    def _refresh(self) -> None:
        if self.stale and self.read_weights is not None:
            self.q_net.load_state_dict(self.read_weights())
        self.stale = False

    def _values(self, obs: np.ndarray) -> np.ndarray:
        self._refresh()
        return super()._values(obs)

    def state(self) -> dict[str, torch.Tensor]:
        self._refresh()
        return super().state()

    def detach(self) -> None:
        """The member left the stack: from now on a plain agent."""
        self._refresh()
        self.read_weights = None


class _Member:
    """One member's state in the population loop; ``row`` is its place on the member axis, which moves as others
    leave."""

    def __init__(self, config: DQNConfig, run: Run, q_net: torch.nn.Module, net: StackedMLP, row: int):
        self.config, self.run, self.row = config, run, row
        self.agent = _MemberAgent(config, q_net, lambda: net.member_state(self.row))
        self.buffer = ReplayBuffer(config.buffer_size)
        self.epsilon = 1.0
        self.gradient_steps_done = 0
        self.unlogged: list[np.ndarray] = []  # diagnostics of the gradient steps since its last Updated event
        self.failure: BaseException | None = None

    @property
    def error(self) -> BaseException | None:
        """Its divergence, or the first exception its observer raised."""
        observer = self.run.observer
        return self.failure or (observer.error if isinstance(observer, MemberGuard) else None)

    def log_gradient_steps(self, diagnostics: np.ndarray, learning_rate: float) -> None:
        """One Updated event per ``LOG_EVERY_GRADIENT_STEPS`` gradient steps: their mean diagnostics."""
        self.unlogged.extend(diagnostics)
        while len(self.unlogged) >= LOG_EVERY_GRADIENT_STEPS:
            window = np.mean(self.unlogged[:LOG_EVERY_GRADIENT_STEPS], axis=0)
            del self.unlogged[:LOG_EVERY_GRADIENT_STEPS]
            metrics = dict(zip(DIAGNOSTICS, window.tolist()))
            if self.config.max_grad_norm is None:
                del metrics["grad_norm"]
            self.run.log_update(**metrics, epsilon=self.epsilon, learning_rate=learning_rate)



def _evaluate_together(net: StackedMLP, members: Sequence[_Member], episodes: int, seed: int) -> np.ndarray:
    """Greedy returns of these members, shape (M, episodes): one batched evaluation, each on
    ``evaluate_returns(…, episodes, seed)``\'s starts."""
    q_nets = net.select([member.row for member in members])

    def act(obs: np.ndarray) -> np.ndarray:
        with torch.no_grad():
            return q_nets(torch.from_numpy(obs)).argmax(dim=-1).numpy()

    return evaluate_population_returns(act, len(members), episodes, seed)


@contextmanager
def _only(rows: list[int], net: StackedMLP, target_net: StackedMLP,
          optimizer: StackedAdam) -> Iterator[tuple[StackedMLP, StackedMLP, StackedAdam]]:
    """These members' networks and Adam state, gathered out of the stack and written back after: a burst trains
    only the members due."""
    if len(rows) == net.members:
        yield net, target_net, optimizer
        return
    part = StackedMLP(net.sizes, net.activation, net.take(net.flat, rows), len(rows))
    part_target = StackedMLP(net.sizes, net.activation, net.take(target_net.flat, rows), len(rows))
    part_optimizer = StackedAdam(part.member_index)
    part_optimizer.exp_avg = net.take(optimizer.exp_avg, rows)
    part_optimizer.exp_avg_sq = net.take(optimizer.exp_avg_sq, rows)
    part_optimizer.steps = optimizer.steps[rows]
    yield part, part_target, part_optimizer
    net.put(net.flat, rows, part.flat)
    net.put(target_net.flat, rows, part_target.flat)
    net.put(optimizer.exp_avg, rows, part_optimizer.exp_avg)
    net.put(optimizer.exp_avg_sq, rows, part_optimizer.exp_avg_sq)
    optimizer.steps[rows] = part_optimizer.steps


Outcome = tuple[DQNAgent, RunResult] | MemberFailed


def train(configs: Sequence[DQNConfig], runs: Sequence[Run],
          on_member_done: Callable[[int, Outcome], None] | None = None) -> list[Outcome]:
    """Train a population (shape fields equal, see ``config.population.population_key``); member k's outcome, in
    order: its final agent and result, or its failure. Each member's ``Run`` is finished when it leaves, and
    ``on_member_done(k, outcome)`` told then."""
    first = configs[0]
    n = first.n_envs
    q_nets = []
    for run, config in zip(runs, configs):
        seed_everything(run.seed)  # member k's network starts as a lone run's with seed k
        q_nets.append(build_q_network(config))
    net = StackedMLP.stack(q_nets, [OBS_DIM, *first.hidden_sizes, N_ACTIONS], first.activation)
    target_net = net.copy()
    members = [_Member(config, run, q_net, net, row)
               for row, (config, run, q_net) in enumerate(zip(configs, runs, q_nets))]
    optimizer = StackedAdam(net.member_index)
    env = PopulationCartPole([run.seed for run in runs], n, max_episode_steps=first.max_episode_steps)
    obs, _ = env.reset()
    transitions = NStepReturns([config.n_step for config in configs], [config.gamma for config in configs], n)
    episodes = PopulationEpisodes(list(runs), n)
    learning_starts = max(first.learning_starts, first.batch_size)
    outcomes: dict[int, Outcome] = {}
    live = list(members)

    while True:
        # ---- members that are done (budget, solved with stop_on_solve, stop request) or failed leave the batch
        remaining = release_members(live, members, outcomes, partial(_evaluate_together, net),
                                    on_member_done)
        if len(remaining) < len(live):
            live = remaining
            if not live:
                break
            rows = [member.row for member in live]
            optimizer.keep(rows, net.take)
            target_net.keep(rows)
            net.keep(rows)
            env.keep(rows)
            transitions.keep(rows)
            episodes.keep(rows)
            obs = obs.reshape(-1, n, OBS_DIM)[rows].reshape(-1, OBS_DIM)
            for row, member in enumerate(live):
                member.row = row
        size = len(live)  # the member axis: size members × n envs; slots [k·n, (k+1)·n) are member k's
        lrs = [member.run.scheduled(member.config.learning_rate) for member in live]

        # ---- ε-greedy, each member from its own rng; one forward pass for all, skipped when every env explores
        explore, actions = [], []
        for member in live:
            member.epsilon = member.run.scheduled(member.config.epsilon)
            explore.append(member.run.rng.random(n) < member.epsilon)
            actions.append(member.run.rng.integers(0, 2, n))
        explore, actions = np.concatenate(explore), np.concatenate(actions)
        if not explore.all():
            with torch.no_grad():
                greedy = net(torch.from_numpy(obs).view(size, n, OBS_DIM)).argmax(dim=2).view(-1).numpy()
            actions = np.where(explore, actions, greedy)
        next_obs, reward, terminated, truncated, _ = env.step(actions)

        # NEXT_STEP autoreset: a copy that ended last step was only reset now (reward 0, action ignored), so
        # this is not a transition. On the done step itself, next_obs is the true final observation.
        slots, *completed = transitions.step(episodes.live, obs, actions, reward, next_obs, terminated, truncated)
        bounds = np.searchsorted(slots, np.arange(size + 1) * n)  # member k's: completed[bounds[k]:bounds[k + 1]]
        for member, start, end in zip(live, bounds[:-1], bounds[1:]):
            member.buffer.add(*(x[start:end] for x in completed))
        episodes.record(reward, terminated, truncated, [member.epsilon for member in live], lrs)
        obs = next_obs

        # ---- bursts: every train_freq env steps taken (``Run.steps_taken``: the same for every member, the steps
        # that only reset a finished episode included), so all burst on the same vector step; one step may cross
        # several boundaries
        taken = live[0].run.steps_taken
        crossed = taken // first.train_freq - (taken - n) // first.train_freq
        burst_steps = [crossed * first.gradient_steps if member.run.env_steps >= learning_starts else 0
                       for member in live]
        rows = [row for row, steps in enumerate(burst_steps) if steps]
        if rows:
            bursting = [live[row] for row in rows]
            batches = Batches.draw([member.buffer for member in bursting], [member.run.rng for member in bursting],
                                   [burst_steps[row] for row in rows], first.batch_size)
            with _only(rows, net, target_net, optimizer) as (part, part_target, part_optimizer):
                diagnostics = update([member.config for member in bursting], part, part_target, part_optimizer,
                                     part.per_weight(torch.tensor([lrs[row] for row in rows])),
                                     [member.gradient_steps_done for member in bursting], batches)
            for member, mine in zip(bursting, diagnostics.swapaxes(0, 1)):
                steps = burst_steps[member.row]
                member.gradient_steps_done += steps
                member.agent.stale = True
                if not np.isfinite(mine[:steps, :2]).all():
                    member.failure = FloatingPointError(f"diverged at step {member.run.env_steps}")
                    continue
                member.log_gradient_steps(mine[:steps], lrs[member.row])

        # ---- evaluations: the members due evaluated together, then each member's own checkpoints
        evaluate_due(live, partial(_evaluate_together, net))

    env.close()
    return [outcomes[k] for k in range(len(members))]
