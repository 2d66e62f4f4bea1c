"""Command line: ``python -m cartpole_core train --algo {qlearning,dqn,ppo} [--preset NAME] [--set k=v …]``,
``runs list|show|cancel|delete|export|import``, ``presets`` and ``fields``. Runs train into the run store, so
they appear in the dashboard like runs launched there.

Bad input exits 2 with one line naming what was wrong and what is allowed, and writes nothing. With ``--json``
the last stdout line is one JSON object (see DESIGN.md, "Contracts"); otherwise a progress bar on stderr shows
env steps, episodes, the recent return and the ETA.
"""

from __future__ import annotations

import argparse
import json
import signal
import sys
from collections import deque
from pathlib import Path
from typing import Any

from cartpole_core.configs import ALGORITHMS, ConfigError
from cartpole_core.events import EpisodeEnded, Evaluated, Event
from cartpole_core.paths import DataHomeError, data_home, ensure_data_home, new_run_id
from cartpole_core.presets import preset_config
from cartpole_core.store import ACTIVE_STATUSES, STATUSES, RunStore, StoreError

HOME_HELP = "data home (default: $CARTPOLE_LAB_HOME or ./lab-data)"
EXIT_BAD_INPUT = 2
EXIT_FAILED = 1


class BadInput(Exception):
    """Raised for any invalid command-line input; reported as one line, exit code 2."""


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # one line instead of argparse's usage block
        raise BadInput(f"{message} (see --help)")


def parse_value(text: str) -> Any:
    """``--set`` values: JSON where it parses (numbers, true/false, null, [64, 64]); ``64,64`` is a list;
    ``none``/empty means no value; anything else is a string (e.g. ``relu``)."""
    if text.strip().lower() in ("", "none", "null"):
        return None
    try:
        return json.loads(text)
    except json.JSONDecodeError:
        pass
    if "," in text:
        return [parse_value(part) for part in text.split(",")]
    lowered = text.strip().lower()
    if lowered in ("true", "false"):
        return lowered == "true"
    return text


def parse_overrides(pairs: list[str]) -> dict[str, Any]:
    overrides = {}
    for pair in pairs:
        name, sep, value = pair.partition("=")
        if not sep or not name.strip():
            raise BadInput(f"--set expects field=value, got {pair!r}")
        overrides[name.strip()] = parse_value(value)
    return overrides


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="python -m cartpole_core", description="CartPole Lab: train and inspect RL agents.")
    commands = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)
    train = commands.add_parser("train", help="train one run")
    train.add_argument("--algo", required=True, choices=ALGORITHMS)
    train.add_argument("--preset", default="fast", help="preset name (default: fast); see `presets`")
    train.add_argument("--set", dest="overrides", action="append", default=[], metavar="FIELD=VALUE",
                       help="override a config field, e.g. --set learning_rate.start=3e-4 --set hidden_sizes=64,64")
    train.add_argument("--seed", type=int, default=0)
    train.add_argument("--json", action="store_true", help="no progress bar; print one JSON result line")
    train.add_argument("--name", help="a name for the run (default: what differs from the preset, e.g. "
                                      "'dqn/fast lr=5e-3 · seed 0')")
    train.add_argument("--tag", action="append", default=[], help="tag the run (repeatable)")
    train.add_argument("--home", help=HOME_HELP)
    runs = commands.add_parser("runs", help="list, show, cancel, delete, export and import stored runs")
    runs_commands = runs.add_subparsers(dest="runs_command", required=True, parser_class=_Parser)
    listing = runs_commands.add_parser("list", help="list runs, newest first")
    listing.add_argument("--algo", choices=ALGORITHMS)
    listing.add_argument("--status", choices=STATUSES)
    listing.add_argument("--tag")
    for name, text in (("show", "a run's record and evaluations"), ("cancel", "stop a queued or running run"),
                       ("delete", "delete a finished run with its metrics and checkpoints")):
        command = runs_commands.add_parser(name, help=text)
        command.add_argument("run_id")
    export = runs_commands.add_parser("export", help="write runs (config, metrics CSV, checkpoints) to a zip")
    export.add_argument("run_ids", nargs="+", metavar="run_id")
    export.add_argument("--out", help="zip file to write (default: <first run id>.zip)")
    importing = runs_commands.add_parser("import", help="add the runs of an exported zip to the store")
    importing.add_argument("file")
    for command in runs_commands.choices.values():
        command.add_argument("--home", help=HOME_HELP)
        command.add_argument("--json", action="store_true", help="machine-readable output")
    presets = commands.add_parser("presets", help="list presets and their descriptions")
    presets.add_argument("--algo", choices=ALGORITHMS)
    fields = commands.add_parser("fields", help="list an algorithm's config fields with bounds and typical ranges")
    fields.add_argument("--algo", required=True, choices=ALGORITHMS)
    replay = commands.add_parser("replay", help="roll out a run's greedy policy and write an MP4 or GIF")
    replay.add_argument("run_id")
    replay.add_argument("--checkpoint", help="final, best, step-N (a periodic one) or a file name "
                                             "(default: final, else best, else the latest)")
    replay.add_argument("--seed", type=int, default=0, help="episode seed: the start state (default 0)")
    replay.add_argument("--out", required=True, help="file to write: .mp4 (H.264) or .gif")
    replay.add_argument("--physics", action="append", default=[], metavar="NAME=VALUE",
                        help="changed physics (gravity, masscart, masspole, length, force_mag), each within "
                             "0.1×–10× of its default; repeatable")
    replay.add_argument("--obs-noise", type=float, default=0.0,
                        help="Gaussian noise std on what the agent sees, in [0, 1]")
    replay.add_argument("--max-steps", type=int, default=500, help="episode length cap (default 500)")
    replay.add_argument("--no-overlay", action="store_true", help="plain frames, without step/action/values")
    replay.add_argument("--home", help=HOME_HELP)
    replay.add_argument("--json", action="store_true", help="print one JSON result line")
    return parser


class ProgressBar:
    """tqdm bar over env steps with episodes, the mean of the last 20 returns and the last evaluation."""

    def __init__(self, total_env_steps: int, label: str):
        from tqdm import tqdm

        self.bar = tqdm(total=total_env_steps, desc=label, unit="step", unit_scale=True, file=sys.stderr,
                        dynamic_ncols=True)
        self.recent: deque[float] = deque(maxlen=20)
        self.episodes = 0
        self.last_eval = ""

    def __call__(self, event: Event) -> None:
        if isinstance(event, Evaluated):
            self.last_eval = f"{event.mean_return:.0f}{' solved' if event.solved else ''}"
        elif isinstance(event, EpisodeEnded):
            self.episodes = event.episode
            self.recent.append(event.episode_return)
            self.bar.update(event.env_steps - self.bar.n)
            if event.episode % 10 == 0:
                recent = sum(self.recent) / len(self.recent)
                self.bar.set_postfix_str(f"ep {self.episodes} · return {recent:.0f} · eval {self.last_eval or '-'}")

    def close(self) -> None:
        self.bar.close()


def _open_store(home_arg: str | None) -> RunStore:
    """The run store (runs left 'running' by dead processes become 'interrupted' as it opens)."""
    try:
        return RunStore(ensure_data_home(data_home(home_arg)))
    except (DataHomeError, StoreError) as err:
        raise BadInput(str(err)) from None


def cmd_train(args: argparse.Namespace) -> int:
    import torch

    from cartpole_core.jobs import execute_run

    try:
        config = preset_config(args.algo, args.preset, parse_overrides(args.overrides))
    except ConfigError as err:
        raise BadInput(str(err)) from None
    if args.seed < 0:
        raise BadInput(f"--seed ({args.seed}) must be a non-negative integer")
    store = _open_store(args.home)

    torch.set_num_threads(1)  # small networks: one thread is fastest and leaves cores to other runs
    from cartpole_core.compare import default_name

    name = args.name or f"{default_name(config, args.preset)} · seed {args.seed}"  # as the dashboard names runs
    run_id = store.create_run(new_run_id(config.algo), config.to_json(), config.algo, args.seed,
                              preset=args.preset, name=name, tags=args.tag)
    progress = None if args.json else ProgressBar(config.total_env_steps, f"{config.algo}/{args.preset} "
                                                                          f"seed {args.seed}")
    interrupted = []
    previous_handler = signal.signal(signal.SIGINT, lambda *_: interrupted.append(True))  # Ctrl-C: stop cleanly
    try:
        result = execute_run(store, run_id, on_event=progress, should_stop=lambda: bool(interrupted))
    finally:
        signal.signal(signal.SIGINT, previous_handler)
        if progress:
            progress.close()
    run = store.get_run(run_id)
    if result is None:
        failure = {"run_id": run_id, "algo": config.algo, "seed": args.seed, "status": "failed",
                   "error": run["error"]}
        print(json.dumps(failure) if args.json else f"error: run {run_id} failed: {run['error']}")
        return EXIT_FAILED
    final = store.artifacts(run_id, "final")
    summary = {"run_id": run_id, "preset": args.preset, **result.to_dict(), "status": run["status"],
               "checkpoint": str(final[-1]["path"]) if final else None}
    print(json.dumps(summary) if args.json else _human_summary(summary))
    return 0


def _human_summary(summary: dict[str, Any]) -> str:
    solved = (f"solved after {summary['time_to_solve_s']:.2f} s ({summary['steps_to_solve']:,} env steps)"
              if summary["solved"] else "not solved")
    return (f"{summary['run_id']}: {summary['status']}, {summary['env_steps']:,} env steps, "
            f"{summary['episodes']:,} episodes in {summary['train_seconds']:.1f} s "
            f"({summary['env_steps_per_s']:,.0f} steps/s); {solved}; "
            f"final evaluation {summary['final_eval_mean']:.1f} ± {summary['final_eval_std']:.1f}\n"
            f"checkpoint: {summary['checkpoint']}")


def cmd_presets(args: argparse.Namespace) -> int:
    from cartpole_core.presets import PRESETS

    for algo in [args.algo] if args.algo else ALGORITHMS:
        for name, preset in PRESETS[algo].items():
            print(f"{algo:10} {name:17} {preset['description']}")
    return 0


def cmd_fields(args: argparse.Namespace) -> int:
    from cartpole_core.configs import config_class, field_specs

    for spec in field_specs(config_class(args.algo)):
        typical = f" typical {spec.typical[0]:g}–{spec.typical[1]:g}" if spec.typical else ""
        print(f"{spec.name:28} {spec.description}. Allowed: {spec.allowed()}.{typical}"
              f"{' (log scale)' if spec.log else ''} Default: {spec.default!r}")
    return 0


def _get_run(store: RunStore, run_id: str) -> dict[str, Any]:
    run = store.get_run(run_id)
    if run is None:
        raise BadInput(f"no run {run_id!r} in {store.home}; `runs list` shows the stored runs")
    return run


def cmd_runs(args: argparse.Namespace) -> int:
    from cartpole_core.archive import ImportRejected, export_runs, import_runs

    store = _open_store(args.home)
    command = args.runs_command
    if command == "list":
        runs = store.list_runs(algo=args.algo, status=args.status, tag=args.tag)
        if args.json:
            print(json.dumps([{k: v for k, v in run.items() if k != "config_json"} for run in runs]))
            return 0
        print(f"{'run id':34} {'status':11} {'steps':>9} {'eval':>6} {'solved at':>9}  name")
        for run in runs:
            final = "-" if run["final_eval"] is None else f"{run['final_eval']:.0f}"
            solved = "-" if run["time_to_solve_s"] is None else f"{run['time_to_solve_s']:.2f}s"
            print(f"{run['id']:34} {run['status']:11} {run['env_steps']:>9,} {final:>6} {solved:>9}  {run['name']}")
        return 0
    if command == "import":
        try:
            run_ids = import_runs(store, Path(args.file))
        except ImportRejected as err:
            raise BadInput(str(err)) from None
        print(json.dumps({"imported": run_ids}) if args.json else f"imported {len(run_ids)} run(s): "
                                                                   f"{', '.join(run_ids)}")
        return 0
    if command == "export":
        for run_id in args.run_ids:
            _get_run(store, run_id)
        out = Path(args.out or f"{args.run_ids[0]}.zip")
        export_runs(store, args.run_ids, out)
        print(json.dumps({"exported": args.run_ids, "file": str(out)}) if args.json else f"wrote {out}")
        return 0
    run = _get_run(store, args.run_id)
    if command == "show":
        evaluations = store.evaluations(args.run_id)
        if args.json:
            print(json.dumps({**run, "evaluations": evaluations}))
        else:
            for key, value in run.items():
                print(f"{key:16} {value}")
            for row in evaluations[-10:]:
                print(f"eval @ {row['env_steps']:>9,} steps: {row['mean_return']:6.1f} ± {row['std_return']:.1f}"
                      f"{'  solved' if row['solved'] else ''}")
        return 0
    if command == "cancel":
        if run["status"] not in ACTIVE_STATUSES:
            raise BadInput(f"run {args.run_id} is already {run['status']}")
        store.request_cancel(args.run_id)
        if run["status"] == "queued":
            store.set_status(args.run_id, "cancelled")
        print(f"cancel requested for {args.run_id}")
        return 0
    try:
        store.delete_run(args.run_id)
    except ValueError as err:
        raise BadInput(str(err)) from None
    print(f"deleted {args.run_id}")
    return 0


def cmd_replay(args: argparse.Namespace) -> int:
    import time

    from cartpole_core.agent import CheckpointError, load_agent
    from cartpole_core.envs import ConditionError, check_obs_noise, check_physics
    from cartpole_core.replay import ReplayError, choose_checkpoint, encode_gif, encode_mp4, rollout

    out = Path(args.out)
    if out.suffix.lower() not in (".mp4", ".gif"):
        raise BadInput(f"--out must end in .mp4 or .gif, got {args.out!r}")
    try:  # the ranges and message the Replay and Robustness pages use
        physics = check_physics(parse_overrides(args.physics))
        obs_noise = check_obs_noise(args.obs_noise)
    except ConditionError as err:
        raise BadInput(str(err)) from None
    store = _open_store(args.home)
    _get_run(store, args.run_id)
    started = time.perf_counter()
    try:
        artifact = choose_checkpoint(store.artifacts(args.run_id), args.checkpoint)
        agent = load_agent(artifact["path"])
        episode = rollout(agent, args.seed, physics=physics, obs_noise=obs_noise, max_steps=args.max_steps)
        encode = encode_mp4 if out.suffix.lower() == ".mp4" else encode_gif
        encode(episode, out, overlay=not args.no_overlay)
    except (ReplayError, CheckpointError) as err:
        raise BadInput(str(err)) from None
    except OSError as err:
        raise BadInput(f"cannot write {out}: {err}") from None
    summary = {"run_id": args.run_id, "checkpoint": artifact["path"].name, "seed": args.seed,
               "steps": episode.steps, "return": episode.total_return, "terminated": episode.terminated,
               "file": str(out), "bytes": out.stat().st_size, "seconds": round(time.perf_counter() - started, 3)}
    print(json.dumps(summary) if args.json else
          f"wrote {out} ({summary['bytes'] / 1024:.0f} KB): {artifact['path'].name}, seed {args.seed}, "
          f"return {episode.total_return:.0f} — {episode.outcome()}")
    return 0


def main(argv: list[str] | None = None) -> int:
    try:
        args = build_parser().parse_args(argv)
        commands = {"train": cmd_train, "presets": cmd_presets, "fields": cmd_fields, "runs": cmd_runs,
                    "replay": cmd_replay}
        return commands[args.command](args)
    except BadInput as err:
        print(f"error: {err}", file=sys.stderr)
        return EXIT_BAD_INPUT


if __name__ == "__main__":
    sys.exit(main())

