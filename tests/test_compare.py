"""Comparing runs (cartpole_core.runs.compare) and the charts drawn from it (cartpole_core.figures.plots), on
hand-built runs with known configs and results: which setting is best must be readable at a glance and never
mislabelled."""

import math

import pytest

from cartpole_core.config.models import DQNConfig
from cartpole_core.config.presets import preset_config
from cartpole_core.figures.plots import evaluation_figure, group_figure, mean_evaluations, reward_figure
from cartpole_core.records import EpisodeEnded, Evaluated
from cartpole_core.runs.compare import (
    METRICS,
    Improvement,
    compare_groups,
    config_diff,
    default_name,
    differing_fields,
    evaluation_rows,
    fmt_value,
    group_label,
    group_labels,
    group_summary,
    stopped_on_solve,
)
from cartpole_core.runs.store import RunStore, binned_mean_std
from cartpole_core.stats import Estimate

LR_5E3 = preset_config("dqn", "fast", overrides={"learning_rate.start": 5e-3})
FAST = preset_config("dqn", "fast")  # lr 1.6e-2
LR_1E3 = preset_config("dqn", "fast", overrides={"learning_rate.start": 1e-3})


def run(run_id, config, *, group=None, seed=0, name="dqn/fast", solved_at=None, seconds=None, final=None,
        status="completed", preset="fast"):
    """A run as the store lists it; ``solved_at`` is the env step of its first solved evaluation (None: unsolved)."""
    return {"id": run_id, "name": f"{name} · seed {seed}", "algo": config.algo, "preset": preset,
            "config_json": config.to_json(), "seed": seed, "group_id": group, "status": status, "tags": [],
            "solved": solved_at is not None, "steps_to_solve": solved_at,
            "time_to_solve_s": seconds if seconds is not None else (solved_at / 1000 if solved_at else None),
            "final_eval": final, "best_eval": final, "env_steps": 25_000, "episodes": 100}


@pytest.mark.parametrize("config, preset, name", [
    (LR_5E3, "fast", "dqn/fast lr=5e-3"),
    (preset_config("ppo", "seed", gamma=0.97, hidden_sizes=[32, 32]), "seed", "ppo/seed gamma=0.97 hidden=32-32"),
    (FAST, "fast", "dqn/fast"),
    (preset_config("qlearning", "fast", total_env_steps=200_000), "fast", "qlearning/fast steps=200k"),
    (preset_config("dqn", "fast", double_dqn=False, overrides={"epsilon.end": 0.1}), "fast",
     "dqn/fast eps_end=0.1 double=off"),
    (preset_config("ppo", "fast", critic_learning_rate=1e-3, overrides={"learning_rate.end": 1e-4}), "fast",
     "ppo/fast critic_lr=1e-3 lr_end=1e-4"),
    (DQNConfig(batch_size=128), None, "dqn/custom batch=128"),
    (preset_config("qlearning", "seed", max_episode_steps=200, n_envs=4), "seed", "qlearning/seed ep_cap=200 envs=4"),
])
def test_default_names_say_what_differs_from_the_preset(config, preset, name):
    assert default_name(config, preset) == name


def test_a_name_with_many_overrides_stays_short_and_says_how_many_it_left_out():
    name = default_name(preset_config("dqn", "seed"), None)  # the seed's DQN against DQN's defaults: 20 fields
    assert name.startswith("dqn/custom lr=5e-4 gamma=0.9 ")
    assert len(name) <= 80 and name.endswith(" more")
    shown = name.split()[1:-2]
    assert int(name.split()[-2].lstrip("+")) + len(shown) > 10


def test_values_are_compact_and_readable():
    assert [fmt_value(v) for v in (5e-3, 0.97, 200_000, 1_250_000, 1234, 1.0, [128, 128], True, False, None)] == \
        ["5e-3", "0.97", "200k", "1.25M", "1234", "1", "128-128", "on", "off", "none"]
    assert fmt_value([-2.4, -3.0]) == "-2.4,-3"  # not "-2.4--3"


def test_a_group_is_labelled_by_its_common_name_and_size():
    members = [run(f"r{seed}", LR_5E3, group="g1", seed=seed, name="dqn/fast lr=5e-3") for seed in range(3)]
    assert group_label(members) == "dqn/fast lr=5e-3 ×3"
    assert group_label(members[:1]) == "dqn/fast lr=5e-3 · seed 0"  # a single run keeps its own name


def test_colliding_labels_are_told_apart_by_their_settings_then_their_ids():
    # Runs launched before names said what differs: every group is "dqn/fast · seed N".
    low = [run(f"a{seed}", LR_1E3, group="group-dqn-1-aaaaaa", seed=seed) for seed in range(3)]
    high = [run(f"b{seed}", FAST, group="group-dqn-1-bbbbbb", seed=seed) for seed in range(3)]
    again = [run(f"c{seed}", FAST, group="group-dqn-1-cccccc", seed=seed) for seed in range(3)]
    labels = group_labels([low, high, again])
    assert len(set(labels)) == 3
    assert labels[0] == "dqn/fast ×3 lr=1e-3"
    assert labels[1] == "dqn/fast ×3 lr=0.016 #bbbbbb" and labels[2] == "dqn/fast ×3 lr=0.016 #cccccc"
    alone = [run("x", FAST, seed=0), run("y", FAST, seed=0)]  # two ungrouped runs, same name and config
    assert len(set(group_labels([[alone[0]], [alone[1]]]))) == 2


def test_differing_fields_are_the_settings_that_differ_not_the_seed():
    runs = [run("a", LR_5E3, seed=0), run("b", FAST.with_changes(gamma=0.9), seed=1), run("c", FAST, seed=2)]
    assert differing_fields(runs) == ["learning_rate.start", "gamma"]
    assert differing_fields(runs[2:]) == []
    # Another algorithm's fields count only where present: the PPO run does not make every DQN field "differ".
    ppo = preset_config("ppo", "fast", hidden_sizes=[32, 32])
    mixed = [run("a", FAST), run("b", FAST, seed=1), run("p", ppo, preset="fast")]
    assert "batch_size" not in differing_fields(mixed) and "hidden_sizes" in differing_fields(mixed)


def test_config_diff_is_keyed_by_run_with_each_group_once():
    # Two groups and a single run; every name collides ("dqn/fast · seed 0" three times).
    group_a = [run(f"a{seed}", LR_5E3, group="group-a", seed=seed) for seed in range(3)]
    group_b = [run(f"b{seed}", FAST, group="group-b", seed=seed) for seed in range(2)]
    single = run("s", LR_1E3, seed=0)
    diff = config_diff([group_a[2], single, *group_b, group_a[0], group_a[1]])  # any selection order
    assert diff.fields == ["learning_rate.start"]
    assert [column.run_ids for column in diff.columns] == [("a0", "a1", "a2"), ("s",), ("b0", "b1")]
    assert [column.key for column in diff.columns] == ["a0", "s", "b0"]
    table = diff.table()
    assert len(table) == 3  # nothing lost to a name collision
    assert [values["learning_rate.start"] for values in table.values()] == ["5e-3", "1e-3", "0.016"]
    assert list(table)[0] == "dqn/fast ×3"

    # Part of a group selected: its label counts what is selected. Only one group: nothing differs.
    assert config_diff(group_a[:2]).fields == [] and len(config_diff(group_a[:2]).columns) == 1
    assert list(config_diff([group_a[0], group_a[1], single]).table())[0] == "dqn/fast ×2"


def test_a_group_whose_runs_differ_is_split_by_config():
    members = [run("a0", LR_5E3, group="g", seed=0), run("a1", FAST, group="g", seed=1),
               run("a2", LR_5E3, group="g", seed=2)]
    diff = config_diff(members)
    assert [column.run_ids for column in diff.columns] == [("a0", "a2"), ("a1",)]
    assert [column.values["learning_rate.start"] for column in diff.columns] == [5e-3, 1.6e-2]


def test_config_diff_across_algorithms_shows_the_algorithm_and_dashes_for_missing_fields():
    ppo = preset_config("ppo", "fast", gamma=0.9)
    small_batch = FAST.with_changes(batch_size=64)
    diff = config_diff([run("d", FAST), run("e", small_batch, name="dqn/fast batch=64"),
                        run("p", ppo, name="ppo/fast gamma=0.9")])
    assert diff.fields[0] == "algo" and "gamma" in diff.fields and "batch_size" in diff.fields
    assert "critic_learning_rate" not in diff.fields  # PPO's alone: not a difference among these runs
    table = diff.table()
    assert table["dqn/fast · seed 0"]["algo"] == "dqn" and table["dqn/fast · seed 0"]["gamma"] == "0.99"
    assert table["dqn/fast batch=64 · seed 0"]["batch_size"] == "64"
    assert table["ppo/fast gamma=0.9 · seed 0"]["gamma"] == "0.9"
    assert table["ppo/fast gamma=0.9 · seed 0"]["batch_size"] == "—"


def test_group_summary_ranks_groups_by_seeds_solved_then_the_iqm_of_steps():
    fast_sure = [run(f"a{i}", LR_5E3, group="A", seed=i, name="dqn/fast lr=5e-3", solved_at=s, final=490.0)
                 for i, s in enumerate([10_000, 12_000, 14_000])]
    faster_sure = [run(f"d{i}", LR_1E3, group="D", seed=i, name="dqn/fast lr=1e-3", solved_at=s, final=480.0)
                   for i, s in enumerate([7_000, 9_000])]
    lucky = [run(f"b{i}", FAST, group="B", seed=i, name="dqn/fast", solved_at=s, final=f)
             for i, (s, f) in enumerate([(6_000, 500.0), (8_000, 480.0), (None, 120.0)])]
    one_of_two = [run(f"c{i}", FAST.with_changes(gamma=0.9), group="C", seed=i, name="dqn/fast gamma=0.9",
                      solved_at=s, final=f) for i, (s, f) in enumerate([(4_000, 480.0), (None, 100.0)])]
    rows = group_summary([*lucky, *one_of_two, *fast_sure, *faster_sure])
    assert [row["group_id"] for row in rows] == ["D", "A", "B", "C"]
    d, a, b, c = rows
    assert (d["label"], d["seeds"], d["solved"], d["steps_to_solve"].iqm, d["steps_range"]) == \
        ("dqn/fast lr=1e-3 ×2", 2, 2, 8000, "7,000 – 9,000")
    assert a["steps_to_solve"].iqm == 12_000 and a["steps_range"] == "10,000 – 14,000"
    assert a["final_eval"] == Estimate(490.0, 490.0, 490.0, n=3)
    assert METRICS["final_eval"].estimate_text(a["final_eval"]) == "490.0 (n=3)"  # seeds that agree: no interval
    # Fewer than four seeds: the IQM trims none, so one unsolved seed of three makes it "not solved" however fast
    # the others were; the range still shows the fastest seed.
    assert b["solved_fraction"] == pytest.approx(2 / 3) and b["steps_to_solve"].iqm == math.inf
    assert b["steps_range"] == "6,000 – not solved" and b["final_eval"].iqm == pytest.approx(1100 / 3)
    assert c["steps_to_solve"].iqm == math.inf and c["time_to_solve"].iqm == math.inf
    assert c["steps_range"] == "4,000 – not solved"
    assert a["hyperparameters"] == {"learning_rate.start": "5e-3", "gamma": "0.99"}
    assert c["hyperparameters"] == {"learning_rate.start": "0.016", "gamma": "0.9"}


def test_a_four_seed_group_is_the_iqm_of_its_middle_seeds_with_its_interval_and_seed_count():
    """Hand-computed: four seeds, one unsolved. Sorted, steps to solve are 6,000, 8,000, 10,000 and ∞; the IQM trims
    one from each end (the fastest and the unsolved) and is the mean of 8,000 and 10,000."""
    seeds = [(8_000, 4.0, 480.0), (6_000, 3.0, 500.0), (None, None, 120.0), (10_000, 5.0, 490.0)]
    group = [run(f"r{i}", LR_5E3, group="G", seed=i, solved_at=s, seconds=t, final=f)
             for i, (s, t, f) in enumerate(seeds)]
    (row,) = group_summary(group)
    steps, seconds, final = row["steps_to_solve"], row["time_to_solve"], row["final_eval"]
    assert (steps.iqm, seconds.iqm, final.iqm) == (9_000, 4.5, (480 + 490) / 2)
    assert steps.n == seconds.n == final.n == 4
    # A resample with two or more copies of the unsolved seed has an IQM of ∞: 26 % of them (1 - (3/4)^4 -
    # 4·(1/4)(3/4)^3), far above the 2.5 % the interval's top leaves out, so its top is "not solved".
    assert 6_000 <= steps.low < 9_000 and steps.high == math.inf and 3.0 <= seconds.low < 4.5
    assert seconds.high == math.inf
    assert 120 <= final.low < final.iqm < final.high <= 500
    text = METRICS["steps_to_solve"].estimate_text(steps)
    assert text.startswith("9,000 [") and text.endswith(", not solved] (n=4)")
    assert METRICS["final_eval"].estimate_text(final) == f"485.0 [{final.low:.1f}, {final.high:.1f}] (n=4)"


def test_a_group_cannot_look_fast_on_one_lucky_seed():
    """Two of four seeds unsolved: the IQM keeps one of them, so it is not solved, however fast the lucky seed."""
    group = [run(f"r{i}", LR_5E3, group="G", seed=i, solved_at=s, final=f)
             for i, (s, f) in enumerate([(1_000, 500.0), (None, 90.0), (20_000, 480.0), (None, 60.0)])]
    (row,) = group_summary(group)
    assert row["steps_to_solve"].iqm == math.inf and row["solved_fraction"] == 0.5
    assert METRICS["steps_to_solve"].estimate_text(row["steps_to_solve"]).startswith("not solved [1,000, ")
    queued = run("q", LR_5E3, status="queued")  # no evaluation yet: no final eval to estimate
    (row,) = group_summary([queued])
    assert row["final_eval"] is None and METRICS["steps_to_solve"].estimate_text(row["steps_to_solve"]) == \
        "not solved (n=1)"
    assert METRICS["final_eval"].estimate_text(None) == "—"


def test_group_summary_reads_real_store_rows(tmp_path):
    store = RunStore(tmp_path)
    for seed, evaluations in enumerate([[(500, 200.0), (1000, 480.0)], [(500, 100.0), (1000, 300.0)]]):
        store.create_run(f"r{seed}", LR_5E3.to_json(), "dqn", seed, name=f"dqn/fast lr=5e-3 · seed {seed}",
                         preset="fast", group_id="g")
        store.claim(f"r{seed}")
        store.append_events(f"r{seed}", [Evaluated(steps, 3, mean, 5.0, mean >= 475, steps / 1000)
                                         for steps, mean in evaluations])
        store.set_status(f"r{seed}", "completed")
    store.create_run("q", FAST.to_json(), "dqn", 0, preset="fast")  # queued, nothing yet
    rows = group_summary(store.list_runs())
    assert [row["label"] for row in rows] == ["dqn/fast lr=5e-3 ×2", "q"]
    assert rows[0]["solved"] == 1 and rows[0]["steps_to_solve"].iqm == math.inf
    assert rows[0]["steps_range"] == "1,000 – not solved"
    assert rows[0]["final_eval"].iqm == pytest.approx(390.0) and rows[0]["final_eval"].n == 2
    assert rows[1]["active"] == 1 and rows[1]["final_eval"] is None


def test_which_group_is_better_is_the_probability_of_improvement_over_seed_pairs():
    sure = [run(f"a{i}", LR_5E3, group="A", seed=i, name="dqn/fast lr=5e-3", solved_at=s, final=f)
            for i, (s, f) in enumerate([(2_000, 480.0), (3_000, 490.0), (4_000, 500.0), (None, 470.0)])]
    lucky = [run(f"b{i}", FAST, group="B", seed=i, name="dqn/fast", solved_at=s, final=f)
             for i, (s, f) in enumerate([(1_000, 480.0), (None, 100.0), (None, 200.0), (None, 300.0)])]
    final = compare_groups([*lucky, *sure], "final_eval")
    # A's seeds against B's 480, 100, 200, 300: 480 wins 3 and ties 1, 490 and 500 win 4, 470 wins 3: 14.5 of 16.
    assert final.pairs == [Improvement("dqn/fast lr=5e-3 ×4", "dqn/fast ×4", 14.5 / 16, (4, 4))]
    assert final.seeds == {"dqn/fast ×4": 4, "dqn/fast lr=5e-3 ×4": 4}
    # Fewer steps is better. 2,000, 3,000 and 4,000 each lose to B's 1,000 and beat its three unsolved seeds; A's
    # unsolved seed loses to 1,000 and ties the three: (3 + 3 + 3 + 1.5) of 16 — the lucky fast seed does not win.
    steps = compare_groups([*lucky, *sure], "steps_to_solve")
    assert steps.pairs == [Improvement("dqn/fast lr=5e-3 ×4", "dqn/fast ×4", 10.5 / 16, (4, 4))]
    assert steps.metric.to_solve and not final.metric.to_solve


def test_comparing_groups_leaves_out_a_group_without_values_and_names_an_unknown_metric():
    evaluated = [run("a", LR_5E3, group="A", name="dqn/fast lr=5e-3", final=300.0)]
    queued = [run("q", FAST, group="Q", status="queued")]
    comparison = compare_groups([*evaluated, *queued], "final_eval")
    assert comparison.pairs == [] and comparison.seeds == {"dqn/fast lr=5e-3 · seed 0": 1, "dqn/fast · seed 0": 0}
    assert len(compare_groups([*evaluated, *queued], "time_to_solve").pairs) == 1  # unsolved: ∞, a value
    with pytest.raises(ValueError, match="metric 'speed' is unknown; allowed: final_eval, steps_to_solve, "
                                         "time_to_solve"):
        compare_groups(evaluated, "speed")


def test_a_run_that_stopped_on_solve_is_carried_forward_as_solved():
    stopped = run("s", FAST, solved_at=2000, final=480.0)  # `fast` stops at its first solved evaluation
    unstoppable = run("u", FAST.with_changes(stop_on_solve=False), solved_at=2000, final=480.0)
    assert stopped_on_solve(stopped) and not stopped_on_solve(unstoppable)
    assert not stopped_on_solve(run("r", FAST, solved_at=2000, status="running"))
    evaluations = [{"env_steps": 1000, "episodes": 10, "mean_return": 200.0, "std_return": 9.0, "time_s": 1.0},
                   {"env_steps": 2000, "episodes": 25, "mean_return": 480.0, "std_return": 3.0, "time_s": 2.0}]
    rows = evaluation_rows(evaluations, "env_steps", until=4000)
    assert [(row["env_steps"], row["mean_return"], row["carried"]) for row in rows] == \
        [(1000, 200.0, False), (2000, 480.0, False), (4000, 480.0, True)]
    assert [row["episode"] for row in evaluation_rows(evaluations, "episode")] == [10, 25]

    # Drawn: the stopped group's mean reaches the end of the range at its solved value, not a curve that ends.
    other = [{**row, "env_steps": steps, "mean_return": value}
             for row, steps, value in zip(evaluations * 2, (1000, 2000, 3000, 4000), (100.0, 150.0, 200.0, 250.0))]
    groups = [{"name": name, "curve": binned_mean_std([rows], "env_steps", "mean_return"), "runs": [rows]}
              for name, rows in (("stopped", rows), ("slow", evaluation_rows(other, "env_steps")))]
    figure = evaluation_figure(groups)
    mean = next(trace for trace in figure.data if trace.name == "stopped mean")
    assert max(mean.x) > 3900 and mean.y[-1] == 480.0
    assert any("solved — training stopped" in (trace.hovertemplate or "") for trace in figure.data)
    assert [shape.y0 for shape in figure.layout.shapes] == [475.0]


def test_training_returns_mark_where_a_seed_stopped_because_it_solved():
    episodes = [[{"env_steps": 100 * i, "episode_return": 50.0 * i} for i in range(1, n)] for n in (5, 9)]
    figure = group_figure([{"name": "dqn/fast ×2", "curve": binned_mean_std(episodes), "runs": [(e, []) for e in
                                                                                               episodes],
                            "stopped": [True, False]}], method="none").to_plotly_json()
    (marker,) = [trace for trace in figure["data"] if "solved — training stopped" in (trace.get("hovertemplate") or "")]
    assert list(marker["x"]) == [400] and list(marker["y"]) == [200.0]
    names = [trace["name"] for trace in figure["data"] if trace.get("name") and trace.get("showlegend") is not False]
    assert names == ["dqn/fast ×2 mean"]  # one legend entry per group; its band and markers go with it


def test_group_evaluations_are_the_mean_and_std_across_seeds():
    seeds = [[{"env_steps": 1000, "episodes": 4, "mean_return": 100.0}, {"env_steps": 2000, "episodes": 8,
                                                                        "mean_return": 300.0}],
             [{"env_steps": 1000, "episodes": 6, "mean_return": 200.0}, {"env_steps": 2000, "episodes": 10,
                                                                        "mean_return": 500.0}]]
    assert mean_evaluations(seeds) == {"x": [1000.0, 2000.0], "mean": [150.0, 400.0], "std": [50.0, 100.0],
                                       "n": [2, 2]}
    assert mean_evaluations(seeds, "episode")["x"] == [5.0, 9.0]
    # Vectorized envs put the seeds' evaluations a few steps apart: still one point per evaluation.
    apart = [[{**row, "env_steps": row["env_steps"] + 16 * i} for row in seed] for i, seed in enumerate(seeds)]
    assert mean_evaluations(apart) == {"x": [1008.0, 2008.0], "mean": [150.0, 400.0], "std": [50.0, 100.0],
                                       "n": [2, 2]}
    # A seed that stopped on solve after its first evaluation stays in the mean at its solved value.
    stopped = [[{"env_steps": 1000, "episodes": 4, "mean_return": 480.0}], seeds[1]]
    assert mean_evaluations(stopped, stopped=[True, False])["mean"] == [340.0, 490.0]


@pytest.mark.parametrize("cap, best_eval, lines", [
    (500, 100.0, [475.0]),  # reachable in training
    (100, 90.0, [100.0]),  # the Q-learning seed's 100-step episodes: the cap, and an axis that fits them
    (100, 490.0, [475.0, 100.0]),  # evaluations (full 500-step episodes) came near solved
])
def test_the_solved_line_is_drawn_only_where_a_curve_can_reach_it(cap, best_eval, lines):
    episodes = [{"env_steps": 100 * i, "episode_return": min(cap, 10.0 * i)} for i in range(1, 20)]
    evaluations = [{"env_steps": 1000, "episodes": 10, "mean_return": best_eval, "std_return": 1.0}]
    figure = reward_figure(episodes, evaluations, episode_cap=cap).to_plotly_json()
    assert [shape["y0"] for shape in figure["layout"]["shapes"]] == lines
    assert "range" not in figure["layout"].get("yaxis", {})  # the axis fits the data


def test_a_real_store_run_feeds_the_evaluation_rows(tmp_path):
    store = RunStore(tmp_path)
    store.create_run("r", FAST.to_json(), "dqn", 0, preset="fast")
    store.claim("r")
    store.append_events("r", [EpisodeEnded(1, 500, 20.0, 20, 0.5, 1e-3, 0.5), Evaluated(500, 1, 480.0, 2.0, True, 0.5)])
    store.set_status("r", "completed")
    stored = store.get_run("r")
    assert stopped_on_solve(stored)
    rows = evaluation_rows(store.evaluations("r"), "time_s", until=3.0)
    assert [(row["time_s"], row["carried"]) for row in rows] == [(0.5, False), (3.0, True)]
