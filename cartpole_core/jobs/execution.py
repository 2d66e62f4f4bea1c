"""Execution of one stored run in this process: train it, streaming events and checkpoints into the store.

Used by worker processes (``jobs.worker``) and by the CLI's ``train``. Events are written in batched transactions
(every ``FLUSH_INTERVAL_S``, at least twice a second), checkpoints go under ``runs/<run_id>/``, and the run's cancel
flag is polled at each flush. Between flushes the heartbeat is written at least every ``HEARTBEAT_INTERVAL_S``.
"""

from __future__ import annotations

import os
import time
import traceback
from typing import Any

from cartpole_core.engine.observers import Observers, RunObserver
from cartpole_core.records import RunResult
from cartpole_core.runs.store import RunStore

FLUSH_INTERVAL_S = 0.25
HEARTBEAT_INTERVAL_S = 1.0  # between flushes of metrics (a long stretch without events), at most this long
CHECKPOINTS_PER_RUN = 10  # periodic checkpoints spread over the budget, so replays can show the policy evolving


class _EventWriter(RunObserver):
    """The store's observer of a run: buffers events and flushes them in one transaction at most every
    FLUSH_INTERVAL_S; checks cancel; keeps the run's heartbeat fresh (each flush with events writes it; without
    events, at most every HEARTBEAT_INTERVAL_S)."""

    def __init__(self, store: RunStore, run_id: str):
        self.store, self.run_id = store, run_id
        self.buffer: list = []
        self.next_flush = 0.0  # the first event is written at once: a fresh run shows its first point quickly
        self.next_heartbeat = 0.0
        self.cancelled = False

    def on_event(self, event: Any) -> None:
        self.buffer.append(event)
        if time.monotonic() >= self.next_flush:
            self.flush()

    def flush(self) -> None:
        now = time.monotonic()
        self.next_flush = now + FLUSH_INTERVAL_S
        if self.buffer:
            self.store.append_events(self.run_id, self.buffer)  # writes the heartbeat too
            self.buffer = []
            self.next_heartbeat = now + HEARTBEAT_INTERVAL_S
        elif now >= self.next_heartbeat:
            self.store.heartbeat(self.run_id)
            self.next_heartbeat = now + HEARTBEAT_INTERVAL_S
        self.cancelled = self.cancelled or self.store.cancel_requested(self.run_id)

    def should_stop(self) -> bool:
        if time.monotonic() >= self.next_flush:
            self.flush()
        return self.cancelled


def execute_run(store: RunStore, run_id: str, *, observer: RunObserver | None = None) -> RunResult | None:
    """Train a stored run in this process, streaming events and checkpoints into the store.

    Used by worker processes and by the CLI's ``train``. ``observer`` watches the run beside the store's writer
    (the CLI's progress bar and its Ctrl-C). Returns the result, or None when the run failed — the failure is
    recorded in the store with its reason, and everything flushed before it is kept.
    """
    from cartpole_core.config.models import config_from_json
    from cartpole_core.engine.agent import save_checkpoint
    from cartpole_core.engine.train import train

    run = store.get_run(run_id)
    writer = _EventWriter(store, run_id)
    run_dir = store.run_dir(run_id)

    class Checkpoints(RunObserver):
        def on_checkpoint(self, agent: Any, kind: str, env_steps: int) -> None:
            name = f"step-{env_steps:09d}.pt" if kind == "periodic" else f"{kind}.pt"
            path = save_checkpoint(agent, run_dir / name, env_steps=env_steps, kind=kind)
            store.add_artifact(run_id, kind, env_steps, path)

    try:
        config = config_from_json(run["config_json"])
        store.mark_running(run_id, os.getpid())
        _, result = train(config, seed=run["seed"], observer=Observers([writer, Checkpoints(), observer]),
                          checkpoint_every_steps=max(1, config.total_env_steps // CHECKPOINTS_PER_RUN))
        writer.flush()
        store.finish_run(run_id, result, "cancelled" if result.status == "stopped" else "completed")
        return result
    except Exception as err:  # report, don't lose: the data flushed so far stays
        try:
            writer.flush()
        finally:
            # FloatingPointError carries "diverged at step N"; anything else: its last line.
            reason = str(err) if isinstance(err, FloatingPointError) else \
                traceback.format_exception_only(type(err), err)[-1].strip()
            store.set_status(run_id, "failed", reason)
        return None
