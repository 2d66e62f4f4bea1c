"""A worker process of the local executor: ``python -m cartpole_core.jobs.worker HOME``, then run ids on standard
input, a line at a time: one run, or several separated by spaces — a population, trained together in this process
(``execution.execute_stored_runs``). It trains them into the store, then says so on standard output (``DONE`` and
the run id, a line per run) and waits for the next line; end of input means "not needed": it exits.

Everything slow to import (torch, Gymnasium, the algorithms: seconds of CPU, often longer than a `fast` run trains)
is imported before the first run id is read and once per process, so a worker started in advance (``LocalExecutor``
keeps one warm) begins training the moment it is given a run, and a worker that finished a run takes the next
without a new interpreter. A run that raises ends the process (exit code 1): the executor marks the run failed.
"""

import sys
from pathlib import Path

import torch._dynamo  # noqa: F401  (the first optimizer imports it: seconds)

import cartpole_core.engine.algos  # noqa: F401
from cartpole_core.engine.process import prepare_training_process
from cartpole_core.jobs.execution import execute_stored_runs
from cartpole_core.runs.store import RunStore

DONE = "cartpole-lab-worker done"  # the line after each run, with its id (LocalExecutor reads it)


def main() -> int:
    prepare_training_process()
    store = None
    for line in sys.stdin:
        run_ids = line.split()
        if not run_ids:
            break
        store = store or RunStore(Path(sys.argv[1]), recover=False)
        execute_stored_runs(store, run_ids)
        print("".join(f"{DONE} {run_id}\n" for run_id in run_ids), end="", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
