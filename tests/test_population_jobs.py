"""Groups trained as populations by the dispatch loop and real worker processes: one worker per population, each
member its own run in the store, ending on its own (budget, cancel) without stopping the others."""

import time

from cartpole_core import load_agent
from cartpole_core.config.population import POPULATION_MAX, plan_populations
from cartpole_core.config.presets import preset_config
from cartpole_core.jobs.dispatch import Dispatcher
from cartpole_core.jobs.queue import submit

PPO_SHORT = preset_config("ppo", "fast", total_env_steps=2048, eval_every_steps=1024, stop_on_solve=False)
PPO_LONG = PPO_SHORT.with_changes(total_env_steps=5_000_000)


def pump_until(dispatcher, predicate, timeout_s, what):
    deadline = time.monotonic() + timeout_s
    while not predicate():
        assert time.monotonic() < deadline, f"timed out after {timeout_s} s waiting for {what}"
        dispatcher.pump()
        time.sleep(0.05)


def test_a_ppo_group_trains_in_one_worker_as_a_population_and_each_member_is_a_whole_run(tmp_path):
    dispatcher = Dispatcher.local(tmp_path, max_workers=1)
    store = dispatcher.store
    try:
        _, run_ids = submit(store, PPO_SHORT, [0, 1, 2, 3], preset="fast")
        dispatcher.pump()
        running = store.list_runs(status="running")
        assert len(running) == 4 and len({run["pid"] for run in running}) == 1  # four runs, one worker
        assert dispatcher.wait(timeout_s=180)
        for run_id in run_ids:
            run = store.get_run(run_id)
            assert run["status"] == "completed", run["error"]
            assert run["env_steps"] >= 2048 and len(store.episodes(run_id)) == run["episodes"] > 0
            evaluated_at = [row["env_steps"] for row in store.evaluations(run_id)]
            # Every 1024 env steps taken: after the 4th rollout of 8 × 32 (the steps that reset an episode are not
            # transitions, so fewer than 1024 of them, but more than 3 rollouts' worth).
            assert len(evaluated_at) >= 2 and 3 * 256 < evaluated_at[0] <= 1024
            final = store.artifacts(run_id, "final")
            assert final and load_agent(final[-1]["path"]).act([0.0, 0.0, 0.02, 0.0]) in (0, 1)
        curves = {tuple(row["episode_return"] for row in store.episodes(run_id)) for run_id in run_ids}
        assert len(curves) == 4  # four seeds, four different runs
    finally:
        dispatcher.shutdown()
        store.close()


def test_a_member_that_ends_is_completed_at_once_and_a_cancelled_one_leaves_the_others_training(tmp_path):
    dispatcher = Dispatcher.local(tmp_path, max_workers=1)
    store = dispatcher.store
    try:
        _, (first, second) = submit(store, PPO_LONG, [0, 1], preset="fast")
        _, (short,) = submit(store, PPO_SHORT, [2], preset="fast")  # same shapes, its own budget: one population
        dispatcher.pump()
        assert len({run["pid"] for run in store.list_runs(status="running")}) == 1
        pump_until(dispatcher, lambda: store.get_run(short)["status"] == "completed", 120, "the short member's end")
        assert [store.get_run(run_id)["status"] for run_id in (first, second)] == ["running", "running"]

        dispatcher.cancel(second)
        pump_until(dispatcher, lambda: store.get_run(second)["status"] == "cancelled", 30, "the cancel")
        steps = store.get_run(first)["env_steps"]
        pump_until(dispatcher, lambda: store.get_run(first)["env_steps"] > steps + 2000, 60, "the first to go on")
        assert store.get_run(first)["status"] == "running"  # its worker was not stopped with the cancelled member
        assert store.artifacts(second, "final") and store.episodes(second)  # the cancelled member's data stays

        dispatcher.cancel(first)
        pump_until(dispatcher, lambda: not dispatcher.executor.active, 30, "the last member's cancel")
        assert store.get_run(first)["status"] == "cancelled" and store.artifacts(first, "final")
    finally:
        dispatcher.shutdown()
        store.close()


def test_queued_runs_are_planned_as_populations_one_per_free_worker():
    ppo, qlearning = preset_config("ppo", "fast"), preset_config("qlearning", "fast")
    wide = preset_config("ppo", "fast", hidden_sizes=[128, 128])
    tuned = ppo.with_changes(gamma=0.95, clip_range=0.3)  # per-member fields: the same population
    assert plan_populations([(f"r{i}", ppo) for i in range(8)], 2) == [["r0", "r1", "r2", "r3"],
                                                                        ["r4", "r5", "r6", "r7"]]
    assert plan_populations([("a", ppo), ("b", qlearning), ("c", tuned), ("d", wide), ("e", ppo)], 2) == [
        ["a", "c", "e"], ["b"]]  # oldest groups first, one per algorithm and shape; the wide one waits
    assert plan_populations([("a", ppo), ("b", ppo), ("c", ppo)], 4) == [["a"], ["b"], ["c"]]  # a core each
    assert plan_populations([("a", qlearning), ("b", None), ("c", qlearning)], 2) == [["a", "c"], ["b"]]
    assert plan_populations([("a", qlearning), ("b", qlearning.with_changes(gamma=0.9, low=[-1.0] * 4)),
                             ("c", qlearning.with_changes(bins=[1, 1, 8, 12]))], 1) == [["a", "b"]]
    assert plan_populations([("a", ppo)], 0) == []
    many = plan_populations([(f"r{i}", ppo) for i in range(POPULATION_MAX + 5)], 1)
    assert [len(population) for population in many] == [POPULATION_MAX]
