"""One protocol for what watches a run — events, checkpoints, the stop request — and ways to combine observers.

Import-light (no torch, Gymnasium or scikit-learn): a driver that only watches runs (a study controller, the CLI)
uses these without loading the engine.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

from cartpole_core.records import Event


class RunObserver:
    """What watches a run: its events, its checkpoints, and whether it should stop. Override what you need; the
    defaults ignore everything and never ask to stop. Combine several with ``Observers``.

    The store writer of a worker, the CLI's progress bar, a study's pruner and a population's member bookkeeping
    are observers; the run calls them from its own thread, between steps of the loop.
    """

    def on_event(self, event: Event) -> None:
        """A training episode ended, an update was made, or an evaluation finished."""

    def on_checkpoint(self, agent: Any, kind: str, env_steps: int) -> None:
        """A checkpoint is due: ``kind`` is "periodic", "best" (a new best evaluation) or "final"."""

    def should_stop(self) -> bool:
        """Asked at most every 20 ms (``run.STOP_CHECK_INTERVAL_S``); True ends the run at its next check, with
        status "stopped"."""
        return False


class Observers(RunObserver):
    """Several observers as one: each sees every event and checkpoint, in order; the run stops if any asks."""

    def __init__(self, observers: Iterable[RunObserver | None]):
        self.observers = [observer for observer in observers if observer is not None]

    def on_event(self, event: Event) -> None:
        for observer in self.observers:
            observer.on_event(event)

    def on_checkpoint(self, agent: Any, kind: str, env_steps: int) -> None:
        for observer in self.observers:
            observer.on_checkpoint(agent, kind, env_steps)

    def should_stop(self) -> bool:
        return any([observer.should_stop() for observer in self.observers])  # every one is asked (they may poll)


class EventLog(RunObserver):
    """Keeps every event of a run in ``events`` (tests, notebooks, benchmarks)."""

    def __init__(self) -> None:
        self.events: list[Event] = []

    def on_event(self, event: Event) -> None:
        self.events.append(event)


class Callbacks(RunObserver):
    """An observer from plain functions, for a one-off: ``Callbacks(on_event=print)``."""

    def __init__(self, on_event: Callable[[Event], None] | None = None, should_stop: Callable[[], bool] | None = None,
                 on_checkpoint: Callable[[Any, str, int], None] | None = None):
        self._on_event, self._should_stop, self._on_checkpoint = on_event, should_stop, on_checkpoint

    def on_event(self, event: Event) -> None:
        if self._on_event:
            self._on_event(event)

    def on_checkpoint(self, agent: Any, kind: str, env_steps: int) -> None:
        if self._on_checkpoint:
            self._on_checkpoint(agent, kind, env_steps)

    def should_stop(self) -> bool:
        return bool(self._should_stop and self._should_stop())
