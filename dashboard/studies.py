"""What the Studies page works through: the process's study driver, and a study read for display (its trials as
figure axes, its best trial as a Train link, its parameters' importance).

The driver is the dashboard's study controller loop, as the ``Scheduler`` is its queue runner: a daemon thread that
opens every study that should be running and that no live controller drives, pumps each one's controller (it asks
and tells; the ``Scheduler`` trains the runs it queues) and closes it when it is done. Never in a page's thread, and
never ``study.optimize``. A stop goes through the study's stop file (``storage.request_stop``), so a study that a
command-line controller drives stops the same way.
"""

from __future__ import annotations

import functools
import json
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urlencode

import streamlit as st

from cartpole_core.figures.studies import ParamAxis
from cartpole_core.runs.home import data_home
from cartpole_core.runs.store import RunStore
from cartpole_core.studies import space, storage
from cartpole_core.studies.storage import StudyError, StudySpec
from dashboard.form import preset_values

if TYPE_CHECKING:
    from optuna import Study

    from cartpole_core.studies.controller import StudyController

IMPORTANCE_ESTIMATOR = "fANOVA"  # optuna.importance's default evaluator (a random forest's functional ANOVA)
IMPORTANCE_MIN_TRIALS = 4  # completed trials before the importance means anything


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


@st.cache_resource
def driver(home: str) -> StudyDriver:
    """One study driver per server process and data home."""
    thread = StudyDriver(data_home(home))
    thread.start()
    return thread


def lease_free(folder: Path) -> bool:
    """No live controller drives the study (no lease, or one whose holder died or stopped renewing)."""
    holder = storage.read_lease(folder)
    return holder is None or not storage.lease_live(holder)


def request_stop(home: Path, study_id: str) -> None:
    """Ask whichever controller drives the study to stop it (this server's driver, or a command line's)."""
    storage.request_stop(storage.study_dir(home, study_id))


# ------------------------------------------------------------------------------------------- reading a study


@dataclass
class StudyView:
    """A study as the page shows it: its spec, its status in words (``display_status``), the numbers
    (``summarize``) and one row per trial (``trial_rows``)."""

    spec: StudySpec
    status: str
    summary: dict[str, Any]
    rows: list[dict[str, Any]]
    study: Study


def read_study(store: RunStore, study_id: str) -> StudyView:
    """The study from its spec and journal (StudyError "missing" or "damaged")."""
    from cartpole_core.studies.controller import display_status, summarize, trial_rows

    spec = storage.load_spec(store.home, study_id)
    folder = storage.study_dir(store.home, study_id)
    study = storage.load_optuna_study(folder)
    holder = storage.read_lease(folder)
    status = display_status(spec, holder if holder is not None and storage.lease_live(holder) else None)
    return StudyView(spec, status, summarize(store, spec, study), trial_rows(study), study)


def param_axes(spec: StudySpec, rows: list[dict[str, Any]]) -> list[ParamAxis]:
    """Each varied field as a parallel-coordinates axis over ``rows`` (log where the dimension is log)."""
    return [ParamAxis(dim.field, [row["params"].get(dim.field) for row in rows], log=dim.log,
                      categories=sampled_choices(dim)) for dim in spec.dimensions]


def sampled_choices(dim: space.Dimension) -> list[Any] | None:
    """A categorical dimension's choices as its trials' parameters hold them (lists as ``64-64``); None for a range."""
    return None if dim.kind != "categorical" else list(space.distribution(dim).choices)


def runs_link(spec: StudySpec, run_ids: list[str] | None = None) -> str:
    """Runs & compare filtered to the study's runs (and with ``run_ids`` selected, e.g. a trial's seeds)."""
    params = {"tag": spec.tag, **({"select": ",".join(run_ids)} if run_ids else {})}
    return f"/runs?{urlencode(params)}"


def train_query(spec: StudySpec, params: dict[str, Any]) -> dict[str, str]:
    """The Train page's query parameters for a trial's parameters on the study's preset and budget (a share link:
    ``cfg`` holds what differs from the preset, :mod:`dashboard.share`)."""
    config = space.apply(spec.base(), params)
    preset = preset_values(spec.algo, spec.preset)
    values = {name: functools.reduce(getattr, name.split("."), config) for name in [*params, *space.FIXED_FIELDS]}
    overrides = {name: value for name, value in values.items() if preset.get(name) != value}
    query = {"algo": spec.algo, "preset": spec.preset}
    if overrides:
        query["cfg"] = json.dumps(overrides, separators=(",", ":"))
    return query


@st.cache_data(max_entries=64, show_spinner="Estimating parameter importance…")
def importances(study_id: str, completed: int, _study: Study) -> dict[str, float] | None:
    """Each parameter's importance to the objective (``optuna.importance``, ``IMPORTANCE_ESTIMATOR``) once
    ``completed`` trials completed, computed once per count; None before ``IMPORTANCE_MIN_TRIALS`` or when the
    completed trials cannot tell the parameters apart (one value)."""
    import optuna
    from optuna.trial import TrialState

    trials = _study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
    if completed < IMPORTANCE_MIN_TRIALS or len({trial.value for trial in trials}) < 2:
        return None
    try:
        return optuna.importance.get_param_importances(_study)
    except (ValueError, RuntimeError):  # e.g. a parameter that took one value in every completed trial
        return None
