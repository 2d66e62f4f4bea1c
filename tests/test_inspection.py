"""Inspect policy: Q-table heatmaps equal the table, network grids equal the network, and the page shows them."""

import base64
import itertools
import json
import re

import numpy as np
import plotly.io
import pytest
import torch
from streamlit.testing.v1 import AppTest

from cartpole_core.config.presets import preset_config
from cartpole_core.engine.agent import DQNAgent, PPOAgent, QTableAgent, load_agent
from cartpole_core.engine.train import train
from cartpole_core.jobs.execution import execute_stored_run
from cartpole_core.jobs.queue import submit
from cartpole_core.runs.store import RunStore
from cartpole_core.watch.inspection import (
    AVERAGE,
    POLE_ANGLE_LIMIT_RAD,
    bin_labels,
    policy_grid,
    policy_grid_figure,
    qtable_figure,
    qtable_slice,
)

FOUR_DIM_BINS = [3, 2, 6, 12]
FLOAT32 = {"rel": 1e-5, "abs": 1e-6}  # a batched forward pass may round differently from a single one


@pytest.fixture(scope="module")
def seed_binned_agent() -> QTableAgent:
    """Trained on the presets' bins: only pole angle (6) and angular velocity (12) are binned."""
    agent, _ = train(preset_config("qlearning", "fast", total_env_steps=3000, stop_on_solve=False), seed=0)
    return agent


@pytest.fixture(scope="module")
def four_dim_agent() -> QTableAgent:
    config = preset_config("qlearning", "fast", bins=FOUR_DIM_BINS, total_env_steps=3000, stop_on_solve=False)
    agent, _ = train(config, seed=0)
    return agent


def array(value) -> np.ndarray:
    """A figure JSON's array: Plotly writes numpy arrays as base64 typed arrays ({"dtype", "bdata", "shape"})."""
    if isinstance(value, dict):
        shape = [int(n) for n in str(value["shape"]).split(",")] if "shape" in value else -1
        return np.frombuffer(base64.b64decode(value["bdata"]), dtype=value["dtype"]).reshape(shape)
    return np.array(value)


def reference_cells(agent: QTableAgent, x_dim: int, y_dim: int, fixed: dict[int, int | str]):
    """Mean Q and summed visits per (y bin, x bin) by walking every state of the table: independent of numpy
    slicing, so it checks the axis bookkeeping rather than repeating it."""
    bins = agent.discretizer.bins
    q_sum = np.zeros((bins[y_dim], bins[x_dim], 2))
    count = np.zeros((bins[y_dim], bins[x_dim]))
    visits = np.zeros((bins[y_dim], bins[x_dim]), dtype=np.int64)
    flat_visits = agent.visits.reshape(bins)
    for state in np.ndindex(*bins):
        if all(choice == AVERAGE or state[dim] == choice for dim, choice in fixed.items()):
            cell = (state[y_dim], state[x_dim])
            q_sum[cell] += agent.q_table[state]
            count[cell] += 1
            visits[cell] += flat_visits[state]
    return q_sum / count[..., None], visits


def test_a_two_dimensional_table_is_shown_whole(seed_binned_agent):
    view = qtable_slice(seed_binned_agent, 2, 3)
    table = seed_binned_agent.q_table[0, 0]  # (6 angle bins, 12 velocity bins, 2)
    np.testing.assert_array_equal(view.q_values, table.transpose(1, 0, 2))
    np.testing.assert_array_equal(view.max_q, table.max(axis=-1).T)
    np.testing.assert_array_equal(view.visits, seed_binned_agent.visits.reshape(6, 12).T)
    assert view.visits.sum() > 0 and view.fixed == {}
    visited = view.visits > 0
    np.testing.assert_array_equal(view.greedy_action[visited], table.argmax(axis=-1).T[visited])
    assert np.isnan(view.greedy_action[~visited]).all()
    assert len(view.x_labels) == 6 and len(view.y_labels) == 12


@pytest.mark.parametrize("x_dim,y_dim", [(2, 3), (3, 2), (0, 3), (3, 0), (1, 2)])
@pytest.mark.parametrize("other_choice", [AVERAGE, 1])
def test_slices_equal_the_table_fixed_or_averaged(four_dim_agent, x_dim, y_dim, other_choice):
    others = [d for d in range(4) if d not in (x_dim, y_dim)]
    fixed = {others[0]: other_choice, others[1]: AVERAGE}  # one dimension as parametrized, the other averaged
    view = qtable_slice(four_dim_agent, x_dim, y_dim, fixed)
    q_values, visits = reference_cells(four_dim_agent, x_dim, y_dim, fixed)
    np.testing.assert_allclose(view.q_values, q_values)
    np.testing.assert_array_equal(view.visits, visits)
    assert view.q_values.shape == (FOUR_DIM_BINS[y_dim], FOUR_DIM_BINS[x_dim], 2)


def test_unfixed_dimensions_are_averaged_and_all_visits_counted(four_dim_agent):
    view = qtable_slice(four_dim_agent, 2, 3)
    assert view.fixed == {0: AVERAGE, 1: AVERAGE}
    np.testing.assert_allclose(view.q_values, four_dim_agent.q_table.mean(axis=(0, 1)).transpose(1, 0, 2))
    assert view.visits.sum() == four_dim_agent.visits.sum()


def test_bin_labels_are_ranges_with_open_outer_bins(seed_binned_agent):
    assert bin_labels(np.array([-0.14, 1e-17, 0.14])) == ["< -0.14", "[-0.14, 0)", "[0, 0.14)", "≥ 0.14"]
    view = qtable_slice(seed_binned_agent, 2, 3)
    assert view.x_labels[0] == "< -0.279" and view.x_labels[-1] == "≥ 0.279"  # the presets' ±0.419 in 6 bins
    assert len(set(view.y_labels)) == 12


@pytest.mark.parametrize("x_dim,y_dim,fixed,message", [
    (2, 2, None, "x_dim and y_dim must differ"),
    (1, 2, None, "x_dim 1 (cart_velocity, 1 bin) is not a binned dimension"),
    (2, 1, None, "y_dim 1 (cart_velocity, 1 bin) is not a binned dimension"),
    (2, 3, {0: 3}, "fixed bin for cart_position (3) must be 'average' or a bin index from 0 to 2"),
    (2, 3, {0: "mean"}, "fixed bin for cart_position ('mean')"),
    (2, 3, {2: 0}, "fixed names dimension 2, which is not one of the other binned dimensions; allowed: 0"),
])
def test_bad_slices_say_what_is_allowed(x_dim, y_dim, fixed, message):
    agent = QTableAgent(preset_config("qlearning", "fast", bins=[3, 1, 6, 12]))
    with pytest.raises(ValueError, match=re.escape(message)) as err:
        qtable_slice(agent, x_dim, y_dim, fixed)
    if "binned dimension" in message and "fixed" not in message:
        assert "allowed: 0 (cart_position), 2 (pole_angle), 3 (pole_angular_velocity)" in str(err.value)


def test_greedy_action_figure_leaves_unvisited_states_blank():
    rng = np.random.default_rng(0)
    agent = QTableAgent(preset_config("qlearning", "seed"), rng.normal(size=(6, 12, 2)),
                        rng.integers(0, 3, size=72) * (rng.random(72) < 0.5))
    view = qtable_slice(agent, 2, 3)
    figure = json.loads(qtable_figure(view, "greedy_action").to_json())
    z = array(figure["data"][0]["z"])  # NaN cells are not drawn: the grey background shows through
    unvisited = view.visits == 0
    assert unvisited.any() and np.isnan(z[unvisited]).all()
    np.testing.assert_array_equal(z[~unvisited], agent.q_table[0, 0].argmax(axis=-1).T[~unvisited])
    assert array(figure["data"][0]["text"])[unvisited].tolist() == ["never visited"] * unvisited.sum()
    assert figure["layout"]["xaxis"]["title"]["text"] == "pole angle (rad)"


def test_visit_figure_hovers_the_exact_counts(four_dim_agent):
    view = qtable_slice(four_dim_agent, 0, 3, {2: 3, 1: AVERAGE})
    trace = qtable_figure(view, "visits").data[0]
    np.testing.assert_array_equal(np.asarray(trace.customdata)[..., 2], view.visits)
    np.testing.assert_allclose(10 ** np.asarray(trace.z) - 1, view.visits, atol=1e-6)
    with pytest.raises(ValueError, match="allowed: greedy_action, max_q, visits"):
        qtable_figure(view, "policy")


@pytest.mark.parametrize("algo", ["dqn", "ppo"])
def test_policy_grid_equals_the_network_at_each_grid_point(algo):
    torch.manual_seed(0)
    agent = DQNAgent(preset_config("dqn")) if algo == "dqn" else PPOAgent(preset_config("ppo"))
    grid = policy_grid(agent, cart_position=0.5, cart_velocity=-1.0, resolution=7)
    assert grid.angles[0] == pytest.approx(-POLE_ANGLE_LIMIT_RAD) and grid.angles[-1] == pytest.approx(0.2094, 1e-3)
    assert grid.value.shape == (7, 7) and grid.preference.shape == (7, 7)
    for row, column in itertools.product(range(7), repeat=2):
        obs = [0.5, -1.0, grid.angles[column], grid.angular_velocities[row]]
        values = agent.action_values(obs)
        assert grid.action_values[row, column] == pytest.approx(values, **FLOAT32)
        assert grid.greedy_action[row, column] == agent.act(obs)
        if algo == "dqn":
            assert grid.value[row, column] == pytest.approx(values.max(), **FLOAT32)
            assert grid.preference[row, column] == pytest.approx(values[1] - values[0], **FLOAT32)
        else:
            assert grid.value[row, column] == pytest.approx(agent.state_value(obs)[0], **FLOAT32)
            assert grid.preference[row, column] == pytest.approx(values[1], **FLOAT32)


def test_policy_figures_show_the_grid_on_a_scale_centred_on_indifference():
    torch.manual_seed(0)
    grid = policy_grid(PPOAgent(preset_config("ppo")), resolution=5)
    preference, value = policy_grid_figure(grid, "preference"), policy_grid_figure(grid, "value")
    heatmap = preference.data[0]
    np.testing.assert_array_equal(np.asarray(heatmap.z), grid.preference)
    assert (heatmap.zmin, heatmap.zmax) == (0.0, 1.0) and heatmap.colorbar.title.text == "P(right)"
    np.testing.assert_array_equal(np.asarray(value.data[0].z), grid.value)
    assert value.data[0].colorbar.title.text == "critic V"
    dqn_grid = policy_grid(DQNAgent(preset_config("dqn")), resolution=5)
    dqn = policy_grid_figure(dqn_grid, "preference").data[0]
    assert dqn.zmin == -dqn.zmax == -np.abs(dqn_grid.preference).max()


def test_policy_grid_rejects_q_tables_and_bad_resolutions():
    with pytest.raises(ValueError, match="needs a DQN or PPO agent, got QTableAgent"):
        policy_grid(QTableAgent(preset_config("qlearning")))
    with pytest.raises(ValueError, match=r"resolution \(1\) must be between 2 and 201"):
        policy_grid(DQNAgent(preset_config("dqn")), resolution=1)


# ------------------------------------------------------------------------------------------------- the page


@pytest.fixture
def home(tmp_path, monkeypatch):
    monkeypatch.setenv("CARTPOLE_LAB_HOME", str(tmp_path))
    return tmp_path


def stored_run(home, config) -> tuple[str, QTableAgent]:
    """A finished run with checkpoints, and the agent of its final checkpoint."""
    store = RunStore(home)
    _, (run_id,) = submit(store, config, [0])
    store.claim(run_id)
    execute_stored_run(store, run_id)
    (final,) = store.artifacts(run_id, kind="final")
    return run_id, load_agent(final["path"])


def page(**query: str) -> AppTest:
    test = AppTest.from_file("../app.py", default_timeout=60)
    for key, value in query.items():
        test.query_params[key] = value
    test.switch_page("pages/inspect.py")
    return test.run()


def charts(test: AppTest) -> list[dict]:
    specs = [chart.proto.spec for chart in test.get("plotly_chart")]
    for spec in specs:
        plotly.io.from_json(spec)  # raises on an invalid figure
    return [json.loads(spec) for spec in specs]


def test_page_without_runs_says_how_to_get_a_checkpoint(home):
    test = page()
    assert not test.exception
    assert any("No run has a checkpoint yet" in info.value for info in test.info)
    assert not test.get("plotly_chart")


def test_page_shows_the_q_table_of_the_final_checkpoint(home):
    config = preset_config("qlearning", "fast", bins=[3, 1, 6, 12], total_env_steps=3000, stop_on_solve=False)
    run_id, agent = stored_run(home, config)
    test = page(run=run_id)
    assert not test.exception
    greedy, max_q, visits = charts(test)  # x = pole angle, y = angular velocity, cart position averaged
    table = agent.q_table[:, 0].mean(axis=0).transpose(1, 0, 2)
    np.testing.assert_allclose(array(max_q["data"][0]["z"]), table.max(axis=-1))
    summed = agent.visits.reshape(3, 6, 12).sum(axis=0).T
    np.testing.assert_array_equal(array(visits["data"][0]["customdata"])[..., 2], summed)
    greedy_z = array(greedy["data"][0]["z"])
    np.testing.assert_array_equal(greedy_z[summed > 0], table.argmax(axis=-1)[summed > 0])
    assert np.isnan(greedy_z[summed == 0]).all()

    test.select_slider(key="inspect_fix.3-1-6-12.0").set_value(2).run()  # fix cart position at its right bin
    assert not test.exception
    fixed = agent.q_table[2, 0].transpose(1, 0, 2)
    np.testing.assert_allclose(array(charts(test)[1]["data"][0]["z"]), fixed.max(axis=-1))

    test.selectbox(key="inspect_x.3-1-6-12").set_value(0).run()  # cart position across, pole angle now fixed
    assert not test.exception
    assert charts(test)[1]["layout"]["xaxis"]["title"]["text"] == "cart position (m)"


def test_page_with_the_presets_two_binned_dimensions_has_nothing_to_fix(home):
    run_id, agent = stored_run(home, preset_config("qlearning", "fast", total_env_steps=2000, stop_on_solve=False))
    test = page(run=run_id)
    assert not test.exception and not test.select_slider
    max_q = charts(test)[1]
    np.testing.assert_array_equal(array(max_q["data"][0]["z"]), agent.q_table[0, 0].max(axis=-1).T)


def test_page_shows_policy_and_value_of_a_ppo_checkpoint(home):
    run_id, agent = stored_run(home, preset_config("ppo", "fast", total_env_steps=2048))
    test = page(run=run_id)
    assert not test.exception
    test.slider(key="inspect_cart_position").set_value(1.0).run()
    test.select_slider(key="inspect_resolution").set_value(21).run()
    policy, value = charts(test)
    grid = policy_grid(agent, cart_position=1.0, resolution=21)
    np.testing.assert_allclose(array(policy["data"][0]["z"]), grid.preference, rtol=1e-6)
    np.testing.assert_allclose(array(value["data"][0]["z"]), grid.value, rtol=1e-6)
    assert value["data"][0]["colorbar"]["title"]["text"] == "critic V"
