"""Command line: ``python -m cartpole_core train --algo {qlearning,dqn,ppo} [--preset NAME] [--set k=v …]``,
``runs list|show|cancel|delete|export|import|check|salvage``, ``presets [save|delete]``, ``fields``, ``replay`` and
``study run|list|show|stop|resume|delete`` (hyperparameter studies: ``cartpole_core.studies``). Runs train into the
run store, so they appear in the dashboard like runs launched there; a study's runs train in worker processes this
command starts, and are tagged ``study:<id>`` and ``trial:<n>``. ``--preset`` takes a built-in preset or one the
user saved (``presets save``, or Save as preset in the dashboard: ``runs.presets``). With ``--executor ray
--ray-address HOST:PORT`` (``train``, ``study run|resume``) runs train as tasks on that Ray cluster instead, this
process writing their output into the store (``jobs.ray_executor``).

Exit codes: 0 done; 2 bad input — one line on stderr naming the flag or field, the value and what is allowed, and
nothing written; 1 the work failed (a run failed, the run store is damaged or cannot be written, ``runs check``
found problems, the Ray cluster cannot be reached) — one line on stderr saying what is wrong and what to do, never
a traceback. With ``--json`` the last stdout line is one JSON object (see DESIGN.md, "Contracts"); otherwise a
progress bar on stderr shows env steps, episodes, the recent return and the ETA.

Only ``train``, ``replay`` and ``runs export|import`` import torch (and Gymnasium / scikit-learn): the other
commands read or write the store alone and start in well under a second.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import re
import signal
import sqlite3
import sys
from collections import deque
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from cartpole_core.config.limits import (
    SEED_MAX,
    SEEDS_PER_LAUNCH_MAX,
    LimitError,
    check_name,
    check_seed,
    check_tags,
)
from cartpole_core.config.models import ALGORITHMS, ConfigError, TrainConfig
from cartpole_core.engine.observers import Observers, RunObserver
from cartpole_core.jobs.dispatch import RAY_ADDRESS_ENV_VAR
from cartpole_core.jobs.ray_executor import RayConnectError
from cartpole_core.jobs.sink import StoreSink
from cartpole_core.records import EpisodeEnded, Evaluated, Event, RunResult
from cartpole_core.runs.home import HOME_ENV_VAR, DataHomeError, data_home, ensure_data_home, new_run_id
from cartpole_core.runs.presets import DESCRIPTION_MAX, NAME_RULE, PresetError
from cartpole_core.runs.store import ACTIVE_STATUSES, DB_NAME, STATUSES, RunStore, StoreError

HOME_HELP = "data home (default: $CARTPOLE_LAB_HOME or ./lab-data)"
EXIT_BAD_INPUT = 2
EXIT_FAILED = 1
EXIT_INTERRUPTED = 130
RAY_POLL_S = 0.05  # `train --executor ray`: how often the driver takes in what its run sent
GROUP_POLL_S = 0.1  # `train --seeds`: how often the dispatcher starts runs and the progress bar moves
MAX_NESTING = 8  # brackets deep in a --set value; config fields need two at most
REPAIR_HINT = ("run `python -m cartpole_core runs check` to see what is damaged, or `python -m cartpole_core runs "
               "salvage --to NEW_HOME` to copy what is readable into a new data home")


class BadInput(Exception):
    """Raised for any invalid command-line input; reported as one line, exit code 2."""


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # one line instead of argparse's usage block
        raise BadInput(f"{_clip(message, 300)} (see --help)")


def _clip(text: str, limit: int = 60) -> str:
    return text if len(text) <= limit else text[:limit - 3] + "..."


def _shown(text: str) -> str:
    """A command-line value as quoted in a message: repr (escapes control characters), at most 60 characters."""
    return _clip(repr(text))


def parse_value(text: str) -> Any:
    """``--set`` values: JSON where it parses (numbers, true/false, null, [64, 64]); ``64,64`` is a list;
    ``none``/empty means no value; anything else is a string (e.g. ``relu``). BadInput for a value nested more
    than MAX_NESTING brackets deep or a whole number too long for Python (over 4,300 digits)."""
    if text.strip().lower() in ("", "none", "null"):
        return None
    if _nesting(text) > MAX_NESTING:
        raise BadInput(f"value nested more than {MAX_NESTING} brackets deep")
    try:
        return json.loads(text)
    except json.JSONDecodeError:
        pass
    except (ValueError, RecursionError):  # an integer beyond Python's digit limit for conversion
        longest = max((len(run) for run in re.findall(r"[0-9]+", text)), default=0)
        raise BadInput(f"a number of {longest:,} digits is too long") from None
    if "," in text:
        return [parse_value(part) for part in text.split(",")]
    lowered = text.strip().lower()
    if lowered in ("true", "false"):
        return lowered == "true"
    return text


def _nesting(text: str) -> int:
    depth = deepest = 0
    for char in text:
        if char in "[{":
            depth += 1
            deepest = max(deepest, depth)
        elif char in "]}":
            depth = max(0, depth - 1)
    return deepest


def parse_overrides(pairs: list[str], flag: str = "--set",
                    allowed: Callable[[str], str | None] | None = None) -> dict[str, Any]:
    """``name=value`` pairs as a dict; ``allowed(name)`` describes a field's allowed values for messages."""
    overrides = {}
    for pair in pairs:
        name, sep, value = pair.partition("=")
        if not sep or not name.strip():
            raise BadInput(f"{flag} expects field=value, got {_shown(pair)}")
        name = name.strip()
        try:
            overrides[name] = parse_value(value)
        except BadInput as err:
            what = allowed(name) if allowed else None
            raise BadInput(f"{flag} {_clip(name)}: {err}" + (f"; {name} must be {what}" if what else "")) from None
    return overrides


def _int_in(text: str, flag: str, low: int, high: int) -> int:
    """An integer flag's value: ASCII digits (no 5,000-digit conversions), within [low, high]."""
    stripped = text.strip()
    allowed = f"{flag} must be an integer from {low:,} to {high:,}"
    if not re.fullmatch(r"[+-]?[0-9]+", stripped):
        raise BadInput(f"{allowed}, got {_shown(text)}")
    digits = len(stripped.lstrip("+-").lstrip("0"))
    if digits > 30:
        raise BadInput(f"{allowed}, got an integer of {digits:,} digits")
    value = int(stripped)
    if not low <= value <= high:
        raise BadInput(f"{allowed}, got {value}")
    return value


def _seed(text: str, flag: str) -> int:
    """A seed flag's value, in limits.check_seed's range."""
    try:
        return check_seed(_int_in(text, flag, 0, SEED_MAX), flag)
    except LimitError as err:
        raise BadInput(str(err)) from None


def _seed_list(text: str) -> list[int]:
    """``--seeds``: ranges and single seeds, comma-separated (``0-7``, ``0,3,5``, ``0-3,10``), each in check_seed's
    range, no repeats, at most SEEDS_PER_LAUNCH_MAX."""
    allowed = (f"--seeds takes seeds and ranges like 0-7 or 0,3,5 (0 to {SEED_MAX:,}, at most "
               f"{SEEDS_PER_LAUNCH_MAX}, none twice)")
    seeds: list[int] = []
    for part in text.split(","):
        low, dash, high = part.strip().partition("-")
        if not re.fullmatch(r"[0-9]{1,10}", low) or (dash and not re.fullmatch(r"[0-9]{1,10}", high)):
            raise BadInput(f"{allowed}, got {_shown(text)}")
        first, last = int(low), int(high) if dash else int(low)
        if last < first or last > SEED_MAX or len(seeds) + last - first + 1 > SEEDS_PER_LAUNCH_MAX:
            raise BadInput(f"{allowed}, got {_shown(text)}")
        seeds += range(first, last + 1)
    if len(set(seeds)) != len(seeds):
        raise BadInput(f"{allowed}, got {_shown(text)}")
    return seeds


def _float_arg(text: str) -> float:
    try:
        return float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be a number, got {_shown(text)}") from None


def _text(value: str, flag: str) -> str:
    """Command-line text must be storable: argv bytes that are not UTF-8 arrive as lone surrogates."""
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        raise BadInput(f"{flag} must be UTF-8 text, got {_shown(value)}") from None
    return value


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="python -m cartpole_core", description="CartPole Lab: train and inspect RL agents.")
    commands = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)
    train = commands.add_parser("train", help="train one run")
    train.add_argument("--algo", required=True, choices=ALGORITHMS)
    train.add_argument("--preset", default="fast", help="preset name, built-in or yours (default: fast); see "
                                                        "`presets`")
    train.add_argument("--set", dest="overrides", action="append", default=[], metavar="FIELD=VALUE",
                       help="override a config field, e.g. --set learning_rate.start=3e-4 --set hidden_sizes=64,64")
    train.add_argument("--seed", default="0", help=f"training seed, 0 to {SEED_MAX:,} (default 0)")
    train.add_argument("--seeds", help=f"train a group instead, one run per seed: 0-7, 0,3,5 or 0-3,10; at most "
                                       f"{SEEDS_PER_LAUNCH_MAX} (PPO and DQN runs of one group train batched as "
                                       "populations, one per core)")
    train.add_argument("--json", action="store_true", help="no progress bar; print one JSON result line (a line "
                                                           "per run, in seed order, with --seeds)")
    train.add_argument("--name", help="a name for the run, at most 200 characters (default: what differs from the "
                                      "preset, e.g. 'dqn/fast lr=5e-3 · seed 0')")
    train.add_argument("--tag", action="append", default=[], help="tag the run (repeatable; at most 20 tags of 50 "
                                                                   "characters)")
    train.add_argument("--home", help=HOME_HELP)
    _add_executor_flags(train)
    runs = commands.add_parser("runs", help="list, show, cancel, delete, export, import, check and salvage runs")
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
    runs_commands.add_parser("check", help="check the run store's integrity: prints the problems or 'ok' "
                                           "(exit 1 when damaged)")
    salvage = runs_commands.add_parser("salvage", help="copy every readable run, metric and checkpoint of a "
                                                       "damaged store into a new data home")
    salvage.add_argument("--to", required=True, metavar="NEW_HOME", help="the new data home (a new or empty folder)")
    for command in runs_commands.choices.values():
        command.add_argument("--home", help=HOME_HELP)
        command.add_argument("--json", action="store_true", help="machine-readable output")
    presets = commands.add_parser("presets", help="list presets (built-in, then yours) with their descriptions; "
                                                  "save or delete your own")
    presets.add_argument("--algo", choices=ALGORITHMS)
    presets.add_argument("--home", help=HOME_HELP)
    preset_commands = presets.add_subparsers(dest="presets_command", parser_class=_Parser)
    save = preset_commands.add_parser("save", help="save a config as your preset: a run's (--from-run), or a preset's "
                                                   "with --set changes")
    save.add_argument("--algo", required=True, choices=ALGORITHMS)
    save.add_argument("--name", required=True, help=f"the preset's name: {NAME_RULE}")
    save.add_argument("--from-run", metavar="RUN_ID", help="save this run's config (with any --set changes)")
    save.add_argument("--preset", help="the preset to start from, without --from-run (default: fast)")
    save.add_argument("--set", dest="overrides", action="append", default=[], metavar="FIELD=VALUE",
                      help="change a field of the config saved, e.g. --set gamma=0.98")
    save.add_argument("--description", default="", help=f"one line, at most {DESCRIPTION_MAX} characters")
    save.add_argument("--replace", action="store_true", help="replace your preset of that name")
    delete = preset_commands.add_parser("delete", help="delete one of your presets (runs launched from it keep "
                                                       "their config)")
    delete.add_argument("--algo", required=True, choices=ALGORITHMS)
    delete.add_argument("--name", required=True)
    for command in (save, delete):  # SUPPRESS: `presets --home H save …` keeps H
        command.add_argument("--home", help=HOME_HELP, default=argparse.SUPPRESS)
    fields = commands.add_parser("fields", help="list an algorithm's config fields with bounds and typical ranges")
    fields.add_argument("--algo", required=True, choices=ALGORITHMS)
    replay = commands.add_parser("replay", help="roll out a run's greedy policy and write an MP4 or GIF")
    replay.add_argument("run_id")
    replay.add_argument("--checkpoint", help="final, best, step-N (a periodic one) or a file name "
                                             "(default: final, else best, else the latest)")
    replay.add_argument("--seed", default="0", help=f"episode seed: the start state, 0 to {SEED_MAX:,} (default 0)")
    replay.add_argument("--out", required=True, help="file to write: .mp4 (H.264) or .gif")
    replay.add_argument("--physics", action="append", default=[], metavar="NAME=VALUE",
                        help="changed physics (gravity, masscart, masspole, length, force_mag), each within "
                             "0.1×–10× of its default; repeatable")
    replay.add_argument("--obs-noise", type=_float_arg, default=0.0,
                        help="Gaussian noise std on what the agent sees, in [0, 1]")
    replay.add_argument("--max-steps", default="500",
                        help="episode length cap, 1 to 100000 (default 500)")
    replay.add_argument("--no-overlay", action="store_true", help="plain frames, without step/action/values")
    replay.add_argument("--home", help=HOME_HELP)
    replay.add_argument("--json", action="store_true", help="print one JSON result line")
    _add_study_parser(commands)
    return parser


def _add_study_parser(commands: argparse._SubParsersAction) -> None:
    from cartpole_core.studies.objectives import OBJECTIVES
    from cartpole_core.studies.storage import (
        CONFIRM_SEEDS,
        CONFIRM_TRIALS,
        CONFIRM_TRIALS_MAX,
        PRUNERS,
        SAMPLERS,
        TRIALS_MAX,
    )

    study = commands.add_parser("study", help="hyperparameter studies: run, list, show, stop, resume, delete")
    study_commands = study.add_subparsers(dest="study_command", required=True, parser_class=_Parser)
    run = study_commands.add_parser("run", help="search configurations: trials of seeded runs, ask-and-tell")
    run.add_argument("--algo", required=True, choices=ALGORITHMS)
    run.add_argument("--preset", default="fast", help="the base config's preset (default: fast)")
    run.add_argument("--set", dest="overrides", action="append", default=[], metavar="FIELD=VALUE",
                     help="change a field of the base config for every trial (the budget too)")
    run.add_argument("--vary", action="append", default=[], metavar="SPEC",
                     help="a field to search: FIELD=LOW:HIGH[:log], FIELD=a,b,c, or FIELD (its typical range); "
                          "repeatable, at least one; `fields --algo ALGO` lists the fields")
    run.add_argument("--trials", default="20", help=f"trials to run, 1 to {TRIALS_MAX:,} (default 20; a grid runs "
                                                    f"each of its points once, at most this many)")
    run.add_argument("--seeds", default="3", help=f"runs per trial, 1 to {SEEDS_PER_LAUNCH_MAX} (default 3): seeds "
                                                  f"SEED … SEED+SEEDS-1, the same for every trial")
    run.add_argument("--sampler", default="tpe", choices=SAMPLERS, help="tpe (default), random, or grid (3 values "
                                                                         "per range, every choice)")
    run.add_argument("--pruner", default="median", choices=PRUNERS,
                     help="stop unpromising trials early: median (default), halving (successive halving) or none")
    run.add_argument("--objective", default="steps_to_solve", choices=tuple(OBJECTIVES),
                     help="what the search optimizes, over each trial's seeds by their interquartile mean "
                          "(default steps_to_solve). " + " ".join(f"{name}: {objective.definition}"
                                                                   for name, objective in OBJECTIVES.items()))
    run.add_argument("--confirm-trials", default=str(CONFIRM_TRIALS),
                     help=f"once the trials ended, re-run the best this many on fresh seeds before naming the best, 0 "
                          f"to {CONFIRM_TRIALS_MAX} (default {CONFIRM_TRIALS}; 0: name the best trial as it is)")
    run.add_argument("--confirm-seeds", default=str(CONFIRM_SEEDS),
                     help=f"fresh seeds per confirmed trial, 1 to {SEEDS_PER_LAUNCH_MAX} (default {CONFIRM_SEEDS}): "
                          f"the seeds after the trials'; the best is the one that held on the most of them")
    run.add_argument("--name", help="a name for the study (default: the preset and the varied fields)")
    run.add_argument("--seed", default="0", help=f"the first run seed of every trial and the sampler's seed, 0 to "
                                                 f"{SEED_MAX:,} (default 0)")
    study_commands.add_parser("list", help="list studies, newest first")
    for name, text in (("show", "a study's trials and its best configuration"),
                       ("stop", "stop a study: its trials in flight are cancelled (their data stays)"),
                       ("resume", "drive a stopped or interrupted study on to its number of trials"),
                       ("delete", "delete a study's spec and journal (its runs stay in the run store)")):
        command = study_commands.add_parser(name, help=text)
        command.add_argument("study_id")
    for name in ("run", "resume"):
        study_commands.choices[name].add_argument(
            "--parallel", help="trials in flight at once (default: one run per core, at least one trial)")
        _add_executor_flags(study_commands.choices[name])
    for command in study_commands.choices.values():
        command.add_argument("--home", help=HOME_HELP)
        command.add_argument("--json", action="store_true", help="machine-readable output (one JSON line last)")


def _add_executor_flags(command: argparse.ArgumentParser) -> None:
    command.add_argument("--executor", choices=("local", "ray"), default="local",
                         help="where runs train: local worker processes (default) or a Ray cluster (--ray-address)")
    command.add_argument("--ray-address", metavar="HOST:PORT",
                         help=f"the Ray cluster's head, as `ray start --head --port PORT` started it (default: "
                              f"${RAY_ADDRESS_ENV_VAR}); this machine must be one of its nodes")


def _ray_address(args: argparse.Namespace) -> str | None:
    """The Ray cluster ``--executor ray`` trains on, or None for local worker processes."""
    if args.executor != "ray":
        if args.ray_address is not None:
            raise BadInput("--ray-address is used with --executor ray; add --executor ray or drop --ray-address")
        return None
    source = "--ray-address" if args.ray_address is not None else RAY_ADDRESS_ENV_VAR
    address = _text(args.ray_address or os.environ.get(RAY_ADDRESS_ENV_VAR, ""), source).strip()
    if not address:
        raise BadInput(f"--executor ray needs the cluster's address: --ray-address HOST:PORT (the head's `ray start "
                       f"--head --port PORT`) or {RAY_ADDRESS_ENV_VAR}")
    from cartpole_core.jobs.ray_executor import check_address

    try:
        check_address(address)
    except ValueError as err:
        raise BadInput(f"{source}: {err}") from None
    return address


class ProgressBar(RunObserver):
    """tqdm bar over env steps with episodes, the mean of the last 20 returns and the last evaluation."""

    def __init__(self, total_env_steps: int, label: str):
        from tqdm import tqdm

        self.bar = tqdm(total=total_env_steps, desc=label, unit="step", unit_scale=True, file=sys.stderr,
                        dynamic_ncols=True)
        self.recent: deque[float] = deque(maxlen=20)
        self.episodes = 0
        self.last_eval = ""

    def on_event(self, event: Event) -> None:
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


class CtrlC(RunObserver):
    """While installed (a ``with`` block), Ctrl-C asks the run to stop: it ends cleanly at its next check, its data
    kept, status "cancelled"."""

    def __init__(self) -> None:
        self.pressed = False

    def __enter__(self) -> CtrlC:
        self._previous = signal.signal(signal.SIGINT, self._press)
        return self

    def __exit__(self, *exc: object) -> None:
        signal.signal(signal.SIGINT, self._previous)

    def _press(self, *_: object) -> None:
        self.pressed = True

    def should_stop(self) -> bool:
        return self.pressed


# ------------------------------------------------------------------------------------------------ the store


def _home(home_arg: str | None, flag: str = "--home") -> Path:
    """The data home a flag (or $CARTPOLE_LAB_HOME) names, without creating it."""
    try:
        return data_home(home_arg)
    except (OSError, RuntimeError, ValueError) as err:  # e.g. ~nosuchuser, a symlink loop
        raise BadInput(f"{flag} {_shown(str(home_arg))} cannot be used as a data home: {err}") from None


def _open_store(home_arg: str | None) -> RunStore:
    """The run store, created with its data home when missing (runs left 'running' by dead processes become
    'interrupted' as it opens). DataHomeError / StoreError propagate to ``main``."""
    return _opened(RunStore(ensure_data_home(_home(home_arg))))


def _existing_store(home_arg: str | None) -> RunStore | None:
    """The run store if the data home has one, else None: commands that only look up runs create nothing."""
    home = _home(home_arg)
    try:
        if home.exists() and not home.is_dir():
            raise DataHomeError(f"the data home {home} is not a folder; set {HOME_ENV_VAR} or --home to a folder")
        if not (home / DB_NAME).exists():
            return None
    except DataHomeError:
        raise
    except OSError as err:
        raise DataHomeError(f"cannot use the data home {home}: {err.strerror or err}") from None
    return _opened(RunStore(home))


_OPEN_STORES: list[RunStore] = []  # closed as ``main`` returns, so in-process callers do not collect connections


def _opened(store: RunStore) -> RunStore:
    _OPEN_STORES.append(store)
    return store


class _StoreOnFirstUse:
    """Opens (creating) the store only when something calls it: an import that is rejected while its archive is
    validated has then written nothing."""

    def __init__(self, home_arg: str | None):
        self._home_arg = home_arg
        self._store: RunStore | None = None

    def __getattr__(self, name: str) -> Any:
        if self._store is None:
            self._store = _open_store(self._home_arg)
        return getattr(self._store, name)


def _get_run(store: RunStore | None, run_id: str, home_arg: str | None) -> dict[str, Any]:
    run = None
    if store is not None and _is_utf8(run_id):
        run = store.get_run(run_id)
    if run is None:
        raise BadInput(f"no run {_shown(run_id)} in {_home(home_arg)}; `runs list` shows the stored runs")
    return run


def _is_utf8(text: str) -> bool:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


# ------------------------------------------------------------------------------------------------ commands


def _config(args: argparse.Namespace, base: TrainConfig | None = None) -> TrainConfig:
    """The config ``--algo``, ``--preset`` and ``--set`` describe; ``--set`` changes ``base`` (a run's config)
    instead of the preset when given."""
    from cartpole_core.config.models import config_class, spec_lookup, with_overrides

    specs = spec_lookup(config_class(args.algo))
    overrides = parse_overrides(args.overrides, "--set",
                                lambda name: specs[name].allowed() if name in specs else None)
    try:
        return with_overrides(base or _preset_config(args), overrides)
    except ConfigError as err:
        raise BadInput(str(err)) from None


def _preset_config(args: argparse.Namespace) -> TrainConfig:
    """The config of ``--preset``: built-in, or the user's in the data home."""
    from cartpole_core.runs.presets import load_preset_config

    try:
        return load_preset_config(_home(args.home), args.algo, _text(args.preset, "--preset"))
    except ConfigError as err:
        raise BadInput(str(err)) from None


def _name(args: argparse.Namespace) -> str | None:
    try:
        return check_name(_text(args.name, "--name")) if args.name is not None else None
    except LimitError as err:
        raise BadInput(f"--name: {err}") from None


def cmd_train(args: argparse.Namespace) -> int:
    config = _config(args)
    seed = _seed(args.seed, "--seed")
    seeds = _seed_list(args.seeds) if args.seeds is not None else None
    name = _name(args)
    try:
        tags = check_tags([_text(tag, "--tag") for tag in args.tag])
    except LimitError as err:
        raise BadInput(f"--tag: {err}") from None
    address = _ray_address(args)
    _connect(address)  # an unreachable cluster: one line, before anything is written
    store = _open_store(args.home)
    if seeds is not None:
        return _train_group(args, store, config, seeds, name, tags, address)

    from cartpole_core.runs.compare import default_name

    # As the dashboard names runs: what differs from the preset (a user preset's config is known here, in the home).
    name = name or f"{default_name(config, args.preset, _preset_config(args))} · seed {seed}"
    # Created running in this process: the dashboard's scheduler, if one is up, can never claim it meanwhile.
    run_id = store.create_run(new_run_id(config.algo), config.to_json(), config.algo, seed,
                              preset=args.preset, name=name, tags=tags, running_pid=os.getpid())
    progress = None if args.json else ProgressBar(config.total_env_steps, f"{config.algo}/{args.preset} "
                                                                          f"seed {seed}")
    try:
        with CtrlC() as ctrl_c:
            observer = Observers([progress, ctrl_c])
            result = (_train_here(store, run_id, config, seed, observer) if address is None else
                      _train_on_ray(store, run_id, address, observer))
    finally:
        if progress:
            progress.close()
    run = store.get_run(run_id)
    if result is None:
        failure = {"run_id": run_id, "algo": config.algo, "seed": seed, "status": "failed",
                   "error": run["error"]}
        print(json.dumps(failure) if args.json else f"error: run {run_id} failed: {run['error']}")
        return EXIT_FAILED
    final = store.artifacts(run_id, "final")
    summary = {"run_id": run_id, "preset": args.preset, **result.to_dict(), "status": run["status"],
               "checkpoint": str(final[-1]["path"]) if final else None}
    print(json.dumps(summary) if args.json else _human_summary(summary))
    return 0


def _train_group(args: argparse.Namespace, store: RunStore, config: TrainConfig, seeds: list[int], name: str | None,
                 tags: tuple[str, ...], address: str | None) -> int:
    """``train --seeds``: the runs queued as one group and trained here by a dispatcher (local workers, one per core,
    a PPO group's runs batched as populations; or the Ray cluster), a progress bar over all their steps; then a line
    per run, in seed order. Ctrl-C cancels them (their data stays). Exit 1 if a run failed."""
    import time

    from cartpole_core.jobs.dispatch import Dispatcher
    from cartpole_core.jobs.queue import submit
    from cartpole_core.runs.compare import default_name

    # Queued before a dispatcher exists here, so the whole group is planned at once (the dashboard's scheduler, if
    # one is up on this home, may train some of them: they are ordinary queued runs).
    try:
        _, run_ids = submit(store, config, seeds, preset=args.preset,
                            name=name or default_name(config, args.preset, _preset_config(args)), tags=tags)
    except LimitError as err:  # e.g. the queue is full
        raise BadInput(str(err)) from None
    dispatcher = Dispatcher.local(store.home) if address is None else Dispatcher.ray(store.home, address)
    total = config.total_env_steps * len(run_ids)
    progress = None if args.json else ProgressBar(total, f"{config.algo}/{args.preset} seeds {args.seeds}")
    try:
        with CtrlC() as ctrl_c:
            cancelled = False
            while dispatcher.executor.active or any(store.get_run(run_id)["status"] in ACTIVE_STATUSES
                                                    for run_id in run_ids):
                if ctrl_c.pressed and not cancelled:
                    for run_id in run_ids:
                        dispatcher.cancel(run_id)
                    cancelled = True
                dispatcher.pump()
                if progress is not None:
                    progress.bar.update(sum(store.get_run(run_id)["env_steps"] for run_id in run_ids) - progress.bar.n)
                time.sleep(GROUP_POLL_S)
    finally:
        if progress is not None:
            progress.close()
        dispatcher.shutdown()
        dispatcher.store.close()
    failed = False
    for run_id in run_ids:
        line = _run_line(store, store.get_run(run_id), args.preset)
        failed = failed or line["status"] == "failed"
        print(json.dumps(line) if args.json else
              (f"error: run {run_id} failed: {line['error']}" if line["status"] == "failed" else _human_summary(line)))
    return EXIT_FAILED if failed else 0


def _run_line(store: RunStore, run: dict[str, Any], preset: str) -> dict[str, Any]:
    """A finished run of a group as ``train --json`` prints a run: the same fields as a single run's line."""
    if run["status"] == "failed":
        return {"run_id": run["id"], "algo": run["algo"], "seed": run["seed"], "status": "failed",
                "error": run["error"]}
    evaluations = store.evaluations(run["id"])
    solved = bool(run["solved"]) and run["steps_to_solve"] is not None
    final = store.artifacts(run["id"], "final")
    return {"run_id": run["id"], "preset": preset, "algo": run["algo"], "seed": run["seed"], "status": run["status"],
            "env_steps": run["env_steps"], "episodes": run["episodes"], "train_seconds": run["train_seconds"],
            "solved": solved, "time_to_solve_s": run["time_to_solve_s"] if solved else None,
            "steps_to_solve": run["steps_to_solve"] if solved else None, "final_eval_mean": run["final_eval"],
            "final_eval_std": evaluations[-1]["std_return"] if evaluations else None,
            "best_eval_mean": run["best_eval"],
            "env_steps_per_s": run["env_steps"] / run["train_seconds"] if run["train_seconds"] else 0.0,
            "checkpoint": str(final[-1]["path"]) if final else None}


def _train_here(store: RunStore, run_id: str, config: TrainConfig, seed: int,
                observer: RunObserver) -> RunResult | None:
    from cartpole_core.engine.process import prepare_training_process
    from cartpole_core.jobs.execution import execute_run

    prepare_training_process()
    return execute_run(StoreSink(store, run_id), config.to_json(), seed, observer=observer)


class _WatchedSink(StoreSink):
    """The store's sink of a run trained on Ray, also showing its events to an observer (the progress bar) and
    keeping its result."""

    def __init__(self, store: RunStore, run_id: str, observer: RunObserver):
        super().__init__(store, run_id)
        self.observer = observer
        self.result: RunResult | None = None

    def append_events(self, events: Sequence[Event]) -> None:
        super().append_events(events)
        for event in events:
            self.observer.on_event(event)

    def finished(self, result: RunResult) -> None:
        self.result = result
        super().finished(result)


def _train_on_ray(store: RunStore, run_id: str, address: str, observer: RunObserver) -> RunResult | None:
    """Train the run as a task on the Ray cluster, this process writing what it sends into the store; a stop asked
    by ``observer`` (Ctrl-C) or by ``runs cancel`` cancels it as locally."""
    import time

    from cartpole_core.jobs.ray_executor import RayExecutor

    sink = _WatchedSink(store, run_id, observer)
    executor = RayExecutor(store, address, sink_for=lambda _: sink)
    executor.submit(run_id)
    while executor.active:
        executor.poll()
        if observer.should_stop() or store.cancel_requested(run_id):
            executor.cancel(run_id)
        time.sleep(RAY_POLL_S)
    executor.shutdown()
    return sink.result


def _human_summary(summary: dict[str, Any]) -> str:
    solved = (f"solved after {summary['time_to_solve_s']:.2f} s ({summary['steps_to_solve']:,} env steps)"
              if summary["solved"] else "not solved")
    return (f"{summary['run_id']}: {summary['status']}, {summary['env_steps']:,} env steps, "
            f"{summary['episodes']:,} episodes in {summary['train_seconds']:.1f} s "
            f"({summary['env_steps_per_s']:,.0f} steps/s); {solved}; "
            f"final evaluation {summary['final_eval_mean']:.1f} ± {summary['final_eval_std']:.1f}\n"
            f"checkpoint: {summary['checkpoint']}")


def cmd_presets(args: argparse.Namespace) -> int:
    """List the built-in presets, then the user's (marked as theirs, with where they came from); a preset file that
    cannot be read is a warning line on stderr."""
    if args.presets_command is not None:
        return {"save": _preset_save, "delete": _preset_delete}[args.presets_command](args)
    from cartpole_core.config.presets import PRESETS
    from cartpole_core.runs.presets import user_presets

    yours, problems = user_presets(_home(args.home), args.algo)
    for problem in problems:
        print(f"warning: {' '.join(problem.split())}", file=sys.stderr)
    for algo in [args.algo] if args.algo else ALGORITHMS:
        for name, preset in PRESETS[algo].items():
            print(f"{algo:10} {name:17} {preset['description']}")
        for preset in (preset for preset in yours if preset.algo == algo):
            origin = f"yours, from {preset.source}" if preset.source else "yours"
            print(f"{algo:10} {preset.name:17} ({origin}) {preset.description}".rstrip())
    return 0


def _preset_save(args: argparse.Namespace) -> int:
    """``presets save``: a run's config (``--from-run``) or a preset's (``--preset``, default fast), changed by
    ``--set``, saved under ``--name``. Every check runs before anything is written."""
    from cartpole_core.config.models import config_from_json
    from cartpole_core.runs.compare import default_name
    from cartpole_core.runs.presets import check_preset_name, is_user_preset, save_preset

    name = check_preset_name(args.algo, _text(args.name, "--name"))
    if is_user_preset(_home(args.home), args.algo, name) and not args.replace:
        raise BadInput(f"you already have a {args.algo} preset {name!r}; choose another --name, or add --replace to "
                       f"replace it")
    if args.from_run is not None:
        if args.preset is not None:
            raise BadInput("--from-run and --preset both name the config to save; give one")
        run = _get_run(_existing_store(args.home), _text(args.from_run, "--from-run"), args.home)
        if run["algo"] != args.algo:
            raise BadInput(f"run {run['id']} is a {run['algo']} run, not {args.algo}; use --algo {run['algo']}")
        config, source = _config(args, base=config_from_json(run["config_json"])), f"run {run['id']}"
    else:
        args.preset = args.preset or "fast"
        config = _config(args)
        source = default_name(config, args.preset, _preset_config(args))
    preset = save_preset(_home(args.home), args.algo, name, config, _text(args.description, "--description"),
                         source, replace=args.replace)
    print(f"saved your {args.algo} preset {preset.name!r} (from {source}); train it with `python -m cartpole_core "
          f"train --algo {args.algo} --preset {preset.name}`")
    return 0


def _preset_delete(args: argparse.Namespace) -> int:
    from cartpole_core.runs.presets import delete_preset

    delete_preset(_home(args.home), args.algo, _text(args.name, "--name"))
    print(f"deleted your {args.algo} preset {args.name!r}; runs launched from it keep their config")
    return 0


def cmd_fields(args: argparse.Namespace) -> int:
    from cartpole_core.config.models import config_class, field_specs

    for spec in field_specs(config_class(args.algo)):
        typical = f" typical {spec.typical[0]:g}–{spec.typical[1]:g}" if spec.typical else ""
        print(f"{spec.name:28} {spec.description}. Allowed: {spec.allowed()}.{typical}"
              f"{' (log scale)' if spec.log else ''} Default: {spec.default!r}")
    return 0


def cmd_runs(args: argparse.Namespace) -> int:
    command = args.runs_command
    if command == "check":
        return _check(args)
    if command == "salvage":
        return _salvage(args)
    if command == "import":
        from cartpole_core.runs.archive import ImportRejected, import_runs  # torch: checkpoints are validated

        try:
            run_ids = import_runs(_StoreOnFirstUse(args.home), Path(args.file))
        except ImportRejected as err:
            raise BadInput(str(err)) from None
        print(json.dumps({"imported": run_ids}) if args.json else f"imported {len(run_ids)} run(s): "
                                                                   f"{', '.join(run_ids)}")
        return 0
    store = _existing_store(args.home)
    if command == "list":
        runs = store.list_runs(algo=args.algo, status=args.status, tag=args.tag) if store else []
        if args.json:
            print(json.dumps([{k: v for k, v in run.items() if k != "config_json"} for run in runs]))
            return 0
        print(f"{'run id':34} {'status':11} {'steps':>9} {'eval':>6} {'solved at':>9}  name")
        for run in runs:
            final = "-" if run["final_eval"] is None else f"{run['final_eval']:.0f}"
            solved = "-" if run["time_to_solve_s"] is None else f"{run['time_to_solve_s']:.2f}s"
            print(f"{run['id']:34} {run['status']:11} {run['env_steps']:>9,} {final:>6} {solved:>9}  {run['name']}")
        return 0
    if command == "export":
        for run_id in args.run_ids:
            _get_run(store, run_id, args.home)
        out = Path(args.out or f"{args.run_ids[0]}.zip")
        if not out.name or out.is_dir():
            raise BadInput(f"--out must name a zip file to write, got the folder {_shown(str(out))}")
        from cartpole_core.runs.archive import export_runs

        partial = out.with_name(f".{out.name}.partial")  # a failed export leaves no half-written zip behind
        try:
            export_runs(store, args.run_ids, partial)
            partial.replace(out)
        except OSError as err:
            raise BadInput(f"--out: cannot write {out}: {err.strerror or err}") from None
        finally:
            with contextlib.suppress(OSError):
                partial.unlink(missing_ok=True)
        print(json.dumps({"exported": args.run_ids, "file": str(out)}) if args.json else f"wrote {out}")
        return 0
    run = _get_run(store, args.run_id, args.home)
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
        from cartpole_core.jobs.queue import cancel_run

        cancel_run(store, args.run_id)
        print(f"cancel requested for {args.run_id}")
        return 0
    try:
        store.delete_run(args.run_id)
    except (KeyError, ValueError) as err:
        raise BadInput(str(err).strip("'\"")) from None
    print(f"deleted {args.run_id}")
    return 0


def _check(args: argparse.Namespace) -> int:
    from cartpole_core.runs.store import check_store

    home = _home(args.home)
    problems = check_store(home)
    if args.json:
        print(json.dumps({"home": str(home), "ok": not problems, "problems": problems}))
    else:
        print("\n".join(problems) if problems else f"ok: the run store in {home} is healthy")
    if problems:
        print(f"error: the run store in {home} is damaged ({len(problems)} problem(s)); save what is readable "
              f"with `python -m cartpole_core runs salvage --to NEW_HOME`", file=sys.stderr)
        return EXIT_FAILED
    return 0


def _salvage(args: argparse.Namespace) -> int:
    from cartpole_core.runs.store import salvage_store

    home, new_home = _home(args.home), _home(args.to, "--to")
    if new_home == home:
        raise BadInput(f"--to must be a new data home, not the damaged one ({home})")
    try:
        counts = salvage_store(home, new_home)
    except (ValueError, FileExistsError) as err:
        raise BadInput(f"--to: {err}") from None
    if args.json:
        print(json.dumps({"from": str(home), "to": str(new_home), "salvaged": counts}))
    else:
        saved = ", ".join(f"{count:,} {what}" for what, count in counts.items()) or "nothing"
        print(f"saved {saved} from {home} into {new_home}; use it with --home {new_home} "
              f"(or {HOME_ENV_VAR}={new_home})")
    return 0


def cmd_replay(args: argparse.Namespace) -> int:
    import time

    from cartpole_core.engine.envs import CONDITIONS, ConditionError, check_obs_noise, check_physics, exact_text

    out = Path(args.out)
    if out.suffix.lower() not in (".mp4", ".gif"):
        raise BadInput(f"--out must end in .mp4 or .gif, got {_shown(args.out)}")

    def allowed(name: str) -> str | None:
        spec = CONDITIONS.get(name)
        return f"a number in [{exact_text(spec.low)}, {exact_text(spec.high)}] {spec.unit}" if spec else None

    requested = parse_overrides(args.physics, "--physics", allowed)
    for name, value in requested.items():  # beyond float range, check_condition's math.isfinite would overflow
        if isinstance(value, int) and not isinstance(value, bool) and abs(value) > 1e300 and allowed(name):
            digits = value.bit_length() * 0.30103
            raise BadInput(f"--physics {name}: an integer of about {digits:,.0f} digits is out of range; "
                           f"{name} must be {allowed(name)}")
    try:  # the ranges and message the Replay and Robustness pages use
        physics = check_physics(requested)
        obs_noise = check_obs_noise(args.obs_noise)
    except ConditionError as err:
        raise BadInput(str(err)) from None
    seed = _seed(args.seed, "--seed")
    max_steps = _int_in(args.max_steps, "--max-steps", 1, 100_000)
    if args.checkpoint is not None:
        _text(args.checkpoint, "--checkpoint")
    store = _existing_store(args.home)
    _get_run(store, args.run_id, args.home)

    from cartpole_core.engine.agent import CheckpointError, load_agent
    from cartpole_core.watch.replay import ReplayError, choose_checkpoint, encode_gif, encode_mp4, rollout

    started = time.perf_counter()
    try:
        artifact = choose_checkpoint(store.artifacts(args.run_id), args.checkpoint)
        agent = load_agent(artifact["path"])
        episode = rollout(agent, seed, physics=physics, obs_noise=obs_noise, max_steps=max_steps)
        encode = encode_mp4 if out.suffix.lower() == ".mp4" else encode_gif
        encode(episode, out, overlay=not args.no_overlay)
    except (ReplayError, CheckpointError) as err:
        raise BadInput(str(err)) from None
    except OSError as err:
        raise BadInput(f"cannot write {out}: {err}") from None
    summary = {"run_id": args.run_id, "checkpoint": artifact["path"].name, "seed": seed,
               "steps": episode.steps, "return": episode.total_return, "terminated": episode.terminated,
               "file": str(out), "bytes": out.stat().st_size, "seconds": round(time.perf_counter() - started, 3)}
    print(json.dumps(summary) if args.json else
          f"wrote {out} ({summary['bytes'] / 1024:.0f} KB): {artifact['path'].name}, seed {seed}, "
          f"return {episode.total_return:.0f} — {episode.outcome()}")
    return 0


# ------------------------------------------------------------------------------------------------ studies

STOP_WAIT_S = 15.0  # `study stop` waits this long for the controller driving the study to stop it


def cmd_study(args: argparse.Namespace) -> int:
    """Study commands. A study that is missing, driven by another controller or in the wrong state for the command
    is bad input (exit 2); a damaged study file is exit 1."""
    import optuna

    from cartpole_core.studies.space import SpaceError
    from cartpole_core.studies.storage import StudyError

    optuna.logging.set_verbosity(optuna.logging.WARNING)  # each command says what happened in its own words
    try:
        return STUDY_COMMANDS[args.study_command](args)
    except SpaceError as err:
        raise BadInput(f"--vary: {err}") from None
    except StudyError as err:
        if err.kind == "damaged":
            return _fail(str(err), EXIT_FAILED)
        raise BadInput(str(err)) from None


def _study_run(args: argparse.Namespace) -> int:
    from cartpole_core.studies import api, storage
    from cartpole_core.studies.space import SpaceError

    base = _config(args)
    vary = [_text(text, "--vary") for text in args.vary]
    trials = _int_in(args.trials, "--trials", 1, storage.TRIALS_MAX)
    seeds = _int_in(args.seeds, "--seeds", 1, SEEDS_PER_LAUNCH_MAX)
    seed = _seed(args.seed, "--seed")
    confirm_trials = _int_in(args.confirm_trials, "--confirm-trials", 0, storage.CONFIRM_TRIALS_MAX)
    confirm_seeds = _int_in(args.confirm_seeds, "--confirm-seeds", 1, SEEDS_PER_LAUNCH_MAX)
    cpus = _connect(_ray_address(args))
    try:
        spec = api.new_spec(args.algo, vary, base=base, preset=args.preset, trials=trials, seeds=seeds,
                            sampler=args.sampler, pruner=args.pruner, objective=args.objective, name=_name(args),
                            seed=seed, parallel=_parallel(args, seeds), cpus=cpus, confirm_trials=confirm_trials,
                            confirm_seeds=confirm_seeds)
    except SpaceError:
        raise
    except ValueError as err:  # e.g. seeds past SEED_MAX, a name too long for the trials' run names
        raise BadInput(str(err)) from None
    store = _open_store(args.home)
    storage.create_study(store.home, spec)
    if not args.json:
        print(f"study {spec.study_id}: {spec.trials} trial(s) of {seeds} seed(s), {args.sampler} sampler, "
              f"{args.pruner} pruner, {args.objective}", file=sys.stderr)
    return _drive_study(args, store, spec.study_id, spec.parallel)


def _study_resume(args: argparse.Namespace) -> int:
    from cartpole_core.studies import storage

    home = _home(args.home)
    spec = storage.load_spec(home, args.study_id)
    if spec.status == "completed":
        raise BadInput(f"study {spec.study_id} is already completed; `study show {spec.study_id}` shows its best "
                       f"trial")
    _connect(_ray_address(args))
    return _drive_study(args, _open_store(args.home), spec.study_id, _parallel(args, spec.seeds))


def _parallel(args: argparse.Namespace, seeds: int) -> int | None:
    from cartpole_core.studies.storage import parallel_max

    return None if args.parallel is None else _int_in(args.parallel, "--parallel", 1, parallel_max(seeds))


def _connect(address: str | None) -> int | None:
    """Connect to the Ray cluster at ``address`` (RayConnectError: one line, nothing written) and return its CPUs;
    None for local worker processes."""
    if address is None:
        return None
    from cartpole_core.jobs.ray_executor import connect

    return connect(address)


def _drive_study(args: argparse.Namespace, store: RunStore, study_id: str, parallel: int | None) -> int:
    """Drive the study here (``studies.api.drive``: local worker processes or a Ray cluster train its runs) until it
    is completed or stopped (``study stop``, or Ctrl-C here); a line per trial on stderr, then its summary."""
    from cartpole_core.studies import api

    def on_trial(trial: Any, summary: dict[str, Any]) -> None:
        if not args.json:
            print(_trial_line(trial, summary), file=sys.stderr)

    def on_confirming(spec: Any) -> None:
        if not args.json:
            seeds = spec.confirm_run_seeds
            print(f"confirming the best {spec.confirm_trials} trial(s) on fresh seeds {seeds[0]}–{seeds[-1]}",
                  file=sys.stderr)

    with CtrlC() as ctrl_c:
        summary = api.drive(store, study_id, parallel=parallel, on_trial=on_trial, on_confirming=on_confirming,
                            should_stop=lambda: ctrl_c.pressed, ray_address=_ray_address(args))
    print(json.dumps(summary) if args.json else _study_text(summary))
    return 0


def _trial_line(trial: Any, summary: dict[str, Any]) -> str:
    from cartpole_core.studies.controller import INTERRUPTED

    attrs = trial.user_attrs
    if INTERRUPTED in attrs:
        outcome = f"interrupted ({attrs[INTERRUPTED]}); its configuration will be tried again"
    elif trial.state.name == "COMPLETE":
        outcome = f"{summary['objective']} {trial.value:,.6g}"
    elif trial.state.name == "PRUNED":
        outcome = f"pruned at {trial.last_step:,} env steps" if trial.last_step is not None else "pruned"
    else:
        outcome = f"failed: {attrs.get('error', '')}"
    best = summary["best"]
    best_text = f"; best {best['objective']:,.6g} (trial {best['trial']})" if best else ""
    return (f"trial {trial.number}: {outcome} — {summary['trials']}/{summary['trials_planned']} trials"
            f"{best_text}")


def _study_text(summary: dict[str, Any]) -> str:
    lines = [f"{summary['study_id']}: {summary['status']}, {summary['trials']}/{summary['trials_planned']} trials "
             f"({summary['trials_completed']} completed, {summary['trials_pruned']} pruned, "
             f"{summary['trials_failed']} failed); {summary['objective']} ({summary['direction']})"]
    best = summary["best"]
    if best is None:
        lines.append("no trial completed yet")
    else:
        params = ", ".join(f"{name}={value:.4g}" if isinstance(value, float) else f"{name}={value}"
                           for name, value in best["params"].items())
        lines.append(f"best: trial {best['trial']}, {summary['objective']} {best['objective']:,.6g} (IQM of "
                     f"{len(best['run_ids'])} seed(s)): {params}")
        confirmation = best.get("confirmation")
        if confirmation is not None:
            seeds = confirmation["seeds"]
            lines.append(f"confirmed on fresh seeds {seeds[0]}–{seeds[-1]}: {confirmation['held']}/{len(seeds)} "
                         f"held; {summary['objective']} {confirmation['objective']:,.6g} (IQM of all "
                         f"{len(best['run_ids']) + len(seeds)} seeds)")
        lines.append(f"checkpoint: {best['checkpoint']}")
    return "\n".join(lines)


def _study_list(args: argparse.Namespace) -> int:
    from cartpole_core.studies import storage
    from cartpole_core.studies.controller import display_status, summarize

    home = _home(args.home)
    store = _existing_store(args.home)
    specs, problems = storage.list_studies(home)
    summaries = []
    for spec in specs:
        try:
            study = storage.load_optuna_study(storage.study_dir(home, spec.study_id))
        except storage.StudyError as err:
            problems.append(str(err))
            continue
        holder = storage.live_holder(home, spec.study_id)
        summaries.append({**summarize(store, spec, study), "status": display_status(spec, holder),
                          "created_at": spec.created_at})
    for problem in problems:
        print(f"warning: {' '.join(problem.split())}", file=sys.stderr)
    if args.json:
        print(json.dumps(summaries))
        return 0
    print(f"{'study id':40} {'status':11} {'algo':9} {'trials':>7} {'best':>10}  objective / name")
    for summary in summaries:
        best = "-" if summary["best"] is None else f"{summary['best']['objective']:.4g}"
        trials = f"{summary['trials']}/{summary['trials_planned']}"
        print(f"{summary['study_id']:40} {summary['status']:11} {summary['algo']:9} {trials:>7} {best:>10}  "
              f"{summary['objective']} / {summary['name']}")
    return 0


def _study_show(args: argparse.Namespace) -> int:
    from cartpole_core.studies import storage
    from cartpole_core.studies.controller import display_status, summarize, trial_rows

    home = _home(args.home)
    spec = storage.load_spec(home, args.study_id)
    study = storage.load_optuna_study(storage.study_dir(home, spec.study_id))
    summary = {**summarize(_existing_store(args.home), spec, study),
               "status": display_status(spec, storage.live_holder(home, spec.study_id))}
    rows = trial_rows(study)
    if args.json:
        print(json.dumps({**summary, "spec": spec.to_dict(), "trial_rows": rows}))
        return 0
    print(_study_text(summary))
    print(f"varies: {'  '.join(dim.to_text() for dim in spec.dimensions)}; {spec.sampler} sampler, {spec.pruner} "
          f"pruner, {spec.seeds} seed(s) from {spec.seed}")
    for row in rows:
        value = "-" if row["value"] is None else f"{row['value']:,.6g}"
        params = ", ".join(f"{name}={value:.4g}" if isinstance(value, float) else f"{name}={value}"
                           for name, value in row["params"].items())
        reason = f"  ({row['reason']})" if row["reason"] else ""
        print(f"trial {row['trial']:>4} {row['state']:11} {value:>12}  {params}{reason}")
    return 0


def _study_stop(args: argparse.Namespace) -> int:
    import time

    from cartpole_core.studies import storage

    home = _home(args.home)
    spec = storage.load_spec(home, args.study_id)
    if spec.status != "running":
        raise BadInput(f"study {spec.study_id} is already {spec.status}")
    folder = storage.study_dir(home, spec.study_id)
    holder = storage.live_holder(home, spec.study_id)
    if holder is None:  # no controller: this command stops it itself
        from cartpole_core.studies.controller import StudyController

        with StudyController.open(_open_store(args.home), spec.study_id) as controller:
            controller.stop()
        print(json.dumps({"study_id": spec.study_id, "status": "stopped"}) if args.json else
              f"stopped {spec.study_id}")
        return 0
    storage.request_stop(folder)
    deadline = time.monotonic() + STOP_WAIT_S
    while storage.load_spec(home, spec.study_id).status == "running" and time.monotonic() < deadline:
        time.sleep(0.2)
    status = storage.load_spec(home, spec.study_id).status
    print(json.dumps({"study_id": spec.study_id, "status": status}) if args.json else
          f"stopped {spec.study_id}" if status == "stopped" else
          f"stop requested for {spec.study_id}: the controller driving it (pid {holder.get('pid')}) stops it at its "
          f"next round")
    return 0


def _study_delete(args: argparse.Namespace) -> int:
    from cartpole_core.studies import storage

    home = _home(args.home)
    storage.study_dir(home, args.study_id)
    holder = storage.live_holder(home, args.study_id)
    if holder is not None:
        raise BadInput(f"study {args.study_id} is driven by a controller (pid {holder.get('pid')}); stop it first "
                       f"with `python -m cartpole_core study stop {args.study_id}`")
    store = _existing_store(args.home)
    runs = store.list_runs(tag=storage.study_tag(args.study_id)) if store else []
    from cartpole_core.jobs.queue import cancel_run

    for run in runs:
        if run["status"] in ACTIVE_STATUSES:
            cancel_run(store, run["id"])
    storage.delete_study(home, args.study_id)
    print(json.dumps({"deleted": args.study_id, "runs_kept": [run["id"] for run in runs]}) if args.json else
          f"deleted study {args.study_id}; its {len(runs)} run(s) stay in the run store (tag "
          f"{storage.study_tag(args.study_id)})")
    return 0


STUDY_COMMANDS = {"run": _study_run, "list": _study_list, "show": _study_show, "stop": _study_stop,
                  "resume": _study_resume, "delete": _study_delete}
COMMANDS = {"train": cmd_train, "presets": cmd_presets, "fields": cmd_fields, "runs": cmd_runs, "replay": cmd_replay,
            "study": cmd_study}


def main(argv: list[str] | None = None) -> int:
    """Run one command; every failure is one ``error: …`` line on stderr and an exit code (see the docstring)."""
    args: argparse.Namespace | None = None
    try:
        args = build_parser().parse_args(argv)
        return COMMANDS[args.command](args)
    except BadInput as err:
        return _fail(str(err), EXIT_BAD_INPUT)
    except (ConfigError, LimitError, DataHomeError, PresetError) as err:  # a bad --home (missing, not a folder, …)
        return _fail(str(err), EXIT_BAD_INPUT)
    except RayConnectError as err:  # --executor ray: the cluster cannot be reached or used; nothing was queued
        return _fail(str(err), EXIT_FAILED)
    except StoreError as err:  # damaged, foreign, read-only or unwritable: the store module's message says which
        damaged = getattr(err, "kind", "") == "damaged" or any(word in str(err).lower() for word in DAMAGE_WORDS)
        return _fail(_with_hint(str(err)) if damaged else str(err), EXIT_FAILED)
    except sqlite3.DatabaseError as err:  # last resort: the store module should have said it as a StoreError
        message = f"the run store {_db_path(args)} cannot be used ({err})"
        damaged = any(word in str(err).lower() for word in DAMAGE_WORDS)
        return _fail(_with_hint(message) if damaged else message, EXIT_FAILED)
    except BrokenPipeError:  # the reader went away (``runs list | head``): stop quietly
        with contextlib.suppress(OSError, ValueError, AttributeError):
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())  # no second error at exit
        return EXIT_FAILED
    except OSError as err:
        return _fail(f"{err.strerror or err}{f': {err.filename}' if err.filename else ''}", EXIT_FAILED)
    except KeyboardInterrupt:
        return _fail("interrupted", EXIT_INTERRUPTED)
    finally:
        while _OPEN_STORES:
            with contextlib.suppress(sqlite3.Error):
                _OPEN_STORES.pop().close()


def _fail(message: str, code: int) -> int:
    print(f"error: {' '.join(message.split())}", file=sys.stderr)  # always one line
    return code


DAMAGE_WORDS = ("malformed", "damaged", "corrupt", "disk image", "integrity")


def _with_hint(message: str) -> str:
    """A damaged store's message says what to do next (the store module's own messages already do)."""
    return message if "salvage" in message else f"{message}; {REPAIR_HINT}"


def _db_path(args: argparse.Namespace | None) -> str:
    try:
        return str(data_home(getattr(args, "home", None)) / DB_NAME)
    except Exception:  # noqa: BLE001 — only for a message
        return DB_NAME


if __name__ == "__main__":
    sys.exit(main())
