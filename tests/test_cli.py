"""The command line as a user runs it: real subprocesses, a temporary data home."""

import contextlib
import gc
import io
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import gymnasium as gym
import pytest
from store_support import damage

from cartpole_core import load_agent
from cartpole_core.cli import BadInput, main, parse_value
from cartpole_core.config.models import ConfigError, config_from_dict
from cartpole_core.config.presets import preset_config
from cartpole_core.records import EpisodeEnded
from cartpole_core.runs.presets import load_preset_config, save_preset
from cartpole_core.runs.store import RunStore

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
    (["train", "--algo", "qlearning", "--seed", "-1"], "--seed must be an integer from 0 to 2,147,483,647, got -1"),
    (["train", "--algo", "qlearning", "--set", "gamma=" + "9" * 5000], "--set gamma: a number of 5,000 digits"),
    (["train", "--algo", "dqn", "--set", "hidden_sizes=" + "[" * 3000 + "]" * 3000], "--set hidden_sizes"),
    (["train", "--algo", "qlearning", "--seed", str(2**63)], "--seed must be an integer from 0 to 2,147,483,647"),
    (["train", "--algo", "qlearning", "--set", "gamma=true"], "gamma (True) is not allowed: must be a number"),
    (["train", "--algo", "qlearning", "--seed", "abc"], "--seed"),
    (["train", "--algo", "ppo", "--seeds", "3-1"], "--seeds takes seeds and ranges like 0-7 or 0,3,5"),
    (["train", "--algo", "ppo", "--seeds", "0-16"], "at most 16, none twice), got '0-16'"),
    (["train", "--algo", "ppo", "--seeds", "1,2,1"], "none twice), got '1,2,1'"),
    (["train", "--algo", "ppo", "--seeds", "x"], "--seeds takes seeds"),
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


def test_train_seeds_trains_a_group_and_prints_a_line_per_run_in_seed_order_like_a_single_runs(tmp_path):
    single = run_cli("train", "--algo", "ppo", "--seed", "5", "--json", "--set", "total_env_steps=1024", home=tmp_path)
    group = run_cli("train", "--algo", "ppo", "--seeds", "2,0-1", "--json", "--set", "total_env_steps=1024",
                    home=tmp_path)
    assert single.returncode == 0 == group.returncode, group.stderr
    lines = [json.loads(line) for line in group.stdout.strip().splitlines()]
    assert [line["seed"] for line in lines] == [2, 0, 1]
    assert all(set(line) == set(json.loads(single.stdout)) for line in lines)  # the same fields as one run's
    assert all(line["status"] == "completed" and line["env_steps"] >= 1024 for line in lines)
    assert all(load_agent(line["checkpoint"]).config.total_env_steps == 1024 for line in lines)
    assert len({line["run_id"] for line in lines}) == 3


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


# ------------------------------------------------------------------------------ in-process: each reviewed case


def cli(*args: str, home: Path) -> tuple[int, str, str]:
    """``main`` in this process (fast): exit code, stdout, stderr. Anything main raises fails the test."""
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            code = main([*args, "--home", str(home)])
        except SystemExit as exit_:  # --help only
            code = exit_.code
    return code, out.getvalue(), err.getvalue()


def assert_one_error_line(err: str, *named: str) -> str:
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), err
    assert "Traceback" not in err
    for text in named:
        assert text in lines[0], (text, lines[0])
    return lines[0]


BIG = "9" * 5000


@pytest.mark.parametrize(("args", "named"), [
    (["train", "--algo", "qlearning", "--set", f"gamma={BIG}"], ["--set gamma", "5,000 digits", "≤ 1"]),
    (["train", "--algo", "ppo", "--set", f"hidden_sizes=[{BIG}]"], ["--set hidden_sizes", "5,000 digits"]),
    (["train", "--algo", "ppo", "--set", f"hidden_sizes=64,{BIG}"], ["--set hidden_sizes", "5,000 digits"]),
    (["train", "--algo", "qlearning", "--set", f"total_env_steps=-{BIG}"], ["--set total_env_steps"]),
    (["train", "--algo", "dqn", "--set", "hidden_sizes=" + "[" * 3000 + "]" * 3000], ["--set hidden_sizes",
                                                                                      "nested"]),
    (["train", "--algo", "dqn", "--set", "epsilon=" + '{"start": ' * 50 + "1" + "}" * 50], ["--set epsilon"]),
    (["train", "--algo", "qlearning", "--set", "gamma=true"], ["gamma (True)", "true/false is not a number"]),
    (["train", "--algo", "qlearning", "--set", "gamma=false"], ["gamma (False)", "≥ 0 and ≤ 1"]),
    (["train", "--algo", "dqn", "--set", "hidden_sizes=true,64"], ["hidden_sizes ([True, 64])",
                                                                   "a list of integers"]),
    (["train", "--algo", "qlearning", "--set", "total_env_steps=true"], ["total_env_steps (True)"]),
    (["train", "--algo", "dqn", "--set", "epsilon.start=true"], ["epsilon.start (True)"]),
    (["train", "--algo", "dqn", "--set", "max_grad_norm=true"], ["max_grad_norm (True)"]),
    (["train", "--algo", "qlearning", "--seed", str(2**63)], ["--seed", "2,147,483,647"]),
    (["train", "--algo", "qlearning", "--seed", str(2**31)], ["--seed", f"got {2**31}"]),
    (["train", "--algo", "qlearning", "--seed", BIG], ["--seed", "an integer of 5,000 digits"]),
    (["train", "--algo", "qlearning", "--seed", "1.5"], ["--seed", "got '1.5'"]),
    (["train", "--algo", "qlearning", "--seed", "٣"], ["--seed"]),  # a digit, but not one a seed is written in
    (["train", "--algo", "qlearning", "--name", "x" * 201], ["--name", "1 to 200 characters"]),
    (["train", "--algo", "qlearning", "--name", "a\nb"], ["--name", "control characters"]),
    (["train", "--algo", "qlearning", "--name", " "], ["--name", "1 to 200"]),
    (["train", "--algo", "qlearning", "--name", "bad \udcff byte"], ["--name", "UTF-8"]),
    (["train", "--algo", "qlearning", "--tag", "t" * 51], ["--tag", "at most 50 characters"]),
    (["train", "--algo", "qlearning", *[f"--tag=t{i}" for i in range(21)]], ["--tag", "at most 20 tags"]),
    (["train", "--algo", "qlearning", "--tag", "a\tb"], ["--tag", "control characters"]),
    (["replay", "r", "--out", "OUT", "--physics", "length=1e300"], ["length", "[0.05, 5]", "1e+300"]),
    (["replay", "r", "--out", "OUT", "--physics", "force_mag=1e308"], ["force_mag", "[1, 100]"]),
    (["replay", "r", "--out", "OUT", "--physics", f"gravity={BIG}"], ["--physics gravity", "5,000 digits",
                                                                      "[0.98, 98]"]),
    (["replay", "r", "--out", "OUT", "--physics", "gravity=true"], ["gravity", "got True"]),
    (["replay", "r", "--out", "OUT", "--physics", "gravity=nan"], ["gravity"]),
    (["replay", "r", "--out", "OUT", "--physics", "wind=3"], ["unknown physics parameter 'wind'"]),
    (["replay", "r", "--out", "OUT", "--obs-noise", "inf"], ["obs_noise"]),
    (["replay", "r", "--out", "OUT", "--seed", str(2**63)], ["--seed", "2,147,483,647"]),
    (["replay", "r", "--out", "OUT", "--seed", "-1"], ["--seed", "got -1"]),
    (["replay", "r", "--out", "OUT", "--max-steps", BIG], ["--max-steps", "1 to 100,000"]),
    (["replay", "r", "--out", "OUT", "--max-steps", "0"], ["--max-steps", "got 0"]),
    (["replay", "r", "--out", "OUT"], ["no run 'r'"]),
    (["replay", "r", "--out", "x.txt"], ["--out must end in .mp4 or .gif"]),
    (["runs", "show", "bad \udcff id"], ["no run"]),
    (["runs", "cancel", "x" * 10_000], ["no run"]),
    (["runs", "export", "nope", "--out", "OUT"], ["no run 'nope'"]),
    (["runs", "import", "missing.zip"], ["missing.zip"]),
    (["runs", "salvage"], ["--to"]),
    (["fields", "--algo", "junk"], ["invalid choice: 'junk'"]),
])
def test_reviewed_bad_inputs_exit_2_with_one_line_and_write_nothing(tmp_path, args, named):
    home, out = tmp_path / "home", tmp_path / "out.gif"
    code, stdout, stderr = cli(*[str(out) if arg == "OUT" else arg for arg in args], home=home)
    assert code == 2, stderr
    assert_one_error_line(stderr, *named)
    assert stdout == ""
    assert not home.exists() and not out.exists()


def test_set_values_that_cannot_be_numbers_are_bad_input_not_crashes():
    for text in (BIG, f"[{BIG}]", "[" * 100 + "]" * 100, f"1,{BIG}"):
        with pytest.raises(BadInput):
            parse_value(text)
    assert parse_value("[[1]]") == [[1]]
    assert parse_value("1e999") == float("inf")  # a float that is too big is inf: the config refuses it by name


def test_numbers_must_be_numbers_in_every_path(tmp_path):
    """The dashboard, the CLI and import all validate through the configs: a boolean is no number anywhere."""
    for data in ({"gamma": True}, {"total_env_steps": False}, {"hidden_sizes": [64, True]},
                 {"learning_rate": {"start": True}}, {"max_grad_norm": True}):
        with pytest.raises(ConfigError) as caught:
            config_from_dict({"algo": "dqn", **data})
        field, message = caught.value.problems[0]
        assert field in message and "true/false is not a number" in message
    assert config_from_dict({"algo": "dqn", "double_dqn": True}).double_dqn is True  # booleans stay booleans


# --------------------------------------------------------------------------------- fast commands: no torch


def make_runs(home: Path, count: int = 3, episodes: int = 0) -> list[str]:
    """Runs written straight into the store (no training): the first queued, the others completed."""
    store = RunStore(home)
    ids = []
    for index in range(count):
        config = preset_config("qlearning", "fast")
        run_id = store.create_run(f"qlearning-test-{index}", config.to_json(), "qlearning", index, name=f"run {index}")
        if index:
            store.append_events(run_id, [EpisodeEnded(n, n * 20, 20.0, 20, 0.1, 0.1, n * 0.01)
                                         for n in range(1, episodes + 1)])
            store.set_status(run_id, "completed")
        ids.append(run_id)
    store.close()
    return ids


def run_without_heavy_imports(args: list[str], home: Path) -> dict:
    """The CLI in a fresh interpreter; which heavy modules it had imported when it finished."""
    code = ("import json, sys\n"
            "from cartpole_core.cli import main\n"
            f"rc = main({args!r})\n"
            "print(json.dumps({'rc': rc, 'loaded': sorted(m for m in ('torch', 'gymnasium', 'sklearn') "
            "if m in sys.modules)}))\n")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120,
                            env={**os.environ, "CARTPOLE_LAB_HOME": str(home)}, cwd=Path(__file__).parent.parent)
    assert "Traceback" not in result.stderr, result.stderr
    return json.loads(result.stdout.strip().splitlines()[-1])


def test_runs_cancel_and_other_store_commands_do_not_import_torch(tmp_path):
    queued, done, _ = make_runs(tmp_path)
    for args, code in ((["runs", "cancel", queued], 0), (["runs", "list"], 0), (["runs", "show", done, "--json"], 0),
                       (["runs", "check"], 0), (["runs", "delete", done], 0), (["runs", "show", "nope"], 2),
                       (["train", "--algo", "dqn", "--set", "gamma=2"], 2), (["fields", "--algo", "ppo"], 0)):
        report = run_without_heavy_imports(args, tmp_path)
        assert report == {"rc": code, "loaded": []}, args
    assert RunStore(tmp_path).get_run(queued)["status"] == "cancelled"


# ------------------------------------------------------------------------------------ check and salvage


def test_runs_check_says_ok_for_a_healthy_store(tmp_path):
    make_runs(tmp_path)
    code, stdout, stderr = cli("runs", "check", home=tmp_path)
    assert code == 0 and "ok" in stdout and stderr == ""
    code, stdout, _ = cli("runs", "check", "--json", home=tmp_path)
    assert code == 0 and json.loads(stdout)["ok"] is True and json.loads(stdout)["problems"] == []


STORE_COMMANDS = [["runs", "list"], ["runs", "list", "--json"], ["runs", "show", "RUN"], ["runs", "cancel", "RUN"],
                  ["runs", "delete", "DONE"], ["runs", "export", "DONE", "--out", "OUT"],
                  ["replay", "DONE", "--out", "OUT"],
                  ["train", "--algo", "qlearning", "--set", "total_env_steps=100", "--json"]]


@pytest.mark.parametrize("whole", [True, False], ids=["all-pages", "middle"])
def test_a_damaged_store_is_one_line_for_every_command_and_can_be_salvaged(tmp_path, whole):
    home = tmp_path / "home"
    queued, done, other = make_runs(home, count=3, episodes=3000)
    exported = tmp_path / "exported.zip"
    assert cli("runs", "export", done, "--out", str(exported), home=home)[0] == 0
    damage(home, whole)
    for args in [*STORE_COMMANDS, ["runs", "import", str(exported)]]:
        args = [{"RUN": queued, "DONE": done, "OUT": str(tmp_path / "out.zip")}.get(arg, arg) for arg in args]
        if args[0] == "replay":
            args[-1] = str(tmp_path / "out.gif")
        code, _, stderr = cli(*args, home=home)
        if whole or code:
            assert code in (1, 2), (args, code, stderr)
            assert_one_error_line(stderr)
    code, stdout, stderr = cli("runs", "check", home=home)
    assert code == 1 and stdout.strip() and not stdout.startswith("ok")
    assert_one_error_line(stderr, "salvage")
    code, stdout, stderr = cli("runs", "salvage", "--to", str(tmp_path / "saved"), "--json", home=home)
    assert code == 0, stderr
    counts = json.loads(stdout)["salvaged"]
    assert all(isinstance(value, int) for value in counts.values())
    assert whole or counts["runs"] >= 3, counts  # damage in the middle (metrics pages): every run is saved
    code, stdout, stderr = cli("runs", "list", "--json", home=tmp_path / "saved")
    assert code == 0, stderr
    assert cli("runs", "check", home=tmp_path / "saved")[0] == 0


def test_a_damaged_store_from_the_real_command_line_is_one_line(tmp_path):
    queued, *_ = make_runs(tmp_path, episodes=3000)
    damage(tmp_path, whole=True)
    for args in (["runs", "list"], ["runs", "cancel", queued]):
        result = run_cli(*args, home=tmp_path)
        assert result.returncode == 1
        line = assert_one_error_line(result.stderr, "lab.sqlite")
        assert "runs check" in line or "salvage" in line


def test_a_file_that_is_not_sqlite_is_one_line_for_every_command(tmp_path):
    home = tmp_path / "home"
    home.mkdir()
    (home / "lab.sqlite").write_bytes(b"these are not the pages you are looking for\n" * 500)
    for args in STORE_COMMANDS + [["runs", "check"], ["runs", "salvage", "--to", str(tmp_path / "saved")]]:
        args = [{"RUN": "r", "DONE": "r", "OUT": str(tmp_path / "out.zip")}.get(arg, arg) for arg in args]
        if args[0] == "replay":
            args[-1] = str(tmp_path / "out.gif")
        code, _, stderr = cli(*args, home=home)
        assert code in (1, 2), (args, stderr)
        assert_one_error_line(stderr, "lab.sqlite")
    assert (home / "lab.sqlite").read_bytes().startswith(b"these are not")  # left untouched


@contextlib.contextmanager
def read_only(home: Path):
    """``home`` made read-only: chmod for a normal user; for root (which chmod does not stop), a read-only bind
    mount over it — skipped where this process may not mount."""
    if os.geteuid() != 0:
        modes = {path: path.stat().st_mode for path in [home, *home.rglob("*")]}
        for path in modes:
            path.chmod(0o555 if path.is_dir() else 0o444)
        try:
            yield home
        finally:
            for path, mode in modes.items():
                path.chmod(mode)
        return
    mount = shutil.which("mount")
    if mount is None:
        pytest.skip("root ignores file modes and there is no mount command for a read-only bind")
    target = home.parent / f"{home.name}-ro"
    target.mkdir()
    bound = subprocess.run([mount, "--bind", str(home), str(target)], capture_output=True)
    if bound.returncode:
        target.rmdir()
        pytest.skip(f"root ignores file modes and this process may not bind-mount: {bound.stderr.decode().strip()}")
    try:
        if subprocess.run([mount, "-o", "remount,bind,ro", str(target)], capture_output=True).returncode:
            pytest.skip("root ignores file modes and a read-only remount is not allowed here")
        yield target
    finally:
        gc.collect()  # connections a failed open left in a reference cycle hold the mount busy
        if subprocess.run(["umount", str(target)], capture_output=True).returncode:
            subprocess.run(["umount", "-l", str(target)], capture_output=True)  # detach it anyway
        target.rmdir()


def test_a_read_only_home_reads_and_refuses_writes_in_one_line(tmp_path):
    home = tmp_path / "home"
    queued, done, _ = make_runs(home)
    with read_only(home) as frozen:
        code, stdout, stderr = cli("runs", "list", "--json", home=frozen)
        assert code == 0, stderr
        assert {run["id"] for run in json.loads(stdout)} == {queued, done, "qlearning-test-2"}
        code, stdout, stderr = cli("runs", "show", done, home=frozen)
        assert code == 0, stderr
        code, stdout, stderr = cli("runs", "check", home=frozen)
        assert code == 0 and stdout.startswith("ok"), stderr
        for args in (["runs", "cancel", queued], ["runs", "delete", done],
                     ["train", "--algo", "qlearning", "--set", "total_env_steps=100", "--json"]):
            code, _, stderr = cli(*args, home=frozen)
            assert code in (1, 2), args
            assert_one_error_line(stderr)
    assert RunStore(home).get_run(queued)["status"] == "queued"


def test_a_rejected_import_writes_nothing(tmp_path):
    bad = tmp_path / "bad.zip"
    bad.write_bytes(b"PK\x03\x04 not really")
    code, _, stderr = cli("runs", "import", str(bad), home=tmp_path / "home")
    assert code == 2
    assert_one_error_line(stderr, "bad.zip")
    assert not (tmp_path / "home").exists()


# ------------------------------------------------------------------------------------------------ user presets


def test_a_preset_saved_with_set_is_listed_as_yours_and_trains_with_its_budget(tmp_path):
    code, stdout, stderr = cli("presets", "save", "--algo", "qlearning", "--name", "short", "--set",
                               "total_env_steps=3000", "--set", "stop_on_solve=false", "--description", "3k steps",
                               home=tmp_path)
    assert code == 0, stderr
    assert "train --algo qlearning --preset short" in stdout
    code, stdout, _ = cli("presets", "--algo", "qlearning", home=tmp_path)
    lines = stdout.splitlines()
    assert [line.split()[1] for line in lines] == ["seed", "fast", "short"]  # built-ins first, then the user's
    assert lines[-1].split(None, 2)[2] == "(yours, from qlearning/fast steps=3k stop_on_solve=off) 3k steps"

    result = run_cli("train", "--algo", "qlearning", "--preset", "short", "--json", home=tmp_path)
    assert result.returncode == 0, result.stderr
    summary = json.loads(result.stdout.splitlines()[-1])
    assert set(summary) >= REQUIRED_KEYS and summary["preset"] == "short"
    assert 3000 <= summary["env_steps"] < 3100  # the preset's budget, not fast's 100k
    run = RunStore(tmp_path).get_run(summary["run_id"])
    assert run["preset"] == "short" and run["name"] == "qlearning/short · seed 0"  # nothing differs from it
    assert json.loads(run["config_json"]) == json.loads(
        preset_config("qlearning", "fast", total_env_steps=3000, stop_on_solve=False).to_json())


def test_a_preset_saved_from_a_run_holds_its_config_and_is_deleted_by_name(tmp_path):
    store = RunStore(tmp_path)
    config = preset_config("qlearning", "seed", gamma=0.97)
    run_id = store.create_run("qlearning-test-0", config.to_json(), "qlearning", 0, name="a run")
    store.close()
    code, _, stderr = cli("presets", "save", "--algo", "qlearning", "--name", "from-run", "--from-run", run_id,
                          "--set", "n_envs=4", home=tmp_path)
    assert code == 0, stderr
    assert load_preset_config(tmp_path, "qlearning", "from-run") == preset_config("qlearning", "seed", gamma=0.97,
                                                                                  n_envs=4)
    _, stdout, _ = cli("presets", "--algo", "qlearning", home=tmp_path)
    assert f"from-run          (yours, from run {run_id})" in stdout

    code, stdout, stderr = cli("presets", "delete", "--algo", "qlearning", "--name", "from-run", home=tmp_path)
    assert code == 0 and "deleted your qlearning preset 'from-run'" in stdout, stderr
    assert "from-run" not in cli("presets", home=tmp_path)[1]
    code, _, stderr = cli("train", "--algo", "qlearning", "--preset", "from-run", home=tmp_path)
    assert code == 2 and "preset 'from-run' is unknown for qlearning" in stderr


def files_in(home: Path) -> dict[str, bytes]:
    return {str(path.relative_to(home)): path.read_bytes() for path in sorted(home.rglob("*")) if path.is_file()}


@pytest.mark.parametrize(("args", "named"), [
    (["presets", "save", "--algo", "dqn", "--name", "a/b"], ["preset name 'a/b' is not allowed", "letters (a-z"]),
    (["presets", "save", "--algo", "dqn", "--name", "Fast"], ["'Fast' is the name of a built-in dqn preset"]),
    (["presets", "save", "--algo", "dqn", "--name", "taken"], ["you already have a dqn preset 'taken'", "--replace"]),
    (["presets", "save", "--algo", "dqn", "--name", "new", "--preset", "nope"],
     ["preset 'nope' is unknown for dqn; allowed: seed, fast, seed-large-batch, taken"]),
    (["presets", "save", "--algo", "dqn", "--name", "new", "--set", "gamma=2"], ["gamma (2)"]),
    (["presets", "save", "--algo", "dqn", "--name", "new", "--from-run", "nope"], ["no run 'nope'"]),
    (["presets", "save", "--algo", "dqn", "--name", "new", "--description", "d" * 301], ["at most 300 characters"]),
    (["presets", "save", "--algo", "dqn"], ["--name"]),
    (["presets", "delete", "--algo", "dqn", "--name", "fast"], ["'fast' is a built-in dqn preset"]),
    (["presets", "delete", "--algo", "dqn", "--name", "nope"], ["you have no dqn preset 'nope'; yours: taken"]),
    (["train", "--algo", "dqn", "--preset", "nope"], ["allowed: seed, fast, seed-large-batch, taken"]),
    (["study", "run", "--algo", "dqn", "--preset", "nope", "--vary", "gamma"], ["allowed: seed, fast, "
                                                                                "seed-large-batch, taken"]),
])
def test_preset_commands_on_bad_input_exit_2_with_one_line_and_write_nothing(tmp_path, args, named):
    save_preset(tmp_path, "dqn", "taken", preset_config("dqn", "fast"))
    before = files_in(tmp_path)
    code, stdout, stderr = cli(*args, home=tmp_path)
    assert code == 2, stderr
    assert_one_error_line(stderr, *named)
    assert stdout == "" and files_in(tmp_path) == before


def test_a_damaged_preset_file_is_a_warning_beside_the_listing_and_is_kept(tmp_path):
    broken = tmp_path / "presets" / "ppo" / "broken.json"
    broken.parent.mkdir(parents=True)
    broken.write_text("{not json")
    code, stdout, stderr = cli("presets", home=tmp_path)
    assert code == 0
    (warning,) = stderr.strip().splitlines()
    assert warning.startswith(f"warning: {broken} is damaged or not a preset") and "broken" not in stdout
    assert broken.read_text() == "{not json"


def test_a_study_runs_from_a_user_preset(tmp_path):
    save_preset(tmp_path, "qlearning", "short",
                preset_config("qlearning", "fast", total_env_steps=3000, stop_on_solve=False))
    result = run_cli("study", "run", "--algo", "qlearning", "--preset", "short", "--vary", "gamma=0.9:0.99",
                     "--trials", "1", "--seeds", "1", "--parallel", "1", "--confirm-trials", "0", "--json",
                     home=tmp_path)
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout.splitlines()[-1])["trials_completed"] == 1
    (run,) = RunStore(tmp_path).list_runs()
    assert run["preset"] == "short" and run["env_steps"] < 3100  # the trial trained the preset's budget
