"""The Ray executor: each run trains as one task on a Ray cluster; the lab process is the Ray driver and writes
everything the task sends back into the local store (``lab.sqlite`` and ``runs/``) — no file written on a node is
ever read.

A run is one generator task (one CPU, no automatic retries: a retried run would send its events twice). On the node
it trains through ``execution.execute_run`` into a ``StreamSink``, which turns each sink call into a numbered message
(``seq, method, args``): event batches a few times a second (``SinkWriter``'s flushes), heartbeats, checkpoints as
bytes, the outcome. The task yields the messages as they come; the driver's ``poll`` takes what has arrived, without
waiting, and applies each message once to the run's ``StoreSink`` — a message whose number it has applied already
is skipped, so nothing is counted twice.

The code reaches the nodes through Ray's runtime environment (``py_modules``: this ``cartpole_core`` package), so a
node needs Ray, Python and the pinned packages of the driver, not a checkout. The driver connects with
``ray.init(address=HOST:PORT)`` — it runs on a node of the cluster (the head, or a machine that joined it with
``ray start --address``); Ray Client (``ray://``) is not used.

Cancel is cooperative first: the driver marks the run on a small actor beside it (``CancelBoard``), which the run
asks at each flush, and the run stops at its next update (data kept, ``cancelled``); after ``CANCEL_GRACE_S`` the
task is cancelled by force. A task whose worker or node dies, or that Ray kills for memory, ends ``failed`` with
that reason; what it sent before stays.

Import-light: Ray is imported on first connection, never by ``import cartpole_core.jobs.ray_executor`` alone.
"""

from __future__ import annotations

import os
import queue
import re
import socket
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

from cartpole_core.jobs.executor import CANCEL_GRACE_S, Executor
from cartpole_core.jobs.sink import RunSink, StoreSink
from cartpole_core.records import Event, RunResult
from cartpole_core.runs.store import ACTIVE_STATUSES, RunStore

CAPACITY_REFRESH_S = 1.0  # how old the cluster's free CPUs (as Ray reports them) may be
CONNECT_TIMEOUT_S = 5.0
PACKAGE_DIR = Path(__file__).resolve().parent.parent  # cartpole_core, shipped to the nodes
SINK_METHODS = ("started", "append_events", "heartbeat", "add_checkpoint", "finished", "failed")
START_HINT = "start one with `ray start --head --port PORT`, or join this machine to it with `ray start --address " \
             "HEAD:PORT`"

Message = tuple[int, str, tuple]  # (sequence number from 1, a RunSink method, its arguments)


class RayConnectError(RuntimeError):
    """The Ray cluster cannot be used (unreachable, not a Ray cluster, Ray missing): one line naming the address."""


def check_address(address: str) -> tuple[str, int]:
    """``HOST:PORT`` of a cluster's head (its GCS, ``ray start --head --port``), as (host, port); ValueError naming
    what is allowed otherwise."""
    text = address.strip()
    if text.startswith("ray://"):
        raise ValueError(f"Ray Client addresses (ray://) are not used: give the head's HOST:PORT instead of "
                         f"{text!r:.80}, and run the lab on a node of the cluster")
    match = re.fullmatch(r"\[?([A-Za-z0-9.\-:]+?)\]?:([0-9]{1,5})", text)
    if not match or not 1 <= int(match[2]) <= 65535:
        raise ValueError(f"a Ray address must be HOST:PORT (the head's `ray start --head --port`), e.g. "
                         f"127.0.0.1:6379; got {text!r:.80}")
    return match[1], int(match[2])


def _ray() -> Any:
    try:
        import ray
    except ImportError:
        raise RayConnectError("Ray is not installed; install the lab's pinned Ray with `pip install -r "
                              "requirements-ray.txt`") from None
    return ray


def connect(address: str) -> int:
    """Make this process a driver of the Ray cluster at ``address`` (once per process; again: nothing to do) and
    return the cluster's CPUs. RayConnectError, one line naming the address, when it cannot be reached or used."""
    host, port = check_address(address)
    ray = _ray()
    try:
        socket.create_connection((host, port), timeout=CONNECT_TIMEOUT_S).close()
    except OSError as err:
        reason = err.strerror or type(err).__name__
        raise RayConnectError(f"cannot reach the Ray cluster at {address}: {reason}; {START_HINT}") from None
    if ray.is_initialized():
        connected = ray.get_runtime_context().gcs_address
        if _same_address(connected, host, port):
            return cluster_cpus()
        raise RayConnectError(f"this process is already a driver of the Ray cluster at {connected}; it cannot also "
                              f"use the one at {address}")
    import logging

    try:
        ray.init(address=f"{host}:{port}", namespace="cartpole-lab", log_to_driver=False,
                 logging_level=logging.WARNING,
                 runtime_env={"py_modules": [str(PACKAGE_DIR)], "excludes": ["__pycache__", "*.pyc"]})
    except Exception as err:  # e.g. not a Ray head there, another Ray version, no Ray node on this machine
        ray.shutdown()
        detail = " ".join(str(err).split())[:300] or type(err).__name__
        raise RayConnectError(f"cannot use the Ray cluster at {address}: {detail}; the lab must run on one of its "
                              f"nodes with the same Ray and Python versions ({START_HINT})") from None
    return cluster_cpus()


def cluster_cpus() -> int:
    """The CPUs of the cluster this process drives, as Ray reports them."""
    return int(_ray().cluster_resources().get("CPU", 0))


def _same_address(connected: str, host: str, port: int) -> bool:
    connected_host, _, connected_port = connected.rpartition(":")
    if connected_port != str(port):
        return False
    local = {"localhost", "127.0.0.1", "::1"}
    return connected_host == host or (host in local and _resolves_to_this_machine(connected_host))


def _resolves_to_this_machine(host: str) -> bool:
    try:
        socket.create_server((host, 0)).close()  # only an address of this machine can be bound
    except OSError:
        return False
    return True


# ------------------------------------------------------------------------------------------------ on the node


class StreamSink(RunSink):
    """A run's side on a node: every sink call becomes the next numbered message for ``send``; the cancel question
    goes to ``ask_cancel``."""

    def __init__(self, send: Callable[[Message], None], ask_cancel: Callable[[], bool]):
        self._send, self._ask_cancel = send, ask_cancel
        self._seq = 0

    def _message(self, method: str, *args: Any) -> None:
        self._seq += 1
        self._send((self._seq, method, args))

    def started(self) -> None:
        self._message("started")

    def append_events(self, events: Sequence[Event]) -> None:
        self._message("append_events", list(events))

    def heartbeat(self) -> None:
        self._message("heartbeat")

    def add_checkpoint(self, kind: str, env_steps: int, data: bytes) -> None:
        self._message("add_checkpoint", kind, env_steps, bytes(data))

    def finished(self, result: RunResult) -> None:
        self._message("finished", result)

    def failed(self, reason: str) -> None:
        self._message("failed", reason)

    def cancel_requested(self) -> bool:
        return self._ask_cancel()


def train_on_node(run_id: str, config_json: str, seed: int, board: Any) -> Iterator[Message]:
    """The Ray task of one run: trains it in a thread of this worker and yields its messages as they come."""
    from cartpole_core.engine.process import prepare_training_process
    from cartpole_core.jobs.execution import execute_run

    ray = _ray()
    prepare_training_process()  # one CPU per task, as the local workers
    messages: queue.Queue[Message | None] = queue.Queue()

    def ask_cancel() -> bool:
        try:
            return ray.get(board.requested.remote(run_id), timeout=CONNECT_TIMEOUT_S)
        except ray.exceptions.RayError:  # the board is unreachable: a cancel still comes by force
            return False

    def train() -> None:
        try:
            execute_run(StreamSink(messages.put, ask_cancel), config_json, seed)
        finally:
            messages.put(None)

    threading.Thread(target=train, name=f"train-{run_id}", daemon=True).start()
    while (message := messages.get()) is not None:
        yield message


class CancelBoard:
    """The runs whose cancel the driver requested: a Ray actor on the driver's node that the runs ask."""

    def __init__(self) -> None:
        self._requested: set[str] = set()

    def request(self, run_id: str) -> None:
        self._requested.add(run_id)

    def requested(self, run_id: str) -> bool:
        return run_id in self._requested

    def forget(self, run_id: str) -> None:
        self._requested.discard(run_id)


# ------------------------------------------------------------------------------------------------ the driver


def failure_reason(err: Exception) -> str:
    """Why a task ended without an outcome, in words (Ray's message follows, cut to one line)."""
    exceptions = _ray().exceptions
    detail = " ".join(str(err).split())[:300]
    if isinstance(err, exceptions.OutOfMemoryError):
        return f"Ray killed the task for memory (its node ran low): {detail}"
    if isinstance(err, exceptions.NodeDiedError):
        return f"the Ray node running this run died: {detail}"
    if isinstance(err, exceptions.WorkerCrashedError):
        return f"the Ray worker process running this run died (killed, or its node went away): {detail}"
    if isinstance(err, exceptions.TaskCancelledError):
        return "the Ray task was cancelled outside the lab"
    if isinstance(err, exceptions.RayTaskError):  # raised on the node before the run began (e.g. a missing package)
        cause = err.cause
        return (f"the Ray task failed on its node: {type(cause).__name__}: {' '.join(str(cause).split())[:300]} (a "
                f"node needs the driver's Python and pinned packages: requirements.txt, requirements-ray.txt)")
    return f"the Ray task failed ({type(err).__name__}): {detail}"


class StreamedRun:
    """The driver's side of one run on the cluster: its task's stream (a ``ray.ObjectRefGenerator``), the sink its
    messages are written to, and the number of the last message written — a message not past it is skipped, so
    a batch delivered twice is counted once."""

    def __init__(self, sink: RunSink, stream: Any = None):
        self.sink, self.stream = sink, stream
        self.applied = 0
        self.cancel_deadline: float | None = None  # set once a cancel is being enforced

    @property
    def started(self) -> bool:
        """Has the task begun (sent anything)? Until then it waits for a CPU, or for its worker to start."""
        return self.applied > 0

    def apply(self, message: Message) -> None:
        """Write one message into the sink, unless it was written already."""
        seq, method, args = message
        if seq <= self.applied:
            return
        if method not in SINK_METHODS:
            raise ValueError(f"unknown message {method!r} from a Ray task; expected one of {', '.join(SINK_METHODS)}")
        getattr(self.sink, method)(*args)
        self.applied = seq


class RayExecutor(Executor):
    """Trains each run as one task on the Ray cluster at ``address`` (``HOST:PORT`` of its head), at most as many
    at once as the cluster has free CPUs. RayConnectError, before anything is started, when the cluster cannot be
    used. ``sink_for(run_id)`` is where a run's messages go (default: the store's ``StoreSink``)."""

    def __init__(self, store: RunStore, address: str, sink_for: Callable[[str], RunSink] | None = None):
        connect(address)
        ray = _ray()
        from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

        self.store, self.address = store, address
        self.sink_for = sink_for or (lambda run_id: StoreSink(store, run_id))
        here = NodeAffinitySchedulingStrategy(ray.get_runtime_context().get_node_id(), soft=False)
        # Beside the driver: a node that dies takes its runs, never the board the other runs ask.
        self._board = ray.remote(num_cpus=0, scheduling_strategy=here)(CancelBoard).remote()
        self._task = ray.remote(num_cpus=1, max_retries=0, retry_exceptions=False,
                                num_returns="streaming")(train_on_node)
        self._runs: dict[str, StreamedRun] = {}
        self.cluster_cpus = 0
        self._free_cpus = 0
        self._refreshed_at = -CAPACITY_REFRESH_S
        self._refresh()

    def submit(self, run_id: str) -> None:
        run = self.store.get_run(run_id)
        stream = self._task.remote(run_id, run["config_json"], run["seed"], self._board)
        self.store.mark_running(run_id, os.getpid())  # this process answers for the run: if it dies, so does the run
        self._runs[run_id] = StreamedRun(self.sink_for(run_id), stream)

    def poll(self) -> None:
        now = time.monotonic()
        for run_id, remote in list(self._runs.items()):
            if self._receive(run_id, remote):
                continue
            if remote.cancel_deadline is not None and now > remote.cancel_deadline:
                _ray().cancel(remote.stream, force=True)  # the cooperative stop did not happen in time
                remote.cancel_deadline = float("inf")

    def _receive(self, run_id: str, remote: StreamedRun) -> bool:
        """Write every message that has arrived for the run, without waiting; True once its stream has ended (the
        run is reaped)."""
        ray = _ray()
        while ray.wait([remote.stream], timeout=0, fetch_local=False)[0]:
            try:
                message = ray.get(next(remote.stream))
            except StopIteration:
                self._reap(run_id, "the Ray task ended without reporting how the run ended")
                return True
            except ray.exceptions.RayError as err:
                self._reap(run_id, failure_reason(err))
                return True
            remote.apply(message)
        return False

    def _reap(self, run_id: str, reason: str) -> None:
        remote = self._runs.pop(run_id)
        self._board.forget.remote(run_id)
        run = self.store.get_run(run_id)
        if run and run["status"] in ACTIVE_STATUSES:  # no outcome arrived: the task died, or was cancelled by force
            if remote.cancel_deadline is not None:
                self.store.set_status(run_id, "cancelled")
            else:
                self.store.set_status(run_id, "failed", reason)

    def cancel(self, run_id: str) -> None:
        remote = self._runs.get(run_id)
        if remote is not None and remote.cancel_deadline is None:
            self._board.request.remote(run_id)
            remote.cancel_deadline = time.monotonic() + CANCEL_GRACE_S

    def capacity(self) -> int:
        if time.monotonic() >= self._refreshed_at + CAPACITY_REFRESH_S:
            self._refresh()
        waiting = sum(1 for remote in self._runs.values() if not remote.started)  # submitted, not yet begun
        return max(0, self._free_cpus - waiting)

    def _refresh(self) -> None:
        ray = _ray()
        self._free_cpus = int(ray.available_resources().get("CPU", 0))
        self.cluster_cpus = cluster_cpus()
        self._refreshed_at = time.monotonic()

    @property
    def active(self) -> list[str]:
        return list(self._runs)

    def shutdown(self) -> None:
        """Stop the cancel board while no run needs it. The connection stays: Ray allows one per process, and
        runs still training end with it (their owner) when this process exits."""
        if not self._runs:
            _ray().kill(self._board)
