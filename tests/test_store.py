"""The run store on a real SQLite file: writes, incremental reads, recovery, refusal of foreign files."""

import os
import sqlite3
import subprocess
import sys
from dataclasses import asdict
from typing import get_args

import pytest
from store_support import damage

from cartpole_core.config.presets import preset_config
from cartpole_core.records import (
    EPISODE_COLUMNS,
    EVALUATION_COLUMNS,
    UPDATE_COLUMNS,
    EpisodeEnded,
    Evaluated,
    Updated,
    columns,
)
from cartpole_core.runs.store import SCHEMA_VERSION, Cursor, RunStore, StoreError, db_path

CONFIG = preset_config("qlearning", "fast")


def episode(i: int, steps_per_episode: int = 10) -> EpisodeEnded:
    return EpisodeEnded(i, i * steps_per_episode, float(steps_per_episode), steps_per_episode, 0.1, 0.5, i * 0.01)


def new_run(store: RunStore, run_id: str = "run-1", **kwargs) -> str:
    return store.create_run(run_id, CONFIG.to_json(), "qlearning", 0, preset="fast", **kwargs)


def test_events_are_stored_and_polled_incrementally(tmp_path):
    store = RunStore(tmp_path)
    new_run(store, tags=["baseline"])
    store.append_events("run-1", [episode(1), episode(2), Updated(1, 20, {"td_error_abs": 0.5}, 0.02)])
    new, cursor = store.poll("run-1")
    assert [e["episode"] for e in new["episodes"]] == [1, 2]
    assert new["updates"][0]["td_error_abs"] == 0.5

    store.append_events("run-1", [episode(3), Evaluated(30, 3, 480.0, 5.0, True, 0.03)])
    new, cursor = store.poll("run-1", cursor)
    assert [e["episode"] for e in new["episodes"]] == [3]
    assert new["updates"] == []
    assert new["evaluations"][0]["solved"] is True
    assert store.poll("run-1", cursor)[0] == {"episodes": [], "updates": [], "evaluations": []}

    run = store.get_run("run-1")
    assert (run["episodes"], run["env_steps"], run["solved"], run["steps_to_solve"]) == (3, 30, True, 30)
    assert run["tags"] == ["baseline"] and run["status"] == "queued"


def test_the_tables_hold_the_events_fields_and_reads_return_them_as_appended(tmp_path):
    """A field added to an event must reach the schema (a migration), or this fails: the tables' columns after
    ``run_id`` are the events' fields, in order, of their type (INTEGER or REAL; NULL allowed where a field may be
    None). The salvage copies every column of every table."""
    from cartpole_core.runs.store import _COLUMNS

    store = RunStore(tmp_path)
    schema = {table: store._conn.execute(f"PRAGMA table_info({table})").fetchall() for table in _COLUMNS}
    assert {table: [row["name"] for row in rows] for table, rows in schema.items()} == \
        {table: list(salvaged) for table, salvaged in _COLUMNS.items()}
    for table, event_type in (("episodes", EpisodeEnded), ("evaluations", Evaluated)):
        rows = schema[table]
        assert [row["name"] for row in rows] == ["run_id", *columns(event_type)]
        for row, kind in zip(rows[1:], columns(event_type).values(), strict=True):
            assert row["type"] == ("REAL" if float in (kind, *get_args(kind)) else "INTEGER"), row
            assert not (row["notnull"] and type(None) in get_args(kind)), row
    assert [row["name"] for row in schema["updates"]] == ["run_id", "update_index", *UPDATE_COLUMNS[1:],
                                                          "metrics_json"]

    new_run(store)
    events = [EpisodeEnded(1, 10, 10.0, 10, None, 0.5, 0.01), Updated(1, 10, {"loss": 0.25}, 0.02),
              Evaluated(10, 5, 9.5, 0.5, False, 0.03)]
    store.append_events("run-1", events)
    (stored_episode,), (stored_update,), (stored_evaluation,) = (
        store.episodes("run-1"), store.updates("run-1"), store.evaluations("run-1"))
    assert list(stored_episode) == list(EPISODE_COLUMNS) and stored_episode == asdict(events[0])
    assert list(stored_evaluation) == list(EVALUATION_COLUMNS) and stored_evaluation == asdict(events[2])
    assert stored_update == {"update": 1, "env_steps": 10, "time_s": 0.02, "loss": 0.25}


def test_first_outcome_wins(tmp_path):
    store = RunStore(tmp_path)
    new_run(store)
    store.mark_running("run-1", os.getpid())
    store.set_status("run-1", "cancelled")
    store.set_status("run-1", "failed", "late report")
    run = store.get_run("run-1")
    assert run["status"] == "cancelled" and run["error"] is None


def test_a_run_that_ended_before_its_worker_was_recorded_keeps_its_outcome(tmp_path):
    """The dispatcher records a worker's pid after handing it the run; a warm worker may have finished it by then
    (a cancelled run stops at once). The run must not show "running" again, with no process training it."""
    store = RunStore(tmp_path)
    new_run(store)
    assert store.claim("run-1")
    store.mark_running("run-1", os.getpid())  # the worker's own report
    store.set_status("run-1", "cancelled")
    store.mark_running("run-1", os.getpid() + 1)  # the dispatcher's, late
    assert store.get_run("run-1")["status"] == "cancelled"


def test_running_run_of_a_dead_process_becomes_interrupted_on_next_open(tmp_path):
    store = RunStore(tmp_path)
    new_run(store, "alive")
    new_run(store, "dead")
    store.mark_running("alive", os.getpid())
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    store.mark_running("dead", dead.pid)
    store.append_events("dead", [episode(1)])
    store.close()

    reopened = RunStore(tmp_path)
    assert reopened.get_run("alive")["status"] == "running"
    dead_run = reopened.get_run("dead")
    assert dead_run["status"] == "interrupted" and "stopped unexpectedly" in dead_run["error"]
    assert len(reopened.episodes("dead")) == 1  # history kept


def test_corrupt_database_file_is_refused_and_left_untouched(tmp_path):
    garbage = b"this is not a database" * 100
    db_path(tmp_path).write_bytes(garbage)
    with pytest.raises(StoreError, match=str(db_path(tmp_path))):
        RunStore(tmp_path)
    assert db_path(tmp_path).read_bytes() == garbage


def test_foreign_sqlite_database_is_refused_and_left_untouched(tmp_path):
    conn = sqlite3.connect(db_path(tmp_path))
    conn.execute("CREATE TABLE invoices (id INTEGER PRIMARY KEY, total REAL)")
    conn.execute("INSERT INTO invoices VALUES (1, 9.5)")
    conn.commit()
    conn.close()
    with pytest.raises(StoreError, match="another application"):
        RunStore(tmp_path)
    conn = sqlite3.connect(db_path(tmp_path))
    assert conn.execute("SELECT total FROM invoices").fetchall() == [(9.5,)]


def test_many_handles_opening_a_new_home_at_once_all_succeed(tmp_path):
    # The dashboard's scheduler thread and its page open a fresh home together; none may see a half-made file.
    import threading

    failures = []
    for trial in range(10):
        home = tmp_path / f"home-{trial}"
        barrier = threading.Barrier(8)

        def open_store(home=home, barrier=barrier):
            barrier.wait()
            try:
                RunStore(home).close()
            except StoreError as err:
                failures.append(str(err))

        threads = [threading.Thread(target=open_store) for _ in range(8)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
    assert failures == []
    assert RunStore(tmp_path / "home-0").list_runs() == []


def test_database_from_a_newer_version_is_refused(tmp_path):
    RunStore(tmp_path).close()
    conn = sqlite3.connect(db_path(tmp_path))
    conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION + 1}")
    conn.close()
    with pytest.raises(StoreError, match="newer"):
        RunStore(tmp_path)


@pytest.mark.skipif(os.geteuid() == 0, reason="root can write anywhere")
def test_unwritable_home_names_the_path(tmp_path):
    home = tmp_path / "locked"
    home.mkdir()
    home.chmod(0o500)
    with pytest.raises(OSError, match=str(home)):
        RunStore(home)


def test_home_that_is_a_file_names_the_path(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("x")
    with pytest.raises(OSError, match=str(blocker)):
        RunStore(blocker / "home")


def test_list_filters(tmp_path):
    store = RunStore(tmp_path)
    new_run(store, "a", tags=["x"], group_id="g1")
    new_run(store, "b", group_id="g1")
    store.set_status("b", "failed", "boom")
    assert {r["id"] for r in store.list_runs(group_id="g1")} == {"a", "b"}
    assert [r["id"] for r in store.list_runs(status="failed")] == ["b"]
    assert [r["id"] for r in store.list_runs(tag="x")] == ["a"]
    assert store.list_runs(algo="dqn") == []


def test_cursor_defaults_read_everything(tmp_path):
    store = RunStore(tmp_path)
    new_run(store)
    store.append_events("run-1", [episode(i) for i in range(1, 101)])
    new, cursor = store.poll("run-1", Cursor())
    assert len(new["episodes"]) == 100 and cursor.episode == 100


def test_database_of_the_previous_schema_version_is_migrated_keeping_its_runs(tmp_path):
    from cartpole_core.runs.store import APPLICATION_ID, MIGRATIONS

    # A lab created by the previous version: schema v1, one run with metrics.
    conn = sqlite3.connect(db_path(tmp_path))
    for statement in MIGRATIONS[0].split(";"):
        if statement.strip():
            conn.execute(statement)
    conn.execute(f"PRAGMA application_id = {APPLICATION_ID}")
    conn.execute("PRAGMA user_version = 1")
    conn.execute("INSERT INTO runs (id, name, algo, config_json, seed, status, created_at, episodes, env_steps)"
                 " VALUES ('old', 'old run', 'qlearning', ?, 3, 'completed', 1.0, 1, 10)", (CONFIG.to_json(),))
    conn.execute("INSERT INTO episodes VALUES ('old', 1, 10, 10.0, 10, 0.5, 0.1, 0.01)")
    conn.commit()
    conn.close()

    store = RunStore(tmp_path)
    assert store._conn.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION == 3
    run = store.get_run("old")
    assert (run["name"], run["status"], run["heartbeat_at"]) == ("old run", "completed", None)
    assert len(store.episodes("old")) == 1
    store.append_events("old", [episode(2)])  # the new column is written by the new version
    assert store.get_run("old")["heartbeat_at"] is not None


def test_full_disk_is_a_clear_error_and_keeps_what_was_stored(tmp_path):
    store = RunStore(tmp_path)
    new_run(store)
    store.append_events("run-1", [episode(1)])
    pages = store._conn.execute("PRAGMA page_count").fetchone()[0]
    store._conn.execute(f"PRAGMA max_page_count = {pages}")  # what SQLite sees when the disk is full
    with pytest.raises(StoreError, match=f"{db_path(tmp_path)}.*full"):
        store.append_events("run-1", [episode(i) for i in range(2, 5000)])
    assert [e["episode"] for e in store.episodes("run-1")] == [1]


def test_rename_tag_and_delete(tmp_path):
    store = RunStore(tmp_path)
    new_run(store)
    store.append_events("run-1", [episode(1)])
    (store.run_dir("run-1") / "final.pt").write_bytes(b"x")
    store.rename("run-1", "  my best run ")
    store.set_tags("run-1", ["b", "a", "a", " "])
    run = store.get_run("run-1")
    assert (run["name"], run["tags"]) == ("my best run", ["a", "b"])
    with pytest.raises(ValueError, match="queued"):
        store.delete_run("run-1")
    store.set_status("run-1", "completed")
    store.delete_run("run-1")
    assert store.get_run("run-1") is None and store.episodes("run-1") == []
    assert not store.run_dir("run-1").exists()
    with pytest.raises(KeyError):
        store.rename("run-1", "gone")


def test_group_curve_is_the_mean_and_std_across_seeds(tmp_path):
    from cartpole_core.runs.store import group_curve

    store = RunStore(tmp_path)
    # Run "a" logs return 10 at steps 150, 250, … 950; run "b" logs 30 at 150, 250, 350 and then stops.
    for run_id, ret, count in (("a", 10.0, 9), ("b", 30.0, 3)):
        new_run(store, run_id)
        store.append_events(run_id, [EpisodeEnded(i, 50 + i * 100, ret, 100, None, 0.1, i * 0.1)
                                     for i in range(1, count + 1)])
    curve = group_curve(store, ["a", "b"], x="env_steps", bins=10)
    assert curve["x"] == pytest.approx([47.5 + 95 * b for b in range(10)])  # bins of 95 steps up to 950
    assert list(curve["n"]) == [0, 2, 2, 2] + [1] * 6  # nobody finished an episode in bin 0; "b" ends at 350
    assert curve["mean"][1:4] == pytest.approx([20.0] * 3) and curve["std"][1:4] == pytest.approx([10.0] * 3)
    assert curve["mean"][4:] == pytest.approx([10.0] * 6) and curve["std"][4:] == pytest.approx([0.0] * 6)


# ------------------------------------------------------------------------------------------------ limits


def test_names_and_tags_are_held_to_the_labs_limits(tmp_path):
    from cartpole_core.config.limits import LimitError

    store = RunStore(tmp_path)
    with pytest.raises(LimitError, match="1 to 200"):
        new_run(store, "long", name="x" * 201)
    with pytest.raises(LimitError, match="at most 20 tags"):
        new_run(store, "tagged", tags=[f"t{i}" for i in range(21)])
    new_run(store, name="  fine  ", tags=["a"] * 3)
    assert (store.get_run("run-1")["name"], store.get_run("run-1")["tags"]) == ("fine", ["a"])
    with pytest.raises(LimitError, match="control characters"):
        store.rename("run-1", "two\nlines")
    with pytest.raises(LimitError, match="at most 50"):
        store.set_tags("run-1", ["y" * 51])
    assert store.list_runs()[0]["name"] == "fine" and len(store.list_runs()) == 1  # nothing half-written


# ------------------------------------------------------------------------------------------------ threads


def test_one_handle_is_safe_across_threads(tmp_path):
    import threading

    store = RunStore(tmp_path)
    for t in range(8):
        new_run(store, f"r{t}")
    errors = []

    def work(t: int) -> None:
        try:
            for i in range(1, 41):  # interleaved write transactions and reads on the one connection
                store.append_events(f"r{t}", [episode(i)])
                store.rename(f"r{t}", f"run {t} after {i}")
                assert len(store.episodes(f"r{t}")) == i
                store.list_runs()
        except Exception as err:  # noqa: BLE001 — collected for the assertion
            errors.append(repr(err))

    threads = [threading.Thread(target=work, args=(t,)) for t in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    assert all(run["episodes"] == 40 for run in store.list_runs())


def test_threads_reading_one_handle_while_another_appends_see_whole_batches(tmp_path):
    """The live endpoint's request threads and the dashboard share one handle while a run's events arrive: every
    read sees whole rows and whole batches — a poll never has a batch's episodes without its evaluation."""
    import threading

    store = RunStore(tmp_path)
    new_run(store)
    batches, per_batch = 100, 5
    done, errors = threading.Event(), []

    def batch(b: int) -> list:
        first = (b - 1) * per_batch + 1
        return [*(episode(i) for i in range(first, first + per_batch)),
                Updated(b, b * per_batch * 10, {"loss": b / 10}, b * 0.05),
                Evaluated(b * per_batch * 10, b, float(b), 0.5, b % 2 == 0, b * 0.05)]

    def append() -> None:
        try:
            for b in range(1, batches + 1):
                store.append_events("run-1", batch(b))
        except Exception as err:  # noqa: BLE001 — collected for the assertion
            errors.append(repr(err))
        finally:
            done.set()

    def whole(new: dict[str, list[dict]]) -> None:
        seen = len(new["evaluations"])
        assert new["episodes"] == [asdict(episode(i)) for i in range(1, seen * per_batch + 1)]
        assert [row["update"] for row in new["updates"]] == list(range(1, seen + 1))
        assert new["evaluations"] == [asdict(batch(b)[-1]) for b in range(1, seen + 1)]

    def read() -> None:
        try:
            cursor, rows = Cursor(), {"episodes": [], "updates": [], "evaluations": []}
            finished = False
            while not finished:
                finished = done.is_set()  # one more round once the writer is done: it must see everything
                whole(store.poll("run-1")[0])  # everything so far, in one poll
                new, cursor = store.poll("run-1", cursor)  # and incrementally: nothing lost, nothing twice
                for key, value in new.items():
                    rows[key].extend(value)
                whole(rows)
                run = store.get_run("run-1")
                assert run["episodes"] % per_batch == 0 and run["env_steps"] == run["episodes"] * 10
                assert [row["id"] for row in store.list_runs()] == ["run-1"] and store.artifacts("run-1") == []
                assert len(store.episodes("run-1", after=cursor.episode)) % per_batch == 0
            assert len(rows["evaluations"]) == batches
        except Exception as err:  # noqa: BLE001 — collected for the assertion
            errors.append(repr(err))

    readers = [threading.Thread(target=read) for _ in range(4)]
    writer = threading.Thread(target=append)
    for thread in [*readers, writer]:
        thread.start()
    for thread in [writer, *readers]:
        thread.join(timeout=120)
    assert errors == []
    assert len(store.episodes("run-1")) == batches * per_batch


# ------------------------------------------------------------------------------------ damaged and read-only


def lab_with_runs(home, runs: int = 3, episodes: int = 3000) -> list[str]:
    store = RunStore(home)
    for r in range(runs):
        run_id = new_run(store, f"run-{r}")
        store.append_events(run_id, [episode(i) for i in range(1, episodes + 1)]
                            + [Updated(i, i * 10, {"loss": 0.5}, i * 0.01) for i in range(1, 301)]
                            + [Evaluated(1000 * k, k, 100.0 + k, 1.0, False, k * 1.0) for k in range(1, 11)])
        (store.run_dir(run_id) / "final.pt").write_bytes(b"checkpoint")
        store.add_artifact(run_id, "final", episodes * 10, store.run_dir(run_id) / "final.pt")
        store.set_status(run_id, "completed")
    store.close()
    return [f"run-{r}" for r in range(runs)]


def test_damaged_pages_are_a_store_error_on_reads_and_writes_and_salvage_keeps_the_rest(tmp_path):
    from cartpole_core.runs.store import check_store, salvage_store

    home = tmp_path / "home"
    run_ids = lab_with_runs(home)
    damage(home, whole=False)
    store = RunStore(home)  # the runs table is intact: it opens and lists
    assert {run["id"] for run in store.list_runs()} == set(run_ids)
    failures, damaged = [], []
    for run_id in run_ids:
        try:
            store.poll(run_id)
        except StoreError as err:
            failures.append(err)
            damaged.append(run_id)
    assert failures, "the damage should reach some run's metrics"
    message = str(failures[0])
    assert f"The run store {db_path(home)} is damaged (database disk image is malformed)" in message
    assert "runs check" in message and "runs salvage --to NEW_HOME" in message
    assert failures[0].kind == "damaged" and failures[0].path == db_path(home)
    assert str(tmp_path) not in failures[0].public_message
    with pytest.raises(StoreError, match="damaged"):  # a write that touches the damaged pages: rolled back
        store.delete_run(damaged[0])
    assert store.get_run(damaged[0]) is not None and store.run_dir(damaged[0]).is_dir()
    store.close()

    problems = check_store(home)
    assert problems and any("malformed" in problem for problem in problems)
    counts = salvage_store(home, tmp_path / "saved")
    assert counts["runs"] == 3 and 0 < counts["episodes"] < 9000 and counts["evaluations"] > 0
    assert counts["artifacts"] == 3 and counts["updates"] > 0
    saved = RunStore(tmp_path / "saved")
    assert check_store(tmp_path / "saved") == []
    assert sum(len(saved.episodes(run_id)) for run_id in run_ids) == counts["episodes"]
    assert all(a["path"].read_bytes() == b"checkpoint" for run_id in run_ids for a in saved.artifacts(run_id))
    assert {run["status"] for run in saved.list_runs()} == {"completed"}


def test_a_store_damaged_past_its_first_page_refuses_to_open_but_check_and_salvage_still_answer(tmp_path):
    from cartpole_core.runs.store import check_store, salvage_store

    home = tmp_path / "home"
    lab_with_runs(home, runs=2, episodes=1000)
    damage(home, whole=True)
    with pytest.raises(StoreError, match="is damaged.*runs salvage --to NEW_HOME") as raised:
        RunStore(home)
    assert raised.value.kind == "damaged"
    assert check_store(home)  # problems, not an exception
    counts = salvage_store(home, tmp_path / "saved")
    assert set(counts) == {"runs", "episodes", "updates", "evaluations", "artifacts"}
    assert RunStore(tmp_path / "saved").list_runs() == [] or counts["runs"] > 0
    assert check_store(tmp_path / "saved") == []


def test_salvage_of_a_healthy_store_copies_everything_and_refuses_a_used_folder(tmp_path):
    from cartpole_core.runs.store import check_store, salvage_store

    home = tmp_path / "home"
    lab_with_runs(home, runs=2, episodes=500)
    assert check_store(home) == []
    with pytest.raises(ValueError, match="not empty"):
        salvage_store(home, home.parent)
    with pytest.raises(ValueError, match="own data home"):
        salvage_store(home, home)
    counts = salvage_store(home, tmp_path / "saved")
    assert counts == {"runs": 2, "episodes": 1000, "updates": 600, "evaluations": 20, "artifacts": 2}
    assert db_path(home).read_bytes()[:16] == b"SQLite format 3\x00"  # the source was only read


def test_a_file_that_is_not_sqlite_is_refused_by_check_and_salvage_too(tmp_path):
    from cartpole_core.runs.store import check_store, salvage_store

    home = tmp_path / "home"
    home.mkdir()
    db_path(home).write_bytes(b"not a database at all\n" * 300)
    for attempt in (lambda: RunStore(home), lambda: check_store(home), lambda: salvage_store(home, tmp_path / "s")):
        with pytest.raises(StoreError, match="not a CartPole Lab database") as raised:
            attempt()
        assert raised.value.kind == "foreign"
    assert not (tmp_path / "s").exists()
    assert db_path(home).read_bytes() == b"not a database at all\n" * 300
    assert check_store(tmp_path / "empty") == []  # no store yet: nothing damaged


@pytest.fixture
def read_only(tmp_path, monkeypatch):
    """A function making ``home`` read-only; returns the path to read it by. Root ignores file modes: a read-only
    bind mount where this process may mount, else ``os.access`` answering "not writable" for the home (SQLite's
    ``mode=ro`` then keeps the file unwritten all the same)."""
    import shutil
    from pathlib import Path

    mounts = []

    def make(home):
        if os.geteuid() == 0 and shutil.which("mount"):
            target = home.parent / f"{home.name}-ro"
            target.mkdir()
            if subprocess.run(["mount", "--bind", str(home), str(target)], capture_output=True).returncode == 0:
                mounts.append(target)
                if subprocess.run(["mount", "-o", "remount,bind,ro", str(target)],
                                  capture_output=True).returncode == 0:
                    return target
            else:
                target.rmdir()
        real_access = os.access

        def access(path, mode, *args, **kwargs):
            if mode & os.W_OK and Path(path).resolve().is_relative_to(home.resolve()):
                return False
            return real_access(path, mode, *args, **kwargs)

        monkeypatch.setattr(os, "access", access)
        return home

    yield make
    for target in mounts:
        subprocess.run(["umount", "-l", str(target)], capture_output=True)
        target.rmdir()


def test_a_read_only_home_reads_and_refuses_writes(tmp_path, read_only):
    from cartpole_core.runs.home import DataHomeError

    home = tmp_path / "home"
    store = RunStore(home)
    new_run(store)
    store.append_events("run-1", [episode(1), episode(2)])
    store.close()
    before = db_path(home).read_bytes()
    frozen = read_only(home)
    reader = RunStore(frozen)
    assert reader.readonly
    assert [run["id"] for run in reader.list_runs()] == ["run-1"] and reader.get_run("run-1")["status"] == "queued"
    assert len(reader.episodes("run-1")) == 2 and reader.poll("run-1")[1].episode == 2
    assert reader.mark_interrupted() == 0
    for write in (lambda: new_run(reader, "run-2"), lambda: reader.rename("run-1", "x"),
                  lambda: reader.append_events("run-1", [episode(3)]), lambda: reader.request_cancel("run-1")):
        with pytest.raises(StoreError, match="^read-only: ") as raised:
            write()
        assert raised.value.kind == "readonly"
    reader.close()
    assert db_path(home).read_bytes() == before
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(DataHomeError, match="no run store yet"):
        RunStore(read_only(empty))


def test_a_run_created_running_is_never_claimed_by_a_scheduler(tmp_path):
    store = RunStore(tmp_path)
    new_run(store, running_pid=os.getpid())
    run = store.get_run("run-1")
    assert (run["status"], run["pid"], run["heartbeat_at"] is not None) == ("running", os.getpid(), True)
    assert not store.claim("run-1") and store.mark_interrupted() == 0


def test_a_second_handle_in_one_process_never_costs_another_processes_commits(tmp_path):
    """The dashboard holds several handles (a page's, the scheduler's, the live feed's) while the CLI and workers
    open and close their own. Opening a handle must not touch the file outside SQLite: closing a plain file handle
    drops every POSIX lock this process's connections hold, after which another process closing its connection
    deleted the WAL under them — commits lost, then "disk I/O error" (seen as launches that never started)."""
    import subprocess
    import sys

    first = RunStore(tmp_path)
    RunStore(tmp_path)  # a second handle, opened while the first holds its locks
    read = ("import sys; from pathlib import Path; from cartpole_core.runs.store import RunStore; "
            "print(len(RunStore(Path(sys.argv[1]), recover=False).list_runs()))")
    assert subprocess.run([sys.executable, "-c", read, str(tmp_path)], capture_output=True, text=True,
                          check=True).stdout.strip() == "0"
    first.create_run("after", "{}", "ppo", 0)
    assert subprocess.run([sys.executable, "-c", read, str(tmp_path)], capture_output=True, text=True,
                          check=True).stdout.strip() == "1"
    assert sqlite3.connect(db_path(tmp_path)).execute("SELECT count(*) FROM runs").fetchone()[0] == 1
