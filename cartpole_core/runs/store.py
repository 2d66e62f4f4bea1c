"""The run store: one SQLite file (WAL mode) in the data home holding runs, their metrics and artifact paths.

The store is the channel between training workers and the UI (docs/ARCHITECTURE.md, "Contracts"): workers append
metrics in batched transactions; the dashboard and CLI read them, incrementally, from a cursor. Every process
opens its own connection; WAL lets readers proceed while one writer commits, and the busy timeout makes
concurrent writers queue instead of failing with "database is locked". Within a process, one ``RunStore`` may be
used from several threads (the dashboard's request threads): every public method holds the handle's lock for its
whole query (``poll``: its three queries, in one read transaction), so threads take the connection one at a time.

Schema changes are versioned (``PRAGMA user_version``): ``MIGRATIONS[n]`` upgrades a version-n database to n+1
in place, so an existing lab keeps its history; a migration is history, its SQL stays as written. The metric
tables' columns are their events' fields (``records.columns``; tests/test_store.py holds the schema to them), and
``insert_metrics`` and the reads are written from those. A file that is not SQLite, or a SQLite database of another
application (its ``application_id`` is not ours), is refused with a message naming the path and never touched.

Failures are ``StoreError`` s saying what is wrong and what to do — never a raw ``sqlite3`` traceback: a damaged
file (``database disk image is malformed``) on any read or write points to ``runs check`` / ``runs salvage``
(``check_store`` and ``salvage_store`` here); a data home this process cannot write opens read-only (reads work,
writes raise a "read-only: …" ``StoreError``).

Dead runs: a run stays ``running`` only while the process training it lives. Every store opened for writing, and
every ``Dispatcher.pump`` (jobs/dispatch.py: the dashboard's scheduler, five times a second), calls
``mark_interrupted``: a run whose process is gone becomes ``interrupted``, its metrics kept. On this host the pid
tells at once; a run trained by another host (or pid namespace) is judged by its heartbeat (``heartbeat_at``,
written at least once a second by a healthy worker), stale after ``STALE_AFTER_S``.
"""

from __future__ import annotations

import functools
import hashlib
import json
import os
import re
import shutil
import socket
import sqlite3
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from operator import attrgetter
from pathlib import Path, PurePosixPath
from typing import Any

import numpy as np

from cartpole_core.config.limits import check_name, check_tags
from cartpole_core.records import (
    EPISODE_COLUMNS,
    EVALUATION_COLUMNS,
    EpisodeEnded,
    Evaluated,
    Event,
    RunResult,
    Updated,
)
from cartpole_core.runs.home import HOME_ENV_VAR, DataHomeError, ensure_data_home, home_writable

DB_NAME = "lab.sqlite"
APPLICATION_ID = 0x43504C42  # "CPLB": marks a database as CartPole Lab's
STATUSES = ("queued", "running", "completed", "failed", "cancelled", "interrupted")
ACTIVE_STATUSES = ("queued", "running")
BUSY_TIMEOUT_MS = 30_000
# A run on another host (or pid namespace) without a heartbeat for this long is taken for dead. A healthy worker
# writes one at least every second while its loop runs (HEARTBEAT_INTERVAL_S in jobs/execution.py); its longest
# silences are a cold start (imports: ~5 s, more on a loaded machine), one long update, evaluation or checkpoint —
# 30 times the period leaves room for those without keeping a dead run 'running' for long. Runs on this host are
# judged by their pid instead, at once.
STALE_AFTER_S = 30.0
REPAIR_HINT = ("Run `python -m cartpole_core runs check`, or save what is readable with "
               "`runs salvage --to NEW_HOME`.")
_SQLITE_CORRUPT, _SQLITE_NOTADB, _SQLITE_READONLY = 11, 26, 8

_SCHEMA_V1 = """
CREATE TABLE runs (
    id TEXT PRIMARY KEY,
    name TEXT NOT NULL,
    algo TEXT NOT NULL,
    preset TEXT,
    config_json TEXT NOT NULL,
    seed INTEGER NOT NULL,
    group_id TEXT,
    tags_json TEXT NOT NULL DEFAULT '[]',
    status TEXT NOT NULL CHECK (status IN ('queued','running','completed','failed','cancelled','interrupted')),
    created_at REAL NOT NULL,
    started_at REAL,
    ended_at REAL,
    pid INTEGER,
    error TEXT,
    cancel_requested INTEGER NOT NULL DEFAULT 0,
    env_steps INTEGER NOT NULL DEFAULT 0,
    episodes INTEGER NOT NULL DEFAULT 0,
    train_seconds REAL NOT NULL DEFAULT 0,
    best_eval REAL,
    final_eval REAL,
    solved INTEGER NOT NULL DEFAULT 0,
    time_to_solve_s REAL,
    steps_to_solve INTEGER
);
CREATE INDEX runs_group ON runs (group_id);
CREATE INDEX runs_status ON runs (status);
CREATE TABLE episodes (
    run_id TEXT NOT NULL REFERENCES runs (id) ON DELETE CASCADE,
    episode INTEGER NOT NULL,
    env_steps INTEGER NOT NULL,
    episode_return REAL NOT NULL,
    length INTEGER NOT NULL,
    epsilon REAL,
    learning_rate REAL,
    time_s REAL NOT NULL,
    PRIMARY KEY (run_id, episode)
) WITHOUT ROWID;
CREATE TABLE updates (
    run_id TEXT NOT NULL REFERENCES runs (id) ON DELETE CASCADE,
    update_index INTEGER NOT NULL,
    env_steps INTEGER NOT NULL,
    time_s REAL NOT NULL,
    metrics_json TEXT NOT NULL,
    PRIMARY KEY (run_id, update_index)
) WITHOUT ROWID;
CREATE TABLE evaluations (
    run_id TEXT NOT NULL REFERENCES runs (id) ON DELETE CASCADE,
    env_steps INTEGER NOT NULL,
    episodes INTEGER NOT NULL,
    mean_return REAL NOT NULL,
    std_return REAL NOT NULL,
    solved INTEGER NOT NULL,
    time_s REAL NOT NULL,
    PRIMARY KEY (run_id, env_steps)
) WITHOUT ROWID;
CREATE TABLE artifacts (
    run_id TEXT NOT NULL REFERENCES runs (id) ON DELETE CASCADE,
    kind TEXT NOT NULL,
    env_steps INTEGER NOT NULL,
    path TEXT NOT NULL,
    created_at REAL NOT NULL,
    PRIMARY KEY (run_id, path)
) WITHOUT ROWID;
"""

# v2: when a worker last flushed metrics, so the UI can tell a quiet run from a stuck one.
_V1_TO_V2 = "ALTER TABLE runs ADD COLUMN heartbeat_at REAL"
# v3: which host (and pid namespace, and boot) the pid belongs to: a pid only says "dead" on the machine it is from.
_V2_TO_V3 = "ALTER TABLE runs ADD COLUMN host TEXT"

# MIGRATIONS[n] turns schema version n into n + 1. Version 0 is an empty (new) database.
MIGRATIONS: list[str] = [_SCHEMA_V1, _V1_TO_V2, _V2_TO_V3]
SCHEMA_VERSION = len(MIGRATIONS)
TABLES = ("runs", "episodes", "updates", "evaluations", "artifacts")


class StoreError(RuntimeError):
    """The store cannot be opened, read or written; the message names the file, what is wrong and what to do.

    ``kind`` says which: ``damaged``, ``foreign`` (not this lab's database), ``newer`` (a newer schema),
    ``readonly``, ``write``, ``read`` or ``missing``. ``path`` is the file; ``public_message`` is the message
    without it, for anything a network client sees."""

    def __init__(self, message: str, *, path: Path | None = None, kind: str = "error"):
        super().__init__(message)
        self.path = path
        self.kind = kind

    @property
    def public_message(self) -> str:
        text = str(self)
        return text.replace(str(self.path), self.path.name) if self.path is not None else text


@dataclass(frozen=True)
class Cursor:
    """Where an incremental reader left off: the last episode, update and evaluation it has seen."""

    episode: int = 0
    update: int = 0
    eval_steps: int = -1


def db_path(home: Path) -> Path:
    return home / DB_NAME


@functools.cache
def host_id() -> str:
    """This machine as the pids recorded in the store know it: the host name, and a short hash of the boot and
    the pid namespace (a container on the same host, or the same host after a reboot, has other pids)."""
    parts = []
    for source in ("/proc/sys/kernel/random/boot_id", "/proc/self/ns/pid"):
        with suppress(OSError):
            parts.append(os.readlink(source) if source.endswith("/pid") else Path(source).read_text().strip())
    digest = hashlib.sha1("|".join(parts).encode()).hexdigest()[:8]
    return f"{socket.gethostname()[:100]}#{digest}"


def pid_alive(pid: Any) -> bool:
    """Is there a live (not zombie) process ``pid`` on this host?"""
    if isinstance(pid, bool) or not isinstance(pid, int) or pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # exists, owned by someone else
        pass
    except (OSError, OverflowError):
        return False
    try:  # a killed child its parent has not reaped yet is a zombie: it answers signals but trains nothing
        stat = Path(f"/proc/{pid}/stat").read_bytes()
    except OSError:
        return True
    return stat[stat.rfind(b")") + 2:][:1] not in (b"Z", b"X")


def _store_error(path: Path, err: sqlite3.Error, *, writing: bool = False, readonly: bool = False) -> StoreError:
    """The StoreError for an sqlite3 error on the store at ``path``: damaged, read-only, or a failed read/write."""
    code = (getattr(err, "sqlite_errorcode", None) or 0) & 0xFF
    text = str(err)
    if code in (_SQLITE_CORRUPT, _SQLITE_NOTADB) or any(
            word in text.lower() for word in ("malformed", "not a database", "corrupt", "could not decode")):
        return StoreError(f"The run store {path} is damaged ({text}). {REPAIR_HINT}", path=path, kind="damaged")
    if code == _SQLITE_READONLY or "readonly database" in text or (readonly and writing):
        return _readonly_error(path)
    if writing:
        return StoreError(f"cannot write the run store {path}: {text}", path=path, kind="write")
    return StoreError(f"cannot read the run store {path}: {text}", path=path, kind="read")


def _readonly_error(path: Path) -> StoreError:
    return StoreError(f"read-only: the run store {path} can be read but not written (its data home is read-only "
                      f"here); make the folder writable, or set {HOME_ENV_VAR} / --home to a writable folder",
                      path=path, kind="readonly")


def _foreign_error(path: Path, detail: str = "") -> StoreError:
    return StoreError(f"{path} is not a CartPole Lab database{f' ({detail})' if detail else ''}; move it away or set "
                      f"{HOME_ENV_VAR} to another folder — it was left untouched", path=path, kind="foreign")


def _opening_error(path: Path, err: sqlite3.DatabaseError) -> StoreError:
    """Why a store could not be opened. A file SQLite does not recognise at all is refused as not this lab's.

    (Whether it is SQLite is left to SQLite: opening and closing the file from Python here — to read its header —
    would drop the POSIX locks every SQLite connection of this process holds on it, and another process closing
    its own connection could then delete the WAL under them: lost commits, then "disk I/O error".)"""
    code = (getattr(err, "sqlite_errorcode", None) or 0) & 0xFF
    if code == _SQLITE_NOTADB or "not a database" in str(err):
        return _foreign_error(path, "file is not a database")
    return _store_error(path, err)


def _connect(path: Path, readonly: bool) -> sqlite3.Connection:
    """A connection in autocommit mode (transactions are explicit). Read-only: ``mode=ro`` never writes the file;
    where SQLite cannot make its WAL index beside it (a read-only folder), ``immutable=1`` reads without one."""
    options = {"timeout": BUSY_TIMEOUT_MS / 1000, "isolation_level": None, "check_same_thread": False}
    if not readonly:
        conn = sqlite3.connect(path, **options)
    else:
        uri = Path(os.path.abspath(path)).as_uri()
        conn = sqlite3.connect(f"{uri}?mode=ro", uri=True, **options)
        try:
            conn.execute("SELECT count(*) FROM sqlite_master").fetchone()
        except sqlite3.OperationalError:
            conn.close()  # not left open until garbage collection: it would keep a read-only mount busy
            conn = sqlite3.connect(f"{uri}?mode=ro&immutable=1", uri=True, **options)
    conn.row_factory = sqlite3.Row
    conn.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
    return conn


def _header(conn: sqlite3.Connection) -> tuple[int, int, bool]:
    """(application_id, user_version, has tables), in one read transaction: read one by one, another process's
    first migration could commit between them and a fresh lab database would look foreign."""
    conn.execute("BEGIN")
    try:
        app_id = conn.execute("PRAGMA application_id").fetchone()[0]
        version = conn.execute("PRAGMA user_version").fetchone()[0]
        has_tables = conn.execute("SELECT count(*) FROM sqlite_master").fetchone()[0] > 0
    finally:
        conn.execute("COMMIT")
    return app_id, version, has_tables


def _refuse_foreign(path: Path, app_id: int, version: int, has_tables: bool) -> None:
    if has_tables and app_id != APPLICATION_ID:
        raise StoreError(f"{path} is a SQLite database of another application; move it away or set "
                         f"{HOME_ENV_VAR} to another folder — it was left untouched", path=path, kind="foreign")
    if version > SCHEMA_VERSION:
        raise StoreError(f"{path} has schema version {version}, newer than this CartPole Lab ({SCHEMA_VERSION}); "
                         f"upgrade CartPole Lab to open it", path=path, kind="newer")


class RunStore:
    """One process's handle on the store. Cheap to create; not shared across processes; safe across threads.

    ``readonly=None`` (the default) opens read-only when the data home exists but cannot be written here;
    ``recover`` marks runs left 'running' by dead processes as interrupted as it opens (not when read-only).
    """

    def __init__(self, home: Path, recover: bool = True, readonly: bool | None = None):
        home = Path(home)
        self.readonly = (not home_writable(home)) if readonly is None else bool(readonly)
        self.home = ensure_data_home(home, writable=not self.readonly)
        self.path = db_path(self.home)
        self.runs_dir = self.home / "runs"
        self._lock = threading.RLock()  # one thread at a time on the connection, a transaction included
        self._depth = 0  # nesting of transaction() blocks in the thread holding the lock
        if self.readonly and not self.path.is_file():
            raise DataHomeError(f"the data home {self.home} cannot be written here and has no run store yet; set "
                                f"{HOME_ENV_VAR} or --home to a writable folder")
        self._conn = self._open()
        if recover and not self.readonly:
            try:
                self.mark_interrupted()
            except BaseException:
                self._conn.close()
                raise

    # ------------------------------------------------------------------------------------------- connection

    def _open(self) -> sqlite3.Connection:
        conn = None
        try:
            conn = _connect(self.path, self.readonly)
            app_id, version, has_tables = _header(conn)
        except sqlite3.DatabaseError as err:
            if conn is not None:
                conn.close()
            raise _opening_error(self.path, err) from None
        try:
            _refuse_foreign(self.path, app_id, version, has_tables)
        except StoreError:
            conn.close()
            raise
        if self.readonly:  # no WAL switch, no migration: reads only (an older schema reads too, see _run_dict)
            return conn
        # Switching a new file to WAL can report "locked" while another handle does the same, without waiting
        # on the busy timeout; retry within that budget instead of failing the second handle.
        deadline = time.monotonic() + BUSY_TIMEOUT_MS / 1000
        while True:
            try:
                conn.execute("PRAGMA journal_mode = WAL")
                conn.execute("PRAGMA synchronous = NORMAL")
                conn.execute("PRAGMA foreign_keys = ON")
                self._migrate(conn, version)
                return conn
            except sqlite3.DatabaseError as err:
                if "locked" in str(err) and time.monotonic() < deadline:
                    time.sleep(0.02)
                    continue
                conn.close()
                raise _store_error(self.path, err, writing=True) from None

    @staticmethod
    def _migrate(conn: sqlite3.Connection, version: int) -> None:
        while version < SCHEMA_VERSION:
            conn.execute("BEGIN IMMEDIATE")
            try:
                # Re-read under the write lock: another process may have migrated meanwhile.
                current = conn.execute("PRAGMA user_version").fetchone()[0]
                if current == version:
                    for statement in _statements(MIGRATIONS[version]):
                        conn.execute(statement)
                    conn.execute(f"PRAGMA application_id = {APPLICATION_ID}")
                    conn.execute(f"PRAGMA user_version = {version + 1}")
                conn.execute("COMMIT")
            except BaseException:
                conn.execute("ROLLBACK")
                raise
            version = conn.execute("PRAGMA user_version").fetchone()[0]

    def close(self) -> None:
        with self._lock:
            self._conn.close()

    def _error(self, err: sqlite3.Error, writing: bool = False) -> StoreError:
        return _store_error(self.path, err, writing=writing, readonly=self.readonly)

    @contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        """One write transaction, holding this handle's lock. A transaction opened inside another (same thread)
        joins it: everything commits, or rolls back, together. Any SQLite failure — a full disk, a damaged page,
        a read-only store — becomes a StoreError naming the file."""
        with self._lock:
            if self.readonly:
                raise _readonly_error(self.path)
            if self._depth:
                self._depth += 1
                try:
                    yield self._conn
                finally:
                    self._depth -= 1
                return
            try:
                self._conn.execute("BEGIN IMMEDIATE")
            except sqlite3.DatabaseError as err:
                raise self._error(err, writing=True) from None
            self._depth = 1
            try:
                yield self._conn
                self._conn.execute("COMMIT")
            except (sqlite3.ProgrammingError, sqlite3.InterfaceError):
                self._rollback()
                raise  # a bug in the statement, not a store problem
            except sqlite3.DatabaseError as err:
                self._rollback()
                raise self._error(err, writing=True) from None
            except BaseException:
                self._rollback()
                raise
            finally:
                self._depth = 0

    def _rollback(self) -> None:
        try:
            if self._conn.in_transaction:
                self._conn.execute("ROLLBACK")
        except sqlite3.Error:
            pass  # SQLite may already have rolled back (e.g. after a full disk)

    @contextmanager
    def _reading(self) -> Iterator[None]:
        """Several queries on one state of the store: this handle's lock (no other thread of this process writes in
        between) and one read transaction (nor does another process). Inside a transaction, that one."""
        with self._lock:
            if self._conn.in_transaction:
                yield
                return
            try:
                self._conn.execute("BEGIN")
            except sqlite3.DatabaseError as err:
                raise self._error(err) from None
            try:
                yield
            finally:
                self._rollback()  # ends the read transaction: nothing was written

    def _query(self, sql: str, params: Sequence[Any] = ()) -> list[sqlite3.Row]:
        with self._lock:
            try:
                return self._conn.execute(sql, params).fetchall()
            except (sqlite3.ProgrammingError, sqlite3.InterfaceError):
                raise
            except sqlite3.DatabaseError as err:
                raise self._error(err) from None

    # ----------------------------------------------------------------------------------------------- writes

    def create_run(self, run_id: str, config_json: str, algo: str, seed: int, *, name: str | None = None,
                   preset: str | None = None, group_id: str | None = None, tags: Iterable[str] = (),
                   running_pid: int | None = None) -> str:
        """Add a queued run — or, with ``running_pid``, one already running in that process of this host (a CLI
        ``train``: no scheduler can claim it in between). The name and tags must be within ``limits``
        (LimitError, a ValueError, otherwise)."""
        name = check_name(name) if name else run_id
        clean_tags = check_tags(tags)
        now = time.time()
        running = running_pid is not None
        with self.transaction() as conn:
            conn.execute(
                "INSERT INTO runs (id, name, algo, preset, config_json, seed, group_id, tags_json, status, created_at,"
                " started_at, pid, host, heartbeat_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (run_id, name, algo, preset, config_json, seed, group_id, json.dumps(clean_tags),
                 "running" if running else "queued", now, now if running else None, running_pid,
                 host_id() if running else None, now if running else None),
            )
        self.run_dir(run_id).mkdir(parents=True, exist_ok=True)
        return run_id

    def run_dir(self, run_id: str) -> Path:
        return self.runs_dir / run_id

    def claim(self, run_id: str) -> bool:
        """Atomically move a queued run to running; False when another process claimed (or cancelled) it."""
        now = time.time()
        with self.transaction() as conn:
            # The claimer's pid until the worker reports its own, so recovery never mistakes it for a dead run.
            return conn.execute("UPDATE runs SET status = 'running', started_at = ?, pid = ?, host = ?,"
                                " heartbeat_at = ? WHERE id = ? AND status = 'queued'",
                                (now, os.getpid(), host_id(), now, run_id)).rowcount == 1

    def mark_running(self, run_id: str, pid: int) -> None:
        """``pid``, a process on this host, trains the run from now on — unless the run has ended already. A warm
        worker can finish a quick or cancelled run before the dispatcher that handed it over records the worker's
        pid; the run keeps its outcome then (as in ``set_status``, the first outcome wins), not "running" forever."""
        now = time.time()
        with self.transaction() as conn:
            conn.execute("UPDATE runs SET status = 'running', started_at = ?, pid = ?, host = ?, heartbeat_at = ?"
                         " WHERE id = ? AND status IN ('queued', 'running')", (now, pid, host_id(), now, run_id))

    def heartbeat(self, run_id: str) -> None:
        """The process training the run is alive (written with every flush of metrics, and between them)."""
        with self.transaction() as conn:
            conn.execute("UPDATE runs SET heartbeat_at = ? WHERE id = ?", (time.time(), run_id))

    def set_status(self, run_id: str, status: str, error: str | None = None) -> None:
        """End (or requeue) a run. A run already in a final state keeps it: the first outcome wins."""
        if status not in STATUSES:
            raise ValueError(f"status {status!r} is unknown; allowed: {', '.join(STATUSES)}")
        ended = None if status in ACTIVE_STATUSES else time.time()
        with self.transaction() as conn:
            conn.execute(
                "UPDATE runs SET status = ?, error = COALESCE(?, error), ended_at = COALESCE(?, ended_at) "
                "WHERE id = ? AND status IN ('queued', 'running')", (status, error, ended, run_id))

    def request_cancel(self, run_id: str) -> None:
        with self.transaction() as conn:
            conn.execute("UPDATE runs SET cancel_requested = 1 WHERE id = ?", (run_id,))

    def cancel_requested(self, run_id: str) -> bool:
        rows = self._query("SELECT cancel_requested FROM runs WHERE id = ?", (run_id,))
        return bool(rows and rows[0][0])

    def finish_run(self, run_id: str, result: RunResult, status: str) -> None:
        """Record the run's summary and final status (the final evaluation is the last one appended)."""
        with self.transaction() as conn:
            conn.execute(
                "UPDATE runs SET env_steps = ?, episodes = ?, train_seconds = ?, solved = ?, time_to_solve_s = ?,"
                " steps_to_solve = ?, final_eval = ?, best_eval = ? WHERE id = ?",
                (result.env_steps, result.episodes, result.train_seconds, int(result.solved), result.time_to_solve_s,
                 result.steps_to_solve, result.final_eval_mean, result.best_eval_mean, run_id))
            self.set_status(run_id, status)

    def append_events(self, run_id: str, events: Sequence[Event]) -> None:
        """Write a batch of events in one transaction, advance the run's counters and its heartbeat."""
        if not events:
            return
        last = events[-1]
        last_episode = next((e.episode for e in reversed(events) if isinstance(e, EpisodeEnded)), 0)
        with self.transaction() as conn:
            insert_metrics(conn, run_id, events)
            conn.execute(
                "UPDATE runs SET env_steps = MAX(env_steps, ?), train_seconds = MAX(train_seconds, ?),"
                " episodes = MAX(episodes, ?), heartbeat_at = ? WHERE id = ?",
                (last.env_steps, last.time_s, last_episode, time.time(), run_id))
            for e in (e for e in events if isinstance(e, Evaluated)):
                conn.execute(
                    "UPDATE runs SET best_eval = MAX(COALESCE(best_eval, ?), ?), final_eval = ?,"
                    " solved = MAX(solved, ?),"
                    " time_to_solve_s = CASE WHEN time_to_solve_s IS NULL AND ? THEN ? ELSE time_to_solve_s END,"
                    " steps_to_solve = CASE WHEN steps_to_solve IS NULL AND ? THEN ? ELSE steps_to_solve END"
                    " WHERE id = ?",
                    (e.mean_return, e.mean_return, e.mean_return, int(e.solved), e.solved, e.time_s, e.solved,
                     e.env_steps, run_id))

    def add_artifact(self, run_id: str, kind: str, env_steps: int, path: Path) -> None:
        with self.transaction() as conn:
            conn.execute("INSERT OR REPLACE INTO artifacts VALUES (?, ?, ?, ?, ?)",
                         (run_id, kind, env_steps, str(path.relative_to(self.home)), time.time()))

    def rename(self, run_id: str, name: str) -> None:
        """A new name within ``limits.check_name`` (LimitError, a ValueError, otherwise); KeyError: no such run."""
        self._update_existing(run_id, "UPDATE runs SET name = ? WHERE id = ?", (check_name(name), run_id))

    def set_tags(self, run_id: str, tags: Iterable[str]) -> None:
        """Replace the tags (trimmed, unique, sorted, within ``limits.check_tags``); KeyError: no such run."""
        clean = check_tags(tags)
        self._update_existing(run_id, "UPDATE runs SET tags_json = ? WHERE id = ?", (json.dumps(clean), run_id))

    def delete_run(self, run_id: str) -> None:
        """Delete a finished run, its metrics and its artifacts folder. Active runs must be cancelled first."""
        run = self.get_run(run_id)
        if run is None:
            raise KeyError(f"no run {run_id!r}")
        if run["status"] in ACTIVE_STATUSES:
            raise ValueError(f"run {run_id} is {run['status']}; cancel it before deleting")
        with self.transaction() as conn:
            conn.execute("DELETE FROM runs WHERE id = ?", (run_id,))
        shutil.rmtree(self.run_dir(run_id), ignore_errors=True)

    def _update_existing(self, run_id: str, sql: str, params: Sequence[Any]) -> None:
        with self.transaction() as conn:
            if conn.execute(sql, params).rowcount == 0:
                raise KeyError(f"no run {run_id!r}")

    def mark_interrupted(self, stale_after_s: float = STALE_AFTER_S, skip: Iterable[str] = ()) -> int:
        """Runs left 'running' by a process that no longer exists become 'interrupted' (their metrics stay).
        Returns how many. A run from this host is dead when its pid is; one from another host (or pid namespace)
        when it has sent no heartbeat for ``stale_after_s``. ``skip``: runs whose process the caller watches
        itself (its executor's own workers, in ``Dispatcher.pump``). Nothing happens on a read-only store."""
        if self.readonly:
            return 0
        skipped, here, now = set(skip), host_id(), time.time()
        marked = 0
        for row in self._query("SELECT id, pid, host, heartbeat_at, started_at, created_at FROM runs"
                               " WHERE status = 'running'"):
            if row["id"] in skipped:
                continue
            last = row["heartbeat_at"] or row["started_at"] or row["created_at"] or now
            if row["pid"] and row["host"] in (None, here):  # this host's pid (None: recorded before v3, by pid)
                if pid_alive(row["pid"]):
                    continue
                reason = f"the process training this run (pid {row['pid']}) stopped unexpectedly (killed?)"
            elif now - last > stale_after_s:
                reason = f"no heartbeat for {now - last:.0f} s: the process training this run stopped unexpectedly " \
                         "(killed?)"
            else:
                continue
            with self.transaction() as conn:  # only if nothing changed since: the same process still holds it
                marked += conn.execute(
                    "UPDATE runs SET status = 'interrupted', error = ?, ended_at = ? WHERE id = ?"
                    " AND status = 'running' AND pid IS ? AND heartbeat_at IS ?",
                    (reason, now, row["id"], row["pid"], row["heartbeat_at"])).rowcount
        return marked

    # ------------------------------------------------------------------------------------------------ reads

    def get_run(self, run_id: str) -> dict[str, Any] | None:
        rows = self._query("SELECT * FROM runs WHERE id = ?", (run_id,))
        return _run_dict(rows[0]) if rows else None

    def list_runs(self, *, algo: str | None = None, status: str | None = None, tag: str | None = None,
                  group_id: str | None = None) -> list[dict[str, Any]]:
        clauses, params = [], []
        for column, value in (("algo", algo), ("status", status), ("group_id", group_id)):
            if value is not None:
                clauses.append(f"{column} = ?")
                params.append(value)
        where = f"WHERE {' AND '.join(clauses)}" if clauses else ""
        runs = [_run_dict(row) for row in self._query(f"SELECT * FROM runs {where} ORDER BY created_at DESC", params)]
        return [run for run in runs if tag is None or tag in run["tags"]]

    def count_runs(self, status: str) -> int:
        return self._query("SELECT count(*) FROM runs WHERE status = ?", (status,))[0][0]

    def episodes(self, run_id: str, after: int = 0) -> list[dict[str, Any]]:
        return [dict(row) for row in self._query(
            f"SELECT {', '.join(EPISODE_COLUMNS)} FROM episodes WHERE run_id = ? AND episode > ? ORDER BY episode",
            (run_id, after))]

    def updates(self, run_id: str, after: int = 0) -> list[dict[str, Any]]:
        return [{"update": row["update_index"], "env_steps": row["env_steps"], "time_s": row["time_s"],
                 **json.loads(row["metrics_json"])}
                for row in self._query("SELECT * FROM updates WHERE run_id = ? AND update_index > ?"
                                       " ORDER BY update_index", (run_id, after))]

    def evaluations(self, run_id: str, after_steps: int = -1) -> list[dict[str, Any]]:
        return [dict(row) | {"solved": bool(row["solved"])} for row in self._query(
            f"SELECT {', '.join(EVALUATION_COLUMNS)} FROM evaluations WHERE run_id = ? AND env_steps > ?"
            " ORDER BY env_steps", (run_id, after_steps))]

    def poll(self, run_id: str, cursor: Cursor = Cursor()) -> tuple[dict[str, list[dict]], Cursor]:
        """Everything new since ``cursor``, and the cursor to pass next time. One state of the store: no batch of
        events is seen in part (its episodes without its evaluation), whoever commits meanwhile."""
        with self._reading():
            new = {"episodes": self.episodes(run_id, cursor.episode), "updates": self.updates(run_id, cursor.update),
                   "evaluations": self.evaluations(run_id, cursor.eval_steps)}
        return new, Cursor(
            episode=new["episodes"][-1]["episode"] if new["episodes"] else cursor.episode,
            update=new["updates"][-1]["update"] if new["updates"] else cursor.update,
            eval_steps=new["evaluations"][-1]["env_steps"] if new["evaluations"] else cursor.eval_steps,
        )

    def runs_with_artifacts(self) -> set[str]:
        """Ids of the runs that have at least one checkpoint, in one query."""
        return {row[0] for row in self._query("SELECT DISTINCT run_id FROM artifacts")}

    def artifacts(self, run_id: str, kind: str | None = None) -> list[dict[str, Any]]:
        rows = self._query("SELECT kind, env_steps, path, created_at FROM artifacts WHERE run_id = ?"
                           + (" AND kind = ?" if kind else "") + " ORDER BY env_steps, created_at",
                           (run_id, kind) if kind else (run_id,))
        return [dict(row) | {"path": self.home / row["path"]} for row in rows]


def _insert_sql(table: str, columns: Sequence[str]) -> str:
    return (f"INSERT OR REPLACE INTO {table} (run_id, {', '.join(columns)})"
            f" VALUES ({', '.join('?' * (1 + len(columns)))})")


_INSERT_EPISODE = _insert_sql("episodes", EPISODE_COLUMNS)
_INSERT_EVALUATION = _insert_sql("evaluations", EVALUATION_COLUMNS)
_INSERT_UPDATE = _insert_sql("updates", ("update_index", "env_steps", "time_s", "metrics_json"))


def insert_metrics(conn: sqlite3.Connection, run_id: str, events: Sequence[Event]) -> None:
    """The rows of the events (episodes, updates, evaluations) for ``run_id``, replacing any with the same key, in
    the caller's transaction (``RunStore.transaction``); the run's counters are the caller's to advance."""
    episode_row, evaluation_row = attrgetter(*EPISODE_COLUMNS), attrgetter(*EVALUATION_COLUMNS)
    conn.executemany(_INSERT_EPISODE, [(run_id, *episode_row(e)) for e in events if isinstance(e, EpisodeEnded)])
    conn.executemany(_INSERT_UPDATE, [(run_id, e.update, e.env_steps, e.time_s, json.dumps(e.metrics))
                                      for e in events if isinstance(e, Updated)])
    conn.executemany(_INSERT_EVALUATION, [(run_id, *evaluation_row(e)) for e in events if isinstance(e, Evaluated)])


def group_curve(store: RunStore, run_ids: Sequence[str], x: str = "env_steps", y: str = "episode_return",
                bins: int = 100) -> dict[str, np.ndarray]:
    """Mean and std across the stored runs of ``y`` per bin of ``x``; see ``binned_mean_std``."""
    if x not in ("env_steps", "episode", "time_s"):
        raise ValueError(f"x must be env_steps, episode or time_s, got {x!r}")
    return binned_mean_std([store.episodes(run_id) for run_id in run_ids], x, y, bins)


def binned_mean_std(runs: Sequence[Sequence[dict[str, Any]]], x: str = "env_steps", y: str = "episode_return",
                    bins: int = 100) -> dict[str, np.ndarray]:
    """Mean and std across runs of ``y`` per bin of ``x`` (``env_steps``, ``episode`` or ``time_s``).

    Each run contributes its mean of ``y`` within a bin, carried forward over bins where it logged nothing
    (a run that has ended keeps its last value only up to its own last x). ``n`` counts contributing runs.
    """
    series = [(np.array([r[x] for r in rows], dtype=float), np.array([r[y] for r in rows], dtype=float))
              for rows in runs if rows]
    if not series:
        empty = np.array([])
        return {"x": empty, "mean": empty, "std": empty, "n": empty}
    edges = np.linspace(0.0, max(xs[-1] for xs, _ in series), bins + 1)
    values = np.full((len(series), bins), np.nan)
    for row, (xs, ys) in enumerate(series):
        index = np.clip(np.searchsorted(edges, xs, side="right") - 1, 0, bins - 1)
        sums = np.bincount(index, weights=ys, minlength=bins)
        counts = np.bincount(index, minlength=bins)
        with np.errstate(invalid="ignore", divide="ignore"):
            per_bin = sums / counts
        last = -np.inf
        for b in range(bins):  # carry forward across empty bins, up to the run's own end
            if counts[b]:
                last = per_bin[b]
            elif edges[b] <= xs[-1] and np.isfinite(last):
                per_bin[b] = last
        values[row] = per_bin
    n = (~np.isnan(values)).sum(axis=0)
    with np.errstate(invalid="ignore"):
        mean = np.where(n > 0, np.nansum(values, axis=0) / np.maximum(n, 1), np.nan)
        std = np.sqrt(np.where(n > 0, np.nansum((values - mean) ** 2, axis=0) / np.maximum(n, 1), np.nan))
    return {"x": (edges[:-1] + edges[1:]) / 2, "mean": mean, "std": std, "n": n}


def _statements(script: str) -> list[str]:
    return [part.strip() for part in script.split(";") if part.strip()]


def _run_dict(row: sqlite3.Row) -> dict[str, Any]:
    run = dict(row)
    run["tags"] = json.loads(run.pop("tags_json"))
    run["solved"] = bool(run["solved"])
    for column in ("heartbeat_at", "host"):  # a store of an older schema, opened read-only, lacks them
        run.setdefault(column, None)
    return run


# ----------------------------------------------------------------------------------------- check and salvage


def _open_to_read(path: Path) -> sqlite3.Connection:
    """A read-only connection to a store that may be damaged, after refusing files that are not this lab's
    (StoreError). The file is never written."""
    try:
        conn = _connect(path, readonly=True)
    except sqlite3.DatabaseError as err:
        raise _opening_error(path, err) from None
    try:
        _refuse_foreign(path, *_header(conn))
    except sqlite3.DatabaseError as err:
        problem = _opening_error(path, err)
        if problem.kind == "foreign":
            conn.close()
            raise problem from None
        # otherwise: a header this damaged is the check's first problem, and salvage finds nothing to read
    except StoreError:
        conn.close()
        raise
    return conn


def check_store(home: Path) -> list[str]:
    """The problems of the run store in ``home``, one line each; ``[]`` when healthy (or when there is no store
    yet). Runs SQLite's integrity check, the foreign-key check and the lab's schema check, reading only.

    A damaged store is never an exception here — its problems are the result. A file that is not this lab's
    database at all (not SQLite, another application's, a newer schema) raises ``StoreError``, as opening it does.
    """
    path = db_path(Path(home))
    if not path.is_file() or path.stat().st_size == 0:
        return []
    conn = _open_to_read(path)
    problems: list[str] = []
    try:
        try:
            _, version, _ = _header(conn)
            tables = {row[0] for row in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
        except sqlite3.DatabaseError as err:
            return [f"the database's first page (its schema) cannot be read: {err}"]
        missing = [table for table in TABLES if table not in tables]
        if version >= 1 and missing:
            problems.append(f"tables missing from the schema: {', '.join(missing)}")
        for table in (table for table in TABLES if table in tables):  # which tables the damage reaches
            try:
                conn.execute(f"SELECT count(*) FROM {table}").fetchone()
            except sqlite3.DatabaseError as err:
                problems.append(f"the {table} table cannot be read in full: {err}")
        try:
            lines = [part.strip() for (line,) in conn.execute("PRAGMA integrity_check(100)").fetchall()
                     for part in str(line).splitlines() if part.strip() not in ("", "ok", "*** in database main ***")]
            problems.extend(_grouped(lines))
        except sqlite3.DatabaseError as err:
            problems.append(f"the integrity check stopped: {err}")
        try:
            orphans: dict[str, int] = {}
            for row in conn.execute("PRAGMA foreign_key_check").fetchall():
                orphans[row[0]] = orphans.get(row[0], 0) + 1
            problems.extend(f"{count:,} row(s) of {table} belong to no run" for table, count in orphans.items())
        except sqlite3.DatabaseError as err:
            problems.append(f"the foreign-key check stopped: {err}")
    finally:
        conn.close()
    return problems


def _grouped(lines: list[str]) -> list[str]:
    """SQLite's integrity-check lines with the same message for many pages ("Page 12 is never used") as one line."""
    groups: dict[str, list[str]] = {}
    for line in lines:
        match = re.match(r"Page (\d+)(.*)", line)
        template, page = (f"page(s) {{}}{match.group(2)}", match.group(1)) if match else (line, "")
        groups.setdefault(template, []).append(page)
    out = []
    for template, pages in groups.items():
        if not pages[0]:
            out.append(template)
            continue
        shown = ", ".join(sorted(pages, key=int)[:8]) + (f" … ({len(pages)} pages)" if len(pages) > 8 else "")
        out.append(template.format(shown))
    return out


_KEY_MIN, _KEY_MAX = -(2**63), 2**63 - 1
_NUM, _INT, _TEXT, _NONE = (int, float), (int,), (str,), (type(None),)
# Per table: the salvaged columns with the types a row must have to be copied (the rest of a row that fails this
# is damage that happened to parse).
_COLUMNS: dict[str, dict[str, tuple[type, ...]]] = {
    "runs": {"id": _TEXT, "name": _TEXT, "algo": _TEXT, "preset": _TEXT + _NONE, "config_json": _TEXT,
             "seed": _INT, "group_id": _TEXT + _NONE, "tags_json": _TEXT, "status": _TEXT, "created_at": _NUM,
             "started_at": _NUM + _NONE, "ended_at": _NUM + _NONE, "pid": _INT + _NONE, "error": _TEXT + _NONE,
             "cancel_requested": _INT, "env_steps": _INT, "episodes": _INT, "train_seconds": _NUM,
             "best_eval": _NUM + _NONE, "final_eval": _NUM + _NONE, "solved": _INT, "time_to_solve_s": _NUM + _NONE,
             "steps_to_solve": _INT + _NONE, "heartbeat_at": _NUM + _NONE, "host": _TEXT + _NONE},
    "episodes": {"run_id": _TEXT, "episode": _INT, "env_steps": _INT, "episode_return": _NUM, "length": _INT,
                 "epsilon": _NUM + _NONE, "learning_rate": _NUM + _NONE, "time_s": _NUM},
    "updates": {"run_id": _TEXT, "update_index": _INT, "env_steps": _INT, "time_s": _NUM, "metrics_json": _TEXT},
    "evaluations": {"run_id": _TEXT, "env_steps": _INT, "episodes": _INT, "mean_return": _NUM, "std_return": _NUM,
                    "solved": _INT, "time_s": _NUM},
    "artifacts": {"run_id": _TEXT, "kind": _TEXT, "env_steps": _INT, "path": _TEXT, "created_at": _NUM},
}
_KEYS = {"episodes": "episode", "updates": "update_index", "evaluations": "env_steps"}
_DEFAULTS = {"tags_json": "[]", "cancel_requested": 0, "env_steps": 0, "episodes": 0, "train_seconds": 0.0,
             "solved": 0}
_CHECKPOINT_NAME = re.compile(r"step-(\d{1,18})\.pt|(best|final)\.pt")


def _readable_rows(fetch: Callable[[int, int], list[sqlite3.Row]], key: str,
                   chunk: int = 2000) -> Iterator[list[sqlite3.Row]]:
    """Batches of the rows ``fetch(first_key, limit)`` returns (those with key ≥ first_key, in key order), past
    unreadable stretches: where a read fails, rows are read one at a time up to the damage, then the first key
    from which reading works again is found by galloping and bisection (a damaged page costs ~100 probes, not one
    per key it held) and reading resumes there."""

    def fails(at: int) -> bool:
        try:
            fetch(at, 1)
        except sqlite3.DatabaseError:
            return True
        return False

    position, limit = _KEY_MIN, chunk
    while True:
        try:
            batch = fetch(position, limit)
        except sqlite3.DatabaseError:
            if limit > 1:  # read row by row up to the damaged page
                limit = 1
                continue
            bad, step, good = position, 1, None  # gallop past the damage, then bisect back to its end
            while good is None:
                probe = min(position + step, _KEY_MAX)
                if not fails(probe):
                    good = probe
                elif probe == _KEY_MAX:
                    return
                else:
                    bad, step = probe, step * 2
            while good - bad > 1:
                middle = (bad + good) // 2
                bad, good = (middle, good) if fails(middle) else (bad, middle)
            position, limit = good, chunk
            continue
        if not batch:
            return
        yield batch
        last = batch[-1][key]
        if not isinstance(last, int) or last >= _KEY_MAX:
            return
        position = last + 1


def _valid(table: str, row: dict[str, Any]) -> bool:
    return all(isinstance(row.get(column), types) and not isinstance(row.get(column), bool)
               for column, types in _COLUMNS[table].items())


def _salvaged_run(row: sqlite3.Row, now: float) -> dict[str, Any] | None:
    """A run row fit for the new store, or None when too damaged to be used."""
    stored = dict(row)
    run = {column: stored.get(column, _DEFAULTS.get(column)) for column in _COLUMNS["runs"]}
    if not _valid("runs", run) or run["status"] not in STATUSES or Path(run["id"]).name != run["id"] \
            or run["id"] in (".", ".."):
        return None
    try:
        if not isinstance(json.loads(run["config_json"]), dict):
            return None
        tags = json.loads(run["tags_json"])
        run["tags_json"] = json.dumps(check_tags(tags))
    except (ValueError, TypeError):
        run["tags_json"] = "[]"
    if run["status"] == "running":  # nothing trains it in the new home
        run.update(status="interrupted", ended_at=now,
                   error="it was training when its damaged run store was salvaged; what was stored is kept")
    if run["status"] != "queued":
        run.update(pid=None, host=None)
    run["cancel_requested"] = 0
    return run


def salvage_store(home: Path, new_home: Path) -> dict[str, int]:
    """Copy everything readable of the (damaged) run store in ``home`` into a new store in ``new_home``: every
    run, episode, update, evaluation and artifact row that can still be read — table by table, key range by key
    range, skipping unreadable pages — and the run folders' checkpoints. The damaged file is only read.

    Returns how many ``runs``, ``episodes``, ``updates``, ``evaluations`` and ``artifacts`` were copied.
    ``new_home`` must be a new or empty folder (ValueError otherwise); ``StoreError`` when ``home`` has no run
    store or it is not this lab's. A run that was training arrives ``interrupted``; checkpoints whose rows are
    unreadable are listed again from their files.
    """
    home, new_home = Path(home), Path(new_home)
    source = db_path(home)
    if not source.is_file():
        raise StoreError(f"there is no run store at {source} to salvage", path=source, kind="missing")
    if new_home.exists() and not new_home.is_dir():
        raise ValueError(f"{new_home} is a file; salvage into a new or empty folder")
    if new_home.resolve() == home.resolve():
        raise ValueError(f"{new_home} is the damaged store's own data home; salvage into a new or empty folder")
    if new_home.is_dir() and any(new_home.iterdir()):
        raise ValueError(f"{new_home} is not empty; salvage into a new or empty folder")
    conn = _open_to_read(source)
    created = not new_home.exists()
    try:
        target = RunStore(new_home, recover=False, readonly=False)
        try:
            return _salvage(conn, home, target)
        finally:
            target.close()
    except BaseException:
        if created:
            shutil.rmtree(new_home, ignore_errors=True)
        raise
    finally:
        conn.close()


def _salvage(conn: sqlite3.Connection, home: Path, target: RunStore) -> dict[str, int]:
    counts = dict.fromkeys(TABLES, 0)
    now = time.time()
    try:
        tables = {row[0] for row in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
    except sqlite3.DatabaseError:
        return counts  # the schema page itself is gone: nothing can be located
    if "runs" not in tables:
        return counts

    def runs_from(first: int, limit: int) -> list[sqlite3.Row]:
        return conn.execute("SELECT rowid AS _rowid, * FROM runs WHERE rowid >= ? ORDER BY rowid LIMIT ?",
                            (first, limit)).fetchall()

    runs = [run for batch in _readable_rows(runs_from, "_rowid", chunk=500) for row in batch
            if (run := _salvaged_run(row, now)) is not None]
    for run in {run["id"]: run for run in runs}.values():
        with target.transaction() as out:
            out.execute(f"INSERT INTO runs ({', '.join(run)}) VALUES ({', '.join('?' * len(run))})",
                        tuple(run.values()))
            counts["runs"] += 1
            evaluations: list[dict[str, Any]] = []
            for table, key in _KEYS.items():
                if table not in tables:
                    continue
                columns = list(_COLUMNS[table])

                def rows_from(first: int, limit: int, table: str = table, key: str = key,
                              run_id: str = run["id"]) -> list[sqlite3.Row]:
                    return conn.execute(f"SELECT * FROM {table} WHERE run_id = ? AND {key} >= ? ORDER BY {key}"
                                        f" LIMIT ?", (run_id, first, limit)).fetchall()

                for batch in _readable_rows(rows_from, key):
                    good = [dict(row) for row in batch]
                    good = [row for row in good if _valid(table, row) and _metrics_ok(table, row)]
                    out.executemany(f"INSERT OR IGNORE INTO {table} ({', '.join(columns)}) VALUES "
                                    f"({', '.join('?' * len(columns))})",
                                    [tuple(row[column] for column in columns) for row in good])
                    counts[table] += len(good)
                    if table == "evaluations":
                        evaluations.extend(good)
            counts["artifacts"] += _salvage_artifacts(conn, home, target, run, evaluations, "artifacts" in tables)
    return counts


def _metrics_ok(table: str, row: dict[str, Any]) -> bool:
    if table != "updates":
        return True
    try:
        return isinstance(json.loads(row["metrics_json"]), dict)
    except ValueError:
        return False


def _salvage_artifacts(conn: sqlite3.Connection, home: Path, target: RunStore, run: dict[str, Any],
                       evaluations: list[dict[str, Any]], has_table: bool) -> int:
    """Copy the run's folder (every readable file) and its artifact rows whose files arrived; when the rows cannot
    be read, list its checkpoints again from their file names."""
    source_dir, target_dir = home / "runs" / run["id"], target.run_dir(run["id"])
    target_dir.mkdir(parents=True, exist_ok=True)
    if source_dir.is_dir():
        for file in source_dir.rglob("*"):
            if file.is_file() and not file.is_symlink():
                copy = target_dir / file.relative_to(source_dir)
                try:
                    copy.parent.mkdir(parents=True, exist_ok=True)
                    shutil.copy2(file, copy)
                except OSError:
                    copy.unlink(missing_ok=True)  # unreadable: skipped
    rows: list[dict[str, Any]] | None = None
    if has_table:
        try:
            rows = [dict(row) for row in conn.execute("SELECT * FROM artifacts WHERE run_id = ?", (run["id"],))]
        except sqlite3.DatabaseError:
            rows = None
    if rows is None:  # from the files: step-N.pt is periodic at N; best at the best evaluation; final at the end
        best = max(evaluations, key=lambda e: e["mean_return"], default=None)
        rows = []
        for file in sorted(target_dir.glob("*.pt")):
            match = _CHECKPOINT_NAME.fullmatch(file.name)
            if match:
                kind = match.group(2) or "periodic"
                steps = int(match.group(1)) if match.group(1) else \
                    best["env_steps"] if kind == "best" and best else run["env_steps"]
                rows.append({"run_id": run["id"], "kind": kind, "env_steps": steps,
                             "path": str(file.relative_to(target.home)), "created_at": file.stat().st_mtime})
    copied = 0
    for row in rows:
        relative = PurePosixPath(row["path"]) if isinstance(row.get("path"), str) else None
        if not _valid("artifacts", row) or relative is None or relative.is_absolute() or ".." in relative.parts \
                or relative.parts[:2] != ("runs", run["id"]) or not (target.home / relative).is_file():
            continue
        with target.transaction() as out:
            copied += out.execute("INSERT OR IGNORE INTO artifacts (run_id, kind, env_steps, path, created_at)"
                                  " VALUES (?, ?, ?, ?, ?)", (run["id"], row["kind"], row["env_steps"], str(relative),
                                                              row["created_at"])).rowcount
    return copied
