"""Proximal Policy Optimization (PPO) with a clipped surrogate objective and GAE.

What it is: collect a rollout of ``rollout_steps`` steps in each of ``n_envs`` CartPoles with the current
stochastic policy, compute advantages with generalized advantage estimation (GAE(γ, λ)), then take ``epochs``
passes of shuffled minibatch gradient steps on the clipped surrogate
``−min(ρ A, clip(ρ, 1 − ε, 1 + ε) A)`` (ρ = π_new(a|s) / π_old(a|s)), the value loss ``(V(s) − R)²`` and an
entropy bonus. Repeat until the budget is spent.

What the seed did: separate actor and critic (one hidden layer of 100 ReLU units each; Adam at 1e-3 and 3e-3),
one episode per update, Monte-Carlo discounted returns ``G_t`` (γ = 0.99) with advantage ``G_t − V(s_t)``,
10 epochs of minibatches of 32, clip 0.2, each network's gradient clipped to norm 0.5, no entropy bonus and no
advantage normalization. It ran on CartPole-v0 with the time limit removed (``.unwrapped``).

What we changed and why:
- rollouts are fixed-length and span episodes in ``n_envs`` vectorized CartPoles (one batched forward per
  vector step), so the update cost no longer depends on how long the episodes are;
- advantages come from GAE; ``gae_lambda = 1`` with ``bootstrap = False`` gives back the seed's Monte-Carlo
  ``G_t − V(s_t)`` exactly (see ``compute_gae``). With ``bootstrap = True`` a time-limit truncation and the
  rollout's end are valued by the critic instead of as zero future reward — the classic CartPole bug is to
  treat the 500-step limit like a fall;
- the ratio is computed from log-probabilities (the seed divided probabilities), and minibatches are the
  shuffled rollout split into equal chunks of at most ``minibatch_size`` (no tiny last minibatch);
- separate networks share one Adam optimizer with two parameter groups (actor lr, critic lr) and one backward
  pass of ``policy loss + value loss``; as in the seed each network's gradient is clipped on its own. A shared
  trunk uses ``policy loss + vf_coef · value loss`` with one learning rate;
- the learning rate follows ``learning_rate`` (e.g. linear to 0 over the budget), the critic's in proportion;
- one loop trains a population: N members (a lone run is a population of one), their networks stacked on a member
  axis (``StackedActorCritic``: one batched matmul per layer for all), their environments one vector env
  (``PopulationCartPole``). Member k keeps everything a lone run with seed k has — its initial weights, its
  environments' resets, its action sampling (``run.rng``), its minibatch shuffles, its own hyperparameters — and
  its update is its own: the loss is summed over members, never averaged (a mean would divide every member's
  gradient by N); advantage normalization, gradient clipping and Adam (``StackedAdam``) are per member. A member
  leaves the batch when it is done or fails, without holding the others back;
- the gradient is written by hand (``update``: the loss's derivative at the logits and values, then
  ``StackedActorCritic.backward``), not taken with autograd, whose bookkeeping cost a lone run's update step more
  than its arithmetic; a test holds it to autograd's on an ``ActorCritic``.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import partial

import numpy as np
import torch

from cartpole_core.config.models import PPOConfig
from cartpole_core.engine.agent import PPOAgent, build_actor_critic
from cartpole_core.engine.envs import PopulationCartPole
from cartpole_core.engine.evaluate import evaluate_population_returns
from cartpole_core.engine.nets import N_ACTIONS, OBS_DIM, ActorCritic, Kept, StackedActorCritic
from cartpole_core.engine.population import (
    MemberFailed,
    MemberGuard,
    PopulationEpisodes,
    StackedAdam,
    evaluate_due,
    release_members,
)
from cartpole_core.engine.run import Run, seed_everything
from cartpole_core.records import RunResult

METRICS = ("policy_loss", "value_loss", "entropy", "approx_kl", "clip_fraction")


def compute_gae(rewards: np.ndarray, values: np.ndarray, terminated: np.ndarray, truncated: np.ndarray,
                last_values: np.ndarray, gamma: float | np.ndarray, lam: float | np.ndarray,
                bootstrap: bool | np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """GAE(γ, λ) advantages and value targets (returns) for a rollout of shape (T, …), one column per env;
    ``gamma``, ``lam`` and ``bootstrap`` are one value or one per column (a population's members differ).

    ``values[t]`` is V(s_t); ``last_values`` is V of the observation after the last step. An episode ends at a
    termination (the pole fell: no future value, ever), at a truncation (time limit) and at the rollout's end.
    At the last two the future is the critic's value of the next observation when ``bootstrap`` is on, and zero
    when it is off — then ``lam = 1`` gives the seed's Monte-Carlo ``G_t − V(s_t)``.

    With ``NEXT_STEP`` autoreset the slot after an ended episode holds that episode's *final* observation, so
    ``values[t + 1]`` there is exactly the truncation bootstrap value. That slot is no transition: the caller
    masks it out; its garbage advantage never leaks backwards because the episode before it ended.
    """
    next_values = np.concatenate([values[1:], last_values[None]])
    ends = terminated | truncated
    ends[-1] = True  # the rollout's end cuts every episode still running
    # Bootstrap on truncation, not on termination.
    future = ~terminated & (bootstrap | ~ends)
    deltas = rewards + gamma * next_values * future - values
    advantages = np.zeros_like(deltas)
    running = np.zeros_like(deltas[0])
    for t in reversed(range(len(deltas))):
        running = deltas[t] + gamma * lam * ~ends[t] * running
        advantages[t] = running
    return advantages, advantages + values


def _sample(logits: torch.Tensor, uniform: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Actions drawn from softmax(logits) by inverse CDF on ``uniform``, and their log-probabilities."""
    log_probs = torch.log_softmax(logits, dim=-1).numpy()
    actions = (uniform[:, None] > np.exp(log_probs).cumsum(axis=1)[:, :-1]).sum(axis=1)
    return actions, log_probs[np.arange(len(actions)), actions]


def _explained_variance(values: np.ndarray, returns: np.ndarray) -> float:
    """1 − Var(R − V) / Var(R): 1 is a perfect critic, 0 no better than a constant, nan on constant returns."""
    var_returns = returns.var()
    return float(1.0 - (returns - values).var() / var_returns) if var_returns > 0 else float("nan")


def _column(configs: Sequence[PPOConfig], value: Callable[[PPOConfig], float | None],
            missing: float = math.inf) -> torch.Tensor:
    """One value per member, shape (N,) (``missing`` where a member's is None)."""
    return torch.tensor([missing if (v := value(config)) is None else v for config in configs], dtype=torch.float32)


@dataclass(frozen=True)
class Minibatches:
    """Every gradient step of one update, for every member: K = epochs × (most minibatches of any member) steps,
    each of shape (N, B, …) with B the largest minibatch. ``weights`` (K, N, B) turn a sum over B into member k's
    mean over its own minibatch (0 on padding); ``active`` (K, N) says which members take step k — a member whose
    rollout had fewer real transitions may have fewer minibatches; ``steps`` (N,) counts each member's steps."""

    obs: torch.Tensor
    actions: torch.Tensor
    old_log_probs: torch.Tensor
    advantages: torch.Tensor
    returns: torch.Tensor
    weights: torch.Tensor
    active: torch.Tensor
    steps: torch.Tensor


def minibatches(configs: Sequence[PPOConfig], shuffles: Sequence[torch.Generator], real: np.ndarray, obs: np.ndarray,
                actions: np.ndarray, log_probs: np.ndarray, advantages: np.ndarray,
                returns: np.ndarray) -> Minibatches:
    """Member k's minibatches exactly as a lone run draws them: each epoch a permutation of its real transitions
    from its own ``shuffles[k]``, split into ``ceil(size / minibatch_size)`` near-equal chunks; its advantages
    normalized per minibatch when its config asks. Arrays are member-major: (N, S, …), S = rollout_steps × n_envs."""
    n_members = len(configs)
    epochs, minibatch_size = configs[0].epochs, configs[0].minibatch_size
    sizes = real.sum(axis=1)
    chunks = [math.ceil(size / minibatch_size) for size in sizes]
    most_chunks = max(chunks)
    width = max((math.ceil(size / count) for size, count in zip(sizes, chunks) if count), default=1)
    index = np.zeros((epochs, most_chunks, n_members, width), dtype=np.int64)
    valid = np.zeros((epochs, most_chunks, n_members, width), dtype=bool)
    for member, (size, count) in enumerate(zip(sizes.tolist(), chunks)):
        if not size:
            continue
        slots = np.flatnonzero(real[member])
        order = np.stack([torch.randperm(size, generator=shuffles[member]).numpy() for _ in range(epochs)])
        # torch.tensor_split's chunks: the first size % count are one longer.
        small, longer = divmod(size, count)
        starts = np.arange(count) * small + np.minimum(np.arange(count), longer)
        position = np.arange(size)
        chunk = np.searchsorted(starts, position, side="right") - 1
        index[:, chunk, member, position - starts[chunk]] = slots[order]
        valid[:, chunk, member, position - starts[chunk]] = True
    index = index.reshape(-1, n_members, width)
    valid = valid.reshape(-1, n_members, width)
    rows = np.arange(n_members)[None, :, None]
    counts = valid.sum(axis=2)
    weights = torch.from_numpy(valid / np.maximum(counts, 1)[..., None]).float()

    adv = torch.from_numpy(advantages[rows, index])
    mean = (adv * weights).sum(dim=2, keepdim=True)
    std = ((adv - mean).pow(2) * weights).sum(dim=2, keepdim=True).sqrt()
    normalize = torch.tensor([config.normalize_advantage for config in configs])[None, :, None]
    adv = torch.where(normalize, (adv - mean) / (std + 1e-8), adv)
    return Minibatches(torch.from_numpy(obs[rows, index]), torch.from_numpy(actions[rows, index]),
                       torch.from_numpy(log_probs[rows, index]), adv, torch.from_numpy(returns[rows, index]),
                       weights, torch.from_numpy(counts > 0), torch.tensor(chunks) * epochs)


def update(configs: Sequence[PPOConfig], net: StackedActorCritic, optimizer: StackedAdam,
           learning_rates: torch.Tensor, batch: Minibatches) -> np.ndarray:
    """Clipped-surrogate steps over one update's minibatches for every member at once; each member's mean of each
    metric, shape (N, len(METRICS)). ``learning_rates``: each member's rate for each of its weights, as ``net.flat``."""
    clip = _column(configs, lambda c: c.clip_range)[:, None]
    ent_coef = _column(configs, lambda c: c.ent_coef)
    value_coef = _column(configs, lambda c: c.vf_coef if c.shared_network else 1.0)  # separate critic: own lr
    max_grad_norm = _column(configs, lambda c: c.max_grad_norm)  # None: inf, never clipped
    value_grad_coef = 2.0 * value_coef[:, None]
    entropy_bonus = bool(ent_coef.any())
    one_hot = torch.nn.functional.one_hot(batch.actions, N_ACTIONS).float()
    totals = torch.zeros(len(METRICS), len(configs))
    for step in range(len(batch.weights)):
        kept: dict[str, Kept] = {}
        logits, values = net(batch.obs[step], kept)
        log_probs = torch.log_softmax(logits, dim=-1)
        probs = log_probs.exp()
        new_log_prob = log_probs.gather(2, batch.actions[step][..., None]).squeeze(2)
        entropy = -(probs * log_probs).sum(dim=-1)
        adv, weights = batch.advantages[step], batch.weights[step]

        # The clipped surrogate: the ratio uses the log-probabilities stored when acting (π_old).
        log_ratio = new_log_prob - batch.old_log_probs[step]
        ratio = log_ratio.exp()
        unclipped, clipped = -adv * ratio, -adv * torch.clamp(ratio, 1.0 - clip, 1.0 + clip)
        policy_loss = torch.max(unclipped, clipped)
        value_error = values - batch.returns[step]
        # Each member's means over its own minibatch (member axis 0); the loss is their sum, never their mean:
        # Σ_k policy_k + value_coef_k · value_k − ent_coef_k · entropy_k.
        means = (torch.stack([policy_loss, value_error.square(), entropy]) * weights).sum(dim=2)

        # Its gradient, by hand. d policy / d log π(a) = −A·ρ where the unclipped term is the larger (the clipped
        # one is flat in ρ), else 0; d log π(a) / d logits = onehot(a) − π; d entropy / d logits = −π (log π + H);
        # d value / dV = 2 (V − R). Each term weighted as in its member's mean.
        grad_log_prob = torch.where(unclipped >= clipped, unclipped, 0.0) * weights
        grad_logits = grad_log_prob[..., None] * (one_hot[step] - probs)
        if entropy_bonus:
            grad_logits += (ent_coef[:, None] * weights)[..., None] * probs * (log_probs + entropy[..., None])
        net.backward(kept, grad_logits, value_grad_coef * weights * value_error)
        net.clip_grad_norms_(max_grad_norm)  # separate networks: each clipped on its own, as in the seed
        optimizer.step(net.flat, net.grad, learning_rates, net.member_index, batch.active[step])

        approx_kl = (((ratio - 1.0) - log_ratio) * weights).sum(dim=1)  # k3 estimate of KL(old‖new)
        clip_fraction = (((ratio - 1.0).abs() > clip) * weights).sum(dim=1)
        totals += torch.cat([means, approx_kl[None], clip_fraction[None]])
    return (totals / batch.steps.clamp(min=1)).T.numpy()


class _MemberAgent(PPOAgent):
    """A member's policy: its own ``ActorCritic``, refreshed from the stack when first used after an update."""

    def __init__(self, config: PPOConfig, model: ActorCritic, read_weights: Callable[[], dict[str, torch.Tensor]]):
        super().__init__(config, model)
        self.read_weights: Callable[[], dict[str, torch.Tensor]] | None = read_weights
        self.stale = False

    def _refresh(self) -> None:
        if self.stale and self.read_weights is not None:
            self.model.load_state_dict(self.read_weights())
        self.stale = False

    def _values(self, obs: np.ndarray) -> np.ndarray:
        self._refresh()
        return super()._values(obs)

    def state_value(self, obs: np.ndarray) -> np.ndarray:
        self._refresh()
        return super().state_value(obs)

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

    def __init__(self, config: PPOConfig, run: Run, model: ActorCritic, net: StackedActorCritic, row: int):
        self.config, self.run, self.row = config, run, row
        self.agent = _MemberAgent(config, model, lambda: net.member_state(self.row))
        self.shuffle = torch.Generator().manual_seed(run.seed)
        self.failure: BaseException | None = None

    @property
    def error(self) -> BaseException | None:
        """Its divergence, or the first exception its observer raised."""
        observer = self.run.observer
        return self.failure or (observer.error if isinstance(observer, MemberGuard) else None)



def _by_member(buffer: np.ndarray, members: int, dtype: type | None = None) -> np.ndarray:
    """(steps, members·n, …) → (members, steps·n, …): member k's slots in a lone run's (step, env) order."""
    steps = buffer.shape[0]
    shaped = buffer.reshape(steps, members, -1, *buffer.shape[2:]).swapaxes(0, 1)
    return np.ascontiguousarray(shaped.reshape(members, -1, *buffer.shape[2:]), dtype=dtype)


def _evaluate_together(net: StackedActorCritic, members: Sequence[_Member], episodes: int,
                       seed: int) -> np.ndarray:
    """Greedy returns of these members, shape (M, episodes): one batched evaluation, each on
    ``evaluate_returns(…, episodes, seed)``\'s starts."""
    policies = net.select([member.row for member in members])

    def act(obs: np.ndarray) -> np.ndarray:
        with torch.no_grad():
            return torch.softmax(policies.logits(torch.from_numpy(obs)), dim=-1).argmax(dim=-1).numpy()

    return evaluate_population_returns(act, len(members), episodes, seed)


Outcome = tuple[PPOAgent, RunResult] | MemberFailed


def train(configs: Sequence[PPOConfig], runs: Sequence[Run],
          on_member_done: Callable[[int, Outcome], None] | None = None) -> list[Outcome]:
    """Train a population (shape fields equal, see ``config.population.population_key``); member k's outcome, in
    order: its final agent and result, or its failure. Each member's ``Run`` is finished when it leaves, and
    ``on_member_done(k, outcome)`` told then."""
    first = configs[0]
    n, steps = first.n_envs, first.rollout_steps
    models = []
    for run, config in zip(runs, configs):
        seed_everything(run.seed)  # member k's network starts as a lone run's with seed k
        models.append(build_actor_critic(config))
    net = StackedActorCritic.stack(models, list(first.hidden_sizes), first.activation)
    members = [_Member(config, run, model, net, row)
               for row, (config, run, model) in enumerate(zip(configs, runs, models))]
    optimizer = StackedAdam(net.member_index)
    env = PopulationCartPole([run.seed for run in runs], n, max_episode_steps=first.max_episode_steps)
    obs, _ = env.reset()
    episodes = PopulationEpisodes(list(runs), n)
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
            net.keep(rows)
            env.keep(rows)
            episodes.keep(rows)
            obs = obs.reshape(-1, n, OBS_DIM)[rows].reshape(-1, OBS_DIM)
            for row, member in enumerate(live):
                member.row = row
        size = len(live)  # the member axis: size members × n envs
        lrs = [member.run.scheduled(member.config.learning_rate) for member in live]

        # ---- rollout, every member at once. Slot [t, k·n + i] is what member k's env i saw and did at step t.
        obs_buf = np.zeros((steps, size * n, OBS_DIM), dtype=np.float32)
        actions_buf = np.zeros((steps, size * n), dtype=np.int64)
        log_probs_buf = np.zeros((steps, size * n), dtype=np.float32)
        values_buf = np.zeros((steps, size * n), dtype=np.float32)
        rewards_buf = np.zeros((steps, size * n), dtype=np.float32)
        terminated_buf = np.zeros((steps, size * n), dtype=bool)
        truncated_buf = np.zeros((steps, size * n), dtype=bool)
        real_buf = np.zeros((steps, size * n), dtype=bool)
        policies = net.select()  # the weights do not change during the rollout: laid out for acting
        for t in range(steps):
            obs_buf[t] = obs
            with torch.no_grad():
                logits, values = policies(torch.from_numpy(obs_buf[t]).view(size, n, OBS_DIM))
            uniform = np.concatenate([member.run.rng.random(n) for member in live])  # each member's own stream
            actions, log_probs = _sample(logits.reshape(-1, N_ACTIONS), uniform)
            obs, reward, terminated, truncated, _ = env.step(actions)

            # NEXT_STEP autoreset: an env whose episode ended last step was only reset now (reward 0, action
            # ignored). That slot is no transition: it is not counted and is masked out of the loss.
            actions_buf[t], log_probs_buf[t], values_buf[t] = actions, log_probs, values.numpy().reshape(-1)
            rewards_buf[t], terminated_buf[t], truncated_buf[t] = reward, terminated, truncated
            real_buf[t] = episodes.live
            episodes.record(reward, terminated, truncated, None, lrs)

        # ---- advantages: GAE over the rollout, bootstrapped from the value of the observation after it
        with torch.no_grad():
            last_values = policies(torch.from_numpy(obs).view(size, n, OBS_DIM))[1].numpy().reshape(-1)
        per_env = [member.config for member in live for _ in range(n)]
        advantages, returns = compute_gae(
            rewards_buf, values_buf, terminated_buf, truncated_buf, last_values, np.array([c.gamma for c in per_env]),
            np.array([c.gae_lambda for c in per_env]), np.array([c.bootstrap for c in per_env]))

        # ---- update: only real transitions, each member's flattened over (step, env)
        real, member_values = _by_member(real_buf, size), _by_member(values_buf, size)
        member_returns = _by_member(returns, size, np.float32)
        live_configs = [member.config for member in live]
        batch = minibatches(live_configs, [member.shuffle for member in live], real, _by_member(obs_buf, size),
                            _by_member(actions_buf, size), _by_member(log_probs_buf, size),
                            _by_member(advantages, size, np.float32), member_returns)
        critic_lrs = [lr if c.shared_network else lr * c.critic_learning_rate / c.learning_rate.start
                      for lr, c in zip(lrs, live_configs)]
        learning_rates = net.per_weight(torch.tensor([lrs, critic_lrs]).T[:, :net.segments])
        metrics = update(live_configs, net, optimizer, learning_rates, batch)
        for member, row_metrics, lr in zip(live, metrics, lrs):
            member.agent.stale = True
            mine = real[member.row]
            if not mine.any():
                continue
            if not np.isfinite(row_metrics).all():
                member.failure = FloatingPointError(f"diverged at step {member.run.env_steps}")
                continue
            explained_variance = _explained_variance(member_values[member.row][mine], member_returns[member.row][mine])
            member.run.log_update(**dict(zip(METRICS, row_metrics.tolist())), explained_variance=explained_variance,
                                  learning_rate=lr)

        # ---- evaluations: the members due evaluated together, then each member's own checkpoints
        evaluate_due(live, partial(_evaluate_together, net))

    env.close()
    return [outcomes[k] for k in range(len(members))]
