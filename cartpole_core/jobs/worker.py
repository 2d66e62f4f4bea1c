"""A worker process of the local executor: ``python -m cartpole_core.jobs.worker HOME``, then the run id on
standard input. It trains the run into the store (``execution.execute_stored_run``) and exits.

Everything slow to import (torch, Gymnasium, the algorithms) is imported before the run id is read, so a
worker started in advance (``LocalExecutor`` keeps one warm) begins training the moment it is given a run.
End of input without a run id means "not needed": the worker exits.
"""

import sys
from pathlib import Path

import torch
import torch._dynamo  # noqa: F401  (the first optimizer imports it: seconds)

import cartpole_core.engine.algos  # noqa: F401
from cartpole_core.jobs.execution import execute_stored_run
from cartpole_core.runs.store import RunStore


def main() -> int:
    torch.set_num_threads(1)
    home = Path(sys.argv[1])
    run_id = sys.stdin.readline().strip()
    if not run_id:
        return 0
    execute_stored_run(RunStore(home, recover=False), run_id)
    return 0


if __name__ == "__main__":
    sys.exit(main())
