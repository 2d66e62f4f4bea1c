"""Every dashboard page through Streamlit's AppTest (the real scripts, no browser), on a temporary data home."""

import dataclasses
import json
import re
import time
from urllib.parse import parse_qsl

import plotly.io
import pytest
from app_support import app, figure, live_elements, live_figures, shown, trained_group

from cartpole_core.config.presets import preset_config
from cartpole_core.jobs.queue import submit
from cartpole_core.runs.presets import load_preset_config, save_preset, user_presets
from cartpole_core.runs.store import RunStore
from dashboard import form
from dashboard.live import endpoint
from dashboard.live.snapshot import LiveRequest


@pytest.mark.parametrize("algo", ["qlearning", "dqn", "ppo"])
def test_train_page_renders_a_form_for_every_field_of_each_algorithm(home, algo):
    test = app(algo=algo)
    assert not test.exception
    keys = {w.key for w in [*test.number_input, *test.select_slider, *test.selectbox, *test.toggle,
                            *test.text_input]}
    assert f"cfg.{algo}.total_env_steps" in keys and f"cfg.{algo}.learning_rate.start" in keys
    assert not test.error
    charts = [figure(chart) for chart in test.get("plotly_chart")]
    assert charts, "schedule preview"
    if algo == "qlearning":
        assert any("Q-table" in caption.value for caption in test.caption)
        # The bin-edge preview gives each dimension its own axis, from its low to its high bound.
        edges = next(chart for chart in charts if len(chart["data"]) > 4)
        config = preset_config("qlearning", "fast")
        ranges = [edges["layout"][f"xaxis{'' if i == 0 else i + 1}"]["range"] for i in range(4)]
        for (lo, hi), low, high in zip(ranges, config.low, config.high):
            assert lo <= low < high <= hi and (hi - lo) < 1.1 * (high - low)


def test_invalid_input_shows_the_error_inline_in_words_and_launches_nothing(home):
    test = app(algo="dqn")
    test.select_slider(key="cfg.dqn.batch_size").set_value(500).run()  # log-scaled fields are 1-2-5 sliders
    test.select_slider(key="cfg.dqn.buffer_size").set_value(200).run()
    messages = [error.value for error in test.error]
    assert any("batch size (500) must not exceed buffer size (200)" in message for message in messages)
    assert not any("batch_size" in message for message in messages)  # labels, not code names
    launch = next(button for button in test.button if "Launch" in button.label)
    assert launch.disabled  # a browser user cannot click it
    test.run()
    assert RunStore(home).list_runs() == []


def test_schedule_previews_stay_while_another_field_is_invalid(home):
    test = app(algo="dqn")
    assert len(test.get("plotly_chart")) == 2  # ε and learning rate
    test.select_slider(key="cfg.dqn.batch_size").set_value(500).run()
    test.select_slider(key="cfg.dqn.buffer_size").set_value(200).run()
    assert test.error and len(test.get("plotly_chart")) == 2


def test_launch_creates_named_runs_in_the_store_and_opens_the_live_view(home):
    test = app(algo="qlearning")
    test.number_input(key="n_seeds").set_value(2).run()
    test.text_input(key="run_tags").input("sweep, baseline").run()
    next(button for button in test.button if "Launch" in button.label).click().run()
    runs = RunStore(home).list_runs()
    assert len(runs) == 2 and {run["seed"] for run in runs} == {0, 1}
    assert len({run["group_id"] for run in runs}) == 1
    assert all(run["algo"] == "qlearning" and run["preset"] == "fast" for run in runs)
    assert all(run["tags"] == ["baseline", "sweep"] for run in runs)
    assert not test.exception
    assert "×2" in test.title[0].value  # the live view of the group


def test_a_changed_field_names_the_runs_and_a_given_name_wins(home):
    test = app(algo="dqn")
    test.select_slider(key="cfg.dqn.learning_rate.start").set_value(0.005).run()
    next(button for button in test.button if "Launch" in button.label).click().run()
    (run,) = RunStore(home).list_runs()
    assert run["name"].startswith("dqn/fast lr=") and run["name"].endswith(" · seed 0")
    test = app(algo="dqn")
    test.text_input(key="run_name").input("my baseline").run()
    next(button for button in test.button if "Launch" in button.label).click().run()
    assert "my baseline · seed 0" in {run["name"] for run in RunStore(home).list_runs()}


def form_state(test, algo: str) -> dict:
    from cartpole_core.config.models import config_class, field_specs

    return {spec.name: test.session_state[f"cfg.{algo}.{spec.name}"] for spec in field_specs(config_class(algo))}


def preset_form(algo: str, preset: str = "fast") -> dict:
    return {name: form.widget_value(value) for name, value in form.preset_values(algo, preset).items()}


def test_the_form_survives_leaving_the_page_and_switching_algorithms(home):
    test = app(algo="dqn")
    assert form_state(test, "dqn") == preset_form("dqn")
    test.select_slider(key="cfg.dqn.learning_rate.start").set_value(0.002).run()
    test.number_input(key="n_seeds").set_value(3).run()
    changed = form_state(test, "dqn")
    url = shared(test)

    test.switch_page("pages/runs.py").run()
    test.switch_page("pages/train.py").run()
    assert not test.exception
    assert test.session_state["algo"] == "dqn"
    assert form_state(test, "dqn") == changed  # not every field at its minimum
    assert test.number_input(key="n_seeds").value == 3
    assert shared(test) == url  # the URL it writes matches the form

    test.segmented_control(key="algo").set_value("ppo").run()
    assert form_state(test, "ppo") == preset_form("ppo")
    test.segmented_control(key="algo").set_value("dqn").run()
    assert form_state(test, "dqn") == changed
    assert test.select_slider(key="cfg.dqn.learning_rate.start").value == 0.002


def test_log_sliders_keep_the_presets_value_after_moving_off_it(home):
    test = app(algo="dqn")
    assert test.select_slider(key="cfg.dqn.batch_size").value == 128  # DQN fast
    test.select_slider(key="cfg.dqn.batch_size").set_value(500).run()
    assert "128" in test.select_slider(key="cfg.dqn.batch_size").options  # one move back to the preset


def shown_text(markdown: str) -> str:
    """What a Markdown element shows: its backslash escapes removed."""
    return re.sub(r"\\(.)", r"\1", markdown)


def shared(test) -> dict:
    return {key: test.query_params[key][0] if isinstance(test.query_params[key], list) else test.query_params[key]
            for key in test.query_params}


def test_a_share_link_carries_every_field_on_the_page(home):
    test = app(algo="ppo", preset="fast", cfg=json.dumps({"gamma": 0.97, "hidden_sizes": [32, 32]}),
               seeds="3", seed="10", name="wide net", tags="sweep")
    assert test.number_input(key="cfg.ppo.gamma").value == pytest.approx(0.97)
    assert test.text_input(key="cfg.ppo.hidden_sizes").value == "32, 32"
    assert test.number_input(key="n_seeds").value == 3 and test.number_input(key="first_seed").value == 10
    assert test.text_input(key="run_name").value == "wide net" and test.text_input(key="run_tags").value == "sweep"
    assert not test.warning
    link = shared(test)
    assert json.loads(link["cfg"]) == {"gamma": 0.97, "hidden_sizes": [32, 32]}
    assert (link["seeds"], link["seed"], link["name"], link["tags"]) == ("3", "10", "wide net", "sweep")

    # Fields of every kind changed from the preset come back as the same form from the link.
    test.number_input(key="cfg.ppo.clip_range").set_value(0.25).run()
    test.toggle(key="cfg.ppo.normalize_advantage").set_value(False).run()
    test.selectbox(key="cfg.ppo.learning_rate.kind").set_value("exponential").run()
    test.select_slider(key="cfg.ppo.minibatch_size").set_value(128).run()
    link = shared(test)
    again = app(**link)
    assert form_state(again, "ppo") == form_state(test, "ppo")
    assert shared(again) == link


def test_a_share_link_with_a_bad_field_restores_the_rest_and_names_it(home):
    cfg = {"gamma": 0.97, "batch_size": 64, "clip_range": "wide", "hidden_sizes": [32]}
    test = app(algo="ppo", preset="fast", cfg=json.dumps(cfg), seeds="99")
    assert not test.exception
    assert test.number_input(key="cfg.ppo.gamma").value == pytest.approx(0.97)
    assert test.text_input(key="cfg.ppo.hidden_sizes").value == "32"
    assert test.number_input(key="cfg.ppo.clip_range").value == preset_config("ppo", "fast").clip_range
    (warning,) = test.warning
    shown = shown_text(warning.value)
    assert "clip range = 'wide'" in shown  # named, with what is allowed
    assert "'batch_size' (not a field of PPO)" in shown
    assert "Seeds = '99'" in shown and "16" in shown


def test_live_view_of_a_finished_run_plots_every_episode_and_evaluation(home):
    (run_id,) = trained_group(home, seeds=(3,))
    test = app("pages/live.py", run=run_id)
    assert not test.exception
    stored = RunStore(home)
    reward = live_figures(test)[0]
    raw = next(trace for trace in reward["data"] if trace.get("name") == "return")
    assert len(raw["x"]) == len(stored.episodes(run_id)) > 0
    evaluations = next(trace for trace in reward["data"] if trace.get("name") == "evaluation")
    assert len(evaluations["y"]) == len(stored.evaluations(run_id))
    # Beside the chart: a clip of the policy at the run's last checkpoint (the final one, as the run is over).
    assert len(test.get("video")) == 1
    final = stored.artifacts(run_id, "final")[0]
    assert any(f"final · {final['env_steps']:,} env steps" in caption.value for caption in test.caption)
    clips = list((home / "runs" / run_id / "replays").glob("final-*.mp4"))
    assert len(clips) == 1 and clips[0].stat().st_size > 0


def test_live_view_of_a_group_shows_each_seed_and_the_mean_band(home):
    run_ids = trained_group(home, seeds=(0, 1, 2))
    group = RunStore(home).get_run(run_ids[0])["group_id"]
    test = app("pages/live.py", group=group)
    assert not test.exception
    names = [trace.get("name") for trace in live_figures(test)[0]["data"]]
    assert any(name and name.endswith("mean") for name in names)
    assert any(name and name.endswith("± std") for name in names)
    # ε, learning rate and diagnostics are one run's: the page says which.
    test.segmented_control(key="view").set_value("Diagnostics").run()
    first = RunStore(home).get_run(RunStore(home).list_runs(group_id=group)[0]["id"])
    assert any(f"Showing {first['name']}, the group's first run" in shown(caption.value) for caption in test.caption)
    links = {link.proto.query_string for link in test.get("page_link") if link.proto.page == "live"}
    assert links == {f"run={run_id}" for run_id in run_ids}  # and each seed's own view is a click away


def test_live_view_stop_button_cancels_a_running_run(home):
    store = RunStore(home)
    config = preset_config("qlearning", "seed", total_env_steps=10_000_000, max_episodes=None)
    _, (run_id,) = submit(store, config, [0])
    test = app("pages/live.py", run=run_id)
    deadline = time.monotonic() + 60
    while store.get_run(run_id)["status"] != "running" and time.monotonic() < deadline:
        time.sleep(0.1)  # the page's scheduler starts the queued run
    test.run()
    next(button for button in test.button if button.label.startswith("Stop")).click().run()
    while store.get_run(run_id)["status"] == "running" and time.monotonic() < deadline:
        time.sleep(0.1)
    assert store.get_run(run_id)["status"] == "cancelled"


def test_a_served_live_view_refreshes_from_the_live_endpoint_until_paused(home, monkeypatch):
    monkeypatch.setattr(endpoint, "served", True)  # as in a server started from app.py
    store = RunStore(home)
    _, (run_id,) = submit(store, preset_config("ppo", "fast"), [0], preset="fast")
    store.claim(run_id)  # training, as far as the page can tell
    test = app("pages/live.py", run=run_id)
    assert not test.exception
    (progress,), (chart,) = live_elements(test, "progress"), live_elements(test, "chart")
    assert "▶ running" in progress["progress"][0]["text"]
    url = progress["feed"]["url"]
    assert url.startswith(endpoint.LIVE_PATH + "?") and chart["feed"]["url"] == url
    requested = LiveRequest.from_query(dict(parse_qsl(url.split("?", 1)[1])))
    assert dataclasses.replace(requested, drawn=None) == LiveRequest((run_id,))
    # The URL says what the page drew: the snapshots ask for a rerun when the status changes or a first checkpoint
    # exists for the clip.
    drawn = requested.drawn
    assert drawn.layout == "running|reward_chart" and drawn.clip is None and drawn.clip_due_at is not None

    test.toggle(key="paused").set_value(True).run()
    assert [data["feed"] for data in live_elements(test, "progress") + live_elements(test, "chart")] == [None, None]


def test_compare_overlays_the_selected_groups(home):
    first = trained_group(home, seeds=(0, 1))
    second = trained_group(home, seeds=(5, 6))
    test = app("pages/runs.py", select=",".join(first + second))
    assert not test.exception
    compare = figure(test.get("plotly_chart")[0])
    means = [trace["name"] for trace in compare["data"] if trace.get("name", "").endswith("mean")]
    assert len(means) == 2  # one band per group, not per seed
    assert len(test.dataframe) >= 1


def test_runs_page_without_runs_says_how_to_start(home):
    test = app("pages/runs.py")
    assert not test.exception
    assert any("Launch one from" in info.value for info in test.info)


def test_plotly_specs_are_valid_figures(home):
    (run_id,) = trained_group(home, seeds=(1,))
    test = app("pages/live.py", run=run_id)
    specs = [chart.proto.spec for chart in test.get("plotly_chart")] + [json.dumps(f) for f in live_figures(test)]
    assert specs
    for spec in specs:
        plotly.io.from_json(spec)  # raises on an invalid figure


@pytest.mark.parametrize("algo", ["qlearning", "dqn", "ppo"])
def test_an_untouched_form_is_the_preset_exactly(home, algo):
    """Nothing the user did not change shows up as a change: not in the URL, not in the runs' names."""
    test = app(algo=algo)
    assert "cfg" not in shared(test)
    next(button for button in test.button if "Launch" in button.label).click().run()
    (run,) = RunStore(home).list_runs()
    assert run["name"] == f"{algo}/fast · seed 0"
    assert json.loads(run["config_json"]) == json.loads(preset_config(algo, "fast").to_json())


@pytest.mark.parametrize("algo", ["qlearning", "dqn", "ppo"])
def test_a_share_link_with_every_field_set_round_trips(home, algo):
    """Every field of the algorithm in one link (the `seed` preset's values, over `fast`), with seeds, first seed,
    name and tags: the form shows exactly those values, nothing is refused, and the link it writes is the same."""
    target = form.preset_values(algo, "seed")
    link = {"algo": algo, "preset": "fast", "cfg": json.dumps(target), "seeds": "4", "seed": "7",
            "name": "every field", "tags": "a, b"}
    test = app(**link)
    assert not test.exception and not test.warning and not test.error
    assert form_state(test, algo) == {name: form.widget_value(value) for name, value in target.items()}
    written = shared(test)
    assert {key: written[key] for key in ("seeds", "seed", "name", "tags")} == {
        "seeds": "4", "seed": "7", "name": "every field", "tags": "a, b"}
    again = app(**written)
    assert form_state(again, algo) == form_state(test, algo) and shared(again) == written


def test_a_name_or_tag_beyond_the_limits_is_named_and_launches_nothing(home):
    test = app(algo="qlearning")
    test.text_input(key="run_tags").input("ok, " + "t" * 51).run()
    launch = next(button for button in test.button if "Launch" in button.label)
    assert launch.disabled
    assert any("at most 50 characters" in shown_text(error.value) for error in test.error)
    test.text_input(key="run_tags").input("ok").run()
    test.text_input(key="run_name").input("line\nbreak").run()
    assert any("control characters" in shown_text(error.value) for error in test.error)
    assert RunStore(home).list_runs() == []


def test_a_launch_beyond_the_queue_limit_is_refused_whole_with_a_message(home, monkeypatch):
    import cartpole_core.jobs.queue

    monkeypatch.setattr(cartpole_core.jobs.queue, "QUEUED_MAX", 1)  # a full queue, without filling it for real
    test = app(algo="qlearning")
    test.number_input(key="n_seeds").set_value(2).run()
    next(button for button in test.button if "Launch" in button.label).click().run()
    assert not test.exception
    assert any("queue is full" in shown(error.value) and "nothing was queued" in shown(error.value)
               for error in test.error), [error.value for error in test.error] + [t.value for t in test.title]
    assert RunStore(home).list_runs() == []
    assert "Train an agent" in [title.value for title in test.title]  # still on the form, nothing lost


# ------------------------------------------------------------------------------------------------ user presets

TUNED_DQN = preset_config("dqn", "fast", gamma=0.95, batch_size=128)


def save_button(test):
    return next(button for button in test.button if button.label == "Save")


def test_train_offers_a_saved_preset_and_picking_it_fills_the_form_with_its_values(home):
    save_preset(home, "dqn", "tuned", TUNED_DQN, "γ 0.95, batch 128", source="study dqn-20261201-3fa2c1")
    test = app(algo="dqn")
    picker = test.selectbox(key="preset.dqn")
    assert picker.options == ["seed", "fast", "seed-large-batch", "tuned · yours"]  # built-ins first, marked
    picker.set_value("tuned").run()
    assert not test.exception
    assert form_state(test, "dqn") == preset_form("dqn", "tuned")
    assert test.number_input(key="cfg.dqn.gamma").value == 0.95
    assert test.select_slider(key="cfg.dqn.batch_size").value == 128
    assert any("Your preset, from study dqn-20261201-3fa2c1" in shown(caption.value)
               and "γ 0.95, batch 128" in shown(caption.value) for caption in test.caption)
    assert shared(test) == {"algo": "dqn", "preset": "tuned"}  # nothing differs from it

    next(button for button in test.button if "Launch" in button.label).click().run()
    (run,) = RunStore(home).list_runs()
    assert run["preset"] == "tuned" and run["name"] == "dqn/tuned · seed 0"
    assert json.loads(run["config_json"]) == json.loads(TUNED_DQN.to_json())


def test_a_share_link_restores_a_user_preset_and_names_one_this_lab_does_not_have(home):
    save_preset(home, "dqn", "tuned", TUNED_DQN)
    link = {"algo": "dqn", "preset": "tuned", "cfg": json.dumps({"learning_starts": 500}, separators=(",", ":"))}
    test = app(**link)
    assert not test.exception and not test.warning
    assert test.selectbox(key="preset.dqn").value == "tuned"
    assert form_state(test, "dqn") == {**preset_form("dqn", "tuned"), "learning_starts": 500}
    assert shared(test) == link

    elsewhere = app(**{**link, "preset": "someone-elses"})
    assert not elsewhere.exception
    (warning,) = elsewhere.warning
    assert "preset 'someone-elses' (this lab has no DQN preset of that name" in shown(warning.value)
    assert "applied to fast; presets here: seed, fast, seed-large-batch, tuned" in shown(warning.value)
    assert elsewhere.selectbox(key="preset.dqn").value == "fast"
    assert form_state(elsewhere, "dqn") == {**preset_form("dqn", "fast"), "learning_starts": 500}


def test_a_link_that_names_no_preset_opens_the_default_one_without_a_warning(home):
    test = app(algo="dqn", cfg=json.dumps({"learning_starts": 500}))
    assert not test.exception and not test.warning
    assert test.selectbox(key="preset.dqn").value == "fast"
    assert form_state(test, "dqn") == {**preset_form("dqn", "fast"), "learning_starts": 500}


def test_save_as_preset_keeps_the_form_under_a_name_and_refuses_a_bad_or_taken_one(home):
    test = app(algo="ppo")
    test.number_input(key="cfg.ppo.gamma").set_value(0.97).run()
    for name, error in (("fast", "'fast' is the name of a built-in ppo preset"),
                        ("my ppo", "preset name 'my ppo' is not allowed")):
        test.text_input(key="preset_save.name").input(name).run()
        save_button(test).click().run()
        assert any(error in shown(message.value) for message in test.error), [e.value for e in test.error]
        assert not (home / "presets").exists()

    test.text_input(key="preset_save.name").input("gamma-097").run()
    test.text_input(key="preset_save.description").input("γ 0.97 for a longer horizon").run()
    save_button(test).click().run()
    assert not test.exception and not test.error
    assert any("Saved your ppo preset 'gamma-097'" in shown(message.value) for message in test.success)
    assert test.selectbox(key="preset.ppo").value == "gamma-097"  # the form is now exactly that preset
    assert shared(test) == {"algo": "ppo", "preset": "gamma-097"}
    assert load_preset_config(home, "ppo", "gamma-097") == preset_config("ppo", "fast", gamma=0.97)
    (saved,), _ = user_presets(home)
    assert (saved.description, saved.source) == ("γ 0.97 for a longer horizon", "ppo/fast gamma=0.97")

    test.number_input(key="cfg.ppo.gamma").set_value(0.98).run()
    test.text_input(key="preset_save.name").input("gamma-097").run()
    save_button(test).click().run()
    assert any("you already have a ppo preset 'gamma-097'" in shown(message.value) for message in test.error)
    assert load_preset_config(home, "ppo", "gamma-097").gamma == 0.97
    test.checkbox(key="preset_save.replace").check().run()
    save_button(test).click().run()
    assert not test.error and load_preset_config(home, "ppo", "gamma-097").gamma == 0.98


def test_a_damaged_preset_file_is_named_on_the_train_page_and_left_alone(home):
    broken = home / "presets" / "qlearning" / "broken.json"
    broken.parent.mkdir(parents=True)
    broken.write_text("{not json")
    test = app(algo="qlearning", preset="fast")
    assert not test.exception
    (warning,) = test.warning
    assert f"{broken} is damaged or not a preset" in shown(warning.value)
    assert test.selectbox(key="preset.qlearning").options == ["seed", "fast"]
    assert broken.read_text() == "{not json"
