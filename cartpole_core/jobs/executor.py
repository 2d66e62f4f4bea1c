"""Executors: where claimed runs train. The dispatch loop (``jobs.dispatch``) claims queued runs in the store and
hands them to an executor; the executor starts them, watches them and reports how they ended into the store.

``jobs.local.LocalExecutor`` (worker processes on this machine) is the one implementation so far; another (a
cluster's tasks) implements the same methods. Import-light: no torch, Gymnasium or scikit-learn.
"""

from __future__ import annotations

from abc import ABC, abstractmethod

CANCEL_GRACE_S = 1.5  # a run asked to cancel stops cooperatively at its next update; after this, by force


class Executor(ABC):
    """Starts runs already claimed in the store, reaps them, enforces cancels. The dispatch loop calls it from one
    thread: ``poll`` first in each round, then ``cancel`` for runs whose cancel was requested, then ``submit`` for at
    most ``capacity()`` runs."""

    @abstractmethod
    def submit(self, run_id: str) -> None:
        """Start training a run that the caller has claimed (status ``running``) in the store."""

    batches = False  # trains several runs as one population in one process (``submit_population``)

    def submit_population(self, run_ids: list[str]) -> None:
        """Start claimed runs that may train as one population (``config.population.plan_populations``); an
        executor that does not batch starts each on its own."""
        for run_id in run_ids:
            self.submit(run_id)

    @abstractmethod
    def poll(self) -> None:
        """Reap the runs that ended. A run that ended without recording its outcome (its process died) is
        ``failed`` with the reason (e.g. "killed by SIGKILL — possibly out of memory"), or ``cancelled`` if its
        cancel was being enforced. Also enforces the cancels: a run still going ``CANCEL_GRACE_S`` after ``cancel``
        is stopped by force."""

    @abstractmethod
    def cancel(self, run_id: str) -> None:
        """Enforce a requested cancel of a run this executor trains (the run itself stops at its next update when it
        sees the request): after ``CANCEL_GRACE_S`` it is stopped by force. Runs it does not train are ignored."""

    @abstractmethod
    def capacity(self) -> int:
        """How many more runs (or populations, when it ``batches``) it can take now."""

    @property
    @abstractmethod
    def active(self) -> list[str]:
        """The ids of the runs it trains now (submitted and not yet reaped)."""

    @abstractmethod
    def shutdown(self) -> None:
        """Release what it holds while idle; runs still training are left to finish."""
