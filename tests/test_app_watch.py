"""Watching an agent across pages: every condition the Robustness page can produce replays exactly on the Replay
page (values shown as given, the episode the one under them), and a link value the lab cannot replay is named."""

from urllib.parse import parse_qs

import numpy as np
import pytest
from app_support import app, figure, trained_group

from cartpole_core.engine.agent import load_agent
from cartpole_core.engine.envs import CONDITIONS, exact_text
from cartpole_core.engine.evaluate import EVAL_SEED
from cartpole_core.runs.store import RunStore
from cartpole_core.watch.replay import rollout
from cartpole_core.watch.robustness import DEFAULT_POINTS, axis_values, multiple_range, replay_query_params


@pytest.fixture(scope="module")
def lab(tmp_path_factory):
    """A data home with one small trained Q-learning run."""
    folder = tmp_path_factory.mktemp("lab")
    (run_id,) = trained_group(folder, seeds=(0,), total_env_steps=4000)
    return folder, run_id


@pytest.fixture
def lab_home(lab, monkeypatch):
    monkeypatch.setenv("CARTPOLE_LAB_HOME", str(lab[0]))
    return lab


def final_agent(folder, run_id):
    return load_agent(next(a for a in RunStore(folder).artifacts(run_id) if a["kind"] == "final")["path"])


def default_axis(name: str) -> list[float]:
    """The Robustness page's default values for a physics factor: its whole allowed range."""
    return axis_values(name, DEFAULT_POINTS, *multiple_range(name))


def assert_replays(test, folder, run_id, seed: int, conditions: dict[str, float]) -> None:
    """The Replay page holds exactly ``conditions`` in its inputs, lists them, and shows the episode under them."""
    assert not test.exception and not test.error and not test.warning
    for name, spec in CONDITIONS.items():
        assert test.number_input(key=f"replay_{name}").value == conditions.get(name, spec.default), name
    changed = ", ".join(f"{CONDITIONS[name].title} {exact_text(conditions[name])}"
                        for name in CONDITIONS if name in conditions)
    assert f"Changed: {changed}" in [caption.value for caption in test.caption]
    physics = {name: value for name, value in conditions.items() if name != "obs_noise"}
    expected = rollout(final_agent(folder, run_id), seed, physics=physics, obs_noise=conditions.get("obs_noise", 0.0))
    assert test.slider(key="replay_frame").max == expected.steps
    cart_position = figure(test.get("plotly_chart")[0])["data"][0]
    np.testing.assert_allclose(cart_position["y"], expected.observations[:, 0], atol=1e-5)
    assert len(test.get("video")) == 1


@pytest.mark.parametrize(("row", "col"), [(0, 0), (-1, -1), (0, -1), (1, 3)])
def test_a_default_grid_cell_replays_exactly_its_condition(lab_home, row, col):
    """The corners are the range's ends (a 0.05 m half pole: the Replay slider used to stop at 0.125 and clamp it);
    (1, 3) holds the grid's 6-digit values (0.158114 m, 31.6228 N), which a slider would snap to its steps."""
    folder, run_id = lab_home
    conditions = {"force_mag": default_axis("force_mag")[col], "length": default_axis("length")[row]}
    test = app("pages/replay.py", **replay_query_params(run_id, "final.pt", EVAL_SEED, conditions))
    assert test.number_input(key="replay_seed").value == EVAL_SEED
    assert_replays(test, folder, run_id, EVAL_SEED, conditions)


def test_a_noise_grid_cell_replays_exactly_its_condition(lab_home):
    folder, run_id = lab_home
    conditions = {"masspole": default_axis("masspole")[1], "obs_noise": axis_values("obs_noise", 4, 0.0, 1.0)[2]}
    assert conditions == {"masspole": 0.0316228, "obs_noise": 0.666667}
    test = app("pages/replay.py", **replay_query_params(run_id, "final.pt", EVAL_SEED, conditions))
    assert_replays(test, folder, run_id, EVAL_SEED, conditions)


def replay_links(test) -> dict[str, dict[str, str]]:
    return {link.proto.label: {key: values[-1] for key, values in parse_qs(link.proto.query_string).items()}
            for link in test.get("page_link") if link.proto.page == "replay"}


def test_the_robustness_pages_links_open_the_replay_of_that_condition(lab_home):
    folder, run_id = lab_home
    robustness = app("pages/robustness.py")
    next(button for button in robustness.button if button.label == "Run grid").click().run()
    robustness.number_input(key="robust_one_masspole").set_value(0.0123456789).run()
    robustness.number_input(key="robust_one_force_mag").set_value(100.0).run()
    assert not robustness.exception
    links = replay_links(robustness)

    worst = links["Replay the worst cell"]
    conditions = {name: float(worst[name]) for name in CONDITIONS if name in worst}
    assert conditions and all(value in default_axis(name) for name, value in conditions.items())
    assert_replays(app("pages/replay.py", **worst), folder, run_id, EVAL_SEED, conditions)

    typed = links["Replay under these conditions"]
    assert typed["masspole"] == "0.0123456789" and typed["force_mag"] == "100"
    assert_replays(app("pages/replay.py", **typed), folder, run_id, EVAL_SEED,
                   {"masspole": 0.0123456789, "force_mag": 100.0})


def test_a_link_value_the_lab_cannot_replay_is_named_not_clamped(lab_home):
    folder, run_id = lab_home
    test = app("pages/replay.py", run=run_id, length="0.01", force_mag="1e300", gravity="heavy", masscart="2")
    assert not test.exception and not test.error
    warnings = [warning.value for warning in test.warning]
    assert len(warnings) == 3
    assert any("half pole length (length) must be a number in [0.05, 5] m, got 0.01" in w for w in warnings)
    assert any("push force (force_mag) must be a number in [1, 100] N, got 1e+300" in w for w in warnings)
    assert any("gravity (gravity) must be a number in [0.98, 98] m/s², got 'heavy'" in w for w in warnings)
    assert all("Replaying the default" in w for w in warnings)
    # The rejected values are left at their defaults (not moved to the nearest end of the range); the valid one
    # is used.
    assert test.number_input(key="replay_length").value == 0.5
    assert test.number_input(key="replay_force_mag").value == 10.0
    assert test.number_input(key="replay_gravity").value == 9.8
    assert test.number_input(key="replay_masscart").value == 2.0
    assert "Changed: cart mass (kg) 2" in [caption.value for caption in test.caption]
