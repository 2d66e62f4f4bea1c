"""Run-store benchmarks: logging overhead, incremental polling, concurrent writers.

    python bench/store.py [--markdown]

1. Logging overhead: the same training run headless (events dropped) and streamed into the store through the
   worker's batched writer (``jobs.execution.execute_stored_run``), alternated in one process; ratio of env steps
   per second.
   Q-learning ``fast`` trained past its solve is the worst case: ~1 000 episodes a second to write.
2. Polling: a stored run of 10 000 episodes; time of one incremental ``poll`` (what the dashboard does each
   refresh) and of a full read.
3. Concurrency: 16 runs queued, 8 worker processes at once on one SQLite file; counts failed runs, any
   "database is locked", and whether every run's stored episode rows equal the episodes it trained.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

if not __package__:  # run as ``python bench/store.py``: make the repo root importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import torch

from cartpole_core.config.presets import preset_config
from cartpole_core.engine.train import train
from cartpole_core.jobs.dispatch import Dispatcher
from cartpole_core.jobs.execution import execute_stored_run
from cartpole_core.records import EpisodeEnded, Evaluated, Updated
from cartpole_core.runs.store import Cursor, RunStore


def logging_overhead(repeats: int = 9) -> list[tuple[str, str]]:
    rows = []
    for algo, steps in (("qlearning", 300_000), ("ppo", 60_000)):
        config = preset_config(algo, "fast", total_env_steps=steps, stop_on_solve=False, eval_every_steps=steps)
        headless, stored = [], []
        with tempfile.TemporaryDirectory() as home:
            store = RunStore(Path(home))
            for i in range(repeats):
                headless.append(train(config, seed=i)[1].env_steps_per_s)
                run_id = store.create_run(f"{algo}-{i}", config.to_json(), algo, i)
                stored.append(execute_stored_run(store, run_id).env_steps_per_s)
        # Each stored run is compared with the headless run just before it (same seed), so slow drifts of a
        # shared machine cancel; the median of those paired ratios is the cost.
        ratio = statistics.median(with_store / alone for with_store, alone in zip(stored, headless))
        rows.append((f"logging overhead, {algo} fast ({steps:,} steps, {repeats} pairs)",
                     f"{statistics.median(headless):,.0f} → {statistics.median(stored):,.0f} steps/s; median paired "
                     f"cost {(1 - ratio) * 100:+.1f} % (target ≤ 5 %)"))
    return rows


def polling(episodes: int = 10_000, polls: int = 50) -> list[tuple[str, str]]:
    with tempfile.TemporaryDirectory() as home:
        store = RunStore(Path(home))
        store.create_run("big", preset_config("ppo", "fast").to_json(), "ppo", 0)
        events = []
        for i in range(1, episodes + 1):
            events.append(EpisodeEnded(i, i * 200, 200.0, 200, None, 1e-3, i * 0.01))
            if i % 10 == 0:
                events.append(Updated(i // 10, i * 200, {"policy_loss": 0.1, "value_loss": 1.0, "entropy": 0.6}, 1.0))
            if i % 100 == 0:
                events.append(Evaluated(i * 200, i, 480.0, 10.0, True, i * 0.01))
        store.append_events("big", events)
        _, cursor = store.poll("big")
        incremental = []
        for _ in range(polls):
            started = time.perf_counter()
            store.poll("big", Cursor(cursor.episode - 20, cursor.update - 2, cursor.eval_steps - 1))
            incremental.append((time.perf_counter() - started) * 1000)
        full = []
        for _ in range(5):
            started = time.perf_counter()
            store.poll("big")
            full.append((time.perf_counter() - started) * 1000)
    return [(f"poll, {episodes:,}-episode run, 20 new episodes",
             f"{statistics.median(incremental):.2f} ms median, {max(incremental):.2f} ms max (target ≤ 20 ms)"),
            (f"full read of the {episodes:,}-episode run", f"{statistics.median(full):.1f} ms median")]


def concurrency(runs: int = 16, workers: int = 8) -> list[tuple[str, str]]:
    config = preset_config("qlearning", "fast", total_env_steps=200_000, stop_on_solve=False)
    with tempfile.TemporaryDirectory() as home:
        dispatcher = Dispatcher.local(Path(home), max_workers=workers)
        started = time.perf_counter()
        _, run_ids = dispatcher.submit(config, list(range(runs)))
        peak = 0
        while not dispatcher.wait(timeout_s=0.2):
            peak = max(peak, len(dispatcher.executor.active))
        seconds = time.perf_counter() - started
        stored = [dispatcher.store.get_run(run_id) for run_id in run_ids]
        failed = [run for run in stored if run["status"] != "completed"]
        locked = [run for run in stored if "locked" in (run["error"] or "")]
        mismatched = [run["id"] for run in stored if len(dispatcher.store.episodes(run["id"])) != run["episodes"]]
        episodes = sum(run["episodes"] for run in stored)
    return [(f"{runs} runs queued, {workers} workers at once",
             f"{seconds:.1f} s, peak {peak} workers, {episodes:,} episodes; failed {len(failed)}, "
             f"'database is locked' {len(locked)}, runs whose stored episodes ≠ trained: {len(mismatched)}")]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--markdown", action="store_true", help="print a GitHub markdown table")
    parser.add_argument("--only", choices=["logging", "polling", "concurrency"], help="run one measurement")
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    train(preset_config("ppo", "fast", total_env_steps=1000), seed=0)  # one-time imports off the measurements
    measurements = {"logging": logging_overhead, "polling": polling, "concurrency": concurrency}
    rows = [row for name, measure in measurements.items() if args.only in (None, name) for row in measure()]
    if args.markdown:
        print("| measurement | result |\n|---|---|")
        print("\n".join(f"| {name} | {result} |" for name, result in rows))
    else:
        print("\n".join(f"{name:48} {result}" for name, result in rows))
    return 0


if __name__ == "__main__":
    sys.exit(main())
