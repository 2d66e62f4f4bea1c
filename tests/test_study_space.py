"""A study's search space: generated for every algorithm from the field metadata, parsed from --vary, checked with
messages that name the field and what is allowed, turned into Optuna distributions and grids, applied to a preset."""

from __future__ import annotations

import json
import math
import subprocess
import sys
from typing import Any

import optuna
import pytest

from cartpole_core.config.models import ALGORITHMS, ConfigError, config_class, spec_lookup
from cartpole_core.config.presets import preset_config
from cartpole_core.studies.space import (
    FIXED_FIELDS,
    GRID_MAX,
    Dimension,
    SpaceError,
    apply,
    check_space,
    default_dimension,
    distribution,
    grid,
    grid_size,
    parse_vary,
    varyable_fields,
)

optuna.logging.set_verbosity(optuna.logging.WARNING)


def get_dotted(config: Any, name: str) -> Any:
    for part in name.split("."):
        config = getattr(config, part)
    return config


def as_sampled(value: Any) -> Any:
    """A config value as a trial's params hold it (a list as its dashed text)."""
    return "-".join(str(item) for item in value) if isinstance(value, list) else value


def default_space(algo: str) -> list[Dimension]:
    return [default_dimension(algo, field) for field in varyable_fields(algo)]


def space_error(algo: str, text: str) -> str:
    with pytest.raises(SpaceError) as info:
        parse_vary(algo, text)
    return str(info.value)


# -------------------------------------------------------------------------------------------- the generated space


@pytest.mark.parametrize("algo", ALGORITHMS)
def test_every_algorithm_may_vary_its_learning_rate_but_not_the_study_budget(algo):
    fields = varyable_fields(algo)
    assert {"learning_rate.start", "learning_rate.end", "gamma", "n_envs"} <= set(fields)
    assert not set(FIXED_FIELDS) & set(fields)


@pytest.mark.parametrize("algo", ALGORITHMS)
def test_default_ranges_lie_within_hard_bounds_and_are_log_only_where_the_hint_says(algo):
    specs = spec_lookup(config_class(algo))
    for dim in default_space(algo):
        if dim.kind == "categorical":
            continue
        spec = specs[dim.field]
        assert dim.low < dim.high, dim
        for end in (dim.low, dim.high):
            assert spec.low is None or (end > spec.low if spec.low_open else end >= spec.low), dim
            assert spec.high is None or (end < spec.high if spec.high_open else end <= spec.high), dim
        assert dim.log == (spec.log and dim.low > 0), dim
        assert (dim.kind == "int") == (spec.kind in ("int", "optional_int")), dim
    assert check_space(algo, default_space(algo)) == default_space(algo)


@pytest.mark.parametrize("algo", ALGORITHMS)
def test_every_default_choice_applied_to_the_fast_preset_is_a_valid_config(algo):
    fast = preset_config(algo, "fast")
    categorical = [dim for dim in default_space(algo) if dim.kind == "categorical"]
    assert {"activation", "hidden_sizes"} <= {dim.field for dim in categorical} or algo == "qlearning"
    for dim in categorical:
        for sampled in distribution(dim).choices:
            config = apply(fast, {dim.field: sampled})
            assert as_sampled(get_dotted(config, dim.field)) == sampled


def test_network_shapes_are_a_few_widths_of_the_default_shape():
    assert default_dimension("dqn", "hidden_sizes").choices == ((32, 32), (64, 64), (128, 128), (256, 256))


@pytest.mark.parametrize("algo", ALGORITHMS)
def test_apply_of_sampled_params_gives_a_config_with_those_values(algo):
    fast = preset_config(algo, "fast")
    distributions = {dim.field: distribution(dim) for dim in default_space(algo)}
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=0))
    applied = 0
    for _ in range(30):
        params = study.ask(distributions).params
        try:
            config = apply(fast, params)
        except ConfigError:  # a combination breaking a cross-field rule (end above start for a decay, …)
            continue
        applied += 1
        for field, value in params.items():
            assert as_sampled(get_dotted(config, field)) == value, field
        untouched = set(fast.model_dump()) - {field.split(".")[0] for field in params}
        assert {name: getattr(config, name) for name in untouched} == {name: getattr(fast, name) for name in untouched}
    assert applied >= 15


def test_apply_names_the_field_of_a_broken_cross_field_rule():
    with pytest.raises(ConfigError, match=r"batch_size \(512\) must not exceed buffer_size \(256\)"):
        apply(preset_config("dqn", "fast"), {"batch_size": 512, "buffer_size": 256})


# -------------------------------------------------------------------------------------------- --vary


@pytest.mark.parametrize("algo", ALGORITHMS)
def test_default_dimensions_round_trip_through_vary_text_and_json(algo):
    for dim in default_space(algo):
        assert parse_vary(algo, dim.to_text()) == dim
        assert Dimension.from_json(json.loads(json.dumps(dim.to_json()))) == dim
        assert parse_vary(algo, dim.field) == dim  # FIELD alone: its default dimension


@pytest.mark.parametrize(("algo", "text", "expected"), [
    ("dqn", "learning_rate.start=1e-4:3e-3:log", Dimension("learning_rate.start", "float", 1e-4, 3e-3, log=True)),
    ("ppo", "clip_range=0.1:0.3", Dimension("clip_range", "float", 0.1, 0.3)),
    ("dqn", "batch_size=32:256:log", Dimension("batch_size", "int", 32, 256, log=True)),
    ("dqn", "buffer_size=1e3:1e5", Dimension("buffer_size", "int", 1000, 100_000)),
    ("dqn", "batch_size=32,64,128", Dimension("batch_size", "categorical", choices=(32, 64, 128))),
    ("ppo", "gamma=0.99, 0.999", Dimension("gamma", "categorical", choices=(0.99, 0.999))),
    ("dqn", "hidden_sizes=64-64,128", Dimension("hidden_sizes", "categorical", choices=((64, 64), (128,)))),
    ("dqn", "double_dqn=true,false", Dimension("double_dqn", "categorical", choices=(True, False))),
    ("dqn", "max_grad_norm=none,0.5,10", Dimension("max_grad_norm", "categorical", choices=(None, 0.5, 10.0))),
    ("qlearning", "epsilon.kind=linear,log_decay", Dimension("epsilon.kind", "categorical",
                                                             choices=("linear", "log_decay"))),
])
def test_parse_vary_reads_ranges_and_choices_and_writes_them_back(algo, text, expected):
    dim = parse_vary(algo, text)
    assert dim == expected
    assert parse_vary(algo, dim.to_text()) == dim


@pytest.mark.parametrize(("algo", "text", "fragments"), [
    ("ppo", "gamma=0.99:0.9", ["gamma range 0.99:0.9", "low end must be below the high end"]),
    ("ppo", "gamma=0.9:0.9", ["gamma range 0.9:0.9", "low end must be below the high end"]),
    ("dqn", "learning_rate.end=0:1e-3:log", ["learning_rate.end range 0.0:0.001:log", "must start above 0"]),
    ("dqn", "tau=-0.5:0.5:log", ["tau range", "must start above 0"]),
    ("ppo", "gamma=0.9:1.5", ["gamma range 0.9:1.5", "gamma must be a number ≥ 0 and ≤ 1"]),
    ("ppo", "clip_range=0:0.3", ["clip_range range 0.0:0.3", "clip_range must be a number > 0 and ≤ 1"]),
    ("dqn", "batch_size=0:64", ["batch_size range 0:64", "batch_size must be an integer ≥ 1 and ≤ 8192"]),
    ("dqn", "batch_size=32.5:64", ["batch_size value '32.5'", "must be an integer ≥ 1 and ≤ 8192"]),
    ("dqn", "gamma=high:low", ["gamma value 'high'", "gamma must be a number ≥ 0 and ≤ 1"]),
    ("dqn", "gamma=0.9:0.99:lin", ["gamma range '0.9:0.99:lin'", "LOW:HIGH:log"]),
    ("dqn", "activation=relu,sigmoid", ["activation choice sigmoid", "one of relu, leaky_relu, tanh, elu"]),
    ("dqn", "activation=0:1", ["activation takes choices", "one of relu, leaky_relu, tanh, elu"]),
    ("dqn", "double_dqn=yes,no", ["double_dqn choice 'yes'", "true or false"]),
    ("dqn", "hidden_sizes=64-64,2000", ["hidden_sizes choice 2000", "between 1 and 1024"]),
    ("dqn", "hidden_sizes=64-64,64-64", ["hidden_sizes lists 64-64 twice"]),
    ("qlearning", "bins=1-1-6-12,1-1-6", ["bins choice 1-1-6", "bins"]),
    ("dqn", "batch_size=32,0", ["batch_size choice 0", "≥ 1 and ≤ 8192"]),
    ("dqn", "gamma=0.9", ["gamma has one choice", "at least two"]),
    ("dqn", "clip_range=0.1:0.3", ["unknown field 'clip_range' for dqn", "may vary: ", "learning_rate.start"]),
    ("ppo", "total_env_steps=1000:2000", ["total_env_steps is the same for every trial", "may vary: ", "gamma"]),
    ("ppo", "=0.1:0.3", ["--vary expects FIELD=LOW:HIGH[:log] or FIELD=a,b,c"]),
])
def test_bad_vary_names_the_field_and_what_is_allowed(algo, text, fragments):
    message = space_error(algo, text)
    for fragment in fragments:
        assert fragment in message


def test_check_space_refuses_no_field_a_field_twice_and_a_wrong_kind():
    with pytest.raises(SpaceError, match="must vary at least one field; a study of ppo may vary: .*clip_range"):
        check_space("ppo", [])
    gamma = parse_vary("ppo", "gamma=0.9:0.99")
    with pytest.raises(SpaceError, match="gamma is varied twice"):
        check_space("ppo", [gamma, parse_vary("ppo", "gamma=0.9,0.99")])
    with pytest.raises(SpaceError, match="activation cannot be varied as 'float': e.g. activation=relu,"):
        check_space("ppo", [Dimension("activation", "float", 0.0, 1.0)])
    with pytest.raises(SpaceError, match="epochs cannot be varied as 'float': e.g. epochs=3:10"):
        check_space("ppo", [Dimension("epochs", "float", 3.0, 10.5)])
    with pytest.raises(SpaceError, match="loss choice l1 is not allowed: loss must be one of huber, mse"):
        check_space("dqn", [Dimension.from_json({"field": "loss", "kind": "categorical", "choices": ["mse", "l1"]})])


# -------------------------------------------------------------------------------------------- grid and Optuna


def test_grid_spaces_ranges_evenly_or_by_log_and_keeps_every_choice():
    dims = [parse_vary("ppo", text) for text in
            ("gamma=0.9:0.99", "learning_rate.start=1e-4:1e-2:log", "n_envs=1:8:log", "hidden_sizes=64-64,128")]
    assert grid(dims, points=4) == {
        "gamma": [0.9, 0.93, 0.96, 0.99],
        "learning_rate.start": [1e-4, 0.000464, 0.00215, 1e-2],
        "n_envs": [1, 2, 4, 8],
        "hidden_sizes": ["64-64", "128"],
    }
    assert grid_size(dims, points=4) == 4 * 4 * 4 * 2
    assert grid([parse_vary("ppo", "epochs=3:4")], points=5) == {"epochs": [3, 4]}


def test_every_grid_point_applies_to_the_preset():
    dims = [parse_vary("ppo", text) for text in ("clip_range=0.1:0.3", "activation=relu,tanh", "epochs=3:10")]
    distributions = {dim.field: distribution(dim) for dim in dims}
    study = optuna.create_study(sampler=optuna.samplers.GridSampler(grid(dims), seed=0))
    fast = preset_config("ppo", "fast")
    configs = {apply(fast, study.ask(distributions).params).to_json() for _ in range(grid_size(dims))}
    assert len(configs) == grid_size(dims) == 3 * 2 * 3


def test_a_grid_over_grid_max_names_its_fields_and_the_limit():
    dims = [parse_vary("ppo", text) for text in ("gamma", "gae_lambda", "clip_range", "epochs", "ent_coef", "vf_coef")]
    assert grid_size(dims) == 3**6 > GRID_MAX
    with pytest.raises(SpaceError) as info:
        grid(dims)
    assert "gamma (3) × gae_lambda (3)" in str(info.value)
    assert f"729 configurations; at most {GRID_MAX}" in str(info.value)


def test_distributions_hold_the_dimension():
    assert distribution(parse_vary("dqn", "tau=1e-3:1:log")) == optuna.distributions.FloatDistribution(1e-3, 1.0,
                                                                                                        log=True)
    assert distribution(parse_vary("dqn", "train_freq=1:16")) == optuna.distributions.IntDistribution(1, 16)
    assert math.isclose(distribution(parse_vary("dqn", "gamma=0.9:0.99")).high, 0.99)


def test_the_studies_package_is_import_light():
    heavy = ("torch", "gymnasium", "sklearn", "optuna", "scipy")
    code = ("import sys, cartpole_core.studies.space, cartpole_core.stats, cartpole_core.studies.objectives\n"
            f"print(sorted(m for m in {heavy!r} if m in sys.modules))")
    loaded = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert loaded.strip() == "[]"
