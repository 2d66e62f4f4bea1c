"""What every algorithm's training loop promises, one test for all three: same seed, same curve; a stop request
ends the run with the events so far; the budget holds; the ``fast`` preset solves."""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Callable

import numpy as np
import pytest
import torch

from cartpole_core.config.models import ALGORITHMS, DQNConfig, PPOConfig, TrainConfig
from cartpole_core.config.presets import preset_config
from cartpole_core.engine.agent import Agent
from cartpole_core.engine.observers import Callbacks
from cartpole_core.engine.train import train
from cartpole_core.records import EpisodeEnded, Evaluated, Event, RunResult

SHORT = {  # small enough to train in a fraction of a second, long enough for some learning
    "qlearning": preset_config("qlearning", "fast", total_env_steps=20_000, eval_every_steps=10_000_000),
    "dqn": DQNConfig(hidden_sizes=[16, 16], learning_starts=200, batch_size=32, train_freq=4, gradient_steps=2,
                     target_update_interval=50, n_envs=2, total_env_steps=1000, eval_every_steps=100_000),
    "ppo": PPOConfig(hidden_sizes=[16], n_envs=4, rollout_steps=16, minibatch_size=32, epochs=2,
                     total_env_steps=1000, eval_every_steps=100_000),
}

Recorded = tuple[Agent, RunResult, list[Event]]


def recorded(config: TrainConfig, seed: int, stop_when: Callable[[list[Event]], bool] | None = None) -> Recorded:
    """Train, keeping every event; ``stop_when(events so far)`` is the stop request."""
    events: list[Event] = []
    should_stop = None if stop_when is None else lambda: stop_when(events)
    agent, result = train(config, seed=seed, observer=Callbacks(on_event=events.append, should_stop=should_stop))
    return agent, result, events


@functools.cache
def short_run(algo: str, seed: int, repeat: int = 0) -> Recorded:
    """A recorded run of ``SHORT[algo]``, shared by the tests that only read it; another ``repeat`` trains anew."""
    return recorded(SHORT[algo], seed)


def episodes(events: list[Event]) -> list[EpisodeEnded]:
    return [e for e in events if isinstance(e, EpisodeEnded)]


def without_times(events: list[Event]) -> list[Event]:
    return [dataclasses.replace(e, time_s=0.0) for e in events]


def steps_per_iteration(config: TrainConfig) -> int:
    """Env steps one pass of the loop takes before it checks the budget again: a vector step, or PPO's rollout."""
    return config.n_envs * (config.rollout_steps if isinstance(config, PPOConfig) else 1)


@pytest.mark.parametrize("algo", ALGORITHMS)
def test_same_seed_same_curve_other_seed_other_curve(algo):
    agent_a, result_a, events_a = short_run(algo, 3)
    agent_b, result_b, events_b = short_run(algo, 3, repeat=1)
    _, _, events_c = short_run(algo, 4)

    returns = [e.episode_return for e in episodes(events_a)]
    assert len(returns) > 10
    assert without_times(events_a) == without_times(events_b)  # every episode, update metric and evaluation
    assert returns != [e.episode_return for e in episodes(events_c)]
    state_a, state_b = agent_a.state(), agent_b.state()
    assert state_a.keys() == state_b.keys()
    assert all(torch.equal(state_a[key], state_b[key]) for key in state_a)
    assert (result_a.env_steps, result_a.episodes, result_a.final_eval_mean) == \
        (result_b.env_steps, result_b.episodes, result_b.final_eval_mean)


@pytest.mark.parametrize("algo", ALGORITHMS)
def test_run_spends_its_env_step_budget(algo):
    config = SHORT[algo]
    _, result, events = short_run(algo, 3)
    assert result.status == "completed"
    assert config.total_env_steps <= result.env_steps < config.total_env_steps + steps_per_iteration(config)
    final = events[-1]
    assert isinstance(final, Evaluated)
    assert (final.env_steps, final.mean_return) == (result.env_steps, result.final_eval_mean)


@pytest.mark.parametrize("algo", ALGORITHMS)
def test_max_episodes_budget_ends_the_run_in_the_loop_pass_that_reaches_it(algo):
    config = SHORT[algo].with_changes(max_episodes=40, total_env_steps=100_000)
    _, result, events = recorded(config, seed=0)
    ended = episodes(events)
    assert result.status == "completed" and result.env_steps < config.total_env_steps
    assert result.episodes == len(ended) >= 40
    # Every episode from the 40th on ended in the run's last pass of the loop (one vector step; PPO: one rollout).
    assert all(result.env_steps - e.env_steps < steps_per_iteration(config) for e in ended[39:])


@pytest.mark.parametrize("algo", ALGORITHMS)
def test_stop_request_before_the_start_stops_at_once(algo):
    agent, result, events = recorded(SHORT[algo], seed=0, stop_when=lambda events: True)
    assert result.status == "stopped"
    assert result.env_steps == 0 and result.episodes == 0
    assert [type(e) for e in events] == [Evaluated]  # still evaluated once
    assert result.final_eval_mean == events[0].mean_return
    assert agent.act(np.zeros(4, dtype=np.float32)) in (0, 1)


@pytest.mark.parametrize("algo", ALGORITHMS)
def test_stop_request_during_training_stops_early_with_the_events_so_far(algo):
    config = SHORT[algo].with_changes(total_env_steps=1_000_000)
    _, result, events = recorded(config, seed=0, stop_when=lambda events: len(episodes(events)) >= 10)
    ended = episodes(events)
    assert result.status == "stopped"
    assert result.env_steps < config.total_env_steps // 10  # asked every 20 ms: Q-learning may take ~10 000 more
    assert result.episodes == len(ended) >= 10
    assert ended[-1].env_steps <= result.env_steps
    assert isinstance(events[-1], Evaluated) and events[-1].env_steps == result.env_steps


@pytest.mark.parametrize("algo", ALGORITHMS)
def test_fast_preset_solves_within_its_budget(algo):
    config = preset_config(algo, "fast")
    _, result = train(config, seed=0)
    assert result.solved and result.status == "completed"
    assert result.steps_to_solve <= config.total_env_steps
    assert result.final_eval_mean >= 475
    if config.stop_on_solve:  # the run ends at the solved evaluation
        assert result.env_steps == result.steps_to_solve < config.total_env_steps
    else:  # it trains its whole budget and must still be solved at the end
        assert result.env_steps >= config.total_env_steps
