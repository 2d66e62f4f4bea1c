"""Export a run to a zip and import it back; malicious or malformed zips are rejected with a clear message, and a
rejected import leaves the store exactly as it was (rows and files).

The helpers here (``dump``, ``listing``, ``members``, ``rebuild``, ``patch_header``, ``edit_checkpoint``) are shared
with tests/test_archive_fuzz.py.
"""

import io
import json
import pickle
import sqlite3
import struct
import warnings
import zipfile
from pathlib import Path

import pytest
import torch
from app_support import trained_group

from cartpole_core.config.presets import preset_config
from cartpole_core.engine.agent import load_agent, save_checkpoint
from cartpole_core.engine.observers import Callbacks
from cartpole_core.engine.train import train
from cartpole_core.jobs.queue import submit
from cartpole_core.runs.archive import MAX_MEMBERS, ImportRejected, export_runs, import_runs
from cartpole_core.runs.store import ACTIVE_STATUSES, RunStore, StoreError, db_path


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    """A real trained run in a store, exported to a zip."""
    home = tmp_path_factory.mktemp("source")
    store = RunStore(home)
    config = preset_config("qlearning", "fast", total_env_steps=6000, stop_on_solve=False)
    store.create_run("run-a", config.to_json(), "qlearning", 7, preset="fast", tags=["mine"])
    events = []
    agent, result = train(config, seed=7, observer=Callbacks(on_event=events.append))
    store.append_events("run-a", events)
    path = save_checkpoint(agent, store.run_dir("run-a") / "final.pt", env_steps=result.env_steps, kind="final")
    store.add_artifact("run-a", "final", result.env_steps, path)
    store.finish_run("run-a", result, "completed")
    return store, export_runs(store, ["run-a"], home / "export.zip")


def test_round_trip_keeps_metrics_config_and_checkpoint(exported, tmp_path):
    source, zip_path = exported
    target = RunStore(tmp_path)
    (run_id,) = import_runs(target, zip_path)
    original, copy = source.get_run("run-a"), target.get_run(run_id)
    assert run_id == "run-a"
    assert copy["config_json"] == original["config_json"] and copy["seed"] == 7
    assert copy["status"] == "completed" and set(copy["tags"]) == {"mine", "imported"}
    assert target.episodes(run_id) == source.episodes("run-a")
    assert target.evaluations(run_id) == source.evaluations("run-a")
    assert [u["td_error_abs"] for u in target.updates(run_id)] == pytest.approx(
        [u["td_error_abs"] for u in source.updates("run-a")])
    (artifact,) = target.artifacts(run_id)
    assert artifact["kind"] == "final"
    assert artifact["path"].read_bytes() == (source.run_dir("run-a") / "final.pt").read_bytes()


def test_importing_twice_gives_a_new_id(exported, tmp_path):
    _, zip_path = exported
    target = RunStore(tmp_path)
    first = import_runs(target, zip_path)
    second = import_runs(target, zip_path)
    assert first != second and len(target.list_runs()) == 2


def tampered(zip_path, tmp_path, replace: dict[str, bytes] | None = None, add: dict[str, bytes] | None = None):
    out = tmp_path / "tampered.zip"
    with zipfile.ZipFile(zip_path) as source, zipfile.ZipFile(out, "w") as target:
        for info in source.infolist():
            data = (replace or {}).get(info.filename, source.read(info))
            target.writestr(info.filename, data)
        for name, data in (add or {}).items():
            target.writestr(name, data)
    return out


class Boom:
    def __reduce__(self):
        return (print, ("pwned",))


@pytest.mark.parametrize(("change", "message"), [
    ({"add": {"../../evil.txt": b"x"}}, "outside the archive"),
    ({"add": {"/etc/evil.json": b"x"}}, "outside the archive"),
    ({"add": {"run-a/notes.exe": b"x"}}, "not part of a CartPole Lab export"),
    ({"add": {"run-a/evil.pt": pickle.dumps(Boom())}}, "pickled objects are refused"),
    ({"replace": {"run-a/final.pt": pickle.dumps({"q_table": [1, 2]})}}, "pickled objects are refused"),
    ({"replace": {"run-a/run.json": b"{not json"}}, "not a valid run record"),
    ({"replace": {"run-a/episodes.csv": b"episode,env_steps\n1,2\n"}}, "lacks the column"),
    ({"replace": {"run-a/episodes.csv": b"episode,env_steps,episode_return,length,epsilon,learning_rate,time_s\n"
                                        b"1,abc,1,1,0,0,0\n"}}, "where a whole number"),
])
def test_malicious_or_malformed_zip_is_rejected_and_nothing_is_written(exported, tmp_path, change, message):
    _, zip_path = exported
    bad = tampered(zip_path, tmp_path, **change)
    target = RunStore(tmp_path / "home")
    with pytest.raises(ImportRejected, match=message):
        import_runs(target, bad)
    assert target.list_runs() == []
    assert list((tmp_path / "home" / "runs").iterdir()) == []


def test_zip_bomb_member_is_rejected(tmp_path):
    bomb = tmp_path / "bomb.zip"
    with zipfile.ZipFile(bomb, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("run-a/episodes.csv", b"0" * (65 * 1024 * 1024))
    with pytest.raises(ImportRejected, match="bytes"):
        import_runs(RunStore(tmp_path / "home"), bomb)


# The CSV headers every version has exported (updates.csv: then one column per metric, sorted). Renaming an event's
# field renames its column: exports made before would no longer import.
EXPORTED_HEADERS = {"episodes.csv": "episode,env_steps,episode_return,length,epsilon,learning_rate,time_s",
                    "updates.csv": "update,env_steps,time_s,loss,td_error_abs",
                    "evaluations.csv": "env_steps,episodes,mean_return,std_return,solved,time_s"}


def test_an_export_of_any_version_imports_and_exports_the_same_columns(tmp_path):
    record = {"id": "old-run", "name": "old", "algo": "qlearning", "preset": "fast", "seed": 3, "group_id": None,
              "config_json": preset_config("qlearning", "fast").to_json(), "tags": [], "status": "completed",
              "error": None}
    rows = {"episodes.csv": "1,10,10.0,10,0.5,0.1,0.01\n2,30,20.0,20,,,0.03\n3,60,30.0,30,None,0.1,0.05\n",
            "updates.csv": "1,10,0.01,0.5,0.25\n2,30,0.03,,0.125\n",
            "evaluations.csv": "60,20,30.0,1.5,False,0.06\n30,20,20.0,0.0,True,0.04\n"}
    path = tmp_path / "old.zip"
    path.write_bytes(rebuild([("old-run/run.json", json.dumps(record).encode())]
                             + [(f"old-run/{file}", f"{EXPORTED_HEADERS[file]}\n{data}".encode())
                                for file, data in rows.items()]))
    store = RunStore(tmp_path / "home")
    (run_id,) = import_runs(store, path)
    episode = {"episode": 2, "env_steps": 30, "episode_return": 20.0, "length": 20, "epsilon": None,
               "learning_rate": 0.0, "time_s": 0.03}  # an empty learning rate reads as 0.0
    assert store.episodes(run_id)[1] == episode and store.episodes(run_id)[2]["epsilon"] is None
    assert store.updates(run_id) == [{"update": 1, "env_steps": 10, "time_s": 0.01, "loss": 0.5, "td_error_abs": 0.25},
                                     {"update": 2, "env_steps": 30, "time_s": 0.03, "td_error_abs": 0.125}]
    assert store.evaluations(run_id) == [
        {"env_steps": 30, "episodes": 20, "mean_return": 20.0, "std_return": 0.0, "solved": True, "time_s": 0.04},
        {"env_steps": 60, "episodes": 20, "mean_return": 30.0, "std_return": 1.5, "solved": False, "time_s": 0.06}]
    run = store.get_run(run_id)
    assert (run["episodes"], run["env_steps"], run["train_seconds"], run["best_eval"], run["final_eval"]) == \
        (3, 60, 0.06, 30.0, 30.0)
    assert (run["solved"], run["steps_to_solve"], run["time_to_solve_s"]) == (True, 30, 0.04)
    exported = dict(members(export_runs(store, [run_id], tmp_path / "again.zip").read_bytes()))
    assert {file: exported[f"{run_id}/{file}"].decode().splitlines()[0] for file in rows} == EXPORTED_HEADERS


def test_not_a_zip_is_rejected(tmp_path):
    path = tmp_path / "runs.zip"
    path.write_bytes(io.BytesIO(b"hello").getvalue())
    with pytest.raises(ImportRejected, match="not a readable zip"):
        import_runs(RunStore(tmp_path / "home"), path)


# ------------------------------------------------------------------------------------------ shared helpers


def dump(home: Path) -> dict[str, list[str]]:
    """Every row of every table of the store at ``home``, exactly (repr of each row), in a stable order."""
    conn = sqlite3.connect(f"file:{db_path(home)}?mode=ro", uri=True)
    try:
        tables = [row[0] for row in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY name")]
        return {table: sorted(repr(tuple(row)) for row in conn.execute(f'SELECT * FROM "{table}"'))
                for table in tables}
    finally:
        conn.close()


def listing(home: Path) -> list[str]:
    """Every path under the store's runs/ folder."""
    return sorted(str(path.relative_to(home)) for path in (home / "runs").rglob("*"))


def members(zip_bytes: bytes) -> list[tuple[str, bytes]]:
    with zipfile.ZipFile(io.BytesIO(zip_bytes)) as archive:
        return [(info.filename, archive.read(info)) for info in archive.infolist()]


def rebuild(entries: list[tuple[str, bytes]]) -> bytes:
    """A deflated zip of ``(name, data)`` entries, duplicates allowed (zipfile only warns about them)."""
    out = io.BytesIO()
    with warnings.catch_warnings(), zipfile.ZipFile(out, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        warnings.simplefilter("ignore", UserWarning)
        for name, data in entries:
            archive.writestr(name, data)
    return out.getvalue()


def replaced(zip_bytes: bytes, changes: dict[str, bytes]) -> bytes:
    return rebuild([(name, changes.get(name, data)) for name, data in members(zip_bytes)])


# Offsets of fields in a zip's central directory entry / local file header, and their struct formats.
CENTRAL_FIELDS = {"flags": (8, "<H"), "method": (10, "<H"), "crc": (16, "<I"), "csize": (20, "<I"),
                  "usize": (24, "<I"), "extattr": (38, "<I")}
LOCAL_FIELDS = {"flags": (6, "<H"), "method": (8, "<H"), "crc": (14, "<I"), "csize": (18, "<I"), "usize": (22, "<I")}


def headers(zip_bytes: bytes) -> list[tuple[str, int, int]]:
    """(name, offset of its central directory entry, offset of its local header) for each member."""
    eocd = zip_bytes.rindex(b"PK\x05\x06")
    count, _, offset = struct.unpack_from("<HII", zip_bytes, eocd + 10)
    out = []
    for _ in range(count):
        assert zip_bytes[offset:offset + 4] == b"PK\x01\x02"
        name_len, extra_len, comment_len = struct.unpack_from("<HHH", zip_bytes, offset + 28)
        (local,) = struct.unpack_from("<I", zip_bytes, offset + 42)
        out.append((zip_bytes[offset + 46:offset + 46 + name_len].decode("utf-8"), offset, local))
        offset += 46 + name_len + extra_len + comment_len
    return out


def patch_header(zip_bytes: bytes, name: str, field: str, value: int, where: str = "both") -> bytes:
    """The zip with one header field of member ``name`` forged, in its central entry, local header or both."""
    data = bytearray(zip_bytes)
    _, central, local = next(entry for entry in headers(zip_bytes) if entry[0] == name)
    if where in ("central", "both"):
        offset, fmt = CENTRAL_FIELDS[field]
        struct.pack_into(fmt, data, central + offset, value)
    if where in ("local", "both") and field in LOCAL_FIELDS:
        offset, fmt = LOCAL_FIELDS[field]
        struct.pack_into(fmt, data, local + offset, value)
    return bytes(data)


def edit_checkpoint(data: bytes, change) -> bytes:
    """A checkpoint's bytes after ``change(payload)`` edited its (tensor-only) payload in place."""
    payload = torch.load(io.BytesIO(data), map_location="cpu", weights_only=True)
    change(payload)
    out = io.BytesIO()
    torch.save(payload, out)
    return out.getvalue()


def edit_csv_cell(data: bytes, row: int, column: str, value: str) -> bytes:
    lines = data.decode().splitlines()
    header = lines[0].split(",")
    cells = lines[row].split(",")
    cells[header.index(column)] = value
    lines[row] = ",".join(cells)
    return ("\n".join(lines) + "\n").encode()


def edit_record(data: bytes, key: str, raw_json: str) -> bytes:
    """run.json with ``key`` set to ``raw_json`` verbatim (so 1e400 or NaN stay as written)."""
    record = json.loads(data)
    record[key] = "@@VALUE@@"
    return json.dumps(record).replace('"@@VALUE@@"', raw_json).encode()


# -------------------------------------------------------------------- rejections leave the store unchanged


@pytest.fixture(scope="module")
def group_zip(tmp_path_factory):
    """Two Q-learning `fast` runs trained by the job runner (checkpoints and all), exported: (zip bytes, ids)."""
    home = tmp_path_factory.mktemp("group")
    run_ids = trained_group(home, seeds=(0, 1), total_env_steps=2000)
    path = export_runs(RunStore(home), run_ids, home / "group.zip")
    return path.read_bytes(), run_ids


@pytest.fixture
def target(group_zip, tmp_path):
    """A store that already holds the first of the exported runs (so an import meets an existing id too)."""
    zip_bytes, (first, _) = group_zip
    only_first = tmp_path / "first.zip"
    only_first.write_bytes(rebuild([(n, d) for n, d in members(zip_bytes) if n.startswith(first + "/")]))
    store = RunStore(tmp_path / "home")
    assert import_runs(store, only_first) == [first]
    return store


def rejects(store: RunStore, zip_bytes: bytes, tmp_path: Path, member: str, message: str) -> ImportRejected:
    """Import ``zip_bytes``; assert it is rejected naming ``member`` and saying ``message``, nothing written."""
    path = tmp_path / "bad.zip"
    path.write_bytes(zip_bytes)
    rows, files = dump(store.home), listing(store.home)
    with pytest.raises(ImportRejected) as caught:
        import_runs(store, path)
    assert member in str(caught.value) and message in str(caught.value), str(caught.value)
    assert dump(store.home) == rows
    assert listing(store.home) == files
    assert not [run for run in store.list_runs() if run["status"] in ACTIVE_STATUSES]
    return caught.value


def checkpoint_member(run_id: str) -> str:
    return f"{run_id}/final.pt"


CSV_CASES = [  # (file, row, column, value, message)
    ("episodes.csv", 3, "episode_return", "nan", "where a finite number belongs"),
    ("episodes.csv", 1, "episode", "inf", "column episode holds 'inf'"),
    ("episodes.csv", 2, "episode_return", "1e400", "where a finite number belongs"),
    ("episodes.csv", 2, "epsilon", "7", "outside 0.0 … 1.0"),
    ("episodes.csv", 2, "episode", "1", "the same episode twice"),
    ("evaluations.csv", 1, "solved", "maybe", "where True or False belongs"),
    ("updates.csv", 1, "td_error_abs", "-inf", "where a finite number belongs"),
]


@pytest.mark.parametrize(("file", "row", "column", "value", "message"), CSV_CASES)
@pytest.mark.parametrize("run", [0, 1], ids=["first run", "second run"])
def test_a_bad_csv_cell_is_rejected_and_nothing_is_written(group_zip, target, tmp_path, run, file, row, column,
                                                           value, message):
    zip_bytes, run_ids = group_zip
    member = f"{run_ids[run]}/{file}"
    data = dict(members(zip_bytes))[member]
    rejects(target, replaced(zip_bytes, {member: edit_csv_cell(data, row, column, value)}), tmp_path, member, message)


RECORD_CASES = [  # (key, raw JSON, message)
    ("seed", "1e400", "seed must be an integer"),
    ("seed", "-1", "seed must be an integer"),
    ("seed", "true", "seed must be an integer"),
    ("tags", "5", "tags must be a list"),
    ("tags", json.dumps(["x" * 51]), "at most 50 characters"),
    ("tags", json.dumps([f"t{i}" for i in range(21)]), "at most 20 tags"),
    ("name", json.dumps("n" * 100_000), "1 to 200 characters, got 100,000"),
    ("name", json.dumps("two\nlines"), "control characters"),
    ("name", "5", "must be text"),
    ("status", json.dumps("paused"), "status 'paused' is unknown"),
    ("error", "[1]", "error must be text"),
    ("config_json", json.dumps("{}"), "config_json"),
    ("config_json", "7", "config_json must be text"),
    ("algo", json.dumps("ppo"), "differs from its config"),
    ("group_id", json.dumps("../x"), "not a group id"),
]


@pytest.mark.parametrize(("key", "raw", "message"), RECORD_CASES)
def test_a_bad_run_record_is_rejected_and_nothing_is_written(group_zip, target, tmp_path, key, raw, message):
    zip_bytes, run_ids = group_zip
    member = f"{run_ids[1]}/run.json"  # the second run: the first (valid) one must not be written either
    data = dict(members(zip_bytes))[member]
    rejects(target, replaced(zip_bytes, {member: edit_record(data, key, raw)}), tmp_path, member, message)


def test_a_run_record_without_its_seed_is_rejected(group_zip, target, tmp_path):
    zip_bytes, run_ids = group_zip
    member = f"{run_ids[0]}/run.json"
    record = json.loads(dict(members(zip_bytes))[member])
    del record["seed"]
    rejects(target, replaced(zip_bytes, {member: json.dumps(record).encode()}), tmp_path, member, "lacks 'seed'")


def _set_meta(value):
    def change(payload):
        payload["meta"] = value
    return change


def _set_meta_key(key, value):
    def change(payload):
        payload["meta"][key] = value
    return change


def _drop(key):
    def change(payload):
        del payload[key]
    return change


def _set(key, value):
    def change(payload):
        payload[key] = value
    return change


CHECKPOINT_CASES = [  # (change, message)
    (_set_meta(["not", "a", "dict"]), "meta must be a dict, got list"),
    (_set_meta("final"), "meta must be a dict, got str"),
    (_set_meta_key("env_steps", "abc"), "env_steps 'abc'"),
    (_set_meta_key("env_steps", -5), "env_steps -5"),
    (_set_meta_key("env_steps", 2.5), "env_steps 2.5"),
    (_set_meta_key("env_steps", True), "env_steps True"),
    (_set_meta_key("kind", "sneaky"), "kind 'sneaky' is unknown"),
    (_drop("algo"), "algo None is unknown"),
    (_set("algo", "dqn"), "a dqn checkpoint in a qlearning run"),
    (_drop("config_json"), "lacks its config or state"),
    (_set("config_json", '{"algo": "qlearning", "gamma": 7}'), "damaged config or state"),
    (_set("state", {"q_table": torch.zeros(3)}), "damaged config or state"),
]


@pytest.mark.parametrize(("change", "message"), CHECKPOINT_CASES)
def test_a_checkpoint_with_bad_metadata_is_rejected_and_nothing_is_written(group_zip, target, tmp_path, change,
                                                                           message):
    zip_bytes, run_ids = group_zip
    member = checkpoint_member(run_ids[1])
    data = edit_checkpoint(dict(members(zip_bytes))[member], change)
    rejects(target, replaced(zip_bytes, {member: data}), tmp_path, member, message)


HEADER_CASES = [  # (field, value, where, message)
    ("crc", 0x12345678, "both", "cannot be read"),
    ("crc", 0x12345678, "central", "cannot be read"),
    ("usize", 10, "both", "cannot be read"),  # forged smaller: the CRC of the first 10 bytes does not match
    ("usize", 70 * 1024 * 1024, "central", "at most 67,108,864 allowed"),  # forged larger than the limit
    ("csize", 5, "both", "cannot be read"),
    ("flags", 0x0001, "both", "is encrypted"),
    ("flags", 0x0040, "central", "is encrypted"),
    ("flags", 0x0020, "central", "zip features an export never has"),
    ("method", 99, "both", "compression method 99"),
    ("method", 12, "central", "compression method 12"),  # bzip2: never written by an export
    ("method", 0, "central", "cannot be read"),  # says stored, holds deflated bytes
    ("extattr", 0o120777 << 16, "central", "symbolic link"),
]


@pytest.mark.parametrize(("field", "value", "where", "message"), HEADER_CASES)
@pytest.mark.parametrize("file", ["episodes.csv", "final.pt"])
def test_a_forged_zip_header_is_rejected_and_nothing_is_written(group_zip, target, tmp_path, file, field, value,
                                                                where, message):
    zip_bytes, run_ids = group_zip
    member = f"{run_ids[1]}/{file}"
    rejects(target, patch_header(zip_bytes, member, field, value, where), tmp_path, member, message)


def test_a_forged_larger_size_is_rejected(group_zip, target, tmp_path):
    zip_bytes, run_ids = group_zip
    member = f"{run_ids[0]}/episodes.csv"
    size = len(dict(members(zip_bytes))[member])
    rejects(target, patch_header(zip_bytes, member, "usize", size + 100), tmp_path, member, "")


def test_duplicate_member_names_are_rejected(group_zip, target, tmp_path):
    zip_bytes, run_ids = group_zip
    entries = members(zip_bytes)
    member = f"{run_ids[1]}/episodes.csv"
    rejects(target, rebuild([*entries, (member, dict(entries)[member])]), tmp_path, member, "more than once")


def test_too_many_members_are_rejected(group_zip, target, tmp_path):
    zip_bytes, run_ids = group_zip
    extra = [(f"{run_ids[0]}/x{i}.pt", b"") for i in range(MAX_MEMBERS)]
    rejects(target, rebuild([*members(zip_bytes), *extra]), tmp_path, "the zip", "at most 2,000 are allowed")


def test_a_truncated_zip_is_rejected(group_zip, target, tmp_path):
    zip_bytes, _ = group_zip
    rejects(target, zip_bytes[: len(zip_bytes) // 2], tmp_path, "bad.zip", "not a readable zip file")


def test_a_group_imports_whole_with_its_checkpoints_and_keeps_free_ids(group_zip, target, tmp_path):
    zip_bytes, run_ids = group_zip
    path = tmp_path / "group.zip"
    path.write_bytes(zip_bytes)
    imported = import_runs(target, path)
    assert imported[0] != run_ids[0] and imported[1] == run_ids[1]  # the first id was taken already
    for run_id in imported:
        run = target.get_run(run_id)
        assert run["status"] == "completed" and "imported" in run["tags"] and run["env_steps"] > 0
        assert run["episodes"] == len(target.episodes(run_id)) > 0
        kinds = {artifact["kind"] for artifact in target.artifacts(run_id)}
        assert kinds == {"periodic", "best", "final"}
        for artifact in target.artifacts(run_id):
            assert load_agent(artifact["path"]).config.algo == "qlearning"


def test_a_run_exported_mid_training_arrives_interrupted(tmp_path):
    source = RunStore(tmp_path / "source")
    config = preset_config("qlearning", "fast", total_env_steps=2000, stop_on_solve=False)
    _, (running, queued) = submit(source, config, [0, 1], preset="fast")
    assert source.claim(running)  # this process's pid: the store keeps it 'running'
    agent, _ = train(config, seed=0)
    path = save_checkpoint(agent, source.run_dir(running) / "step-000001000.pt", env_steps=1000, kind="periodic")
    source.add_artifact(running, "periodic", 1000, path)
    assert [source.get_run(run_id)["status"] for run_id in (running, queued)] == ["running", "queued"]
    zip_path = export_runs(source, [running, queued], tmp_path / "mid.zip")
    target = RunStore(tmp_path / "target")
    imported = import_runs(target, zip_path)
    assert imported == [running, queued]
    for run_id in imported:
        run = target.get_run(run_id)
        assert run["status"] == "interrupted"
        assert "before it finished" in run["error"]
    assert target.list_runs(status="queued") == [] and target.list_runs(status="running") == []
    assert len(target.artifacts(running)) == 1


def test_a_failure_while_writing_rolls_back_and_removes_the_folders_written(group_zip, target, tmp_path):
    zip_bytes, run_ids = group_zip
    conn = sqlite3.connect(db_path(target.home))  # the store refuses the second run's checkpoints: a late failure
    conn.execute(f"CREATE TRIGGER refuse BEFORE INSERT ON artifacts WHEN NEW.run_id = '{run_ids[1]}' "
                 f"BEGIN SELECT RAISE(ABORT, 'disk on fire'); END")
    conn.commit()
    conn.close()
    path = tmp_path / "group.zip"
    path.write_bytes(zip_bytes)
    rows, files = dump(target.home), listing(target.home)
    with pytest.raises(StoreError, match="disk on fire"):  # the store names the file and the failure
        import_runs(target, path)
    assert dump(target.home) == rows
    assert listing(target.home) == files  # the first run's folder and checkpoints, written already, are gone


def test_a_leftover_folder_is_never_reused_or_removed(group_zip, target, tmp_path):
    zip_bytes, run_ids = group_zip
    leftover = target.run_dir(run_ids[1])
    leftover.mkdir()
    (leftover / "notes.txt").write_text("mine")
    path = tmp_path / "group.zip"
    path.write_bytes(zip_bytes)
    imported = import_runs(target, path)
    assert run_ids[1] not in imported and (leftover / "notes.txt").read_text() == "mine"
