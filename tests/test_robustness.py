"""Robustness: evaluation under changed physics and observation noise, the two-factor grid, its figure and page."""

import json
from urllib.parse import parse_qs

import numpy as np
import pytest
from app_support import app, figure, trained_group

from cartpole_core.cli import main
from cartpole_core.config.presets import preset_config
from cartpole_core.engine.agent import load_agent
from cartpole_core.engine.envs import (
    CONDITIONS,
    PHYSICS_DEFAULTS,
    SOLVED_RETURN,
    ConditionError,
    check_condition,
    check_physics,
    make_env,
    make_vec_env,
)
from cartpole_core.engine.evaluate import EVAL_SEED, evaluate_returns
from cartpole_core.engine.train import train
from cartpole_core.runs.store import RunStore
from cartpole_core.watch.replay import rollout
from cartpole_core.watch.robustness import (
    DEFAULT_POINTS,
    FACTORS,
    axis_values,
    evaluate_under,
    grid_figure,
    grid_table,
    multiple_range,
    replay_query_params,
    robustness_grid,
    validate_conditions,
)


def lean_policy(obs: np.ndarray) -> np.ndarray:
    """Push towards where the pole is falling: a deterministic hand-written controller."""
    return (obs[:, 2] + 0.5 * obs[:, 3] > 0).astype(np.int64)


@pytest.fixture(scope="module")
def solver():
    agent, result = train(preset_config("qlearning", "fast"), seed=0)
    assert result.final_eval_mean >= SOLVED_RETURN  # the tests below are about a policy that solves CartPole
    return agent


@pytest.mark.parametrize("policy", ["solver", "lean"])
def test_grid_at_default_physics_and_no_noise_equals_the_plain_evaluation(solver, policy):
    act = solver.act_batch if policy == "solver" else lean_policy
    plain = evaluate_returns(act)
    single = robustness_grid(solver if policy == "solver" else lean_policy, "gravity", [9.8], "obs_noise", [0.0])
    assert single.mean[0, 0] == plain.mean() and single.std[0, 0] == plain.std()
    grid = robustness_grid(act, "force_mag", axis_values("force_mag", 3, 0.5, 2.0),
                           "length", axis_values("length", 3, 0.5, 2.0), episodes=10)
    assert grid.mean.shape == (3, 3) and grid.default_cell == (1, 1)
    assert grid.mean[1, 1] == evaluate_returns(act, episodes=10).mean()
    for row, length in enumerate(grid.y_values):  # every cell is the plain evaluation with that physics
        for col, force in enumerate(grid.x_values):
            assert grid.mean[row, col] == evaluate_returns(act, episodes=10, length=length, force_mag=force).mean()


def test_a_solving_agent_degrades_under_harsh_physics(solver):
    gravity = [PHYSICS_DEFAULTS["gravity"], 4 * PHYSICS_DEFAULTS["gravity"]]
    force = [PHYSICS_DEFAULTS["force_mag"] / 4, PHYSICS_DEFAULTS["force_mag"]]
    grid = robustness_grid(solver, "gravity", gravity, "force_mag", force)
    assert grid.mean[grid.default_cell] >= SOLVED_RETURN
    assert grid.mean.min() < 400  # quadruple gravity with a quarter of the push: far from solved
    assert grid.worst_cell() == (0, 1)
    assert 0 < grid.solved_fraction < 1


def test_observation_noise_hurts_is_reproducible_and_leaves_the_physics_alone(solver):
    plain = evaluate_returns(solver.act_batch)
    noisy = evaluate_under(solver, {"obs_noise": 0.1})
    assert noisy.mean() < plain.mean() - 50
    np.testing.assert_array_equal(noisy, evaluate_under(solver, {"obs_noise": 0.1}))
    assert not np.array_equal(noisy, evaluate_under(solver, {"obs_noise": 0.1}, seed=EVAL_SEED + 1))
    np.testing.assert_array_equal(evaluate_under(solver, {"obs_noise": 0.0}), plain)

    def always_left(obs: np.ndarray) -> np.ndarray:  # ignores what it sees: noise cannot change its episodes
        return np.zeros(len(obs), dtype=np.int64)

    np.testing.assert_array_equal(evaluate_under(always_left, {"obs_noise": 0.5}), evaluate_returns(always_left))


def test_noise_grid_starts_at_the_plain_evaluation_and_reports_progress(solver):
    calls = []
    grid = robustness_grid(solver, "obs_noise", axis_values("obs_noise", 3, 0.0, 0.2), "masspole", [0.1, 0.2],
                           episodes=5, on_progress=lambda done, total: calls.append((done, total)))
    assert grid.x_values == [0.0, 0.1, 0.2]
    assert grid.mean[0, 0] == evaluate_returns(solver.act_batch, episodes=5).mean()
    assert calls == [(done, 6) for done in range(1, 7)]


@pytest.mark.parametrize("args, message", [
    (("wind", [1.0], "gravity", [9.8]), "unknown factor 'wind'; allowed: gravity, masscart"),
    (("gravity", [9.8], "gravity", [5.0]), "both 'gravity'"),
    (("gravity", [], "length", [0.5]), "the gravity axis has no values"),
    (("gravity", [9.8], "length", [0.5, 0.0]), "half pole length (length) must be a number in [0.05, 5] m, got 0"),
    (("masscart", [-1.0], "length", [0.5]), "cart mass (masscart) must be a number in [0.1, 10] kg, got -1"),
    (("obs_noise", [-0.1], "length", [0.5]),
     "observation noise σ (obs_noise) must be a number in [0, 1] obs. units, got -0.1"),
])
def test_invalid_grids_say_what_is_wrong(args, message):
    with pytest.raises(ValueError) as err:
        robustness_grid(lean_policy, *args, episodes=1)
    assert message in str(err.value)


def test_invalid_base_and_axis_ranges_are_rejected():
    with pytest.raises(ValueError, match="unknown factor 'friction'"):
        robustness_grid(lean_policy, "gravity", [9.8], "length", [0.5], base={"friction": 1.0})
    with pytest.raises(ValueError, match=r"must be a number in \[0, 1\] obs. units, got -1"):
        robustness_grid(lean_policy, "gravity", [9.8], "length", [0.5], base={"obs_noise": -1})
    with pytest.raises(ValueError, match="0 < min ≤ max"):
        axis_values("gravity", 5, 2.0, 0.5)
    with pytest.raises(ConditionError, match=r"gravity \(gravity\) must be a number in \[0.98, 98\] m/s², got 0.49"):
        axis_values("gravity", 3, 0.05, 1.0)  # below the allowed 0.1×


def test_axis_values_are_multiples_of_the_default_with_the_default_in_the_middle():
    assert axis_values("gravity", 5, 0.5, 2.0) == [4.9, 6.92965, 9.8, 13.8593, 19.6]
    assert axis_values("obs_noise", 3, 0.0, 0.5) == [0.0, 0.25, 0.5]
    assert all(spec.low <= spec.default <= spec.high for spec in FACTORS.values())
    # The default grid spans each factor's whole allowed range, its ends exactly the range's ends.
    for name, spec in FACTORS.items():
        if spec.is_physics:
            assert multiple_range(name) == (0.1, 10.0)
            values = axis_values(name, DEFAULT_POINTS, *multiple_range(name))
            assert (values[0], values[DEFAULT_POINTS // 2], values[-1]) == (spec.low, spec.default, spec.high)
    assert axis_values("length", 5, 0.1, 10.0) == [0.05, 0.158114, 0.5, 1.58114, 5.0]


def test_the_default_grid_shows_where_a_solving_agent_breaks(solver):
    """Over 0.5×–2× a solved agent scored 500 in every cell; the full range finds its limits."""
    grid = robustness_grid(solver, "force_mag", axis_values("force_mag", DEFAULT_POINTS, *multiple_range("force_mag")),
                           "length", axis_values("length", DEFAULT_POINTS, *multiple_range("length")))
    assert grid.mean[grid.default_cell] >= SOLVED_RETURN
    assert grid.mean.min() < SOLVED_RETURN / 2 and 0 < grid.solved_fraction < 0.5


# ------------------------------------------------------------------------------ one range, one check, everywhere


BAD_CONDITIONS = [
    ("length", 1e300, "half pole length (length) must be a number in [0.05, 5] m, got 1e+300"),
    ("force_mag", 1e308, "push force (force_mag) must be a number in [1, 100] N, got 1e+308"),
    ("length", 0.049, "half pole length (length) must be a number in [0.05, 5] m, got 0.049"),
    ("masspole", 1.01, "pole mass (masspole) must be a number in [0.01, 1] kg, got 1.01"),
    ("gravity", float("nan"), "gravity (gravity) must be a number in [0.98, 98] m/s², got nan"),
    ("masscart", float("inf"), "cart mass (masscart) must be a number in [0.1, 10] kg, got inf"),
    ("gravity", True, "gravity (gravity) must be a number in [0.98, 98] m/s², got True"),
    ("obs_noise", 1.5, "observation noise σ (obs_noise) must be a number in [0, 1] obs. units, got 1.5"),
]


class LeanAgent:
    """The lean policy as an agent replay's rollout can run (one observation at a time)."""

    value_kind = "Q"

    @staticmethod
    def action_values(obs: np.ndarray) -> np.ndarray:
        return np.eye(2)[int(lean_policy(np.reshape(obs, (1, 4)))[0])]


@pytest.mark.parametrize(("name", "value", "message"), BAD_CONDITIONS)
def test_every_entry_point_rejects_a_condition_with_the_same_message(name, value, message, capsys):
    checks = [lambda: check_condition(name, value), lambda: validate_conditions({name: value}),
              lambda: robustness_grid(lean_policy, name, [value], "gravity" if name != "gravity" else "length",
                                      [FACTORS["length"].default if name == "gravity" else 9.8], episodes=1),
              lambda: evaluate_under(lean_policy, {name: value}, episodes=1)]
    if name != "obs_noise":
        checks += [lambda: check_physics({name: value}), lambda: make_env(**{name: value}),
                   lambda: make_vec_env(2, **{name: value})]
    checks.append(lambda: rollout(LeanAgent(), 0, **({"obs_noise": value} if name == "obs_noise"
                                                     else {"physics": {name: value}})))
    for check in checks:
        with pytest.raises(ConditionError) as err:
            check()
        assert str(err.value) == message
    # The replay command checks before it opens the store or the run: the same message, as its one error line.
    option = ["--obs-noise", str(value)] if name == "obs_noise" else ["--physics", f"{name}={json.dumps(value)}"]
    assert main(["replay", "any-run", *option, "--out", "never.mp4"]) == 2
    assert capsys.readouterr().err == f"error: {message}\n"


def test_the_ranges_are_what_every_page_offers():
    assert {name: (spec.low, spec.default, spec.high) for name, spec in CONDITIONS.items()} == {
        "gravity": (0.98, 9.8, 98.0), "masscart": (0.1, 1.0, 10.0), "masspole": (0.01, 0.1, 1.0),
        "length": (0.05, 0.5, 5.0), "force_mag": (1.0, 10.0, 100.0), "obs_noise": (0.0, 0.0, 1.0)}
    assert FACTORS is CONDITIONS and set(PHYSICS_DEFAULTS) == set(CONDITIONS) - {"obs_noise"}
    for name, spec in CONDITIONS.items():  # both ends are allowed
        assert check_condition(name, spec.low) == spec.low and check_condition(name, spec.high) == spec.high


@pytest.mark.parametrize("conditions", [{"obs_noise": 0.1}, {"obs_noise": 0.3, "length": 0.05},
                                        {"force_mag": 1.0, "obs_noise": 0.05}, {"length": 5.0, "obs_noise": 0.2}])
def test_a_one_episode_evaluation_is_the_replay_of_its_seed_noise_and_all(solver, conditions):
    """Robustness and Replay draw the observation noise from one stream per seed (and a one-copy vector env
    starts where the single env does): the evaluation's episode is the very episode the Replay page shows."""
    physics = {name: value for name, value in conditions.items() if name != "obs_noise"}
    for seed in (EVAL_SEED, 7):
        episode = rollout(solver, seed, physics=physics, obs_noise=conditions["obs_noise"])
        assert evaluate_under(solver, conditions, episodes=1, seed=seed)[0] == episode.total_return


def test_figure_and_table_show_what_the_grid_computed():
    grid = robustness_grid(lean_policy, "force_mag", [5.0, 10.0], "length", [0.5, 1.0, 2.0], episodes=3,
                           base={"obs_noise": 0.05})
    fig = grid_figure(grid)
    assert fig.layout.title.text.endswith("· observation noise σ 0.05")
    heatmap = fig.data[0]
    np.testing.assert_array_equal(np.asarray(heatmap.z), grid.mean)
    assert (heatmap.zmin, heatmap.zmax) == (0, 500)  # one colour scale for every grid
    assert fig.layout.xaxis.title.text == "push force (N)" and fig.layout.yaxis.title.text == "half pole length (m)"
    assert heatmap.text[0][1] == f"{grid.mean[0, 1]:.0f}<br>default"
    (outline,) = fig.layout.shapes  # the default cell: column 1, row 0
    assert (outline.x0, outline.x1, outline.y0, outline.y1) == (0.5, 1.5, -0.5, 0.5)
    rows = grid_table(grid)
    assert len(rows) == 6
    assert rows[1] == {"push force (N)": 10.0, "half pole length (m)": 0.5, "mean return": grid.mean[0, 1],
                       "std return": grid.std[0, 1], "solved": bool(grid.mean[0, 1] >= SOLVED_RETURN)}


def test_replay_link_parameters_name_only_what_changed():
    params = replay_query_params("run-1", "final.pt", 7, {"gravity": 9.8, "length": 1.0, "obs_noise": 0.05})
    assert params == {"run": "run-1", "checkpoint": "final.pt", "seed": "7", "length": "1", "obs_noise": "0.05"}


# ------------------------------------------------------------------------------------------------ the page


def test_page_without_checkpoints_says_how_to_get_one(home):  # noqa: F811
    test = app("pages/robustness.py")
    assert not test.exception
    assert any("No run has a checkpoint yet" in info.value for info in test.info)


def test_page_runs_the_grid_and_links_to_the_replay(home):  # noqa: F811
    (run_id,) = trained_group(home, seeds=(0,))
    test = app("pages/robustness.py")
    assert not test.exception
    assert not test.get("plotly_chart")  # nothing computed before the button
    next(button for button in test.button if button.label == "Run grid").click().run()
    assert not test.exception
    heatmap = figure(test.get("plotly_chart")[0])["data"][0]
    artifact = next(a for a in RunStore(home).artifacts(run_id) if a["kind"] == "final")
    expected = robustness_grid(load_agent(artifact["path"]), "force_mag", axis_values("force_mag", 5, 0.1, 10.0),
                               "length", axis_values("length", 5, 0.1, 10.0))  # the whole allowed range
    np.testing.assert_array_equal(np.asarray(heatmap["z"]), expected.mean)
    assert len(test.dataframe) == 1

    test.number_input(key="robust_one_gravity").set_value(19.6).run()
    assert test.get("plotly_chart"), "the grid is kept across reruns"
    links = {link.proto.label: parse_qs(link.proto.query_string) for link in test.get("page_link")
             if link.proto.page == "replay"}
    one = links["Replay under these conditions"]
    assert one == {"run": [run_id], "checkpoint": [artifact["path"].name], "seed": [str(EVAL_SEED)],
                   "gravity": ["19.6"]}
    assert "Replay the worst cell" in links


@pytest.mark.parametrize("integrator", ["euler", "semi-implicit euler"])
def test_the_lean_cartpole_steps_exactly_as_gymnasiums_with_resets_and_changed_physics(integrator):
    """Training and evaluation step ``LeanCartPole`` / ``advance``; replays step Gymnasium's env: the same bits."""
    from gymnasium.envs.classic_control.cartpole import CartPoleVectorEnv

    from cartpole_core.engine.envs import LeanCartPole, apply_physics

    envs = [cls(num_envs=16, max_episode_steps=60) for cls in (CartPoleVectorEnv, LeanCartPole)]
    for env in envs:
        env.kinematics_integrator = integrator
        apply_physics(env, length=0.8, force_mag=14.0, gravity=11.0)
    starts = [env.reset(seed=7)[0] for env in envs]
    np.testing.assert_array_equal(*starts)
    actions = np.random.default_rng(3).integers(0, 2, size=(400, 16))
    ended = 0
    for action in actions:
        gym_step, lean_step = (env.step(action) for env in envs)
        for theirs, ours in zip(gym_step[:4], lean_step[:4]):
            np.testing.assert_array_equal(theirs, ours)
        ended += int((gym_step[2] | gym_step[3]).sum())
    assert ended > 50  # falls, time limits and the resets after them were all compared
