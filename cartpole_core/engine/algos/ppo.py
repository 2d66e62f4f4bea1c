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
- the learning rate follows ``learning_rate`` (e.g. linear to 0 over the budget), the critic's in proportion.
"""

from __future__ import annotations

import math

import numpy as np
import torch
from torch import nn

from cartpole_core.config.models import PPOConfig
from cartpole_core.engine.agent import PPOAgent, build_actor_critic
from cartpole_core.engine.envs import make_vec_env
from cartpole_core.engine.nets import OBS_DIM
from cartpole_core.engine.run import EpisodeTracker, Run

METRICS = ("policy_loss", "value_loss", "entropy", "approx_kl", "clip_fraction")


def compute_gae(rewards: np.ndarray, values: np.ndarray, terminated: np.ndarray, truncated: np.ndarray,
                last_values: np.ndarray, gamma: float, lam: float, bootstrap: bool) -> tuple[np.ndarray, np.ndarray]:
    """GAE(γ, λ) advantages and value targets (returns) for a rollout of shape (T, …), one column per env.

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


def update(config: PPOConfig, model: nn.Module, networks: list[nn.Module], optimizer: torch.optim.Optimizer,
           shuffle: torch.Generator, obs: torch.Tensor, actions: torch.Tensor, old_log_probs: torch.Tensor,
           advantages: torch.Tensor, returns: torch.Tensor) -> dict[str, float]:
    """``epochs`` passes of clipped-surrogate minibatch steps over one rollout; the mean of each metric."""
    size = len(obs)
    n_minibatches = math.ceil(size / config.minibatch_size)
    clip = config.clip_range
    value_coef = config.vf_coef if config.shared_network else 1.0  # separate critic: its own loss, own lr
    totals = torch.zeros(len(METRICS))
    for _ in range(config.epochs):
        for index in torch.randperm(size, generator=shuffle).tensor_split(n_minibatches):
            logits, values = model(obs[index])
            log_probs = torch.log_softmax(logits, dim=-1)
            new_log_prob = log_probs.gather(1, actions[index, None]).squeeze(1)
            entropy = -(log_probs.exp() * log_probs).sum(dim=-1).mean()
            adv = advantages[index]
            if config.normalize_advantage:
                adv = (adv - adv.mean()) / (adv.std(correction=0) + 1e-8)

            # The clipped surrogate: the ratio uses the log-probabilities stored when acting (π_old).
            log_ratio = new_log_prob - old_log_probs[index]
            ratio = log_ratio.exp()
            policy_loss = torch.max(-adv * ratio, -adv * ratio.clamp(1.0 - clip, 1.0 + clip)).mean()
            value_loss = (values - returns[index]).pow(2).mean()
            loss = policy_loss + value_coef * value_loss - config.ent_coef * entropy

            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            if config.max_grad_norm is not None:
                for net in networks:  # separate networks: each clipped on its own, as in the seed
                    nn.utils.clip_grad_norm_(net.parameters(), config.max_grad_norm, foreach=True)
            optimizer.step()

            with torch.no_grad():
                approx_kl = ((ratio - 1.0) - log_ratio).mean()  # k3 estimator of KL(π_old ‖ π_new)
                clip_fraction = ((ratio - 1.0).abs() > clip).float().mean()
                totals += torch.stack([policy_loss, value_loss, entropy, approx_kl, clip_fraction])
    means = totals / (config.epochs * n_minibatches)
    return dict(zip(METRICS, means.tolist()))


def train(config: PPOConfig, run: Run) -> PPOAgent:
    n, steps = config.n_envs, config.rollout_steps
    env = make_vec_env(n, max_episode_steps=config.max_episode_steps)
    model = build_actor_critic(config)
    agent = PPOAgent(config, model)
    networks = [model] if config.shared_network else [model.actor, model.critic]
    optimizer = torch.optim.Adam([{"params": net.parameters()} for net in networks], lr=config.learning_rate.start,
                                 fused=True)  # one kernel for all parameters: the step is mostly overhead
    critic_lr_ratio = config.critic_learning_rate / config.learning_rate.start
    shuffle = torch.Generator().manual_seed(run.seed)
    rng = run.rng

    # Rollout storage, allocated once: slot [t, i] is what env i saw and did at vector step t.
    obs_buf = np.zeros((steps, n, OBS_DIM), dtype=np.float32)
    actions_buf = np.zeros((steps, n), dtype=np.int64)
    log_probs_buf = np.zeros((steps, n), dtype=np.float32)
    values_buf = np.zeros((steps, n), dtype=np.float32)
    rewards_buf = np.zeros((steps, n), dtype=np.float32)
    terminated_buf = np.zeros((steps, n), dtype=bool)
    truncated_buf = np.zeros((steps, n), dtype=bool)
    real_buf = np.zeros((steps, n), dtype=bool)

    obs, _ = env.reset(seed=run.seed)
    episodes = EpisodeTracker(run, n)

    while not run.done:
        lr = run.scheduled(config.learning_rate)
        for group, scale in zip(optimizer.param_groups, (1.0, critic_lr_ratio)):
            group["lr"] = lr * scale

        # ---- rollout
        for t in range(steps):
            obs_buf[t] = obs
            with torch.no_grad():
                logits, values = model(torch.from_numpy(obs_buf[t]))
            actions, log_probs = _sample(logits, rng.random(n))
            obs, reward, terminated, truncated, _ = env.step(actions)

            # NEXT_STEP autoreset: an env whose episode ended last step was only reset now (reward 0, action
            # ignored). That slot is no transition: it is not counted and is masked out of the loss.
            actions_buf[t], log_probs_buf[t], values_buf[t] = actions, log_probs, values.numpy()
            rewards_buf[t], terminated_buf[t], truncated_buf[t] = reward, terminated, truncated
            real_buf[t] = episodes.live
            episodes.record(reward, terminated, truncated, None, lr)

        # ---- advantages: GAE over the rollout, bootstrapped from the value of the observation after it
        with torch.no_grad():
            last_values = model(torch.from_numpy(obs))[1].numpy()
        advantages, returns = compute_gae(rewards_buf, values_buf, terminated_buf, truncated_buf, last_values,
                                          config.gamma, config.gae_lambda, config.bootstrap)

        # ---- update: only real transitions, flattened over (step, env)
        real = real_buf.reshape(-1)
        if real.any():
            b_obs = torch.from_numpy(obs_buf.reshape(-1, OBS_DIM)[real])
            b_actions = torch.from_numpy(actions_buf.reshape(-1)[real])
            b_log_probs = torch.from_numpy(log_probs_buf.reshape(-1)[real])
            b_advantages = torch.from_numpy(advantages.reshape(-1)[real])
            b_returns = torch.from_numpy(returns.reshape(-1)[real])
            explained_variance = _explained_variance(values_buf.reshape(-1)[real], returns.reshape(-1)[real])
            metrics = update(config, model, networks, optimizer, shuffle, b_obs, b_actions, b_log_probs,
                             b_advantages, b_returns)
            if not all(math.isfinite(value) for value in metrics.values()):
                raise FloatingPointError(f"diverged at step {run.env_steps}")
            run.log_update(**metrics, explained_variance=explained_variance, learning_rate=lr)
        run.after_step(agent)

    env.close()
    return agent
