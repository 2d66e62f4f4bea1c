"""What watching a run costs, in steady state: CPU of the browser and the server, and the run's speed.

    python bench/live_cost.py [--rounds 3] [--window 15] [--reference /path/to/other/checkout] [--markdown]

One long PPO `fast` run trains (5 M steps, stopped at the end) while Chromium alternates between a blank tab
("no page") and the run's live view, one window each per round. For every window it measures the CPU seconds
used by all Chromium processes and by the Streamlit server(s), per second of wall time (cores), and the run's
env steps per training second over the window. With ``--reference``, a second server runs that checkout's app
on the same data home and its live view gets a window in every round too (an A/B of two versions on the same
run, minutes apart rather than hours).

The live view's curve grows during the run (~20 episodes a second), so later rounds draw longer curves.
Needs the dev requirements (playwright) and Chromium at /usr/bin/chromium.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from cartpole_core.config.presets import preset_config  # noqa: E402
from cartpole_core.jobs.queue import cancel_run, submit  # noqa: E402
from cartpole_core.runs.store import RunStore  # noqa: E402
from tests.browser_support import CHROMIUM, CHROMIUM_ARGS, streamlit_process  # noqa: E402

SETTLE_S = 6  # after opening a page: its first draw and the clip are not the steady state


def cpu_seconds(pids: list[int]) -> float:
    """User + system CPU time of these processes (those that have exited count nothing)."""
    total = 0
    for pid in pids:
        with contextlib.suppress(OSError):
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
            total += int(fields[11]) + int(fields[12])
    return total / os.sysconf("SC_CLK_TCK")


def processes(name_part: str) -> list[int]:
    listing = subprocess.run(["ps", "-e", "-o", "pid=,comm="], capture_output=True, text=True).stdout
    return [int(line.split()[0]) for line in listing.splitlines() if name_part in line]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3, help="windows of each kind")
    parser.add_argument("--window", type=float, default=15.0, help="seconds measured per window")
    parser.add_argument("--reference", type=Path, help="another checkout of the app to compare (run with this "
                                                       "Python and its packages)")
    parser.add_argument("--markdown", action="store_true", help="print the table as Markdown")
    args = parser.parse_args()
    from playwright.sync_api import sync_playwright

    rows: list[tuple[str, float, float, float]] = []
    with contextlib.ExitStack() as stack:
        home = Path(stack.enter_context(tempfile.TemporaryDirectory()))
        urls, servers = {}, []
        for kind, root in [("live view", ROOT), ("live view (reference)", args.reference)]:
            if root:
                url, process = stack.enter_context(streamlit_process(home, root=root))
                urls[kind] = url
                servers.append(process.pid)
        store = RunStore(home)
        config = preset_config("ppo", "fast", total_env_steps=5_000_000, stop_on_solve=False)
        _, (run_id,) = submit(store, config, [0], preset="fast")
        browser = stack.enter_context(sync_playwright()).chromium.launch(executable_path=CHROMIUM,
                                                                         args=CHROMIUM_ARGS)
        page = browser.new_page(viewport={"width": 1400, "height": 1000})
        try:
            for url in urls.values():  # load each app once (its first page load is not what we measure)
                page.goto(f"{url}/live?run={run_id}")
                page.wait_for_timeout(SETTLE_S * 1000)
            for round_ in range(args.rounds):
                for kind in ["no page", *urls]:
                    page.goto("about:blank" if kind == "no page" else f"{urls[kind]}/live?run={run_id}")
                    time.sleep(SETTLE_S)
                    chromium = processes("chrom")
                    before, browser_cpu, server_cpu = store.get_run(run_id), cpu_seconds(chromium), \
                        cpu_seconds(servers)
                    started = time.monotonic()
                    time.sleep(args.window)
                    after, elapsed = store.get_run(run_id), time.monotonic() - started
                    if after["status"] != "running":
                        raise SystemExit(f"the run ended early ({after['status']}): {after['error']}")
                    rate = (after["env_steps"] - before["env_steps"]) / (after["train_seconds"]
                                                                         - before["train_seconds"])
                    rows.append((kind, (cpu_seconds(chromium) - browser_cpu) / elapsed,
                                 (cpu_seconds(servers) - server_cpu) / elapsed, rate))
                    print(f"# round {round_ + 1}, {kind}: browser {rows[-1][1]:.3f} cores, servers "
                          f"{rows[-1][2]:.3f} cores, {rate:,.0f} steps/s", file=sys.stderr)
        finally:
            cancel_run(store, run_id)
            browser.close()

    kinds = ["no page", *urls]
    base = statistics.median(rate for kind, _, _, rate in rows if kind == "no page")
    header = ("page", "browser CPU (cores)", "server CPU (cores)", "median steps/s", "vs no page")
    table = []
    for kind in kinds:
        mine = [row for row in rows if row[0] == kind]
        rate = statistics.median(row[3] for row in mine)
        table.append((kind, f"{statistics.mean(row[1] for row in mine):.3f}",
                      f"{statistics.mean(row[2] for row in mine):.3f}", f"{rate:,.0f}", f"{rate / base:.3f}"))
    if args.markdown:
        print("| " + " | ".join(header) + " |")
        print("|---|" + "---:|" * (len(header) - 1))
        for row in table:
            print("| " + " | ".join(row) + " |")
    else:
        print(f"{header[0]:<24}" + "".join(f"{h:>22}" for h in header[1:]))
        for row in table:
            print(f"{row[0]:<24}" + "".join(f"{cell:>22}" for cell in row[1:]))
    print(f"\n{args.rounds} rounds of {args.window:.0f} s windows on one 5 M-step PPO `fast` run; CPU in cores "
          "(CPU seconds per second), means over rounds")


if __name__ == "__main__":
    main()
