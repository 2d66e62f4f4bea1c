"""Population benchmark: N PPO or DQN ``fast`` members trained batched in one process, against one run.

    python bench/population.py [--algo ppo|dqn] [--sizes 1,2,4,8,16,32,64] [--solve-size 64] [--seeds 20]
                               [--group-sizes 1,8] [--repeats 1] [--markdown]

``--algo`` picks the algorithm (default PPO). A DQN member costs more per env step than a PPO one and its full budget
makes the large sizes slow: for DQN pass fewer sizes (e.g. ``--algo dqn --sizes 1,8 --solve-size 64``).

Every measurement runs in a fresh interpreter on one torch thread, as the lab's workers do, so its peak resident
memory (``getrusage``'s ``ru_maxrss``) is its own. Four tables:

- **scaling**: a population of N members (seeds 0..N-1, full budget, ``stop_on_solve`` off) for each N: wall time
  (evaluations included), × the N = 1 time, members trained per minute, peak RSS, members solved. With
  ``--repeats R`` the sizes are measured round-robin R times and each keeps its fastest: a busy stretch of a
  shared machine then inflates no single size;
- **groups**: N seeds (full budget) as ``train --seeds`` trains them — split into one population per core
  (``plan_populations``), each in its own process, started together once all have warmed up — for each of
  ``--group-sizes``: wall time of the slowest, × the first size's (a lone seed: one core busy, the other idle);
- **stop-on-solve**: a population of ``--solve-size`` members with ``stop_on_solve`` on: members per minute — what a
  group or a study's trials get from one core;
- **correctness**: over ``--seeds`` seeds, one population of them all against each seed trained alone: seeds solved,
  median and quartiles of steps-to-solve, and a permutation test of the difference in median steps-to-solve
  (member k differs from the lone seed k only by float summation order, so the two should agree within noise).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path

if not __package__:  # run as ``python bench/population.py``: make the repo root importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np

from bench.solve import _int_at_least, machine_facts
from cartpole_core.config.population import plan_populations
from cartpole_core.config.presets import preset_config

ROOT = Path(__file__).resolve().parents[1]
NEVER = float("inf")
# Steps of the run that takes imports and first-call costs off the clock; DQN's must pass its learning_starts, or
# its first gradient steps stay on the clock.
WARM_UP_STEPS = {"ppo": 512, "dqn": 2048}


# ------------------------------------------------------------------------------------ one measurement, in a child


def measure_here(algo: str, size: int, stop_on_solve: bool, alone: bool, first_seed: int = 0,
                 wait_for_go: bool = False) -> dict:
    """Train ``size`` ``fast`` seeds of ``algo`` from ``first_seed`` on — as one population, or (``alone``) one after
    another — in this process. ``wait_for_go``: once warmed up, say ``ready`` and start on a line from stdin."""
    from cartpole_core.engine.process import prepare_training_process
    from cartpole_core.engine.train import train, train_population

    prepare_training_process()  # as the lab's workers
    config = preset_config(algo, "fast", stop_on_solve=stop_on_solve)
    train(config.with_changes(total_env_steps=WARM_UP_STEPS[algo]), seed=10_000)
    if wait_for_go:
        print("ready", flush=True)
        sys.stdin.readline()
    seeds = list(range(first_seed, first_seed + size))
    started = time.perf_counter()
    if alone:
        results = [train(config, seed)[1] for seed in seeds]
    else:
        results = [outcome[1] for outcome in train_population([config] * size, seeds)]
    wall_s = time.perf_counter() - started
    return {"wall_s": wall_s, "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
            "steps_to_solve": [NEVER if r.steps_to_solve is None else r.steps_to_solve for r in results],
            "solved": sum(r.solved for r in results)}


def measure(algo: str, size: int, stop_on_solve: bool = False, alone: bool = False) -> dict:
    """``measure_here`` in a fresh interpreter (its own peak memory)."""
    command = [sys.executable, str(Path(__file__).resolve()), "--algo", algo, "--child", str(size)]
    command += ["--stop-on-solve"] * stop_on_solve + ["--alone"] * alone
    done = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, check=True)
    return json.loads(done.stdout.strip().splitlines()[-1])


def measure_group(algo: str, seeds: int, slots: int) -> dict:
    """Seeds 0..``seeds``-1 as ``train --seeds`` trains them with ``slots`` workers: split into populations by
    ``plan_populations``, each in its own fresh interpreter, all started together once every one has warmed up. Wall
    time: the slowest population's."""
    config = preset_config(algo, "fast", stop_on_solve=False)
    plan = plan_populations([(str(seed), config) for seed in range(seeds)], slots)
    children = [subprocess.Popen([sys.executable, str(Path(__file__).resolve()), "--algo", algo,
                                  "--child", str(len(members)), "--first-seed", members[0], "--wait-for-go"],
                                 cwd=ROOT, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
                for members in plan]
    for child in children:
        assert child.stdout.readline().strip() == "ready"
    for child in children:
        child.stdin.write("go\n")
        child.stdin.flush()
    results = []
    for child in children:
        out, _ = child.communicate()
        if child.returncode:
            raise subprocess.CalledProcessError(child.returncode, child.args)
        results.append(json.loads(out.strip().splitlines()[-1]))
    return {"wall_s": max(r["wall_s"] for r in results), "populations": [len(members) for members in plan],
            "solved": sum(r["solved"] for r in results)}


# ----------------------------------------------------------------------------------------------------- format


def table(header: Sequence[str], rows: Sequence[Sequence[str]], markdown: bool, left: int = 1) -> str:
    """Aligned plain text, or a GitHub markdown table; the first ``left`` columns are names, the rest numbers."""
    rows = [list(header), *map(list, rows)]
    if markdown:
        rule = ["---"] * left + ["---:"] * (len(header) - left)
        return "\n".join("| " + " | ".join(cells) + " |" for cells in [rows[0], rule, *rows[1:]])
    widths = [max(len(row[i]) for row in rows) for i in range(len(header))]
    return "\n".join("  ".join(cell.ljust(w) if i < left else cell.rjust(w)
                               for i, (cell, w) in enumerate(zip(row, widths))).rstrip() for row in rows)


def _steps(value: float) -> str:
    return "—" if value == NEVER else f"{value:,.0f}"


def median_difference_p_value(a: Sequence[float], b: Sequence[float], rounds: int = 10_000) -> float:
    """Two-sided permutation test of median(a) − median(b) (never solved = +inf, which ranks last)."""
    pooled = np.array([*a, *b], dtype=float)
    pooled[~np.isfinite(pooled)] = 1e12  # after every solve: a median that never solved stays "never"
    observed = abs(np.median(pooled[:len(a)]) - np.median(pooled[len(a):]))
    rng = np.random.default_rng(0)
    hits = 0
    for _ in range(rounds):
        shuffled = rng.permutation(pooled)
        hits += abs(np.median(shuffled[:len(a)]) - np.median(shuffled[len(a):])) >= observed
    return (hits + 1) / (rounds + 1)


# ------------------------------------------------------------------------------------------------------- main


def _sizes(text: str) -> list[int]:
    try:
        sizes = [int(part) for part in text.split(",") if part.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a comma-separated list of integers") from None
    if not sizes or min(sizes) < 1:
        raise argparse.ArgumentTypeError(f"{text!r}: every size must be at least 1")
    return sizes


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="PPO or DQN fast populations: scaling, stop-on-solve throughput, "
                                                 "and members against lone runs.")
    parser.add_argument("--algo", choices=("ppo", "dqn"), default="ppo", help="algorithm (default: ppo)")
    parser.add_argument("--sizes", type=_sizes, default=[1, 2, 4, 8, 16, 32, 64],
                        help="population sizes of the scaling table (default: 1,2,4,8,16,32,64)")
    parser.add_argument("--solve-size", type=_sizes, default=[64], metavar="N",
                        help="population size of the stop-on-solve row (default: 64)")
    parser.add_argument("--seeds", type=_int_at_least(2), default=20,
                        help="seeds of the correctness table (default: 20)")
    parser.add_argument("--repeats", type=_int_at_least(1), default=1,
                        help="measure the scaling table this many times, round-robin, keeping each size's fastest")
    parser.add_argument("--markdown", action="store_true", help="print GitHub markdown tables (docs/BENCHMARKS.md)")
    parser.add_argument("--group-sizes", type=_sizes, default=[1, 8], metavar="SIZES",
                        help="groups of the lab's table: seeds trained as `train --seeds` trains them, one population "
                             "per core, each group size against the first (default: 1,8)")
    parser.add_argument("--child", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--first-seed", type=int, default=0, help=argparse.SUPPRESS)
    parser.add_argument("--wait-for-go", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--stop-on-solve", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--alone", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child is not None:
        print(json.dumps(measure_here(args.algo, args.child, args.stop_on_solve, args.alone, args.first_seed,
                                      args.wait_for_go)))
        return 0

    def progress(line: str) -> None:
        print(line, file=sys.stderr, flush=True)

    print(machine_facts(with_sb3=False), flush=True)
    fastest: dict[int, dict] = {}
    for repeat in range(args.repeats):
        for size in args.sizes:
            measured = measure(args.algo, size)
            progress(f"round {repeat + 1}, N = {size}: {measured['wall_s']:.1f} s")
            if size not in fastest or measured["wall_s"] < fastest[size]["wall_s"]:
                fastest[size] = measured
    scaling = list(fastest.items())
    slots = os.cpu_count() or 1
    groups: dict[int, dict] = {}
    for repeat in range(args.repeats):
        for size in args.group_sizes:
            measured = measure_group(args.algo, size, slots)
            progress(f"round {repeat + 1}, group of {size}: {measured['wall_s']:.1f} s")
            if size not in groups or measured["wall_s"] < groups[size]["wall_s"]:
                groups[size] = measured
    solving = [(size, measure(args.algo, size, stop_on_solve=True)) for size in args.solve_size]
    progress("stop-on-solve done")
    together = measure(args.algo, args.seeds)
    alone = measure(args.algo, args.seeds, alone=True)
    progress("correctness done")

    one = next((m["wall_s"] for size, m in scaling if size == 1), None)

    def per_minute(size: int, m: dict) -> str:
        return f"{size * 60 / m['wall_s']:.0f}"

    print()
    print(table(["members", "wall (s)", "× N = 1", "members/min", "peak RSS (MB)", "solved"], [
        [str(size), f"{m['wall_s']:.1f}", "—" if one is None else f"{m['wall_s'] / one:.2f}", per_minute(size, m),
         f"{m['peak_rss_mb']:.0f}", f"{m['solved']}/{size}"] for size, m in scaling], args.markdown))
    print()
    base = groups[args.group_sizes[0]]["wall_s"]
    print(table([f"group ({slots} cores)", "populations", "wall (s)", f"× {args.group_sizes[0]} seed(s)", "solved"], [
        [f"{size} seed" + "s" * (size != 1), " + ".join(map(str, m["populations"])), f"{m['wall_s']:.1f}",
         f"{m['wall_s'] / base:.2f}", f"{m['solved']}/{size}"] for size, m in groups.items()], args.markdown))
    print()
    print(table(["stop-on-solve", "wall (s)", "members/min", "peak RSS (MB)", "solved"], [
        [f"{size} members", f"{m['wall_s']:.1f}", per_minute(size, m), f"{m['peak_rss_mb']:.0f}",
         f"{m['solved']}/{size}"] for size, m in solving], args.markdown))
    print()

    def quartiles(steps: Sequence[float]) -> str:
        q1, q3 = np.percentile(np.array(steps, dtype=float), [25, 75], method="lower")
        return f"{_steps(statistics.median(steps))} ({_steps(q1)}–{_steps(q3)})"

    print(table([f"{args.algo.upper()} fast", "seeds solved", "median steps to solve (IQR)", "wall (s)"], [
        [f"{label}", f"{m['solved']}/{args.seeds}", quartiles(m["steps_to_solve"]), f"{m['wall_s']:.1f}"]
        for label, m in (("population members", together), ("lone runs", alone))], args.markdown))
    bullet = "- " if args.markdown else ""
    p_value = median_difference_p_value(together["steps_to_solve"], alone["steps_to_solve"])
    print()
    print(f"{bullet}Permutation test, median steps-to-solve of members vs lone runs: p = {p_value:.2f} "
          f"(medians {statistics.median(together['steps_to_solve']):,.0f} vs "
          f"{statistics.median(alone['steps_to_solve']):,.0f}).")
    every = preset_config(args.algo, "fast").eval_every_steps
    print(f"{bullet}Wall time includes every evaluation (20 greedy episodes every {every:,} steps of each member) and "
          "the process's first-call costs are excluded; the members/min of two processes on two cores is about "
          "twice one's.")
    return 0


if __name__ == "__main__":
    sys.exit(main())
