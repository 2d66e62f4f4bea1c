"""How long the store commands take as whole processes — what a user waits for after pressing Enter.

    python bench/cli_latency.py [--repeats 7] [--markdown]

`runs cancel` writes one flag and `runs list` reads one table; neither needs torch, Gymnasium or scikit-learn,
which cost seconds to import (target: `runs cancel` ≤ 1 s). Each command runs as a fresh interpreter against a
data home holding 8 queued runs, interleaved with a reference process (`python -c "import torch"`, what every
command used to pay) so the machine's drift shows in both columns alike; the table gives min / median / max.
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if not __package__:  # run as ``python bench/cli_latency.py``: make the repo root importable
    sys.path.insert(0, str(ROOT))

from cartpole_core.config.presets import preset_config  # noqa: E402
from cartpole_core.jobs.queue import submit  # noqa: E402 (after the path fix above)
from cartpole_core.runs.store import RunStore  # noqa: E402


def timed(argv: list[str]) -> float:
    start = time.perf_counter()
    subprocess.run(argv, cwd=ROOT, check=True, capture_output=True)
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--markdown", action="store_true")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        home = Path(folder)
        _, run_ids = submit(RunStore(home), preset_config("qlearning", "fast"), list(range(8)), preset="fast")
        lab = [sys.executable, "-m", "cartpole_core"]
        commands = {"runs cancel RUN": lambda i: lab + ["runs", "cancel", run_ids[i % len(run_ids)], "--home", folder],
                    "runs list": lambda i: lab + ["runs", "list", "--home", folder],
                    "reference: import torch": lambda i: [sys.executable, "-c", "import torch"]}
        times: dict[str, list[float]] = {name: [] for name in commands}
        for repeat in range(args.repeats):  # interleaved: drift affects every command alike
            for name, argv in commands.items():
                times[name].append(timed(argv(repeat)))
    rows = [(name, min(t), statistics.median(t), max(t)) for name, t in times.items()]
    if args.markdown:
        print("| command (whole process) | min s | median s | max s |\n|---|---|---|---|")
        for name, low, mid, high in rows:
            print(f"| `{name}` | {low:.2f} | {mid:.2f} | {high:.2f} |")
    else:
        for name, low, mid, high in rows:
            print(f"{name:28} min {low:6.2f} s   median {mid:6.2f} s   max {high:6.2f} s")


if __name__ == "__main__":
    main()
