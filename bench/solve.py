"""Time-to-solve benchmark: how fast each algorithm × preset solves CartPole-v1, over several seeds.

    python bench/solve.py [--algos qlearning,dqn,ppo] [--presets fast,...|all] [--seeds 5] [--first-seed 0]
                          [--vs-sb3] [--reference /path/to/other/checkout] [--held-out] [--markdown]

Every run trains with ``cartpole_core.train`` on one torch thread, as the lab's workers do. A seed is solved at its
first greedy evaluation with mean return ≥ 475 over 20 fixed-seed episodes that a second evaluation, on 100 other
episodes, confirms; time-to-solve is training wall-clock up to that evaluation, evaluation time excluded. One table
row per (implementation, algorithm, preset): seeds solved, median / max time- and steps-to-solve, median env
steps/s, and the final evaluation (after the full budget, or at the solve for a preset that stops on it).

``--held-out`` (20 seeds unless ``--seeds`` says otherwise) also plays each run's final agent on the 100 held-out
episodes of ``bench/held_out.py`` (episode seeds 2,000,000–2,000,099, which no evaluation during training uses) and
adds the seeds whose held-out mean is ≥ 475 and the median / worst held-out mean: an agent stopped at a lucky
evaluation shows here. ``--first-seed N`` trains seeds N, N+1, … instead of 0, 1, …: fresh seeds that no tuning
looked at.

``--vs-sb3`` adds Stable-Baselines3 PPO and DQN with the RL Zoo's tuned CartPole-v1 hyperparameters, measured by the
very same bookkeeping (``cartpole_core.engine.run.Run``): the same evaluation, as often as our ``fast`` preset of that
algorithm evaluates, and the same paused clock, started before the environments and the model are built, as ours
is. ``--max-env-steps`` caps our budgets (the seed presets' budgets run to a million steps); capped rows say so.

``--reference`` adds the same rows for another checkout of the lab (e.g. the commit before a refactoring): every run
of both then trains in a fresh interpreter of its own checkout, seed by seed in turn (ours, reference, ours, ...), so
a busy machine slows both alike, and the table ends with the ratios of their medians.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from functools import partial
from pathlib import Path
from typing import Any

if not __package__:  # run as ``python bench/solve.py``: make the repo root importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import gymnasium
import numpy as np
import torch

from bench.held_out import held_out_returns
from cartpole_core.config.models import ALGORITHMS, config_class
from cartpole_core.config.presets import preset_config, preset_names
from cartpole_core.engine.agent import Agent
from cartpole_core.engine.evaluate import is_solved
from cartpole_core.engine.process import prepare_training_process
from cartpole_core.engine.run import Run
from cartpole_core.engine.train import train
from cartpole_core.records import RunResult

ROOT = Path(__file__).resolve().parents[1]
HELD_OUT_MODULE = Path(__file__).resolve().with_name("held_out.py")
NEVER = float("inf")  # time / steps to solve of a seed that never solved


def _linear(start: float) -> Callable[[float], float]:
    """The zoo's ``lin_<start>``: decays linearly from ``start`` to 0 over training (SB3 passes progress 1 → 0)."""
    return lambda progress_remaining: progress_remaining * start


@dataclass(frozen=True)
class ZooSettings:
    n_envs: int
    n_timesteps: int
    kwargs: dict[str, Any]


# The RL Baselines3 Zoo's tuned CartPole-v1 entries (DLR-RM/rl-baselines3-zoo, hyperparams/ppo.yml and dqn.yml).
ZOO_CARTPOLE: dict[str, ZooSettings] = {
    "ppo": ZooSettings(n_envs=8, n_timesteps=100_000, kwargs={
        "n_steps": 32, "batch_size": 256, "gae_lambda": 0.8, "gamma": 0.98, "n_epochs": 20, "ent_coef": 0.0,
        "learning_rate": _linear(1e-3), "clip_range": _linear(0.2),
    }),
    "dqn": ZooSettings(n_envs=1, n_timesteps=50_000, kwargs={
        "learning_rate": 2.3e-3, "batch_size": 64, "buffer_size": 100_000, "learning_starts": 1000, "gamma": 0.99,
        "target_update_interval": 10, "train_freq": 256, "gradient_steps": 128, "exploration_fraction": 0.16,
        "exploration_final_eps": 0.04, "policy_kwargs": {"net_arch": [256, 256]},
    }),
}


# ------------------------------------------------------------------------------------------------------- runs


@dataclass(frozen=True)
class Trained:
    """One run's summary, and its final agent's mean return over the held-out episodes when that was asked for."""

    result: RunResult
    held_out_mean: float | None = None


@dataclass(frozen=True)
class Contender:
    """One table row to measure: ``train_one(seed)`` trains a run and reports it."""

    impl: str  # "ours" or "SB3"
    algo: str
    preset: str
    train_one: Callable[[int], Trained]


def _held_out_mean(agent: Agent, held_out: bool) -> float | None:
    return float(held_out_returns(agent.act_batch).mean()) if held_out else None


def train_ours(algo: str, preset: str, seed: int, max_env_steps: int | None = None, held_out: bool = False) -> Trained:
    config = preset_config(algo, preset)
    if max_env_steps is not None and config.total_env_steps > max_env_steps:
        config = config.with_changes(total_env_steps=max_env_steps)
    agent, result = train(config, seed=seed)
    return Trained(result, _held_out_mean(agent, held_out))


# One run in a fresh interpreter of a checkout: the engine imported from that checkout, which may predate the layering;
# the held-out check (when a path to bench/held_out.py is given) loaded from this checkout, the same for both.
_TRAIN_IN_CHECKOUT = """
import importlib.util, json, sys
sys.path.insert(0, sys.argv[1])
import torch
try:  # as that checkout's workers set up (older ones: one torch thread only)
    from cartpole_core.engine.process import prepare_training_process
    prepare_training_process()
except ImportError:
    torch.set_num_threads(1)
try:
    from cartpole_core.config.presets import preset_config
    from cartpole_core.engine.train import train
except ModuleNotFoundError:  # a checkout from before cartpole_core was grouped by layer
    from cartpole_core.presets import preset_config
    from cartpole_core.training import train
algo, preset, seed, cap, held_out = sys.argv[2], sys.argv[3], int(sys.argv[4]), int(sys.argv[5]), sys.argv[6]
config = preset_config(algo, preset)
if cap and config.total_env_steps > cap:
    config = config.with_changes(total_env_steps=cap)
agent, result = train(config, seed=seed)
held_out_mean = None
if held_out:
    spec = importlib.util.spec_from_file_location("held_out", held_out)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    held_out_mean = float(module.held_out_returns(agent.act_batch).mean())
print(json.dumps({"result": result.to_dict(), "held_out_mean": held_out_mean}))
"""


def train_in_checkout(root: Path, algo: str, preset: str, seed: int, max_env_steps: int | None = None,
                      held_out: bool = False) -> Trained:
    done = subprocess.run([sys.executable, "-c", _TRAIN_IN_CHECKOUT, str(root), algo, preset, str(seed),
                           str(max_env_steps or 0), str(HELD_OUT_MODULE) if held_out else ""],
                          cwd=root, capture_output=True, text=True)
    if done.returncode != 0:
        last = done.stderr.strip().splitlines()[-1:] or ["no error output"]
        raise SystemExit(f"{algo}/{preset} seed {seed} failed in the checkout {root}: {last[0]}")
    trained = json.loads(done.stdout.strip().splitlines()[-1])
    return Trained(RunResult(**trained["result"]), trained["held_out_mean"])


class SB3Policy(Agent):
    """An SB3 model behind our ``Agent`` interface, so ``Run`` evaluates it with our greedy evaluation."""

    def __init__(self, model: Any):
        self.model = model

    def act_batch(self, obs: np.ndarray) -> np.ndarray:
        return self.model.predict(obs, deterministic=True)[0]


def train_sb3(algo: str, seed: int, n_timesteps: int | None = None, held_out: bool = False) -> Trained:
    """Train SB3 ``algo`` with the zoo's CartPole-v1 settings (budget ``n_timesteps`` if given), measured like ours."""
    from stable_baselines3 import DQN, PPO
    from stable_baselines3.common.env_util import make_vec_env

    zoo = ZOO_CARTPOLE[algo]
    budget = n_timesteps or zoo.n_timesteps
    # Our bookkeeping, clock included: it starts here, before envs and networks are built, as in ``train``.
    # Evaluate as often as our `fast` preset does, so time-to-solve has the same granularity for both.
    eval_every = preset_config(algo, "fast").eval_every_steps
    run = Run(config_class(algo)(total_env_steps=budget, eval_every_steps=eval_every), seed)
    model = {"ppo": PPO, "dqn": DQN}[algo](
        "MlpPolicy", make_vec_env("CartPole-v1", n_envs=zoo.n_envs, seed=seed), seed=seed, device="cpu", **zoo.kwargs)
    policy = SB3Policy(model)

    def on_step(locals_: dict[str, Any], globals_: dict[str, Any]) -> bool:
        """SB3's functional callback, called after each vectorized step (n_envs env steps)."""
        run.add_steps(len(locals_["dones"]))
        for info in locals_["infos"]:
            if "episode" in info:  # SB3's Monitor wrapper reports each finished episode here
                run.log_episode(info["episode"]["r"], info["episode"]["l"], getattr(model, "exploration_rate", None),
                                model.policy.optimizer.param_groups[0]["lr"])
        run.after_step(policy)
        return True

    model.learn(budget, callback=on_step)
    return Trained(run.finish(policy), _held_out_mean(policy, held_out))


# ---------------------------------------------------------------------------------------------------- measure


@dataclass(frozen=True)
class Summary:
    """The runs of one contender over the seeds, and the statistics a table row shows."""

    impl: str
    algo: str
    preset: str
    runs: list[Trained] = field(repr=False)

    @property
    def results(self) -> list[RunResult]:
        return [run.result for run in self.runs]

    @property
    def held_out_means(self) -> list[float]:
        """The held-out mean of each seed, empty when the held-out check was not asked for."""
        return [run.held_out_mean for run in self.runs if run.held_out_mean is not None]

    @property
    def held_out_solved(self) -> int:
        return sum(is_solved(mean) for mean in self.held_out_means)

    @property
    def solved(self) -> int:
        return sum(r.solved for r in self.results)

    def _to_solve(self, attr: str) -> list[float]:
        return [NEVER if getattr(r, attr) is None else float(getattr(r, attr)) for r in self.results]

    @property
    def median_time_to_solve_s(self) -> float:
        return statistics.median(self._to_solve("time_to_solve_s"))

    @property
    def max_time_to_solve_s(self) -> float:
        return max(self._to_solve("time_to_solve_s"))

    @property
    def median_steps_to_solve(self) -> float:
        return statistics.median(self._to_solve("steps_to_solve"))

    @property
    def max_steps_to_solve(self) -> float:
        return max(self._to_solve("steps_to_solve"))

    @property
    def median_env_steps_per_s(self) -> float:
        return statistics.median(r.env_steps_per_s for r in self.results)

    @property
    def final_evals(self) -> list[float]:
        return [float("nan") if r.final_eval_mean is None else r.final_eval_mean for r in self.results]

    @property
    def final_all_solved(self) -> bool:
        return all(is_solved(mean) for mean in self.final_evals)


def measure(contenders: Sequence[Contender], seeds: Sequence[int], progress: Callable[[str], None]) -> list[Summary]:
    """Train every contender once per seed, seed by seed in turn (a busy stretch of the machine hits them alike);
    ``progress`` gets one line per finished run."""
    results: list[list[Trained]] = [[] for _ in contenders]
    for seed in seeds:
        for contender, runs in zip(contenders, results):
            started = time.perf_counter()
            trained = contender.train_one(seed)
            runs.append(trained)
            result = trained.result
            outcome = (f"solved at {result.time_to_solve_s:.2f} s / {result.steps_to_solve:,} steps" if result.solved
                       else f"not solved in {result.env_steps:,} steps")
            held_out = "" if trained.held_out_mean is None else f", held-out mean {trained.held_out_mean:.1f}"
            progress(f"{contender.impl} {contender.algo}/{contender.preset} seed {seed}: {outcome}, "
                     f"final eval {result.final_eval_mean:.1f}{held_out}, {time.perf_counter() - started:.1f} s wall")
    return [Summary(c.impl, c.algo, c.preset, runs) for c, runs in zip(contenders, results)]


# ----------------------------------------------------------------------------------------------------- format

COLUMNS = ("impl", "algo", "preset", "seeds solved", "median time (s)", "max time (s)", "median steps", "max steps",
           "env steps/s", "final eval median", "final eval min", "final all solved")
HELD_OUT_COLUMNS = ("held out (mean ≥ 475)", "held-out median", "held-out worst")
LEFT_ALIGNED = 3  # the first three columns are names; the rest are numbers
LEGEND = ("time / steps: training wall-clock (evaluation excluded) and env steps until the first solved evaluation "
          "(greedy mean return ≥ 475 over 20 episodes, confirmed on 100 other episodes); a seed that never solved "
          "counts as never (—).")
HELD_OUT_LEGEND = ("held out: each seed's final agent, greedy, one episode per seed 2,000,000–2,000,099 "
                   "(reset(seed=s)); the seeds whose mean over the 100 is ≥ 475, and the median / worst mean.")


def _number(value: float, spec: str) -> str:
    return "—" if value == NEVER else format(value, spec)


def row_cells(summary: Summary, held_out: bool = False) -> list[str]:
    cells = [
        summary.impl, summary.algo, summary.preset, f"{summary.solved}/{len(summary.results)}",
        _number(summary.median_time_to_solve_s, ".2f"), _number(summary.max_time_to_solve_s, ".2f"),
        _number(summary.median_steps_to_solve, ",.0f"), _number(summary.max_steps_to_solve, ",.0f"),
        f"{summary.median_env_steps_per_s:,.0f}", f"{statistics.median(summary.final_evals):.1f}",
        f"{min(summary.final_evals):.1f}", "yes" if summary.final_all_solved else "no",
    ]
    if held_out:
        means = summary.held_out_means
        cells += [f"{summary.held_out_solved}/{len(means)}", f"{statistics.median(means):.1f}", f"{min(means):.1f}"]
    return cells


def format_table(summaries: Sequence[Summary], markdown: bool) -> str:
    """Rows as aligned plain text, or as a GitHub markdown table (numbers right-aligned); with the held-out
    columns when every row has held-out means."""
    held_out = all(s.held_out_means for s in summaries)
    header = list(COLUMNS) + list(HELD_OUT_COLUMNS if held_out else ())
    rows = [header, *(row_cells(s, held_out) for s in summaries)]
    if markdown:
        rule = ["---"] * LEFT_ALIGNED + ["---:"] * (len(header) - LEFT_ALIGNED)
        return "\n".join("| " + " | ".join(cells) + " |" for cells in [rows[0], rule, *rows[1:]])
    widths = [max(len(row[i]) for row in rows) for i in range(len(header))]
    return "\n".join("  ".join(cell.ljust(w) if i < LEFT_ALIGNED else cell.rjust(w)
                               for i, (cell, w) in enumerate(zip(row, widths))).rstrip() for row in rows)


def sb3_ratios(summaries: Sequence[Summary], target: float = 0.5) -> list[str]:
    """For each of our rows with an SB3 counterpart: ours / SB3 median time-to-solve, against ``target``."""
    sb3 = {s.algo: s for s in summaries if s.impl == "SB3"}
    lines = []
    for ours in summaries:
        theirs = sb3.get(ours.algo)
        if ours.impl == "SB3" or theirs is None:
            continue
        a, b = ours.median_time_to_solve_s, theirs.median_time_to_solve_s
        ratio = (f"{a / b:.2f} ({'meets' if a / b <= target else 'misses'} the target ≤ {target})"
                 if NEVER not in (a, b) else "n/a (a median seed never solved)")
        lines.append(f"{ours.algo}/{ours.preset} vs SB3 {ours.algo.upper()} (zoo): median time-to-solve "
                     f"{_number(a, '.2f')} s / {_number(b, '.2f')} s = {ratio}")
    return lines


def reference_ratios(summaries: Sequence[Summary]) -> list[str]:
    """Ours / reference for each algorithm × preset measured on both: median time- and steps-to-solve, env steps/s."""
    lines = []
    reference = {(s.algo, s.preset): s for s in summaries if s.impl == "reference"}
    for ours in (s for s in summaries if s.impl == "ours" and (s.algo, s.preset) in reference):
        ref = reference[(ours.algo, ours.preset)]
        ratios = []
        for what, attr in (("median time to solve", "median_time_to_solve_s"),
                           ("median steps to solve", "median_steps_to_solve"),
                           ("env steps/s", "median_env_steps_per_s")):
            a, b = getattr(ours, attr), getattr(ref, attr)
            ratios.append(f"{what} {a / b:.2f}×" if math.isfinite(a) and math.isfinite(b) and b else f"{what} —")
        lines.append(f"{ours.algo}/{ours.preset}, ours / reference: " + ", ".join(ratios))
    return lines


def machine_facts(with_sb3: bool) -> str:
    cpu = platform.processor() or "unknown CPU"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    versions = f"torch {torch.__version__}, gymnasium {gymnasium.__version__}"
    if with_sb3:
        import stable_baselines3
        versions += f", stable-baselines3 {stable_baselines3.__version__}"
    return (f"Machine: {cpu}, {os.cpu_count()} cores (1 torch thread per run); Python {platform.python_version()}, "
            f"{versions}; {datetime.now().astimezone():%Y-%m-%d %H:%M %Z}")


# ------------------------------------------------------------------------------------------------------- main


def _int_at_least(minimum: int) -> Callable[[str], int]:
    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not an integer") from None
        if value < minimum:
            raise argparse.ArgumentTypeError(f"{value} must be at least {minimum}")
        return value
    return parse


def _names(text: str) -> list[str]:
    return [name.strip() for name in text.split(",") if name.strip()]


def parse_args(argv: Sequence[str] | None) -> tuple[argparse.Namespace, list[Contender]]:
    parser = argparse.ArgumentParser(
        description="Time-to-solve benchmark on CartPole-v1: one table row per algorithm × preset over N seeds.")
    parser.add_argument("--algos", type=_names, default=list(ALGORITHMS),
                        help=f"comma-separated algorithms (default: {','.join(ALGORITHMS)})")
    parser.add_argument("--presets", type=_names, default=["fast"],
                        help="comma-separated preset names, or 'all' for every preset of each algorithm "
                             "(default: fast); presets an algorithm lacks are skipped")
    parser.add_argument("--seeds", type=_int_at_least(1), default=None,
                        help="train N seeds, from --first-seed on (default: 5, or 20 with --held-out)")
    parser.add_argument("--first-seed", type=_int_at_least(0), default=0, metavar="N",
                        help="the first training seed (default: 0), e.g. 20 for seeds a preset was not tuned on")
    parser.add_argument("--held-out", action="store_true",
                        help="also play each run's final agent on 100 held-out episodes (seeds 2,000,000–2,000,099) "
                             "and show the seeds whose mean stays ≥ 475")
    parser.add_argument("--vs-sb3", action="store_true",
                        help="also train Stable-Baselines3 PPO / DQN (for the selected algos) with the RL Zoo's "
                             "tuned CartPole-v1 settings, and print ours / SB3 median time-to-solve")
    parser.add_argument("--sb3-steps", type=_int_at_least(1000), default=None, metavar="N",
                        help="smoke tests only: train SB3 for N env steps instead of the zoo budget "
                             f"({', '.join(f'{a} {z.n_timesteps:,}' for a, z in ZOO_CARTPOLE.items())})")
    parser.add_argument("--max-env-steps", type=_int_at_least(1000), default=None, metavar="N",
                        help="cap our runs' budgets at N env steps (e.g. for the seed presets' long budgets); "
                             "capped rows are labelled")
    parser.add_argument("--reference", type=Path, default=None, metavar="CHECKOUT",
                        help="also run another checkout of the lab (e.g. the commit before a change), every run of "
                             "both in a fresh interpreter, interleaved, and print the ratios of their medians")
    parser.add_argument("--markdown", action="store_true",
                        help="print a GitHub markdown table (for docs/BENCHMARKS.md)")
    args = parser.parse_args(argv)
    if args.seeds is None:
        args.seeds = 20 if args.held_out else 5
    if args.reference is not None and not (args.reference / "cartpole_core").is_dir():
        parser.error(f"--reference: {args.reference} is not a checkout of the lab (no cartpole_core/ in it)")

    unknown = [a for a in args.algos if a not in ALGORITHMS]
    if unknown or not args.algos:
        parser.error(f"--algos: unknown {', '.join(unknown) or '(none given)'}; allowed: {', '.join(ALGORITHMS)}")
    if not args.presets:
        parser.error("--presets: no preset given")
    if args.vs_sb3:
        try:
            import stable_baselines3  # noqa: F401
        except ImportError:
            parser.exit(2, "--vs-sb3 needs stable-baselines3: pip install -r requirements-bench.txt\n")

    contenders = []
    for algo in args.algos:
        available = preset_names(algo)
        wanted = available if args.presets == ["all"] else args.presets
        for preset in wanted:
            if preset not in available:
                print(f"note: {algo} has no preset {preset!r}: skipped", file=sys.stderr)
                continue
            capped = args.max_env_steps is not None and \
                preset_config(algo, preset).total_env_steps > args.max_env_steps
            label = f"{preset} (≤{args.max_env_steps:,} steps)" if capped else preset
            if args.reference is None:
                contenders.append(Contender("ours", algo, label, partial(
                    train_ours, algo, preset, max_env_steps=args.max_env_steps, held_out=args.held_out)))
            else:
                for impl, root in (("ours", ROOT), ("reference", args.reference.resolve())):
                    contenders.append(Contender(impl, algo, label, partial(
                        train_in_checkout, root, algo, preset, max_env_steps=args.max_env_steps,
                        held_out=args.held_out)))
        if args.vs_sb3 and algo in ZOO_CARTPOLE:
            contenders.append(Contender("SB3", algo, "zoo", partial(train_sb3, algo, n_timesteps=args.sb3_steps,
                                                                    held_out=args.held_out)))
    if not contenders:
        parser.error("nothing to benchmark: none of the selected algorithms has the requested presets")
    return args, contenders


def main(argv: Sequence[str] | None = None) -> int:
    args, contenders = parse_args(argv)
    prepare_training_process()  # as the lab's workers do
    seeds = range(args.first_seed, args.first_seed + args.seeds)
    total = len(contenders) * len(seeds)
    done = 0

    def progress(line: str) -> None:
        nonlocal done
        done += 1
        print(f"[{done}/{total}] {line}", file=sys.stderr, flush=True)

    print(machine_facts(args.vs_sb3) + (" (SB3 budget overridden: not a comparison)" if args.sb3_steps else ""),
          flush=True)
    summaries = measure(contenders, seeds, progress)

    bullet = "- " if args.markdown else ""
    print()
    print(format_table(summaries, args.markdown))
    print()
    print(bullet + LEGEND)
    if args.held_out:
        print(bullet + HELD_OUT_LEGEND)
    for line in sb3_ratios(summaries) + reference_ratios(summaries):
        print(bullet + line)
    return 0


if __name__ == "__main__":
    sys.exit(main())
