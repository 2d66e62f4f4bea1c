"""Q-learning populations: N members in one loop (tables stacked on a member axis, one vector env), member k exactly
the run with seed k trained alone — NumPy only and no update crosses members, so equality is exact, not approximate."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from cartpole_core.config.presets import preset_config
from cartpole_core.engine.agent import QTableAgent
from cartpole_core.engine.observers import Callbacks, EventLog, Observers
from cartpole_core.engine.population import MemberFailed
from cartpole_core.engine.train import train, train_population
from cartpole_core.records import EpisodeEnded, Evaluated, Updated

BASE = preset_config("qlearning", "fast", n_envs=8, total_env_steps=12_000, eval_every_steps=1000)
# Every per-member field differs somewhere: ε and α schedules, γ, the bin bounds, budget, stopping.
MEMBERS = [
    BASE,
    BASE.with_changes(gamma=0.95, learning_rate={"kind": "constant", "start": 0.3}, stop_on_solve=False,
                      total_env_steps=7000, low=[-2.4, -3.0, -0.3, -1.0], high=[2.4, 3.0, 0.3, 1.0]),
    BASE.with_changes(gamma=0.9, epsilon={"kind": "linear", "start": 1.0, "end": 0.05, "duration": 3000,
                                          "unit": "steps"}, eval_every_steps=1500),
]
TIMING = ("train_seconds", "time_to_solve_s", "env_steps_per_s")


def without_times(events):
    return [dataclasses.replace(e, time_s=0.0) for e in events]


def recorded(config_seeds, population: bool):
    """Each member's events, checkpoints (kind, steps, table) and result without its timings."""
    logs = [EventLog() for _ in config_seeds]
    saved: list[list] = [[] for _ in config_seeds]

    def saver(k):
        return lambda agent, kind, steps: saved[k].append((kind, steps, agent.state()["q_table"].numpy().copy()))

    observers = [Observers([logs[k], Callbacks(on_checkpoint=saver(k))]) for k in range(len(config_seeds))]
    configs, seeds = zip(*config_seeds)
    if population:
        outcomes = train_population(list(configs), list(seeds), observers, checkpoint_every_steps=2500)
    else:
        outcomes = [train(config, seed, observer, checkpoint_every_steps=2500)
                    for config, seed, observer in zip(configs, seeds, observers)]
    results = [{k: v for k, v in dataclasses.asdict(result).items() if k not in TIMING} for _, result in outcomes]
    return [without_times(log.events) for log in logs], saved, results, [agent for agent, _ in outcomes]


def test_each_member_trains_exactly_as_its_lone_run():
    config_seeds = list(zip(MEMBERS, [4, 5, 6]))
    together = recorded(config_seeds, population=True)
    alone = recorded(config_seeds, population=False)
    events, saved, results, agents = together
    assert events == alone[0]  # every episode, Updated diagnostic and evaluation, in order
    assert results == alone[2]
    for mine, lone in zip(saved, alone[1]):
        assert [(kind, steps) for kind, steps, _ in mine] == [(kind, steps) for kind, steps, _ in lone]
        assert all(np.array_equal(a, b) for (_, _, a), (_, _, b) in zip(mine, lone))
    for agent, lone_agent in zip(agents, alone[3]):
        assert isinstance(agent, QTableAgent)
        assert np.array_equal(agent.q_table, lone_agent.q_table) and np.array_equal(agent.visits, lone_agent.visits)
    # What the equality covers: members that differ, that evaluate, log diagnostics and (the first) solve.
    assert len({len(member) for member in events}) == 3
    assert all({EpisodeEnded, Updated, Evaluated} <= {type(e) for e in member} for member in events)
    assert results[0]["solved"] and results[0]["steps_to_solve"] == results[0]["env_steps"] < 12_000
    assert results[1]["env_steps"] < 7000 + BASE.n_envs


def test_a_member_that_finishes_leaves_while_the_others_train_on():
    logs = [EventLog() for _ in range(3)]
    left: list[tuple[int, list[int]]] = []

    def member_done(k, outcome):
        left.append((k, [len(log.events) for log in logs]))

    configs = [BASE.with_changes(total_env_steps=2000, stop_on_solve=False), BASE,
               BASE.with_changes(total_env_steps=20_000, stop_on_solve=False)]
    outcomes = train_population(configs, [0, 1, 2], logs, on_member_done=member_done)
    results = [result for _, result in outcomes]
    assert [k for k, _ in left] == [0, 1, 2]  # budget first, then the solve, then the long budget
    assert 2000 <= results[0].env_steps < 2000 + BASE.n_envs and not results[0].solved
    assert results[1].solved and results[1].env_steps < 20_000
    assert results[2].env_steps >= 20_000
    # Each left while the later ones still had training ahead; the one left behind kept its events.
    for (k, counts), (_, later) in zip(left, left[1:]):
        assert counts[k] == later[k] and counts[k + 1] < later[k + 1]


def test_a_member_whose_observer_raises_leaves_and_the_others_finish():
    def broken(event):
        if isinstance(event, EpisodeEnded) and event.episode == 5:
            raise OSError("disk full")

    lone = train(BASE, seed=1)[1]
    done: list[int] = []
    outcomes = train_population([BASE, BASE], [0, 1], [Callbacks(on_event=broken), None],
                                on_member_done=lambda k, outcome: done.append(k))
    assert isinstance(outcomes[0], MemberFailed) and outcomes[0].reason == "OSError: disk full"
    assert done == [0, 1]
    agent, result = outcomes[1]
    assert result.status == "completed" and result.solved
    assert (result.env_steps, result.episodes, result.final_eval_mean) == (lone.env_steps, lone.episodes,
                                                                          lone.final_eval_mean)
    with pytest.raises(OSError, match="disk full"):  # a lone run still raises its observer's error
        train(BASE, seed=0, observer=Callbacks(on_event=broken))


def test_members_with_different_bins_are_refused():
    with pytest.raises(ValueError, match=r"member 1 .*bins \(\[1, 1, 8, 12\] vs \[1, 1, 6, 12\]\)"):
        train_population([BASE, BASE.with_changes(bins=[1, 1, 8, 12])], [0, 1])
    with pytest.raises(ValueError, match=r"member 2 .*n_envs"):
        train_population([BASE, BASE, BASE.with_changes(n_envs=4)], [0, 1, 2])
