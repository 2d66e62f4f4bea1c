"""Training speed with the live view open in a browser vs with no page open, interleaved on one server.

    python bench/live_page.py [--repeats 5] [--steps 100000] [--markdown]

Starts `streamlit run app.py` on a free localhost port with a fresh data home and drives Debian's Chromium
(Playwright, as tests/test_browser.py does) the way a user does: open Train with PPO `fast`, wait while the lab
warms a worker, click Launch, and either stay on the live view until the run ends ("watched") or leave it for a
blank tab ("no page"). The two alternate, so drift on a shared machine falls on both alike. Each rate is the run's
env steps over its training seconds, as stored by the lab. Target: watched ≥ 90 % of no page (issue 4).

Needs the dev requirements (playwright) and Chromium at /usr/bin/chromium; browser, server and training share
this machine's cores, as they would on a laptop.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from cartpole_core.runs.store import ACTIVE_STATUSES, RunStore  # noqa: E402
from tests.browser_support import CHROMIUM, CHROMIUM_ARGS, streamlit_server  # noqa: E402

WARM_UP_S = 12  # the lab warms its next worker while the user reads the form


def one_run(page, store: RunStore, url: str, steps: int, watched: bool) -> float:
    page.goto(f"{url}/?algo=ppo&preset=fast&cfg=" + json.dumps({"total_env_steps": steps}).replace(" ", ""))
    page.get_by_role("button", name="Launch training").wait_for(timeout=60_000)
    page.wait_for_timeout(WARM_UP_S * 1000)
    page.get_by_role("button", name="Launch training").click()
    page.wait_for_url("**/live?run=*", timeout=30_000)
    run_id = page.url.split("run=")[1].split("&")[0]
    if not watched:
        page.goto("about:blank")
    while store.get_run(run_id)["status"] in ACTIVE_STATUSES:
        time.sleep(0.5)
    run = store.get_run(run_id)
    if run["status"] != "completed":
        raise SystemExit(f"run {run_id} ended {run['status']}: {run['error']}")
    return run["env_steps"] / run["train_seconds"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5, help="runs of each kind")
    parser.add_argument("--steps", type=int, default=100_000, help="env steps per run")
    parser.add_argument("--markdown", action="store_true", help="print the table as Markdown")
    args = parser.parse_args()
    from playwright.sync_api import sync_playwright

    rates: dict[str, list[float]] = {"no page": [], "watched": []}
    with tempfile.TemporaryDirectory() as home, streamlit_server(Path(home)) as url, sync_playwright() as playwright:
        store = RunStore(Path(home))
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        page = browser.new_page(viewport={"width": 1400, "height": 1000})
        for repeat in range(args.repeats):
            for kind in rates:
                rates[kind].append(one_run(page, store, url, args.steps, watched=kind == "watched"))
                print(f"# {repeat + 1}/{args.repeats} {kind}: {rates[kind][-1]:,.0f} steps/s", file=sys.stderr)
        browser.close()

    base = statistics.mean(rates["no page"])
    rows = [(kind, statistics.mean(xs), statistics.median(xs), min(xs), max(xs), statistics.mean(xs) / base)
            for kind, xs in rates.items()]
    ratios = [w / n for w, n in zip(rates["watched"], rates["no page"])]
    header = ("live view", "mean steps/s", "median", "min", "max", "mean / no page")
    if args.markdown:
        print("| " + " | ".join(header) + " |")
        print("|---|" + "---:|" * (len(header) - 1))
        for name, mean, median, low, high, ratio in rows:
            print(f"| {name} | {mean:,.0f} | {median:,.0f} | {low:,.0f} | {high:,.0f} | {ratio:.3f} |")
    else:
        print(f"{header[0]:<10}" + "".join(f"{h:>16}" for h in header[1:]))
        for name, mean, median, low, high, ratio in rows:
            print(f"{name:<10}{mean:>16,.0f}{median:>16,.0f}{low:>16,.0f}{high:>16,.0f}{ratio:>16.3f}")
    print(f"\nwatched / the no-page run just before it, per pair: {', '.join(f'{r:.3f}' for r in ratios)} "
          f"(median {statistics.median(ratios):.3f}); {args.repeats} pairs of {args.steps:,}-step PPO `fast` runs")


if __name__ == "__main__":
    main()
