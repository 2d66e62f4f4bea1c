"""The Studies page through Streamlit's AppTest: the new-study form, and a finished study's live view."""

import time

from app_support import app, figure

from cartpole_core.config.presets import preset_config
from cartpole_core.jobs.execution import execute_stored_run
from cartpole_core.runs.store import RunStore
from cartpole_core.studies import space, storage
from cartpole_core.studies.controller import StudyController

PAGE = "pages/studies.py"


def finished_study(home, trials=3, seeds=2, confirm_trials=0, confirm_seeds=0):
    """A tiny Q-learning study, driven to the end here: its runs trained in this process as they are queued."""
    dims = [space.parse_vary("qlearning", text) for text in ("gamma=0.9:0.999", "learning_rate.start=0.1:1.0:log")]
    base = preset_config("qlearning", "fast", total_env_steps=3000)
    spec = storage.StudySpec(study_id=storage.new_study_id("qlearning"), name="tiny study", algo="qlearning",
                             preset="fast", base_config=base.to_json(), dimensions=tuple(dims), sampler="random",
                             pruner="none", objective="final", trials=trials, seeds=seeds, seed=0, parallel=1,
                             confirm_trials=confirm_trials, confirm_seeds=confirm_seeds)
    storage.create_study(home, spec)
    store = RunStore(home)
    deadline = time.monotonic() + 60
    with StudyController.open(store, spec.study_id) as controller:
        while not controller.done:
            assert time.monotonic() < deadline, "the study did not end in time"
            controller.pump()
            for run in store.list_runs(status="queued"):
                store.claim(run["id"])
                execute_stored_run(store, run["id"])
    return spec


def test_the_page_opens_without_a_study_and_offers_the_form(home):
    test = app(PAGE)
    assert not test.exception and not test.error
    assert any(title.value == "Studies" for title in test.title)
    launch = next(button for button in test.button if button.label == "Launch study")
    assert launch.disabled  # nothing varied yet


def test_a_bad_range_is_named_inline_and_nothing_is_created(home):
    test = app(PAGE)
    test.selectbox(key="study_algo").set_value("qlearning").run()
    test.multiselect(key="study_vary.qlearning").set_value(["gamma"]).run()
    launch = next(button for button in test.button if button.label == "Launch study")
    assert not launch.disabled
    test.number_input(key="study_dim.qlearning.gamma.low").set_value(0.99).run()
    test.number_input(key="study_dim.qlearning.gamma.high").set_value(0.9).run()
    messages = [error.value for error in test.error]
    assert any("gamma range" in message and "low end must be below the high end" in message for message in messages)
    launch = next(button for button in test.button if button.label == "Launch study")
    assert launch.disabled  # a browser user cannot click it
    test.run()
    assert storage.list_studies(home) == ([], [])


def test_launch_creates_the_study_and_opens_its_view(home):
    test = app(PAGE)
    test.selectbox(key="study_algo").set_value("qlearning").run()
    test.multiselect(key="study_vary.qlearning").set_value(["gamma"]).run()
    test.selectbox(key="study_sampler").set_value("grid").run()
    assert any("Grid: 3 configuration(s) × 3 seed(s) = **9 runs** + 15 to confirm the best" in caption.value
               for caption in test.caption)
    next(button for button in test.button if button.label == "Launch study").click().run()
    assert not test.exception
    (spec,), _ = storage.list_studies(home)
    assert (spec.algo, spec.sampler, spec.trials, spec.seeds) == ("qlearning", "grid", 3, 3)
    assert (spec.confirm_trials, spec.confirm_seeds) == (3, 5)  # the defaults: the best 3 re-run on 5 fresh seeds
    assert test.query_params["study"] == spec.study_id
    storage.request_stop(storage.study_dir(home, spec.study_id))  # the page's driver stops it, cancelling its runs


def test_a_finished_study_shows_every_trial_and_its_parallel_coordinates(home):
    spec = finished_study(home)
    test = app(PAGE, study=spec.study_id)
    assert not test.exception and not test.error and not test.warning
    table = test.dataframe[0].value
    assert sorted(table["trial"]) == [0, 1, 2]
    assert all(state.endswith("complete") for state in table["state"])
    assert all(link.startswith("/runs?tag=study%3A") for link in table["runs"])
    figures = [figure(chart) for chart in test.get("plotly_chart")]
    parallel = next(fig for fig in figures if fig["data"][0]["type"] == "parcoords")
    axes = parallel["data"][0]["dimensions"]
    assert [axis["label"] for axis in axes[:2]] == ["gamma", "learning_rate.start (log)"]
    assert len(axes[2]["values"]) == 3  # one line per completed trial
    assert any(link.label.startswith("Open the best trial") for link in test.get("page_link"))


def test_a_confirmed_study_names_its_best_with_the_fresh_seeds_it_solved_on(home):
    spec = finished_study(home, confirm_trials=2, confirm_seeds=2)
    test = app(PAGE, study=spec.study_id)
    assert not test.exception and not test.error
    table = test.dataframe[0].value
    cells = sorted(cell for cell in table["solved on fresh seeds"] if cell)
    assert len(cells) == 2 and all(cell in ("0/2", "1/2", "2/2") for cell in cells)  # the two best trials
    confirmed = next(caption.value for caption in test.caption if caption.value.startswith("Confirmed:"))
    assert "fresh seeds 2–3" in confirmed and "over all 4 seeds" in confirmed


def test_a_train_share_link_sets_the_studys_base(home):
    test = app(PAGE, algo="qlearning", preset="fast", cfg='{"gamma": 0.95, "total_env_steps": 4000}')
    assert not test.exception and not test.warning
    assert test.selectbox(key="study_algo").value == "qlearning"
    assert any("`gamma=0.95`" in caption.value for caption in test.caption)
    test.multiselect(key="study_vary.qlearning").set_value(["learning_rate.start"]).run()
    next(button for button in test.button if button.label == "Launch study").click().run()
    (spec,), _ = storage.list_studies(home)
    storage.request_stop(storage.study_dir(home, spec.study_id))
    base = spec.base()
    assert (base.gamma, base.total_env_steps) == (0.95, 4000)  # the link's changes, and its budget


def test_a_link_with_an_unusable_setup_says_so_and_starts_from_a_preset(home):
    test = app(PAGE, algo="qlearning", preset="fast", cfg='{"gamma": 7}')
    assert not test.exception
    assert any("gamma" in warning.value and "preset instead" in warning.value for warning in test.warning)
    assert not any("`gamma=7`" in caption.value for caption in test.caption)


def test_a_finished_study_draws_slices_importance_and_a_contour(home):
    spec = finished_study(home, trials=5)
    test = app(PAGE, study=spec.study_id)
    assert not test.exception and not test.error
    figures = [figure(chart) for chart in test.get("plotly_chart")]
    slices = next(fig for fig in figures if len(fig["data"]) == 2 and fig["data"][0]["type"] == "scatter"
                  and "xaxis2" in fig["layout"])
    assert all(len(trace["x"]) == 5 for trace in slices["data"])  # one point per completed trial, per parameter
    contour = next(fig for fig in figures if fig["data"][0]["type"] == "contour")
    assert len(contour["data"][1]["x"]) == 5
    assert any(fig["data"][0]["type"] == "bar" and fig["data"][0]["orientation"] == "h" for fig in figures)


def test_each_trial_shows_its_iqm_with_a_ci_and_its_chance_to_beat_the_best(home):
    spec = finished_study(home, trials=3, seeds=2)
    test = app(PAGE, study=spec.study_id)
    table = test.dataframe[0].value
    best = table.loc[table["Final evaluation"].idxmax()] if "Final evaluation" in table else None
    column = next(name for name in table.columns if name.startswith("IQM"))
    assert all(text.endswith("(n=2)") for text in table[column])  # two seeds behind every number
    chances = table["beats the best"]
    assert all(0.0 <= chance <= 0.5 for chance in chances)  # nobody beats the best more often than not
    assert (chances == 0.5).any()  # the best against itself
    assert best is None or best["beats the best"] == 0.5


def test_the_best_trial_saved_as_a_preset_appears_in_train_and_as_a_studys_base(home):
    from cartpole_core.runs.presets import load_preset_config, user_presets

    spec = finished_study(home)
    test = app(PAGE, study=spec.study_id)
    key = f"study_best_preset.{spec.study_id}"
    test.text_input(key=f"{key}.name").input("fast").run()  # a built-in's name: refused, nothing written
    next(button for button in test.button if button.key == f"{key}.save").click().run()
    assert any("fast" in error.value for error in test.error) and user_presets(home, "qlearning") == ([], [])

    test.text_input(key=f"{key}.name").input("gamma-best").run()
    next(button for button in test.button if button.key == f"{key}.save").click().run()
    assert any("gamma-best" in success.value.replace("\\", "") for success in test.success)  # Markdown-escaped
    (saved,), _ = user_presets(home, "qlearning")
    assert saved.source.startswith(f"study {spec.study_id}")
    from cartpole_core.studies.controller import summarize

    best = summarize(None, spec, storage.load_optuna_study(storage.study_dir(home, spec.study_id)))["best"]
    config = load_preset_config(home, "qlearning", "gamma-best")
    assert config.gamma == best["params"]["gamma"] and config.total_env_steps == 3000

    train = app("pages/train.py", algo="qlearning", preset="gamma-best")
    assert not train.exception
    studies_form = app(PAGE, algo="qlearning", preset="gamma-best")
    assert studies_form.selectbox(key="study_preset.qlearning").value == "gamma-best"


def test_train_links_its_setup_to_a_new_study(home):
    from urllib.parse import parse_qs

    test = app("pages/train.py", algo="qlearning", preset="fast", cfg='{"gamma":0.95}')
    assert not test.exception
    link = next(link.proto for link in test.get("page_link") if "Studies" in link.proto.label)
    assert link.page == "studies"
    query = parse_qs(link.query_string)
    assert query["algo"] == ["qlearning"] and query["preset"] == ["fast"] and '"gamma":0.95' in query["cfg"][0]
