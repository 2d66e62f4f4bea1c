"""Populations: N PPO members trained batched in one process, each its own run. One batched update equals the
members' lone updates; members never couple (normalization, clipping, Adam); each leaves on its own (budget, stop
request, divergence); each member's events and checkpoints are a lone run's; a member plays the evaluation's
start states."""

from __future__ import annotations

import dataclasses
import time

import numpy as np
import pytest
import torch

from cartpole_core.config.models import DQNConfig, PPOConfig
from cartpole_core.config.population import population_key
from cartpole_core.config.presets import preset_config
from cartpole_core.engine import nets
from cartpole_core.engine.agent import PPOAgent, load_agent, save_checkpoint
from cartpole_core.engine.algos import ppo
from cartpole_core.engine.evaluate import evaluate_population_returns, evaluate_returns
from cartpole_core.engine.nets import ActorCritic, StackedActorCritic
from cartpole_core.engine.observers import Callbacks, EventLog, Observers
from cartpole_core.engine.population import MemberFailed, StackedAdam
from cartpole_core.engine.train import train, train_population
from cartpole_core.records import EpisodeEnded, Evaluated, Updated

TINY = PPOConfig(hidden_sizes=[16], n_envs=4, rollout_steps=16, minibatch_size=24, epochs=2, total_env_steps=1000,
                 eval_every_steps=500)


def without_times(events):
    return [dataclasses.replace(e, time_s=0.0) for e in events]


# ------------------------------------------------------------------------------------------ the update step


def test_stacked_adam_is_torch_adam_for_one_member():
    torch.manual_seed(0)
    start = torch.randn(50)
    reference = torch.nn.Parameter(start.clone())
    adam = torch.optim.Adam([reference], lr=3e-3)
    flat = start.clone()
    whose = torch.zeros(50, dtype=torch.long)
    stacked = StackedAdam(whose)
    for _ in range(20):
        grad = torch.randn(50)
        reference.grad = grad.clone()
        adam.step()
        stacked.step(flat, grad, torch.full((50,), 3e-3), whose)
    torch.testing.assert_close(flat, reference.detach(), rtol=1e-5, atol=1e-7)


def _members(configs, seeds):
    models = []
    for config, seed in zip(configs, seeds):
        torch.manual_seed(seed)
        models.append(ActorCritic(list(config.hidden_sizes), config.activation, config.shared_network))
    return models


def _rollout(seed, size=64, real_fraction=0.9):
    """A member's rollout as the loop hands it to ``minibatches``: (1, S, …) arrays, some slots not real."""
    rng = np.random.default_rng(seed)
    return dict(real=rng.random((1, size)) < real_fraction, obs=rng.normal(size=(1, size, 4)).astype(np.float32),
                actions=rng.integers(0, 2, size=(1, size)), log_probs=np.log(rng.uniform(0.3, 0.7, (1, size))).astype(
                    np.float32), advantages=rng.normal(size=(1, size)).astype(np.float32),
                returns=rng.normal(3, 1, size=(1, size)).astype(np.float32))


def _update(configs, models, rollouts, seeds):
    """One ``ppo.update`` of these members together; each one's new weights as a vector, shape (N, P), and
    metrics (N, 5)."""
    net = StackedActorCritic.stack(models, list(configs[0].hidden_sizes), configs[0].activation)
    data = {key: np.concatenate([rollout[key] for rollout in rollouts]) for key in rollouts[0]}
    batch = ppo.minibatches(configs, [torch.Generator().manual_seed(s) for s in seeds], **data)
    rates = torch.tensor([[c.learning_rate.start, c.critic_learning_rate] for c in configs])
    learning_rates = net.per_weight(rates[:, :net.segments])
    metrics = ppo.update(configs, net, StackedAdam(net.member_index), learning_rates, batch)
    weights = [torch.cat([t.reshape(-1) for t in net.member_state(k).values()]) for k in range(len(configs))]
    return torch.stack(weights), metrics


@pytest.mark.parametrize("shared", [False, True])
def test_one_batched_update_of_two_members_equals_their_lone_updates(shared):
    configs = [TINY.with_changes(shared_network=shared, learning_rate={"start": 3e-3}, clip_range=0.1,
                                 max_grad_norm=0.3, ent_coef=0.01),
               TINY.with_changes(shared_network=shared, learning_rate={"start": 1e-2}, clip_range=0.3,
                                 max_grad_norm=None, normalize_advantage=False, vf_coef=0.8)]
    rollouts = [_rollout(1), _rollout(2, real_fraction=0.6)]  # fewer real slots: fewer minibatches for member 1
    together, metrics = _update(configs, _members(configs, [5, 6]), rollouts, [7, 8])
    for k in range(2):
        alone, alone_metrics = _update(configs[k:k + 1], _members(configs, [5, 6])[k:k + 1], rollouts[k:k + 1],
                                       [[7, 8][k]])
        torch.testing.assert_close(together[k], alone[0], rtol=1e-5, atol=1e-6)
        np.testing.assert_allclose(metrics[k], alone_metrics[0], rtol=1e-4, atol=1e-6)
    assert not torch.allclose(together[0], _update(configs, _members(configs, [5, 6]), rollouts[::-1],
                                                   [7, 8])[0][0])  # the data does matter


@pytest.mark.parametrize("shared", [False, True])
@pytest.mark.parametrize("activation", ["tanh", "relu", "leaky_relu", "elu"])
def test_a_lone_update_is_the_classic_autograd_ppo_step(shared, activation):
    """The hand-written gradient against autograd on an ``ActorCritic`` with ``torch.optim.Adam`` and
    ``clip_grad_norm_``, over every minibatch of an update: entropy bonus on, some ratios clipped, gradients clipped."""
    config = TINY.with_changes(shared_network=shared, activation=activation, hidden_sizes=[16, 8], clip_range=0.05,
                               max_grad_norm=0.3, ent_coef=0.05, vf_coef=0.7, learning_rate={"start": 2e-2},
                               critic_learning_rate=5e-3)
    rollout = _rollout(3)
    rollout["log_probs"] += 0.2  # old and new policies differ: some ratios fall outside the clip range
    batch = ppo.minibatches([config], [torch.Generator().manual_seed(4)], **rollout)
    stacked, _ = _update([config], _members([config], [5]), [rollout], [4])

    (model,) = _members([config], [5])
    if shared:
        groups = [list(model.parameters())]
        optimizer = torch.optim.Adam(groups[0], lr=2e-2)
    else:
        groups = [list(model.actor.parameters()), list(model.critic.parameters())]
        optimizer = torch.optim.Adam([{"params": groups[0], "lr": 2e-2}, {"params": groups[1], "lr": 5e-3}])
    for step in range(len(batch.weights)):
        logits, values = model(batch.obs[step, 0])
        log_probs = torch.log_softmax(logits, dim=-1)
        ratio = (log_probs.gather(1, batch.actions[step, 0][:, None]).squeeze(1) - batch.old_log_probs[step, 0]).exp()
        adv, weights = batch.advantages[step, 0], batch.weights[step, 0]
        policy = torch.max(-adv * ratio, -adv * ratio.clamp(0.95, 1.05))
        entropy = -(log_probs.exp() * log_probs).sum(dim=-1)
        value = (values - batch.returns[step, 0]).square()
        loss = ((policy + (0.7 if shared else 1.0) * value - 0.05 * entropy) * weights).sum()
        optimizer.zero_grad()
        loss.backward()
        for group in groups:
            torch.nn.utils.clip_grad_norm_(group, 0.3)
        optimizer.step()
    assert ((ratio - 1).abs() > 0.05).any()
    reference = torch.cat([t.reshape(-1) for t in model.state_dict().values()])
    torch.testing.assert_close(stacked[0], reference, rtol=1e-4, atol=1e-6)


@pytest.mark.parametrize("members", [1, 64])
def test_tanh_is_tanh_at_every_size_and_its_gradient_too(members):
    """A population's activations (64 × 256 × 64) go through the sigmoid, a lone run's through NumPy: both are tanh
    to float precision, saturate to ±1 without overflow, and autograd through them gives tanh's derivative."""
    x = torch.linspace(-30, 30, members * 256 * 64).reshape(members, 256, 64).requires_grad_()
    y = nets.tanh(x)
    y.sum().backward()
    exact = torch.tanh(x.detach().double())
    assert (y.detach().double() - exact).abs().max() < 3e-7
    assert y.min() == -1 and y.max() == 1
    torch.testing.assert_close(x.grad.double(), 1 - exact.square(), rtol=0, atol=1e-6)


def test_a_large_populations_forward_and_backward_are_each_members_networks():
    """At 40 members × 256 × 64 the stack's tanh layers take the sigmoid path, doubled by the matmul: each member's
    logits, values and gradients are still its own ``ActorCritic``'s (NumPy's tanh there) to float precision."""
    members = 40
    models = _members([PPOConfig(hidden_sizes=[64, 64])] * members, range(members))
    net = StackedActorCritic.stack(models, [64, 64], "tanh")
    assert members * 256 * 64 >= nets.SIGMOID_TANH_FROM
    generator = torch.Generator().manual_seed(2)
    obs = torch.randn(members, 256, 4, generator=generator)
    grad_logits = torch.randn(members, 256, 2, generator=generator)
    grad_values = torch.randn(members, 256, generator=generator)
    kept = {}
    logits, values = net(obs, kept)
    net.backward(kept, grad_logits, grad_values)
    for k, model in enumerate(models):
        own_logits, own_values = model(obs[k])
        torch.testing.assert_close(logits[k], own_logits.detach(), rtol=1e-5, atol=1e-6)
        torch.testing.assert_close(values[k], own_values.detach(), rtol=1e-5, atol=1e-6)
        ((own_logits * grad_logits[k]).sum() + (own_values * grad_values[k]).sum()).backward()
        for name, mine in net.member_state(k, net.grad).items():
            torch.testing.assert_close(mine, model.get_parameter(name).grad, rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("members", [2, 8])  # 2: one segment_reduce; 8 (above SEGMENT_REDUCE_BELOW): per block
def test_each_members_actor_and_critic_are_clipped_as_clip_grad_norm_clips_them(members):
    models = _members([PPOConfig(hidden_sizes=[64, 64])] * members, range(members))
    net = StackedActorCritic.stack(models, [64, 64], "tanh")
    assert (net.grad.numel() < nets.SEGMENT_REDUCE_BELOW) == (members == 2)
    torch.manual_seed(1)
    for model in models:
        for param in model.parameters():
            param.grad = torch.randn_like(param) * 0.05
    for (name, shape, _), block in zip(net.blocks, net.grad_blocks):
        block.view(members, *shape).copy_(torch.stack([nets.held_form(model.get_parameter(name).grad)
                                                       for model in models]))
    max_norms = torch.linspace(0.5, 20.0, members)  # the first members clip, the last do not
    net.clip_grad_norms_(max_norms)
    for k, model in enumerate(models):
        for network in (model.actor, model.critic):
            torch.nn.utils.clip_grad_norm_(network.parameters(), float(max_norms[k]))
        for name, clipped in net.member_state(k, net.grad).items():
            torch.testing.assert_close(clipped, model.get_parameter(name).grad)


def test_a_member_with_huge_advantages_does_not_move_another_members_update():
    configs = [TINY, TINY.with_changes(normalize_advantage=False, max_grad_norm=0.5)]
    rollouts = [_rollout(1), _rollout(2)]
    huge = {**rollouts[1], "advantages": rollouts[1]["advantages"] * 1000, "returns": rollouts[1]["returns"] * 1000}
    calm, _ = _update(configs, _members(configs, [5, 6]), rollouts, [7, 8])
    stormy, _ = _update(configs, _members(configs, [5, 6]), [rollouts[0], huge], [7, 8])
    assert torch.equal(calm[0], stormy[0])  # per-member normalization, clipping and Adam: no coupling
    assert not torch.allclose(calm[1], stormy[1])


# ------------------------------------------------------------------------------------------------ the loop


def test_members_leave_on_their_own_and_the_others_train_to_their_budgets():
    updates: list[Updated] = []
    configs = [TINY.with_changes(total_env_steps=300), TINY.with_changes(total_env_steps=100_000), TINY]
    stop_after_first_update = Callbacks(on_event=lambda e: updates.append(e) if isinstance(e, Updated) else None,
                                        should_stop=lambda: bool(updates))
    logs = [EventLog(), EventLog(), EventLog()]
    done: list[int] = []
    outcomes = train_population(configs, [0, 1, 2], [logs[0], Observers([logs[1], stop_after_first_update]),
                                                       logs[2]], on_member_done=lambda k, outcome: done.append(k))
    assert done[-1] == 2 and sorted(done) == [0, 1, 2]  # told as each leaves: the full budget last
    (_, short), (_, stopped), (_, full) = outcomes
    assert (short.status, stopped.status, full.status) == ("completed", "stopped", "completed")
    assert 300 <= short.env_steps < 300 + 64 and 1000 <= full.env_steps < 1000 + 64
    assert stopped.env_steps == updates[-1].env_steps < 5000  # at the update it was asked after (every 20 ms)
    for log, result in zip(logs, (short, stopped, full)):  # each ends with its own final evaluation
        final = [e for e in log.events if isinstance(e, Evaluated)][-1]
        assert final.env_steps == result.env_steps and final.mean_return == result.final_eval_mean


def _poison(monkeypatch, member: int, at_update: int) -> list[int]:
    """From now on the loop's minibatches turn ``member``'s advantages to NaN at update ``at_update``; returns the
    population size of every update."""
    sizes: list[int] = []
    minibatches = ppo.minibatches

    def poisoned(configs, *args):
        batch = minibatches(configs, *args)
        sizes.append(len(configs))
        if len(sizes) == at_update:
            batch.advantages[:, member] = float("nan")
        return batch

    monkeypatch.setattr(ppo, "minibatches", poisoned)
    return sizes


def test_a_diverging_member_fails_alone(monkeypatch):
    sizes = _poison(monkeypatch, member=1, at_update=3)
    outcomes = train_population([TINY] * 3, [0, 1, 2])
    failed = outcomes[1]
    assert isinstance(failed, MemberFailed) and failed.reason.startswith("diverged at step ")
    assert 2 * 64 < int(failed.reason.split()[-1]) <= 3 * 64
    assert sizes[:3] == [3, 3, 3] and set(sizes[3:]) == {2}  # the others went on without it
    for agent, result in (outcomes[0], outcomes[2]):
        assert result.status == "completed" and result.env_steps >= 1000 and np.isfinite(result.final_eval_mean)
        assert all(torch.isfinite(t).all() for t in agent.state().values())

    _poison(monkeypatch, member=0, at_update=2)
    with pytest.raises(FloatingPointError, match="diverged at step"):  # a lone run still raises, as jobs expect
        train(TINY, seed=0)


def test_an_observer_that_raises_fails_only_its_member():
    def broken(event):
        if isinstance(event, Updated):
            raise OSError("disk full")

    outcomes = train_population([TINY] * 2, [0, 1], [None, Callbacks(on_event=broken)])
    assert outcomes[0][1].status == "completed"
    assert isinstance(outcomes[1], MemberFailed) and outcomes[1].reason == "OSError: disk full"
    with pytest.raises(OSError, match="disk full"):
        train(TINY, seed=1, observer=Callbacks(on_event=broken))


def test_each_member_writes_what_a_lone_run_writes(tmp_path):
    def saver(member):
        def save(agent, kind, env_steps):
            saved.setdefault(member, {})[kind] = save_checkpoint(agent, tmp_path / f"{member}-{kind}.pt",
                                                                 env_steps=env_steps)
        return save

    saved: dict[int, dict] = {}
    config = TINY.with_changes(total_env_steps=1500)
    logs = [EventLog(), EventLog()]
    outcomes = train_population([config, config.with_changes(gamma=0.95)], [3, 4],
                                [Observers([logs[k], Callbacks(on_checkpoint=saver(k))]) for k in range(2)],
                                checkpoint_every_steps=[500, None])
    lone_log = EventLog()
    lone_agent, _ = train(config, seed=3, observer=lone_log, checkpoint_every_steps=500)
    for k, (agent, result) in enumerate(outcomes):
        kinds = {type(e) for e in logs[k].events}
        assert kinds == {EpisodeEnded, Updated, Evaluated}
        updates = [e for e in logs[k].events if isinstance(e, Updated)]
        assert [u.update for u in updates] == list(range(1, len(updates) + 1))
        assert updates[0].metrics.keys() == [e for e in lone_log.events if isinstance(e, Updated)][0].metrics.keys()
        evaluated = [e.env_steps for e in logs[k].events if isinstance(e, Evaluated)]
        # One evaluation every 500 env steps taken (a step that only resets a finished episode counts: between
        # env_steps and env_steps + episodes of them), and the final one.
        assert evaluated == sorted(set(evaluated)) and evaluated[-1] == result.env_steps
        assert result.env_steps // 500 <= len(evaluated) - 1 <= (result.env_steps + result.episodes) // 500
        assert set(saved[k]) == ({"periodic", "best", "final"} if k == 0 else {"best", "final"})
        final = load_agent(saved[k]["final"])
        assert isinstance(final, PPOAgent) and final.state().keys() == lone_agent.state().keys()
        assert all(torch.equal(final.state()[key], agent.state()[key]) for key in final.state())
        assert isinstance(load_agent(saved[k]["best"]), PPOAgent)
        # The batched final evaluation is the one evaluate_returns gives the final agent.
        assert evaluate_returns(final.act_batch).mean() == result.final_eval_mean


def test_members_play_the_evaluation_start_states_of_a_lone_evaluation():
    outcomes = train_population([preset_config("ppo", "fast", total_env_steps=3000)] * 3, [0, 1, 2])
    agents = [agent for agent, _ in outcomes]
    net = StackedActorCritic.stack([a.model for a in agents], [64, 64], "tanh")

    def act(obs):
        with torch.no_grad():
            return torch.softmax(net(torch.from_numpy(obs))[0], dim=-1).argmax(dim=-1).numpy()

    together = evaluate_population_returns(act, 3)
    for k, agent in enumerate(agents):
        np.testing.assert_array_equal(together[k], evaluate_returns(agent.act_batch))
    assert len({tuple(row) for row in together}) > 1  # three different policies, not one evaluation copied


@pytest.mark.parametrize("members", [1, 2])
def test_an_evaluation_takes_no_training_time_not_even_on_its_own_event(monkeypatch, members):
    """The clock stands still while members are evaluated: an evaluation that takes a second stamps its event (the
    chart's time axis, and time-to-solve) with the moment it began, and never adds its second to a later event."""
    play = ppo._evaluate_together

    def slow(*args):
        time.sleep(1.0)
        return play(*args)

    monkeypatch.setattr(ppo, "_evaluate_together", slow)
    log = EventLog()
    config = TINY.with_changes(total_env_steps=600, eval_every_steps=200)
    outcomes = train_population([config] * members, list(range(members)), [log] + [None] * (members - 1))
    times = [e.time_s for e in log.events if isinstance(e, Evaluated)]
    assert len(times) == 3
    assert times[-1] <= outcomes[0][1].train_seconds < 1.0  # three seconds of evaluation, none of them training


def test_a_population_trains_the_same_curves_twice():
    def curves():
        logs = [EventLog(), EventLog()]
        train_population([TINY, TINY.with_changes(gamma=0.9)], [5, 6], logs)
        return [without_times(log.events) for log in logs]

    first, second = curves(), curves()
    assert first == second and first[0] != first[1]


def test_members_solve_like_lone_runs():
    """Member k differs from seed k trained alone only by float summation order. Tolerance here: every seed solves
    both ways and the median steps-to-solve agree within a factor of 2 (bench/population.py compares 20 seeds)."""
    config = preset_config("ppo", "fast", stop_on_solve=True)
    seeds = [0, 1, 2, 3]
    members = [result for _, result in train_population([config] * len(seeds), seeds)]
    lone = [train(config, seed=seed)[1] for seed in seeds]
    assert all(r.solved for r in members + lone)
    ratio = np.median([r.steps_to_solve for r in members]) / np.median([r.steps_to_solve for r in lone])
    assert 0.5 <= ratio <= 2.0


def test_members_must_share_shapes_and_everything_else_may_differ():
    with pytest.raises(ValueError, match=r"member 1 .*hidden_sizes \(\[32\] vs \[16\]\).*rollout_steps"):
        train_population([TINY, TINY.with_changes(hidden_sizes=[32], rollout_steps=8)], [0, 1])
    with pytest.raises(ValueError, match="one seed per config"):
        train_population([TINY, TINY], [0])
    with pytest.raises(ValueError, match="one observer per member"):
        train_population([TINY, TINY], [0, 1], EventLog())
    with pytest.raises(ValueError, match="member 1 is dqn but member 0 is ppo"):
        train_population([TINY, DQNConfig()], [0, 1])
    assert population_key(TINY) == population_key(TINY.with_changes(gamma=0.5, learning_rate={"start": 1e-2},
                                                                    max_grad_norm=None, total_env_steps=5000))
    assert population_key(TINY) != population_key(TINY.with_changes(n_envs=8))
