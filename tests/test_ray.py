"""Runs on a Ray cluster (``jobs.ray_executor``), against a real cluster of two nodes on this machine started as a
user starts one (``ray start --head`` and ``ray start --address``): a PPO group, a study, the CLI's ``train`` and
the dashboard's scheduler through it, the same curve as locally, cancel, a node killed mid-run, an unreachable
cluster. The cluster (``bench.ray_scale.LoopbackCluster``) is on loopback and stopped by pid, whatever happens.
"""

import json
import os
import time
from pathlib import Path

import pytest
from app_support import app, shown

ray = pytest.importorskip("ray")

from bench.ray_scale import LoopbackCluster, free_port  # noqa: E402
from cartpole_core import load_agent  # noqa: E402
from cartpole_core.cli import main  # noqa: E402
from cartpole_core.config.presets import preset_config  # noqa: E402
from cartpole_core.jobs.dispatch import Dispatcher  # noqa: E402
from cartpole_core.jobs.execution import execute_run, execute_stored_run  # noqa: E402
from cartpole_core.jobs.queue import submit  # noqa: E402
from cartpole_core.jobs.ray_executor import RayExecutor, StreamedRun, StreamSink  # noqa: E402
from cartpole_core.jobs.scheduler import Scheduler  # noqa: E402
from cartpole_core.jobs.sink import StoreSink  # noqa: E402
from cartpole_core.runs.store import RunStore  # noqa: E402
from cartpole_core.studies.api import run_study  # noqa: E402

PPO_SHORT = preset_config("ppo", "fast", total_env_steps=4000, stop_on_solve=False)
PPO_LONG = preset_config("ppo", "fast", total_env_steps=400_000, stop_on_solve=False)  # minutes: stopped early


@pytest.fixture(scope="module")
def cluster():
    """A real Ray cluster of two one-CPU nodes; this process is its driver while the module runs. Its stop fails
    the module if any of its processes outlives it."""
    with LoopbackCluster() as loopback:
        loopback.add_node()
        loopback.add_node()
        yield loopback


@pytest.fixture(scope="module")
def ppo_group(cluster, tmp_path_factory):
    """A 4-seed PPO group trained through the Ray executor; (store, run ids)."""
    address = cluster.address
    store = RunStore(tmp_path_factory.mktemp("ppo-home"))
    dispatcher = Dispatcher(store, RayExecutor(store, address))
    _, run_ids = dispatcher.submit(PPO_SHORT, [0, 1, 2, 3])
    assert dispatcher.wait(timeout_s=120)
    dispatcher.shutdown()
    return store, run_ids


def test_a_ppo_group_on_ray_completes_every_run_with_every_episode_stored_and_checkpoints_that_load(ppo_group):
    store, run_ids = ppo_group
    for run_id in run_ids:
        run = store.get_run(run_id)
        assert run["status"] == "completed", run["error"]
        assert run["env_steps"] >= PPO_SHORT.total_env_steps and run["pid"] == os.getpid()  # the driver stored it
        episodes = store.episodes(run_id)
        assert len(episodes) == run["episodes"] > 0  # stored == trained
        assert [row["episode"] for row in episodes] == list(range(1, run["episodes"] + 1))  # none twice, none lost
        assert len(store.evaluations(run_id)) >= 1
        kinds = {artifact["kind"] for artifact in store.artifacts(run_id)}
        assert {"periodic", "final"} <= kinds
        final = store.artifacts(run_id, "final")[-1]["path"]
        assert final.is_relative_to(store.home) and load_agent(final).act([0.0, 0.0, 0.05, 0.0]) in (0, 1)


def test_the_same_config_and_seed_give_the_same_curve_on_ray_as_locally(ppo_group, tmp_path):
    store, run_ids = ppo_group
    local = RunStore(tmp_path)
    local.create_run("local", PPO_SHORT.to_json(), "ppo", 2)
    assert execute_stored_run(local, "local") is not None
    on_ray = store.episodes(run_ids[2])
    assert [row["episode_return"] for row in on_ray] == [row["episode_return"] for row in local.episodes("local")]
    assert [row["env_steps"] for row in on_ray] == [row["env_steps"] for row in local.episodes("local")]


def test_the_driver_ships_its_package_to_the_nodes_through_the_runtime_env(ppo_group):
    """A node needs no checkout: the driver's cartpole_core arrives on the workers' import path. (On this one
    machine the driver's folder is on their path too: Ray adds the driver's working directory.)"""

    @ray.remote(num_cpus=1)
    def shipped_packages() -> list[str]:
        import sys

        return [str(Path(entry) / "cartpole_core") for entry in sys.path if "py_modules_files" in entry
                and (Path(entry) / "cartpole_core").is_dir()]

    (shipped,) = ray.get(shipped_packages.remote())
    source = Path(__file__).resolve().parent.parent / "cartpole_core"
    for module in ("jobs/ray_executor.py", "jobs/execution.py", "engine/algos/ppo.py"):
        assert (Path(shipped) / module).read_text() == (source / module).read_text()
    assert not list(Path(shipped).rglob("__pycache__"))


def test_a_message_delivered_twice_is_written_once(tmp_path):
    config = preset_config("qlearning", "fast", total_env_steps=4000, eval_every_steps=1000, stop_on_solve=False)
    sent = []
    assert execute_run(StreamSink(sent.append, lambda: False), config.to_json(), 0) is not None
    store = RunStore(tmp_path)
    store.create_run("r", config.to_json(), "qlearning", 0, running_pid=os.getpid())
    driver = StreamedRun(StoreSink(store, "r"))
    for message in sent[:3] + sent[1:]:  # the second and third arrive twice
        driver.apply(message)
    run = store.get_run("r")
    assert run["status"] == "completed" and len(store.episodes("r")) == run["episodes"] > 0
    assert [seq for seq, _, _ in sent] == list(range(1, len(sent) + 1))
    assert store.episodes("r")[-1]["episode"] == run["episodes"]


def test_a_study_on_ray_completes(cluster, tmp_path):
    address = cluster.address
    summary = run_study("qlearning", ["gamma=0.9:0.999"], overrides={"total_env_steps": 20_000}, trials=2, seeds=2,
                        sampler="random", pruner="none", objective="final", home=tmp_path, ray_address=address,
                        confirm_trials=1, confirm_seeds=1)
    assert summary["status"] == "completed" and summary["trials_completed"] == 2
    runs = RunStore(tmp_path).list_runs(tag=f"study:{summary['study_id']}")
    assert len(runs) == 4 + 1 and all(run["status"] == "completed" for run in runs)  # the best confirmed on seed 2
    assert summary["best"]["confirmation"]["seeds"] == [2]
    assert load_agent(summary["best"]["checkpoint"]).act([0.0, 0.0, 0.05, 0.0]) in (0, 1)


def test_the_clis_train_runs_on_ray_and_prints_its_result(cluster, tmp_path, capsys):
    address = cluster.address
    code = main(["train", "--algo", "ppo", "--set", "total_env_steps=4000", "--set", "stop_on_solve=false",
                 "--seed", "5", "--json", "--executor", "ray", "--ray-address", address, "--home", str(tmp_path)])
    result = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert code == 0 and result["status"] == "completed" and result["env_steps"] >= 4000
    run = RunStore(tmp_path).get_run(result["run_id"])
    assert run["episodes"] == result["episodes"] == len(RunStore(tmp_path).episodes(result["run_id"]))
    assert load_agent(result["checkpoint"]).act([0.0, 0.0, 0.05, 0.0]) in (0, 1)


def test_a_cancelled_run_on_ray_stops_with_its_data_kept(cluster, tmp_path):
    address = cluster.address
    store = RunStore(tmp_path)
    dispatcher = Dispatcher(store, RayExecutor(store, address))
    _, (run_id,) = dispatcher.submit(PPO_LONG, [0])
    pump_until(dispatcher, lambda: store.get_run(run_id)["episodes"] >= 20, 60)
    dispatcher.cancel(run_id)
    asked = time.monotonic()
    assert dispatcher.wait(timeout_s=30)
    run = store.get_run(run_id)
    assert run["status"] == "cancelled" and run["error"] is None  # stopped by itself, at its next update
    assert time.monotonic() - asked < 5
    assert 0 < run["env_steps"] < PPO_LONG.total_env_steps and len(store.episodes(run_id)) == run["episodes"]
    assert store.artifacts(run_id, "final")  # its own stop saves a final checkpoint; a stop by force could not


@pytest.mark.parametrize("command", [["train", "--algo", "ppo"], ["study", "run", "--algo", "ppo", "--vary", "gamma"]])
def test_an_unreachable_cluster_is_one_line_naming_it_and_nothing_is_written(tmp_path, capsys, command):
    address = f"127.0.0.1:{free_port('127.0.0.1')}"  # nothing listens there
    code = main([*command, "--executor", "ray", "--ray-address", address, "--home", str(tmp_path / "home")])
    error = capsys.readouterr().err
    assert code == 1 and error.count("\n") == 1 and address in error and "ray start" in error
    assert not (tmp_path / "home").exists()


def test_executor_ray_without_an_address_is_bad_input(tmp_path, capsys, monkeypatch):
    monkeypatch.delenv("CARTPOLE_LAB_RAY_ADDRESS", raising=False)
    assert main(["train", "--algo", "ppo", "--executor", "ray", "--home", str(tmp_path / "home")]) == 2
    error = capsys.readouterr().err
    assert error.count("\n") == 1 and "--ray-address" in error and "CARTPOLE_LAB_RAY_ADDRESS" in error
    assert main(["train", "--algo", "ppo", "--executor", "ray", "--ray-address", "ray://head:10001"]) == 2
    assert "ray://" in capsys.readouterr().err
    assert not (tmp_path / "home").exists()


def test_with_the_labs_ray_address_set_the_dashboard_trains_on_the_cluster_and_its_sidebar_says_so(
        cluster, home, monkeypatch):
    address = cluster.address
    monkeypatch.setenv("CARTPOLE_LAB_RAY_ADDRESS", address)
    store = RunStore(home)
    _, (run_id,) = submit(store, PPO_SHORT, [7])
    page = app()
    deadline = time.monotonic() + 60
    while store.get_run(run_id)["status"] != "completed":
        assert time.monotonic() < deadline and store.get_run(run_id)["status"] in ("queued", "running")
        time.sleep(0.2)
    assert store.get_run(run_id)["pid"] == os.getpid()  # trained on the cluster, stored by the dashboard's process
    where = [shown(caption.value) for caption in page.run().sidebar.caption if "Runs train on" in caption.value]
    assert where == [f"Runs train on the Ray cluster at {address} (2 CPUs)."]


def test_a_dashboard_whose_cluster_cannot_be_reached_says_why_and_trains_nothing_elsewhere(tmp_path):
    address = f"127.0.0.1:{free_port('127.0.0.1')}"  # nothing listens there
    store = RunStore(tmp_path)
    _, (run_id,) = submit(store, PPO_SHORT, [0])
    scheduler = Scheduler(tmp_path, ray_address=address)
    scheduler.start()
    try:
        deadline = time.monotonic() + 10
        while scheduler.error is None:
            assert time.monotonic() < deadline
            time.sleep(0.05)
        assert scheduler.where().startswith(f"the Ray cluster at {address} — not reached yet: cannot reach")
        time.sleep(1)
        assert store.get_run(run_id)["status"] == "queued"  # it waits for the cluster
    finally:
        scheduler.stop()
        scheduler.join(timeout=10)
    assert not scheduler.is_alive()


def test_when_a_node_dies_its_run_fails_with_the_reason_and_the_other_completes(cluster, tmp_path):
    """Last in the module: the cluster keeps one node afterwards."""
    address = cluster.address
    store = RunStore(tmp_path)
    dispatcher = Dispatcher(store, RayExecutor(store, address))
    config = preset_config("ppo", "fast", total_env_steps=60_000, stop_on_solve=False)
    _, run_ids = dispatcher.submit(config, [0, 1])  # one per node: each has one CPU
    pump_until(dispatcher, lambda: all(store.get_run(run_id)["episodes"] >= 20 for run_id in run_ids), 60)
    cluster.kill_node(cluster.nodes[1])
    assert dispatcher.wait(timeout_s=90)
    runs = sorted((store.get_run(run_id) for run_id in run_ids), key=lambda run: run["status"])
    assert [run["status"] for run in runs] == ["completed", "failed"], [run["error"] for run in runs]
    failed = runs[1]
    assert "node" in failed["error"] and "died" in failed["error"]
    assert 0 < len(store.episodes(failed["id"])) == failed["episodes"]  # what it sent before stays
    assert runs[0]["env_steps"] >= config.total_env_steps


def pump_until(dispatcher: Dispatcher, condition, timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        dispatcher.pump()
        time.sleep(0.05)
