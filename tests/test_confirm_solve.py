"""A solve counts only once a second, larger evaluation on other episodes confirms it."""

import time
from types import SimpleNamespace

import numpy as np

from bench.held_out import held_out_returns
from cartpole_core.config.presets import preset_config
from cartpole_core.engine.agent import Agent
from cartpole_core.engine.evaluate import CONFIRM_EPISODES, CONFIRM_SEED, EVAL_EPISODES, EVAL_SEED
from cartpole_core.engine.observers import RunObserver
from cartpole_core.engine.population import evaluate_due
from cartpole_core.engine.run import Run
from cartpole_core.engine.train import train
from cartpole_core.records import Evaluated

BALANCING_WEIGHTS = np.array([0.1, 0.5, 10.0, 2.0])  # push toward where the pole falls: 500 on every episode


class Balancer(Agent):
    """Balances every episode; records the batch sizes it is asked about (20: an evaluation, 100: a confirmation)."""

    def __init__(self, seconds_per_confirmation_step: float = 0.0):
        self.batch_sizes: list[int] = []
        self.seconds_per_confirmation_step = seconds_per_confirmation_step

    def act_batch(self, obs: np.ndarray) -> np.ndarray:
        self.batch_sizes.append(len(obs))
        if len(obs) == CONFIRM_EPISODES:
            time.sleep(self.seconds_per_confirmation_step)
        return (obs @ BALANCING_WEIGHTS > 0).astype(np.int64)


class LuckyOnTwenty(Balancer):
    """Balances the 20 evaluation episodes, and falls at once on any other number of them (the confirmation)."""

    def act_batch(self, obs: np.ndarray) -> np.ndarray:
        actions = super().act_batch(obs)
        return actions if len(obs) == EVAL_EPISODES else np.zeros(len(obs), dtype=np.int64)


class Events(RunObserver):
    def __init__(self):
        self.evaluations: list[Evaluated] = []

    def on_event(self, event):
        if isinstance(event, Evaluated):
            self.evaluations.append(event)


def stop_on_solve_run() -> tuple[Run, Events]:
    config = preset_config("qlearning", "fast")
    assert config.stop_on_solve
    events = Events()
    return Run(config, seed=0, observer=events), events


def test_a_solved_looking_evaluation_that_fails_its_confirmation_is_not_solved_and_training_goes_on():
    run, events = stop_on_solve_run()
    run.add_steps(2000)
    run.after_step(LuckyOnTwenty())
    [evaluation] = events.evaluations
    assert evaluation.mean_return == 500.0 and not evaluation.solved
    assert run.solved_at is None and not run.done
    result = run.finish(LuckyOnTwenty())
    assert not result.solved and result.steps_to_solve is None and result.time_to_solve_s is None


def test_a_confirmed_solve_stops_the_run_with_steps_to_solve_at_that_evaluation():
    run, events = stop_on_solve_run()
    run.add_steps(2000)
    run.after_step(LuckyOnTwenty())
    run.add_steps(2000)
    balancer = Balancer()
    run.after_step(balancer)
    assert [(e.env_steps, e.solved) for e in events.evaluations] == [(2000, False), (4000, True)]
    assert run.done
    result = run.finish(balancer)
    assert result.solved and result.steps_to_solve == 4000
    assert result.time_to_solve_s == events.evaluations[-1].time_s


def test_only_the_first_solve_is_confirmed_and_the_confirmation_is_off_the_training_clock():
    run, events = stop_on_solve_run()
    slow = Balancer(seconds_per_confirmation_step=0.002)  # 500 steps: a confirmation of at least a second
    run.evaluate(slow)
    assert slow.batch_sizes.count(CONFIRM_EPISODES) == 500
    assert events.evaluations[0].solved and events.evaluations[0].time_s < 0.5
    run.add_steps(2000)
    run.evaluate(slow)
    assert slow.batch_sizes.count(CONFIRM_EPISODES) == 500  # no second confirmation
    assert events.evaluations[1].solved and run.solved_at[1] == 0


def test_the_qlearning_fast_agent_holds_on_held_out_episodes():
    """Seed 28 stopped at a lucky evaluation (4 020 steps, held-out mean 467) before solves were confirmed."""
    agent, result = train(preset_config("qlearning", "fast"), seed=28)
    assert result.solved and result.env_steps == result.steps_to_solve
    assert held_out_returns(agent.act_batch).mean() >= 475


def test_a_population_confirms_the_members_that_look_solved_together_and_only_those():
    """Members whose evaluation reaches 475 for the first time are confirmed in one batched play; a member already
    solved, or below 475, is not confirmed; each member's verdict is its own confirmation's."""
    config = preset_config("qlearning", "fast")
    members = [SimpleNamespace(run=Run(config, seed=k), agent=Balancer(), error=None) for k in range(4)]
    members[2].run.solved_at = (0.0, 0)  # solved before: its 500 needs no second look
    looks = {0: 500.0, 1: 100.0, 2: 500.0, 3: 490.0}
    confirmation = {0: 480.0, 3: 300.0}  # member 3 was lucky on its 20 episodes
    plays = []

    def evaluate_together(group, episodes, seed):
        plays.append(([members.index(m) for m in group], episodes, seed))
        means = looks if seed == EVAL_SEED else confirmation
        return np.array([[means[members.index(m)]] * episodes for m in group])

    for member in members:
        member.run.add_steps(config.eval_every_steps)
    evaluate_due(members, evaluate_together)
    assert plays == [([0, 1, 2, 3], EVAL_EPISODES, EVAL_SEED), ([0, 3], CONFIRM_EPISODES, CONFIRM_SEED)]
    assert [member.run.solved_at is not None for member in members] == [True, False, True, False]
    assert [member.run.last_eval.mean_return for member in members] == [500.0, 100.0, 500.0, 490.0]
