"""Execution of one run in this process: train it, streaming its output into a run sink (``jobs.sink``).

Used by worker processes (``jobs.worker``) and by the CLI's ``train``, both with the store's sink (``StoreSink``).
``SinkWriter`` hands events over in batches (every ``FLUSH_INTERVAL_S``, at least twice a second; the first at
once), checkpoints as they come (``CHECKPOINTS_PER_RUN`` periodic ones, plus best and final), and asks the sink for
a cancel request at each flush. Between flushes it sends a heartbeat at least every ``HEARTBEAT_INTERVAL_S``.
"""

from __future__ import annotations

import time
import traceback
from collections.abc import Sequence
from typing import Any

from cartpole_core.engine.observers import Observers, RunObserver
from cartpole_core.jobs.sink import RunSink, StoreSink
from cartpole_core.records import Event, RunResult
from cartpole_core.runs.store import RunStore

FLUSH_INTERVAL_S = 0.25
HEARTBEAT_INTERVAL_S = 1.0  # between flushes of metrics (a long stretch without events), at most this long
CHECKPOINTS_PER_RUN = 10  # periodic checkpoints spread over the budget, so replays can show the policy evolving


class SinkWriter(RunObserver):
    """The observer that streams a run into a sink. Events are buffered and handed over as one batch at most every
    FLUSH_INTERVAL_S (one transaction each in a store: a write per episode would slow fast runs); the first event
    goes at once, so a fresh run shows its first point quickly. Each flush also asks whether to cancel; without
    events to flush, a heartbeat goes at most every HEARTBEAT_INTERVAL_S. Checkpoints go to the sink as they come.
    """

    def __init__(self, sink: RunSink):
        self.sink = sink
        self.buffer: list[Event] = []
        self.next_flush = 0.0
        self.next_heartbeat = 0.0
        self.cancelled = False

    def on_event(self, event: Event) -> None:
        self.buffer.append(event)
        if time.monotonic() >= self.next_flush:
            self.flush()

    def on_checkpoint(self, agent: Any, kind: str, env_steps: int) -> None:
        self.sink.save_checkpoint(agent, kind, env_steps)

    def flush(self) -> None:
        now = time.monotonic()
        self.next_flush = now + FLUSH_INTERVAL_S
        if self.buffer:
            self.sink.append_events(self.buffer)
            self.buffer = []
            self.next_heartbeat = now + HEARTBEAT_INTERVAL_S
        elif now >= self.next_heartbeat:
            self.sink.heartbeat()
            self.next_heartbeat = now + HEARTBEAT_INTERVAL_S
        self.cancelled = self.cancelled or self.sink.cancel_requested()

    def should_stop(self) -> bool:
        if time.monotonic() >= self.next_flush:
            self.flush()
        return self.cancelled


def execute_run(sink: RunSink, config_json: str, seed: int, *,
                observer: RunObserver | None = None) -> RunResult | None:
    """Train one run in this process, writing everything it produces through ``sink`` (``SinkWriter``).

    ``observer`` watches the run beside the writer (the CLI's progress bar and its Ctrl-C). Returns the result, or
    None when the run failed — the sink is told why (a diverged loss: "diverged at step N"; anything else: the
    exception's last line), after everything buffered before it.
    """
    return execute_population([sink], [config_json], [seed], observers=[observer])[0]


def execute_population(sinks: Sequence[RunSink], config_jsons: Sequence[str], seeds: Sequence[int], *,
                       observers: Sequence[RunObserver | None] | None = None) -> list[RunResult | None]:
    """Train several runs in this process as one population (``engine.train.train_population``: their shapes must
    agree, ``config.population.population_key``), each written through its own sink as if it trained alone.

    A member's sink hears ``finished`` when the member leaves the batch (its budget, its solve, a cancel), not when
    the last member does. Returns each run's result, or None for a run that failed: a config that cannot be read or
    a member that diverged fails alone; an error of the whole population fails every member still in it.
    """
    from cartpole_core.config.models import config_from_json
    from cartpole_core.engine.population import MemberFailed
    from cartpole_core.engine.train import MemberOutcome, train_population

    observers = list(observers) if observers is not None else [None] * len(sinks)
    writers = [SinkWriter(sink) for sink in sinks]
    results: list[RunResult | None] = [None] * len(sinks)
    ended: set[int] = set()
    members, configs = [], []
    for index, (sink, config_json) in enumerate(zip(sinks, config_jsons)):
        try:
            configs.append(config_from_json(config_json))
        except Exception as err:  # this run's config only: the others train
            _fail(writers[index], err)
            continue
        members.append(index)
        sink.started()

    def member_done(member: int, outcome: MemberOutcome) -> None:
        """Told as the member leaves the batch: its run is finished (or failed) in the store at once."""
        index = members[member]
        if isinstance(outcome, MemberFailed):
            _fail(writers[index], outcome.error)
        else:
            results[index] = outcome[1]
            writers[index].flush()
            sinks[index].finished(outcome[1])
        ended.add(index)

    if not members:
        return results
    try:
        train_population(configs, [seeds[index] for index in members],
                         [Observers([writers[index], observers[index]]) for index in members],
                         checkpoint_every_steps=[max(1, config.total_env_steps // CHECKPOINTS_PER_RUN)
                                                 for config in configs],
                         on_member_done=member_done)
    except Exception as err:  # report, don't lose: every member's data flushed so far stays
        for index in members:
            if index not in ended:
                _fail(writers[index], err)
    return results


def _fail(writer: SinkWriter, err: BaseException) -> None:
    """Tell the sink why the run failed (a diverged loss: "diverged at step N"; else the exception's last line),
    after everything buffered before it."""
    try:
        writer.flush()
    finally:
        reason = str(err) if isinstance(err, FloatingPointError) else \
            traceback.format_exception_only(type(err), err)[-1].strip()
        writer.sink.failed(reason)


def execute_stored_runs(store: RunStore, run_ids: Sequence[str]) -> list[RunResult | None]:
    """Train runs of the store in this process, into the store, as one population (a worker's job)."""
    runs = [store.get_run(run_id) for run_id in run_ids]
    return execute_population([StoreSink(store, run_id) for run_id in run_ids], [run["config_json"] for run in runs],
                              [run["seed"] for run in runs])


def execute_stored_run(store: RunStore, run_id: str, *, observer: RunObserver | None = None) -> RunResult | None:
    """Train a run of the store in this process, into the store (a worker's job): ``execute_run`` with its
    ``StoreSink``."""
    run = store.get_run(run_id)
    return execute_run(StoreSink(store, run_id), run["config_json"], run["seed"], observer=observer)
