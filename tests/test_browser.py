"""End to end in a real browser: Debian's Chromium driven by Playwright against `streamlit run` on a free port.

A new user opens the app, launches PPO `fast`, watches the reward chart gain points, stops a second run and
compares two runs. Screenshots go to docs/img/ (shown in the README); the timings asked of the dashboard
(launch → first point, refresh rate) are printed for docs/BENCHMARKS.md, not asserted as hard limits.
"""

import json
import os
import shutil
import subprocess
import sys
import time
import urllib.parse
from pathlib import Path

import pytest
from browser_support import CHROMIUM, CHROMIUM_ARGS, ROOT, streamlit_server

from cartpole_core.runs.store import ACTIVE_STATUSES, RunStore

SCREENSHOTS = ROOT / "docs" / "img"
WARM_UP_S = 15

pytestmark = pytest.mark.skipif(not Path(CHROMIUM).exists() or shutil.which("chromium") is None,
                                reason="Debian's chromium is not installed (apt-get install chromium)")


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    home = tmp_path_factory.mktemp("lab-home")
    with streamlit_server(home) as url:
        yield url, home


@pytest.fixture(scope="module")
def chromium_browser():
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield chromium
        chromium.close()


LIVE_CHART = "document.querySelector('.live-plotly.js-plotly-plot')"  # component.live_chart, redrawn in place


def reward_points(page) -> int:
    """Points in the live chart's raw-return (or group mean) trace, read from the figure drawn in the page."""
    return page.evaluate(f"""() => {{
        const plot = {LIVE_CHART};
        if (!plot || !plot.data) return 0;
        const raw = plot.data.find(t => t.name === 'return' || (t.name || '').endsWith('mean'));
        return raw && raw.x ? raw.x.length : 0;
    }}""")


def video_times(page, samples: int = 6, every_ms: int = 500) -> list[float]:
    """The first video's currentTime sampled every ``every_ms`` (after it is ready to play)."""
    page.wait_for_function("() => document.querySelector('video')?.readyState >= 2", timeout=30_000)
    times = []
    for _ in range(samples):
        times.append(page.evaluate("() => document.querySelector('video').currentTime"))
        page.wait_for_timeout(every_ms)
    return times


def wait_for_a_point(page, clicked: float) -> float:
    """Seconds from the launch click to the live chart's first point (asserted to come within a minute)."""
    while reward_points(page) == 0 and time.monotonic() - clicked < 60:
        page.wait_for_timeout(50)
    assert reward_points(page) > 0, "the reward chart never got a point"
    return time.monotonic() - clicked


def open_page(chromium_browser, url: str):
    page = chromium_browser.new_page(viewport={"width": 1400, "height": 1000})
    page.goto(url)
    page.get_by_text("Train an agent").wait_for(timeout=60_000)
    return page


def test_new_user_launches_ppo_and_watches_the_reward_curve_grow(server, chromium_browser):
    url, home = server
    page = open_page(chromium_browser, url)  # PPO with its `fast` preset is what a new user sees first
    page.get_by_text("separate 64-64 tanh actor and critic").wait_for()
    page.get_by_role("button", name="Launch training").wait_for()
    page.wait_for_function("() => document.querySelector('.js-plotly-plot')?.data")  # the schedule preview
    page.screenshot(path=str(SCREENSHOTS / "train.png"), full_page=True)
    # A user reads the form before launching; meanwhile the lab warms a worker (torch imported), which is what
    # makes a launch start training at once. The first launch within seconds of the server starting is slower.
    page.wait_for_timeout(WARM_UP_S * 1000)

    page.get_by_role("button", name="Launch training").click()
    clicked = time.monotonic()
    page.wait_for_url("**/live?run=*", timeout=30_000)
    first_point_s = wait_for_a_point(page, clicked)

    # PPO `fast` stops at its first confirmed solve, often within seconds: once it has, the chart holds every
    # episode it trained.
    store = RunStore(home)
    run = store.list_runs()[0]
    assert run["algo"] == "ppo" and run["preset"] == "fast"
    while store.get_run(run["id"])["status"] in ACTIVE_STATUSES:
        page.wait_for_timeout(200)
    episodes = len(store.episodes(run["id"]))
    deadline = time.monotonic() + 10
    while reward_points(page) < episodes and time.monotonic() < deadline:
        page.wait_for_timeout(100)
    assert reward_points(page) == episodes > 0, f"the finished run's chart has {reward_points(page)} of {episodes}"

    # Throughput with the live page open vs headless: the watched run is bracketed by two headless runs of the same
    # config and seed (the CLI, no page open), and compared with their mean, so drift on this shared machine
    # cancels out of the ratio. It trains the whole budget (no stop at the solve), long enough to watch it grow.
    steps = 100_000

    def headless_rate(seed: int, label: str) -> float:
        result = subprocess.run([sys.executable, "-m", "cartpole_core", "train", "--algo", "ppo", "--json",
                                 "--set", f"total_env_steps={steps}", "--set", "stop_on_solve=false",
                                 "--seed", str(seed)], cwd=ROOT, capture_output=True, text=True, timeout=300,
                                env={**os.environ, "CARTPOLE_LAB_HOME": str(home / f"headless-{label}")})
        return json.loads(result.stdout.splitlines()[-1])["env_steps_per_s"]

    before = headless_rate(run["seed"], "before")
    page.wait_for_timeout(WARM_UP_S * 1000)  # the lab warms its next worker while idle
    full_budget = json.dumps({"total_env_steps": steps, "stop_on_solve": False}).replace(" ", "")
    page.goto(f"{url}/?algo=ppo&preset=fast&cfg=" + full_budget)
    page.get_by_role("button", name="Launch training").click()
    clicked = time.monotonic()
    page.wait_for_url("**/live?run=*", timeout=30_000)
    watched_id = page.url.split("run=")[1].split("&")[0]
    # Every time any clip on the page reports playing, from now on (the first may appear while the user zooms).
    page.evaluate("() => { window.__clipTimes = []; document.addEventListener('timeupdate', "
                  "event => window.__clipTimes.push(event.target.currentTime), true); }")
    wait_for_a_point(page, clicked)
    # A user zooms into the curve while it trains: the refreshes that follow redraw in place and keep the zoom.
    page.evaluate(f"() => {{ const plot = {LIVE_CHART}; plot.__zoomed = true;"
                  "Plotly.relayout(plot, {'xaxis.range': [0, 5000]}); }")
    counts, refreshes = [reward_points(page)], 0
    for _ in range(40):  # watch for 4 s: the chart must keep gaining points while training
        page.wait_for_timeout(100)
        counts.append(reward_points(page))
        refreshes += counts[-1] != counts[-2]
    assert counts[-1] > counts[0], f"no new points in 4 s: {counts}"
    assert page.evaluate(f"() => {LIVE_CHART}.__zoomed"), "the chart was rebuilt instead of redrawn"
    assert page.evaluate(f"() => {LIVE_CHART}.layout.xaxis.range") == [0, 5000], "a refresh lost the user's zoom"
    page.evaluate(f"() => Plotly.relayout({LIVE_CHART}, {{'xaxis.autorange': true}})")
    page.wait_for_timeout(500)
    page.screenshot(path=str(SCREENSHOTS / "live.png"), full_page=True)
    # The current policy's clip appears once the first checkpoint exists and plays.
    page.locator("video").first.wait_for(timeout=120_000)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        clip_times = page.evaluate("() => window.__clipTimes")
        if clip_times and max(clip_times) > min(clip_times):
            break
        page.wait_for_timeout(200)
    deadline = time.monotonic() + 300
    while store.get_run(watched_id)["status"] in ACTIVE_STATUSES and time.monotonic() < deadline:
        page.wait_for_timeout(500)
    page.close()
    watched = store.get_run(watched_id)
    assert watched["env_steps"] >= steps
    assert watched["seed"] == run["seed"]
    assert clip_times and max(clip_times) > min(clip_times), f"the live clip did not play: currentTime {clip_times}"
    live_rate = watched["env_steps"] / watched["train_seconds"]
    after = headless_rate(run["seed"], "after")
    headless = (before + after) / 2
    timings = {"launch_to_first_point_s": round(first_point_s, 2), "chart_changes_in_4_s": refreshes,
               "steps_per_s_live_page_open": round(live_rate), "steps_per_s_headless_before": round(before),
               "steps_per_s_headless_after": round(after), "live_over_headless": round(live_rate / headless, 3)}
    print(f"BROWSER {timings}")
    (SCREENSHOTS.parent / "browser-timings.json").write_text(json.dumps(timings) + "\n")


def test_user_stops_a_second_run_from_its_live_view(server, chromium_browser):
    url, home = server
    page = open_page(chromium_browser, f"{url}/?algo=qlearning&preset=seed")
    page.get_by_role("button", name="Launch training").click()
    page.wait_for_url("**/live?run=*", timeout=30_000)
    page.get_by_role("button", name="Stop run").click(timeout=60_000)
    run_id = page.url.split("run=")[1].split("&")[0]
    store = RunStore(home)
    deadline = time.monotonic() + 10
    while store.get_run(run_id)["status"] not in ("cancelled", "completed") and time.monotonic() < deadline:
        time.sleep(0.1)
    assert store.get_run(run_id)["status"] == "cancelled"
    page.get_by_text("■ cancelled").first.wait_for(timeout=10_000)  # the live view shows the new status
    # ... and, the run being over, the page redraws itself: nothing left to stop.
    from playwright.sync_api import expect

    expect(page.get_by_role("button", name="Stop run")).to_be_disabled(timeout=10_000)


def test_user_compares_two_runs(server, chromium_browser):
    url, home = server
    store = RunStore(home)
    deadline = time.monotonic() + 120
    while any(r["status"] in ACTIVE_STATUSES for r in store.list_runs()) and time.monotonic() < deadline:
        time.sleep(0.5)
    run_ids = [run["id"] for run in store.list_runs()][:2]
    page = chromium_browser.new_page(viewport={"width": 1400, "height": 1000})
    page.goto(f"{url}/runs?select={','.join(run_ids)}")
    page.get_by_text("Compare", exact=True).wait_for(timeout=60_000)
    page.wait_for_function("() => document.querySelector('.js-plotly-plot') && "
                           "document.querySelector('.js-plotly-plot').data", timeout=30_000)
    names = page.evaluate("() => document.querySelector('.js-plotly-plot').data.map(t => t.name)")
    assert sum(1 for name in names if name and name.endswith("mean")) == 2
    page.screenshot(path=str(SCREENSHOTS / "compare.png"), full_page=True)


def test_user_replays_a_trained_run_and_the_video_plays(server, chromium_browser):
    url, home = server
    store = RunStore(home)
    run = next(r for r in store.list_runs(status="completed") if r["algo"] == "ppo")
    page = chromium_browser.new_page(viewport={"width": 1400, "height": 1100})
    opened = time.monotonic()
    page.goto(f"{url}/replay?run={run['id']}")
    page.wait_for_function("() => document.querySelector('video')?.readyState >= 2", timeout=60_000)
    ready_s = time.monotonic() - opened
    times = video_times(page)  # autoplay (muted) and loop: current time advances without a click
    assert times[-1] > times[0], f"the replay video did not play: currentTime {times}"
    assert page.evaluate("() => document.querySelector('video').videoWidth") == 600
    page.get_by_text("Frame", exact=True).wait_for()
    page.wait_for_function("() => document.querySelector('.js-plotly-plot')?.data")  # the state trace
    page.screenshot(path=str(SCREENSHOTS / "replay.png"), full_page=True)
    print(f"BROWSER replay page opened → video ready to play in {ready_s:.2f} s (page load, rollout, encoding)")
    page.goto(f"{url}/inspect?run={run['id']}")  # the policy and value over pole angle × angular velocity
    page.wait_for_function("() => document.querySelectorAll('.js-plotly-plot').length >= 2", timeout=60_000)
    page.screenshot(path=str(SCREENSHOTS / "inspect.png"), full_page=True)
    page.goto(f"{url}/robustness?run={run['id']}")
    page.get_by_role("button", name="Run grid").click(timeout=60_000)  # 5 × 5 conditions, 20 episodes each
    page.wait_for_function("() => document.querySelector('.js-plotly-plot')?.data", timeout=120_000)
    page.screenshot(path=str(SCREENSHOTS / "robustness.png"), full_page=True)


def test_a_page_link_opened_first_after_a_server_start_has_the_apps_navigation(tmp_path, chromium_browser):
    """A reload of /live?run=… (or a shared /runs link) right after the server (re)starts: the page appears inside
    the app's navigation and wide layout, not as a bare page file among raw file names."""
    with streamlit_server(tmp_path) as url:
        page = chromium_browser.new_page(viewport={"width": 1400, "height": 1000})
        page.goto(f"{url}/runs")
        page.get_by_text("Launch one from").wait_for(timeout=60_000)
        sidebar = page.get_by_test_id("stSidebar")
        sidebar.get_by_text("Runs & compare").wait_for(timeout=10_000)
        assert sidebar.get_by_text("Watch", exact=True).is_visible()
        assert sidebar.get_by_text("app", exact=True).count() == 0
        page.close()


def test_user_finds_which_setting_is_best(server, chromium_browser):
    """The tuning loop: launch a group, go back to Train (the form is as it was), change one field, launch a second
    group, and on Runs & compare see runs named by that field, a summary ranking the two settings and a config diff
    of exactly that field."""
    url, home = server
    store = RunStore(home)
    wait_until_idle(store)
    before = {run["id"] for run in store.list_runs()}
    page = open_page(chromium_browser, f"{url}/?algo=qlearning&preset=fast&seeds=2&tags=gamma-sweep")
    page.get_by_role("button", name="Launch training").click()
    page.wait_for_url("**/live?group=*", timeout=30_000)

    sidebar = page.get_by_test_id("stSidebar")
    for way_back in ("the browser's Back", "the sidebar, via Runs & compare"):
        if way_back.startswith("the browser"):
            page.go_back()
        else:
            sidebar.get_by_text("Runs & compare", exact=True).click()
            page.get_by_text("Groups, best first").wait_for(timeout=30_000)
            sidebar.get_by_text("Train", exact=True).click()
        page.get_by_text("Train an agent").wait_for(timeout=30_000)
        seeds = page.get_by_role("spinbutton", name="Seeds")
        gamma = page.get_by_role("spinbutton", name="gamma", exact=True)
        gamma.wait_for(timeout=30_000)
        assert seeds.input_value() == "2", f"going back to Train by {way_back} lost the number of seeds"
        assert float(gamma.input_value()) == 0.99, f"going back to Train by {way_back} lost the preset's values"
        assert page.get_by_role("button", name="Launch training").is_enabled()
    gamma.fill("0.9")
    gamma.press("Enter")
    page.wait_for_url("**gamma*", timeout=30_000)  # the share link now carries the changed field
    page.get_by_role("button", name="Launch training").click()
    page.wait_for_url("**/live?group=*", timeout=30_000)
    wait_until_idle(store)

    runs = [run for run in store.list_runs() if run["id"] not in before]
    assert len(runs) == 4 and all(run["status"] == "completed" for run in runs)
    changed = [run for run in runs if "gamma" in run["name"]]
    assert len(changed) == 2 and all("gamma=0.9" in run["name"] for run in changed), [r["name"] for r in runs]

    assert all(run["tags"] == ["gamma-sweep"] for run in runs)  # the tag given at launch, kept for the second
    page.goto(f"{url}/runs?tag=gamma-sweep&select={','.join(run['id'] for run in runs)}")
    page.get_by_text("Groups, best first").wait_for(timeout=60_000)
    summary = table_text(page, "group_summary")
    header, *groups = summary
    assert len(groups) == 2 and header.split(" | ")[:2] == ["group", "gamma"], summary
    # Ranked best first by the share of seeds solved, as the store has them.
    solved_column = header.split(" | ").index("solved")
    shown = [float(row.split(" | ")[solved_column].rstrip("%")) / (100 if "%" in row else 1) for row in groups]
    stored = [sum(run["solved"] for run in (changed if "gamma=0.9" in row else
                                            [r for r in runs if r not in changed])) / 2 for row in groups]
    assert shown == stored and shown == sorted(shown, reverse=True), summary
    diff = table_text(page, "config_diff")
    assert [row.split(" | ")[0] for row in diff[1:]] == ["gamma"], diff  # exactly the changed field, one row
    assert len(diff[0].split(" | ")) == 3, diff  # a blank corner and one column per group
    page.screenshot(path=str(SCREENSHOTS / "compare.png"), full_page=True)


def table_text(page, key: str) -> list[str]:
    """The rows of the st.dataframe in the container ``key``, as the grid's accessible table gives them (the grid
    itself is drawn on a canvas): one string per row, cells joined by " | ", the header first."""
    page.wait_for_function(f"() => document.querySelectorAll('.st-key-{key} table tr').length > 1", timeout=30_000)
    return page.evaluate(f"""() => [...document.querySelectorAll('.st-key-{key} table tr')]
        .map(row => [...row.children].map(cell => cell.innerText.trim()).join(' | '))""")


def wait_until_idle(store: RunStore, timeout_s: float = 180) -> None:
    deadline = time.monotonic() + timeout_s
    while any(r["status"] in ACTIVE_STATUSES for r in store.list_runs()) and time.monotonic() < deadline:
        time.sleep(0.5)


def test_a_gated_lab_signs_a_user_in_once_and_its_live_view_refreshes(tmp_path, chromium_browser, monkeypatch):
    """A lab served with CARTPOLE_LAB_TOKEN: a wrong token is refused, the right one opens every page for the
    session, and the live view's signed requests to the endpoint are answered (its chart gains points)."""
    from dashboard import access

    token = "browser-test-token-0123456789"
    monkeypatch.setenv(access.TOKEN_ENV, token)
    with streamlit_server(tmp_path) as url:
        page = chromium_browser.new_page(viewport={"width": 1400, "height": 1000})
        page.goto(f"{url}/?algo=qlearning&preset=seed")
        field = page.get_by_role("textbox", name="Access token")
        field.fill("wrong token")
        page.get_by_role("button", name="Sign in").click()
        page.get_by_text("not this lab's access token").wait_for(timeout=30_000)
        assert page.get_by_text("Train an agent").count() == 0
        field.fill(token)
        page.get_by_role("button", name="Sign in").click()
        page.get_by_text("Train an agent").wait_for(timeout=30_000)
        page.get_by_role("button", name="Launch training").click()
        page.wait_for_url("**/live?run=*", timeout=30_000)
        deadline = time.monotonic() + 60
        points = []
        while time.monotonic() < deadline and (len(points) < 2 or points[-1] <= points[0]):
            points.append(reward_points(page))
            page.wait_for_timeout(500)
        assert points[-1] > points[0], f"the gated live view did not refresh: {points}"
        page.get_by_test_id("stSidebar").get_by_text("Runs & compare", exact=True).click()
        page.get_by_text("Groups, best first").wait_for(timeout=30_000)  # no second sign-in
        page.close()


def test_names_and_tags_with_markdown_and_html_appear_literally(server, chromium_browser):
    """A run named with Markdown, a Streamlit directive, LaTeX and HTML: the live view's title, the group's links
    and the chart's legend show those characters as typed, and nothing is bold, red, linked or a formula."""
    url, home = server
    store = RunStore(home)
    wait_until_idle(store)
    name = "**bold** :red[red] <b>html</b> [link](http://x) $x^2$"
    page = open_page(chromium_browser, f"{url}/?algo=qlearning&preset=fast&seeds=2&name="
                     + urllib.parse.quote(name) + "&tags=" + urllib.parse.quote("<i>tag</i>"))
    # The share link carried it (the field may be drawn a moment before the run that restores the link fills it).
    name_box = page.get_by_role("textbox", name="Name")
    try:
        page.wait_for_function("([box, name]) => box.value === name", arg=[name_box.element_handle(), name],
                               timeout=30_000)
    except Exception:
        raise AssertionError(f"the Name field shows {name_box.input_value()!r} at {page.url}") from None
    page.get_by_role("button", name="Launch training").click()
    page.wait_for_url("**/live?group=*", timeout=30_000)
    title = page.locator("h1").first
    title.wait_for(timeout=30_000)
    assert title.inner_text().strip() == f"{name} ×2"
    assert title.locator("strong, b, a:not([href^='#']), .katex, span[style*='color']").count() == 0, title.inner_html()
    page.wait_for_function(f"() => {LIVE_CHART}?.querySelectorAll('.legendtext').length", timeout=60_000)
    legend = page.evaluate(f"() => [...{LIVE_CHART}.querySelectorAll('.legendtext')].map(t => t.textContent)")
    assert any(text.startswith(f"{name} ×2") for text in legend), legend
    runs = [run for run in store.list_runs() if run["name"].startswith(name)]
    assert len(runs) == 2 and all(run["tags"] == ["<i>tag</i>"] for run in runs)
    page.close()


PARALLEL_LINES = """() => {
    const plot = [...document.querySelectorAll('.js-plotly-plot')].find(p => p.data && p.data[0].type === 'parcoords');
    return plot ? plot.data[0].dimensions[0].values.length : 0;
}"""


def test_user_runs_a_study_watches_it_grow_stops_it_and_opens_the_best_in_train(server, chromium_browser):
    """A study from the Studies page: the base from a Train link, a field picked to vary, trials and seeds typed;
    Launch, and the trial table and the parallel coordinates gain trials as they finish; Stop cancels the trials in
    flight (their runs' data stays); "Open the best trial in Train" fills the Train form with its parameters."""
    url, home = server
    store = RunStore(home)
    wait_until_idle(store)
    page = chromium_browser.new_page(viewport={"width": 1400, "height": 1000})
    page.goto(f"{url}/studies?algo=qlearning&preset=fast")
    page.get_by_text("Fields to vary").wait_for(timeout=60_000)
    page.get_by_test_id("stMultiSelect").first.click()
    page.keyboard.type("gamma")
    page.get_by_role("option", name="gamma", exact=True).click()
    page.keyboard.press("Escape")
    page.get_by_role("spinbutton", name="low").wait_for(timeout=30_000)
    for label, value in (("Trials", "300"), ("Seeds per trial", "2")):
        field = page.get_by_role("spinbutton", name=label, exact=True)
        field.fill(value)
        field.press("Enter")
    page.get_by_text("300 trial(s) × 2 seed(s)").wait_for(timeout=30_000)
    page.get_by_role("button", name="Launch study").click()
    page.wait_for_url("**study=*", timeout=30_000)
    study_id = urllib.parse.parse_qs(urllib.parse.urlparse(page.url).query)["study"][0]

    def trial_rows() -> list[str]:
        return table_text(page, "study_trial_table")[1:]

    page.wait_for_function(f"() => ({PARALLEL_LINES})() >= 2", timeout=120_000)
    first_lines, first_rows = page.evaluate(PARALLEL_LINES), len(trial_rows())
    # Both are redrawn in place as trials finish (trials are quick: read each before waiting for it to grow).
    page.wait_for_function(f"() => ({PARALLEL_LINES})() >= {first_lines + 2}", timeout=120_000)
    page.wait_for_function(f"() => document.querySelectorAll('.st-key-study_trial_table table tr').length > "
                           f"{first_rows + 1}", timeout=120_000)  # + 1: the header row
    page.set_viewport_size({"width": 1400, "height": 1500})
    page.screenshot(path=str(SCREENSHOTS / "studies.png"))

    # The click reruns the page; waiting for the "Resume study" button is the check, not Playwright's wait for any
    # navigation the click may have started (on a loaded 2-core CI machine that wait once ran past 30 s).
    page.get_by_role("button", name="Stop study").click(no_wait_after=True)
    page.get_by_role("button", name="Resume study").wait_for(timeout=60_000)
    deadline = time.monotonic() + 60  # a cancelled run stops at its next update, or by force 1.5 s later
    runs = store.list_runs(tag=f"study:{study_id}")
    while any(run["status"] in ACTIVE_STATUSES for run in runs) and time.monotonic() < deadline:
        time.sleep(0.5)
        runs = store.list_runs(tag=f"study:{study_id}")
    still = [(run["name"], run["status"], store.cancel_requested(run["id"])) for run in runs
             if run["status"] in ACTIVE_STATUSES]
    assert runs and not still, f"Stop left runs training (name, status, cancel requested): {still}"
    assert all(len(store.episodes(run["id"])) == run["episodes"] for run in runs)  # cancelled runs keep theirs
    assert any(run["status"] == "cancelled" for run in runs) or all(run["status"] == "completed" for run in runs)
    assert 2 <= len(runs) // 2 < 300  # stopped part-way; the runs of every trial asked so far are kept

    from cartpole_core.studies.controller import summarize
    from cartpole_core.studies.storage import load_optuna_study, load_spec, study_dir

    best = summarize(store, load_spec(home, study_id), load_optuna_study(study_dir(home, study_id)))["best"]
    page.get_by_text(f"Open the best trial ({best['trial']}) in Train").click()
    page.get_by_text("Train an agent").wait_for(timeout=60_000)
    gamma = page.get_by_role("spinbutton", name="gamma", exact=True)
    gamma.wait_for(timeout=30_000)
    assert float(gamma.input_value()) == pytest.approx(best["params"]["gamma"], rel=1e-3)
