"""The dashboard's queue runner: a daemon thread that pumps an executor five times a second."""

from __future__ import annotations

import os
import threading
from pathlib import Path

from cartpole_core.jobs.local import JobManager


class Scheduler(threading.Thread):
    """A daemon thread that pumps a JobManager — the dashboard's queue runner. It only starts and watches
    processes; training never runs in it. The JobManager (and its SQLite connection) lives in this thread."""

    def __init__(self, home: Path, max_workers: int | None = None, interval_s: float = 0.2):
        super().__init__(name="cartpole-lab-scheduler", daemon=True)
        self.home, self.max_workers, self.interval_s = home, max_workers, interval_s
        self.error: str | None = None
        self._stop_event = threading.Event()

    def run(self) -> None:
        manager = JobManager(self.home, self.max_workers or os.cpu_count() or 1, warm=True)
        while not self._stop_event.is_set():
            try:
                manager.pump()
                self.error = None
            except Exception as err:  # keep scheduling; the UI shows the last error
                self.error = f"{type(err).__name__}: {err}"
            self._stop_event.wait(self.interval_s)
        manager.shutdown()

    def stop(self) -> None:
        self._stop_event.set()


