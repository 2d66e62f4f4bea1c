"""The run store on a real SQLite file: writes, incremental reads, recovery, refusal of foreign files."""

import os
import sqlite3
import subprocess
import sys

import pytest

from cartpole_core.events import EpisodeEnded, Evaluated, Updated
from cartpole_core.presets import preset_config
from cartpole_core.store import SCHEMA_VERSION, Cursor, RunStore, StoreError, db_path

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


def test_first_outcome_wins(tmp_path):
    store = RunStore(tmp_path)
    new_run(store)
    store.mark_running("run-1", os.getpid())
    store.set_status("run-1", "cancelled")
    store.set_status("run-1", "failed", "late report")
    run = store.get_run("run-1")
    assert run["status"] == "cancelled" and run["error"] is None


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
    from cartpole_core.store import APPLICATION_ID, MIGRATIONS

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
    assert store._conn.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION == 2
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
    from cartpole_core.store import group_curve

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
