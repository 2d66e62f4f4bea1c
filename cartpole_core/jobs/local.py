"""The local executor: worker processes on this machine, cancel enforcement, crash detection.

The queue *is* the store: ``submit`` writes runs with status ``queued``; a ``JobManager`` (held by whichever lab
process is up — the dashboard or the CLI) starts queued runs in worker processes, at most ``max_workers`` at
once, and notices workers that die. Workers are fresh interpreters running the importable module
``cartpole_core.jobs.worker`` — not ``fork`` (the parent may hold torch threads and a Streamlit server), and not
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
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cartpole_core.config.models import TrainConfig
from cartpole_core.jobs.queue import cancel_run, submit
from cartpole_core.runs.store import ACTIVE_STATUSES, RunStore

CANCEL_GRACE_S = 1.5


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
        return subprocess.Popen([sys.executable, "-m", "cartpole_core.jobs.worker", str(self.home)],
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


