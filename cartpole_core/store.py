"""The run store: one SQLite file (WAL mode) in the data home holding runs, their metrics and artifact paths.

The store is the channel between training workers and the UI (DESIGN.md, "Why these choices"): workers append
metrics in batched transactions; the dashboard and CLI read them, incrementally, from a cursor. Every process
opens its own connection; WAL lets readers proceed while one writer commits, and the busy timeout makes
concurrent writers queue instead of failing with "database is locked".

Schema changes are versioned (``PRAGMA user_version``): ``MIGRATIONS[n]`` upgrades a version-n database to n+1
in place, so an existing lab keeps its history. A file that is not SQLite, or a SQLite database of another
application (its ``application_id`` is not ours), is refused with a message naming the path and never touched.
"""

from __future__ import annotations

import json
import os
import shutil
import sqlite3
import time
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from cartpole_core.events import EpisodeEnded, Evaluated, Event, Updated
from cartpole_core.paths import ensure_data_home
from cartpole_core.training import RunResult

DB_NAME = "lab.sqlite"
APPLICATION_ID = 0x43504C42  # "CPLB": marks a database as CartPole Lab's
STATUSES = ("queued", "running", "completed", "failed", "cancelled", "interrupted")
ACTIVE_STATUSES = ("queued", "running")
BUSY_TIMEOUT_MS = 30_000

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

# MIGRATIONS[n] turns schema version n into n + 1. Version 0 is an empty (new) database.
MIGRATIONS: list[str] = [_SCHEMA_V1, _V1_TO_V2]
SCHEMA_VERSION = len(MIGRATIONS)


class StoreError(RuntimeError):
    """The store cannot be opened or written; the message names the file and what is wrong."""


@dataclass(frozen=True)
class Cursor:
    """Where an incremental reader left off: the last episode, update and evaluation it has seen."""

    episode: int = 0
    update: int = 0
    eval_steps: int = -1


def db_path(home: Path) -> Path:
    return home / DB_NAME


def _pid_alive(pid: int | None) -> bool:
    if not pid:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # exists, owned by someone else
        return True
    return True


class RunStore:
    """One process's handle on the store. Cheap to create; not shared across processes or threads."""

    def __init__(self, home: Path, recover: bool = True):
        self.home = ensure_data_home(Path(home))
        self.path = db_path(self.home)
        self.runs_dir = self.home / "runs"
        self._conn = self._open()
        if recover:
            self.mark_interrupted()

    # ------------------------------------------------------------------------------------------- connection

    def _open(self) -> sqlite3.Connection:
        try:
            conn = sqlite3.connect(self.path, timeout=BUSY_TIMEOUT_MS / 1000, isolation_level=None,
                                   check_same_thread=False)
            conn.row_factory = sqlite3.Row
            conn.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
            # One read transaction, so the three reads see one snapshot: read one by one, another process's
            # first migration could commit between them and a fresh lab database would look foreign.
            conn.execute("BEGIN")
            try:
                app_id = conn.execute("PRAGMA application_id").fetchone()[0]
                version = conn.execute("PRAGMA user_version").fetchone()[0]
                has_tables = conn.execute("SELECT count(*) FROM sqlite_master").fetchone()[0] > 0
            finally:
                conn.execute("COMMIT")
        except sqlite3.DatabaseError as err:
            raise StoreError(f"{self.path} is not a CartPole Lab database ({err}); move it away or set "
                             f"CARTPOLE_LAB_HOME to another folder — it was left untouched") from None
        if has_tables and app_id != APPLICATION_ID:
            conn.close()
            raise StoreError(f"{self.path} is a SQLite database of another application; move it away or set "
                             f"CARTPOLE_LAB_HOME to another folder — it was left untouched")
        if version > SCHEMA_VERSION:
            conn.close()
            raise StoreError(f"{self.path} has schema version {version}, newer than this CartPole Lab "
                             f"({SCHEMA_VERSION}); upgrade CartPole Lab to open it")
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
            except sqlite3.OperationalError as err:
                if "locked" in str(err) and time.monotonic() < deadline:
                    time.sleep(0.02)
                    continue
                conn.close()
                raise StoreError(f"cannot write the run store {self.path}: {err}") from None

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
        self._conn.close()

    @contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        """One write transaction; a full disk or other write error becomes a StoreError naming the file."""
        try:
            self._conn.execute("BEGIN IMMEDIATE")
        except sqlite3.OperationalError as err:
            raise StoreError(f"cannot write the run store {self.path}: {err}") from None
        try:
            yield self._conn
            self._conn.execute("COMMIT")
        except sqlite3.OperationalError as err:
            self._conn.execute("ROLLBACK")
            raise StoreError(f"cannot write the run store {self.path}: {err}") from None
        except BaseException:
            self._conn.execute("ROLLBACK")
            raise

    def _query(self, sql: str, params: Sequence[Any] = ()) -> list[sqlite3.Row]:
        return self._conn.execute(sql, params).fetchall()

    # ----------------------------------------------------------------------------------------------- writes

    def create_run(self, run_id: str, config_json: str, algo: str, seed: int, *, name: str | None = None,
                   preset: str | None = None, group_id: str | None = None, tags: Iterable[str] = ()) -> str:
        with self.transaction() as conn:
            conn.execute(
                "INSERT INTO runs (id, name, algo, preset, config_json, seed, group_id, tags_json, status, created_at)"
                " VALUES (?, ?, ?, ?, ?, ?, ?, ?, 'queued', ?)",
                (run_id, name or run_id, algo, preset, config_json, seed, group_id, json.dumps(sorted(set(tags))),
                 time.time()),
            )
        self.run_dir(run_id).mkdir(parents=True, exist_ok=True)
        return run_id

    def run_dir(self, run_id: str) -> Path:
        return self.runs_dir / run_id

    def claim(self, run_id: str) -> bool:
        """Atomically move a queued run to running; False when another process claimed (or cancelled) it."""
        with self.transaction() as conn:
            # The claimer's pid until the worker reports its own, so recovery never mistakes it for a dead run.
            return conn.execute("UPDATE runs SET status = 'running', started_at = ?, pid = ?"
                                " WHERE id = ? AND status = 'queued'", (time.time(), os.getpid(), run_id)).rowcount == 1

    def mark_running(self, run_id: str, pid: int) -> None:
        with self.transaction() as conn:
            conn.execute("UPDATE runs SET status = 'running', started_at = ?, pid = ? WHERE id = ?",
                         (time.time(), pid, run_id))

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
        """Write a batch of events in one transaction and advance the run's counters."""
        episodes = [(run_id, e.episode, e.env_steps, e.episode_return, e.length, e.epsilon, e.learning_rate, e.time_s)
                    for e in events if isinstance(e, EpisodeEnded)]
        updates = [(run_id, e.update, e.env_steps, e.time_s, json.dumps(e.metrics))
                   for e in events if isinstance(e, Updated)]
        evals = [(run_id, e.env_steps, e.episodes, e.mean_return, e.std_return, int(e.solved), e.time_s)
                 for e in events if isinstance(e, Evaluated)]
        if not events:
            return
        last = events[-1]
        with self.transaction() as conn:
            conn.executemany("INSERT OR REPLACE INTO episodes VALUES (?, ?, ?, ?, ?, ?, ?, ?)", episodes)
            conn.executemany("INSERT OR REPLACE INTO updates VALUES (?, ?, ?, ?, ?)", updates)
            conn.executemany("INSERT OR REPLACE INTO evaluations VALUES (?, ?, ?, ?, ?, ?, ?)", evals)
            conn.execute(
                "UPDATE runs SET env_steps = MAX(env_steps, ?), train_seconds = MAX(train_seconds, ?),"
                " episodes = MAX(episodes, ?), heartbeat_at = ? WHERE id = ?",
                (last.env_steps, last.time_s, episodes[-1][1] if episodes else 0, time.time(), run_id))
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
        name = name.strip()
        if not name or len(name) > 200:
            raise ValueError(f"a run name must be 1 to 200 characters, got {len(name)}")
        self._update_existing(run_id, "UPDATE runs SET name = ? WHERE id = ?", (name, run_id))

    def set_tags(self, run_id: str, tags: Iterable[str]) -> None:
        clean = sorted({tag.strip() for tag in tags if tag.strip()})
        if any(len(tag) > 50 for tag in clean):
            raise ValueError("a tag must be at most 50 characters")
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

    def mark_interrupted(self) -> int:
        """Runs left 'running' by a process that no longer exists become 'interrupted'. Returns how many."""
        stale = [row["id"] for row in self._query("SELECT id, pid FROM runs WHERE status = 'running'")
                 if not _pid_alive(row["pid"])]
        for run_id in stale:
            self.set_status(run_id, "interrupted", "the process training this run stopped unexpectedly")
        return len(stale)

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

    def episodes(self, run_id: str, after: int = 0) -> list[dict[str, Any]]:
        return [dict(row) for row in self._query(
            "SELECT episode, env_steps, episode_return, length, epsilon, learning_rate, time_s FROM episodes"
            " WHERE run_id = ? AND episode > ? ORDER BY episode", (run_id, after))]

    def updates(self, run_id: str, after: int = 0) -> list[dict[str, Any]]:
        return [{"update": row["update_index"], "env_steps": row["env_steps"], "time_s": row["time_s"],
                 **json.loads(row["metrics_json"])}
                for row in self._query("SELECT * FROM updates WHERE run_id = ? AND update_index > ?"
                                       " ORDER BY update_index", (run_id, after))]

    def evaluations(self, run_id: str, after_steps: int = -1) -> list[dict[str, Any]]:
        return [dict(row) | {"solved": bool(row["solved"])} for row in self._query(
            "SELECT env_steps, episodes, mean_return, std_return, solved, time_s FROM evaluations"
            " WHERE run_id = ? AND env_steps > ? ORDER BY env_steps", (run_id, after_steps))]

    def poll(self, run_id: str, cursor: Cursor = Cursor()) -> tuple[dict[str, list[dict]], Cursor]:
        """Everything new since ``cursor``, and the cursor to pass next time."""
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
    return run
