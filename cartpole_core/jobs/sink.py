"""Run sinks: where a running run's output goes — batches of events, status changes, checkpoints, heartbeats — and
where it asks whether a cancel was requested. ``execution.execute_run`` writes only through a sink.

``StoreSink`` writes into the local run store (metrics into ``lab.sqlite``, checkpoint files under
``runs/<run_id>/``): the sink of a worker process and of the CLI's ``train``. A run trained elsewhere (another
machine) uses a sink that sends what it receives back to the lab's process, which hands it to a ``StoreSink``:
every method takes plain data, and checkpoints travel as bytes (``add_checkpoint``).

Import-light: no torch, Gymnasium or scikit-learn until a checkpoint is saved.
"""

from __future__ import annotations

import os
from abc import ABC, abstractmethod
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from cartpole_core.records import Event, RunResult
from cartpole_core.runs.store import RunStore


class RunSink(ABC):
    """Where one run's output goes. Called from the run's thread, in the order things happened: ``started``, then
    events, heartbeats and checkpoints, then ``finished`` or ``failed``."""

    @abstractmethod
    def started(self) -> None:
        """The run begins training (status ``running``)."""

    @abstractmethod
    def append_events(self, events: Sequence[Event]) -> None:
        """A batch of events, in order (never empty); it also tells that the run is alive."""

    @abstractmethod
    def heartbeat(self) -> None:
        """The run is alive, though it has no new events (a long update)."""

    @abstractmethod
    def add_checkpoint(self, kind: str, env_steps: int, data: bytes) -> None:
        """A checkpoint file's bytes: ``kind`` is "periodic", "best" or "final"."""

    def save_checkpoint(self, agent: Any, kind: str, env_steps: int) -> None:
        """The run's agent as a checkpoint (``add_checkpoint`` with its bytes; a local sink writes the file)."""
        from cartpole_core.engine.agent import checkpoint_bytes  # torch: only where a run trains

        self.add_checkpoint(kind, env_steps, checkpoint_bytes(agent, kind=kind, env_steps=env_steps))

    @abstractmethod
    def finished(self, result: RunResult) -> None:
        """The run ended on its own or by a cancel (``result.status`` "stopped")."""

    @abstractmethod
    def failed(self, reason: str) -> None:
        """The run failed; ``reason`` in words (e.g. "diverged at step 12345")."""

    @abstractmethod
    def cancel_requested(self) -> bool:
        """Was the run asked to stop?"""


class StoreSink(RunSink):
    """A run's output written into the local run store: events in one transaction per batch (with the heartbeat),
    checkpoints as files under ``store.run_dir(run_id)`` listed as artifacts, the outcome as the run's status."""

    def __init__(self, store: RunStore, run_id: str):
        self.store, self.run_id = store, run_id

    def started(self) -> None:
        self.store.mark_running(self.run_id, os.getpid())

    def append_events(self, events: Sequence[Event]) -> None:
        self.store.append_events(self.run_id, events)

    def heartbeat(self) -> None:
        self.store.heartbeat(self.run_id)

    def save_checkpoint(self, agent: Any, kind: str, env_steps: int) -> None:
        from cartpole_core.engine.agent import save_checkpoint

        path = save_checkpoint(agent, self._path(kind, env_steps), env_steps=env_steps, kind=kind)
        self.store.add_artifact(self.run_id, kind, env_steps, path)

    def add_checkpoint(self, kind: str, env_steps: int, data: bytes) -> None:
        path = self._path(kind, env_steps)
        path.parent.mkdir(parents=True, exist_ok=True)
        partial = path.with_name(path.name + ".tmp")  # written whole, then renamed: never a half checkpoint
        partial.write_bytes(data)
        os.replace(partial, path)
        self.store.add_artifact(self.run_id, kind, env_steps, path)

    def _path(self, kind: str, env_steps: int) -> Path:
        name = f"step-{env_steps:09d}.pt" if kind == "periodic" else f"{kind}.pt"
        return self.store.run_dir(self.run_id) / name

    def finished(self, result: RunResult) -> None:
        self.store.finish_run(self.run_id, result, "cancelled" if result.status == "stopped" else "completed")

    def failed(self, reason: str) -> None:
        self.store.set_status(self.run_id, "failed", reason)

    def cancel_requested(self) -> bool:
        return self.store.cancel_requested(self.run_id)
