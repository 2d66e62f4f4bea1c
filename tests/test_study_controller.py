"""The study controller over real runs (tabular Q-learning, tiny budgets), its spec files and its lease."""

import dataclasses
import json
import subprocess
import sys
import time

import optuna
import pytest
from optuna.distributions import FloatDistribution
from optuna.pruners import MedianPruner
from optuna.trial import TrialState, create_trial

from cartpole_core.config.presets import preset_config
from cartpole_core.jobs.dispatch import Dispatcher
from cartpole_core.runs.store import RunStore
from cartpole_core.studies import space, storage
from cartpole_core.studies.controller import CONFIRMATIONS, INTERRUPTED, StudyController, confirmed_best
from cartpole_core.studies.storage import Lease, StudyError, StudySpec

GOOD = {"bins": "1-1-6-12", "learning_rate.start": 1.0, "learning_rate.end": 0.01}  # the fast preset: solves
ONE_STATE = {**GOOD, "bins": "1-1-1-1"}  # one table row: the same action always, never past ~10 steps
END_ABOVE_START = {**GOOD, "learning_rate.start": 0.05, "learning_rate.end": 0.1}  # a log-decay cannot rise


def new_study(home, *, trials, seeds, parallel=1, budget=1_000_000, stop_on_solve=True, pruner="median",
              confirm_trials=0, confirm_seeds=0):
    base = preset_config("qlearning", "fast", total_env_steps=budget, stop_on_solve=stop_on_solve)
    dims = [space.parse_vary("qlearning", text) for text in
            ("bins=1-1-1-1,1-1-6-12", "learning_rate.start=0.05:1", "learning_rate.end=0:0.1")]
    spec = StudySpec(study_id=storage.new_study_id("qlearning"), name="test study", algo="qlearning", preset="fast",
                     base_config=base.to_json(), dimensions=tuple(dims), sampler="tpe", pruner=pruner,
                     objective="steps_to_solve", trials=trials, seeds=seeds, seed=0, parallel=parallel,
                     confirm_trials=confirm_trials, confirm_seeds=confirm_seeds)
    storage.create_study(home, spec)
    return spec


def drive(dispatcher, controller, timeout_s=90.0):
    """The CLI's loop: pump the dispatcher and the controller until the study ends, then until the runs stopped."""
    deadline = time.monotonic() + timeout_s
    while not controller.done:
        assert time.monotonic() < deadline, "the study did not end in time"
        dispatcher.pump()
        controller.pump()
        time.sleep(0.05)
    while dispatcher.executor.active:
        assert time.monotonic() < deadline + 10, "the cancelled runs did not stop"
        dispatcher.pump()
        time.sleep(0.05)


@pytest.fixture
def dispatcher(tmp_path):
    dispatcher = Dispatcher.local(tmp_path, max_workers=2)
    yield dispatcher
    dispatcher.shutdown()
    dispatcher.store.close()


def test_pruning_cancels_a_bad_trials_runs_and_keeps_their_data_and_a_rejected_combination_fails(dispatcher):
    store = dispatcher.store
    spec = new_study(store.home, trials=3, seeds=2)
    study = storage.load_optuna_study(storage.study_dir(store.home, spec.study_id))
    for params in (GOOD, END_ABOVE_START, ONE_STATE):  # asked in this order, one trial in flight at a time
        study.enqueue_trial(params)
    with StudyController.open(store, spec.study_id, pruner=MedianPruner(n_startup_trials=1)) as controller:
        drive(dispatcher, controller)
        trials = controller.study.get_trials()
        summary = controller.summary()

    assert [trial.state for trial in trials] == [TrialState.COMPLETE, TrialState.FAIL, TrialState.PRUNED]
    assert "learning_rate.end" in trials[1].user_attrs["error"] and "run_ids" not in trials[1].user_attrs
    pruned_runs = [store.get_run(run_id) for run_id in trials[2].user_attrs["run_ids"]]
    assert [run["status"] for run in pruned_runs] == ["cancelled", "cancelled"]
    assert all(run["env_steps"] < 1_000_000 for run in pruned_runs)  # stopped long before the budget
    for run in pruned_runs:
        assert store.episodes(run["id"]) and store.evaluations(run["id"])  # the data stays
        assert sorted(run["tags"]) == sorted([spec.tag, "trial:2"])
    assert trials[2].intermediate_values and max(trials[2].intermediate_values) < 1_000_000
    assert summary["trials"] == 3 and summary["trials_pruned"] == 1 and summary["trials_failed"] == 1
    assert summary["best"]["trial"] == 0 and summary["best"]["params"] == GOOD
    assert storage.load_spec(store.home, spec.study_id).status == "completed"


def test_the_best_trials_are_confirmed_on_fresh_seeds_and_a_stop_in_between_queues_the_confirmation_again(dispatcher):
    store = dispatcher.store
    spec = new_study(store.home, trials=2, seeds=1, budget=60_000, pruner="none", confirm_trials=2, confirm_seeds=2)
    study = storage.load_optuna_study(storage.study_dir(store.home, spec.study_id))
    for params in (GOOD, ONE_STATE):
        study.enqueue_trial(params)
    with StudyController.open(store, spec.study_id) as controller:
        deadline = time.monotonic() + 90
        while not controller.confirming:
            assert time.monotonic() < deadline, "the confirmation did not start"
            dispatcher.pump()
            controller.pump()
            time.sleep(0.05)
        assert controller.summary()["confirming"] and controller.summary()["best"]["confirmation"] is None
        controller.stop()  # the confirmation's runs are cancelled; the study is not completed
    first = [run for run in store.list_runs(tag=spec.tag) if "confirm:0" in run["tags"]]
    assert first and all(run["status"] == "cancelled" for run in first)
    assert storage.load_spec(store.home, spec.study_id).status == "stopped"

    with StudyController.open(store, spec.study_id) as resumed:
        drive(dispatcher, resumed)
        summary = resumed.summary()
    assert storage.load_spec(store.home, spec.study_id).status == "completed"
    best = summary["best"]
    assert best["params"] == GOOD and best["confirmation"]["seeds"] == [1, 2] and best["confirmation"]["held"] == 2
    confirmations = resumed.study.user_attrs[CONFIRMATIONS]
    assert confirmations[str(best["trial"])]["run_ids"] == best["confirmation"]["run_ids"]
    assert max(confirmations.values(), key=lambda entry: entry["held"]) is confirmations[str(best["trial"])]
    for number, entry in confirmations.items():
        runs = [store.get_run(run_id) for run_id in entry["run_ids"]]
        assert [run["seed"] for run in runs] == [1, 2] and all(run["status"] == "completed" for run in runs)
        assert all(sorted(run["tags"]) == sorted([spec.tag, f"confirm:{number}"]) for run in runs)
    assert {entry["held"] for entry in confirmations.values()} == {0, 2}  # the one-state table never solves


def test_the_confirmed_best_is_the_candidate_that_held_on_the_most_fresh_seeds_then_the_best_over_all_seeds(tmp_path):
    spec = dataclasses.replace(new_study(tmp_path, trials=3, seeds=3), confirm_trials=2, confirm_seeds=5)
    study = optuna.create_study(direction="minimize")
    distributions = {"gamma": FloatDistribution(0.9, 1.0)}
    for value, gamma in ((1000.0, 0.91), (2000.0, 0.92), (500.0, 0.93)):  # trial 2 is the best before confirmation
        study.add_trial(create_trial(value=value, params={"gamma": gamma}, distributions=distributions,
                                     user_attrs={"run_values": [value] * 3}))
    assert confirmed_best(spec, study) is None  # no confirmation yet: the summary names the best trial as it is
    study.set_user_attr(CONFIRMATIONS, {
        "2": {"run_ids": list("abcde"), "run_values": [400.0, 400.0, 400.0, 2e6, 2e6], "held": 3},
        "0": {"run_ids": list("fghij"), "run_values": [1200.0] * 5, "held": 5},
    })
    best, confirmation = confirmed_best(spec, study)
    assert best.number == 0 and confirmation["held"] == 5 and confirmation["seeds"] == [3, 4, 5, 6, 7]
    assert confirmation["objective"] == pytest.approx(1150.0)  # IQM of 1000 × 3, 1200 × 5: mean of 1000, 1200 × 3

    study.set_user_attr(CONFIRMATIONS, {**study.user_attrs[CONFIRMATIONS],
                                        "2": {"run_ids": list("abcde"), "run_values": [600.0] * 5, "held": 5}})
    assert confirmed_best(spec, study)[0].number == 2  # both held on every fresh seed: the better over all seeds


def test_a_stop_cancels_the_trials_in_flight_and_a_resume_runs_their_configurations_again(dispatcher):
    store = dispatcher.store
    spec = new_study(store.home, trials=2, seeds=1, budget=20_000_000, stop_on_solve=False, pruner="none")
    folder = storage.study_dir(store.home, spec.study_id)
    storage.load_optuna_study(folder).enqueue_trial(GOOD)
    with StudyController.open(store, spec.study_id) as controller:
        deadline = time.monotonic() + 60
        run = None
        while run is None or run["episodes"] == 0:
            assert time.monotonic() < deadline, "the trial's run did not start"
            dispatcher.pump()
            controller.pump()
            run = store.list_runs(tag=spec.tag)[0] if store.list_runs(tag=spec.tag) else None
            time.sleep(0.05)
        storage.request_stop(folder)  # as `study stop` asks the controller driving the study
        drive(dispatcher, controller)
        assert controller.stopped

    stopped = store.get_run(run["id"])
    assert stopped["status"] == "cancelled" and store.episodes(run["id"])
    assert storage.load_spec(store.home, spec.study_id).status == "stopped"
    trials = storage.load_optuna_study(folder).get_trials()
    assert [trial.state for trial in trials] == [TrialState.FAIL, TrialState.WAITING]
    assert trials[0].user_attrs[INTERRUPTED] == "the study was stopped"

    with StudyController.open(store, spec.study_id) as resumed:
        assert resumed.spec.status == "running"
        resumed.pump()  # asks the waiting trial and queues its run
        again = resumed.study.get_trials()[1]
        assert again.state == TrialState.RUNNING and again.params == trials[0].params
        resumed.stop()  # still queued: cancelled at once, nothing trains
    assert store.get_run(again.user_attrs["run_ids"][0])["status"] == "cancelled"
    assert sum(INTERRUPTED not in trial.user_attrs for trial in storage.load_optuna_study(folder).trials
               if trial.state.is_finished()) == 0  # interrupted trials do not count toward the study's trials


def test_a_running_trial_without_runs_is_interrupted_on_resume_and_its_configuration_enqueued(tmp_path):
    spec = new_study(tmp_path, trials=1, seeds=1)
    folder = storage.study_dir(tmp_path, spec.study_id)
    study = storage.load_optuna_study(folder)
    distributions = {dim.field: space.distribution(dim) for dim in spec.dimensions}
    lost = study.ask(distributions)  # and the controller died before queuing its runs
    store = RunStore(tmp_path)
    try:
        with StudyController.open(store, spec.study_id) as controller:
            trials = controller.study.get_trials()
            assert trials[0].state == TrialState.FAIL and INTERRUPTED in trials[0].user_attrs
            assert trials[1].state == TrialState.WAITING and controller.in_flight == []
    finally:
        store.close()
    assert storage.load_optuna_study(folder).ask(distributions).params == lost.params  # the next trial asked


# ------------------------------------------------------------------------------------------- spec and lease


def test_the_spec_round_trips_and_a_damaged_or_foreign_spec_is_a_study_error_naming_the_file(tmp_path):
    spec = new_study(tmp_path, trials=4, seeds=2)
    assert storage.load_spec(tmp_path, spec.study_id) == spec
    assert storage.list_studies(tmp_path) == ([spec], [])
    path = storage.study_dir(tmp_path, spec.study_id) / storage.SPEC_FILE
    good = json.loads(path.read_text())
    for text in ("{not json", json.dumps({"runs": []}), json.dumps({**good, "trials": 0}),
                 json.dumps({**good, "base_config": {"algo": "qlearning", "gamma": 7}}),
                 json.dumps({**good, "study_id": "study-other"})):
        path.write_text(text)
        with pytest.raises(StudyError) as caught:
            storage.load_spec(tmp_path, spec.study_id)
        assert caught.value.kind == "damaged" and str(path) in str(caught.value)
    specs, problems = storage.list_studies(tmp_path)
    assert specs == [] and len(problems) == 1
    with pytest.raises(StudyError, match="no study") as caught:
        storage.load_spec(tmp_path, "../../etc")
    assert caught.value.kind == "missing"


def test_one_controller_at_a_time_and_a_dead_or_silent_ones_lease_is_taken_over(tmp_path):
    held = Lease.acquire(tmp_path)
    with pytest.raises(StudyError, match=r"driven by another controller \(pid \d+") as caught:
        Lease.acquire(tmp_path)
    assert caught.value.kind == "busy"

    exited = subprocess.Popen([sys.executable, "-c", "pass"])
    exited.wait()
    record = json.loads((tmp_path / storage.LEASE_FILE).read_text())
    (tmp_path / storage.LEASE_FILE).write_text(json.dumps({**record, "pid": exited.pid}))  # its process died
    taker = Lease.acquire(tmp_path)
    with pytest.raises(StudyError, match="taken over"):
        held.renew(force=True)  # the first controller learns it at its next renewal, and stops

    elsewhere = {**record, "host": "another-host#0", "pid": 1}
    (tmp_path / storage.LEASE_FILE).write_text(json.dumps({**elsewhere, "heartbeat_at": time.time()}))
    with pytest.raises(StudyError, match="another-host"):
        Lease.acquire(tmp_path)
    silent_s = storage.LEASE_STALE_AFTER_S + 1
    (tmp_path / storage.LEASE_FILE).write_text(json.dumps({**elsewhere, "heartbeat_at": time.time() - silent_s}))
    last = Lease.acquire(tmp_path)
    taker.release()  # not its lease any more: left alone
    assert storage.read_lease(tmp_path)["token"] == last.token
    last.release()
    assert storage.read_lease(tmp_path) is None


def test_a_torn_last_journal_line_and_a_dead_writers_lock_are_cleared_before_appending(tmp_path):
    spec = new_study(tmp_path, trials=1, seeds=1)
    folder = storage.study_dir(tmp_path, spec.study_id)
    journal = folder / storage.JOURNAL_FILE
    whole = journal.read_bytes()
    journal.write_bytes(whole + b'{"op_code": 4, "worker')  # a crash in the middle of a write
    (folder / f"{storage.JOURNAL_FILE}.lock").symlink_to(journal)  # Optuna's lock, held by the dead writer
    storage.repair_journal(folder)
    assert journal.read_bytes() == whole and not (folder / f"{storage.JOURNAL_FILE}.lock").exists()
    storage.load_optuna_study(folder).enqueue_trial(GOOD)  # an append that reads back
    distributions = {dim.field: space.distribution(dim) for dim in spec.dimensions}
    assert storage.load_optuna_study(folder).ask(distributions).params == GOOD


def test_the_dashboards_study_runner_takes_up_a_study_left_running_and_drives_it_to_the_end(tmp_path):
    """A server restart: a study whose controller died (its lease's pid is gone) is "running" with a trial in the
    journal; the next server's StudyDriver opens it and, with its Scheduler training the runs, completes it."""
    from cartpole_core.jobs.scheduler import Scheduler
    from cartpole_core.studies.driver import StudyDriver

    spec = new_study(tmp_path, trials=3, seeds=1, budget=20_000)
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    folder = storage.study_dir(tmp_path, spec.study_id)
    with StudyController.open(RunStore(tmp_path), spec.study_id) as controller:
        controller.pump()  # asks trial 0 and queues its run, then "dies"
    (folder / storage.LEASE_FILE).write_text(json.dumps(
        {"pid": int(dead.stdout), "host": storage.host_id(), "heartbeat_at": time.time(), "token": "dead"}))
    threads = [Scheduler(tmp_path, max_workers=2), StudyDriver(tmp_path, interval_s=0.1)]
    for thread in threads:
        thread.start()
    try:
        deadline = time.monotonic() + 90
        while storage.load_spec(tmp_path, spec.study_id).status != "completed":
            assert time.monotonic() < deadline, "the study runner did not complete the study"
            assert not threads[1].errors, threads[1].errors
            time.sleep(0.2)
    finally:
        for thread in threads:
            thread.stop()
        for thread in threads:
            thread.join(timeout=10)
    trials = storage.load_optuna_study(folder).get_trials()
    assert sorted(trial.number for trial in trials) == [0, 1, 2]
    assert all(trial.state.is_finished() and INTERRUPTED not in trial.user_attrs for trial in trials)
    runs = RunStore(tmp_path).list_runs(tag=spec.tag)
    assert len(runs) == 3 and {run["status"] for run in runs} <= {"completed", "cancelled"}  # pruned ones cancelled
