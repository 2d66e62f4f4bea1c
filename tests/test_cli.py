"""The command line as a user runs it: real subprocesses, a temporary data home."""

import json
import os
import subprocess
import sys
from pathlib import Path

import gymnasium as gym
import pytest

from cartpole_core import load_agent
from cartpole_core.cli import parse_value

REQUIRED_KEYS = {"run_id", "algo", "seed", "status", "env_steps", "episodes", "train_seconds", "solved",
                 "time_to_solve_s", "steps_to_solve", "final_eval_mean", "checkpoint"}


def run_cli(*args: str, home: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "CARTPOLE_LAB_HOME": str(home)}
    return subprocess.run([sys.executable, "-m", "cartpole_core", *args], capture_output=True, text=True,
                          env=env, timeout=300, cwd=Path(__file__).parent.parent)


@pytest.mark.parametrize(("args", "named"), [
    (["train", "--algo", "qlearning", "--set", "gamma=2"], "gamma (2)"),
    (["train", "--algo", "dqn", "--preset", "seed", "--set", "batch_size=512", "--set", "buffer_size=256"],
     "batch_size (512)"),
    (["train", "--algo", "ppo", "--preset", "seed", "--set", "no_such_field=1"], "no_such_field"),
    (["train", "--algo", "qlearning", "--set", "epsilon.start=1.5"], "epsilon.start (1.5)"),
    (["train", "--algo", "qlearning", "--preset", "nope"], "preset 'nope'"),
    (["train", "--algo", "sarsa"], "invalid choice: 'sarsa'"),
    (["train", "--algo", "qlearning", "--set", "gamma"], "field=value"),
    (["train", "--algo", "qlearning", "--seed", "-1"], "--seed (-1)"),
    (["train", "--algo", "qlearning", "--seed", "abc"], "--seed"),
])
def test_bad_input_exits_2_with_one_line_and_writes_nothing(tmp_path, args, named):
    home = tmp_path / "home"
    result = run_cli(*args, home=home)
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ")
    assert named in lines[0]
    assert result.stdout == ""
    assert not home.exists()


def test_unwritable_home_is_bad_input(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("not a directory")
    result = run_cli("train", "--algo", "qlearning", home=blocker / "home")
    assert result.returncode == 2
    assert str(blocker / "home") in result.stderr


def test_train_json_prints_result_line_and_checkpoint_loads(tmp_path):
    result = run_cli("train", "--algo", "qlearning", "--preset", "fast", "--seed", "3", "--json",
                     "--set", "total_env_steps=20000", "--set", "stop_on_solve=false", home=tmp_path)
    assert result.returncode == 0, result.stderr
    summary = json.loads(result.stdout.strip().splitlines()[-1])
    assert set(summary) >= REQUIRED_KEYS
    assert summary["algo"] == "qlearning" and summary["seed"] == 3 and summary["status"] == "completed"
    assert summary["env_steps"] >= 20000
    checkpoint = Path(summary["checkpoint"])
    assert checkpoint.is_relative_to(tmp_path / "runs")
    agent = load_agent(checkpoint)
    obs, _ = gym.make("CartPole-v1").reset(seed=0)
    assert agent.act(obs) in (0, 1)
    assert agent.config.total_env_steps == 20000


def test_train_without_json_shows_progress_and_summary(tmp_path):
    result = run_cli("train", "--algo", "qlearning", "--set", "total_env_steps=5000", home=tmp_path)
    assert result.returncode == 0, result.stderr
    assert "step" in result.stderr  # the progress bar
    assert "checkpoint:" in result.stdout and "final evaluation" in result.stdout


@pytest.mark.parametrize(("text", "value"), [
    ("0.5", 0.5), ("3e-4", 3e-4), ("true", True), ("none", None), ("relu", "relu"), ("64,64", [64, 64]),
    ("[32, 16]", [32, 16]),
])
def test_set_values_parse_like_a_user_means_them(text, value):
    assert parse_value(text) == value


def test_cli_runs_are_recorded_listed_exported_imported_and_deleted(tmp_path):
    trained = run_cli("train", "--algo", "qlearning", "--json", "--tag", "demo", "--name", "first try", home=tmp_path)
    run_id = json.loads(trained.stdout.splitlines()[-1])["run_id"]

    listed = json.loads(run_cli("runs", "list", "--json", home=tmp_path).stdout)
    assert [(r["id"], r["name"], r["status"], r["tags"]) for r in listed] == [(run_id, "first try", "completed",
                                                                               ["demo"])]
    shown = json.loads(run_cli("runs", "show", run_id, "--json", home=tmp_path).stdout)
    assert shown["evaluations"] and shown["episodes"] > 0

    archive = tmp_path / "export.zip"
    assert run_cli("runs", "export", run_id, "--out", str(archive), home=tmp_path).returncode == 0
    other_home = tmp_path / "other"
    imported = json.loads(run_cli("runs", "import", str(archive), "--json", home=other_home).stdout)["imported"]
    assert imported == [run_id]
    assert json.loads(run_cli("runs", "show", run_id, "--json", home=other_home).stdout)["episodes"] == \
        shown["episodes"]

    assert run_cli("runs", "delete", run_id, home=tmp_path).returncode == 0
    assert json.loads(run_cli("runs", "list", "--json", home=tmp_path).stdout) == []
    assert not (tmp_path / "runs" / run_id).exists()


@pytest.mark.parametrize("args", [["runs", "show", "nope"], ["runs", "cancel", "nope"], ["runs", "delete", "nope"],
                                  ["runs", "import", "missing.zip"], ["runs", "list", "--status", "sleeping"]])
def test_runs_commands_on_bad_input_exit_2(tmp_path, args):
    result = run_cli(*args, home=tmp_path)
    assert result.returncode == 2
    assert len(result.stderr.strip().splitlines()) == 1
