"""DQN populations: one batched burst equals the members' lone bursts and a lone burst is the classic DQN step;
members never couple; each leaves on its own (budget, stop request, divergence); a population trains the same
curves twice; a member's checkpoints are a lone run's."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch
from torch import nn

from cartpole_core.config.models import DQNConfig
from cartpole_core.engine.agent import DQNAgent, build_q_network, load_agent, save_checkpoint
from cartpole_core.engine.algos import dqn
from cartpole_core.engine.evaluate import evaluate_returns
from cartpole_core.engine.nets import N_ACTIONS, OBS_DIM
from cartpole_core.engine.observers import Callbacks, EventLog, Observers
from cartpole_core.engine.population import MemberFailed, StackedAdam
from cartpole_core.engine.stacked import StackedMLP
from cartpole_core.engine.train import train, train_population
from cartpole_core.records import EpisodeEnded, Evaluated, Updated

TINY = DQNConfig(hidden_sizes=[16, 16], n_envs=4, learning_starts=200, batch_size=32, train_freq=16,
                 gradient_steps=4, target_update_interval=2, buffer_size=2000, total_env_steps=1500,
                 eval_every_steps=500, epsilon={"kind": "linear", "start": 1.0, "end": 0.1, "duration": 1000})
BURST = [TINY.with_changes(learning_rate={"start": 3e-3}, gamma=0.9, max_grad_norm=0.5, tau=0.3),
         TINY.with_changes(learning_rate={"start": 1e-2}, gamma=0.99, max_grad_norm=None, double_dqn=True,
                           loss="mse", target_update_interval=3)]


def without_times(events):
    return [dataclasses.replace(e, time_s=0.0) for e in events]


def _buffer(seed: int, rewards_scale: float = 1.0, gamma: float = 0.99) -> dqn.ReplayBuffer:
    rng = np.random.default_rng(seed)
    buffer = dqn.ReplayBuffer(500)
    obs = rng.normal(size=(500, OBS_DIM)).astype(np.float32)
    buffer.add(obs, rng.integers(0, 2, 500), (rng.random(500) * rewards_scale).astype(np.float32),
               obs + rng.normal(0, 0.1, size=(500, OBS_DIM)).astype(np.float32),
               (rng.random(500) < 0.1).astype(np.float32), gamma)
    return buffer


def _burst(configs, seeds, buffers, steps):
    """One ``dqn.update`` burst of these members together, member k with ``steps[k]`` gradient steps; each one's
    online and target weights as vectors (N, P), and the diagnostics (K, N, 3)."""
    models = []
    for config, seed in zip(configs, seeds):
        torch.manual_seed(seed)
        models.append(build_q_network(config))
    net = StackedMLP.stack(models, [OBS_DIM, *configs[0].hidden_sizes, N_ACTIONS], configs[0].activation)
    target = net.copy()
    batches = dqn.Batches.draw(buffers, [np.random.default_rng(seed + 100) for seed in seeds], steps,
                               configs[0].batch_size)
    learning_rates = net.per_weight(torch.tensor([config.learning_rate.start for config in configs]))
    diagnostics = dqn.update(configs, net, target, StackedAdam(net.member_index), learning_rates,
                             [0] * len(configs), batches)

    def vectors(stack):
        return torch.stack([torch.cat([t.reshape(-1) for t in stack.member_state(k).values()])
                            for k in range(len(configs))])

    return vectors(net), vectors(target), diagnostics


def test_one_batched_burst_of_two_members_equals_their_lone_bursts():
    """Different lr, γ, τ and target interval, clipping, Double DQN and loss; member 1 takes fewer steps."""
    buffers = [_buffer(1, gamma=BURST[0].gamma), _buffer(2, gamma=BURST[1].gamma)]
    together, together_target, diagnostics = _burst(BURST, [5, 6], buffers, [6, 4])
    for k, steps in enumerate([6, 4]):
        alone, alone_target, alone_diagnostics = _burst(BURST[k:k + 1], [[5, 6][k]], buffers[k:k + 1], [steps])
        torch.testing.assert_close(together[k], alone[0], rtol=1e-5, atol=1e-6)
        torch.testing.assert_close(together_target[k], alone_target[0], rtol=1e-5, atol=1e-6)
        np.testing.assert_allclose(diagnostics[:steps, k], alone_diagnostics[:, 0], rtol=1e-4, atol=1e-6)
    assert np.isnan(diagnostics[4:, 1]).all()  # member 1 sat out the last two steps
    assert np.isnan(diagnostics[:, 1, 2]).all() and np.isfinite(diagnostics[:, 0, 2]).all()  # who clips


def test_a_lone_burst_is_the_classic_dqn_step():
    """The stacked update of one member against ``nn.Sequential``, ``torch.optim.Adam`` and a Polyak target."""
    config = BURST[0]
    buffer = _buffer(3, gamma=config.gamma)
    stacked, stacked_target, _ = _burst([config], [7], [buffer], [6])

    torch.manual_seed(7)
    q_net = build_q_network(config)
    target_net = build_q_network(config)
    target_net.load_state_dict(q_net.state_dict())
    optimizer = torch.optim.Adam(q_net.parameters(), lr=config.learning_rate.start)
    rng = np.random.default_rng(107)
    for step in range(1, 7):
        obs, actions, rewards, next_obs, terminated, discounts = buffer.sample(config.batch_size, rng)
        with torch.no_grad():
            target = dqn.td_target(rewards, terminated, discounts, target_net(next_obs))
        loss = nn.functional.smooth_l1_loss(q_net(obs).gather(1, actions[:, None]).squeeze(1), target)
        optimizer.zero_grad()
        loss.backward()
        nn.utils.clip_grad_norm_(q_net.parameters(), config.max_grad_norm)
        optimizer.step()
        if step % config.target_update_interval == 0:
            with torch.no_grad():
                for t, p in zip(target_net.parameters(), q_net.parameters()):
                    t.lerp_(p, config.tau)
    torch.testing.assert_close(stacked[0], torch.cat([t.reshape(-1) for t in q_net.state_dict().values()]),
                               rtol=1e-4, atol=1e-6)
    torch.testing.assert_close(stacked_target[0], torch.cat([t.reshape(-1) for t in target_net.state_dict().values()]),
                               rtol=1e-4, atol=1e-6)


def test_a_member_with_huge_rewards_does_not_move_another_members_burst():
    calm, _, _ = _burst(BURST, [5, 6], [_buffer(1, gamma=0.9), _buffer(2)], [4, 4])
    stormy, _, _ = _burst(BURST, [5, 6], [_buffer(1, gamma=0.9), _buffer(2, rewards_scale=1000.0)], [4, 4])
    assert torch.equal(calm[0], stormy[0])  # per-member loss, clipping and Adam: no coupling
    assert not torch.allclose(calm[1], stormy[1])


# ------------------------------------------------------------------------------------------------ the loop


def test_members_leave_on_their_own_and_the_others_train_to_their_budgets():
    updates: list[Updated] = []
    configs = [TINY.with_changes(total_env_steps=600), TINY.with_changes(total_env_steps=100_000), TINY]
    stop_after_first_update = Callbacks(on_event=lambda e: updates.append(e) if isinstance(e, Updated) else None,
                                        should_stop=lambda: bool(updates))
    logs = [EventLog(), EventLog(), EventLog()]
    done: list[int] = []
    outcomes = train_population(configs, [0, 1, 2], [logs[0], Observers([logs[1], stop_after_first_update]),
                                                       logs[2]], on_member_done=lambda k, outcome: done.append(k))
    assert done[-1] == 2 and sorted(done) == [0, 1, 2]  # told as each leaves: the full budget last
    (_, short), (_, stopped), (_, full) = outcomes
    assert (short.status, stopped.status, full.status) == ("completed", "stopped", "completed")
    assert 600 <= short.env_steps < 600 + 4 and 1500 <= full.env_steps < 1500 + 4
    assert updates[-1].env_steps <= stopped.env_steps < 5000
    for log, result in zip(logs, (short, stopped, full)):  # each ends with its own final evaluation
        final = [e for e in log.events if isinstance(e, Evaluated)][-1]
        assert final.env_steps == result.env_steps and final.mean_return == result.final_eval_mean
        epsilons = [e.epsilon for e in log.events if isinstance(e, EpisodeEnded)]
        assert epsilons[0] > epsilons[-1] >= 0.1  # each member's own ε, as a lone run logs it


def test_a_diverging_member_fails_alone(monkeypatch):
    doomed = TINY.with_changes(gamma=0.95)
    bursts: list[int] = []
    update = dqn.update

    def poisoned(configs, net, *args):
        """From the fifth burst on, the doomed member's weights are NaN."""
        bursts.append(len(configs))
        if len(bursts) >= 5 and doomed in configs:
            with torch.no_grad():
                net.flat[net.member_index == configs.index(doomed)] = float("nan")
        return update(configs, net, *args)

    monkeypatch.setattr(dqn, "update", poisoned)
    outcomes = train_population([TINY, TINY, doomed], [0, 1, 2])
    failed = outcomes[2]
    assert isinstance(failed, MemberFailed) and failed.reason.startswith("diverged at step ")
    for agent, result in outcomes[:2]:
        assert result.status == "completed" and result.env_steps >= 1500 and np.isfinite(result.final_eval_mean)
        assert all(torch.isfinite(t).all() for t in agent.state().values())

    bursts.clear()
    with pytest.raises(FloatingPointError, match="diverged at step"):  # a lone run still raises, as jobs expect
        train(doomed, seed=0)


def test_a_population_of_one_trains_the_same_curve_twice_and_a_member_keeps_its_seeds():
    def curve(configs, seeds):
        logs = [EventLog() for _ in configs]
        train_population(configs, seeds, logs)
        return [without_times(log.events) for log in logs]

    assert curve([TINY], [5]) == curve([TINY], [5])
    lone, pair = curve([TINY], [6]), curve([TINY.with_changes(gamma=0.9), TINY], [5, 6])
    episodes = [[(e.env_steps, e.episode_return) for e in events if isinstance(e, EpisodeEnded)]
                for events in (lone[0], pair[1])]
    # Its own initial weights, ε draws and resets: the same episodes as alone until learning starts (after it,
    # batched float sums may differ).
    before_learning = [[e for e in member if e[0] < TINY.learning_starts] for member in episodes]
    assert before_learning[0] == before_learning[1] and len(before_learning[0]) > 5


def test_each_member_writes_what_a_lone_run_writes(tmp_path):
    def saver(member):
        def save(agent, kind, env_steps):
            saved.setdefault(member, {})[kind] = save_checkpoint(agent, tmp_path / f"{member}-{kind}.pt",
                                                                 env_steps=env_steps)
        return save

    saved: dict[int, dict] = {}
    logs = [EventLog(), EventLog()]
    outcomes = train_population([TINY, TINY.with_changes(gamma=0.95)], [3, 4],
                                [Observers([logs[k], Callbacks(on_checkpoint=saver(k))]) for k in range(2)],
                                checkpoint_every_steps=[500, None])
    lone_log = EventLog()
    lone_agent, _ = train(TINY, seed=3, observer=lone_log)
    lone_update = [e for e in lone_log.events if isinstance(e, Updated)][0]
    for k, (agent, result) in enumerate(outcomes):
        assert {type(e) for e in logs[k].events} == {EpisodeEnded, Updated, Evaluated}
        updates = [e for e in logs[k].events if isinstance(e, Updated)]
        assert [u.update for u in updates] == list(range(1, len(updates) + 1))
        assert updates[0].metrics.keys() == lone_update.metrics.keys()
        assert set(saved[k]) == ({"periodic", "best", "final"} if k == 0 else {"best", "final"})
        final = load_agent(saved[k]["final"])
        assert isinstance(final, DQNAgent) and final.state().keys() == lone_agent.state().keys()
        assert all(torch.equal(final.state()[key], agent.state()[key]) for key in final.state())
        assert isinstance(load_agent(saved[k]["best"]), DQNAgent)
        # The batched final evaluation is the one evaluate_returns gives the final agent.
        assert evaluate_returns(final.act_batch).mean() == result.final_eval_mean
