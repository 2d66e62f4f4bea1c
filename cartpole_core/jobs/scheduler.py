"""The dashboard's queue runner: a daemon thread that pumps the dispatch loop five times a second."""

from __future__ import annotations

import os
import threading
from pathlib import Path

from cartpole_core.jobs.dispatch import RAY_ADDRESS_ENV_VAR, Dispatcher
from cartpole_core.jobs.ray_executor import RayConnectError

RECONNECT_S = 5.0  # a Ray cluster that cannot be reached is tried again this often; queued runs wait meanwhile


class Scheduler(threading.Thread):
    """A daemon thread that pumps a ``Dispatcher`` — the dashboard's queue runner — over worker processes
    (``LocalExecutor``, one warm) or, with ``ray_address`` (default: ``$CARTPOLE_LAB_RAY_ADDRESS``), over tasks on
    that Ray cluster (``RayExecutor``). It only starts and watches runs; training never runs in it. The dispatcher
    (and its SQLite connection) lives in this thread; ``error`` is the last round's failure and ``where()`` says
    where runs train, for the UI to show."""

    def __init__(self, home: Path, max_workers: int | None = None, interval_s: float = 0.2,
                 ray_address: str | None = None):
        super().__init__(name="cartpole-lab-scheduler", daemon=True)
        self.home, self.max_workers, self.interval_s = home, max_workers, interval_s
        self.ray_address = ray_address or os.environ.get(RAY_ADDRESS_ENV_VAR, "").strip() or None
        self.error: str | None = None
        self.cpus: int | None = None  # what the executor offers: worker processes, or the cluster's CPUs
        self._stop_event = threading.Event()

    def run(self) -> None:
        dispatcher = self._dispatcher()
        while dispatcher is not None and not self._stop_event.is_set():
            try:
                dispatcher.pump()
                self.cpus = getattr(dispatcher.executor, "cluster_cpus", self.cpus)
                self.error = None
            except Exception as err:  # keep scheduling; the UI shows the last error
                self.error = f"{type(err).__name__}: {err}"
            self._stop_event.wait(self.interval_s)
        if dispatcher is not None:
            dispatcher.shutdown()

    def _dispatcher(self) -> Dispatcher | None:
        """The dispatch loop over this lab's executor; for a Ray cluster, tried until it is reached (None: stopped
        meanwhile)."""
        if self.ray_address is None:
            dispatcher = Dispatcher.local(self.home, self.max_workers, warm=True)
            self.cpus = dispatcher.executor.max_workers
            return dispatcher
        while not self._stop_event.is_set():
            try:
                return Dispatcher.ray(self.home, self.ray_address)
            except (RayConnectError, ValueError) as err:  # ValueError: not a HOST:PORT address
                self.error = str(err)
                self._stop_event.wait(RECONNECT_S)
        return None

    def where(self) -> str:
        """Where queued runs train, in words: this machine's worker processes or the Ray cluster, with its CPUs (and
        why it cannot be used, when it cannot)."""
        if self.ray_address is None:
            return f"this machine ({self.cpus} worker processes)" if self.cpus else "this machine's worker processes"
        if self.cpus is None:
            return f"the Ray cluster at {self.ray_address} — not reached yet: {self.error or 'connecting'}"
        problem = f" — {self.error}" if self.error else ""
        return f"the Ray cluster at {self.ray_address} ({self.cpus} CPUs){problem}"

    def stop(self) -> None:
        self._stop_event.set()
