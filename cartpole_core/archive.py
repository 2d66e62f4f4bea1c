"""Export runs to a zip and import them back — validated, because a zip may come from anyone.

An export holds, per run, ``<run_id>/run.json`` (the run's record, config included), ``episodes.csv``,
``updates.csv``, ``evaluations.csv`` and its checkpoints (``*.pt``). Import accepts exactly that layout and
rejects, with a message naming the member, anything else: absolute or ``..`` paths, links, unknown files,
members or totals over the size limits (zip bombs), malformed CSV/JSON, and checkpoints that do not load with
``torch.load(weights_only=True)`` — so a pickle can never run code here. Nothing is written unless every member
passed; an imported run keeps its id unless that id already exists, in which case it gets a new one.
"""

from __future__ import annotations

import csv
import io
import json
import re
import stat
import tempfile
import zipfile
from collections.abc import Sequence
from pathlib import Path, PurePosixPath
from typing import Any

from cartpole_core.agent import CheckpointError, read_checkpoint
from cartpole_core.configs import ConfigError, config_from_json
from cartpole_core.events import EpisodeEnded, Evaluated, Updated
from cartpole_core.paths import new_run_id
from cartpole_core.store import RunStore

MAX_MEMBER_BYTES = 64 * 1024 * 1024
MAX_TOTAL_BYTES = 512 * 1024 * 1024
MAX_MEMBERS = 2000
_RUN_ID = r"[A-Za-z0-9][A-Za-z0-9_.-]{0,99}"
_FILES = r"run\.json|episodes\.csv|updates\.csv|evaluations\.csv|[A-Za-z0-9_.-]{1,80}\.pt"
_MEMBER = re.compile(rf"^({_RUN_ID})/({_FILES})$")
EPISODE_COLUMNS = ["episode", "env_steps", "episode_return", "length", "epsilon", "learning_rate", "time_s"]
EVALUATION_COLUMNS = ["env_steps", "episodes", "mean_return", "std_return", "solved", "time_s"]
_RUN_FIELDS = ("id", "name", "algo", "preset", "config_json", "seed", "group_id", "tags", "status", "error")


class ImportRejected(ValueError):
    """The zip is not a valid CartPole Lab export; the message names the member and the problem."""


def _csv(rows: list[dict[str, Any]], columns: list[str]) -> str:
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=columns, extrasaction="ignore")
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
            update_columns = ["update", "env_steps", "time_s"] + sorted(
                {key for row in updates for key in row} - {"update", "env_steps", "time_s"})
            archive.writestr(f"{run_id}/updates.csv", _csv(updates, update_columns))
            archive.writestr(f"{run_id}/evaluations.csv", _csv(store.evaluations(run_id), EVALUATION_COLUMNS))
            for artifact in store.artifacts(run_id):
                if artifact["path"].is_file():
                    archive.write(artifact["path"], f"{run_id}/{artifact['path'].name}")
    return path


def _check_members(archive: zipfile.ZipFile) -> dict[str, list[zipfile.ZipInfo]]:
    infos = archive.infolist()
    if len(infos) > MAX_MEMBERS:
        raise ImportRejected(f"the zip has {len(infos)} members; at most {MAX_MEMBERS} are allowed")
    runs: dict[str, list[zipfile.ZipInfo]] = {}
    total = 0
    for info in infos:
        name = info.filename
        if info.is_dir():
            continue
        pure = PurePosixPath(name)
        if name.startswith(("/", "\\")) or ".." in pure.parts or "\\" in name or ":" in name:
            raise ImportRejected(f"member {name!r} points outside the archive (absolute path or '..')")
        if stat.S_ISLNK(info.external_attr >> 16):
            raise ImportRejected(f"member {name!r} is a symbolic link; links are not allowed")
        match = _MEMBER.match(name)
        if not match:
            raise ImportRejected(f"member {name!r} is not part of a CartPole Lab export (allowed per run: run.json, "
                                 f"episodes.csv, updates.csv, evaluations.csv, *.pt checkpoints)")
        if info.file_size > MAX_MEMBER_BYTES:
            raise ImportRejected(f"member {name!r} is {info.file_size:,} bytes; at most {MAX_MEMBER_BYTES:,} allowed")
        total += info.file_size
        if total > MAX_TOTAL_BYTES:
            raise ImportRejected(f"the zip unpacks to more than {MAX_TOTAL_BYTES:,} bytes")
        runs.setdefault(match.group(1), []).append(info)
    if not runs:
        raise ImportRejected("the zip holds no runs")
    return runs


def _read_limited(archive: zipfile.ZipFile, info: zipfile.ZipInfo) -> bytes:
    """Read a member without trusting its declared size (a forged header must not bypass the limit)."""
    with archive.open(info) as member:
        data = member.read(MAX_MEMBER_BYTES + 1)
    if len(data) > MAX_MEMBER_BYTES:
        raise ImportRejected(f"member {info.filename!r} unpacks to more than {MAX_MEMBER_BYTES:,} bytes")
    return data


def _rows(data: bytes, name: str, required: list[str]) -> list[dict[str, str]]:
    try:
        reader = csv.DictReader(io.StringIO(data.decode("utf-8")))
        rows = list(reader)
    except (UnicodeDecodeError, csv.Error) as err:
        raise ImportRejected(f"member {name!r} is not a readable CSV file ({err})") from None
    missing = set(required) - set(reader.fieldnames or [])
    if missing:
        raise ImportRejected(f"member {name!r} lacks the column(s) {', '.join(sorted(missing))}")
    return rows


def _number(value: str, name: str, kind: type = float) -> Any:
    if value in ("", "None"):
        return None
    try:
        return kind(float(value)) if kind is int else kind(value)
    except ValueError:
        raise ImportRejected(f"member {name!r} holds {value[:30]!r} where a number belongs") from None


def _parse_run(archive: zipfile.ZipFile, run_id: str, infos: list[zipfile.ZipInfo]) -> dict[str, Any]:
    by_name = {PurePosixPath(info.filename).name: info for info in infos}
    for required in ("run.json", "episodes.csv", "evaluations.csv"):
        if required not in by_name:
            raise ImportRejected(f"run {run_id} lacks {required}")
    try:
        record = json.loads(_read_limited(archive, by_name["run.json"]).decode("utf-8"))
        config = config_from_json(record["config_json"])
        seed = int(record["seed"])
    except (ValueError, KeyError, TypeError) as err:  # ConfigError is a ValueError
        detail = str(err) if isinstance(err, ConfigError) else f"{type(err).__name__}: {err}"
        raise ImportRejected(f"member '{run_id}/run.json' is not a valid run record ({detail})") from None
    episodes_name, evals_name = f"{run_id}/episodes.csv", f"{run_id}/evaluations.csv"
    episodes = [EpisodeEnded(_number(r["episode"], episodes_name, int), _number(r["env_steps"], episodes_name, int),
                             _number(r["episode_return"], episodes_name), _number(r["length"], episodes_name, int),
                             _number(r["epsilon"], episodes_name), _number(r["learning_rate"], episodes_name) or 0.0,
                             _number(r["time_s"], episodes_name))
                for r in _rows(_read_limited(archive, by_name["episodes.csv"]), episodes_name, EPISODE_COLUMNS)]
    evaluations = [Evaluated(_number(r["env_steps"], evals_name, int), _number(r["episodes"], evals_name, int),
                             _number(r["mean_return"], evals_name), _number(r["std_return"], evals_name),
                             r["solved"] in ("True", "1", "true"), _number(r["time_s"], evals_name))
                   for r in _rows(_read_limited(archive, by_name["evaluations.csv"]), evals_name, EVALUATION_COLUMNS)]
    updates = []
    if "updates.csv" in by_name:
        name = f"{run_id}/updates.csv"
        for r in _rows(_read_limited(archive, by_name["updates.csv"]), name, ["update", "env_steps", "time_s"]):
            metrics = {k: _number(v, name) for k, v in r.items() if k not in ("update", "env_steps", "time_s")}
            updates.append(Updated(_number(r["update"], name, int), _number(r["env_steps"], name, int),
                                   {k: v for k, v in metrics.items() if v is not None}, _number(r["time_s"], name)))
    checkpoints = {}
    for file_name, info in by_name.items():
        if file_name.endswith(".pt"):
            checkpoints[file_name] = _read_limited(archive, info)
    return {"record": record, "config": config, "seed": seed, "episodes": episodes, "updates": updates,
            "evaluations": evaluations, "checkpoints": checkpoints}


def _validate_checkpoint(data: bytes, member: str, algo: str) -> dict[str, Any]:
    with tempfile.NamedTemporaryFile(suffix=".pt") as handle:
        handle.write(data)
        handle.flush()
        try:
            payload = read_checkpoint(handle.name)
        except CheckpointError:
            raise ImportRejected(f"member {member!r} is not a CartPole Lab checkpoint (only tensor checkpoints "
                                 f"are accepted; pickled objects are refused)") from None
    if payload["algo"] != algo:
        raise ImportRejected(f"member {member!r} is a {payload['algo']} checkpoint in a {algo} run")
    return payload


def import_runs(store: RunStore, path: Path) -> list[str]:
    """Validate the whole zip, then add its runs to the store. Returns the new run ids."""
    path = Path(path)
    try:
        archive = zipfile.ZipFile(path)
    except (zipfile.BadZipFile, OSError) as err:
        raise ImportRejected(f"{path.name} is not a readable zip file ({err})") from None
    with archive:
        parsed = {run_id: _parse_run(archive, run_id, infos) for run_id, infos in _check_members(archive).items()}
    checkpoint_meta = {run_id: {name: _validate_checkpoint(data, f"{run_id}/{name}", run["config"].algo)
                                for name, data in run["checkpoints"].items()}
                       for run_id, run in parsed.items()}
    imported = []
    for old_id, run in parsed.items():
        record, config = run["record"], run["config"]
        run_id = old_id if store.get_run(old_id) is None else new_run_id(config.algo)
        status = record.get("status") if record.get("status") in ("completed", "failed", "cancelled",
                                                                   "interrupted") else "interrupted"
        store.create_run(run_id, config.to_json(), config.algo, run["seed"], name=str(record.get("name") or run_id),
                         preset=record.get("preset"), tags=[str(t) for t in record.get("tags") or []] + ["imported"])
        store.append_events(run_id, [*run["episodes"], *run["updates"], *run["evaluations"]])
        for name, data in run["checkpoints"].items():
            target = store.run_dir(run_id) / name
            target.write_bytes(data)
            meta = checkpoint_meta[old_id][name].get("meta", {})
            kind = str(meta.get("kind", "final" if name == "final.pt" else "periodic"))
            store.add_artifact(run_id, kind, int(meta.get("env_steps", 0)), target)
        store.set_status(run_id, status, record.get("error"))
        imported.append(run_id)
    return imported
