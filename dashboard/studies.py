"""What the Studies page works through: stopping and resuming a study, and a study read for display (its trials as
figure axes, its best trial as a Train link, its parameters' importance). The study runner itself is the core's
``StudyDriver`` (``dashboard.handles.study_driver``), started with the page's store like the queue runner."""

from __future__ import annotations

import functools
import json
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urlencode

import streamlit as st

from cartpole_core.config.models import ALGORITHMS, ConfigError, TrainConfig
from cartpole_core.figures.studies import ParamAxis
from cartpole_core.runs.home import data_home
from cartpole_core.runs.presets import all_preset_names, load_preset_config
from cartpole_core.runs.store import RunStore
from cartpole_core.studies import space, storage
from cartpole_core.studies.storage import StudySpec
from dashboard.form import default_preset, preset_values

if TYPE_CHECKING:
    from optuna import Study

IMPORTANCE_ESTIMATOR = "fANOVA"  # optuna.importance's default evaluator (a random forest's functional ANOVA)
IMPORTANCE_MIN_TRIALS = 4  # completed trials before the importance means anything


@dataclass(frozen=True)
class LinkedSetup:
    """A Train page's setup, from its share link (``?algo=…&preset=…&cfg=…``), as a study's base config."""

    algo: str
    preset: str
    overrides: dict[str, Any]

    @property
    def key(self) -> str:
        return json.dumps([self.algo, self.preset, self.overrides], sort_keys=True)

    def config(self, **fields: Any) -> TrainConfig:
        return load_preset_config(data_home(), self.algo, self.preset, {**self.overrides, **fields})


def linked_setup(params: dict[str, str]) -> tuple[LinkedSetup | None, str | None]:
    """The base setup a Train share link carries, and what in it cannot be used (the link is then ignored whole:
    a study on a base the user did not see would mislead). No ``algo`` in the link: neither."""
    algo = params.get("algo")
    if algo is None:
        return None, None
    if algo not in ALGORITHMS:
        return None, f"The link names algorithm {algo!r}; this lab has {', '.join(ALGORITHMS)}."
    preset = params.get("preset") or default_preset(algo)
    presets = all_preset_names(data_home(), algo)
    if preset not in presets:
        return None, f"The link names preset {preset!r}; {algo} has {', '.join(presets)} in this lab."
    try:
        overrides = json.loads(params.get("cfg") or "{}")
    except ValueError:
        return None, "The link's settings (cfg) are not valid JSON."
    if not isinstance(overrides, dict):
        return None, "The link's settings (cfg) must be a JSON object of field names and values."
    setup = LinkedSetup(algo, preset, {name: value for name, value in overrides.items()
                                       if name not in space.FIXED_FIELDS or name == "total_env_steps"})
    try:
        setup.config()
    except ConfigError as err:
        return None, "The link's settings do not make a valid config: " + "; ".join(
            f"{name}: {message}" for name, message in err.problems) if err.problems else str(err)
    return setup, None


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
