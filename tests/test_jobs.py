"""Background jobs with real worker processes and a real SQLite file: run, cancel, crash, concurrency."""

import os
import signal
import time

import pytest

from cartpole_core.config.presets import preset_config
from cartpole_core.jobs.dispatch import Dispatcher

LONG = preset_config("qlearning", "seed", total_env_steps=20_000_000, max_episodes=None, n_envs=1)


def wait_for(predicate, timeout_s: float, dispatcher: Dispatcher | None = None, what: str = "condition"):
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if dispatcher:
            dispatcher.pump()
        value = predicate()
        if value:
            return value
        time.sleep(0.05)
    raise AssertionError(f"timed out after {timeout_s} s waiting for {what}")


def episodes_stored(store, run_id: str) -> int:
    return len(store.episodes(run_id))


def test_group_of_seeds_trains_to_completion_with_metrics_and_checkpoints(tmp_path):
    dispatcher = Dispatcher.local(tmp_path, max_workers=2)
    config = preset_config("qlearning", "fast", total_env_steps=20_000, stop_on_solve=False)
    group_id, run_ids = dispatcher.submit(config, [0, 1, 2], preset="fast")
    assert len(run_ids) == 3
    assert dispatcher.executor.capacity() == 0  # two workers: one trains two seeds as a population
    assert dispatcher.wait(timeout_s=240)
    runs = dispatcher.store.list_runs(group_id=group_id)
    assert len({run["pid"] for run in runs}) == 2
    for run in runs:
        assert run["status"] == "completed", run["error"]
        assert run["env_steps"] >= 20_000
        assert episodes_stored(dispatcher.store, run["id"]) == run["episodes"] > 0
        kinds = {a["kind"] for a in dispatcher.store.artifacts(run["id"])}
        assert {"periodic", "best", "final"} <= kinds
        assert all(a["path"].is_file() for a in dispatcher.store.artifacts(run["id"]))


def test_a_worker_that_finished_a_run_trains_the_next_and_its_curve_is_the_same_as_a_fresh_ones(tmp_path):
    """Workers stay for the next run (a run's worth of imports saved each time): the group's three runs go through
    one worker process, and seed 0 trained after two other runs in that process gives the curve it gives alone."""
    config = preset_config("qlearning", "fast", total_env_steps=6_000, stop_on_solve=False)
    shared, alone = Dispatcher.local(tmp_path / "shared", max_workers=1), Dispatcher.local(tmp_path / "alone", 1)
    _, run_ids = shared.submit(config, [1, 2, 0], preset="fast")
    _, (alone_id,) = alone.submit(config, [0], preset="fast")
    pids, deadline = set(), time.monotonic() + 120
    while shared.store.count_runs("queued") or shared.executor.active:
        assert time.monotonic() < deadline, "the group did not train in time"
        shared.pump()
        pids.update(run["pid"] for run in shared.store.list_runs(status="running"))
        time.sleep(0.02)
    assert alone.wait(timeout_s=120)
    assert [shared.store.get_run(run_id)["status"] for run_id in run_ids] == ["completed"] * 3
    assert len(pids) == 1, pids
    returns = [[row["episode_return"] for row in store.episodes(run_id)]
               for store, run_id in ((shared.store, run_ids[2]), (alone.store, alone_id))]
    assert returns[0] == returns[1] and len(returns[0]) > 10
    shared.shutdown()
    alone.shutdown()


def test_cancel_keeps_metrics_and_ends_cancelled_quickly(tmp_path):
    dispatcher = Dispatcher.local(tmp_path, max_workers=1)
    _, (run_id,) = dispatcher.submit(LONG, [0])
    wait_for(lambda: episodes_stored(dispatcher.store, run_id) > 0, 120, dispatcher, "first episodes")
    started = time.monotonic()
    dispatcher.cancel(run_id)
    wait_for(lambda: dispatcher.store.get_run(run_id)["status"] == "cancelled", 10, dispatcher, "cancelled")
    assert time.monotonic() - started < 2.5
    run = dispatcher.store.get_run(run_id)
    assert episodes_stored(dispatcher.store, run_id) == run["episodes"] > 0
    assert any(a["kind"] == "final" for a in dispatcher.store.artifacts(run_id))


def test_queued_run_cancels_at_once(tmp_path):
    dispatcher = Dispatcher.local(tmp_path, max_workers=1)
    _, (first,) = dispatcher.submit(LONG, [0])
    _, (second,) = dispatcher.submit(LONG.with_changes(n_envs=2), [1])  # another shape: it cannot join the first
    assert dispatcher.store.get_run(second)["status"] == "queued"
    dispatcher.cancel(second)
    assert dispatcher.store.get_run(second)["status"] == "cancelled"
    dispatcher.cancel(first)
    assert dispatcher.wait(timeout_s=60)


def test_killed_worker_is_failed_with_reason_and_data_kept(tmp_path):
    dispatcher = Dispatcher.local(tmp_path, max_workers=1)
    _, (run_id,) = dispatcher.submit(LONG, [0])
    wait_for(lambda: episodes_stored(dispatcher.store, run_id) > 0, 120, dispatcher, "first episodes")
    pid = dispatcher.store.get_run(run_id)["pid"]
    os.kill(pid, signal.SIGKILL)
    killed = time.monotonic()
    wait_for(lambda: dispatcher.store.get_run(run_id)["status"] == "failed", 10, dispatcher, "failed")
    assert time.monotonic() - killed < 5
    run = dispatcher.store.get_run(run_id)
    assert "SIGKILL" in run["error"]
    assert episodes_stored(dispatcher.store, run_id) > 0


@pytest.mark.parametrize("runs", [8])
def test_concurrent_writers_store_every_episode(tmp_path, runs):
    dispatcher = Dispatcher.local(tmp_path, max_workers=runs)
    config = preset_config("qlearning", "seed", total_env_steps=3_000, max_episodes=None)
    _, run_ids = dispatcher.submit(config, list(range(runs)))
    assert dispatcher.wait(timeout_s=600)
    for run_id in run_ids:
        run = dispatcher.store.get_run(run_id)
        assert run["status"] == "completed", run["error"]
        assert episodes_stored(dispatcher.store, run_id) == run["episodes"] > 0


def test_divergence_fails_the_run_with_the_step_and_keeps_earlier_metrics(tmp_path, monkeypatch):
    from cartpole_core.engine.algos import POPULATION_LOOPS, qlearning
    from cartpole_core.engine.population import MemberFailed
    from cartpole_core.jobs.execution import execute_stored_run
    from cartpole_core.runs.store import RunStore

    def diverging_loop(configs, runs, on_member_done):  # real Q-learning for a while, then the NaN loss a loop reports
        (run,) = runs
        run.config = run.config.with_changes(total_env_steps=2000, stop_on_solve=False)
        qlearning.train([run.config], runs)
        outcome = MemberFailed.of(FloatingPointError(f"diverged at step {run.env_steps}"))
        on_member_done(0, outcome)
        return [outcome]

    monkeypatch.setitem(POPULATION_LOOPS, "qlearning", diverging_loop)
    store = RunStore(tmp_path)
    store.create_run("r", preset_config("qlearning", "fast").to_json(), "qlearning", 0)
    assert execute_stored_run(store, "r") is None
    run = store.get_run("r")
    assert run["status"] == "failed"
    assert run["error"].startswith("diverged at step ") and int(run["error"].split()[-1]) >= 2000
    assert len(store.episodes("r")) == run["episodes"] > 0


def test_scheduler_thread_runs_what_another_store_handle_queues_and_honours_its_cancel(tmp_path):
    from cartpole_core.jobs.queue import cancel_run, submit
    from cartpole_core.jobs.scheduler import Scheduler
    from cartpole_core.runs.store import RunStore

    scheduler = Scheduler(tmp_path, max_workers=2, interval_s=0.05)
    scheduler.start()
    try:
        ui = RunStore(tmp_path)  # the dashboard's own handle: it only writes queued runs and cancel requests
        _, (short,) = submit(ui, preset_config("qlearning", "fast"), [0], preset="fast")
        _, (long,) = submit(ui, LONG, [1])
        wait_for(lambda: ui.get_run(short)["status"] == "completed", 120, what="the short run to complete")
        wait_for(lambda: episodes_stored(ui, long) > 0, 120, what="the long run to train")
        cancel_run(ui, long)
        wait_for(lambda: ui.get_run(long)["status"] == "cancelled", 10, what="the long run to be cancelled")
        assert scheduler.error is None
    finally:
        scheduler.stop()
        scheduler.join(timeout=10)


def test_submitted_runs_are_named_by_what_differs_from_their_preset(tmp_path):
    from cartpole_core.jobs.queue import submit
    from cartpole_core.runs.store import RunStore

    store = RunStore(tmp_path)
    config = preset_config("dqn", "fast", overrides={"learning_rate.start": 5e-3})
    _, run_ids = submit(store, config, [0, 1], preset="fast")
    assert [store.get_run(run_id)["name"] for run_id in run_ids] == ["dqn/fast lr=5e-3 · seed 0",
                                                                     "dqn/fast lr=5e-3 · seed 1"]
    _, (plain,) = submit(store, preset_config("ppo", "fast"), [3], preset="fast")
    assert store.get_run(plain)["name"] == "ppo/fast · seed 3"
    _, (named,) = submit(store, config, [7], preset="fast", name="my lr test")
    assert store.get_run(named)["name"] == "my lr test · seed 7"


def test_a_launch_beyond_the_queue_limit_is_refused_whole_and_says_what_to_do(tmp_path):
    from cartpole_core.config.limits import QUEUED_MAX, SEEDS_PER_LAUNCH_MAX
    from cartpole_core.jobs.queue import QueueFullError, submit
    from cartpole_core.runs.store import RunStore

    store = RunStore(tmp_path)
    config = preset_config("qlearning", "fast")
    for first in range(0, QUEUED_MAX - 3, SEEDS_PER_LAUNCH_MAX):  # a queue three short of full
        submit(store, config, list(range(first, min(first + SEEDS_PER_LAUNCH_MAX, QUEUED_MAX - 3))))
    assert store.count_runs("queued") == QUEUED_MAX - 3
    with pytest.raises(QueueFullError) as refused:
        submit(store, config, [100, 101, 102, 103])
    message = str(refused.value)
    assert f"{QUEUED_MAX - 3} run(s) are waiting" in message and f"at most {QUEUED_MAX}" in message
    assert "nothing was queued" in message and "cancel" in message
    assert isinstance(refused.value, ValueError)
    assert store.count_runs("queued") == QUEUED_MAX - 3  # nothing queued half-way
    submit(store, config, [100, 101, 102])  # exactly full is allowed
    assert store.count_runs("queued") == QUEUED_MAX


def test_seeds_names_and_tags_outside_the_limits_queue_nothing(tmp_path):
    from cartpole_core.config.limits import SEED_MAX, SEEDS_PER_LAUNCH_MAX, LimitError
    from cartpole_core.jobs.queue import submit
    from cartpole_core.runs.store import RunStore

    store = RunStore(tmp_path)
    config = preset_config("qlearning", "fast")
    for seeds, kwargs, match in (
            (list(range(SEEDS_PER_LAUNCH_MAX + 1)), {}, f"at most {SEEDS_PER_LAUNCH_MAX} seeds"),
            ([0, 1, -1], {}, "seed must be an integer"),
            ([0, SEED_MAX + 1], {}, "seed must be an integer"),
            ([0, True], {}, "seed must be an integer"),
            ([0, 1], {"name": "n" * 195}, "1 to 200 characters"),  # the name fits, "· seed N" does not
            ([0, 1], {"tags": tuple(f"t{i}" for i in range(21))}, "at most 20 tags")):
        with pytest.raises(LimitError, match=match):
            submit(store, config, seeds, **kwargs)
    assert store.list_runs() == []
    assert not any(store.runs_dir.iterdir())
