"""A study's files, under ``<data home>/studies/<study_id>/``:

- ``study.json``: the spec (``StudySpec``): what is varied, on which base config, by which sampler and pruner,
  toward which objective, how many trials of how many seeds, and the study's status. Written whole (a temporary
  file, then a rename) and validated on every read: a damaged or foreign file is a ``StudyError`` naming it.
- ``journal.log``: Optuna's ``JournalStorage`` over a file: every trial's parameters, intermediate values and
  outcome, appended as they happen, so a study resumes where its controller stopped (``open_journal``).
- ``lease.json``: the controller that drives the study (pid, host, heartbeat), one at a time (``Lease``). A lease
  whose process died on this host, or whose heartbeat is older than ``LEASE_STALE_AFTER_S``, may be taken over.
- ``stop``: a stop request (``study stop``) for the controller that holds the lease.

A trial's runs are ordinary runs of the run store, tagged ``study:<study_id>`` and ``trial:<n>``; a confirmation's
runs (the best trials re-run on fresh seeds) are tagged ``study:<study_id>`` and ``confirm:<n>``. Deleting a study
removes these files only.

Import-light: Optuna is imported only where the journal is opened.
"""

from __future__ import annotations

import contextlib
import fcntl
import functools
import json
import os
import re
import secrets
import shutil
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field, fields, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from cartpole_core.config.limits import QUEUED_MAX, SEED_MAX, SEEDS_PER_LAUNCH_MAX, check_name, check_seed
from cartpole_core.config.models import ALGORITHMS, TrainConfig, config_from_dict, config_from_json
from cartpole_core.runs.home import new_run_id, write_whole
from cartpole_core.runs.store import host_id, pid_alive
from cartpole_core.studies.objectives import OBJECTIVES
from cartpole_core.studies.space import Dimension, check_space

if TYPE_CHECKING:
    from optuna import Study
    from optuna.pruners import BasePruner
    from optuna.samplers import BaseSampler
    from optuna.storages import JournalStorage

STUDIES_DIR = "studies"
SPEC_FILE, JOURNAL_FILE, LEASE_FILE, STOP_FILE = "study.json", "journal.log", "lease.json", "stop"
SPEC_FORMAT = "cartpole-lab study"  # marks a study.json as ours
SPEC_VERSION = 1
SAMPLERS = ("tpe", "random", "grid")
PRUNERS = ("none", "median", "halving")
GRID_POINTS = 3  # values per range in a grid study (every choice of a categorical field)
STATUSES = ("running", "stopped", "completed")  # "running" with no live lease is shown as "interrupted"
TRIALS_MAX = 1000  # trials in one study; each is a group of runs
CONFIRM_TRIALS, CONFIRM_SEEDS = 3, 5  # by default the best 3 trials are re-run on 5 fresh seeds each
CONFIRM_TRIALS_MAX = 10
LEASE_STALE_AFTER_S = 30.0  # as a run's heartbeat (runs.store.STALE_AFTER_S)
LEASE_RENEW_S = 5.0
_STUDY_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,99}")


class StudyError(RuntimeError):
    """A study that cannot be used as asked; the message says which and what to do. ``kind``: "missing" (no such
    study), "busy" (another controller drives it) or "damaged" (its spec or journal cannot be read)."""

    def __init__(self, message: str, kind: str):
        super().__init__(message)
        self.kind = kind


@dataclass(frozen=True)
class StudySpec:
    """What a study searches and how; ``base_config`` is the config JSON every trial starts from."""

    study_id: str
    name: str
    algo: str
    preset: str
    base_config: str
    dimensions: tuple[Dimension, ...]
    sampler: str
    pruner: str
    objective: str
    trials: int
    seeds: int  # runs per trial, on seeds seed … seed + seeds - 1
    seed: int
    parallel: int  # trials in flight at once
    created_at: float = field(default_factory=time.time)
    status: str = "running"
    # The best trials re-run on fresh seeds before the study names its best (new studies: CONFIRM_TRIALS on
    # CONFIRM_SEEDS; 0 for a study written before confirmations existed).
    confirm_trials: int = 0
    confirm_seeds: int = 0

    @property
    def confirm_run_seeds(self) -> list[int]:
        """Seeds no trial trained on, the same for every trial confirmed: those after the trials' seeds."""
        first = self.seed + self.seeds
        return list(range(first, first + self.confirm_seeds))

    @property
    def tag(self) -> str:
        """The tag of every run of the study (each also has ``trial:<n>``)."""
        return study_tag(self.study_id)

    @property
    def run_seeds(self) -> list[int]:
        """The same seeds for every trial, so that trials are compared on equal terms."""
        return list(range(self.seed, self.seed + self.seeds))

    def base(self) -> TrainConfig:
        return config_from_json(self.base_config)

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["base_config"] = json.loads(self.base_config)
        data["dimensions"] = [dim.to_json() for dim in self.dimensions]
        return {"format": SPEC_FORMAT, "version": SPEC_VERSION, **data}

    @classmethod
    def from_dict(cls, data: Any) -> StudySpec:
        """A spec from ``to_dict``'s form; ValueError (or TypeError) naming what is wrong."""
        if not isinstance(data, dict) or data.get("format") != SPEC_FORMAT:
            raise ValueError("it is not a CartPole Lab study spec")
        if data.get("version") != SPEC_VERSION:
            raise ValueError(f"it has version {data.get('version')!r}; this CartPole Lab reads version {SPEC_VERSION}")
        names = [spec_field.name for spec_field in fields(cls)]
        missing = [name for name in names if name not in data and name not in ADDED_LATER]
        if missing:
            raise ValueError(f"it lacks {', '.join(missing)}")
        values = {name: data[name] for name in names if name in data}
        if not isinstance(values["base_config"], dict) or not isinstance(values["dimensions"], list):
            raise ValueError("base_config must be an object and dimensions a list")
        values["base_config"] = config_from_dict(values["base_config"]).to_json()
        values["dimensions"] = tuple(Dimension.from_json(dim) for dim in values["dimensions"])
        spec = cls(**values)
        check_spec(spec)
        return spec


ADDED_LATER = ("confirm_trials", "confirm_seeds")  # a spec written before them lacks them: their defaults apply


def check_spec(spec: StudySpec) -> None:
    """ValueError (LimitError, SpaceError, ConfigError among them) for a spec outside what a study allows."""
    for name, kind in (("study_id", str), ("name", str), ("algo", str), ("preset", str), ("sampler", str),
                       ("pruner", str), ("objective", str), ("status", str), ("trials", int), ("seeds", int),
                       ("seed", int), ("parallel", int), ("created_at", (int, float)),
                       ("confirm_trials", int), ("confirm_seeds", int)):
        value = getattr(spec, name)
        if isinstance(value, bool) or not isinstance(value, kind):
            raise ValueError(f"{name} must be {'text' if kind is str else 'a number'}, got {value!r:.40}")
    if not _STUDY_ID.fullmatch(spec.study_id):
        raise ValueError(f"study_id {spec.study_id!r:.60} has characters a folder name cannot safely have")
    for name, value, allowed in (("algo", spec.algo, ALGORITHMS), ("sampler", spec.sampler, SAMPLERS),
                                 ("pruner", spec.pruner, PRUNERS), ("objective", spec.objective, tuple(OBJECTIVES)),
                                 ("status", spec.status, STATUSES)):
        if value not in allowed:
            raise ValueError(f"{name} {value!r:.40} is unknown; allowed: {', '.join(allowed)}")
    if spec.base().algo != spec.algo:
        raise ValueError(f"the base config is for {spec.base().algo}, the study for {spec.algo}")
    check_space(spec.algo, spec.dimensions)
    check_trials(spec.trials)
    check_seeds(spec.seeds, spec.seed)
    check_parallel(spec.parallel, spec.seeds)
    check_confirmation(spec.confirm_trials, spec.confirm_seeds, spec.seed, spec.seeds)
    check_name(f"{confirm_name(spec.name, spec.trials)} · seed {SEED_MAX}")  # the longest run name it will give


def check_trials(trials: int) -> int:
    if not 1 <= trials <= TRIALS_MAX:
        raise ValueError(f"trials must be from 1 to {TRIALS_MAX:,}, got {trials:,}")
    return trials


def check_seeds(seeds: int, seed: int) -> None:
    """Seeds per trial (one launch each: at most SEEDS_PER_LAUNCH_MAX), the first at ``seed``, the last ≤ SEED_MAX."""
    if not 1 <= seeds <= SEEDS_PER_LAUNCH_MAX:
        raise ValueError(f"seeds per trial must be from 1 to {SEEDS_PER_LAUNCH_MAX}, got {seeds:,}")
    check_seed(seed)
    if seed + seeds - 1 > SEED_MAX:
        raise ValueError(f"a trial's seeds run from seed ({seed:,}) to seed + seeds - 1, at most {SEED_MAX:,}: "
                         f"the seed must be at most {SEED_MAX - seeds + 1:,}")


def check_confirmation(trials: int, seeds: int, seed: int, trial_seeds: int) -> None:
    """The best ``trials`` re-run on ``seeds`` fresh seeds each, those after the trials' (0 and 0: no confirmation)."""
    for name, value in (("trials to confirm", trials), ("confirmation seeds", seeds)):
        if isinstance(value, bool) or not isinstance(value, int):
            raise ValueError(f"{name} must be a whole number, got {value!r:.40}")
    if not 0 <= trials <= CONFIRM_TRIALS_MAX:
        raise ValueError(f"trials to confirm must be from 0 to {CONFIRM_TRIALS_MAX}, got {trials:,}")
    if not (0 if trials == 0 else 1) <= seeds <= SEEDS_PER_LAUNCH_MAX:
        raise ValueError(f"confirmation seeds must be from 1 to {SEEDS_PER_LAUNCH_MAX} (0 only with no trial to "
                         f"confirm), got {seeds:,}")
    if seed + trial_seeds + seeds - 1 > SEED_MAX:
        raise ValueError(f"the confirmation's {seeds} seed(s) follow the trials' {trial_seeds}, up to {SEED_MAX:,}: "
                         f"the seed must be at most {SEED_MAX - trial_seeds - seeds + 1:,}")


def parallel_max(seeds: int) -> int:
    """The most trials in flight at once: their runs must fit in the queue (limits.QUEUED_MAX)."""
    return max(1, QUEUED_MAX // seeds)


def check_parallel(parallel: int, seeds: int) -> int:
    if not 1 <= parallel <= parallel_max(seeds):
        raise ValueError(f"parallel trials must be from 1 to {parallel_max(seeds)} (with {seeds} seed(s) a trial, "
                         f"their runs must fit the queue of {QUEUED_MAX}), got {parallel:,}")
    return parallel


def study_tag(study_id: str) -> str:
    return f"study:{study_id}"


def trial_tag(number: int) -> str:
    return f"trial:{number}"


def trial_run_name(study_name: str, number: int, seed: int) -> str:
    """A trial's run name, as ``jobs.queue.submit`` completes it from ``trial_name``."""
    return f"{trial_name(study_name, number)} · seed {seed}"


def trial_name(study_name: str, number: int) -> str:
    return f"{study_name} · trial {number}"


def confirm_tag(number: int) -> str:
    """The tag of a trial's confirmation runs (they have no ``trial:<n>`` tag: they are not the trial's seeds)."""
    return f"confirm:{number}"


def confirm_name(study_name: str, number: int) -> str:
    return f"{study_name} · trial {number} confirmed"


def new_study_id(algo: str) -> str:
    """Sortable and readable, like run ids: ``study-ppo-20261123-204501-3fa2c1``."""
    return new_run_id(f"study-{algo}")


# ------------------------------------------------------------------------------------------- files


def studies_dir(home: Path) -> Path:
    return Path(home) / STUDIES_DIR


def study_dir(home: Path, study_id: str) -> Path:
    """The study's folder; StudyError("missing") for an id no study can have or a study that does not exist."""
    folder = studies_dir(home) / study_id
    if not _STUDY_ID.fullmatch(study_id) or not (folder / SPEC_FILE).is_file():
        raise StudyError(f"no study {study_id[:60]!r} in {home}; `python -m cartpole_core study list` shows the "
                         f"studies", "missing")
    return folder


def create_study(home: Path, spec: StudySpec) -> Path:
    """Write a new study's spec and create its Optuna study in a new journal; returns its folder."""
    check_spec(spec)
    folder = studies_dir(home) / spec.study_id
    folder.mkdir(parents=True)
    try:
        write_spec(folder, spec)
        import optuna

        optuna.create_study(storage=open_journal(folder), study_name=spec.study_id,
                            direction=OBJECTIVES[spec.objective].direction)
    except BaseException:
        shutil.rmtree(folder, ignore_errors=True)
        raise
    return folder


def write_spec(folder: Path, spec: StudySpec) -> None:
    """Replace ``study.json`` whole: a reader sees the old spec or the new one, never a part."""
    write_whole(folder / SPEC_FILE, json.dumps(spec.to_dict(), indent=1))


def load_spec(home: Path, study_id: str) -> StudySpec:
    """The study's spec; StudyError "missing" or "damaged" (the file is not a valid study spec, or another study's)."""
    path = study_dir(home, study_id) / SPEC_FILE
    try:
        spec = StudySpec.from_dict(json.loads(path.read_text(encoding="utf-8")))
    except (ValueError, TypeError, RecursionError) as err:  # JSONDecodeError, SpaceError, ConfigError, LimitError
        problem = " ".join(str(err).split())[:300]
        raise StudyError(f"{path} is damaged or not a study spec ({problem}); restore the file, or delete the "
                         f"study with `python -m cartpole_core study delete {study_id}`", "damaged") from None
    except OSError as err:
        raise StudyError(f"cannot read {path}: {err.strerror or err}", "damaged") from None
    if spec.study_id != study_id:
        raise StudyError(f"{path} belongs to study {spec.study_id!r:.60}, not {study_id!r}; it was copied from "
                         f"another study's folder", "damaged")
    return spec


def set_status(home: Path, study_id: str, status: str) -> StudySpec:
    """Rewrite the spec with a new status (the lease holder does)."""
    spec = replace(load_spec(home, study_id), status=status)
    write_spec(study_dir(home, study_id), spec)
    return spec


def list_studies(home: Path) -> tuple[list[StudySpec], list[str]]:
    """The studies of a data home, newest first, and one line for each folder whose spec cannot be read."""
    specs, problems = [], []
    folder = studies_dir(home)
    for child in sorted(folder.iterdir()) if folder.is_dir() else []:
        if not (child / SPEC_FILE).is_file():
            continue
        try:
            specs.append(load_spec(home, child.name))
        except StudyError as err:
            problems.append(str(err))
    return sorted(specs, key=lambda spec: spec.created_at, reverse=True), problems


def delete_study(home: Path, study_id: str) -> None:
    """Remove the study's folder (spec, journal, lease); StudyError("busy") while a controller drives it. Its runs
    stay in the run store."""
    folder = study_dir(home, study_id)
    lease = Lease.acquire(folder)
    try:
        shutil.rmtree(folder)
    except BaseException:
        lease.release()
        raise


@functools.cache
def journal_file_class() -> type:
    """Optuna's journal file, appended with one ``write`` to a file opened for appending — without Optuna's file
    lock and fsync per record. Optuna syncs every record to the disk (~15 a trial: ask, parameters, reports, tell;
    8–10 ms each while workers write their runs) under a lock made of symlinks (more writes to the folder): most of
    the controller's time. The lease already keeps a study to one writer, and readers take no lock (Optuna's reader
    leaves a line it sees half-written for its next read). A record is in the OS's cache when the append returns, so
    a killed controller (even ``kill -9``) loses nothing; only a crash of the OS can cut the journal's tail, and
    ``repair_journal`` drops a torn last line. (A class made on first use: Optuna is imported only where a journal
    is opened.)"""
    from optuna.storages.journal import JournalFileBackend

    class AppendOnlyJournalFile(JournalFileBackend):
        def append_logs(self, logs: list[dict[str, Any]]) -> None:
            data = "".join(json.dumps(log, separators=(",", ":")) + "\n" for log in logs).encode("utf-8")
            descriptor = os.open(self._file_path, os.O_WRONLY | os.O_APPEND)
            try:
                while data:
                    data = data[os.write(descriptor, data):]
            finally:
                os.close(descriptor)

    return AppendOnlyJournalFile


def open_journal(folder: Path) -> JournalStorage:
    """The study's Optuna storage: a journal file, appended by the lease holder, read by anyone."""
    from optuna.storages import JournalStorage

    path = folder / JOURNAL_FILE
    try:
        return JournalStorage(journal_file_class()(str(path)))
    except (ValueError, KeyError, TypeError) as err:  # a line that is not one of Optuna's journal records
        raise StudyError(f"{path} is damaged ({' '.join(str(err).split())[:200]}); the study's trials cannot be "
                         f"read. Its runs are still in the run store (tag {study_tag(folder.name)})",
                         "damaged") from None


def load_optuna_study(folder: Path, sampler: BaseSampler | None = None, pruner: BasePruner | None = None) -> Study:
    """The study's Optuna study from its journal; StudyError("damaged") when the journal does not hold it."""
    import optuna

    try:
        return optuna.load_study(study_name=folder.name, storage=open_journal(folder), sampler=sampler,
                                 pruner=pruner)
    except KeyError:
        raise StudyError(f"{folder / JOURNAL_FILE} holds no study {folder.name}: it is another study's journal, or "
                         f"was emptied", "damaged") from None


def repair_journal(folder: Path) -> None:
    """Before the lease holder appends: cut a last line torn by a crash mid-write (Optuna would join the next
    record to it), and remove the journal's write lock a dead controller left (it would block appends 30 s)."""
    path = folder / JOURNAL_FILE
    with contextlib.suppress(FileNotFoundError):
        Path(f"{path}.lock").unlink()
    with contextlib.suppress(FileNotFoundError), path.open("rb+") as file:
        data = file.read()
        if data and not data.endswith(b"\n"):
            file.truncate(data.rfind(b"\n") + 1)


def request_stop(folder: Path) -> None:
    (folder / STOP_FILE).touch()


def stop_requested(folder: Path) -> bool:
    return (folder / STOP_FILE).exists()


def clear_stop(folder: Path) -> None:
    (folder / STOP_FILE).unlink(missing_ok=True)


# ------------------------------------------------------------------------------------------- the lease


@dataclass
class Lease:
    """This process drives the study in ``folder``. Taken, renewed and released under an exclusive ``flock`` on
    ``lease.json.lock``, so two controllers starting at once cannot both take it."""

    folder: Path
    token: str
    renewed: float = field(default_factory=time.monotonic)

    @classmethod
    def acquire(cls, folder: Path) -> Lease:
        """Take the study's lease, or StudyError("busy") naming the live controller that holds it."""
        lease = cls(folder, secrets.token_hex(8))
        with _locked(folder):
            holder = read_lease(folder)
            if holder is not None and lease_live(holder):
                raise StudyError(f"study {folder.name} is driven by another controller (pid {holder.get('pid')} on "
                                 f"{holder.get('host')}); stop it with `python -m cartpole_core study stop "
                                 f"{folder.name}`, or wait for it to end", "busy")
            lease._write()
        return lease

    def renew(self, force: bool = False) -> None:
        """Refresh the heartbeat (at most every LEASE_RENEW_S unless ``force``); StudyError("busy") when another
        controller took the lease over meanwhile (this one was judged dead)."""
        if not force and time.monotonic() - self.renewed < LEASE_RENEW_S:
            return
        with _locked(self.folder):
            holder = read_lease(self.folder)
            if holder is None or holder.get("token") != self.token:
                raise StudyError(f"study {self.folder.name} was taken over by another controller (pid "
                                 f"{(holder or {}).get('pid')}); this one stops", "busy")
            self._write()
        self.renewed = time.monotonic()

    def release(self) -> None:
        with _locked(self.folder):
            holder = read_lease(self.folder)
            if holder is not None and holder.get("token") == self.token:
                (self.folder / LEASE_FILE).unlink()

    def _write(self) -> None:
        path = self.folder / LEASE_FILE
        partial = path.with_name(f".{LEASE_FILE}.{self.token}.tmp")
        partial.write_text(json.dumps({"pid": os.getpid(), "host": host_id(), "heartbeat_at": time.time(),
                                       "token": self.token}))
        os.replace(partial, path)


def read_lease(folder: Path) -> dict[str, Any] | None:
    """The lease's record, or None when there is none (an unreadable lease counts as none: it cannot be renewed)."""
    try:
        holder = json.loads((folder / LEASE_FILE).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return holder if isinstance(holder, dict) else None


def lease_live(holder: dict[str, Any]) -> bool:
    """Is the controller holding this lease alive? Not when its pid is gone on this host, nor after a heartbeat
    older than LEASE_STALE_AFTER_S (a controller elsewhere, or a pid reused here)."""
    heartbeat = holder.get("heartbeat_at")
    if isinstance(heartbeat, bool) or not isinstance(heartbeat, (int, float)):
        return False
    if holder.get("host") == host_id() and not pid_alive(holder.get("pid")):
        return False
    return time.time() - heartbeat <= LEASE_STALE_AFTER_S


def live_holder(home: Path, study_id: str) -> dict[str, Any] | None:
    """The live controller's lease record (pid, host, heartbeat_at), or None when no controller drives the study."""
    holder = read_lease(study_dir(home, study_id))
    return holder if holder is not None and lease_live(holder) else None


@contextlib.contextmanager
def _locked(folder: Path) -> Iterator[None]:
    with (folder / f"{LEASE_FILE}.lock").open("a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)
