"""The seams of the jobs layer: a run streamed through a sink that is not the store, and the dispatch loop driving an
executor that is not the local worker pool — as the next executors (a cluster's tasks) will."""

import os
from collections.abc import Sequence

import numpy as np

from cartpole_core import load_agent
from cartpole_core.config.presets import preset_config
from cartpole_core.engine.observers import Callbacks
from cartpole_core.jobs.dispatch import Dispatcher
from cartpole_core.jobs.execution import execute_run, execute_stored_run
from cartpole_core.jobs.executor import Executor
from cartpole_core.jobs.queue import cancel_run, submit
from cartpole_core.jobs.sink import RunSink, StoreSink
from cartpole_core.records import Event, RunResult
from cartpole_core.runs.store import RunStore

SHORT = preset_config("qlearning", "fast", total_env_steps=4000, eval_every_steps=1000, stop_on_solve=False)
LONG = preset_config("qlearning", "seed", total_env_steps=20_000_000, max_episodes=None, n_envs=1)


class MemorySink(RunSink):
    """Keeps what a run sends, in order, as a remote run would send it back: plain data, checkpoints as bytes.
    ``replay`` is the driver's side: it hands everything to another sink."""

    def __init__(self) -> None:
        self.sent: list[tuple[str, tuple]] = []
        self.cancel = False

    def started(self) -> None:
        self.sent.append(("started", ()))

    def append_events(self, events: Sequence[Event]) -> None:
        self.sent.append(("append_events", (list(events),)))

    def heartbeat(self) -> None:
        self.sent.append(("heartbeat", ()))

    def add_checkpoint(self, kind: str, env_steps: int, data: bytes) -> None:
        self.sent.append(("add_checkpoint", (kind, env_steps, bytes(data))))

    def finished(self, result: RunResult) -> None:
        self.sent.append(("finished", (result,)))

    def failed(self, reason: str) -> None:
        self.sent.append(("failed", (reason,)))

    def cancel_requested(self) -> bool:
        return self.cancel

    def replay(self, into: RunSink) -> None:
        for method, args in self.sent:
            getattr(into, method)(*args)


def without_time(rows: list[dict]) -> list[dict]:
    return [{key: value for key, value in row.items() if key != "time_s"} for row in rows]


def test_a_run_sent_through_a_sink_and_stored_by_a_driver_equals_one_trained_straight_into_a_store(tmp_path):
    straight = RunStore(tmp_path / "straight")
    straight.create_run("r", SHORT.to_json(), "qlearning", 0)
    assert execute_stored_run(straight, "r") is not None

    sink = MemorySink()  # "on another machine": the run touches no store
    assert execute_run(sink, SHORT.to_json(), 0) is not None
    assert [method for method, _ in sink.sent][0] == "started" and sink.sent[-1][0] == "finished"
    driver = RunStore(tmp_path / "driver")
    driver.create_run("r", SHORT.to_json(), "qlearning", 0)
    sink.replay(StoreSink(driver, "r"))

    ran, received = straight.get_run("r"), driver.get_run("r")
    for key in ("status", "env_steps", "episodes", "final_eval", "best_eval", "solved"):
        assert received[key] == ran[key], key
    assert received["status"] == "completed" and received["episodes"] > 0
    assert without_time(driver.episodes("r")) == without_time(straight.episodes("r"))
    assert without_time(driver.evaluations("r")) == without_time(straight.evaluations("r"))
    assert len(driver.evaluations("r")) >= 4
    assert [(a["kind"], a["env_steps"], a["path"].name) for a in driver.artifacts("r")] == \
           [(a["kind"], a["env_steps"], a["path"].name) for a in straight.artifacts("r")]
    (final_received,), (final_ran,) = driver.artifacts("r", "final"), straight.artifacts("r", "final")
    assert final_received["path"].parent == driver.run_dir("r")
    np.testing.assert_array_equal(load_agent(final_received["path"]).q_table, load_agent(final_ran["path"]).q_table)


def test_a_cancel_asked_through_the_sink_stops_the_run_with_its_data_and_final_checkpoint(tmp_path):
    sink = MemorySink()
    ask_to_cancel = Callbacks(on_event=lambda event: setattr(sink, "cancel", True))  # the driver, at the first episode
    result = execute_run(sink, LONG.to_json(), 0, observer=ask_to_cancel)
    assert result.status == "stopped" and result.env_steps < 1_000_000
    store = RunStore(tmp_path)
    store.create_run("r", LONG.to_json(), "qlearning", 0)
    sink.replay(StoreSink(store, "r"))
    run = store.get_run("r")
    assert run["status"] == "cancelled"
    assert len(store.episodes("r")) == run["episodes"] == result.episodes > 0
    assert [a["kind"] for a in store.artifacts("r", "final")] == ["final"]


class SlotsExecutor(Executor):
    """A test double: ``slots`` runs at once, which "train" until the test ends them; records what it was asked."""

    def __init__(self, store: RunStore, slots: int):
        self.store, self.slots = store, slots
        self.training: list[str] = []
        self.submitted: list[str] = []
        self.cancels: list[str] = []
        self.most_at_once = 0

    def submit(self, run_id: str) -> None:
        assert self.store.get_run(run_id)["status"] == "running"  # claimed before it is handed over
        self.submitted.append(run_id)
        self.training.append(run_id)
        self.most_at_once = max(self.most_at_once, len(self.training))

    def poll(self) -> None:
        pass

    def cancel(self, run_id: str) -> None:
        if run_id in self.training:
            self.cancels.append(run_id)

    def capacity(self) -> int:
        return self.slots - len(self.training)

    @property
    def active(self) -> list[str]:
        return list(self.training)

    def shutdown(self) -> None:
        pass

    def end(self, run_id: str) -> None:
        self.store.set_status(run_id, "completed")
        self.training.remove(run_id)


def test_the_dispatch_loop_starts_the_oldest_queued_runs_up_to_capacity_and_never_a_cancelled_one(tmp_path):
    store = RunStore(tmp_path)
    executor = SlotsExecutor(store, slots=2)
    dispatcher = Dispatcher(store, executor)
    queued = [submit(store, SHORT, [seed])[1][0] for seed in range(5)]  # five launches, oldest first
    cancel_run(store, queued[1])
    for _ in range(3):
        dispatcher.pump()
    assert executor.submitted == [queued[0], queued[2]]
    executor.end(queued[0])
    dispatcher.pump()
    assert executor.submitted == [queued[0], queued[2], queued[3]]
    executor.end(queued[2])
    executor.end(queued[3])
    dispatcher.pump()
    assert executor.submitted == [queued[0], queued[2], queued[3], queued[4]]
    assert executor.most_at_once == 2
    assert store.get_run(queued[1])["status"] == "cancelled"


def test_a_cancel_requested_by_any_process_reaches_the_executor_of_the_running_run(tmp_path):
    store = RunStore(tmp_path)
    executor = SlotsExecutor(store, slots=2)
    dispatcher = Dispatcher(store, executor)
    _, (first, second) = dispatcher.submit(SHORT, [0, 1])
    assert executor.submitted == [first, second]
    cancel_run(RunStore(tmp_path), second)  # e.g. the CLI's `runs cancel`, through its own handle
    dispatcher.pump()
    assert executor.cancels == [second]
    assert store.get_run(second)["status"] == "running"  # the run stops itself; the executor only enforces it


def test_a_read_only_store_starts_nothing(tmp_path):
    _, run_ids = submit(RunStore(tmp_path), SHORT, [0, 1])
    readonly = RunStore(tmp_path, readonly=True)
    executor = SlotsExecutor(readonly, slots=2)
    Dispatcher(readonly, executor).pump()
    assert executor.submitted == []
    assert {readonly.get_run(run_id)["status"] for run_id in run_ids} == {"queued"}


class InProcessExecutor(SlotsExecutor):
    """A test double that really trains: one run at a time, in this process, when polled."""

    def poll(self) -> None:
        for run_id in list(self.training):
            execute_stored_run(self.store, run_id)
            self.training.remove(run_id)


def test_a_custom_executor_trains_the_queue_through_the_same_dispatch_loop(tmp_path):
    store = RunStore(tmp_path)
    dispatcher = Dispatcher(store, InProcessExecutor(store, slots=1))
    group_id, run_ids = dispatcher.submit(SHORT, [0, 1], preset="fast")
    assert dispatcher.wait(timeout_s=120)
    for run_id in run_ids:
        run = store.get_run(run_id)
        assert run["status"] == "completed", run["error"]
        assert run["pid"] == os.getpid()
        assert len(store.episodes(run_id)) == run["episodes"] > 0
        (final,) = store.artifacts(run_id, "final")
        assert load_agent(final["path"]).config == SHORT


class _WorkerPipe:
    """A worker's standard input that notes, for each line it is sent, what the store said then of the runs in it."""

    def __init__(self, store: RunStore, broken: bool = False):
        self.store, self.broken = store, broken
        self.seen: list[tuple[str, str, int]] = []

    def write(self, line: str) -> None:
        if self.broken:
            raise BrokenPipeError("the idle worker died")
        self.seen += [(run_id, (run := self.store.get_run(run_id))["status"], run["pid"]) for run_id in line.split()]

    def flush(self) -> None:
        pass


class _Worker:
    def __init__(self, store: RunStore, pid: int, broken: bool = False):
        self.pid, self.stdin = pid, _WorkerPipe(store, broken)

    def poll(self) -> None:
        return None


def test_a_local_worker_is_recorded_as_training_its_runs_before_it_is_handed_them(tmp_path, monkeypatch):
    """Recorded after, a worker that ends a run at once (a cancelled one) would be overwritten by the dispatcher's
    "running". A worker that died idle is replaced, and the runs then name the new one."""
    from cartpole_core.jobs.local import LocalExecutor

    store = RunStore(tmp_path)
    executor = LocalExecutor(store, max_workers=2)
    dead, fresh = _Worker(store, 101, broken=True), _Worker(store, 102)
    monkeypatch.setattr(executor, "_take_idle", lambda: dead)
    monkeypatch.setattr(executor, "_spawn_worker", lambda: fresh)
    run_ids = submit(store, SHORT, [0, 1])[1]
    executor.submit_population(run_ids)
    assert fresh.stdin.seen == [(run_id, "running", 102) for run_id in run_ids]
    assert executor.active == run_ids and executor.capacity() == 1
