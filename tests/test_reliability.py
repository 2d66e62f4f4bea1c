"""Reliability: light imports, dead runs noticed by any lab process, heartbeats of healthy runs."""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from cartpole_core.config.presets import preset_config
from cartpole_core.jobs.dispatch import Dispatcher
from cartpole_core.jobs.execution import HEARTBEAT_INTERVAL_S, SinkWriter
from cartpole_core.jobs.sink import StoreSink
from cartpole_core.runs.store import STALE_AFTER_S, RunStore, host_id

REPO = Path(__file__).resolve().parent.parent
HEAVY = ("torch", "gymnasium", "sklearn", "ray")  # ray: only when runs train on a Ray cluster


def test_the_package_store_jobs_and_configs_import_without_torch_gymnasium_sklearn_or_ray():
    code = ("import json, sys\n"
            "import cartpole_core, cartpole_core.runs.store, cartpole_core.jobs.queue, cartpole_core.config.models\n"
            "import cartpole_core.engine.observers, cartpole_core.jobs.dispatch, cartpole_core.jobs.scheduler\n"
            "import cartpole_core.jobs.execution, cartpole_core.jobs.sink\n"  # a driver that only dispatches and stores
            "import cartpole_core.jobs.ray_executor, cartpole_core.cli\n"  # Ray: imported once a cluster is chosen
            "import cartpole_core.studies.storage, cartpole_core.studies.controller\n"  # a study's controller too
            "from cartpole_core import RunResult, TrainConfig\n"  # lazy exports that stay light
            f"print(json.dumps(sorted(m for m in {HEAVY!r} if m in sys.modules)))\n")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, cwd=REPO)
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout.strip().splitlines()[-1]) == []


def test_lazy_exports_still_give_every_name():
    import cartpole_core
    from cartpole_core.records import RunResult
    from cartpole_core.records import RunResult as FromTraining

    assert FromTraining is RunResult is cartpole_core.RunResult  # re-exported where it used to live
    for name in cartpole_core.__all__:
        assert getattr(cartpole_core, name) is not None
    assert set(cartpole_core.__all__) <= set(dir(cartpole_core))


def test_a_cli_run_killed_with_kill_9_is_interrupted_within_5_s_by_the_dashboards_scheduler(tmp_path):
    home = tmp_path / "home"
    dispatcher = Dispatcher.local(home, max_workers=1)  # the dashboard's scheduler, up before the run starts
    with (tmp_path / "stderr.txt").open("w") as stderr:
        cli = subprocess.Popen([sys.executable, "-m", "cartpole_core", "train", "--algo", "qlearning",
                                "--preset", "seed", "--set", "total_env_steps=10000000", "--set", "max_episodes=null",
                                "--set", "n_envs=1", "--json", "--home", str(home)],
                               cwd=REPO, stdout=subprocess.DEVNULL, stderr=stderr)
    try:
        deadline = time.monotonic() + 120
        run = None
        while time.monotonic() < deadline and cli.poll() is None:
            runs = dispatcher.store.list_runs(status="running")
            if runs and dispatcher.store.get_run(runs[0]["id"])["episodes"] > 0:
                run = runs[0]
                break
            time.sleep(0.1)
        assert run is not None, (tmp_path / "stderr.txt").read_text()
        assert run["pid"] == cli.pid
        for _ in range(5):  # a healthy run is left alone
            dispatcher.pump()
            time.sleep(0.2)
        assert dispatcher.store.get_run(run["id"])["status"] == "running"
        os.kill(cli.pid, signal.SIGKILL)
        killed = time.monotonic()
        cli.wait(timeout=10)  # as its shell would
        kept = len(dispatcher.store.episodes(run["id"]))
        while dispatcher.store.get_run(run["id"])["status"] == "running" and time.monotonic() - killed < 10:
            dispatcher.pump()  # the scheduler's round, every 0.2 s
            time.sleep(0.2)
        noticed = time.monotonic() - killed
    finally:
        if cli.poll() is None:
            cli.kill()
            cli.wait()
    stored = dispatcher.store.get_run(run["id"])
    print(f"RELIABILITY kill -9 of a CLI run → interrupted in {noticed:.3f} s, {kept} episodes kept")
    assert stored["status"] == "interrupted" and noticed < 5, (stored["status"], noticed)
    assert "stopped unexpectedly" in stored["error"] and "killed" in stored["error"]
    assert len(dispatcher.store.episodes(run["id"])) == kept == stored["episodes"] > 0  # history kept


def running_run(store: RunStore, run_id: str, *, pid: int, host: str, heartbeat_age_s: float) -> None:
    store.create_run(run_id, preset_config("qlearning", "fast").to_json(), "qlearning", 0)
    with store.transaction() as conn:
        conn.execute("UPDATE runs SET status = 'running', pid = ?, host = ?, started_at = ?, heartbeat_at = ?"
                     " WHERE id = ?", (pid, host, time.time() - 100, time.time() - heartbeat_age_s, run_id))


def test_a_run_of_another_host_is_judged_by_its_heartbeat_and_a_local_live_one_never(tmp_path):
    store = RunStore(tmp_path)
    running_run(store, "remote-silent", pid=os.getpid(), host="elsewhere#00000000",
                heartbeat_age_s=STALE_AFTER_S + 30)
    running_run(store, "remote-beating", pid=os.getpid(), host="elsewhere#00000000", heartbeat_age_s=2)
    running_run(store, "local-quiet", pid=os.getpid(), host=host_id(), heartbeat_age_s=STALE_AFTER_S * 10)
    assert RunStore(tmp_path).get_run("remote-silent")["status"] == "interrupted"  # any store open
    assert store.mark_interrupted() == 0
    silent = store.get_run("remote-silent")
    assert silent["error"].startswith("no heartbeat for ") and "stopped unexpectedly" in silent["error"]
    assert {store.get_run(run_id)["status"] for run_id in ("remote-beating", "local-quiet")} == {"running"}


def test_a_worker_heartbeats_between_flushes_even_without_events(tmp_path, monkeypatch):
    store = RunStore(tmp_path)
    running_run(store, "r", pid=os.getpid(), host=host_id(), heartbeat_age_s=60)
    beats = []
    real = store.heartbeat
    monkeypatch.setattr(store, "heartbeat", lambda run_id: (beats.append(time.monotonic()), real(run_id)))
    writer = SinkWriter(StoreSink(store, "r"))
    started = time.monotonic()
    while time.monotonic() - started < 2.2:  # a long update: the loop only asks whether to stop
        assert not writer.should_stop()
        time.sleep(0.01)
    assert 2 <= len(beats) <= 4  # about one a second: fresh, and not a write per check
    assert time.time() - store.get_run("r")["heartbeat_at"] < HEARTBEAT_INTERVAL_S + 0.5
