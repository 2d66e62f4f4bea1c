"""Export runs to a zip and import them back — validated, because a zip may come from anyone.

An export holds, per run, ``<run_id>/run.json`` (the run's record, config included), ``episodes.csv``,
``updates.csv``, ``evaluations.csv`` (their columns are the events' fields: ``records.columns``) and its checkpoints
(``*.pt``). Import accepts exactly that layout and rejects, with an ``ImportRejected`` naming the member and the
problem, anything else: absolute or ``..`` paths, links, unknown or duplicated files, encrypted members or unknown
compression, damaged data (bad CRC, forged sizes), members or totals over the size limits (zip bombs), malformed
CSV/JSON, numbers that are not finite or out of range, names, tags and seeds outside the lab's limits
(``config/limits.py``), and checkpoints that do not load with ``torch.load(weights_only=True)`` or whose metadata
does not fit the run — so a pickle can never run code here.

Import is all-or-nothing. Every member is read and validated before anything is written; then the runs' folders
and checkpoints are written and all rows go into the store in one transaction. If anything fails, the
transaction rolls back and the folders written are removed: the store is left as it was. An imported run is
never ``queued`` or ``running`` (the scheduler would train it): a run exported before it finished arrives
``interrupted``. A run keeps its id unless that id (or its folder) already exists; then it gets a new one.
"""

from __future__ import annotations

import csv
import io
import json
import math
import re
import shutil
import stat
import struct
import tempfile
import time
import zipfile
import zlib
from collections.abc import Sequence
from dataclasses import dataclass, field
from operator import attrgetter
from pathlib import Path, PurePosixPath
from typing import Any, get_args

from cartpole_core.config.limits import TAGS_MAX, LimitError, check_name, check_seed, check_tags, shown
from cartpole_core.config.models import CONFIG_CLASSES, ConfigError, TrainConfig, config_from_json
from cartpole_core.engine.agent import CheckpointError, agent_from_state, read_checkpoint
from cartpole_core.records import (
    EPISODE_COLUMNS,
    EVALUATION_COLUMNS,
    UPDATE_COLUMNS,
    EpisodeEnded,
    Evaluated,
    Event,
    Updated,
    columns,
)
from cartpole_core.runs.home import new_run_id
from cartpole_core.runs.store import ACTIVE_STATUSES, STATUSES, RunStore, insert_metrics

MAX_MEMBER_BYTES = 64 * 1024 * 1024
MAX_TOTAL_BYTES = 512 * 1024 * 1024
MAX_MEMBERS = 2000
MAX_ERROR_CHARS = 10_000  # a run's error text
MAX_METRICS = 64  # metric columns in updates.csv
MAX_COUNT = 10**15 - 1  # episodes, env steps, updates: far beyond any budget, well inside SQLite's integers
IMPORTED_TAG = "imported"
CHECKPOINT_KINDS = ("periodic", "best", "final")
_RUN_ID = r"[A-Za-z0-9][A-Za-z0-9_.-]{0,99}"
_FILES = r"run\.json|episodes\.csv|updates\.csv|evaluations\.csv|[A-Za-z0-9_.-]{1,80}\.pt"
_MEMBER = re.compile(rf"^({_RUN_ID})/({_FILES})$")
_GROUP_ID = re.compile(rf"^{_RUN_ID}$")
_PRESET = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,49}$")
_METRIC = re.compile(r"^[A-Za-z_][A-Za-z0-9_.]{0,63}$")
_INT = re.compile(r"^[0-9]{1,15}$")
_FLOAT = re.compile(r"^[+-]?([0-9]+\.?[0-9]*|\.[0-9]+)([eE][+-]?[0-9]+)?$")
_BOOLEANS = {"True": True, "true": True, "1": True, "False": False, "false": False, "0": False}
# Ranges of the events' columns (``records.columns``) narrower than their type's: whole numbers 0 … MAX_COUNT,
# other numbers any finite value.
_LOWEST = {"episode": 1, "update": 1, "epsilon": 0.0, "learning_rate": 0.0, "std_return": 0.0, "time_s": 0.0}
_HIGHEST = {"epsilon": 1.0}
_EMPTY_READS_AS = {"learning_rate": 0.0}  # never None in an event; an empty cell has always imported as 0.0
_RUN_FIELDS = ("id", "name", "algo", "preset", "config_json", "seed", "group_id", "tags", "status", "error")
_FINAL_STATUSES = tuple(status for status in STATUSES if status not in ACTIVE_STATUSES)

# Zip general-purpose flags an export may carry: deflate options (bits 1-2), data descriptor (3), UTF-8 names (11).
# Anything else — encryption (0, 6, 13), patched data (5), reserved bits — is refused before reading.
_ALLOWED_FLAGS = 0x0002 | 0x0004 | 0x0008 | 0x0800
_ENCRYPTION_FLAGS = 0x0001 | 0x0040 | 0x2000
_COMPRESSIONS = {zipfile.ZIP_STORED: "stored", zipfile.ZIP_DEFLATED: "deflated"}
# What reading a damaged or forged member can raise inside zipfile / zlib (bad CRC, truncated data, header
# mismatch, encryption, unknown method, offsets out of range, undecodable names).
_ZIP_ERRORS = (zipfile.BadZipFile, zipfile.LargeZipFile, NotImplementedError, RuntimeError, zlib.error, EOFError,
               OverflowError, ValueError, OSError, struct.error, IndexError, KeyError)


class ImportRejected(ValueError):
    """The zip is not a valid CartPole Lab export; the message names the member and the problem."""


# ------------------------------------------------------------------------------------------------------ export


def _csv(rows: list[dict[str, Any]], header: Sequence[str]) -> str:
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=header, extrasaction="ignore")
    writer.writeheader()
    writer.writerows(rows)
    return out.getvalue()


def export_runs(store: RunStore, run_ids: Sequence[str], path: Path) -> Path:
    """Write the runs (metrics as CSV, config, checkpoints) into one zip at ``path``."""
    path = Path(path)
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        for run_id in run_ids:
            run = store.get_run(run_id)
            if run is None:
                raise KeyError(f"no run {run_id!r}")
            archive.writestr(f"{run_id}/run.json", json.dumps({k: run[k] for k in _RUN_FIELDS}, indent=2))
            archive.writestr(f"{run_id}/episodes.csv", _csv(store.episodes(run_id), EPISODE_COLUMNS))
            updates = store.updates(run_id)
            update_columns = [*UPDATE_COLUMNS, *sorted({key for row in updates for key in row} - set(UPDATE_COLUMNS))]
            archive.writestr(f"{run_id}/updates.csv", _csv(updates, update_columns))
            archive.writestr(f"{run_id}/evaluations.csv", _csv(store.evaluations(run_id), EVALUATION_COLUMNS))
            for artifact in store.artifacts(run_id):
                if artifact["path"].is_file():
                    archive.write(artifact["path"], f"{run_id}/{artifact['path'].name}")
    return path


# ----------------------------------------------------------------------------------------- zip-level checks


def _check_members(archive: zipfile.ZipFile) -> dict[str, list[zipfile.ZipInfo]]:
    """The members grouped by run, after every check that needs only the central directory."""
    infos = archive.infolist()
    if len(infos) > MAX_MEMBERS:
        raise ImportRejected(f"the zip has {len(infos):,} members; at most {MAX_MEMBERS:,} are allowed")
    runs: dict[str, list[zipfile.ZipInfo]] = {}
    seen: set[str] = set()
    total = 0
    for info in infos:
        name = info.filename[:300]  # as shown in messages; a valid member name is far shorter
        if info.filename != name:
            raise ImportRejected(f"member {name!r}… has a name of {len(info.filename):,} characters; not part of "
                                 f"a CartPole Lab export")
        if name.casefold() in seen:
            raise ImportRejected(f"member {name!r} appears more than once in the zip (names that differ only in case "
                                 f"count as the same)")
        seen.add(name.casefold())
        pure = PurePosixPath(name)
        if name.startswith(("/", "\\")) or ".." in pure.parts or "\\" in name or ":" in name:
            raise ImportRejected(f"member {name!r} points outside the archive (absolute path or '..')")
        if stat.S_ISLNK(info.external_attr >> 16):
            raise ImportRejected(f"member {name!r} is a symbolic link; links are not allowed")
        if info.is_dir():
            continue
        match = _MEMBER.match(name)
        if not match:
            raise ImportRejected(f"member {name!r} is not part of a CartPole Lab export (allowed per run: run.json, "
                                 f"episodes.csv, updates.csv, evaluations.csv, *.pt checkpoints)")
        if info.flag_bits & _ENCRYPTION_FLAGS:
            raise ImportRejected(f"member {name!r} is encrypted; exports are never encrypted")
        if info.flag_bits & ~_ALLOWED_FLAGS:
            raise ImportRejected(f"member {name!r} uses zip features an export never has (flags {info.flag_bits:#06x})")
        if info.compress_type not in _COMPRESSIONS:
            raise ImportRejected(f"member {name!r} uses compression method {info.compress_type}; only "
                                 f"{' and '.join(_COMPRESSIONS.values())} members are accepted")
        if info.file_size > MAX_MEMBER_BYTES:
            raise ImportRejected(f"member {name!r} is {info.file_size:,} bytes; at most {MAX_MEMBER_BYTES:,} allowed")
        total += info.file_size
        if total > MAX_TOTAL_BYTES:
            raise ImportRejected(f"the zip unpacks to more than {MAX_TOTAL_BYTES:,} bytes")
        runs.setdefault(match.group(1), []).append(info)
    if not runs:
        raise ImportRejected("the zip holds no runs")
    return runs


def _read_member(archive: zipfile.ZipFile, info: zipfile.ZipInfo) -> bytes:
    """A member's bytes, checked against its CRC and declared size; damage of any kind is a rejection."""
    name = info.filename
    try:
        with archive.open(info) as member:
            data = member.read(MAX_MEMBER_BYTES + 1)
    except _ZIP_ERRORS as err:
        detail = str(err).splitlines()[0][:200] if str(err) else type(err).__name__
        raise ImportRejected(f"member {name!r} cannot be read: it is damaged or forged ({detail})") from None
    if len(data) > MAX_MEMBER_BYTES:
        raise ImportRejected(f"member {name!r} unpacks to more than {MAX_MEMBER_BYTES:,} bytes")
    if len(data) != info.file_size:
        raise ImportRejected(f"member {name!r} unpacks to {len(data):,} bytes but declares {info.file_size:,}")
    return data


# --------------------------------------------------------------------------------------------- field parsing


def _int(text: str, where: str, low: int = 0, high: int = MAX_COUNT) -> int:
    if not _INT.match(text):
        raise ImportRejected(f"{where} holds {text[:30]!r} where a whole number from {low} to {high:,} belongs")
    value = int(text)
    if not low <= value <= high:
        raise ImportRejected(f"{where} holds {value:,}, outside {low} … {high:,}")
    return value


def _float(text: str, where: str, low: float = -math.inf, high: float = math.inf) -> float:
    value = float(text) if _FLOAT.match(text) else math.nan  # float() alone also takes nan, inf, '1_0', ' 1'
    if not math.isfinite(value):
        raise ImportRejected(f"{where} holds {text[:30]!r} where a finite number belongs")
    if not low <= value <= high:
        raise ImportRejected(f"{where} holds {value!r}, outside {low} … {high}")
    return value


def _optional(text: str) -> bool:
    return text in ("", "None")


def _table(data: bytes, member: str) -> tuple[list[str], list[tuple[int, list[str]]]]:
    """The CSV's header and its rows (with 1-based line numbers), every row as long as the header."""
    try:
        lines = list(csv.reader(io.StringIO(data.decode("utf-8-sig"))))
    except (UnicodeDecodeError, csv.Error) as err:
        raise ImportRejected(f"member {member!r} is not a readable CSV file ({err})") from None
    if not lines:
        raise ImportRejected(f"member {member!r} is empty; it must have a header row")
    header, rows = lines[0], []
    for number, row in enumerate(lines[1:], start=2):
        if not row:
            continue
        if len(row) != len(header):
            raise ImportRejected(f"member {member!r} row {number} has {len(row)} cells; the header has "
                                 f"{len(header)}")
        rows.append((number, row))
    return header, rows


def _columns(header: list[str], member: str, required: Sequence[str], exact: bool) -> dict[str, int]:
    if len(set(header)) != len(header):
        raise ImportRejected(f"member {member!r} names a column twice")
    missing = [column for column in required if column not in header]
    if missing:
        raise ImportRejected(f"member {member!r} lacks the column(s) {', '.join(missing)}")
    extra = [column for column in header if column not in required]
    if exact and extra:
        raise ImportRejected(f"member {member!r} has unexpected column(s) {', '.join(c[:40] for c in extra[:5])}")
    return {column: index for index, column in enumerate(header)}


def _cells(row: list[str], at: dict[str, int], member: str, number: int) -> dict[str, tuple[str, str]]:
    """Each cell of a row with where it is, for the messages: ``{column: (text, "member … row N, column C")}``."""
    return {column: (row[index], f"member {member!r} row {number}, column {column}") for column, index in at.items()}


def _value(column: str, kind: Any, text: str, where: str) -> Any:
    """One cell of an event's column, read as the column's type (``records.columns``) and held to its range."""
    options = get_args(kind)  # (float, NoneType) for float | None
    if _optional(text) and (type(None) in options or column in _EMPTY_READS_AS):
        return _EMPTY_READS_AS.get(column)
    kind = next((option for option in options if option is not type(None)), kind)
    if kind is bool:
        if text not in _BOOLEANS:
            raise ImportRejected(f"{where} holds {text[:30]!r} where True or False belongs")
        return _BOOLEANS[text]
    if kind is int:
        return _int(text, where, low=_LOWEST.get(column, 0))
    return _float(text, where, low=_LOWEST.get(column, -math.inf), high=_HIGHEST.get(column, math.inf))


def _events(data: bytes, member: str, event_type: type[Event], key: str, what: str | None = None) -> list[Event]:
    """The CSV's rows as events of ``event_type``, each cell checked against its column, no ``key`` twice. An
    update's columns beyond ``UPDATE_COLUMNS`` are its metrics; the other files have exactly their columns."""
    header, rows = _table(data, member)
    types = columns(event_type)
    at = _columns(header, member, list(types), exact=event_type is not Updated)
    metrics = [column for column in header if column not in types]
    if len(metrics) > MAX_METRICS:
        raise ImportRejected(f"member {member!r} has {len(metrics)} metric columns; at most {MAX_METRICS}")
    for metric in metrics:
        if not _METRIC.match(metric):
            raise ImportRejected(f"member {member!r} has a column named {metric[:40]!r}; metric names are letters, "
                                 f"digits, '_' and '.' (at most 64)")
    out = []
    for number, row in rows:
        cell = _cells(row, at, member, number)
        values = {column: _value(column, kind, *cell[column]) for column, kind in types.items()}
        if event_type is Updated:
            values["metrics"] = {metric: _float(*cell[metric]) for metric in metrics if not _optional(cell[metric][0])}
        out.append(event_type(**values))
    keys = [getattr(event, key) for event in out]
    if len(set(keys)) != len(keys):
        raise ImportRejected(f"member {member!r} lists the same {what or key} twice")
    return out


# ------------------------------------------------------------------------------------------------ run record


@dataclass
class _Run:
    """One run of the zip, fully validated, ready to write."""

    old_id: str
    config: TrainConfig
    name: str | None
    preset: str | None
    seed: int
    group_id: str | None
    tags: list[str]
    status: str
    error: str | None
    episodes: list[EpisodeEnded] = field(default_factory=list)
    updates: list[Updated] = field(default_factory=list)
    evaluations: list[Evaluated] = field(default_factory=list)  # by env_steps
    checkpoints: dict[str, tuple[bytes, str, int]] = field(default_factory=dict)  # name -> (bytes, kind, steps)


def _record(data: bytes, run_id: str) -> _Run:
    member = f"{run_id}/run.json"

    def bad(problem: str) -> ImportRejected:
        return ImportRejected(f"member {member!r} is not a valid run record ({problem})")

    try:
        record = json.loads(data.decode("utf-8-sig"))
    except (UnicodeDecodeError, ValueError, RecursionError) as err:  # JSONDecodeError, an over-long integer
        raise bad(f"not JSON: {str(err)[:120]}") from None
    if not isinstance(record, dict):
        raise bad(f"a JSON object is expected, got {type(record).__name__}")
    for key in ("config_json", "seed", "status"):
        if key not in record:
            raise bad(f"it lacks {key!r}")
    if not isinstance(record["config_json"], str):
        raise bad("config_json must be text")
    try:
        config = config_from_json(record["config_json"])
    except (ConfigError, RecursionError) as err:
        raise bad(f"config_json: {str(err)[:300]}") from None
    if record.get("id", run_id) != run_id:
        raise bad(f"its id {shown(record['id'])} is not its folder's name {run_id!r}")
    if record.get("algo", config.algo) != config.algo:
        raise bad(f"algo {shown(record['algo'])} differs from its config's {config.algo!r}")
    try:
        seed = check_seed(record["seed"])
        name = None if record.get("name") is None else check_name(record["name"])
        tags = record.get("tags") or []
        if not isinstance(tags, list):
            raise LimitError(f"tags must be a list of texts, got {type(tags).__name__}")
        tags = check_tags(tags)
    except LimitError as err:
        raise bad(str(err)) from None
    preset, group_id = record.get("preset"), record.get("group_id")
    if preset is not None and not (isinstance(preset, str) and _PRESET.match(preset)):
        raise bad(f"preset {shown(preset)} is not a preset name")
    if group_id is not None and not (isinstance(group_id, str) and _GROUP_ID.match(group_id)):
        raise bad(f"group_id {shown(group_id)} is not a group id")
    status, error = record["status"], record.get("error")
    if status not in STATUSES:
        raise bad(f"status {shown(status)} is unknown; allowed: {', '.join(STATUSES)}")
    if error is not None and not (isinstance(error, str) and len(error) <= MAX_ERROR_CHARS):
        raise bad(f"error must be text of at most {MAX_ERROR_CHARS:,} characters")
    if status in ACTIVE_STATUSES:  # the scheduler would claim a queued run and train it
        error = f"exported while {status}, before it finished; imported as interrupted"
        status = "interrupted"
    if IMPORTED_TAG not in tags and len(tags) < TAGS_MAX:  # a run with the most tags keeps its own
        tags = sorted([*tags, IMPORTED_TAG])
    return _Run(run_id, config, name, preset, seed, group_id, tags, status, error)


def _checkpoint(data: bytes, member: str, algo: str) -> tuple[str, int]:
    """Load the checkpoint (tensors only: ``torch.load(weights_only=True)``) and check it fits the run."""
    with tempfile.NamedTemporaryFile(suffix=".pt") as handle:
        handle.write(data)
        handle.flush()
        try:
            payload = read_checkpoint(handle.name)
        except CheckpointError as err:  # its message names the temporary file: name the member instead
            reason = str(err).replace(f"{handle.name} ", "", 1).replace(handle.name, "it")
            raise ImportRejected(f"member {member!r} {reason[:300]} — only tensor checkpoints are accepted; "
                                 f"pickled objects are refused") from None

    def bad(problem: str) -> ImportRejected:
        return ImportRejected(f"member {member!r} is not a valid checkpoint ({problem})")

    payload_algo, meta = payload.get("algo"), payload.get("meta")
    if not isinstance(payload_algo, str) or payload_algo not in CONFIG_CLASSES:
        raise bad(f"algo {shown(payload_algo)} is unknown; allowed: {', '.join(CONFIG_CLASSES)}")
    if payload_algo != algo:
        raise ImportRejected(f"member {member!r} is a {payload_algo} checkpoint in a {algo} run")
    if not isinstance(meta, dict):
        raise bad(f"its meta must be a dict, got {type(meta).__name__}")
    kind, env_steps = meta.get("kind"), meta.get("env_steps")
    if not isinstance(kind, str) or kind not in CHECKPOINT_KINDS:
        raise bad(f"kind {shown(kind)} is unknown; allowed: {', '.join(CHECKPOINT_KINDS)}")
    if isinstance(env_steps, bool) or not isinstance(env_steps, int) or not 0 <= env_steps <= MAX_COUNT:
        raise bad(f"env_steps {shown(env_steps)} is not a whole number from 0 to {MAX_COUNT:,}")
    if not isinstance(payload.get("config_json"), str) or not isinstance(payload.get("state"), dict):
        raise bad("it lacks its config or state")
    try:
        config = config_from_json(payload["config_json"])
        if config.algo != algo:
            raise ValueError(f"its config is for {config.algo}")
        agent_from_state(config, payload["state"])
    except (ConfigError, KeyError, RuntimeError, ValueError, TypeError, AttributeError, IndexError,
            RecursionError) as err:
        raise bad(f"damaged config or state: {(str(err).splitlines() or [type(err).__name__])[0][:200]}") from None
    return kind, env_steps


def _parse_run(archive: zipfile.ZipFile, run_id: str, infos: list[zipfile.ZipInfo]) -> _Run:
    by_name = {PurePosixPath(info.filename).name: info for info in infos}
    for required in ("run.json", "episodes.csv", "evaluations.csv"):
        if required not in by_name:
            raise ImportRejected(f"run {run_id} lacks {required} (member '{run_id}/{required}')")
    run = _record(_read_member(archive, by_name["run.json"]), run_id)

    def events(file: str, event_type: type[Event], key: str, what: str | None = None) -> list[Event]:
        return _events(_read_member(archive, by_name[file]), f"{run_id}/{file}", event_type, key, what)

    run.episodes = events("episodes.csv", EpisodeEnded, "episode")
    run.evaluations = sorted(events("evaluations.csv", Evaluated, "env_steps", "evaluation step (env_steps)"),
                             key=attrgetter("env_steps"))
    if "updates.csv" in by_name:
        run.updates = events("updates.csv", Updated, "update")
    for file_name, info in sorted(by_name.items()):
        if file_name.endswith(".pt"):
            data = _read_member(archive, info)
            run.checkpoints[file_name] = (data, *_checkpoint(data, f"{run_id}/{file_name}", run.config.algo))
    return run


def _parse(path: Path) -> list[_Run]:
    try:
        archive = zipfile.ZipFile(path)
    except (*_ZIP_ERRORS, UnicodeDecodeError) as err:
        raise ImportRejected(f"{path.name} is not a readable zip file ({str(err)[:200]})") from None
    with archive:
        return [_parse_run(archive, run_id, infos) for run_id, infos in _check_members(archive).items()]


# ------------------------------------------------------------------------------------------------------ write


def _summary(run: _Run) -> dict[str, Any]:
    """The run's counters, as ``RunStore.append_events`` would have advanced them from its metrics."""
    events = [*run.episodes, *run.updates, *run.evaluations]
    solved = [evaluation for evaluation in run.evaluations if evaluation.solved]
    return {"env_steps": max((event.env_steps for event in events), default=0),
            "train_seconds": max((event.time_s for event in events), default=0.0),
            "episodes": max((episode.episode for episode in run.episodes), default=0),
            "best_eval": max((evaluation.mean_return for evaluation in run.evaluations), default=None),
            "final_eval": run.evaluations[-1].mean_return if run.evaluations else None, "solved": int(bool(solved)),
            "time_to_solve_s": solved[0].time_s if solved else None,
            "steps_to_solve": solved[0].env_steps if solved else None}


def _free_id(conn: Any, store: RunStore, wanted: str, algo: str, taken: set[str]) -> str:
    run_id = wanted
    for _ in range(100):
        if run_id not in taken and not store.run_dir(run_id).exists() and \
                conn.execute("SELECT 1 FROM runs WHERE id = ?", (run_id,)).fetchone() is None:
            return run_id
        run_id = new_run_id(algo)
    raise RuntimeError(f"found no free run id for {wanted!r}")


def _write(store: RunStore, runs: list[_Run]) -> list[str]:
    created: list[Path] = []
    imported: list[str] = []
    try:
        with store.transaction() as conn:  # holds the write lock: the ids chosen stay free until the commit
            for run in runs:
                run_id = _free_id(conn, store, run.old_id, run.config.algo, set(imported))
                run_dir = store.run_dir(run_id)
                run_dir.mkdir(parents=True)
                created.append(run_dir)
                now = time.time()
                conn.execute(
                    "INSERT INTO runs (id, name, algo, preset, config_json, seed, group_id, tags_json, status,"
                    " created_at, ended_at, error, env_steps, episodes, train_seconds, best_eval, final_eval, solved,"
                    " time_to_solve_s, steps_to_solve) VALUES (:id, :name, :algo, :preset, :config_json, :seed,"
                    " :group_id, :tags_json, :status, :now, :now, :error, :env_steps, :episodes, :train_seconds,"
                    " :best_eval, :final_eval, :solved, :time_to_solve_s, :steps_to_solve)",
                    {"id": run_id, "name": run.name or run_id, "algo": run.config.algo, "preset": run.preset,
                     "config_json": run.config.to_json(), "seed": run.seed, "group_id": run.group_id,
                     "tags_json": json.dumps(run.tags), "status": run.status, "now": now, "error": run.error,
                     **_summary(run)})
                insert_metrics(conn, run_id, [*run.episodes, *run.updates, *run.evaluations])
                for name, (data, kind, env_steps) in run.checkpoints.items():
                    target = run_dir / name
                    target.write_bytes(data)
                    conn.execute("INSERT INTO artifacts (run_id, kind, env_steps, path, created_at)"
                                 " VALUES (?, ?, ?, ?, ?)", (run_id, kind, env_steps,
                                                             str(target.relative_to(store.home)), now))
                imported.append(run_id)
    except BaseException:
        for run_dir in created:
            shutil.rmtree(run_dir, ignore_errors=True)
        raise
    return imported


def import_runs(store: RunStore, path: Path) -> list[str]:
    """Validate the whole zip, then add all its runs to the store at once. Returns the new run ids.

    ``ImportRejected`` (naming the member and the problem) when the zip is not a valid export; the store is then
    unchanged. A failure writing the store (``StoreError``, ``OSError``) also leaves it unchanged.
    """
    return _write(store, _parse(Path(path)))
