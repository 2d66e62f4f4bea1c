"""A study's search space, generated from the config field metadata: one generator for every algorithm.

Each config field that a study may vary becomes a ``Dimension``: a float or int range (the field's typical range by
default, log-scaled where its hint says so) or a categorical set of choices (choice fields, true/false, network
shapes). The command line writes dimensions as ``FIELD=LOW:HIGH[:log]`` or ``FIELD=a,b,c`` (``FIELD`` alone: its
default dimension); a list value is written with dashes, ``hidden_sizes=64-64,128-128``.

Every dimension is checked against the field's hard bounds before a trial runs, and ``SpaceError`` names the field and
what is allowed. A combination of values can still break a cross-field rule (``batch_size`` above ``buffer_size``):
``apply`` raises ``ConfigError`` for it, as for any config.

Import-light: Optuna is imported only where its distributions are built.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

import numpy as np

from cartpole_core.config.models import (
    RUN_CONTROL_FIELDS,
    ConfigError,
    FieldSpec,
    TrainConfig,
    config_class,
    spec_lookup,
    with_overrides,
)

if TYPE_CHECKING:
    from optuna.distributions import BaseDistribution

GRID_MAX = 256  # configurations in one grid; each trial is a group of runs, so a bigger grid is a typo
# The budget, the evaluation and the stopping rule are the study's yardstick: the same for every trial, so that
# the trials' objective values compare.
FIXED_FIELDS = RUN_CONTROL_FIELDS
SHAPE_SCALES = (0.5, 1, 2, 4)  # a list field's default choices: its default with every entry scaled by these
VARY_SYNTAX = "FIELD=LOW:HIGH[:log] or FIELD=a,b,c"
NUMERIC_KINDS = ("int", "optional_int", "float", "optional_float")

Kind = Literal["float", "int", "categorical"]


class SpaceError(ValueError):
    """An invalid search space; the message names the field and what is allowed."""


@dataclass(frozen=True)
class Dimension:
    """One varied field: a range (``low``, ``high``, ``log``) or ``choices`` (config values; lists as tuples)."""

    field: str
    kind: Kind
    low: float | None = None
    high: float | None = None
    log: bool = False
    choices: tuple | None = None

    def to_json(self) -> dict[str, Any]:
        choices = None if self.choices is None else [list(c) if isinstance(c, tuple) else c for c in self.choices]
        return {"field": self.field, "kind": self.kind, "low": self.low, "high": self.high, "log": self.log,
                "choices": choices}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Dimension:
        try:
            choices = data.get("choices")
            return cls(field=data["field"], kind=data["kind"], low=data.get("low"), high=data.get("high"),
                       log=bool(data.get("log", False)),
                       choices=None if choices is None else tuple(tuple(c) if isinstance(c, list) else c
                                                                  for c in choices))
        except (KeyError, TypeError, AttributeError):
            raise SpaceError(f"a dimension must be an object with field, kind, low, high, log and choices, "
                             f"got {str(data)[:80]}") from None

    def to_text(self) -> str:
        """The command-line form, which ``parse_vary`` reads back to this dimension."""
        if self.kind == "categorical":
            return f"{self.field}={','.join(_choice_text(choice) for choice in self.choices or ())}"
        return f"{self.field}={_number_text(self.low)}:{_number_text(self.high)}{':log' if self.log else ''}"


# ------------------------------------------------------------------------------------------- the fields


@functools.cache
def _specs(algo: str) -> dict[str, FieldSpec]:
    return spec_lookup(config_class(algo))


def varyable_fields(algo: str) -> list[str]:
    """Every field a study may vary, in the config's order: those with a typical range, choice and true/false
    fields, and integer lists (network shapes, bins); not the budget, evaluation and stopping (``FIXED_FIELDS``)."""
    return [name for name, spec in _specs(algo).items() if _default(spec) is not None]


def default_dimension(algo: str, field: str) -> Dimension:
    """The field's typical range (log-scaled where its hint says and the range starts above 0), or its choices."""
    spec = _specs(algo).get(field)
    dimension = None if spec is None else _default(spec)
    if dimension is None:
        raise _unknown(algo, field)
    return dimension


def _default(spec: FieldSpec) -> Dimension | None:
    if spec.name in FIXED_FIELDS:
        return None
    if spec.kind == "bool":
        return Dimension(spec.name, "categorical", choices=(False, True))
    if spec.kind == "choice":
        return Dimension(spec.name, "categorical", choices=spec.choices)
    if spec.typical is None:
        return None
    low, high = spec.typical
    if spec.kind == "int_list":
        return Dimension(spec.name, "categorical", choices=_scaled_shapes(spec.default, low, high))
    if spec.kind in ("int", "optional_int"):
        return Dimension(spec.name, "int", int(low), int(high), log=spec.log and low > 0)
    if spec.kind in ("float", "optional_float"):
        return Dimension(spec.name, "float", float(low), float(high), log=spec.log and low > 0)
    return None


def _scaled_shapes(default: Sequence[int], low: float, high: float) -> tuple[tuple[int, ...], ...]:
    """Narrower and wider versions of the default shape (``64-64`` → ``32-32`` … ``256-256``), within typical."""
    shapes = (tuple(int(min(high, max(low, round(size * scale)))) for size in default) for scale in SHAPE_SCALES)
    return tuple(dict.fromkeys(shapes))


def _spec(algo: str, field: str) -> FieldSpec:
    """The field's spec; SpaceError for a field a study may not vary."""
    default_dimension(algo, field)
    return _specs(algo)[field]


def _unknown(algo: str, field: str) -> SpaceError:
    allowed = ", ".join(varyable_fields(algo))
    if field in FIXED_FIELDS:
        return SpaceError(f"{field} is the same for every trial of a study (budget, evaluation and stopping are its "
                          f"yardstick); a study of {algo} may vary: {allowed}")
    return SpaceError(f"unknown field {field!r} for {algo}; a study of {algo} may vary: {allowed}")


# ------------------------------------------------------------------------------------------- parsing


def parse_vary(algo: str, text: str) -> Dimension:
    """A dimension from the command line: ``FIELD=LOW:HIGH[:log]``, ``FIELD=a,b,c`` or ``FIELD`` (its default)."""
    field, sep, value = text.partition("=")
    field = field.strip()
    if not field:
        raise SpaceError(f"--vary expects {VARY_SYNTAX}, got {text[:60]!r}")
    spec = _spec(algo, field)
    if not sep:
        return default_dimension(algo, field)
    if ":" in value:
        dimension = _parse_range(algo, spec, value)
    else:
        dimension = Dimension(field, "categorical", choices=tuple(_parse_choice(spec, part) for part in
                                                                   value.split(",")))
    _check_dimension(algo, spec, dimension)
    return dimension


def _parse_range(algo: str, spec: FieldSpec, text: str) -> Dimension:
    if spec.kind not in NUMERIC_KINDS:
        raise SpaceError(f"{spec.name} takes choices, not a range: e.g. {default_dimension(algo, spec.name).to_text()}"
                         f"; {spec.name} must be {_allowed(spec)}")
    parts = [part.strip() for part in text.split(":")]
    log = len(parts) == 3 and parts[2].lower() == "log"
    if len(parts) != (3 if log else 2):
        raise SpaceError(f"{spec.name} range {text[:60]!r} is not allowed: write LOW:HIGH or LOW:HIGH:log")
    integer = _integer(spec)
    low, high = (_parse_number(spec, part, integer) for part in parts[:2])
    return Dimension(spec.name, "int" if integer else "float", low, high, log=log)


def _parse_choice(spec: FieldSpec, text: str) -> Any:
    text = text.strip()
    if spec.kind == "bool":
        if text.lower() not in ("true", "false"):
            raise SpaceError(f"{spec.name} choice {text[:60]!r} is not allowed: {spec.name} must be true or false")
        return text.lower() == "true"
    if spec.kind == "choice":
        return text
    if spec.kind == "int_list":
        return tuple(_parse_number(spec, part, integer=True) for part in text.split("-"))
    if spec.kind.startswith("optional_") and text.lower() in ("", "none"):
        return None
    return _parse_number(spec, text, _integer(spec))


def _parse_number(spec: FieldSpec, text: str, integer: bool) -> float | int:
    try:
        number = float(text)
    except ValueError:
        number = math.nan
    if not math.isfinite(number) or (integer and not number.is_integer()):
        raise SpaceError(f"{spec.name} value {text[:60]!r} is not allowed: {spec.name} must be {_allowed(spec)}")
    return int(number) if integer else number


# ------------------------------------------------------------------------------------------- checking


def check_space(algo: str, dims: Iterable[Dimension]) -> list[Dimension]:
    """The dimensions, checked: known fields, each varied once, at least one, every range and choice allowed."""
    dims = list(dims)
    if not dims:
        raise SpaceError(f"a study must vary at least one field; a study of {algo} may vary: "
                         f"{', '.join(varyable_fields(algo))}")
    seen: set[str] = set()
    for dim in dims:
        if dim.field in seen:
            raise SpaceError(f"{dim.field} is varied twice; vary each field once")
        seen.add(dim.field)
        _check_dimension(algo, _spec(algo, dim.field), dim)
    return dims


def _check_dimension(algo: str, spec: FieldSpec, dim: Dimension) -> None:
    if dim.kind == "categorical":
        _check_choices(algo, spec, dim.choices or ())
    else:
        _check_range(algo, spec, dim)


def _check_choices(algo: str, spec: FieldSpec, choices: tuple) -> None:
    field = spec.name
    if len(choices) < 2:
        given = "one choice" if choices else "no choice"
        raise SpaceError(f"{field} has {given}; a study needs at least two (FIELD=a,b) or a range (FIELD=LOW:HIGH)")
    for i, choice in enumerate(choices):
        problem = _choice_problem(algo, spec, choice)
        if problem:
            raise SpaceError(f"{field} choice {_choice_text(choice)} is not allowed: {problem}")
        if choice in choices[:i]:
            raise SpaceError(f"{field} lists {_choice_text(choice)} twice; give each choice once")


def _choice_problem(algo: str, spec: FieldSpec, choice: Any) -> str | None:
    """What is wrong with one categorical choice, or None."""
    field = spec.name
    allowed = f"{field} must be {_allowed(spec)}"
    if spec.kind == "bool":
        return None if isinstance(choice, bool) else allowed
    if spec.kind == "choice":
        return None if choice in spec.choices else allowed
    if spec.kind == "int_list":
        if not isinstance(choice, tuple):
            return allowed
        # The entry rules (hidden units, bins per observation) are the config's validators': ask the model.
        try:
            with_overrides(config_class(algo)(), {field: list(choice)})
        except ConfigError as err:
            return next((message for name, message in err.problems if name == field), None)
        return None
    if choice is None:
        return None if spec.kind.startswith("optional_") else allowed
    return None if _is_number(choice, _integer(spec)) and _within(spec, choice) else allowed


def _check_range(algo: str, spec: FieldSpec, dim: Dimension) -> None:
    field = spec.name
    expected = "int" if _integer(spec) else "float"
    if spec.kind not in NUMERIC_KINDS or dim.kind != expected:
        raise SpaceError(f"{field} cannot be varied as {dim.kind!r}: e.g. {default_dimension(algo, field).to_text()}")
    low, high = dim.low, dim.high
    if not all(_is_number(x, integer=expected == "int") for x in (low, high)):
        raise SpaceError(f"{field} range {low}:{high} is not allowed: both ends must be {_allowed(spec)}")
    shown = f"{field} range {_number_text(low)}:{_number_text(high)}{':log' if dim.log else ''} is not allowed"
    if low >= high:
        raise SpaceError(f"{shown}: the low end must be below the high end")
    if dim.log and low <= 0:
        raise SpaceError(f"{shown}: a log range must start above 0")
    if not (_within(spec, low) and _within(spec, high)):
        raise SpaceError(f"{shown}: {field} must be {_allowed(spec)}")


def _is_number(value: Any, integer: bool) -> bool:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        return False
    return not integer or float(value).is_integer()


def _within(spec: FieldSpec, value: float) -> bool:
    above = spec.low is None or (value > spec.low if spec.low_open else value >= spec.low)
    below = spec.high is None or (value < spec.high if spec.high_open else value <= spec.high)
    return above and below


def _integer(spec: FieldSpec) -> bool:
    return spec.kind in ("int", "optional_int")


def _allowed(spec: FieldSpec) -> str:
    if spec.kind == "int_list":
        return f"{spec.allowed()}, written with dashes (e.g. {_choice_text(tuple(spec.default))})"
    return spec.allowed()


# ------------------------------------------------------------------------------------------- Optuna, grid, apply


def distribution(dim: Dimension) -> BaseDistribution:
    """The Optuna distribution a sampler draws this dimension from; list choices as their text (``64-64``)."""
    from optuna.distributions import CategoricalDistribution, FloatDistribution, IntDistribution

    if dim.kind == "categorical":
        return CategoricalDistribution([_sampled(choice) for choice in dim.choices or ()])
    if dim.kind == "int":
        return IntDistribution(int(dim.low), int(dim.high), log=dim.log)
    return FloatDistribution(float(dim.low), float(dim.high), log=dim.log)


def grid(dims: Sequence[Dimension], points: int = 3) -> dict[str, list]:
    """The grid sampler's search space: ``points`` values per range (log-spaced when log), every choice.

    SpaceError when the grid holds more than ``GRID_MAX`` configurations."""
    axes = {dim.field: _axis(dim, points) for dim in dims}
    size = math.prod(len(values) for values in axes.values())
    if size > GRID_MAX:
        factors = " × ".join(f"{field} ({len(values)})" for field, values in axes.items())
        raise SpaceError(f"a grid over {factors} has {size:,} configurations; at most {GRID_MAX} are allowed: vary "
                         f"fewer fields, give fewer choices or grid points, or sample the space (tpe, random)")
    return axes


def grid_size(dims: Sequence[Dimension], points: int = 3) -> int:
    return math.prod(len(_axis(dim, points)) for dim in dims)


def _axis(dim: Dimension, points: int) -> list:
    """One dimension's grid values: the ends exact, the values between rounded to 3 significant digits."""
    if dim.kind == "categorical":
        return [_sampled(choice) for choice in dim.choices or ()]
    if points < 2:
        raise SpaceError(f"a grid needs at least 2 points per range, got {points}")
    spaced = (np.geomspace if dim.log else np.linspace)(dim.low, dim.high, points)
    if dim.kind == "int":
        return sorted({int(round(value)) for value in spaced})
    return [float(dim.low), *(float(f"{value:.3g}") for value in spaced[1:-1]), float(dim.high)]


def apply(base: TrainConfig, params: dict[str, Any]) -> TrainConfig:
    """``base`` with the sampled values (dotted field names); ConfigError when they break a cross-field rule."""
    specs = spec_lookup(type(base))
    return with_overrides(base, {name: _config_value(specs.get(name), value) for name, value in params.items()})


def _sampled(choice: Any) -> Any:
    """A choice as Optuna holds it: numbers, text and booleans as they are, a list as its dashed text."""
    return _choice_text(choice) if isinstance(choice, tuple) else choice


def _config_value(spec: FieldSpec | None, value: Any) -> Any:
    if spec is not None and spec.kind == "int_list":
        if isinstance(value, str) and all(part.isdigit() for part in value.split("-")):
            return [int(part) for part in value.split("-")]
        if isinstance(value, tuple):
            return list(value)
    return value


def _choice_text(choice: Any) -> str:
    if choice is None:
        return "none"
    if isinstance(choice, bool):
        return "true" if choice else "false"
    if isinstance(choice, tuple):
        return "-".join(str(item) for item in choice)
    return _number_text(choice) if isinstance(choice, (int, float)) else str(choice)


def _number_text(value: Any) -> str:
    """Exact (``repr``), so that ``parse_vary`` reads back the same number."""
    return repr(value) if isinstance(value, float) else str(value)
