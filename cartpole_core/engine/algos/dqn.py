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
  for all of them. ``train_freq`` still counts env steps, so N > 1 changes throughput, not the update ratio;
- updates are batched as in SB3 (``gradient_steps`` every ``train_freq`` env steps) and the target network
  has its own interval, so the update-to-data ratio and the target lag are separate knobs;
- Huber loss, gradient clipping, Double DQN, hard target updates and linear ε / learning-rate schedules are
  available as options. The ``fast`` preset uses SB3-style bursts: 8 gradient steps on batches of 256 every
  64 env steps, with the target network copied once per burst. On the CPU a small network's gradient step
  costs about the same at batch 64 or 256 (per-op overhead), so few large-batch steps at a high lr are cheaper;
- a burst samples all its minibatches with one draw and one fancy index per array (the same rows as batch
  by batch);
- a burst's gradient steps are one function, ``update`` (networks, optimizer, step count and batches in; each
  step's loss, mean Q and gradient norm out), like PPO's and Q-learning's ``update``, so that a population
  stacking its members' weights on one axis can swap in its own.

Kept from the seed: ``done`` stored for the bootstrap is ``terminated`` only, so the 500-step time limit
(truncation) still bootstraps — see ``td_target``.
"""

from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from cartpole_core.config.models import DQNConfig
from cartpole_core.engine.agent import DQNAgent, build_q_network
from cartpole_core.engine.envs import make_vec_env
from cartpole_core.engine.nets import OBS_DIM
from cartpole_core.engine.run import EpisodeTracker, Run

LOG_EVERY_GRADIENT_STEPS = 100  # one Updated event per this many gradient steps keeps the UI's event volume low


class ReplayBuffer:
    """Fixed-capacity FIFO of transitions in preallocated arrays. When full, new rows overwrite the oldest."""

    def __init__(self, capacity: int, obs_dim: int = OBS_DIM):
        self.capacity = capacity
        self.obs = np.zeros((capacity, obs_dim), dtype=np.float32)
        self.next_obs = np.zeros((capacity, obs_dim), dtype=np.float32)
        self.actions = np.zeros(capacity, dtype=np.int64)
        self.rewards = np.zeros(capacity, dtype=np.float32)
        self.terminated = np.zeros(capacity, dtype=np.float32)
        self.position = 0  # the row the next transition goes to
        self.size = 0

    def __len__(self) -> int:
        return self.size

    def add(self, obs: np.ndarray, actions: np.ndarray, rewards: np.ndarray, next_obs: np.ndarray,
            terminated: np.ndarray) -> None:
        """Append a batch of transitions (one row each)."""
        n = len(actions)
        if n > self.capacity:  # only the newest `capacity` rows survive: skip the rest as if written and overwritten
            self.position = (self.position + n - self.capacity) % self.capacity
            obs, actions, rewards, next_obs, terminated = (
                x[-self.capacity:] for x in (obs, actions, rewards, next_obs, terminated))
            n = self.capacity
        rows = (self.position + np.arange(n)) % self.capacity
        self.obs[rows] = obs
        self.actions[rows] = actions
        self.rewards[rows] = rewards
        self.next_obs[rows] = next_obs
        self.terminated[rows] = terminated
        self.position = (self.position + n) % self.capacity
        self.size = min(self.size + n, self.capacity)

    def sample(self, batch_size: int, rng: np.random.Generator) -> tuple[torch.Tensor, ...]:
        """``(obs, actions, rewards, next_obs, terminated)`` tensors of ``batch_size`` rows drawn with replacement."""
        return self.sample_batches(1, batch_size, rng)[0]

    def sample_batches(self, n_batches: int, batch_size: int,
                       rng: np.random.Generator) -> list[tuple[torch.Tensor, ...]]:
        """``n_batches`` independent batches, as ``n_batches`` calls of ``sample`` would give them.

        One draw of all rows and one fancy index per array for the whole burst: numpy's ``integers`` yields
        the same stream whether drawn at once or batch by batch, so the batches (and the rng after) are equal.
        """
        rows = rng.integers(0, self.size, n_batches * batch_size)
        arrays = [torch.from_numpy(x[rows]) for x in (self.obs, self.actions, self.rewards, self.next_obs,
                                                         self.terminated)]
        return list(zip(*(a.split(batch_size) for a in arrays), strict=True))


def td_target(rewards: torch.Tensor, terminated: torch.Tensor, next_obs: torch.Tensor, gamma: float,
              target_net: nn.Module, online_net: nn.Module | None = None) -> torch.Tensor:
    """The regression target ``r + γ (1 − terminated) Q_target(s', a')`` for a batch of transitions.

    a' = argmax Q_target(s', ·) for plain DQN. With Double DQN (pass ``online_net``), a' = argmax Q_online(s', ·).
    The online network picks the action and the target network values it, which removes the max's upward bias.

    ``terminated`` is 1 only when the pole fell or the cart left the track. A transition cut by the time limit
    (truncated) has terminated = 0 and so bootstraps from s'. The episode stopped, but the state still has a
    future, and treating the cut as terminal teaches the network that a balanced pole at step 500 is worth 0.
    """
    with torch.no_grad():
        next_q = target_net(next_obs)
        if online_net is None:
            next_value = next_q.max(dim=1).values
        else:
            next_action = online_net(next_obs).argmax(dim=1, keepdim=True)
            next_value = next_q.gather(1, next_action).squeeze(1)
        return rewards + gamma * (1.0 - terminated) * next_value


def update(config: DQNConfig, q_net: nn.Module, target_net: nn.Module, params: list[torch.Tensor],
           target_params: list[torch.Tensor], optimizer: torch.optim.Optimizer, gradient_steps_done: int,
           batches: list[tuple[torch.Tensor, ...]]) -> list[tuple[float, float, float | None]]:
    """One gradient step on each batch, and the target network's update whenever it is due.

    ``params`` / ``target_params`` are the two networks' parameter lists, made once by the caller (listing a
    module's parameters costs ~6 µs, as much as a small torch call). ``gradient_steps_done`` counts the steps
    before this burst: the target network follows every ``target_update_interval`` steps. Returns one
    ``(td_loss, mean_q, grad_norm)`` per step, grad_norm None without clipping; the caller checks for divergence.
    """
    loss_fn = F.smooth_l1_loss if config.loss == "huber" else F.mse_loss
    online_for_double = q_net if config.double_dqn else None
    diagnostics = []
    for obs, actions, rewards, next_obs, terminated in batches:
        target = td_target(rewards, terminated, next_obs, config.gamma, target_net, online_for_double)
        q_taken = q_net(obs).gather(1, actions.unsqueeze(1)).squeeze(1)
        loss = loss_fn(q_taken, target)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        grad_norm = None
        if config.max_grad_norm is not None:
            grad_norm = float(nn.utils.clip_grad_norm_(params, config.max_grad_norm))
        optimizer.step()
        gradient_steps_done += 1

        if gradient_steps_done % config.target_update_interval == 0:
            with torch.no_grad():
                if config.tau == 1.0:
                    torch._foreach_copy_(target_params, params)
                else:  # Polyak: θ_target ← θ_target + τ (θ − θ_target)
                    torch._foreach_lerp_(target_params, params, config.tau)

        diagnostics.append((loss.item(), q_taken.detach().mean().item(), grad_norm))
    return diagnostics


def train(config: DQNConfig, run: Run) -> DQNAgent:
    n = config.n_envs
    env = make_vec_env(n, max_episode_steps=config.max_episode_steps)
    rng = run.rng

    q_net = build_q_network(config)
    target_net = build_q_network(config)
    target_net.load_state_dict(q_net.state_dict())
    target_net.requires_grad_(False)
    params = list(q_net.parameters())
    target_params = list(target_net.parameters())
    optimizer = torch.optim.Adam(params, lr=config.learning_rate.start, fused=True)  # one kernel, not ~6 per tensor
    agent = DQNAgent(config, q_net)
    buffer = ReplayBuffer(config.buffer_size)
    learning_starts = max(config.learning_starts, config.batch_size)

    obs, _ = env.reset(seed=run.seed)
    episodes = EpisodeTracker(run, n)
    gradient_steps_done = 0
    loss_sum, q_sum, grad_norm_sum, logged_steps = 0.0, 0.0, 0.0, 0

    while not run.done:
        epsilon = run.scheduled(config.epsilon)
        lr = run.scheduled(config.learning_rate)

        # ε-greedy for all envs at once; one forward pass, skipped when every env explores.
        explore = rng.random(n) < epsilon
        actions = rng.integers(0, 2, n)
        if not explore.all():
            with torch.no_grad():
                greedy = q_net(torch.from_numpy(obs)).argmax(dim=1).numpy()
            actions = np.where(explore, actions, greedy)
        next_obs, reward, terminated, truncated, _ = env.step(actions)

        # NEXT_STEP autoreset: a copy that ended last step was only reset now (reward 0, action ignored), so
        # this is not a transition. On the done step itself, next_obs is the true final observation.
        live = episodes.live
        buffer.add(obs[live], actions[live], reward[live], next_obs[live], terminated[live])
        steps_before = run.env_steps
        episodes.record(reward, terminated, truncated, epsilon, lr)
        obs = next_obs

        # train_freq counts env steps: one vector step of N envs may cross several train_freq boundaries.
        if run.env_steps >= learning_starts:
            updates = run.env_steps // config.train_freq - steps_before // config.train_freq
            for group in optimizer.param_groups:
                group["lr"] = lr
            n_steps = updates * config.gradient_steps
            if n_steps:
                batches = buffer.sample_batches(n_steps, config.batch_size, rng)
                for loss_value, mean_q, grad_norm in update(config, q_net, target_net, params, target_params,
                                                            optimizer, gradient_steps_done, batches):
                    if not math.isfinite(loss_value):
                        raise FloatingPointError(f"diverged at step {run.env_steps}")
                    loss_sum += loss_value
                    q_sum += mean_q
                    if grad_norm is not None:
                        grad_norm_sum += grad_norm
                    logged_steps += 1
                    if logged_steps == LOG_EVERY_GRADIENT_STEPS:
                        metrics = {"td_loss": loss_sum / logged_steps, "mean_q": q_sum / logged_steps,
                                   "epsilon": epsilon, "learning_rate": lr}
                        if config.max_grad_norm is not None:
                            metrics["grad_norm"] = grad_norm_sum / logged_steps
                        run.log_update(**metrics)
                        loss_sum, q_sum, grad_norm_sum, logged_steps = 0.0, 0.0, 0.0, 0
                gradient_steps_done += n_steps

        run.after_step(agent)

    env.close()
    return agent
