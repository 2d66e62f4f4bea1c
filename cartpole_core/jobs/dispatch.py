"""The dispatch loop: queued runs in the store go to an executor; dead runs, cancels and capacity are watched.

One ``Dispatcher.pump()`` is one round, the same for every executor (``jobs.executor``): reap what ended, mark runs
whose process died elsewhere ``interrupted`` (a CLI ``train`` killed with ``kill -9``, a crashed dashboard's
workers: ``RunStore.mark_interrupted``, by pid on this host, by heartbeat otherwise), enforce the cancels requested
for running runs, and claim queued runs, oldest first, up to the executor's capacity — on an executor that batches
(local workers), as populations: runs that may train together share one worker (``config.population``), and spare
workers split the largest populations so every core trains. Whichever lab process is up
pumps: the dashboard's ``Scheduler`` thread five times a second, the CLI and tests through ``wait``.

Import-light: no torch, Gymnasium or scikit-learn (workers import those).
"""

from __future__ import annotations

import time
from pathlib import Path

from cartpole_core.config.models import TrainConfig, config_from_json
from cartpole_core.config.population import plan_populations
from cartpole_core.jobs.executor import Executor
from cartpole_core.jobs.local import LocalExecutor
from cartpole_core.jobs.queue import cancel_run, submit
from cartpole_core.runs.store import RunStore

RAY_ADDRESS_ENV_VAR = "CARTPOLE_LAB_RAY_ADDRESS"  # a Ray cluster (HOST:PORT): where the dashboard's runs train


class Dispatcher:
    """Feeds the store's queue to an executor. Holds the store handle the executor writes through, so both live in
    the thread that pumps."""

    def __init__(self, store: RunStore, executor: Executor):
        self.store, self.executor = store, executor

    @classmethod
    def local(cls, home: Path, max_workers: int | None = None, warm: bool = False) -> Dispatcher:
        """A dispatcher over a new store handle on ``home`` and worker processes on this machine."""
        store = RunStore(home)
        return cls(store, LocalExecutor(store, max_workers, warm))

    @classmethod
    def ray(cls, home: Path, address: str) -> Dispatcher:
        """A dispatcher over a new store handle on ``home`` and tasks on the Ray cluster at ``address``
        (``jobs.ray_executor``; RayConnectError, with nothing started, when it cannot be used)."""
        from cartpole_core.jobs.ray_executor import RayExecutor

        store = RunStore(home)
        try:
            return cls(store, RayExecutor(store, address))
        except BaseException:
            store.close()
            raise

    def pump(self) -> None:
        """One round: reap, mark runs of dead processes interrupted, enforce cancels, start queued runs up to the
        executor's capacity (none on a read-only store)."""
        self.executor.poll()
        active = self.executor.active
        self.store.mark_interrupted(skip=active)  # e.g. a CLI run killed with kill -9: at once, by its pid
        for run_id in active:
            if self.store.cancel_requested(run_id):
                self.executor.cancel(run_id)
        if self.store.readonly:
            return
        free = self.executor.capacity()
        if free > 0:
            queued = sorted(self.store.list_runs(status="queued"), key=lambda run: run["created_at"])
            if self.executor.batches:
                plan = plan_populations([(run["id"], _config(run["config_json"])) for run in queued], free)
            else:
                plan = [[run["id"]] for run in queued[:free]]
            for run_ids in plan:
                # Another lab process may have taken (or cancelled) some of them.
                claimed = [run_id for run_id in run_ids if self.store.claim(run_id)]
                if claimed:
                    self.executor.submit_population(claimed)

    def submit(self, config: TrainConfig, seeds: list[int], *, preset: str | None = None, name: str | None = None,
               tags: tuple[str, ...] = ()) -> tuple[str, list[str]]:
        """Queue one run per seed as one group (``queue.submit``) and start what fits; returns (group_id, run_ids)."""
        group_id, run_ids = submit(self.store, config, seeds, preset=preset, name=name, tags=tags)
        self.pump()
        return group_id, run_ids

    def cancel(self, run_id: str) -> None:
        """Ask the run to stop (``queue.cancel_run``: queued → cancelled at once) and, if it is training here,
        enforce it without waiting for the next pump."""
        cancel_run(self.store, run_id)
        self.executor.cancel(run_id)

    def wait(self, timeout_s: float | None = None, poll_s: float = 0.1) -> bool:
        """Pump until nothing is queued or running here (True) or the timeout passes (False)."""
        deadline = None if timeout_s is None else time.monotonic() + timeout_s
        while True:
            self.pump()
            if not self.executor.active and not self.store.count_runs("queued"):
                return True
            if deadline is not None and time.monotonic() > deadline:
                return False
            time.sleep(poll_s)

    def shutdown(self) -> None:
        self.executor.shutdown()


def _config(config_json: str) -> TrainConfig | None:
    """A queued run's config; None if it cannot be read (the run then trains alone, and fails saying why)."""
    try:
        return config_from_json(config_json)
    except ValueError:
        return None
