"""The live view's data (dashboard.live.feed), its request and rerun rule (dashboard.live.snapshot), and the
endpoint app.py serves it on (dashboard.live.endpoint, a real server)."""

import base64
import json
import re
import subprocess
import sys
import time
import urllib.error
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from urllib.parse import parse_qsl

import numpy as np
import pytest
from browser_support import ROOT, streamlit_server

from cartpole_core.config.presets import preset_config
from cartpole_core.jobs.queue import cancel_run, submit
from cartpole_core.records import EpisodeEnded, Evaluated, Updated
from cartpole_core.runs.store import RunStore
from dashboard.live.feed import MAX_POINTS, LiveFeed, shared_feed
from dashboard.live.snapshot import DrawnPage, LiveRequest, LiveRequestError, view_label

CONFIG = preset_config("dqn", "fast", total_env_steps=1000)


def episode(i: int) -> EpisodeEnded:
    return EpisodeEnded(i, i * 20, 20.0 + i, 20, 1.0 - i / 100, 1e-3, i * 0.1)


def running_run(store: RunStore, run_id: str = "dqn-live", seed: int = 0, group: str | None = None,
                config=CONFIG, name: str | None = None) -> str:
    store.create_run(run_id, config.to_json(), config.algo, seed, name=name, preset="fast", group_id=group)
    store.claim(run_id)
    return run_id


def array(values) -> np.ndarray:
    """A figure's values as sent to the browser: a list, or Plotly's typed array ({"dtype", "bdata"})."""
    if isinstance(values, dict):
        return np.frombuffer(base64.b64decode(values["bdata"]), dtype=values["dtype"])
    return np.asarray(values)


def raw_points(snapshot: dict) -> int:
    return len(array(next(t for t in snapshot["figures"]["reward_chart"]["data"] if t.get("name") == "return")["x"]))


def test_a_snapshot_grows_with_the_run_and_says_where_it_is(tmp_path):
    store = RunStore(tmp_path)
    run_id = running_run(store)
    feed = LiveFeed(store)
    request = LiveRequest((run_id,))
    first = feed.snapshot(request)
    assert first["active"] and first["checkpoint"] is None
    assert first["captions"]["reward_chart"].startswith("0 episodes plotted — waiting")
    assert "▶ running" in first["progress"][0]["text"] and first["progress"][0]["fraction"] == 0

    store.append_events(run_id, [episode(1), episode(2), Evaluated(40, 2, 150.0, 3.0, False, 0.2)])
    second = feed.snapshot(request)
    assert raw_points(second) == 2 and second["layout"] == first["layout"]  # more points, same page
    assert second["progress"][0]["text"].count("40 / 1,000 env steps") == 1
    assert second["progress"][0]["fraction"] == pytest.approx(0.04)
    store.append_events(run_id, [episode(3)])
    assert raw_points(feed.snapshot(request)) == 3  # read incrementally, kept across snapshots

    store.set_status(run_id, "completed")
    done = feed.snapshot(request)
    assert not done["active"] and done["layout"] != first["layout"]  # the page must redraw: the run ended
    assert "✓ completed" in done["progress"][0]["text"]


def test_each_view_has_its_charts_and_a_new_diagnostic_changes_the_layout(tmp_path):
    store = RunStore(tmp_path)
    run_id = running_run(store)
    store.append_events(run_id, [episode(1), episode(2)])
    feed = LiveFeed(store)
    exploration = feed.snapshot(LiveRequest((run_id,), view="Exploration & learning rate", x="episode"))
    assert set(exploration["figures"]) == {"epsilon_chart", "lr_chart"}
    assert list(array(exploration["figures"]["epsilon_chart"]["data"][0]["y"])) == [0.99, 0.98]

    diagnostics = LiveRequest((run_id,), view="Diagnostics")
    before = feed.snapshot(diagnostics)
    assert before["figures"] == {}
    store.append_events(run_id, [Updated(1, 40, {"td_loss": 0.5, "q_mean": 2.0}, 0.1)])
    after = feed.snapshot(diagnostics)
    assert set(after["figures"]) == {"diag.q_mean", "diag.td_loss"} and after["layout"] != before["layout"]


def test_a_group_snapshot_has_a_line_per_seed_the_mean_band_and_its_evaluations(tmp_path):
    store = RunStore(tmp_path)
    run_ids = tuple(running_run(store, f"dqn-{seed}", seed, group="g1", name=f"dqn/fast · seed {seed}")
                    for seed in range(3))
    for seed, run_id in enumerate(run_ids):
        store.append_events(run_id, [episode(1), episode(2), episode(3),
                                     Evaluated(60, 3, 100.0 * (seed + 1), 3.0, False, 0.3)])
    snapshot = LiveFeed(store).snapshot(LiveRequest(run_ids))  # titled as the page titles it: group_label
    assert len(snapshot["progress"]) == 3
    names = [trace.get("name") or "" for trace in snapshot["figures"]["reward_chart"]["data"]]
    assert "dqn/fast ×3 mean" in names and "dqn/fast ×3 ± std" in names
    assert snapshot["captions"]["reward_chart"] == "9 episodes plotted"
    # As a single run's chart: evaluation markers, here the mean ± std across the seeds' evaluations.
    marker = next(t for t in snapshot["figures"]["reward_chart"]["data"] if t.get("name") == "dqn/fast ×3 evaluation")
    assert list(array(marker["x"])) == [60] and list(array(marker["y"])) == [200.0]
    assert array(marker["error_y"]["array"])[0] == pytest.approx(np.std([100, 200, 300]))


def test_ppo_has_no_exploration_chart_and_its_view_says_learning_rate(tmp_path):
    store = RunStore(tmp_path)
    run_id = running_run(store, "ppo-live", config=preset_config("ppo", "fast", total_env_steps=1000))
    store.append_events(run_id, [EpisodeEnded(i, i * 20, 20.0, 20, None, 3e-3, i * 0.1) for i in (1, 2)])
    snapshot = LiveFeed(store).snapshot(LiveRequest((run_id,), view="Exploration & learning rate"))
    assert set(snapshot["figures"]) == {"lr_chart"}
    assert view_label("Exploration & learning rate", "ppo") == "Learning rate"
    assert view_label("Exploration & learning rate", "dqn") == "Exploration & learning rate"


def test_a_run_capped_below_475_is_drawn_against_its_cap_not_a_0_to_500_axis(tmp_path):
    store = RunStore(tmp_path)
    capped = preset_config("qlearning", "seed")  # 100-step training episodes
    run_id = running_run(store, "q-live", config=capped)
    store.append_events(run_id, [EpisodeEnded(i, i * 50, 50.0 + i, 50, 0.5, 0.5, i * 0.1) for i in range(1, 20)])
    feed, request = LiveFeed(store), LiveRequest((run_id,))
    lines = [(shape["y0"], shape["line"]["dash"]) for shape in feed.snapshot(request)["figures"]["reward_chart"]
             ["layout"]["shapes"]]
    assert lines == [(100, "dash")]  # the cap, no 475 line pulling the axis up to 500
    store.append_events(run_id, [Evaluated(1000, 19, 460.0, 20.0, False, 2.0)])  # evaluations run 500 steps
    lines = [shape["y0"] for shape in feed.snapshot(request)["figures"]["reward_chart"]["layout"]["shapes"]]
    assert lines == [475.0, 100]


@pytest.mark.parametrize("params, message", [
    ({"runs": ""}, "runs: give 1 to 64 run ids"),
    ({"runs": "a", "view": "Loss"}, "view: 'Loss' is not one of 'Reward'"),
    ({"runs": "a", "x": "steps"}, "x: 'steps' is not one of 'env_steps', 'episode', 'time_s'"),
    ({"runs": "a", "method": "ema", "amount": "1.5"}, "amount: 1.5 is outside 0.0–0.99"),
    ({"runs": "a", "method": "window", "amount": "0"}, "amount: 0.0 is outside 1–1000"),
    ({"runs": "a", "amount": "lots"}, "amount: 'lots' is not a number"),
    ({"runs": "a", "colour": "red"}, "unknown parameter(s) colour"),
])
def test_bad_requests_name_what_was_wrong_and_what_is_allowed(params, message):
    with pytest.raises(LiveRequestError, match="^" + message.replace("(", r"\(").replace(")", r"\)")):
        LiveRequest.from_query(params)


@pytest.mark.parametrize("drawn", [None, DrawnPage("running;queued|reward_chart"),
                                   DrawnPage("running|reward_chart", None, 0.0),
                                   DrawnPage("running|reward_chart", "step-000000040.pt@1700000000.25", 1700000012.5)])
def test_a_request_round_trips_through_its_query(drawn):
    request = LiveRequest(("a", "b"), view="Diagnostics", x="time_s", method="window", amount=25, drawn=drawn)
    assert LiveRequest.from_query(dict(parse_qsl(request.query()))) == request


CLIPPED = DrawnPage("running|reward_chart", clip="step-1.pt@10.0", clip_due_at=100.0)


@pytest.mark.parametrize("drawn, layout, checkpoint, now, rerun", [
    (CLIPPED, "running|reward_chart", "step-1.pt@10.0", 200.0, False),  # nothing new
    (CLIPPED, "completed|reward_chart", "step-1.pt@10.0", 50.0, True),  # the run ended: Stop goes, refreshes end
    (DrawnPage("running|"), "running|diag.td_loss", None, 0.0, True),  # a first diagnostic: a new chart
    (CLIPPED, "running|reward_chart", "step-2.pt@20.0", 99.9, False),  # a newer checkpoint, but a clip is not due
    (CLIPPED, "running|reward_chart", "step-2.pt@20.0", 100.0, True),  # ... now it is
    (DrawnPage("running|reward_chart", None, 0.0), "running|reward_chart", "step-1.pt@10.0", 5.0, True),  # the first
    (DrawnPage("running|reward_chart"), "running|reward_chart", "step-2.pt@20.0", 1e12, False),  # no clip shown
])
def test_the_page_reruns_for_a_new_status_a_new_chart_or_a_due_clip(drawn, layout, checkpoint, now, rerun):
    assert drawn.must_rerun(layout, checkpoint, now) == rerun


def test_a_snapshot_says_whether_the_page_that_drew_must_rerun(tmp_path):
    store = RunStore(tmp_path)
    run_id = running_run(store)
    store.append_events(run_id, [episode(1)])
    feed, request = LiveFeed(store), LiveRequest((run_id,))
    layout = feed.snapshot(request)["layout"]
    waiting = LiveRequest((run_id,), drawn=DrawnPage(layout, None, 0.0))  # a clip beside the chart, none yet
    assert feed.snapshot(request)["rerun"] is False and feed.snapshot(waiting)["rerun"] is False
    store.add_artifact(run_id, "periodic", 20, store.run_dir(run_id) / "step-000000020.pt")
    assert feed.snapshot(waiting)["rerun"] is True  # the first checkpoint: the page makes its clip
    no_clip = LiveRequest((run_id,), drawn=DrawnPage(layout))
    assert feed.snapshot(no_clip)["rerun"] is False
    store.set_status(run_id, "cancelled")
    assert feed.snapshot(no_clip)["rerun"] is True


def test_a_running_runs_snapshot_is_of_one_moment_its_progress_line_and_its_curve(tmp_path):
    """Metrics read after the run row (a worker committed meanwhile) are cut at the row's counters."""
    store = RunStore(tmp_path)
    run_id = running_run(store)
    store.append_events(run_id, [episode(1), episode(2), Evaluated(40, 2, 150.0, 3.0, False, 0.2)])
    feed, request = LiveFeed(store), LiveRequest((run_id,))
    runs = feed.runs(request)
    store.append_events(run_id, [episode(3), Evaluated(60, 3, 170.0, 3.0, False, 0.3)])
    snapshot = feed.snapshot(request, runs)
    assert "2 episodes" in snapshot["progress"][0]["text"] and raw_points(snapshot) == 2
    evaluations = next(t for t in snapshot["figures"]["reward_chart"]["data"] if t.get("name") == "evaluation")
    assert list(array(evaluations["x"])) == [40]
    assert raw_points(feed.snapshot(request)) == 3  # read again: the next moment


def test_a_deleted_run_is_named(tmp_path):
    with pytest.raises(LiveRequestError, match="no run gone in"):
        LiveFeed(RunStore(tmp_path)).snapshot(LiveRequest(("gone",)))


def get(url: str) -> tuple[int, dict]:
    try:
        with urllib.request.urlopen(url, timeout=30) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as err:
        return err.code, json.loads(err.read())


def test_the_app_serves_live_snapshots_beside_its_pages(tmp_path):
    store = RunStore(tmp_path)
    run_id = running_run(store)
    store.append_events(run_id, [episode(1), episode(2)])
    with streamlit_server(tmp_path) as url:
        status, snapshot = get(f"{url}/lab/api/live?{LiveRequest((run_id,)).query()}")
        assert status == 200 and raw_points(snapshot) == 2 and snapshot["active"]
        store.append_events(run_id, [episode(3)])
        assert raw_points(get(f"{url}/lab/api/live?runs={run_id}")[1]) == 3
        status, body = get(f"{url}/lab/api/live?runs={run_id}&view=Loss")
        assert status == 400 and body["error"].startswith("view: 'Loss' is not one of")
        status, body = get(f"{url}/lab/api/live?runs=nope")
        assert status == 404 and "no run nope" in body["error"]
        assert urllib.request.urlopen(f"{url}/_stcore/health", timeout=10).read() == b"ok"
    assert shared_feed(tmp_path).store.home == tmp_path.resolve()


def test_a_long_run_is_drawn_through_its_highs_and_lows(tmp_path):
    store = RunStore(tmp_path)
    run_id = running_run(store)
    returns = [20.0 + (i % 97) for i in range(5000)]
    returns[1234], returns[4321] = 500.0, 9.0  # one spike and one dip, each a single episode
    store.append_events(run_id, [EpisodeEnded(i + 1, (i + 1) * 20, r, 20, 0.1, 1e-3, i * 0.1)
                                 for i, r in enumerate(returns)])
    store.append_events(run_id, [Evaluated((i + 1) * 100, i, 100.0 + i % 50 + (400 if i == 700 else 0), 1.0, False,
                                           0.1) for i in range(1000)])
    snapshot = LiveFeed(store).snapshot(LiveRequest((run_id,), method="window", amount=10))
    raw, smoothed = ({key: array(trace[key]) for key in ("x", "y")}
                     for trace in snapshot["figures"]["reward_chart"]["data"][:2])
    assert len(raw["x"]) <= 1002 and len(raw["x"]) == len(smoothed["x"])
    assert raw["y"].max() == 500.0 and raw["y"].min() == 9.0  # nothing a user should see is dropped
    assert (raw["x"][0], raw["x"][-1]) == (20, 100_000)
    # The smoothed curve is smoothed over every episode, then drawn at the kept ones.
    at = list(raw["x"]).index(1235 * 20)
    assert smoothed["y"][at] == pytest.approx(sum(returns[1225:1235]) / 10)
    assert "5,000 episodes plotted (each curve through 1,000 points" in snapshot["captions"]["reward_chart"]
    evaluations = snapshot["figures"]["reward_chart"]["data"][2]
    assert evaluations["name"] == "evaluation" and len(evaluations["y"]) <= 202 and max(evaluations["y"]) == 500.0


def counted(snapshot: dict) -> tuple[int, int, int]:
    """A single run's snapshot as its parts count it: the progress line's episodes and env steps, and the episodes
    its reward chart plots (the caption counts them all; a long curve is drawn through fewer points)."""
    line = snapshot["progress"][0]["text"]
    episodes, env_steps = (int(re.search(pattern, line)[1].replace(",", ""))
                           for pattern in (r"· ([\d,]+) episodes ·", r"· ([\d,]+) / [\d,]+ env steps"))
    plotted = int(re.match(r"([\d,]+) episodes plotted", snapshot["captions"]["reward_chart"])[1].replace(",", ""))
    return episodes, env_steps, plotted


def test_the_endpoint_serves_whole_snapshots_to_many_threads_while_a_run_trains(tmp_path):
    """One feed and one store handle serve every request thread of the server: 8 threads × 50 requests while a
    worker process trains get no error, and every snapshot is of one moment — its progress line counts the episodes
    its chart plots, its curve ends within the line's env steps — and no thread sees the run go back."""
    store = RunStore(tmp_path)
    config = preset_config("qlearning", "seed", total_env_steps=10_000_000, max_episodes=None)  # until stopped
    _, (run_id,) = submit(store, config, [0])
    store.claim(run_id)
    worker = subprocess.Popen([sys.executable, "-m", "cartpole_core.jobs.worker", str(tmp_path)], cwd=ROOT,
                              stdin=subprocess.PIPE, text=True)
    worker.stdin.write(f"{run_id}\n")
    worker.stdin.close()
    try:
        with streamlit_server(tmp_path) as url:
            deadline = time.monotonic() + 60
            while store.get_run(run_id)["episodes"] == 0 and time.monotonic() < deadline:
                time.sleep(0.1)

            def watch(thread: int) -> list[tuple[int, dict]]:
                """50 requests in a row, over env steps or episodes, an EMA or a window (the rows are shared)."""
                request = LiveRequest((run_id,), x=("env_steps", "episode")[thread % 2],
                                      method=("ema", "window")[thread // 2 % 2], amount=(0.9, 20)[thread // 2 % 2])
                return [get(f"{url}/lab/api/live?{request.query()}") for _ in range(50)]

            with ThreadPoolExecutor(8) as pool:
                answers = list(pool.map(watch, range(8)))
    finally:
        cancel_run(store, run_id)
        worker.wait(timeout=30)

    assert all(status == 200 for thread in answers for status, _ in thread), \
        {body.get("error") for thread in answers for status, body in thread if status != 200}
    seen = []
    for index, thread in enumerate(answers):
        counts = [counted(snapshot) for _, snapshot in thread]
        for (episodes, env_steps, plotted), (_, snapshot) in zip(counts, thread, strict=True):
            assert plotted == episodes, (snapshot["progress"][0]["text"], snapshot["captions"])
            x = array(next(t for t in snapshot["figures"]["reward_chart"]["data"] if t.get("name") == "return")["x"])
            assert len(x) <= MAX_POINTS + 2 and (index % 2 or not len(x) or x[-1] <= env_steps)
        episodes = [count[0] for count in counts]
        assert episodes == sorted(episodes), "a thread saw the run go back"
        seen += episodes
    assert max(seen) > min(seen) > 0  # the run trained while it was watched
    assert store.get_run(run_id)["status"] == "cancelled"
