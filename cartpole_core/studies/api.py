"""Studies from Python — a notebook or a script — made and driven as the CLI and the Studies page make and drive
them::

    from cartpole_core.studies import run_study

    summary = run_study("ppo", ["learning_rate.start=1e-4:1e-2:log", "clip_range=0.1:0.4"], trials=16, seeds=2)
    summary["best"]["params"], summary["best"]["objective"], summary["best"]["checkpoint"]

``run_study`` trains the study's runs in local worker processes (one per core) while it drives the controller, and
returns the study's summary (``controller.summarize`` and its ``status``). The runs land in the data home's store
like any others (Runs & compare, Replay and the Studies page show them). Bad input raises ``ValueError`` naming
the parameter and what is allowed (``SpaceError`` for the search space, ``ConfigError`` for the base config);
nothing is created then.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from cartpole_core.config.limits import SEEDS_PER_LAUNCH_MAX
from cartpole_core.config.models import TrainConfig
from cartpole_core.config.presets import preset_config
from cartpole_core.runs.home import data_home, ensure_data_home
from cartpole_core.runs.presets import load_preset_config
from cartpole_core.runs.store import RunStore
from cartpole_core.studies import space, storage
from cartpole_core.studies.objectives import OBJECTIVES
from cartpole_core.studies.space import Dimension

PUMP_INTERVAL_S = 0.1  # a study's loop: the dispatcher starts runs, the controller reports, prunes, tells and asks
STUDY_NAME_MAX = 100

OnTrial = Callable[[Any, dict[str, Any]], None]  # (the trial just told, an optuna FrozenTrial; the study's summary)


def new_spec(algo: str, vary: Sequence[str | Dimension], *, base: TrainConfig | None = None, preset: str = "fast",
             trials: int = 20, seeds: int = 3, sampler: str = "tpe", pruner: str = "median",
             objective: str = "steps_to_solve", name: str | None = None, seed: int = 0,
             parallel: int | None = None, cpus: int | None = None, confirm_trials: int = storage.CONFIRM_TRIALS,
             confirm_seeds: int = storage.CONFIRM_SEEDS) -> storage.StudySpec:
    """A checked study spec: ``vary`` in the CLI's ``--vary`` syntax (``FIELD=LOW:HIGH[:log]``, ``FIELD=a,b,c`` or
    ``FIELD`` for its typical range) or as ``Dimension``s; ``base`` the config every trial starts from (default:
    ``preset``'s). A grid runs each of its points once: ``trials`` is cut to the grid's size. Without ``parallel``,
    trials in flight fill ``cpus`` (those of the Ray cluster the runs train on; default: this machine's). Once the
    trials ended, the best ``confirm_trials`` are re-run on ``confirm_seeds`` fresh seeds before the study names its
    best (0: name the best trial as it is)."""
    base = base if base is not None else preset_config(algo, preset)
    dims = space.check_space(algo, [dim if isinstance(dim, Dimension) else space.parse_vary(algo, dim)
                                    for dim in vary])
    for label, value, allowed in (("sampler", sampler, storage.SAMPLERS), ("pruner", pruner, storage.PRUNERS),
                                  ("objective", objective, tuple(OBJECTIVES))):
        if value not in allowed:
            raise ValueError(f"{label} {value!r:.40} is unknown; allowed: {', '.join(allowed)}")
    _check_count("trials", trials, storage.TRIALS_MAX)
    _check_count("seeds", seeds, SEEDS_PER_LAUNCH_MAX)
    storage.check_seeds(seeds, seed)
    if confirm_trials == 0:
        confirm_seeds = 0
    storage.check_confirmation(confirm_trials, confirm_seeds, seed, seeds)
    if sampler == "grid":
        space.grid(dims, storage.GRID_POINTS)  # SpaceError for a grid past space.GRID_MAX points
        trials = min(trials, space.grid_size(dims, storage.GRID_POINTS))
    if parallel is None:
        parallel = min(trials, default_parallel(seeds, cpus), storage.parallel_max(seeds))
    suggested = f"{algo}/{preset}: {', '.join(dim.field for dim in dims)}"
    spec = storage.StudySpec(
        study_id=storage.new_study_id(algo), name=name or _clip(suggested, STUDY_NAME_MAX), algo=algo, preset=preset,
        base_config=base.to_json(), dimensions=tuple(dims), sampler=sampler, pruner=pruner, objective=objective,
        trials=trials, seeds=seeds, seed=seed, parallel=parallel, confirm_trials=min(confirm_trials, trials),
        confirm_seeds=confirm_seeds)
    storage.check_spec(spec)
    return spec


def default_parallel(seeds: int, cpus: int | None = None) -> int:
    """Trials in flight by default: enough runs for every core (``cpus``: of the Ray cluster runs train on; default
    this machine's), and one trial more when the seeds do not fill the cores evenly (3 seeds on 2 cores: the third
    seed would train alone while the next trial waits). Not more: a trial's runs left waiting in the queue delay its
    pruning and its value."""
    cores = cpus or os.cpu_count() or 1
    return max(1, cores // seeds) + (1 if cores % seeds else 0)


def drive(store: RunStore, study_id: str, *, parallel: int | None = None, on_trial: OnTrial | None = None,
          should_stop: Callable[[], bool] | None = None, ray_address: str | None = None,
          on_confirming: Callable[[storage.StudySpec], None] | None = None) -> dict[str, Any]:
    """Train the study's runs in local worker processes (or on the Ray cluster at ``ray_address``) and drive its
    controller until the study is completed or stopped (``should_stop()`` true, or a stop request from elsewhere);
    cancelled runs are let finish their writes. ``on_confirming(spec)`` is called once when the best trials start
    their confirmation. Returns the summary with the study's ``status``. StudyError "busy"
    while another controller drives it; RayConnectError when the cluster cannot be used."""
    from cartpole_core.jobs.dispatch import Dispatcher
    from cartpole_core.jobs.executor import CANCEL_GRACE_S
    from cartpole_core.studies.controller import StudyController

    dispatcher = Dispatcher.local(store.home) if ray_address is None else Dispatcher.ray(store.home, ray_address)
    try:
        with StudyController.open(store, study_id, parallel=parallel) as controller:
            confirming = False
            while not controller.done:
                if should_stop is not None and should_stop():
                    controller.stop()
                    break
                dispatcher.pump()
                for trial in controller.pump():
                    if on_trial is not None:
                        on_trial(trial, controller.summary())
                if controller.confirming and not confirming:
                    confirming = True
                    if on_confirming is not None:
                        on_confirming(controller.spec)
                time.sleep(PUMP_INTERVAL_S)
            deadline = time.monotonic() + CANCEL_GRACE_S + 5
            while dispatcher.executor.active and time.monotonic() < deadline:  # cancelled runs end (a stop)
                dispatcher.pump()
                time.sleep(PUMP_INTERVAL_S)
            return {**controller.summary(), "status": controller.spec.status}
    finally:
        dispatcher.shutdown()
        dispatcher.store.close()


def run_study(algo: str, vary: Sequence[str | Dimension], *, preset: str = "fast",
              overrides: dict[str, Any] | None = None, home: str | os.PathLike | None = None,
              on_trial: OnTrial | None = None, ray_address: str | None = None, **options: Any) -> dict[str, Any]:
    """Create a study (``new_spec``'s options: trials, seeds, sampler, pruner, objective, name, seed, parallel) on
    ``preset`` (a built-in or one of the data home's user presets) with ``overrides`` (dotted field names, as
    ``--set``), in the data home ``home`` (default: the lab's), and drive it to the end here — its runs train in
    local worker processes, or on the Ray cluster at ``ray_address`` (``HOST:PORT``; RayConnectError, with nothing
    created, when it cannot be used). Returns its summary; ``summary["study_id"]`` resumes it."""
    home = data_home(home)
    base = load_preset_config(home, algo, preset, overrides)
    if ray_address is not None:
        from cartpole_core.jobs.ray_executor import connect

        options["cpus"] = connect(ray_address)
    spec = new_spec(algo, vary, base=base, preset=preset, **options)
    store = RunStore(ensure_data_home(home))
    try:
        storage.create_study(store.home, spec)
        return drive(store, spec.study_id, on_trial=on_trial, ray_address=ray_address)
    finally:
        store.close()


def resume_study(study_id: str, *, home: str | os.PathLike | None = None, parallel: int | None = None,
                 on_trial: OnTrial | None = None, ray_address: str | None = None) -> dict[str, Any]:
    """Drive a stopped or interrupted study on to its number of trials (a completed one: ValueError), its runs
    trained locally or on the Ray cluster at ``ray_address``."""
    folder_home = data_home(home)
    spec = storage.load_spec(folder_home, study_id)
    if spec.status == "completed":
        raise ValueError(f"study {spec.study_id} is already completed")
    if parallel is not None:
        storage.check_parallel(parallel, spec.seeds)
    store = RunStore(ensure_data_home(folder_home))
    try:
        return drive(store, study_id, parallel=parallel, on_trial=on_trial, ray_address=ray_address)
    finally:
        store.close()


def study_summary(study_id: str, *, home: str | os.PathLike | None = None) -> dict[str, Any]:
    """A study's numbers and best trial, as ``run_study`` returns them, read from its files."""
    from cartpole_core.studies.controller import summarize

    folder_home = data_home(home)
    spec = storage.load_spec(folder_home, study_id)
    store = RunStore(Path(folder_home)) if (Path(folder_home) / "lab.sqlite").exists() else None
    try:
        study = storage.load_optuna_study(storage.study_dir(folder_home, study_id))
        return {**summarize(store, spec, study), "status": spec.status}
    finally:
        if store is not None:
            store.close()


def _check_count(name: str, value: int, most: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= most:
        raise ValueError(f"{name} must be a whole number from 1 to {most:,}, got {value!r:.40}")


def _clip(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[:limit - 1] + "…"
