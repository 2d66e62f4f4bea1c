"""Runs & compare (and the live view's group and clip captions) through Streamlit's AppTest: two settings of one
algorithm, trained for real on small budgets, must be told apart and ranked at a glance; groups written to the store
without training show their statistics (IQM, interval, seeds) and which of them is better."""

import pytest
from app_support import app, figure, shown, trained_group
from streamlit import dataframe_util

from cartpole_core.config.presets import preset_config
from cartpole_core.engine.agent import save_checkpoint
from cartpole_core.engine.train import train
from cartpole_core.jobs.execution import execute_stored_run
from cartpole_core.jobs.queue import submit
from cartpole_core.records import Evaluated
from cartpole_core.runs.compare import default_name, group_summary
from cartpole_core.runs.store import RunStore

FAST_LR = preset_config("dqn", "fast").learning_rate.start  # a group at the preset's lr is named plain "dqn/fast"


def trained(home, gamma: float, seeds=(0, 1), total_env_steps=4000) -> list[str]:
    """As ``trained_group``, with the discount factor set: Q-learning `fast` runs trained to completion."""
    store = RunStore(home)
    config = preset_config("qlearning", "fast", total_env_steps=total_env_steps, stop_on_solve=False, gamma=gamma)
    _, run_ids = submit(store, config, list(seeds), preset="fast")
    for run_id in run_ids:
        store.claim(run_id)
        execute_stored_run(store, run_id)
    return run_ids


def stored_group(home, group: str, learning_rate: float, seeds: list[tuple[float, int | None]]) -> list[str]:
    """A DQN group as a finished launch leaves it, written without training: per seed, one evaluation returning
    its final eval, solved at that many env steps (at a thousandth of them in seconds) or not (None)."""
    store = RunStore(home)
    config = preset_config("dqn", "fast", overrides={"learning_rate.start": learning_rate})
    run_ids = []
    for seed, (final, solved_at) in enumerate(seeds):
        run_id = f"{group}-{seed}"
        store.create_run(run_id, config.to_json(), "dqn", seed, name=f"{default_name(config, 'fast')} · seed {seed}",
                         preset="fast", group_id=group)
        store.claim(run_id)
        steps = solved_at or 5000
        store.append_events(run_id, [Evaluated(steps, 10, final, 5.0, solved_at is not None, steps / 1000)])
        store.set_status(run_id, "completed")
        run_ids.append(run_id)
    return run_ids


def dataframe(test, columns: set[str]):
    """The first st.dataframe showing all of ``columns``."""
    return next(frame.value for frame in test.dataframe if columns <= set(frame.value.columns))


def dataframe_text(test, columns: set[str]):
    """As ``dataframe``, as its cells read: a styled table's text, not its values."""
    frame = next(frame for frame in test.dataframe if columns <= set(frame.value.columns))
    return dataframe_util.convert_arrow_bytes_to_pandas_df(frame.proto.arrow_data.styler.display_values)


def legend(chart: dict) -> list[str]:
    return [trace["name"] for trace in chart["data"] if trace.get("name") and trace.get("showlegend") is not False]


def test_two_settings_are_columns_ranked_groups_one_diff_row_and_two_distinct_curves(home):
    default = trained_group(home, seeds=(0, 1))  # gamma 0.99
    low = trained(home, 0.9, seeds=(0, 1))
    store = RunStore(home)
    test = app("pages/runs.py", select=",".join(default + low))
    assert not test.exception

    runs = dataframe(test, {"name", "id"})
    assert "gamma" in runs.columns  # the one setting that differs, as a column beside the names
    gammas = dict(zip(runs["id"], runs["gamma"]))
    assert {gammas[run_id] for run_id in default} == {0.99} and {gammas[run_id] for run_id in low} == {0.9}
    groups = {store.get_run(run_id)["group_id"] for run_id in default + low}
    assert set(runs["group"]) == groups  # the full group id

    summary = dataframe(test, {"group", "solved", "steps to solve: IQM [95 % CI]"})
    assert len(summary) == 2 and set(summary["group id"]) == groups
    assert summary["gamma"].tolist() in (["0.99", "0.9"], ["0.9", "0.99"])
    assert summary["solved"].tolist() == sorted(summary["solved"], reverse=True)  # best first
    for _, row in summary.iterrows():  # each row is its own group's seeds
        members = store.list_runs(group_id=row["group id"])
        assert row["seeds"] == 2 and row["solved"] == sum(run["solved"] for run in members) / 2
    assert summary["group"].tolist() == [row["label"] for row in group_summary(store.list_runs())]
    labels = dict(zip(summary["group id"], summary["group"]))
    assert len(set(labels.values())) == 2

    diff = dataframe(test, set(labels.values()))
    assert diff.index.tolist() == ["gamma"] and diff.shape == (1, 2)  # one column per group, not per seed
    default_group = store.get_run(default[0])["group_id"]
    low_group = store.get_run(low[0])["group_id"]
    assert diff.loc["gamma", labels[default_group]] == "0.99" and diff.loc["gamma", labels[low_group]] == "0.9"

    evaluation = figure(test.get("plotly_chart")[0])  # the evaluation view is the default
    assert sorted(legend(evaluation)) == sorted(f"{label} mean" for label in labels.values())  # one per group
    assert "greedy evaluation" in evaluation["layout"]["yaxis"]["title"]["text"]

    test.segmented_control(key="cmp_view").set_value("training").run()
    training = figure(test.get("plotly_chart")[0])
    assert sorted(legend(training)) == sorted(f"{label} mean" for label in labels.values())
    assert "episode return" in training["layout"]["yaxis"]["title"]["text"]


def test_a_whole_group_is_renamed_and_tagged_at_once_keeping_each_seed(home):
    run_ids = trained_group(home, seeds=(0, 1), total_env_steps=1000)
    test = app("pages/runs.py", select=",".join(run_ids))
    name = next(field for field in test.text_input if field.label.startswith("Name of the 2 selected runs"))
    assert name.value == "qlearning/fast steps=1k stop_on_solve=off"  # their common base
    name.set_value("gamma sweep")
    next(field for field in test.text_input if field.label.startswith("Tags")).set_value("sweep, q")
    next(button for button in test.button if button.label == "Save for 2 runs").click().run()
    assert not test.exception and not test.error
    store = RunStore(home)
    assert [(store.get_run(r)["name"], store.get_run(r)["tags"]) for r in run_ids] == [
        ("gamma sweep · seed 0", ["q", "sweep"]), ("gamma sweep · seed 1", ["q", "sweep"])]


def test_live_view_titles_a_group_by_its_label_and_the_clip_does_not_contradict_the_evaluation(home):
    run_ids = trained_group(home, seeds=(0, 1), total_env_steps=1000)
    store = RunStore(home)
    group = store.get_run(run_ids[0])["group_id"]
    test = app("pages/live.py", group=group)
    assert not test.exception
    assert shown(test.title[0].value) == "qlearning/fast steps=1k stop_on_solve=off ×2"

    test = app("pages/live.py", run=run_ids[0])
    captions = [caption.value for caption in test.caption]
    last = store.evaluations(run_ids[0])[-1]
    clip = next(caption for caption in captions if "one episode (seed 0)" in caption)
    assert "200 steps" in clip and clip.startswith("final · ")
    assert f"This checkpoint's evaluation: mean return {last['mean_return']:.0f} ± {last['std_return']:.0f} over " \
           f"20 episodes at {last['env_steps']:,} env steps" in " ".join(captions)


def test_the_clip_of_a_training_run_is_captioned_with_its_checkpoints_evaluation_not_a_later_one(home):
    """The clip is remade at most every few seconds while the chart shows each evaluation as it comes: beside the
    clip, the evaluation that judged the policy it plays."""
    store = RunStore(home)
    config = preset_config("qlearning", "fast", total_env_steps=2000, stop_on_solve=False)
    _, (run_id,) = submit(store, config, [0], preset="fast")
    store.claim(run_id)  # training, as far as the page can tell
    agent, _ = train(config, seed=0)
    path = save_checkpoint(agent, store.run_dir(run_id) / "step-000001000.pt", env_steps=1000, kind="periodic")
    store.add_artifact(run_id, "periodic", 1000, path)
    store.append_events(run_id, [Evaluated(1000, 30, 120.0, 8.0, False, 0.1),
                                 Evaluated(2000, 40, 490.0, 4.0, True, 0.2)])  # after the clip's checkpoint
    captions = " ".join(caption.value for caption in app("pages/live.py", run=run_id).caption)
    assert "at 1,000 env steps · one episode" in captions
    assert "This checkpoint's evaluation: mean return 120 ± 8 over 20 episodes at 1,000 env steps — not solved" \
        in captions
    assert "490" not in captions


@pytest.mark.parametrize("algo, label", [("ppo", "Learning rate"), ("dqn", "Exploration & learning rate")])
def test_live_view_names_the_exploration_view_by_what_the_algorithm_has(home, algo, label):
    store = RunStore(home)
    _, (run_id,) = submit(store, preset_config(algo, "fast"), [0], preset="fast")
    store.claim(run_id)  # training, as far as the page can tell (the page's scheduler leaves it alone)
    test = app("pages/live.py", run=run_id)
    assert not test.exception
    assert label in test.segmented_control(key="view").options


def test_deleting_selected_runs_selects_nothing_else(home):
    """Two of four runs selected and deleted: the other two stay, and none of them becomes selected (a selection
    kept as row numbers would now point at them, and the Delete button would offer to delete runs never picked)."""
    doomed = trained_group(home, seeds=(0, 1))
    kept = trained(home, 0.9, seeds=(0, 1))
    test = app("pages/runs.py", select=",".join(doomed))
    assert test.button(key="delete").label == "Delete 2 run(s)"
    test.button(key="delete").click().run()
    test.button(key="confirm_yes").click().run()
    assert not test.exception
    assert sorted(run["id"] for run in RunStore(home).list_runs()) == sorted(kept)
    assert "select" not in test.query_params
    assert "delete" not in [button.key for button in test.button]  # nothing selected: nothing offered to delete


def test_groups_show_their_iqm_interval_and_seeds_and_which_one_beats_the_other(home):
    """Two groups of four seeds (stored, not trained). Sure: final evals 480, 490, 500, 470; solved at 2,000, 3,000
    and 4,000 steps, one seed not. Lucky: 480, 100, 200, 300; one seed solved, fast (1,000 steps), three not."""
    sure = stored_group(home, "sure", 5e-3, [(480.0, 2000), (490.0, 3000), (500.0, 4000), (470.0, None)])
    lucky = stored_group(home, "lucky", FAST_LR, [(480.0, 1000), (100.0, None), (200.0, None), (300.0, None)])
    test = app("pages/runs.py", select=",".join(sure + lucky))
    assert not test.exception

    values = dataframe(test, {"group", "steps to solve: IQM [95 % CI]"})
    text = dataframe_text(test, {"group", "steps to solve: IQM [95 % CI]"})
    assert values["group"].tolist() == ["dqn/fast lr=5e-3 ×4", "dqn/fast ×4"]  # sure first: more solved
    # The IQM of steps to solve trims the fastest and the unsolved seed: (3,000 + 4,000) / 2; lucky's keeps two of
    # its unsolved seeds, so it is not solved however fast its one seed was. The column sorts by the IQM, ∞ last.
    assert values["steps to solve: IQM [95 % CI]"].tolist() == [3500, float("inf")]
    steps, seconds, final = (text[f"{title}: IQM [95 % CI]"].tolist()
                             for title in ("steps to solve", "time to solve", "final eval"))
    assert steps[0].startswith("3,500 [") and steps[0].endswith(", not solved] (n=4)")
    assert steps[1].startswith("not solved [") and steps[1].endswith("(n=4)")
    assert seconds[0].startswith("3.50 s [") and seconds[0].endswith("(n=4)")
    assert final[0].startswith("485.0 [") and final[1].startswith("250.0 [")  # (480 + 490) / 2, (200 + 300) / 2
    assert values["final eval: IQM [95 % CI]"].tolist() == [485.0, 250.0]
    assert "one lucky seed cannot make a group look fast" in " ".join(caption.value for caption in test.caption)

    def verdict() -> str:
        return next(shown(element.value) for element in test.markdown if "beats" in element.value)

    # 480 wins 3 of 4 and ties 1, 490 and 500 win all, 470 wins 3: 14.5 of 16 seed pairs.
    assert verdict() == "- **dqn/fast lr=5e-3 ×4** beats **dqn/fast ×4** in 91 % of seed pairs (4 × 4 seeds)"
    test.segmented_control(key="better_metric").set_value("steps_to_solve").run()
    # Fewer steps wins: sure's three solved seeds lose to lucky's 1,000 and beat its three unsolved ones; its unsolved
    # seed ties those three: (3 + 3 + 3 + 1.5) of 16.
    assert verdict() == "- **dqn/fast lr=5e-3 ×4** beats **dqn/fast ×4** in 66 % of seed pairs (4 × 4 seeds)"
    assert "solving in fewer env steps; a seed that never solved is slowest" in " ".join(c.value for c in test.caption)
    assert not test.warning


def test_with_one_seed_per_group_the_page_says_the_percentages_mean_little(home):
    one = stored_group(home, "one", 5e-3, [(480.0, 2000)])
    other = stored_group(home, "other", FAST_LR, [(300.0, None)])
    test = app("pages/runs.py", select=",".join(one + other))
    assert not test.exception
    assert [warning.value for warning in test.warning if warning.value.startswith("One seed per group")]
    assert "(1 × 1 seeds)" in " ".join(element.value for element in test.markdown)
