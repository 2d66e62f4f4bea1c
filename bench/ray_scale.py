"""Runs on a Ray cluster against the local worker pool, on the same CPUs: runs per minute of a PPO `fast` batch, and
launch → first stored episode (the first point of the live chart) on a warm pool or cluster.

    python bench/ray_scale.py [--runs 16] [--rounds 2] [--latency-repeats 5] [--markdown]

Rows: the local pool (``LocalExecutor``, 2 workers, one warm, as the dashboard's) and a local Ray cluster
(``RayExecutor``) of one and of two one-CPU nodes, started as a user starts one (``ray start --head`` /
``ray start --address``) on loopback (``LoopbackCluster``, which tests/test_ray.py uses too). Every batch trains the
same runs (seeds 0 … runs-1; PPO `fast` runs its whole 25 000-step budget), so each does the same work; the local
pool's batches alternate with the Ray row's, so a machine that gets busier slows both alike. A Ray row starts
after a warm-up run per node (its workers have imported torch, as in a dashboard that has trained before); the
local pool's workers stay for the next run, as they do. Latency: one run launched on an idle pool or cluster,
pumped as the dashboard's scheduler pumps (every 0.2 s); the local pool's after its warm worker is ready.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if not __package__:  # run as ``python bench/ray_scale.py``: make the repo root importable
    sys.path.insert(0, str(ROOT))

from cartpole_core.config.presets import preset_config  # noqa: E402
from cartpole_core.jobs.dispatch import Dispatcher  # noqa: E402 (after the path fix above)
from cartpole_core.runs.store import RunStore  # noqa: E402

NODE_IP = "127.0.0.2"  # loopback, kept as is by Ray (it replaces 127.0.0.1 and localhost by the network address)
PUMP_S = 0.2  # as the dashboard's Scheduler


class LoopbackCluster:
    """A Ray cluster of one-CPU nodes on this machine, on loopback, each started as a user starts one (``ray start``)
    with its own temp folder under ``root``. Stopped by pid — its processes are found by that folder, and a survivor
    is an error — then ``ray stop`` as well, as this machine's rules ask of every test cluster (it would also stop
    another cluster of the user's here: run one at a time). ``health_check_s``: how soon a dead node is noticed
    (Ray's default is ~15 s)."""

    def __init__(self, health_check_s: int = 5):
        self.root = Path(tempfile.mkdtemp(prefix="cpl-ray-", dir="/tmp"))  # short: Ray's socket paths < 108 chars
        self.port = free_port()
        self.address = f"{NODE_IP}:{self.port}"
        self.nodes: list[Path] = []
        self.env = {**os.environ, "RAY_USAGE_STATS_ENABLED": "0", "RAY_health_check_period_ms": "1000",
                    "RAY_health_check_failure_threshold": str(health_check_s)}

    def __enter__(self) -> LoopbackCluster:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def add_node(self) -> Path:
        """Start the head (first) or another node; returns its temp folder."""
        folder = self.root / f"node{len(self.nodes)}"
        folder.mkdir()
        self.nodes.append(folder)
        role = (["--head", "--port", str(self.port), "--include-dashboard=false"] if len(self.nodes) == 1 else
                ["--address", self.address])
        started = subprocess.run(
            [str(Path(sys.executable).with_name("ray")), "start", *role, "--node-ip-address", NODE_IP, "--num-cpus",
             "1", "--temp-dir", str(folder), "--disable-usage-stats", "--object-store-memory", str(100 * 2**20),
             "--dashboard-agent-listen-port", str(free_port())],
            env=self.env, capture_output=True, text=True, timeout=120)
        if started.returncode != 0:
            raise RuntimeError(f"`ray start` failed: {started.stderr[-2000:]}")
        return folder

    def kill_node(self, folder: Path) -> None:
        """Kill the node's processes at once (SIGKILL), as a machine that dies."""
        for pid in processes_of(folder):
            with contextlib.suppress(ProcessLookupError):  # ended meanwhile
                os.kill(pid, signal.SIGKILL)

    def stop(self) -> None:
        """Disconnect this process if it drives the cluster, kill every node, remove the temp folder; RuntimeError
        if a process of the cluster outlives it."""
        import ray

        if ray.is_initialized():
            ray.shutdown()
        for folder in reversed(self.nodes):
            self.kill_node(folder)
        deadline = time.monotonic() + 10
        while processes_of(self.root) and time.monotonic() < deadline:
            time.sleep(0.1)
        left = processes_of(self.root)
        subprocess.run([str(Path(sys.executable).with_name("ray")), "stop"], env=self.env, capture_output=True,
                       timeout=120, check=False)
        if left:
            raise RuntimeError(f"Ray processes outlived the cluster in {self.root}: {sorted(left)}")
        shutil.rmtree(self.root, ignore_errors=True)


def free_port(host: str = NODE_IP) -> int:
    with socket.socket() as probe:
        probe.bind((host, 0))
        return probe.getsockname()[1]


def processes_of(folder: Path) -> set[int]:
    """The processes whose command line names ``folder``, and their descendants (Ray's workers and agents rename
    themselves ``ray::…``)."""
    parents, named = {}, set()
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
            command = (entry / "cmdline").read_bytes()
        except OSError:
            continue
        parents[int(entry.name)] = int(stat[stat.rfind(")") + 2:].split()[1])
        if str(folder).encode() in command:
            named.add(int(entry.name))
    found = set(named)
    while children := {pid for pid, parent in parents.items() if parent in found} - found:
        found |= children
    return found


def batch_runs_per_minute(dispatcher: Dispatcher, runs: int) -> float:
    config = preset_config("ppo", "fast")
    started = time.perf_counter()
    _, run_ids = dispatcher.submit(config, list(range(runs)))
    finish(dispatcher)
    minutes = (time.perf_counter() - started) / 60
    statuses = {dispatcher.store.get_run(run_id)["status"] for run_id in run_ids}
    if statuses != {"completed"}:
        raise RuntimeError(f"a benchmark run did not complete: {statuses}")
    return runs / minutes


def first_point_s(dispatcher: Dispatcher) -> float:
    """Launch one run on an idle executor; seconds until its first episode is in the store."""
    config = preset_config("ppo", "fast", total_env_steps=2000)
    started = time.perf_counter()
    _, (run_id,) = dispatcher.submit(config, [0])
    while not dispatcher.store.get_run(run_id)["episodes"]:
        time.sleep(PUMP_S)
        dispatcher.pump()
    latency = time.perf_counter() - started
    finish(dispatcher)
    return latency


def finish(dispatcher: Dispatcher) -> None:
    if not dispatcher.wait(timeout_s=1800, poll_s=PUMP_S):
        raise RuntimeError("the benchmark's runs did not end within 30 minutes")


def warm_up(dispatcher: Dispatcher, nodes: int) -> None:
    """A short run per node, so each node's workers have imported torch (a warm cluster)."""
    dispatcher.submit(preset_config("ppo", "fast", total_env_steps=2000), list(range(nodes)))
    finish(dispatcher)


def latencies_s(dispatcher: Dispatcher, repeats: int, settle_s: float = 0.0) -> list[float]:
    """Launch → first point ``repeats`` times, each ``settle_s`` after the last run ended (the local pool's next
    warm worker imports torch meanwhile)."""
    latencies = []
    for _ in range(repeats):
        time.sleep(settle_s)
        dispatcher.pump()
        latencies.append(first_point_s(dispatcher))
    return latencies


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=16)
    parser.add_argument("--rounds", type=int, default=2, help="batches per row, the rows' batches interleaved")
    parser.add_argument("--latency-repeats", type=int, default=5)
    parser.add_argument("--markdown", action="store_true")
    args = parser.parse_args()

    from cartpole_core.jobs.ray_executor import RayExecutor

    local_row = "local pool, 2 workers"
    rates: dict[str, list[float]] = {local_row: []}
    latencies: dict[str, list[float]] = {}
    with LoopbackCluster() as cluster, tempfile.TemporaryDirectory() as home:
        local = Dispatcher.local(Path(home) / "local", max_workers=2, warm=True)
        cluster.add_node()
        store = RunStore(Path(home) / "ray")
        on_ray = Dispatcher(store, RayExecutor(store, cluster.address))
        for nodes in (1, 2):
            if nodes == 2:
                cluster.add_node()
                while on_ray.executor.cluster_cpus < nodes:
                    time.sleep(0.5)
                    on_ray.executor.capacity()  # refreshes the cluster's CPUs
            warm_up(on_ray, nodes)
            row = f"Ray, {nodes} local node{'s' if nodes > 1 else ''} × 1 CPU"
            rates[row] = []
            for _ in range(args.rounds):  # interleaved: a busier machine slows both alike
                rates[local_row].append(batch_runs_per_minute(local, args.runs))
                rates[row].append(batch_runs_per_minute(on_ray, args.runs))
            latencies[row] = latencies_s(on_ray, args.latency_repeats)
        latencies[local_row] = latencies_s(local, args.latency_repeats, settle_s=15)
        local.shutdown()
        on_ray.shutdown()

    reference = statistics.median(rates[local_row])
    header = ["executor", "runs/min (median)", "× local pool", "launch → first point, median (max)"]
    lines = [[name, f"{statistics.median(rates[name]):.1f}", f"{statistics.median(rates[name]) / reference:.2f}",
              f"{statistics.median(latencies[name]):.2f} s ({max(latencies[name]):.2f} s)"] for name in rates]
    print(f"{args.runs}-run PPO `fast` batches (25 000 env steps each), {len(rates[local_row])} of the local pool and "
          f"{args.rounds} per Ray row, interleaved, on this machine's {os.cpu_count()} CPUs")
    if args.markdown:
        print("| " + " | ".join(header) + " |\n|" + "---|" * len(header))
        for line in lines:
            print("| " + " | ".join(line) + " |")
    else:
        widths = [max(len(cell) for cell in column) for column in zip(header, *lines)]
        for line in [header, *lines]:
            print("  ".join(cell.ljust(width) for cell, width in zip(line, widths)))


if __name__ == "__main__":
    main()
