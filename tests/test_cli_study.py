"""``python -m cartpole_core study …`` as a user runs it: a study killed with kill -9 and resumed, bad input, damaged
study files."""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import gymnasium as gym
import pytest
from optuna.trial import TrialState

from cartpole_core import load_agent
from cartpole_core.cli import main
from cartpole_core.runs.store import RunStore
from cartpole_core.studies import storage
from cartpole_core.studies.controller import INTERRUPTED

REPO = Path(__file__).resolve().parent.parent
SUMMARY_KEYS = {"study_id", "algo", "status", "trials", "trials_completed", "trials_pruned", "best"}


def run_cli(*args: str, home: Path) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "cartpole_core", *args, "--home", str(home)], capture_output=True,
                          text=True, timeout=240, cwd=REPO)


def trials_so_far(home: Path) -> tuple[Path | None, list]:
    """The study folder in ``home`` and its trials so far, read as another process reads them."""
    journals = list(storage.studies_dir(home).glob(f"*/{storage.JOURNAL_FILE}"))
    try:
        return journals[0].parent, storage.load_optuna_study(journals[0].parent).trials
    except (IndexError, storage.StudyError):  # the study is being created
        return None, []


def killable(trials: list) -> bool:
    """Two trials told and one with queued runs: the resumed controller has both kinds to take over."""
    told = [trial for trial in trials if trial.state.is_finished()]
    return len(told) >= 2 and any(trial.state == TrialState.RUNNING and "run_ids" in trial.user_attrs
                                  for trial in trials)


def test_a_study_killed_with_kill_9_and_resumed_has_exactly_its_trials_and_a_best_checkpoint_that_loads(tmp_path):
    home = tmp_path / "home"
    with (tmp_path / "stderr.txt").open("w") as stderr:
        cli = subprocess.Popen([sys.executable, "-m", "cartpole_core", "study", "run", "--algo", "qlearning",
                                "--vary", "gamma=0.9:1", "--vary", "learning_rate.start=0.1:1:log",
                                "--set", "total_env_steps=40000", "--trials", "6", "--seeds", "2", "--parallel", "2",
                                "--confirm-trials", "0", "--json", "--home", str(home)],
                               cwd=REPO, stdout=subprocess.DEVNULL, stderr=stderr)
    try:
        deadline = time.monotonic() + 120
        folder, trials = trials_so_far(home)
        while not killable(trials):
            assert cli.poll() is None and time.monotonic() < deadline, (tmp_path / "stderr.txt").read_text()
            time.sleep(0.1)
            folder, trials = trials_so_far(home)
    finally:
        os.kill(cli.pid, signal.SIGKILL)  # its workers live on, orphaned, and finish their runs into the store
        cli.wait()
    study_id = folder.name

    shown = run_cli("study", "show", study_id, "--json", home=home)
    assert shown.returncode == 0, shown.stderr
    before = json.loads(shown.stdout.strip().splitlines()[-1])
    assert before["status"] == "interrupted" and 2 <= before["trials"] < 6

    resumed = run_cli("study", "resume", study_id, "--json", home=home)
    assert resumed.returncode == 0, resumed.stderr
    summary = json.loads(resumed.stdout.strip().splitlines()[-1])
    assert set(summary) >= SUMMARY_KEYS
    assert summary["study_id"] == study_id and summary["algo"] == "qlearning" and summary["status"] == "completed"
    assert summary["trials"] == 6 and summary["trials_completed"] + summary["trials_pruned"] <= 6

    trials = storage.load_optuna_study(folder).trials
    assert all(trial.state.is_finished() for trial in trials)  # none left running
    counted = [trial for trial in trials if INTERRUPTED not in trial.user_attrs]
    assert len(counted) == 6
    store = RunStore(home)
    try:
        runs = store.list_runs(tag=f"study:{study_id}")
        trial_runs = {trial.number: trial.user_attrs["run_ids"] for trial in trials if "run_ids" in trial.user_attrs}
        assert sorted(run["id"] for run in runs) == sorted(sum(trial_runs.values(), []))  # each run in one trial
        for number, run_ids in trial_runs.items():
            assert sorted(store.get_run(run_id)["seed"] for run_id in run_ids) == [0, 1]
            assert all(f"trial:{number}" in store.get_run(run_id)["tags"] for run_id in run_ids)
    finally:
        store.close()

    best = summary["best"]
    assert best["trial"] in {trial.number for trial in counted if trial.state == TrialState.COMPLETE}
    assert set(best["params"]) == {"gamma", "learning_rate.start"} and best["run_ids"] == trial_runs[best["trial"]]
    assert best["objective"] == storage.load_optuna_study(folder).best_value
    checkpoint = Path(best["checkpoint"])
    assert checkpoint.is_relative_to(home / "runs") and checkpoint.parent.name in best["run_ids"]
    obs, _ = gym.make("CartPole-v1").reset(seed=0)
    assert load_agent(checkpoint).act(obs) in (0, 1)


def run_main(capsys, *args: str) -> tuple[int, str, str]:
    code = main(list(args))
    captured = capsys.readouterr()
    return code, captured.out, captured.err


@pytest.mark.parametrize(("args", "named"), [
    ([], "a study must vary at least one field"),
    (["--vary", "no_such_field=1:2"], "unknown field 'no_such_field' for qlearning"),
    (["--vary", "total_env_steps=1000:2000"], "total_env_steps is the same for every trial"),
    (["--vary", "gamma", "--confirm-trials", "11"], "--confirm-trials must be an integer from 0 to 10, got 11"),
    (["--vary", "gamma", "--confirm-seeds", "0"], "--confirm-seeds must be an integer from 1 to 16, got 0"),
    (["--vary", "gamma=0.99:0.9"], "the low end must be below the high end"),
    (["--vary", "gamma=0.9:1", "--vary", "gamma=0.95:1"], "gamma is varied twice"),
    (["--vary", "gamma=0.9:1", "--trials", "0"], "--trials must be an integer from 1 to 1,000, got 0"),
    (["--vary", "gamma=0.9:1", "--seeds", "17"], "--seeds must be an integer from 1 to 16, got 17"),
    (["--vary", "gamma=0.9:1", "--seeds", "2", "--seed", "2147483647"], "the seed must be at most 2,147,483,646"),
    (["--vary", "gamma=0.9:1", "--parallel", "0"], "--parallel must be an integer from 1"),
    (["--vary", "gamma=0.9:1", "--preset", "nope"], "preset 'nope' is unknown for qlearning"),
    (["--vary", "gamma=0.9:1", "--set", "gamma=2"], "gamma (2)"),
    (["--sampler", "grid", "--vary", "bins", "--vary", "gamma", "--vary", "learning_rate.start", "--vary",
      "learning_rate.end", "--vary", "epsilon.start"], "324 configurations; at most 256 are allowed"),
])
def test_bad_study_input_exits_2_with_one_line_and_creates_nothing(tmp_path, capsys, args, named):
    home = tmp_path / "home"
    code, out, err = run_main(capsys, "study", "run", "--algo", "qlearning", *args, "--home", str(home))
    assert code == 2 and out == ""
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and named in lines[0], err
    assert not home.exists()


def test_an_unknown_algorithm_or_study_id_is_bad_input(tmp_path):
    result = run_cli("study", "run", "--algo", "sarsa", "--vary", "gamma", home=tmp_path / "home")
    assert result.returncode == 2 and "invalid choice: 'sarsa'" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1 and not (tmp_path / "home").exists()
    for command in ("show", "resume", "stop", "delete"):
        result = run_cli("study", command, "study-nope", home=tmp_path)
        assert result.returncode == 2 and result.stderr.startswith("error: no study 'study-nope'"), result.stderr


def test_a_damaged_spec_is_one_line_exit_1_and_listing_warns_and_goes_on(tmp_path, capsys):
    folder = storage.studies_dir(tmp_path) / "study-qlearning-20260101-000000-abcdef"
    folder.mkdir(parents=True)
    (folder / storage.SPEC_FILE).write_text('{"format": "cartpole-lab study", "version": 1, "trials": ')
    code, out, err = run_main(capsys, "study", "show", folder.name, "--home", str(tmp_path))
    assert code == 1 and out == "" and len(err.strip().splitlines()) == 1
    assert str(folder / storage.SPEC_FILE) in err and "damaged" in err and f"study delete {folder.name}" in err
    code, out, err = run_main(capsys, "study", "list", "--json", "--home", str(tmp_path))
    assert code == 0 and json.loads(out) == [] and err.startswith("warning: ") and folder.name in err
    code, out, err = run_main(capsys, "study", "delete", folder.name, "--home", str(tmp_path))
    assert code == 0 and not folder.exists()
