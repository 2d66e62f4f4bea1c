"""Validated configs, one per algorithm, with the field metadata the dashboard and CLI are generated from.

Every field carries a one-line description, hard bounds (what is allowed), a typical range (what is sensible,
in the spirit of Spinning Up's docs) and whether it is log-scaled. ``field_specs(ConfigClass)`` turns that into
plain ``FieldSpec`` records; the UI builds widgets from them and the CLI's ``--set`` accepts their names.

All invalid input — a bad type, a value out of bounds, an unknown field, a failed cross-field check — raises
``ConfigError``, whose message names the field, the value and what is allowed, e.g.
``batch_size (512) must not exceed buffer_size (256)``. Numbers must be numbers: ``true`` for a numeric field (or in a
list of numbers) is refused, not read as 1.
"""

from __future__ import annotations

import functools
import json
import math
import sys
from dataclasses import dataclass
from typing import Any, ClassVar, Literal

import annotated_types
from pydantic import BaseModel, ConfigDict, Field, ValidationError, ValidationInfo, field_validator, model_validator
from pydantic_core import PydanticCustomError

ALGORITHMS = ("qlearning", "dqn", "ppo")
# How long a run trains, how it is evaluated and when it stops — not how it learns: run names list them last, and a
# study holds them fixed (every trial measured by the same yardstick).
RUN_CONTROL_FIELDS = ("total_env_steps", "max_episodes", "eval_every_steps", "stop_on_solve")
OBS_NAMES = ("cart_position", "cart_velocity", "pole_angle", "pole_angular_velocity")
ACTIVATIONS = ("relu", "leaky_relu", "tanh", "elu")


class ConfigError(ValueError):
    """Invalid configuration. ``problems`` holds ``(field, message)`` pairs so a UI can show each inline."""

    def __init__(self, problems: list[tuple[str, str]], source: tuple[type, ValidationError] | None = None):
        self.problems = problems
        self.source = source  # the model class and pydantic's error, so an enclosing config can re-word them
        super().__init__("; ".join(message for _, message in problems))


def param(
    default: Any,
    description: str,
    *,
    typical: tuple[float, float] | None = None,
    log: bool = False,
    **bounds: Any,
) -> Any:
    """A config field: default, one-line description, hard bounds (ge/le/gt/lt), typical range, log scale."""
    return Field(default, description=description, json_schema_extra={"typical": typical, "log": log}, **bounds)


class _Model(BaseModel):
    """Base of all config models: strict about unknown fields and non-finite numbers; errors as ConfigError."""

    model_config = ConfigDict(extra="forbid", allow_inf_nan=False, frozen=True)

    def __init__(self, **data: Any):
        try:
            super().__init__(**data)
        except ValidationError as err:
            raise ConfigError(_problems(type(self), err), source=(type(self), err)) from None

    @field_validator("*", mode="before")
    @classmethod
    def _no_booleans_for_numbers(cls, value: Any, info: ValidationInfo) -> Any:
        """pydantic reads ``True`` as 1 for int and float fields; here a boolean is not a number."""
        if _numeric_field(cls, info.field_name) and (
            isinstance(value, bool) or (isinstance(value, list) and any(isinstance(item, bool) for item in value))
        ):
            raise PydanticCustomError(BOOL_NOT_NUMBER, "true/false is not a number")
        return value


BOOL_NOT_NUMBER = "bool_not_number"  # the pydantic error type for a boolean given where a number belongs


@functools.cache
def _numeric_field(cls: type[BaseModel], name: str | None) -> bool:
    """Whether ``cls``'s field ``name`` holds numbers (or a list of them)."""
    info = cls.model_fields.get(name or "")
    if info is None:
        return False
    annotation = info.annotation
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return False
    if annotation is bool or getattr(annotation, "__origin__", None) is Literal:
        return False
    return "int" in str(annotation) or "float" in str(annotation)  # int, float, list[int], float | None, …


# --------------------------------------------------------------------------------------------------- schedules


class Schedule(_Model):
    """A value that changes over training; see ``cartpole_core.config.schedules`` for the formulas."""

    kind: Literal["constant", "linear", "exponential", "log_decay"] = param(
        "constant", "Shape: constant, linear, exponential (×factor per unit) or the seed's log-decay"
    )
    start: float = param(1.0, "Initial value", ge=0.0, le=1.0)
    end: float = param(0.0, "Final value (linear) or floor (exponential, log-decay)", ge=0.0, le=1.0)
    unit: Literal["episodes", "steps"] = param("episodes", "What progress counts: training episodes or env steps")
    duration: float = param(
        1000.0, "linear: units to go from start to end", typical=(100, 100_000), log=True, gt=0, le=1e8
    )
    factor: float = param(0.99, "exponential: multiplier per unit", typical=(0.95, 0.9999), gt=0.0, le=1.0)
    k: float = param(25.0, "log-decay: scale k in 1 - log10((t+1)/k)", typical=(10, 1000), log=True, gt=0, le=1e8)

    @model_validator(mode="after")
    def _check(self) -> Schedule:
        if self.kind == "linear" and self.end > self.start:
            # Allowed (warm-up), nothing to check; decays are the common case.
            return self
        if self.kind in ("exponential", "log_decay") and self.end > self.start:
            raise ValueError(f"end ({self.end}) must not exceed start ({self.start}) for the {self.kind} schedule")
        return self


class EpsilonSchedule(Schedule):
    """Exploration rate: probability of a random action."""

    kind: Literal["constant", "linear", "exponential", "log_decay"] = param(
        "linear", "Shape: constant, linear, exponential (×factor per unit) or the seed's log-decay"
    )
    start: float = param(1.0, "Initial exploration rate", typical=(0.5, 1.0), ge=0.0, le=1.0)
    end: float = param(0.05, "Final exploration rate / floor", typical=(0.0, 0.1), ge=0.0, le=1.0)


class StepSizeSchedule(Schedule):
    """Tabular step size α in Q ← Q + α (target − Q)."""

    start: float = param(0.1, "Initial step size α", typical=(0.05, 1.0), gt=0.0, le=1.0)
    end: float = param(0.01, "Final step size / floor", typical=(0.001, 0.1), ge=0.0, le=1.0)


class LearningRateSchedule(Schedule):
    """Optimizer learning rate for the neural-network algorithms."""

    unit: Literal["episodes", "steps"] = param("steps", "What progress counts: training episodes or env steps")
    start: float = param(1e-3, "Initial learning rate", typical=(1e-4, 3e-3), log=True, ge=1e-6, le=1.0)
    end: float = param(0.0, "Final learning rate / floor (0 anneals to zero)", typical=(0.0, 1e-3), ge=0.0, le=1.0)


# ----------------------------------------------------------------------------------------------------- configs


class TrainConfig(_Model):
    """Fields shared by every algorithm: budget, evaluation and stopping."""

    algo: ClassVar[str]

    total_env_steps: int = param(
        100_000, "Training budget in environment steps", typical=(10_000, 500_000), log=True, ge=100, le=20_000_000
    )
    max_episodes: int | None = param(
        None, "Also stop after this many training episodes (empty = no limit)", typical=(100, 5000), ge=1, le=10_000_000
    )
    max_episode_steps: int = param(
        500, "Cap on steps per training episode (CartPole-v1 truncates at 500)", typical=(100, 500), ge=1, le=500
    )
    n_envs: int = param(1, "Environments stepped together in one vectorized CartPole", typical=(1, 32), log=True,
                        ge=1, le=256)
    eval_every_steps: int = param(
        5000, "Greedy evaluation (20 fixed-seed episodes) every this many env steps taken (all envs)",
        typical=(1000, 20_000), log=True, ge=100, le=10_000_000,
    )
    stop_on_solve: bool = param(False, "End training at the first solved evaluation (mean return ≥ 475 over 20 "
                                        "episodes, confirmed on 100 others)")

    def to_json(self) -> str:
        return json.dumps({"algo": self.algo, **self.model_dump(mode="json")}, sort_keys=True)

    def with_changes(self, **changes: Any) -> TrainConfig:
        """A copy with some fields changed, validated like a fresh config."""
        return type(self)(**{**self.model_dump(), **changes})

    @model_validator(mode="after")
    def _check_budget(self) -> TrainConfig:
        if self.n_envs > self.total_env_steps:
            raise ValueError(f"n_envs ({self.n_envs}) must not exceed total_env_steps ({self.total_env_steps})")
        return self


class QLearningConfig(TrainConfig):
    """Tabular Q-learning over uniformly binned observations."""

    algo: ClassVar[str] = "qlearning"

    bins: list[int] = param(
        [1, 1, 6, 12],
        "Bins per observation dimension (cart position, cart velocity, pole angle, angular velocity); 1 ignores it",
        typical=(1, 12), min_length=4, max_length=4,
    )
    low: list[float] = param(
        [-2.4, -3.0, -0.41887903, -math.radians(50)], "Lower bin bound per observation dimension",
        min_length=4, max_length=4,
    )
    high: list[float] = param(
        [2.4, 3.0, 0.41887903, math.radians(50)], "Upper bin bound per observation dimension",
        min_length=4, max_length=4,
    )
    gamma: float = param(0.99, "Discount factor γ", typical=(0.95, 1.0), ge=0.0, le=1.0)
    learning_rate: StepSizeSchedule = param(StepSizeSchedule(), "Step size α schedule")
    epsilon: EpsilonSchedule = param(EpsilonSchedule(), "Exploration rate schedule")

    MAX_BINS: ClassVar[int] = 64
    MAX_BOUND: ClassVar[float] = 100.0

    @model_validator(mode="after")
    def _check_bins(self) -> QLearningConfig:
        for name, count in zip(OBS_NAMES, self.bins):
            if not 1 <= count <= self.MAX_BINS:
                raise ValueError(f"bins for {name} ({count}) must be between 1 and {self.MAX_BINS}")
        for name, lo, hi in zip(OBS_NAMES, self.low, self.high):
            for side, bound in (("low", lo), ("high", hi)):
                if abs(bound) > self.MAX_BOUND:
                    raise ValueError(f"{side} for {name} ({bound}) must lie within ±{self.MAX_BOUND}")
            if lo >= hi:
                raise ValueError(f"low for {name} ({lo}) must be below high ({hi})")
        return self


MAX_HIDDEN_UNITS = 1024


def _check_hidden_sizes(hidden_sizes: list[int]) -> None:
    """DQN's Q-network and PPO's actor and critic: 1 to ``MAX_HIDDEN_UNITS`` units in every hidden layer."""
    for size in hidden_sizes:
        if not 1 <= size <= MAX_HIDDEN_UNITS:
            raise ValueError(f"hidden_sizes entries ({size}) must be between 1 and {MAX_HIDDEN_UNITS}")


class DQNConfig(TrainConfig):
    """Deep Q-network with a replay buffer and a target network."""

    algo: ClassVar[str] = "dqn"

    hidden_sizes: list[int] = param(
        [64, 64], "Units per hidden layer of the Q-network", typical=(16, 256), min_length=1, max_length=4
    )
    activation: Literal["relu", "leaky_relu", "tanh", "elu"] = param("relu", "Hidden-layer activation")
    learning_rate: LearningRateSchedule = param(LearningRateSchedule(), "Adam learning rate schedule")
    buffer_size: int = param(50_000, "Replay buffer capacity (transitions)", typical=(1_000, 100_000), log=True,
                             ge=10, le=2_000_000)
    batch_size: int = param(64, "Transitions per gradient step", typical=(32, 256), log=True, ge=1, le=8192)
    gamma: float = param(0.99, "Discount factor γ", typical=(0.9, 0.999), ge=0.0, le=1.0)
    n_step: int = param(1, "Rewards summed before the TD target bootstraps (n-step returns; 1 = one-step TD)",
                        typical=(1, 5), ge=1, le=100)
    epsilon: EpsilonSchedule = param(
        EpsilonSchedule(unit="steps", duration=10_000), "Exploration rate schedule (ε-greedy)"
    )
    learning_starts: int = param(1000, "Env steps of random play before learning starts", typical=(0, 10_000),
                                 ge=0, le=1_000_000)
    train_freq: int = param(1, "Env steps between updates", typical=(1, 16), log=True, ge=1, le=10_000)
    gradient_steps: int = param(1, "Gradient steps per update", typical=(1, 8), ge=1, le=256)
    tau: float = param(1.0, "Target-network update rate: 1 = hard copy, small = soft (Polyak) update",
                       typical=(0.001, 1.0), log=True, gt=0.0, le=1.0)
    target_update_interval: int = param(500, "Gradient steps between target-network updates",
                                        typical=(1, 10_000), log=True, ge=1, le=1_000_000)
    double_dqn: bool = param(False, "Double DQN: the online network picks the next action, the target values it")
    loss: Literal["huber", "mse"] = param("huber", "TD loss: Huber (smooth L1) or mean squared error")
    max_grad_norm: float | None = param(10.0, "Clip the gradient norm to this (empty = no clipping)",
                                        typical=(0.5, 10.0), log=True, gt=0.0, le=1000.0)

    @model_validator(mode="after")
    def _check_batch(self) -> DQNConfig:
        if self.batch_size > self.buffer_size:
            raise ValueError(f"batch_size ({self.batch_size}) must not exceed buffer_size ({self.buffer_size})")
        _check_hidden_sizes(self.hidden_sizes)
        return self


class PPOConfig(TrainConfig):
    """Proximal Policy Optimization with a clipped surrogate objective and GAE."""

    algo: ClassVar[str] = "ppo"

    hidden_sizes: list[int] = param(
        [64, 64], "Units per hidden layer of actor and critic", typical=(16, 256), min_length=1, max_length=4
    )
    activation: Literal["relu", "leaky_relu", "tanh", "elu"] = param("tanh", "Hidden-layer activation")
    shared_network: bool = param(False, "Actor and critic share their hidden layers (one optimizer)")
    learning_rate: LearningRateSchedule = param(
        LearningRateSchedule(start=3e-4), "Adam learning rate schedule (actor, or shared network)"
    )
    critic_learning_rate: float = param(
        1e-3, "Critic learning rate at the start when networks are separate; follows the same schedule shape",
        typical=(1e-4, 3e-3), log=True, ge=1e-6, le=1.0,
    )
    rollout_steps: int = param(128, "Steps per environment in each rollout", typical=(32, 2048), log=True,
                               ge=1, le=100_000)
    epochs: int = param(4, "Passes over each rollout", typical=(3, 10), ge=1, le=100)
    minibatch_size: int = param(64, "Samples per gradient step", typical=(32, 512), log=True, ge=1, le=100_000)
    clip_range: float = param(0.2, "PPO clip range ε on the probability ratio", typical=(0.1, 0.3), gt=0.0, le=1.0)
    gamma: float = param(0.99, "Discount factor γ", typical=(0.95, 0.999), ge=0.0, le=1.0)
    gae_lambda: float = param(0.95, "GAE λ (1 = Monte-Carlo returns minus the value baseline)",
                              typical=(0.9, 1.0), ge=0.0, le=1.0)
    bootstrap: bool = param(True, "Bootstrap from the critic at truncation and rollout end (off = the seed's "
                                  "Monte-Carlo returns)")
    ent_coef: float = param(0.0, "Entropy bonus coefficient", typical=(0.0, 0.01), ge=0.0, le=1.0)
    vf_coef: float = param(0.5, "Value-loss coefficient (shared network)", typical=(0.25, 1.0), ge=0.0, le=10.0)
    max_grad_norm: float | None = param(0.5, "Clip the gradient norm to this (empty = no clipping)",
                                        typical=(0.5, 5.0), log=True, gt=0.0, le=1000.0)
    normalize_advantage: bool = param(True, "Normalize advantages per minibatch")

    @model_validator(mode="after")
    def _check_batch(self) -> PPOConfig:
        rollout = self.n_envs * self.rollout_steps
        if self.minibatch_size > rollout:
            raise ValueError(
                f"minibatch_size ({self.minibatch_size}) must not exceed n_envs × rollout_steps ({rollout})"
            )
        _check_hidden_sizes(self.hidden_sizes)
        return self


CONFIG_CLASSES: dict[str, type[TrainConfig]] = {cls.algo: cls for cls in (QLearningConfig, DQNConfig, PPOConfig)}
AnyConfig = QLearningConfig | DQNConfig | PPOConfig


def config_class(algo: str) -> type[TrainConfig]:
    try:
        return CONFIG_CLASSES[algo]
    except KeyError:
        raise ConfigError([("algo", f"algo {algo!r} is unknown; allowed: {', '.join(ALGORITHMS)}")]) from None


def config_from_dict(data: dict[str, Any]) -> TrainConfig:
    """Build the config named by ``data["algo"]`` from a plain dict (e.g. parsed JSON)."""
    if not isinstance(data, dict):
        raise ConfigError([("config", f"config must be a JSON object, got {type(data).__name__}")])
    data = dict(data)
    return config_class(str(data.pop("algo", None)))(**data)


def with_overrides(config: TrainConfig, overrides: dict[str, Any]) -> TrainConfig:
    """A copy of ``config`` with dotted-name overrides applied (``{"epsilon.start": 0.5, "gamma": 0.9}``)."""
    data = config.model_dump()
    for name, value in overrides.items():
        *parents, leaf = name.split(".")
        node = data
        for part in parents:
            if not isinstance(node.get(part), dict):
                raise ConfigError([(name, f"unknown field {name!r}; allowed fields: "
                                          f"{', '.join(sorted(spec_lookup(type(config))))}")])
            node = node[part]
        node[leaf] = value
    return type(config)(**data)


def config_from_json(text: str) -> TrainConfig:
    try:
        data = json.loads(text)
    except ValueError as err:  # JSONDecodeError, or a number too long to convert
        raise ConfigError([("config", f"config is not valid JSON: {err}")]) from None
    return config_from_dict(data)


# ------------------------------------------------------------------------------------------------- field specs


@dataclass(frozen=True)
class FieldSpec:
    """What a UI or CLI needs to know about one config field. Nested schedule fields use dotted names."""

    name: str
    kind: str  # "int", "float", "bool", "choice", "int_list", "float_list", "optional_int", "optional_float"
    description: str
    default: Any
    low: float | None = None  # hard bounds (inclusive unless low_open / high_open)
    high: float | None = None
    low_open: bool = False
    high_open: bool = False
    typical: tuple[float, float] | None = None
    log: bool = False
    choices: tuple[str, ...] = ()

    def allowed(self) -> str:
        """Human description of the allowed values, as used in error messages."""
        if self.choices:
            return "one of " + ", ".join(self.choices)
        if self.kind == "bool":
            return "true or false"
        parts = []
        if self.low is not None:
            parts.append(f"{'>' if self.low_open else '≥'} {self.low:g}")
        if self.high is not None:
            parts.append(f"{'<' if self.high_open else '≤'} {self.high:g}")
        noun = {"int": "an integer", "optional_int": "an integer (or empty)", "int_list": "a list of integers",
                "float_list": "a list of numbers", "optional_float": "a number (or empty)"}.get(self.kind, "a number")
        return noun + (" " + " and ".join(parts) if parts else "")


def _bounds(info: Any) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for item in info.metadata:
        if isinstance(item, annotated_types.Ge):
            out["low"] = item.ge
        elif isinstance(item, annotated_types.Gt):
            out["low"], out["low_open"] = item.gt, True
        elif isinstance(item, annotated_types.Le):
            out["high"] = item.le
        elif isinstance(item, annotated_types.Lt):
            out["high"], out["high_open"] = item.lt, True
    return out


def _kind(annotation: Any) -> tuple[str, tuple[str, ...]]:
    text = str(annotation)
    if getattr(annotation, "__origin__", None) is Literal:
        return "choice", tuple(annotation.__args__)
    if annotation is bool:
        return "bool", ()
    if annotation is int:
        return "int", ()
    if annotation is float:
        return "float", ()
    if "list[int]" in text:
        return "int_list", ()
    if "list[float]" in text:
        return "float_list", ()
    if "int" in text and "None" in text:
        return "optional_int", ()
    if "float" in text and "None" in text:
        return "optional_float", ()
    raise TypeError(f"no widget kind for {annotation!r}")


def field_specs(cls: type[_Model], prefix: str = "", defaults: _Model | None = None) -> list[FieldSpec]:
    """Flat list of field specs, nested schedules expanded as ``epsilon.start`` etc.

    ``defaults`` is the enclosing field's default instance: DQN's ε schedule defaults differ from the class's.
    """
    specs = []
    for name, info in cls.model_fields.items():
        annotation = info.annotation
        default = info.default if defaults is None else getattr(defaults, name)
        if isinstance(annotation, type) and issubclass(annotation, _Model):
            specs.extend(field_specs(annotation, f"{prefix}{name}.", default))
            continue
        kind, choices = _kind(annotation)
        extra = info.json_schema_extra or {}
        specs.append(FieldSpec(
            name=prefix + name, kind=kind, description=info.description or "", default=default,
            typical=tuple(extra["typical"]) if extra.get("typical") else None, log=bool(extra.get("log")),
            choices=choices, **_bounds(info),
        ))
    return specs


def spec_lookup(cls: type[_Model]) -> dict[str, FieldSpec]:
    return {spec.name: spec for spec in field_specs(cls)}


def _problems(cls: type[_Model], err: ValidationError, prefix: str = "") -> list[tuple[str, str]]:
    """One ``(field, message)`` per invalid field; nested fields are named ``prefix`` + name (``epsilon.start``)."""
    specs = spec_lookup(cls)
    problems = []
    for item in err.errors(include_url=False):
        relative = _field_name(item["loc"], specs)
        field = prefix + relative
        value = item.get("input")
        if item["type"] == "value_error":
            error = item.get("ctx", {}).get("error")
            if isinstance(error, ConfigError) and error.source:  # a nested schedule validated itself
                nested_cls, nested_err = error.source
                problems.extend(_problems(nested_cls, nested_err, prefix=f"{field}."))
                continue
            message = str(error) if error is not None else item["msg"]
            # Cross-field messages start with the field they blame, e.g. "batch_size (512) must not exceed ...".
            blamed = message.split(" ", 1)[0]
            if blamed in _names(specs, relative):
                field = f"{field}.{blamed}" if relative else prefix + blamed
                message = prefix + message
            problems.append((field or cls.__name__, message))
        elif item["type"] == "extra_forbidden":
            allowed = ", ".join(prefix + name for name in sorted(specs))
            problems.append((field, f"unknown field {field!r}; allowed fields: {allowed}"))
        elif relative in specs:
            detail = f" ({item['msg']})" if specs[relative].kind.endswith("list") or item["type"] == BOOL_NOT_NUMBER \
                else ""
            allowed = specs[relative].allowed()
            problems.append((field, f"{field} ({_short(value)}) is not allowed: must be {allowed}{detail}"))
        else:
            problems.append((field, f"{field} ({_short(value)}) is not allowed: {item['msg']}"))
    # pydantic reports each union branch; one message per field is what a person wants to read.
    seen: dict[str, str] = {}
    for field, message in problems:
        seen.setdefault(field, message)
    return list(seen.items())


def _field_name(loc: tuple[str | int, ...], specs: dict[str, FieldSpec]) -> str:
    """The field a pydantic error location points at: list indices and union-branch tags after it dropped."""
    parts: list[str] = []
    for part in loc:
        if isinstance(part, int):
            continue
        parts.append(part)
        if ".".join(parts) in specs:
            break
    return ".".join(parts)


def _names(specs: dict[str, FieldSpec], prefix: str) -> set[str]:
    """Field names directly under ``prefix`` (top level when empty)."""
    head = f"{prefix}." if prefix else ""
    return {name[len(head):].split(".", 1)[0] for name in specs if name.startswith(head)}


def _short(value: Any) -> str:
    try:
        text = repr(value)
    except ValueError:  # an int too long for repr (Python's 4300-digit limit)
        return f"<integer with more than {sys.get_int_max_str_digits()} digits>"
    return text if len(text) <= 60 else text[:57] + "..."
