"""The dashboard's queue runner: a daemon thread that pumps the dispatch loop five times a second."""

from __future__ import annotations

import threading
from pathlib import Path

from cartpole_core.jobs.dispatch import Dispatcher


class Scheduler(threading.Thread):
    """A daemon thread that pumps a ``Dispatcher`` over worker processes (``LocalExecutor``, one warm) — the
    dashboard's queue runner. It only starts and watches processes; training never runs in it. The dispatcher (and
    its SQLite connection) lives in this thread; ``error`` is the last round's failure, for the UI to show."""

    def __init__(self, home: Path, max_workers: int | None = None, interval_s: float = 0.2):
        super().__init__(name="cartpole-lab-scheduler", daemon=True)
        self.home, self.max_workers, self.interval_s = home, max_workers, interval_s
        self.error: str | None = None
        self._stop_event = threading.Event()

    def run(self) -> None:
        dispatcher = Dispatcher.local(self.home, self.max_workers, warm=True)
        while not self._stop_event.is_set():
            try:
                dispatcher.pump()
                self.error = None
            except Exception as err:  # keep scheduling; the UI shows the last error
                self.error = f"{type(err).__name__}: {err}"
            self._stop_event.wait(self.interval_s)
        dispatcher.shutdown()

    def stop(self) -> None:
        self._stop_event.set()
