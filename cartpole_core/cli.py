"""Command line: ``python -m cartpole_core train --algo {qlearning,dqn,ppo} [--preset NAME] [--set k=v …]``.

Bad input exits 2 with one line naming what was wrong and what is allowed, and writes nothing. With ``--json``
the last stdout line is one JSON object (see DESIGN.md, "Contracts"); otherwise a progress bar on stderr shows
env steps, episodes, the recent return and the ETA.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections import deque
from typing import Any

from cartpole_core.agent import save_checkpoint
from cartpole_core.configs import ALGORITHMS, ConfigError, TrainConfig
from cartpole_core.events import EpisodeEnded, Evaluated, Event
from cartpole_core.paths import DataHomeError, data_home, ensure_data_home, new_run_id
from cartpole_core.presets import preset_config

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
    train.add_argument("--home", help="data home (default: $CARTPOLE_LAB_HOME or ./lab-data)")
    presets = commands.add_parser("presets", help="list presets and their descriptions")
    presets.add_argument("--algo", choices=ALGORITHMS)
    fields = commands.add_parser("fields", help="list an algorithm's config fields with bounds and typical ranges")
    fields.add_argument("--algo", required=True, choices=ALGORITHMS)
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


def cmd_train(args: argparse.Namespace) -> int:
    import torch

    from cartpole_core.training import train

    try:
        config = preset_config(args.algo, args.preset, parse_overrides(args.overrides))
    except ConfigError as err:
        raise BadInput(str(err)) from None
    if args.seed < 0:
        raise BadInput(f"--seed ({args.seed}) must be a non-negative integer")
    try:
        home = ensure_data_home(data_home(args.home))
    except DataHomeError as err:
        raise BadInput(str(err)) from None

    torch.set_num_threads(1)  # small networks: one thread is fastest and leaves cores to other runs
    run_id = new_run_id(config.algo)
    run_dir = home / "runs" / run_id
    label = f"{config.algo}/{args.preset} seed {args.seed}"
    progress = None if args.json else ProgressBar(config.total_env_steps, label)
    try:
        agent, result = train(config, seed=args.seed, on_event=progress)
    except FloatingPointError as err:
        print(json.dumps({"run_id": run_id, "algo": config.algo, "seed": args.seed, "status": "failed",
                          "error": str(err)}) if args.json else f"error: {err}", file=sys.stdout)
        return EXIT_FAILED
    finally:
        if progress:
            progress.close()
    checkpoint = save_checkpoint(agent, run_dir / "final.pt", env_steps=result.env_steps, seed=args.seed)
    (run_dir / "config.json").write_text(config.to_json() + "\n")
    summary = {"run_id": run_id, "preset": args.preset, **result.to_dict(), "checkpoint": str(checkpoint)}
    if args.json:
        print(json.dumps(summary))
    else:
        print(_human_summary(summary, config))
    return 0


def _human_summary(summary: dict[str, Any], config: TrainConfig) -> str:
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


def main(argv: list[str] | None = None) -> int:
    try:
        args = build_parser().parse_args(argv)
        return {"train": cmd_train, "presets": cmd_presets, "fields": cmd_fields}[args.command](args)
    except BadInput as err:
        print(f"error: {err}", file=sys.stderr)
        return EXIT_BAD_INPUT


if __name__ == "__main__":
    sys.exit(main())

