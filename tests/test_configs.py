"""Configs: JSON round trips, presets (the seed's numbers), validation messages, field specs, and fuzzing."""

from __future__ import annotations

import math
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from cartpole_core.config.models import (
    ALGORITHMS,
    CONFIG_CLASSES,
    ConfigError,
    DQNConfig,
    FieldSpec,
    PPOConfig,
    QLearningConfig,
    TrainConfig,
    config_from_dict,
    config_from_json,
    field_specs,
)
from cartpole_core.config.presets import PRESETS, preset_config, preset_names

NUMERIC_KINDS = ("int", "float", "optional_int", "optional_float")
SEED_ANGLE_BOUND = 0.41887903  # CartPole's observation_space.high[2], which the seed used


def nested(name: str, value: Any) -> dict[str, Any]:
    """``{"learning_rate": {"start": v}}`` for ``"learning_rate.start"``; ``{name: v}`` for a top-level field."""
    head, _, rest = name.partition(".")
    return {head: nested(rest, value) if rest else value}


def get_dotted(config: Any, name: str) -> Any:
    for part in name.split("."):
        config = getattr(config, part)
    return config


def config_error(cls: type[TrainConfig], **fields: Any) -> ConfigError:
    with pytest.raises(ConfigError) as info:
        cls(**fields)
    return info.value


# ------------------------------------------------------------------------------------------------ round trips


@pytest.mark.parametrize("cls", CONFIG_CLASSES.values(), ids=CONFIG_CLASSES.keys())
def test_default_config_round_trips_through_json(cls):
    config = cls()
    again = config_from_json(config.to_json())
    assert type(again) is cls
    assert again == config


@pytest.mark.parametrize(("cls", "changes"), [
    (QLearningConfig, {"bins": [2, 3, 6, 12], "gamma": 1.0, "max_episodes": 77,
                       "epsilon": {"kind": "log_decay", "end": 0.1, "k": 25.0}}),
    (DQNConfig, {"hidden_sizes": [32, 16, 8], "activation": "elu", "max_grad_norm": None, "double_dqn": True,
                 "learning_rate": {"kind": "linear", "start": 3e-4, "end": 1e-5, "duration": 12345.5}}),
    (PPOConfig, {"shared_network": True, "n_envs": 8, "rollout_steps": 64, "minibatch_size": 512,
                 "gae_lambda": 1.0, "bootstrap": False, "ent_coef": 0.01}),
])
def test_changed_config_round_trips_through_json(cls, changes):
    config = cls(**changes)
    again = config_from_json(config.to_json())
    assert again == config
    for name, value in changes.items():
        if isinstance(value, dict):
            for key, inner in value.items():
                assert getattr(getattr(again, name), key) == inner
        else:
            assert getattr(again, name) == value


# ---------------------------------------------------------------------------------------------------- presets


ALL_PRESETS = [(algo, name) for algo in ALGORITHMS for name in PRESETS[algo]]


@pytest.mark.parametrize(("algo", "name"), ALL_PRESETS)
def test_every_preset_builds_a_valid_config_that_round_trips(algo, name):
    config = preset_config(algo, name)
    assert config.algo == algo
    assert isinstance(config, CONFIG_CLASSES[algo])
    assert config_from_json(config.to_json()) == config


@pytest.mark.parametrize("algo", ALGORITHMS)
def test_every_algorithm_has_the_seed_preset(algo):
    assert "seed" in preset_names(algo)


def test_qlearning_seed_preset_holds_the_seed_numbers():
    config = preset_config("qlearning", "seed")
    # 6 × 12 bins on pole angle and angular velocity; cart position and velocity ignored.
    assert config.bins == [1, 1, 6, 12]
    assert config.low[2:] == pytest.approx([-SEED_ANGLE_BOUND, -math.radians(50)])
    assert config.high[2:] == pytest.approx([SEED_ANGLE_BOUND, math.radians(50)])
    assert config.gamma == 1.0
    assert config.max_episode_steps == 100
    assert config.max_episodes == 1000
    assert config.n_envs == 1
    for schedule, floor in ((config.epsilon, 0.1), (config.learning_rate, 0.01)):
        assert (schedule.kind, schedule.start, schedule.end, schedule.k, schedule.unit) == \
            ("log_decay", 1.0, floor, 25.0, "episodes")


def test_dqn_seed_preset_holds_the_seed_numbers():
    config = preset_config("dqn", "seed")
    assert config.hidden_sizes == [32, 16, 8]
    assert config.activation == "leaky_relu"
    assert (config.learning_rate.kind, config.learning_rate.start) == ("constant", 5e-4)
    assert config.buffer_size == 10_000
    assert config.batch_size == 64
    assert config.gamma == 0.9
    eps = config.epsilon
    assert (eps.kind, eps.start, eps.end, eps.factor, eps.unit) == ("exponential", 1.0, 0.2, 0.99, "episodes")
    assert config.tau == 1e-3
    assert config.target_update_interval == 1  # soft update after every learning step
    assert (config.train_freq, config.gradient_steps) == (1, 1)
    assert config.loss == "mse"
    assert config.max_grad_norm is None
    assert config.double_dqn is False
    assert config.max_episodes == 2500


def test_dqn_seed_large_batch_preset_changes_only_lr_buffer_and_batch():
    seed = preset_config("dqn", "seed")
    large = preset_config("dqn", "seed-large-batch")
    assert large.learning_rate.start == 1e-3
    assert large.buffer_size == 1000
    assert large.batch_size == 512
    changed = {name for name in DQNConfig.model_fields if getattr(large, name) != getattr(seed, name)}
    assert changed == {"learning_rate", "buffer_size", "batch_size", "learning_starts"}


def test_ppo_seed_preset_holds_the_seed_numbers():
    config = preset_config("ppo", "seed")
    assert config.hidden_sizes == [100]
    assert config.activation == "relu"
    assert config.shared_network is False
    assert (config.learning_rate.kind, config.learning_rate.start) == ("constant", 1e-3)
    assert config.critic_learning_rate == 3e-3
    assert config.clip_range == 0.2
    assert config.epochs == 10
    assert config.minibatch_size == 32
    assert config.gamma == 0.99
    assert config.max_grad_norm == 0.5
    assert config.ent_coef == 0.0
    # Monte-Carlo returns G_t - V(s_t), no advantage normalization.
    assert (config.gae_lambda, config.bootstrap, config.normalize_advantage) == (1.0, False, False)


def test_preset_overrides_are_validated_together_with_the_preset():
    assert preset_config("dqn", "seed", batch_size=128).batch_size == 128
    err = config_error_from(lambda: preset_config("dqn", "seed-large-batch", buffer_size=256))
    assert err.problems == [("batch_size", "batch_size (512) must not exceed buffer_size (256)")]


def config_error_from(build) -> ConfigError:
    with pytest.raises(ConfigError) as info:
        build()
    return info.value


def test_unknown_preset_and_unknown_algorithm_are_config_errors():
    err = config_error_from(lambda: preset_config("dqn", "turbo"))
    assert "'turbo'" in str(err) and "seed" in str(err)
    err = config_error_from(lambda: preset_config("a2c", "seed"))
    assert err.problems[0][0] == "algo"
    assert "'a2c'" in str(err) and "qlearning, dqn, ppo" in str(err)


# ------------------------------------------------------------------------------------------------- validation


@pytest.mark.parametrize(("cls", "fields", "field", "message"), [
    (DQNConfig, {"gamma": 1.5}, "gamma", "gamma (1.5) is not allowed: must be a number ≥ 0 and ≤ 1"),
    (DQNConfig, {"batch_size": 0}, "batch_size", "batch_size (0) is not allowed: must be an integer ≥ 1 and ≤ 8192"),
    (PPOConfig, {"clip_range": 0.0}, "clip_range", "clip_range (0.0) is not allowed: must be a number > 0 and ≤ 1"),
    (DQNConfig, {"gamma": "abc"}, "gamma", "gamma ('abc') is not allowed: must be a number ≥ 0 and ≤ 1"),
    (DQNConfig, {"total_env_steps": 1000.5}, "total_env_steps",
     "total_env_steps (1000.5) is not allowed: must be an integer ≥ 100 and ≤ 2e+07"),
    (DQNConfig, {"total_env_steps": None}, "total_env_steps",
     "total_env_steps (None) is not allowed: must be an integer ≥ 100 and ≤ 2e+07"),
    (DQNConfig, {"gamma": math.nan}, "gamma", "gamma (nan) is not allowed: must be a number ≥ 0 and ≤ 1"),
    (DQNConfig, {"gamma": math.inf}, "gamma", "gamma (inf) is not allowed: must be a number ≥ 0 and ≤ 1"),
    (PPOConfig, {"max_grad_norm": -math.inf}, "max_grad_norm",
     "max_grad_norm (-inf) is not allowed: must be a number (or empty) > 0 and ≤ 1000"),
    (DQNConfig, {"activation": "sigmoid"}, "activation",
     "activation ('sigmoid') is not allowed: must be one of relu, leaky_relu, tanh, elu"),
    (PPOConfig, {"bootstrap": "maybe"}, "bootstrap", "bootstrap ('maybe') is not allowed: must be true or false"),
    (DQNConfig, {"batch_size": 512, "buffer_size": 256}, "batch_size",
     "batch_size (512) must not exceed buffer_size (256)"),
    (PPOConfig, {"n_envs": 2, "rollout_steps": 64, "minibatch_size": 256}, "minibatch_size",
     "minibatch_size (256) must not exceed n_envs × rollout_steps (128)"),
    (DQNConfig, {"n_envs": 200, "total_env_steps": 100}, "n_envs",
     "n_envs (200) must not exceed total_env_steps (100)"),
    (QLearningConfig, {"low": [-2.4, -3.0, 0.5, -1.0], "high": [2.4, 3.0, 0.5, 1.0]}, "low",
     "low for pole_angle (0.5) must be below high (0.5)"),
    (QLearningConfig, {"bins": [1, 1, 65, 12]}, "bins", "bins for pole_angle (65) must be between 1 and 64"),
    (DQNConfig, {"hidden_sizes": [64, 0]}, "hidden_sizes", "hidden_sizes entries (0) must be between 1 and 1024"),
    (PPOConfig, {"hidden_sizes": [2000]}, "hidden_sizes", "hidden_sizes entries (2000) must be between 1 and 1024"),
    (DQNConfig, {"learning_rate": {"start": 5.0}}, "learning_rate.start",
     "learning_rate.start (5.0) is not allowed: must be a number ≥ 1e-06 and ≤ 1"),
    (QLearningConfig, {"epsilon": {"kind": "exponential", "start": 0.1, "end": 0.5}}, "epsilon.end",
     "epsilon.end (0.5) must not exceed start (0.1) for the exponential schedule"),
    (DQNConfig, {"epsilon": {"kind": "cosine"}}, "epsilon.kind",
     "epsilon.kind ('cosine') is not allowed: must be one of constant, linear, exponential, log_decay"),
    (PPOConfig, {"learning_rate": {"k": -1}}, "learning_rate.k",
     "learning_rate.k (-1) is not allowed: must be a number > 0 and ≤ 1e+08"),
])
def test_invalid_value_names_field_value_and_allowed_range(cls, fields, field, message):
    assert config_error(cls, **fields).problems == [(field, message)]


def test_unknown_field_is_rejected_with_the_allowed_names():
    err = config_error(DQNConfig, gama=0.9)
    [(field, message)] = err.problems
    assert field == "gama"
    assert message.startswith("unknown field 'gama'; allowed fields: ")
    assert "gamma" in message and "learning_rate.start" in message


def test_unknown_nested_schedule_field_is_rejected():
    [(field, message)] = config_error(DQNConfig, learning_rate={"begin": 0.1}).problems
    assert field == "learning_rate.begin"
    assert "'learning_rate.begin'" in message and "start" in message


@pytest.mark.parametrize(("bad", "shown"), [
    ([1, 1, 6], "[1, 1, 6]"), ([1, 1, 6, 12, 3], "[1, 1, 6, 12, 3]"), ("6x12", "'6x12'"), ([1, 1, 6.5, 12], "6.5"),
])
def test_qlearning_bins_must_be_four_integers(bad, shown):
    [(field, message)] = config_error(QLearningConfig, bins=bad).problems
    assert field == "bins"
    assert message.startswith(f"bins ({shown}) is not allowed: must be a list of integers")


@pytest.mark.parametrize("field", ["low", "high"])
def test_qlearning_bounds_beyond_limit_name_the_bound_field(field):
    """A huge bin bound is blamed on ``low``/``high``, as every other problem is blamed on its field."""
    values = [-2.4, -3.0, -0.4, -1.0] if field == "low" else [2.4, 3.0, 0.4, 1.0]
    values[0] = -1000.0 if field == "low" else 1000.0
    [(blamed, message)] = config_error(QLearningConfig, **{field: values}).problems
    assert "1000" in message and "100" in message
    assert blamed == field
    assert field in message


@pytest.mark.parametrize("field", ["n", "0", "none", "epsilon.n", "epsilon.field", "epsilon.0"])
def test_unknown_field_with_an_odd_name_is_named_verbatim(field):
    """Keys that look like pydantic location parts or occur inside the message text must not garble it."""
    [(blamed, message)] = config_error(DQNConfig, **nested(field, 1)).problems
    assert blamed == field
    assert message.startswith(f"unknown field {field!r}; allowed fields: ")


def test_several_problems_are_each_listed_with_their_field():
    err = config_error(DQNConfig, gamma=2.0, tau=0.0, activation="swish",
                       learning_rate={"start": "fast", "end": None})
    fields = [field for field, _ in err.problems]
    assert sorted(fields) == ["activation", "gamma", "learning_rate.end", "learning_rate.start", "tau"]
    for field, message in err.problems:
        assert message.startswith(f"{field} (")
    assert str(err) == "; ".join(message for _, message in err.problems)


def test_huge_integer_beyond_python_digit_limit_is_a_config_error():
    """Python refuses repr() of ints over 4300 digits; the message must still be a ConfigError."""
    huge = 10**5000
    err = config_error(DQNConfig, total_env_steps=huge)
    assert err.problems[0][0] == "total_env_steps"
    with pytest.raises(ConfigError):
        config_from_json('{"algo": "dqn", "total_env_steps": 1' + "0" * 5000 + "}")


@pytest.mark.parametrize(("text", "field"), [
    ("{not json", "config"),
    ("[1, 2]", "config"),
    ('{"gamma": 0.9}', "algo"),
    ('{"algo": "sarsa"}', "algo"),
])
def test_config_from_json_rejects_bad_documents(text, field):
    with pytest.raises(ConfigError) as info:
        config_from_json(text)
    assert info.value.problems[0][0] == field


def test_with_changes_validates_like_a_fresh_config():
    config = DQNConfig(buffer_size=1000)
    assert config.with_changes(batch_size=512).batch_size == 512
    with pytest.raises(ConfigError, match=r"batch_size \(2048\) must not exceed buffer_size \(1000\)"):
        config.with_changes(batch_size=2048)


# ------------------------------------------------------------------------------------------------ field specs


def all_specs() -> list[tuple[type[TrainConfig], FieldSpec]]:
    return [(cls, spec) for cls in CONFIG_CLASSES.values() for spec in field_specs(cls)]


def numeric_specs() -> list[tuple[type[TrainConfig], FieldSpec]]:
    return [(cls, spec) for cls, spec in all_specs() if spec.kind in NUMERIC_KINDS]


def spec_id(item: Any) -> str:
    return f"{item.algo}:" if isinstance(item, type) else item.name


# Fields a bound value needs a companion change for, so a cross-field check does not fire instead.
COMPANIONS = {
    (DQNConfig, "buffer_size"): {"batch_size": 1},
    (PPOConfig, "minibatch_size"): {"rollout_steps": 100_000},
    (PPOConfig, "rollout_steps"): {"minibatch_size": 1},
}


def outside(spec: FieldSpec, side: str) -> float:
    """The nearest value beyond the ``low`` or ``high`` bound."""
    bound, is_open = (spec.low, spec.low_open) if side == "low" else (spec.high, spec.high_open)
    if is_open:
        return bound
    step = -1 if side == "low" else 1
    if spec.kind.endswith("int"):
        return int(bound) + step
    return math.nextafter(bound, math.copysign(math.inf, step))


def test_every_algorithm_has_specs_for_budget_and_schedules():
    for cls in CONFIG_CLASSES.values():
        names = {spec.name for spec in field_specs(cls)}
        assert {"total_env_steps", "gamma", "learning_rate.start", "learning_rate.kind"} <= names


@pytest.mark.parametrize(("cls", "spec"), all_specs(), ids=spec_id)
def test_every_field_has_a_description(cls, spec):
    assert spec.description.strip()


@pytest.mark.parametrize(("cls", "spec"), all_specs(), ids=spec_id)
def test_spec_default_is_the_config_default(cls, spec):
    """The CLI and UI show ``spec.default``; it must be what ``cls()`` actually uses."""
    assert spec.default == get_dotted(cls(), spec.name)


@pytest.mark.parametrize(("cls", "spec"), numeric_specs(), ids=spec_id)
def test_numeric_spec_bounds_match_validation(cls, spec):
    assert spec.low is not None and spec.high is not None
    companions = COMPANIONS.get((cls, spec.name), {})
    for side in ("low", "high"):
        value = outside(spec, side)
        err = config_error(cls, **companions, **nested(spec.name, value))
        [(field, message)] = err.problems
        assert field == spec.name
        assert message == f"{spec.name} ({value!r}) is not allowed: must be {spec.allowed()}"
        bound, is_open = (spec.low, spec.low_open) if side == "low" else (spec.high, spec.high_open)
        if not is_open:
            config = cls(**companions, **nested(spec.name, bound))
            assert get_dotted(config, spec.name) == bound


@pytest.mark.parametrize(("cls", "spec"), numeric_specs(), ids=spec_id)
def test_numeric_default_and_typical_range_lie_inside_the_bounds(cls, spec):
    def inside(x: float) -> bool:
        above = x > spec.low if spec.low_open else x >= spec.low
        below = x < spec.high if spec.high_open else x <= spec.high
        return above and below

    if spec.default is not None:
        assert inside(spec.default)
    if spec.typical is not None:
        low, high = spec.typical
        assert low <= high
        assert inside(low) and inside(high)
    if spec.log:
        assert spec.low >= 0 and (spec.typical is None or spec.typical[0] > 0)


def test_allowed_texts():
    specs = {spec.name: spec for spec in field_specs(DQNConfig)}
    assert specs["gamma"].allowed() == "a number ≥ 0 and ≤ 1"
    assert specs["tau"].allowed() == "a number > 0 and ≤ 1"
    assert specs["max_episodes"].allowed() == "an integer (or empty) ≥ 1 and ≤ 1e+07"
    assert specs["loss"].allowed() == "one of huber, mse"
    assert specs["double_dqn"].allowed() == "true or false"
    assert specs["epsilon.unit"].allowed() == "one of episodes, steps"


# --------------------------------------------------------------------------------------- property-based tests


def junk() -> st.SearchStrategy:
    """Values no field should accept without a ConfigError — or that coerce to something valid."""
    scalar = st.one_of(
        st.none(), st.booleans(), st.text(max_size=6), st.sampled_from(["5", "0.5", "", "nan", "inf", "true"]),
        st.just(math.nan), st.just(math.inf), st.just(-math.inf),
        st.integers(), st.integers(min_value=-10**300, max_value=10**300), st.sampled_from([2**63, -2**63, 10**400]),
        st.floats(), st.floats(min_value=-1e308, max_value=1e308),
    )
    # Dict keys are names a person might type; odd key names have their own test above.
    keys = st.sampled_from(["bogus", "start", "kind", "Gamma", "learning_rat", "epsilon_start"])
    return st.one_of(scalar, st.lists(scalar, max_size=5), st.dictionaries(keys, scalar, max_size=3))


def in_range(spec: FieldSpec) -> st.SearchStrategy:
    if spec.choices:
        return st.sampled_from(spec.choices)
    if spec.kind == "bool":
        return st.booleans()
    if spec.kind == "int_list":
        return st.lists(st.integers(min_value=1, max_value=64), min_size=4, max_size=4)
    if spec.kind == "float_list":
        return st.lists(st.floats(min_value=-100, max_value=100), min_size=4, max_size=4)
    if spec.kind.endswith("int"):
        ints = st.integers(min_value=math.ceil(spec.low) + spec.low_open, max_value=math.floor(spec.high))
        return ints | st.none() if spec.kind.startswith("optional") else ints
    floats = st.floats(min_value=spec.low, max_value=spec.high, exclude_min=spec.low_open,
                       exclude_max=spec.high_open)
    return floats | st.none() if spec.kind.startswith("optional") else floats


def out_of_range(spec: FieldSpec) -> st.SearchStrategy:
    if spec.kind == "int_list":
        return st.lists(st.integers(min_value=-10, max_value=2000), max_size=6)
    if spec.kind == "float_list":
        return st.lists(st.floats(min_value=-1e3, max_value=1e3), max_size=6)
    if spec.kind not in NUMERIC_KINDS:
        return junk()
    low, high = outside(spec, "low"), outside(spec, "high")
    if spec.kind.endswith("int"):
        return st.integers(max_value=low) | st.integers(min_value=high)
    return st.floats(max_value=low, allow_nan=False) | st.floats(min_value=high, allow_nan=False)


def field_value(spec: FieldSpec, mixed: bool) -> st.SearchStrategy:
    """In range; or, when ``mixed``, mostly in range, sometimes out of range, sometimes junk."""
    good = in_range(spec)
    return st.one_of(good, good, good, out_of_range(spec), junk()) if mixed else good


def schedule_value(specs: list[FieldSpec], mixed: bool) -> st.SearchStrategy:
    inner = {spec.name.split(".", 1)[1]: field_value(spec, mixed) for spec in specs}
    if not mixed:
        return st.fixed_dictionaries({}, optional=inner)
    inner_dict = st.fixed_dictionaries({}, optional={**inner, "bogus": junk()})
    return st.one_of(inner_dict, inner_dict, inner_dict, junk())


def config_dicts(cls: type[TrainConfig]) -> st.SearchStrategy:
    """Half the examples draw every field in range (mostly valid configs), half draw from everything."""
    specs = field_specs(cls)

    def fields(mixed: bool) -> st.SearchStrategy:
        top: dict[str, st.SearchStrategy] = {}
        for name in cls.model_fields:
            children = [spec for spec in specs if spec.name.startswith(name + ".")]
            top[name] = (schedule_value(children, mixed) if children else
                         field_value(next(spec for spec in specs if spec.name == name), mixed))
        return st.fixed_dictionaries({}, optional={**top, "unknown_field": junk()} if mixed else top)

    return fields(mixed=False) | fields(mixed=True)


def check_valid_or_config_error(cls: type[TrainConfig], data: dict[str, Any]) -> None:
    known = {spec.name for spec in field_specs(cls)} | set(cls.model_fields) | set(data)
    known |= {f"{name}.{key}" for name, value in data.items() if isinstance(value, dict) for key in value}
    try:
        config = config_from_dict({"algo": cls.algo, **data})
    except ConfigError as err:
        assert err.problems
        for field, message in err.problems:
            assert field in known, (field, message)
            assert field in message, (field, message)
        assert str(err) == "; ".join(message for _, message in err.problems)
    else:
        assert type(config) is cls
        assert config_from_json(config.to_json()) == config


FUZZ = settings(max_examples=200, deadline=None, derandomize=True, database=None,
               suppress_health_check=[HealthCheck.too_slow])


@FUZZ
@given(data=config_dicts(QLearningConfig))
def test_random_qlearning_fields_give_a_config_or_a_config_error(data):
    check_valid_or_config_error(QLearningConfig, data)


@FUZZ
@given(data=config_dicts(DQNConfig))
def test_random_dqn_fields_give_a_config_or_a_config_error(data):
    check_valid_or_config_error(DQNConfig, data)


@FUZZ
@given(data=config_dicts(PPOConfig))
def test_random_ppo_fields_give_a_config_or_a_config_error(data):
    check_valid_or_config_error(PPOConfig, data)
