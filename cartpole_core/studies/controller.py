"""The study controller: drives one study ask-and-tell, each trial a group of ordinary runs in the run store.

One ``pump()`` is one round: renew the lease; follow the trials in flight — report their intermediate values at the
study's fixed env-step points (``objectives.report_steps``) once each of their runs has reached the point or ended,
prune when the pruner says so (cancel the runs through ``jobs.queue.cancel_run``, tell PRUNED; their data stays),
tell the objective value once all their runs ended (``run_value`` per seed, ``trial_value`` across seeds); then ask
new trials while fewer than ``parallel`` are in flight and trials remain. A trial's runs are queued as one group
(``jobs.queue.submit``: one run per seed) tagged ``study:<id>`` and ``trial:<n>``.

The controller never trains and owns no executor: whatever pumps a ``Dispatcher`` on the same data home trains the
queued runs — the CLI's loop pumps both; in the dashboard the ``Scheduler`` trains and the controller asks and
tells. Never ``study.optimize``: a trial's objective is runs in other processes, not a function call here.

Which trials count toward the study's ``trials``: those that ran their course — completed, pruned, or failed on
their own (values the config rejects, a run that failed). A trial cut short from outside — the study stopped, its
runs cancelled or interrupted by someone else, the controller gone before its runs were queued — is told FAIL with
the user attribute ``interrupted`` (the reason), does not count, and its parameters are enqueued again, so that
configuration still runs (a grid loses no point).

Confirmation: the best of a few seeds per trial is an optimistic pick (a configuration whose seeds were lucky wins).
So once every trial has ended, the best ``confirm_trials`` are each re-run on ``confirm_seeds`` fresh seeds (the
seeds after the trials', the same for each) before the study completes, and the study's best is the candidate whose
confirmation held on the most fresh seeds (solved; for the ``final`` objective, solved at the end), then the best
objective over all its seeds (``confirmed_best``). The confirmation lives in the study's user attribute
``confirmations`` (trial number → run ids, their values and how many held), its runs tagged ``confirm:<n>``; runs
cut short from outside (a stop) are queued again on resume.

Resuming (``open``): the journal's RUNNING trials are matched to their runs by the study tag, in one scan: runs
still active are followed again, runs all ended are told from the store at the first pump, no runs at all is an
interrupted trial as above. No trial is duplicated and none is lost.
"""

from __future__ import annotations

import bisect
import math
from dataclasses import dataclass, field
from typing import Any

from optuna import Study
from optuna.pruners import BasePruner, MedianPruner, NopPruner, SuccessiveHalvingPruner
from optuna.samplers import BaseSampler, GridSampler, RandomSampler, TPESampler
from optuna.trial import FrozenTrial, Trial, TrialState

from cartpole_core.config.limits import QUEUED_MAX
from cartpole_core.config.models import ConfigError
from cartpole_core.jobs.queue import QueueFullError, cancel_run, submit
from cartpole_core.runs.store import ACTIVE_STATUSES, RunStore
from cartpole_core.stats import iqm
from cartpole_core.studies import space, storage
from cartpole_core.studies.objectives import (
    OBJECTIVES,
    intermediate_value,
    report_steps,
    run_holds,
    run_value,
    trial_value,
)
from cartpole_core.studies.storage import Lease, StudySpec

INTERRUPTED = "interrupted"  # the user attribute (its reason) of a trial that does not count
CONFIRMATIONS = "confirmations"  # the study's user attribute: {trial number: {"run_ids", "run_values", "held"}}
MEDIAN_STARTUP_TRIALS = 5  # the median pruner prunes once this many trials have ended (Optuna's and RL Zoo's default)
HALVING_REDUCTION = 3  # successive halving keeps the best third at each rung


@dataclass
class _Followed:
    """A trial in flight: its runs (in seed order), their evaluations read so far and the next report point."""

    trial: Trial
    run_ids: list[str]
    evaluations: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    next_report: int = 0


class StudyController:
    """Drives one study while it holds the study's lease: ``open``, then ``pump`` until ``done``, then ``close``
    (or use it as a context manager). ``stop`` cancels the trials in flight and marks the study stopped."""

    def __init__(self, store: RunStore, spec: StudySpec, study: Study, lease: Lease, parallel: int):
        self.store, self.spec, self.study, self.lease = store, spec, study, lease
        self.parallel = parallel
        self.folder = lease.folder
        self.stopped = False
        self._base = spec.base()
        self._distributions = {dim.field: space.distribution(dim) for dim in spec.dimensions}
        self._steps = report_steps(self._base)
        self._followed: dict[int, _Followed] = {}
        self._told: list[FrozenTrial] = []
        self._counted = sum(1 for trial in study.get_trials(deepcopy=False) if _counts(trial))

    @classmethod
    def open(cls, store: RunStore, study_id: str, *, parallel: int | None = None, sampler: BaseSampler | None = None,
             pruner: BasePruner | None = None) -> StudyController:
        """Take the study's lease (StudyError "busy" when a live controller holds it), load its spec and journal,
        and pick up the trials a previous controller left in flight. A stopped study runs again. ``sampler`` and
        ``pruner`` replace the spec's (e.g. a pruner that must prune, in a test)."""
        folder = storage.study_dir(store.home, study_id)
        lease = Lease.acquire(folder)
        try:
            spec = storage.load_spec(store.home, study_id)
            storage.repair_journal(folder)
            study = storage.load_optuna_study(folder)
            # Seeded past the trials so far: a resumed study does not draw its first configurations again.
            study.sampler = sampler or _sampler(spec, len(study.trials))
            study.pruner = pruner or _pruner(spec)
            if spec.status == "stopped":
                spec = storage.set_status(store.home, study_id, "running")
            storage.clear_stop(folder)
            controller = cls(store, spec, study, lease, parallel or spec.parallel)
            controller._recover()
        except BaseException:
            lease.release()
            raise
        return controller

    def __enter__(self) -> StudyController:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @property
    def done(self) -> bool:
        return self.stopped or self.spec.status == "completed"

    @property
    def confirming(self) -> bool:
        """Every trial ended and the best ones are being re-run on fresh seeds."""
        return bool(self.study.user_attrs.get(CONFIRMATIONS)) and not self.done

    @property
    def in_flight(self) -> list[int]:
        """The numbers of the trials whose runs are queued or training."""
        return list(self._followed)

    def pump(self) -> list[FrozenTrial]:
        """One round (see the module docstring); returns the trials told in it. A stop request (``study stop``
        from another process) stops the study here."""
        self.lease.renew()
        if self.done:
            return []
        if storage.stop_requested(self.folder):
            self.stop()
        else:
            for number, followed in list(self._followed.items()):
                if self._advance(followed):
                    del self._followed[number]
            while len(self._followed) < self.parallel and self._remaining() > 0:
                if self.store.count_runs("queued") + self.spec.seeds > QUEUED_MAX or not self._start_trial():
                    break  # the queue is full (other runs wait): ask again next round
            if not self._followed and self._remaining() == 0 and self._confirm():
                self.spec = storage.set_status(self.store.home, self.spec.study_id, "completed")
        told, self._told = self._told, []
        return told

    def stop(self) -> None:
        """Tell the trials whose runs have all ended; cancel the runs of the others (their data stays) and tell
        those interrupted (their configurations run again on resume); mark the study stopped."""
        for followed in self._followed.values():
            if not self._advance(followed):
                self._cancel_runs(followed.run_ids)
                self._interrupt(followed.trial, "the study was stopped")
        self._followed.clear()
        for entry in self.study.user_attrs.get(CONFIRMATIONS, {}).values():
            if entry["run_values"] is None:  # queued again on resume
                self._cancel_runs(entry["run_ids"])
        self.spec = storage.set_status(self.store.home, self.spec.study_id, "stopped")
        storage.clear_stop(self.folder)
        self.stopped = True

    def close(self) -> None:
        """Release the lease; trials still in flight stay RUNNING in the journal for the next controller."""
        self.lease.release()

    def summary(self) -> dict[str, Any]:
        return summarize(self.store, self.spec, self.study)

    # ------------------------------------------------------------------------------------------- trials

    def _remaining(self) -> int:
        return self.spec.trials - self._counted - len(self._followed)

    def _start_trial(self) -> bool:
        """Ask a trial and queue its runs; False when the queue refused them (the trial is interrupted and its
        configuration enqueued again)."""
        trial = self.study.ask(self._distributions)
        try:
            config = space.apply(self._base, trial.params)
        except ConfigError as err:
            trial.set_user_attr("error", str(err))
            self._tell(trial, TrialState.FAIL)
            return True
        number = trial.number
        try:
            _, run_ids = submit(self.store, config, self.spec.run_seeds, preset=self.spec.preset,
                                name=storage.trial_name(self.spec.name, number),
                                tags=(self.spec.tag, storage.trial_tag(number)))
        except QueueFullError:  # another launch filled the queue since the count
            self._interrupt(trial, "the run queue was full")
            return False
        trial.set_user_attr("run_ids", run_ids)
        self._followed[number] = _Followed(trial, run_ids)
        return True

    def _recover(self) -> None:
        running = self.study.get_trials(deepcopy=False, states=(TrialState.RUNNING,))
        if not running:
            return
        runs_of: dict[int, list[dict[str, Any]]] = {}
        for run in self.store.list_runs(tag=self.spec.tag):
            number = _trial_number(run["tags"])
            if number is not None:
                runs_of.setdefault(number, []).append(run)
        for frozen in running:
            trial = Trial(self.study, frozen._trial_id)  # Optuna has no public way to reopen a trial by number
            runs = sorted(runs_of.get(frozen.number, []), key=lambda run: run["seed"])
            if runs:  # reported points stay reported (Optuna keeps a step's first value only)
                reported = bisect.bisect_right(self._steps, frozen.last_step if frozen.last_step is not None else -1)
                self._followed[frozen.number] = _Followed(trial, [run["id"] for run in runs], next_report=reported)
            else:
                self._interrupt(trial, "the controller stopped before the trial's runs were queued")

    def _advance(self, followed: _Followed) -> bool:
        """Read what is new of the trial's runs, report, prune or tell; True when the trial ended."""
        runs = [self.store.get_run(run_id) for run_id in followed.run_ids]
        if any(run is None for run in runs):
            self._cancel_runs(followed.run_ids)
            self._interrupt(followed.trial, "a run of the trial was deleted")
            return True
        for run in runs:
            rows = followed.evaluations.setdefault(run["id"], [])
            rows += self.store.evaluations(run["id"], rows[-1]["env_steps"] if rows else -1)
        ended = all(run["status"] not in ACTIVE_STATUSES for run in runs)
        while followed.next_report < len(self._steps):
            step = self._steps[followed.next_report]
            if not all(run["status"] not in ACTIVE_STATUSES or run["env_steps"] >= step for run in runs):
                break
            followed.next_report += 1
            value = intermediate_value(self.spec.objective, [followed.evaluations[run_id]
                                                             for run_id in followed.run_ids], step)
            if value is None:
                continue
            followed.trial.report(value, step)
            if not ended and followed.trial.should_prune():
                self._cancel_runs(followed.run_ids)
                self._tell(followed.trial, TrialState.PRUNED)
                return True
        if ended:
            self._finish(followed, runs)
        return ended

    def _finish(self, followed: _Followed, runs: list[dict[str, Any]]) -> None:
        trial = followed.trial
        failed = next((run for run in runs if run["status"] == "failed"), None)
        if failed is not None:
            trial.set_user_attr("error", f"run {failed['id']} failed: {failed['error']}")
            self._tell(trial, TrialState.FAIL)
            return
        cut = next((run for run in runs if run["status"] != "completed"), None)
        if cut is not None:  # cancelled or interrupted from outside: not the configuration's doing
            reason = f"run {cut['id']} was {cut['status']}" + (f": {cut['error']}" if cut["error"] else "")
            self._interrupt(trial, reason)
            return
        values = [run_value(self.spec.objective, run, followed.evaluations[run["id"]]) for run in runs]
        trial.set_user_attr("run_values", values)
        if not all(math.isfinite(value) for value in values):
            trial.set_user_attr("error", f"a run's {self.spec.objective} is not a finite number: {values}")
            self._tell(trial, TrialState.FAIL)
            return
        self._tell(trial, TrialState.COMPLETE, trial_value(self.spec.objective, values))

    def _confirm(self) -> bool:
        """One round of the confirmation: queue the candidates' runs (again, if a stop cut them short), record the
        values of those whose runs all ended; True once every candidate is confirmed (at once if none is)."""
        confirmations = dict(self.study.user_attrs.get(CONFIRMATIONS, {}))
        changed, done = False, True
        for trial in confirmation_candidates(self.spec, self.study):
            entry = confirmations.get(str(trial.number))
            if entry is not None and entry["run_values"] is not None:
                continue
            done = False
            runs = [self.store.get_run(run_id) for run_id in entry["run_ids"]] if entry is not None else []
            if entry is None or any(run is None or run["status"] in ("cancelled", "interrupted") for run in runs):
                if self.store.count_runs("queued") + self.spec.confirm_seeds > QUEUED_MAX:
                    break  # the queue is full: next round
                try:
                    _, run_ids = submit(self.store, space.apply(self._base, trial.params),
                                        self.spec.confirm_run_seeds, preset=self.spec.preset,
                                        name=storage.confirm_name(self.spec.name, trial.number),
                                        tags=(self.spec.tag, storage.confirm_tag(trial.number)))
                except QueueFullError:
                    break
                confirmations[str(trial.number)] = {"run_ids": run_ids, "run_values": None, "held": None}
                changed = True
            elif all(run["status"] not in ACTIVE_STATUSES for run in runs):
                evaluations = [self.store.evaluations(run["id"], -1) for run in runs]
                values = [_ended_run_value(self.spec.objective, run, rows) for run, rows in zip(runs, evaluations)]
                held = sum(run["status"] == "completed" and run_holds(self.spec.objective, run, rows)
                           for run, rows in zip(runs, evaluations))
                confirmations[str(trial.number)] = {**entry, "run_values": values, "held": held}
                changed = True
        if changed:
            self.study.set_user_attr(CONFIRMATIONS, confirmations)
        return done

    def _interrupt(self, trial: Trial, reason: str) -> None:
        trial.set_user_attr(INTERRUPTED, reason)
        self._tell(trial, TrialState.FAIL)
        if set(trial.params) == set(self._distributions):
            self.study.enqueue_trial(trial.params)

    def _tell(self, trial: Trial, state: TrialState, value: float | None = None) -> None:
        frozen = self.study.tell(trial, value, state=state)
        self._counted += _counts(frozen)
        self._told.append(frozen)

    def _cancel_runs(self, run_ids: list[str]) -> None:
        for run_id in run_ids:
            run = self.store.get_run(run_id)
            if run is not None and run["status"] in ACTIVE_STATUSES:
                cancel_run(self.store, run_id)


def _counts(trial: FrozenTrial) -> bool:
    return trial.state.is_finished() and INTERRUPTED not in trial.user_attrs


def _ended_run_value(objective: str, run: dict[str, Any], evaluations: list[dict[str, Any]]) -> float | None:
    """A confirmation run's objective value; None for a run that failed (it did not hold either)."""
    if run["status"] != "completed":
        return None
    value = run_value(objective, run, evaluations)
    return value if math.isfinite(value) else None


def confirmation_candidates(spec: StudySpec, study: Study) -> list[FrozenTrial]:
    """The ``confirm_trials`` best completed trials, best first (ties: the earlier trial)."""
    sign = 1 if OBJECTIVES[spec.objective].direction == "minimize" else -1
    completed = [trial for trial in study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
                 if _counts(trial)]
    return sorted(completed, key=lambda trial: (sign * trial.value, trial.number))[:spec.confirm_trials]


def confirmed_best(spec: StudySpec, study: Study) -> tuple[FrozenTrial, dict[str, Any]] | None:
    """The study's best after its confirmation, and that confirmation — or None while it is not complete (or the
    study confirms nothing). The candidate held on the most fresh seeds wins; then the objective's IQM over all its
    seeds, the trial's and the fresh ones."""
    confirmations = study.user_attrs.get(CONFIRMATIONS, {})
    candidates = confirmation_candidates(spec, study)
    if not candidates or any(confirmations.get(str(trial.number), {}).get("run_values") is None
                             for trial in candidates):
        return None
    sign = 1 if OBJECTIVES[spec.objective].direction == "minimize" else -1

    def rank(trial: FrozenTrial) -> tuple[int, float, int]:
        entry = confirmations[str(trial.number)]
        return -entry["held"], sign * _all_seeds_value(trial, entry), trial.number

    best = min(candidates, key=rank)
    entry = confirmations[str(best.number)]
    return best, {**entry, "seeds": spec.confirm_run_seeds, "objective": _all_seeds_value(best, entry)}


def _all_seeds_value(trial: FrozenTrial, entry: dict[str, Any]) -> float:
    values = [value for value in [*trial.user_attrs.get("run_values", []), *entry["run_values"]] if value is not None]
    return iqm(values) if values else math.nan


def _trial_number(tags: list[str]) -> int | None:
    for tag in tags:
        prefix, _, number = tag.partition(":")
        if prefix == "trial" and number.isdigit():
            return int(number)
    return None


def _sampler(spec: StudySpec, seed_offset: int) -> BaseSampler:
    if spec.sampler == "grid":  # the same seed always: trial n is the grid's point n in the seeded order
        return _Grid(space.grid(spec.dimensions, storage.GRID_POINTS), seed=spec.seed)
    sampler = TPESampler if spec.sampler == "tpe" else RandomSampler
    return sampler(seed=spec.seed + seed_offset)


class _Grid(GridSampler):
    """Optuna's grid sampler without its end-of-grid ``study.stop()``, which works only inside ``optimize`` (a
    grid study's trials are the grid's size; the controller counts them)."""

    def after_trial(self, study: Study, trial: FrozenTrial, state: TrialState, values: Any) -> None:
        pass


def _pruner(spec: StudySpec) -> BasePruner:
    steps = report_steps(spec.base())
    if spec.pruner == "median":  # from a third of the budget on, as RL Zoo prunes
        return MedianPruner(n_startup_trials=MEDIAN_STARTUP_TRIALS, n_warmup_steps=steps[len(steps) // 3])
    if spec.pruner == "halving":  # rungs at the first report point, then × HALVING_REDUCTION
        return SuccessiveHalvingPruner(min_resource=steps[0], reduction_factor=HALVING_REDUCTION)
    return NopPruner()


# ------------------------------------------------------------------------------------------- reading a study


def display_status(spec: StudySpec, holder: dict[str, Any] | None) -> str:
    """The spec's status, except "interrupted" for a running study that no live controller drives (resume it)."""
    return "interrupted" if spec.status == "running" and holder is None else spec.status


def summarize(store: RunStore | None, spec: StudySpec, study: Study) -> dict[str, Any]:
    """The study in numbers, and its best trial: its parameters, objective value (the IQM across seeds), runs, and
    the final checkpoint of its best seed (None while no trial completed). ``store`` None: no checkpoint.

    Once the confirmation is done the best is ``confirmed_best`` and ``best["confirmation"]`` says on which fresh
    seeds, how many held and the objective over all its seeds; before, the best trial so far, with confirmation None
    (``confirming`` is true while the best trials are being confirmed)."""
    trials = [trial for trial in study.get_trials(deepcopy=False) if _counts(trial)]
    states = [trial.state for trial in trials]
    summary = {"study_id": spec.study_id, "name": spec.name, "algo": spec.algo, "objective": spec.objective,
               "direction": OBJECTIVES[spec.objective].direction, "trials": len(trials),
               "trials_planned": spec.trials, "trials_completed": states.count(TrialState.COMPLETE),
               "trials_pruned": states.count(TrialState.PRUNED), "trials_failed": states.count(TrialState.FAIL),
               "best": None}
    completed = [trial for trial in trials if trial.state == TrialState.COMPLETE]
    confirmed = confirmed_best(spec, study) if spec.confirm_trials else None
    summary["confirming"] = bool(completed and spec.confirm_trials and confirmed is None
                                 and len(trials) >= spec.trials)
    if completed:
        best, confirmation = confirmed if confirmed is not None else (study.best_trial, None)
        run_ids = best.user_attrs.get("run_ids", [])
        summary["best"] = {"trial": best.number, "params": best.params, "objective": best.value,
                           "run_ids": run_ids, "checkpoint": _best_checkpoint(store, spec, best),
                           "confirmation": None if confirmation is None else {
                               "seeds": confirmation["seeds"], "run_ids": confirmation["run_ids"],
                               "held": confirmation["held"], "objective": confirmation["objective"]}}
    return summary


def _best_checkpoint(store: RunStore | None, spec: StudySpec, trial: FrozenTrial) -> str | None:
    run_ids, values = trial.user_attrs.get("run_ids", []), trial.user_attrs.get("run_values", [])
    if store is None or not run_ids or len(values) != len(run_ids):
        return None
    pick = min if OBJECTIVES[spec.objective].direction == "minimize" else max
    best_run = run_ids[values.index(pick(values))]
    final = store.artifacts(best_run, "final")
    return str(final[-1]["path"]) if final else None


def trial_rows(study: Study) -> list[dict[str, Any]]:
    """One row per trial asked so far: number, state ("complete", "pruned", "fail", "running" or "interrupted"),
    value (of a completed trial), params, runs and their values (of a completed trial, in seed order), why it did
    not complete, its last intermediate value, and its confirmation (None unless it is a candidate; ``run_values``
    None while its runs train)."""
    rows = []
    confirmations = study.user_attrs.get(CONFIRMATIONS, {})
    for trial in study.get_trials(deepcopy=False):
        if trial.state == TrialState.WAITING:
            continue
        attrs = trial.user_attrs
        state = INTERRUPTED if INTERRUPTED in attrs else trial.state.name.lower()
        last = trial.intermediate_values[trial.last_step] if trial.last_step is not None else None
        pruned = f"pruned at {trial.last_step:,} env steps" if trial.state == TrialState.PRUNED else None
        rows.append({"trial": trial.number, "state": state,
                     "value": trial.value if trial.state == TrialState.COMPLETE else None, "params": trial.params,
                     "run_ids": attrs.get("run_ids", []), "run_values": attrs.get("run_values", []),
                     "reason": attrs.get(INTERRUPTED) or attrs.get("error") or pruned,
                     "last_step": trial.last_step, "last_intermediate": last,
                     "confirmation": confirmations.get(str(trial.number))})
    return rows
