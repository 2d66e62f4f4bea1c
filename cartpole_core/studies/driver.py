"""The dashboard's study runner: a daemon thread that drives the data home's studies, as the ``Scheduler`` runs its
queue. Each study whose status is "running" and that no live controller drives is opened (``StudyController.open``),
pumped (it asks and tells; whatever pumps a ``Dispatcher`` trains the runs it queues) and closed when it is done.
Never ``study.optimize``, never in a page's thread. A stop goes through the study's stop file
(``storage.request_stop``), so a study a command line drives stops the same way.

Import-light: Optuna arrives with the first study opened.
"""

from __future__ import annotations

import threading
from pathlib import Path
from typing import TYPE_CHECKING

from cartpole_core.runs.store import RunStore
from cartpole_core.studies import storage
from cartpole_core.studies.storage import StudyError

if TYPE_CHECKING:
    from cartpole_core.studies.controller import StudyController


class StudyDriver(threading.Thread):
    """A daemon thread that drives the data home's studies, ``interval_s`` apart: each study whose status is
    "running" and whose lease is free or stale is opened (``StudyController.open``), pumped, and closed when done;
    a study with a stop request and no live controller is opened and stopped at once. ``errors``: the last
    failure of each study (cleared by its next good round), for the page to show; the thread itself keeps going."""

    def __init__(self, home: Path, interval_s: float = 0.5):
        super().__init__(name="cartpole-lab-studies", daemon=True)
        self.home, self.interval_s = home, interval_s
        self.errors: dict[str, str] = {}
        self._resume: set[str] = set()
        self._controllers: dict[str, StudyController] = {}  # the studies whose lease this thread holds
        self._lock = threading.Lock()
        self._stop_event = threading.Event()

    def resume(self, study_id: str) -> None:
        """Drive a stopped or interrupted study again from the next round (opening it marks it running)."""
        with self._lock:
            self._resume.add(study_id)

    def run(self) -> None:
        store = RunStore(self.home)  # opened in this thread: SQLite connections stay in theirs
        while not self._stop_event.is_set():
            try:
                self._open_new(store)
            except Exception as err:  # the studies folder itself: keep going, say so
                self.errors[""] = f"{type(err).__name__}: {err}"
            for study_id, controller in list(self._controllers.items()):
                self._pump(study_id, controller)
            self._stop_event.wait(self.interval_s)
        for controller in self._controllers.values():
            controller.close()  # trials in flight stay in the journal; the next driver picks them up
        store.close()

    def stop(self) -> None:
        self._stop_event.set()

    def _open_new(self, store: RunStore) -> None:
        from cartpole_core.studies.controller import StudyController

        with self._lock:
            resume, self._resume = self._resume, set()
        specs, _ = storage.list_studies(self.home)
        for spec in specs:
            study_id = spec.study_id
            if study_id in self._controllers or spec.status == "completed":
                continue
            folder = storage.study_dir(self.home, study_id)
            stop_asked = storage.stop_requested(folder)
            if not (spec.status == "running" or study_id in resume) or not lease_free(folder):
                continue
            try:
                controller = StudyController.open(store, study_id)
            except StudyError as err:
                if err.kind != "busy":  # busy: a controller took it meanwhile
                    self.errors[study_id] = str(err)
                continue
            except Exception as err:
                self.errors[study_id] = f"{type(err).__name__}: {err}"
                continue
            if stop_asked and study_id not in resume:  # opening cleared the request: carry it out now
                self._finish(study_id, controller, stop=True)
            else:
                self._controllers[study_id] = controller

    def _pump(self, study_id: str, controller: StudyController) -> None:
        try:
            controller.pump()
            self.errors.pop(study_id, None)
        except Exception as err:  # e.g. the lease taken over, a damaged journal: let go; a later round retries
            self.errors[study_id] = f"{type(err).__name__}: {err}"
            self._finish(study_id, controller)
            return
        if controller.done:
            self._finish(study_id, controller)

    def _finish(self, study_id: str, controller: StudyController, stop: bool = False) -> None:
        try:
            if stop:
                controller.stop()
        except Exception as err:
            self.errors[study_id] = f"{type(err).__name__}: {err}"
        finally:
            controller.close()
            self._controllers.pop(study_id, None)


def lease_free(folder: Path) -> bool:
    """No live controller drives the study (no lease, or one whose holder died or stopped renewing)."""
    holder = storage.read_lease(folder)
    return holder is None or not storage.lease_live(holder)
