"""Property: whatever is done to a real export, import either succeeds with valid runs or raises ImportRejected —
never another exception — and a rejection leaves the store's rows and the runs/ folder exactly as they were.

One export of two trained runs is built once for the module and mutated: run.json values (numbers to nan, inf,
huge, strings, booleans; keys dropped; types changed), config fields, CSV cells, rows and columns, checkpoint
payloads (meta, algo, config, state), members duplicated, dropped, renamed or added, bytes flipped, zip header fields
forged (flags, compression method, CRC, sizes, link bits) and the zip truncated. All imports go into one store that
already holds the first run, so accepted imports also exercise the "id taken" path; accepted runs are checked,
then deleted, which must restore the store exactly too.
"""

from __future__ import annotations

import io
import json
import os
import zipfile
from collections import Counter

import pytest
import torch
from app_support import trained_group
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from test_archive import dump, edit_checkpoint, headers, listing, members, patch_header, rebuild

from cartpole_core.engine.agent import load_agent
from cartpole_core.runs.archive import ImportRejected, export_runs, import_runs
from cartpole_core.runs.store import ACTIVE_STATUSES, STATUSES, RunStore

EXAMPLES = int(os.environ.get("ARCHIVE_FUZZ_EXAMPLES", "250"))  # more for a longer hunt

# ------------------------------------------------------------------------------------------- value pools

RAW_JSON = ["NaN", "Infinity", "-Infinity", "1e400", "-1e400", "-1", "0", "1", "7", "1.5", "2147483647", "2147483648",
            "1" + "0" * 30, "1" * 5000, '"abc"', '""', '"   "', "true", "false", "null", "[]", "{}", "[1, 2]",
            '["a", 5]', '{"a": 1}', json.dumps("x" * 100_000), '"queued"', '"running"', '"completed"', '"failed"',
            '"\\u0000"', '"two\\nlines"', '"fast"', '"qlearning"', '"dqn"', '"ppo"', "[" * 50_000 + "]" * 50_000,
            json.dumps(["imported"] * 3), json.dumps([f"t{i}" for i in range(25)]), '"../../x"']
RUN_KEYS = ["id", "name", "algo", "preset", "config_json", "seed", "group_id", "tags", "status", "error", "extra"]
CONFIG_KEYS = ["algo", "total_env_steps", "gamma", "n_envs", "bins", "low", "high", "eval_every_steps", "epsilon",
               "max_episodes", "unknown_field"]
CELLS = ["nan", "NaN", "inf", "-inf", "Infinity", "1e400", "-1e400", "-1", "0", "1", "2", "1.5", "1e3", "abc", "True",
         "False", "true", "1", "", "None", " 1", "1_0", "0x10", "\u00b2", "١", "99999999999999999999", "9" * 5000,
         'a"b', "x" * 200_000, "\x00", "0.5", "500", "-0"]
JUNK = [b"", b"\x00" * 10, b"PK\x03\x04", b"not a checkpoint", b"{}", b"[]", "é".encode("latin-1"), b"\xff\xfe",
        b"episode\n", b"[" * 100_000]
HEADER_VALUES = {
    "flags": [0x0001, 0x0008, 0x0020, 0x0040, 0x0800, 0x2000, 0x0010, 0xFFFF, 0x0002],
    "method": [0, 1, 6, 9, 12, 14, 93, 95, 98, 99, 0xFFFF],
    "crc": [0, 1, 0xFFFFFFFF],
    "csize": [0, 1, 5, 100, 0xFFFFFFFF, 2**31],
    "usize": [0, 1, 5, 100, 0xFFFFFFFF, 2**31, 64 * 1024 * 1024, 64 * 1024 * 1024 + 1],
    "extattr": [0o120777 << 16, 0o040755 << 16, 0o100644 << 16, 0xFFFFFFFF],
}


# --------------------------------------------------------------------------------------------- the export


@pytest.fixture(scope="module")
def base(tmp_path_factory):
    """The export (bytes, run ids) and one store that already holds the first run, shared by every example."""
    source = tmp_path_factory.mktemp("fuzz-source")
    run_ids = trained_group(source, seeds=(0, 1), total_env_steps=2000)
    zip_bytes = export_runs(RunStore(source), run_ids, source / "export.zip").read_bytes()
    home = tmp_path_factory.mktemp("fuzz-target")
    store = RunStore(home)
    first = home / "first.zip"
    first.write_bytes(rebuild([(name, data) for name, data in members(zip_bytes) if name.startswith(run_ids[0])]))
    assert import_runs(store, first) == [run_ids[0]]
    return zip_bytes, run_ids, store


# -------------------------------------------------------------------------------------------- mutations
# Each strategy draws a description (readable in a failure report) and a function from the export to new bytes.


def _entries_edit(edit):
    return lambda zip_bytes: rebuild(edit(members(zip_bytes)))


def _member_edit(pick, change):
    """Replace the data of the member chosen by ``pick(names)`` with ``change(data)``."""
    def edit(entries):
        target = pick([name for name, _ in entries])
        return [(name, change(data) if name == target else data) for name, data in entries]
    return _entries_edit(edit)


def _by_suffix(index: int, suffix: str):
    def pick(names):
        chosen = [name for name in names if name.endswith(suffix)]
        return chosen[index % len(chosen)]
    return pick


@st.composite
def run_record(draw):
    run, key = draw(st.integers(0, 1)), draw(st.sampled_from(RUN_KEYS))
    how = draw(st.sampled_from(["raw", "drop", "text", "integer", "float"]))
    raw = {"raw": lambda: draw(st.sampled_from(RAW_JSON)), "drop": lambda: None,
           "text": lambda: json.dumps(draw(st.text(max_size=300))),
           "integer": lambda: str(draw(st.integers(-(2**70), 2**70))),
           "float": lambda: json.dumps(draw(st.floats(allow_nan=True, allow_infinity=True)))}[how]()

    def change(data):
        record = json.loads(data)
        if raw is None:
            record.pop(key, None)
            return json.dumps(record).encode()
        record[key] = "@@VALUE@@"
        return json.dumps(record).replace('"@@VALUE@@"', raw).encode()
    return ("run.json", run, key, how, (raw or "")[:60]), _member_edit(_by_suffix(run, "/run.json"), change)


@st.composite
def run_config(draw):
    run, key, raw = draw(st.integers(0, 1)), draw(st.sampled_from(CONFIG_KEYS)), draw(st.sampled_from(RAW_JSON))

    def change(data):
        record = json.loads(data)
        config = json.loads(record["config_json"])
        config[key] = "@@VALUE@@"
        record["config_json"] = json.dumps(config).replace('"@@VALUE@@"', raw)
        return json.dumps(record).encode()
    return ("config", run, key, raw[:60]), _member_edit(_by_suffix(run, "/run.json"), change)


@st.composite
def csv_cell(draw):
    run, file = draw(st.integers(0, 1)), draw(st.sampled_from(["episodes.csv", "updates.csv", "evaluations.csv"]))
    row, column = draw(st.integers(0, 40)), draw(st.integers(0, 8))
    value = draw(st.one_of(st.sampled_from(CELLS), st.text(max_size=20),
                           st.floats().map(repr), st.integers(-(10**20), 10**20).map(str)))

    def change(data):
        lines = data.decode().splitlines()
        cells = lines[row % len(lines)].split(",")
        cells[column % len(cells)] = value
        lines[row % len(lines)] = ",".join(cells)
        return ("\n".join(lines) + "\n").encode()
    return ("cell", run, file, row, column, value[:60]), _member_edit(_by_suffix(run, "/" + file), change)


@st.composite
def csv_shape(draw):
    run, file = draw(st.integers(0, 1)), draw(st.sampled_from(["episodes.csv", "updates.csv", "evaluations.csv"]))
    how, at = draw(st.sampled_from(["drop row", "duplicate row", "drop column", "add column", "truncate",
                                    "blank lines", "header only", "crlf", "bom"])), draw(st.integers(0, 10_000))

    def change(data):
        lines = data.decode().splitlines()
        i = at % len(lines)
        if how == "drop row":
            del lines[i]
        elif how == "duplicate row":
            lines.insert(i, lines[i])
        elif how == "drop column":
            width = len(lines[0].split(","))
            lines = [",".join(c for k, c in enumerate(line.split(",")) if k != at % width) for line in lines]
        elif how == "add column":
            lines = [line + ("," + ("extra" if k == 0 else "1")) for k, line in enumerate(lines)]
        elif how == "truncate":
            return data[: at % (len(data) + 1)]
        elif how == "blank lines":
            lines.insert(i, "")
        elif how == "header only":
            lines = lines[:1]
        elif how == "crlf":
            return ("\r\n".join(lines) + "\r\n").encode()
        elif how == "bom":
            return "\ufeff".encode() + data
        return ("\n".join(lines) + "\n").encode()
    return ("csv", run, file, how, at), _member_edit(_by_suffix(run, "/" + file), change)


def _checkpoint_changes():
    values = st.sampled_from([None, -1, 0, 1, 2.5, float("nan"), True, "abc", "final", "periodic", "best", "", 2**70,
                              [1], {"a": 1}, torch.tensor(3)])

    def meta(value):
        def change(payload):
            payload["meta"] = value
        return change

    def meta_key(key, value):
        def change(payload):
            if isinstance(payload.get("meta"), dict):
                payload["meta"][key] = value
        return change

    def drop(key):
        def change(payload):
            payload.pop(key, None)
        return change

    def top(key, value):
        def change(payload):
            payload[key] = value
        return change

    return st.one_of(
        st.tuples(st.just("meta"), values).map(lambda t: (t, meta(t[1]))),
        st.tuples(st.just("meta key"), st.sampled_from(["kind", "env_steps"]), values).map(
            lambda t: (t, meta_key(t[1], t[2]))),
        st.tuples(st.just("drop"), st.sampled_from(["algo", "meta", "config_json", "state", "format", "version"])).map(
            lambda t: (t, drop(t[1]))),
        st.tuples(st.just("set"), st.sampled_from(["algo", "config_json", "format", "version", "state"]),
                  st.sampled_from(["dqn", "ppo", "qlearning", 5, None, "{", '{"algo": "dqn"}', {}, 2,
                                   {"q_table": torch.zeros(2)}, {"q_table": "x", "visits": "y"}])).map(
            lambda t: (t, top(t[1], t[2]))),
    )


@st.composite
def checkpoint(draw):
    index = draw(st.integers(0, 40))
    description, change = draw(_checkpoint_changes())
    edit = _member_edit(_by_suffix(index, ".pt"), lambda data: edit_checkpoint(data, change))
    return ("checkpoint", index, repr(description)[:80]), edit


@st.composite
def checkpoint_bytes(draw):
    index, junk = draw(st.integers(0, 30)), draw(st.sampled_from(JUNK))
    how = draw(st.sampled_from(["replace", "truncate", "append"]))
    at = draw(st.integers(0, 10_000))
    change = {"replace": lambda data: junk, "truncate": lambda data: data[: at % len(data)],
              "append": lambda data: data + junk}[how]
    return ("checkpoint bytes", index, how, junk[:20], at), _member_edit(_by_suffix(index, ".pt"), change)


@st.composite
def member_ops(draw):
    how, index = draw(st.sampled_from(["duplicate", "drop", "rename", "add", "move"])), draw(st.integers(0, 100))
    new_name = draw(st.sampled_from(["x/run.json", "../evil.pt", "/abs.pt", "a\\b.pt", "c:x.pt", "run/notes.txt",
                                     "RUN/run.json", ".hidden/run.json", "a/b/c.pt", "dir/", "x" * 300 + "/run.json",
                                     "r/episodes.csv", "r/final.pt"]))

    def edit(entries):
        i = index % len(entries)
        name, data = entries[i]
        if how == "duplicate":
            return [*entries[: i + 1], (name, data), *entries[i + 1:]]
        if how == "drop":
            return entries[:i] + entries[i + 1:]
        if how == "rename":
            return [*entries[:i], (new_name, data), *entries[i + 1:]]
        if how == "move":  # the member into the other run's folder, under its own file name
            other = next(n for n, _ in entries if not n.startswith(name.split("/")[0] + "/")).split("/")[0]
            return [*entries[:i], (f"{other}/{name.split('/')[-1]}", data), *entries[i + 1:]]
        return [*entries, (new_name, data)]
    return ("member", how, index, new_name), _entries_edit(edit)


@st.composite
def flipped_bytes(draw):
    flips = draw(st.lists(st.tuples(st.floats(0, 1, exclude_max=True), st.integers(1, 255)), min_size=1, max_size=4))

    def edit(zip_bytes):
        data = bytearray(zip_bytes)
        for where, xor in flips:
            data[int(where * len(data))] ^= xor
        return bytes(data)
    return ("flip", flips), edit


@st.composite
def forged_header(draw):
    field = draw(st.sampled_from(sorted(HEADER_VALUES)))
    value = draw(st.one_of(st.sampled_from(HEADER_VALUES[field]),
                           st.integers(0, 0xFFFF if field in ("flags", "method") else 0xFFFFFFFF)))
    where, index = draw(st.sampled_from(["central", "local", "both"])), draw(st.integers(0, 100))
    relative = draw(st.sampled_from([None, -1, 1]))  # a size off by one from the true one

    def edit(zip_bytes):
        entries = headers(zip_bytes)
        name = entries[index % len(entries)][0]
        forged = value
        if relative is not None and field in ("csize", "usize"):
            with zipfile.ZipFile(io.BytesIO(zip_bytes)) as archive:
                info = archive.getinfo(name)
                forged = max(0, (info.compress_size if field == "csize" else info.file_size) + relative)
        return patch_header(zip_bytes, name, field, forged, where)
    return ("header", field, value, where, index, relative), edit


@st.composite
def whole_zip(draw):
    how, at = draw(st.sampled_from(["truncate", "append", "prepend", "empty"])), draw(st.integers(0, 10**6))
    junk = draw(st.binary(max_size=64))
    edit = {"truncate": lambda z: z[: at % len(z)], "append": lambda z: z + junk, "prepend": lambda z: junk + z,
            "empty": lambda z: b""}[how]
    return ("zip", how, at, junk[:20]), edit


CONTENT = st.one_of(run_record(), run_config(), csv_cell(), csv_shape(), checkpoint(), checkpoint_bytes(), member_ops())
RAW = st.one_of(flipped_bytes(), forged_header(), whole_zip())


@st.composite
def combined(draw):
    """A changed member in a zip whose bytes or headers are then damaged too."""
    (first, edit_one), (second, edit_two) = draw(CONTENT), draw(RAW)
    return ("both", first, second), lambda zip_bytes: edit_two(edit_one(zip_bytes))


MUTATIONS = st.one_of(CONTENT, RAW, combined())


# ------------------------------------------------------------------------------------------------ the test


def test_any_mutation_is_imported_validly_or_rejected_leaving_the_store_unchanged(base, tmp_path, capsys):
    zip_bytes, _, store = base
    home, path = store.home, tmp_path / "mutated.zip"
    counts: Counter[str] = Counter()

    @settings(max_examples=EXAMPLES, deadline=None, database=None,
              suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.large_base_example])
    @given(mutation=MUTATIONS)
    def attempt(mutation):
        _, edit = mutation
        path.write_bytes(edit(zip_bytes))
        rows, files = dump(home), listing(home)
        try:
            imported = import_runs(store, path)
        except ImportRejected as err:
            assert str(err)
            assert dump(home) == rows, "a rejected import changed the store's rows"
            assert listing(home) == files, "a rejected import changed the runs/ folder"
            counts["rejected"] += 1
            return
        counts["accepted"] += 1
        assert imported
        for run_id in imported:
            run = store.get_run(run_id)
            assert run["status"] in STATUSES and run["status"] not in ACTIVE_STATUSES
            assert "imported" in run["tags"] or len(run["tags"]) == 20
            episodes = store.episodes(run_id)
            assert run["episodes"] == max((row["episode"] for row in episodes), default=0)
            _ = store.updates(run_id), store.evaluations(run_id)
            for artifact in store.artifacts(run_id):
                assert load_agent(artifact["path"]).config.algo == run["algo"]
        for run_id in imported:
            store.delete_run(run_id)
        assert dump(home) == rows and listing(home) == files

    attempt()
    with capsys.disabled():
        print(f"\narchive fuzz: {counts['accepted']} accepted, {counts['rejected']} rejected "
              f"({sum(counts.values())} mutations of one export)")
    assert sum(counts.values()) >= 200
    assert counts["accepted"] and counts["rejected"]
