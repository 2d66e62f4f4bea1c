"""Execution of one run in this process: train it, streaming its output into a run sink (``jobs.sink``).

Used by worker processes (``jobs.worker``) and by the CLI's ``train``, both with the store's sink (``StoreSink``).
``SinkWriter`` hands events over in batches (every ``FLUSH_INTERVAL_S``, at least twice a second; the first at
once), checkpoints as they come (``CHECKPOINTS_PER_RUN`` periodic ones, plus best and final), and asks the sink for
a cancel request at each flush. Between flushes it sends a heartbeat at least every ``HEARTBEAT_INTERVAL_S``.
"""

from __future__ import annotations

import time
import traceback
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
    from cartpole_core.config.models import config_from_json
    from cartpole_core.engine.train import train

    writer = SinkWriter(sink)
    try:
        config = config_from_json(config_json)
        sink.started()
        _, result = train(config, seed=seed, observer=Observers([writer, observer]),
                          checkpoint_every_steps=max(1, config.total_env_steps // CHECKPOINTS_PER_RUN))
        writer.flush()
        sink.finished(result)
        return result
    except Exception as err:  # report, don't lose: the data flushed so far stays
        try:
            writer.flush()
        finally:
            reason = str(err) if isinstance(err, FloatingPointError) else \
                traceback.format_exception_only(type(err), err)[-1].strip()
            sink.failed(reason)
        return None


def execute_stored_run(store: RunStore, run_id: str, *, observer: RunObserver | None = None) -> RunResult | None:
    """Train a run of the store in this process, into the store (a worker's job): ``execute_run`` with its
    ``StoreSink``."""
    run = store.get_run(run_id)
    return execute_run(StoreSink(store, run_id), run["config_json"], run["seed"], observer=observer)
