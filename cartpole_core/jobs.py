"""Background training: a queue in the run store, worker processes, cancel, crash detection.

The queue *is* the store: ``submit`` writes runs with status ``queued``; a ``JobManager`` (held by whichever lab
process is up — the dashboard or the CLI) starts queued runs in worker processes, at most ``max_workers`` at
once, and notices workers that die. Workers are fresh interpreters running the importable module
``cartpole_core.worker`` — not ``fork`` (the parent may hold torch threads and a Streamlit server), and not
multiprocessing's ``spawn``, which re-imports the parent's ``__main__`` (under Streamlit: the app script) in
every child. Each sets ``torch.set_num_threads(1)`` so N workers use N cores.

A worker streams events into the store in batched transactions (every ``FLUSH_INTERVAL_S``, at least twice a
second), saves periodic / best / final checkpoints under ``runs/<run_id>/``, and polls the run's cancel flag at
each flush. Cancel is cooperative first (the loop stops at its next update, data kept, status ``cancelled``) and
forceful second (terminate after ``CANCEL_GRACE_S``). Between flushes a worker still writes a heartbeat at least
every ``HEARTBEAT_INTERVAL_S`` while its loop runs.

A run whose process dies is noticed by whichever lab process is up: the job manager reaps its own workers
(``failed``, with the signal), and each ``pump`` also marks runs of other processes — a CLI ``train`` killed with
``kill -9``, a crashed dashboard's workers — ``interrupted`` (``RunStore.mark_interrupted``: by pid on this host,
by heartbeat otherwise), within one pump (0.2 s in the dashboard).

The queue is bounded (``limits``): one launch queues at most ``SEEDS_PER_LAUNCH_MAX`` seeds, and no launch takes
the queue beyond ``QUEUED_MAX`` waiting runs (``QueueFullError``); a refused launch queues nothing.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cartpole_core.compare import default_name
from cartpole_core.configs import TrainConfig
from cartpole_core.limits import QUEUED_MAX, SEEDS_PER_LAUNCH_MAX, LimitError, check_name, check_seed, check_tags
from cartpole_core.paths import new_run_id
from cartpole_core.records import RunResult
from cartpole_core.store import ACTIVE_STATUSES, RunStore

FLUSH_INTERVAL_S = 0.25
HEARTBEAT_INTERVAL_S = 1.0  # between flushes of metrics (a long stretch without events), at most this long
CANCEL_GRACE_S = 1.5
CHECKPOINTS_PER_RUN = 10  # periodic checkpoints spread over the budget, so replays can show the policy evolving


class QueueFullError(LimitError):
    """A launch would take the queue beyond ``limits.QUEUED_MAX`` waiting runs; nothing was queued."""


def _exit_reason(exitcode: int | None) -> str:
    if exitcode is None:
        return "the worker process disappeared"
    if exitcode < 0:
        name = signal.Signals(-exitcode).name
        hint = " — possibly out of memory" if name == "SIGKILL" else ""
        return f"the worker process was killed by {name}{hint}"
    return f"the worker process exited with code {exitcode}"


@dataclass
class JobManager:
    """Starts queued runs in worker processes and watches them; ``pump()`` does one round (``Scheduler`` loops it).

    With ``warm=True`` one idle worker is kept ready with torch, Gymnasium and the algorithms already imported
    (a fresh interpreter needs seconds for that), so a launched run starts training at once.
    """

    home: Path
    max_workers: int = field(default_factory=lambda: os.cpu_count() or 1)
    warm: bool = False

    def __post_init__(self) -> None:
        self.store = RunStore(self.home)
        self._workers: dict[str, Any] = {}
        self._cancel_deadline: dict[str, float] = {}
        self._standby: subprocess.Popen | None = None  # the warm idle worker

    def submit(self, config: TrainConfig, seeds: list[int], *, preset: str | None = None, name: str | None = None,
               tags: tuple[str, ...] = ()) -> tuple[str, list[str]]:
        """Queue one run per seed as one group; returns (group_id, run_ids)."""
        group_id, run_ids = submit(self.store, config, seeds, preset=preset, name=name, tags=tags)
        self.pump()
        return group_id, run_ids

    def pump(self) -> None:
        """Reap finished or dead workers, enforce cancels, mark runs whose process died elsewhere as interrupted,
        start queued runs up to the limit."""
        for run_id, process in list(self._workers.items()):
            if process.poll() is None:
                if run_id not in self._cancel_deadline and self.store.cancel_requested(run_id):
                    self._cancel_deadline[run_id] = time.monotonic() + CANCEL_GRACE_S
                deadline = self._cancel_deadline.get(run_id)
                if deadline is not None and time.monotonic() > deadline:
                    process.terminate()  # cooperative stop did not happen in time: forceful
                continue
            run = self.store.get_run(run_id)
            if run and run["status"] in ACTIVE_STATUSES:
                if run_id in self._cancel_deadline:
                    self.store.set_status(run_id, "cancelled")
                else:
                    self.store.set_status(run_id, "failed", _exit_reason(process.returncode))
            del self._workers[run_id]
            self._cancel_deadline.pop(run_id, None)
        if self.store.readonly:  # a read-only data home: nothing can be claimed or marked
            return
        self.store.mark_interrupted(skip=self._workers)  # e.g. a CLI run killed with kill -9: at once, by its pid
        free = self.max_workers - len(self._workers)
        if free > 0:
            queued = sorted(self.store.list_runs(status="queued"), key=lambda run: run["created_at"])
            for run in queued[:free]:
                if self.store.claim(run["id"]):  # another lab process may have taken it
                    self._start(run["id"])
        # Warm the next worker only while nothing trains: its imports take a core for seconds, which would slow
        # the runs being watched; the launch that matters most for latency is the one from an idle lab.
        if self.warm and not self._workers and (self._standby is None or self._standby.poll() is not None):
            self._standby = self._spawn_worker()

    def _spawn_worker(self) -> subprocess.Popen:
        # A fresh interpreter running an importable module. (multiprocessing's spawn would also re-import the
        # parent's __main__ — under Streamlit, the app script itself — in every worker.)
        return subprocess.Popen([sys.executable, "-m", "cartpole_core.worker", str(self.home)],
                                stdin=subprocess.PIPE, text=True)

    def _start(self, run_id: str) -> None:
        process = self._standby if self._standby is not None and self._standby.poll() is None else None
        self._standby = None
        process = process or self._spawn_worker()
        process.stdin.write(run_id + "\n")
        process.stdin.close()
        self.store.mark_running(run_id, process.pid)
        self._workers[run_id] = process

    def cancel(self, run_id: str) -> None:
        """Ask the run to stop: queued → cancelled at once; running → stops at its next update, or is
        terminated after CANCEL_GRACE_S. Any lab process may call ``cancel_run``; this one also enforces it."""
        cancel_run(self.store, run_id)
        if run_id in self._workers:
            self._cancel_deadline[run_id] = time.monotonic() + CANCEL_GRACE_S

    @property
    def active(self) -> list[str]:
        return list(self._workers)

    def wait(self, timeout_s: float | None = None, poll_s: float = 0.1) -> bool:
        """Pump until nothing is queued or running (True) or the timeout passes (False)."""
        deadline = None if timeout_s is None else time.monotonic() + timeout_s
        while True:
            self.pump()
            if not self._workers and not self.store.list_runs(status="queued"):
                return True
            if deadline is not None and time.monotonic() > deadline:
                return False
            time.sleep(poll_s)

    def shutdown(self) -> None:
        """Stop the warm worker (running workers are left to finish; daemonic ones end with this process)."""
        if self._standby is not None:
            self._standby.stdin.close()  # end of input: the idle worker exits (once its imports are done)
            try:
                self._standby.wait(timeout=10)
            except subprocess.TimeoutExpired:  # still importing torch on a loaded machine: it holds no run
                self._standby.kill()
                self._standby.wait()
            self._standby = None


def submit(store: RunStore, config: TrainConfig, seeds: list[int], *, preset: str | None = None,
           name: str | None = None, tags: tuple[str, ...] = ()) -> tuple[str, list[str]]:
    """Queue one run per seed as one group in the store (a scheduler starts them); returns (group_id, run_ids).

    Each run is named ``<name> · seed N``; without ``name``, the name says what differs from the preset
    (``compare.default_name``: ``dqn/fast lr=5e-3``), so groups launched to compare settings tell themselves apart.

    All or nothing: ``LimitError`` (a ValueError) for more than ``SEEDS_PER_LAUNCH_MAX`` seeds, a seed outside
    ``check_seed``, or a name or tags outside the limits; ``QueueFullError`` (a LimitError) when the runs already
    queued plus these would exceed ``QUEUED_MAX`` — counted and queued in one transaction, so two launches at once
    cannot both squeeze in.
    """
    seeds = list(seeds)
    if len(seeds) > SEEDS_PER_LAUNCH_MAX:
        raise LimitError(f"one launch may queue at most {SEEDS_PER_LAUNCH_MAX} seeds, got {len(seeds):,}; launch "
                         f"the rest as another group")
    for seed in seeds:
        check_seed(seed)
    base = check_name(name) if name else default_name(config, preset)
    labels = [check_name(f"{base} · seed {seed}") for seed in seeds]
    clean_tags = check_tags(tags)
    group_id = new_run_id(f"group-{config.algo}")
    run_ids = [new_run_id(config.algo) for _ in seeds]
    with store.transaction():  # the count and the inserts see one queue
        queued = store.count_runs("queued")
        if queued + len(seeds) > QUEUED_MAX:
            raise QueueFullError(
                f"the queue is full: {queued} run(s) are waiting and this launch adds {len(seeds)}, but at most "
                f"{QUEUED_MAX} may wait at once; nothing was queued. Wait for queued runs to start, or cancel some "
                f"(Runs page, or `python -m cartpole_core runs cancel RUN_ID`), then launch again")
        for run_id, seed, label in zip(run_ids, seeds, labels, strict=True):
            store.create_run(run_id, config.to_json(), config.algo, seed, name=label, preset=preset,
                             group_id=group_id, tags=clean_tags)
    return group_id, run_ids


def cancel_run(store: RunStore, run_id: str) -> None:
    store.request_cancel(run_id)
    run = store.get_run(run_id)
    if run and run["status"] == "queued":
        store.set_status(run_id, "cancelled")


class Scheduler(threading.Thread):
    """A daemon thread that pumps a JobManager — the dashboard's queue runner. It only starts and watches
    processes; training never runs in it. The JobManager (and its SQLite connection) lives in this thread."""

    def __init__(self, home: Path, max_workers: int | None = None, interval_s: float = 0.2):
        super().__init__(name="cartpole-lab-scheduler", daemon=True)
        self.home, self.max_workers, self.interval_s = home, max_workers, interval_s
        self.error: str | None = None
        self._stop_event = threading.Event()

    def run(self) -> None:
        manager = JobManager(self.home, self.max_workers or os.cpu_count() or 1, warm=True)
        while not self._stop_event.is_set():
            try:
                manager.pump()
                self.error = None
            except Exception as err:  # keep scheduling; the UI shows the last error
                self.error = f"{type(err).__name__}: {err}"
            self._stop_event.wait(self.interval_s)
        manager.shutdown()

    def stop(self) -> None:
        self._stop_event.set()


class _EventWriter:
    """Buffers events and flushes them in one transaction at most every FLUSH_INTERVAL_S; checks cancel; keeps the
    run's heartbeat fresh (each flush with events writes it; without events, at most every HEARTBEAT_INTERVAL_S)."""

    def __init__(self, store: RunStore, run_id: str):
        self.store, self.run_id = store, run_id
        self.buffer: list = []
        self.next_flush = 0.0  # the first event is written at once: a fresh run shows its first point quickly
        self.next_heartbeat = 0.0
        self.cancelled = False

    def __call__(self, event: Any) -> None:
        self.buffer.append(event)
        if time.monotonic() >= self.next_flush:
            self.flush()

    def flush(self) -> None:
        now = time.monotonic()
        self.next_flush = now + FLUSH_INTERVAL_S
        if self.buffer:
            self.store.append_events(self.run_id, self.buffer)  # writes the heartbeat too
            self.buffer = []
            self.next_heartbeat = now + HEARTBEAT_INTERVAL_S
        elif now >= self.next_heartbeat:
            self.store.heartbeat(self.run_id)
            self.next_heartbeat = now + HEARTBEAT_INTERVAL_S
        self.cancelled = self.cancelled or self.store.cancel_requested(self.run_id)

    def should_stop(self) -> bool:
        if time.monotonic() >= self.next_flush:
            self.flush()
        return self.cancelled


def execute_run(store: RunStore, run_id: str, *, on_event: Callable[[Any], None] | None = None,
                should_stop: Callable[[], bool] | None = None) -> RunResult | None:
    """Train a stored run in this process, streaming events and checkpoints into the store.

    Used by worker processes and by the CLI's ``train``. ``on_event`` / ``should_stop`` add a progress display
    and a local stop request (Ctrl-C) to the store's own. Returns the result, or None when the run failed —
    the failure is recorded in the store with its reason, and everything flushed before it is kept.
    """
    from cartpole_core.agent import save_checkpoint
    from cartpole_core.configs import config_from_json
    from cartpole_core.training import train

    run = store.get_run(run_id)
    writer = _EventWriter(store, run_id)
    run_dir = store.run_dir(run_id)

    def on_checkpoint(agent: Any, kind: str, env_steps: int) -> None:
        name = f"step-{env_steps:09d}.pt" if kind == "periodic" else f"{kind}.pt"
        path = save_checkpoint(agent, run_dir / name, env_steps=env_steps, kind=kind)
        store.add_artifact(run_id, kind, env_steps, path)

    def sink(event: Any) -> None:
        writer(event)
        if on_event:
            on_event(event)

    def stop() -> bool:
        return writer.should_stop() or bool(should_stop and should_stop())

    try:
        config = config_from_json(run["config_json"])
        store.mark_running(run_id, os.getpid())
        _, result = train(config, seed=run["seed"], on_event=sink, should_stop=stop, on_checkpoint=on_checkpoint,
                          checkpoint_every_steps=max(1, config.total_env_steps // CHECKPOINTS_PER_RUN))
        writer.flush()
        store.finish_run(run_id, result, "cancelled" if result.status == "stopped" else "completed")
        return result
    except Exception as err:  # report, don't lose: the data flushed so far stays
        try:
            writer.flush()
        finally:
            # FloatingPointError carries "diverged at step N"; anything else: its last line.
            reason = str(err) if isinstance(err, FloatingPointError) else \
                traceback.format_exception_only(type(err), err)[-1].strip()
            store.set_status(run_id, "failed", reason)
        return None
