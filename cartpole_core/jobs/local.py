"""The local executor: runs train in worker processes on this machine, one run or one population per worker.

Workers are fresh interpreters running the importable module ``cartpole_core.jobs.worker`` — not ``fork`` (the
parent may hold torch threads and a Streamlit server), and not multiprocessing's ``spawn``, which re-imports the
parent's ``__main__`` (under Streamlit: the app script) in every child. Each sets ``torch.set_num_threads(1)`` so
N workers use N cores, and writes its runs into the store itself (``execution.execute_stored_runs``). A worker
trains one run, or several as one population (``submit_population``: one process, one core, batched). A worker that
finished says so on its standard output, a line per run, and stays, idle, for the next: a study's or a group's runs
pay the interpreter's start and torch's import once per worker, not once per run.

Cancel is cooperative first (the run sees the request at its next flush and stops at its next update, data kept,
status ``cancelled``) and forceful second (terminate after ``CANCEL_GRACE_S``) — for a population only once every
run still in it is past its grace, so a member's cancel never kills the others. A worker that dies leaves its runs
``failed`` with the signal or exit code, at the next ``poll``.
"""

from __future__ import annotations

import contextlib
import os
import queue
import signal
import subprocess
import sys
import threading
import time

from cartpole_core.jobs.executor import CANCEL_GRACE_S, Executor
from cartpole_core.runs.store import ACTIVE_STATUSES, RunStore


def _exit_reason(exitcode: int | None) -> str:
    if exitcode is None:
        return "the worker process disappeared"
    if exitcode < 0:
        name = signal.Signals(-exitcode).name
        hint = " — possibly out of memory" if name == "SIGKILL" else ""
        return f"the worker process was killed by {name}{hint}"
    return f"the worker process exited with code {exitcode}"


DONE = "cartpole-lab-worker done"  # jobs.worker's line after each run (not imported: it imports torch)


class LocalExecutor(Executor):
    """Trains each run in its own worker process, at most ``max_workers`` at once (default: one per core).

    With ``warm=True`` one idle worker is kept ready with torch, Gymnasium and the algorithms already imported
    (a fresh interpreter needs seconds for that), so a launched run starts training at once.
    """

    def __init__(self, store: RunStore, max_workers: int | None = None, warm: bool = False):
        self.store = store
        self.max_workers = max_workers or os.cpu_count() or 1
        self.warm = warm
        self._workers: dict[str, subprocess.Popen] = {}
        self._cancel_deadline: dict[str, float] = {}
        self._standby: subprocess.Popen | None = None  # the warm idle worker
        self._idle: list[subprocess.Popen] = []  # workers that finished a run, waiting for the next
        self._finished: queue.SimpleQueue[str] = queue.SimpleQueue()  # run ids the workers said they finished

    batches = True

    def submit(self, run_id: str) -> None:
        self.submit_population([run_id])

    def submit_population(self, run_ids: list[str]) -> None:
        """Train these claimed runs together in one worker (one core): their shapes must agree
        (``config.population.population_key``), or every one of them fails with the reason."""
        line = " ".join(run_ids) + "\n"
        process = self._take_idle() or self._spawn_worker()
        try:
            self._hand_over(process, run_ids, line)
        except OSError:  # it died idle: a fresh one
            self._hand_over(self._spawn_worker(), run_ids, line)

    def _hand_over(self, process: subprocess.Popen, run_ids: list[str], line: str) -> None:
        """The runs are the worker's from now on: recorded first, then sent, so the worker's own outcome is always the
        later write (the store keeps a run that ended as it ended either way)."""
        for run_id in run_ids:
            self.store.mark_running(run_id, process.pid)
            self._workers[run_id] = process
        process.stdin.write(line)
        process.stdin.flush()

    def _take_idle(self) -> subprocess.Popen | None:
        while self._idle:
            process = self._idle.pop()
            if process.poll() is None:
                return process
        process = self._standby if self._standby is not None and self._standby.poll() is None else None
        self._standby = None
        return process

    def poll(self) -> None:
        finished = set()
        while not self._finished.empty():
            finished.add(self._finished.get())
        now = time.monotonic()
        for run_id, process in list(self._workers.items()):
            if process.poll() is None:
                if run_id in finished:  # it wrote its outcome (a cancelled one too, in time)
                    del self._workers[run_id]
                    self._cancel_deadline.pop(run_id, None)
                    if process not in self._workers.values():
                        self._idle.append(process)  # all its runs done: it waits for the next
                elif self._overdue(process, now):
                    process.terminate()  # the cooperative stop did not happen in time: forceful
                continue
            run = self.store.get_run(run_id)
            if run and run["status"] in ACTIVE_STATUSES:
                if run_id in self._cancel_deadline:
                    self.store.set_status(run_id, "cancelled")
                else:
                    self.store.set_status(run_id, "failed", _exit_reason(process.returncode))
            del self._workers[run_id]
            self._cancel_deadline.pop(run_id, None)
        # Warm the next worker only while nothing trains: its imports take a core for seconds, which would slow
        # the runs being watched; the launch that matters most for latency is the one from an idle lab.
        if (self.warm and not self._workers and not self._idle and not self.store.readonly
                and (self._standby is None or self._standby.poll() is not None)):
            self._standby = self._spawn_worker()

    def _overdue(self, process: subprocess.Popen, now: float) -> bool:
        """Every run the worker still trains was asked to cancel, and the grace of each has passed."""
        deadlines = [self._cancel_deadline.get(run_id) for run_id, owner in self._workers.items() if owner is process]
        return all(deadline is not None and now > deadline for deadline in deadlines)

    def cancel(self, run_id: str) -> None:
        if run_id in self._workers:
            self._cancel_deadline.setdefault(run_id, time.monotonic() + CANCEL_GRACE_S)

    def capacity(self) -> int:
        """Workers free to take a run or a population."""
        return max(0, self.max_workers - len({id(process) for process in self._workers.values()}))

    @property
    def active(self) -> list[str]:
        return list(self._workers)

    def shutdown(self) -> None:
        """Stop the idle and warm workers (running workers are left to finish; daemonic ones end with this
        process)."""
        idle = [*self._idle, *([self._standby] if self._standby is not None else [])]
        self._idle, self._standby = [], None
        for process in idle:
            with contextlib.suppress(OSError):  # end of input: the idle worker exits (once its imports are done)
                process.stdin.close()
        for process in idle:
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:  # still importing torch on a loaded machine: it holds no run
                process.kill()
                process.wait()

    def _spawn_worker(self) -> subprocess.Popen:
        # A fresh interpreter running an importable module. (multiprocessing's spawn would also re-import the
        # parent's __main__ — under Streamlit, the app script itself — in every worker.)
        # Its own session: a Ctrl-C meant for the lab process (a terminal's `study run`, `make run`) does not kill
        # the run mid-write with a traceback; the lab cancels its runs through the store instead.
        process = subprocess.Popen([sys.executable, "-m", "cartpole_core.jobs.worker", str(self.store.home)],
                                   stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, start_new_session=True)
        threading.Thread(target=self._listen, args=(process,), name="cartpole-lab-worker-output", daemon=True).start()
        return process

    def _listen(self, process: subprocess.Popen) -> None:
        """The worker's standard output: its "done" lines go to ``poll``; anything else a library prints passes
        through to this process's."""
        prefix = DONE + " "
        for line in process.stdout:
            if line.startswith(prefix):
                self._finished.put(line[len(prefix):].strip())
            else:
                sys.stdout.write(line)
