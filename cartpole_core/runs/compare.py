"""Comparing runs: names that say what differs, group labels, config differences and per-group results.

A question such as "which DQN learning rate solves fastest?" is answered over groups of seeds, so everything here
works on groups: runs sharing a ``group_id`` (one launch, one config, several seeds), a run without one being its
own group. Runs are the store's run dicts (``RunStore.list_runs`` rows).

Names collide (every run of a preset used to be ``dqn/fast · seed N``), so nothing here is keyed by name: run ids
and group ids key the data, and the labels shown are made distinct.

Groups are summarized as rliable does (``cartpole_core.stats``): the interquartile mean of their seeds with a 95 %
bootstrap confidence interval and the number of seeds behind it, and, between two groups, the probability that a
seed of one does better than a seed of the other.

Pure and import-light (configs, presets, numpy): the dashboard and the CLI share it, and its tests need no torch.
"""

from __future__ import annotations

import json
import math
import re
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from itertools import combinations
from typing import Any

import numpy as np

from cartpole_core.config.models import ALGORITHMS, RUN_CONTROL_FIELDS, TrainConfig, config_class, field_specs
from cartpole_core.config.presets import PRESETS, preset_config
from cartpole_core.stats import Estimate, iqm_estimate, probability_of_improvement

NAME_LIMIT = 80  # a default name longer than this lists its first overrides and "+N more"
SEED_SUFFIX = re.compile(r"\s*·\s*seed\s+-?\d+\s*$")

# Short names for the fields people tune most; other fields show their leaf name (schedule fields keep their
# schedule's short prefix, e.g. ``lr_end``, ``eps_duration``, as ``end`` alone would be ambiguous).
ALIASES = {
    "critic_learning_rate": "critic_lr",
    "total_env_steps": "steps",
    "hidden_sizes": "hidden",
    "batch_size": "batch",
    "buffer_size": "buffer",
    "minibatch_size": "minibatch",
    "max_episode_steps": "ep_cap",
    "n_envs": "envs",
    "eval_every_steps": "eval_every",
    "target_update_interval": "target_every",
    "gradient_steps": "grad_steps",
    "max_grad_norm": "grad_clip",
    "double_dqn": "double",
    "normalize_advantage": "norm_adv",
    "shared_network": "shared",
    "rollout_steps": "rollout",
    "clip_range": "clip",
}
SCHEDULE_PREFIXES = {"learning_rate": "lr", "epsilon": "eps"}

# Names list the fields people compare first, then the rest in the config's own order, and the run-control fields
# (budget, evaluation, stopping) last: ``dqn/fast lr=5e-3 steps=50k`` rather than the other way round.
FIRST = ("learning_rate.start", "critic_learning_rate", "gamma", "epsilon.start", "epsilon.end", "hidden_sizes",
         "batch_size", "buffer_size", "minibatch_size")
LAST = RUN_CONTROL_FIELDS


# --------------------------------------------------------------------------------------------------- values


def fmt_value(value: Any) -> str:
    """A config value as names and tables show it: ``5e-3``, ``0.97``, ``200k``, ``32-32``, ``on`` / ``off``."""
    if value is None:
        return "none"
    if isinstance(value, bool):
        return "on" if value else "off"
    if isinstance(value, (list, tuple)):
        items = [fmt_value(item) for item in value]
        # Negative bounds read badly joined by "-" (``-2.4--3``): those lists are comma-separated.
        return ("," if any(item.startswith("-") for item in items) else "-").join(items)
    if isinstance(value, (int, float)):
        return fmt_number(value)
    return str(value)


def fmt_number(value: float) -> str:
    """Compact and exact enough to tell settings apart: ``25k``, ``1.25M``, ``0.97``, ``5e-3``, ``1.5e-4``."""
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    if float(value).is_integer() and abs(value) >= 1000:
        for suffix, scale in (("M", 1_000_000), ("k", 1000)):
            scaled = round(value / scale, 2)
            if abs(value) >= scale and scaled * scale == value:
                return f"{scaled:g}{suffix}"
        return str(int(value))
    if value != 0 and abs(value) < 0.01:
        mantissa, exponent = f"{value:.3e}".split("e")
        return f"{float(mantissa):g}e{int(exponent)}"
    return f"{value:.4g}"


def _same(a: Any, b: Any) -> bool:
    """Equal as settings: floats within rounding (a form's 0.97 may arrive as 0.9700000000000001)."""
    numbers = all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in (a, b))
    if numbers and (isinstance(a, float) or isinstance(b, float)):
        return math.isclose(a, b, rel_tol=1e-9, abs_tol=1e-12)
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b))
    return a == b


def flatten(config: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    """A config dict with nested schedules as dotted fields (``learning_rate.start``), as ``field_specs`` names them."""
    flat: dict[str, Any] = {}
    for key, value in config.items():
        if isinstance(value, dict):
            flat.update(flatten(value, f"{prefix}{key}."))
        else:
            flat[prefix + key] = value
    return flat


def run_config(run: dict[str, Any]) -> dict[str, Any]:
    """A stored run's config, flattened; ``algo`` left out (runs carry it as a column of their own)."""
    flat = flatten(json.loads(run["config_json"]))
    flat.pop("algo", None)
    return flat


def alias(name: str) -> str:
    """The short name of a dotted field: ``learning_rate.start`` → ``lr``, ``epsilon.end`` → ``eps_end``."""
    if name in ALIASES:
        return ALIASES[name]
    head, _, leaf = name.partition(".")
    if leaf and head in SCHEDULE_PREFIXES:
        return SCHEDULE_PREFIXES[head] if leaf == "start" else f"{SCHEDULE_PREFIXES[head]}_{leaf}"
    return name.rsplit(".", 1)[-1]


def ordered(names: Iterable[str], algos: Iterable[str] = ALGORITHMS) -> list[str]:
    """``names`` in reading order: the most compared fields first, then each config's own order, budget last."""
    names = list(dict.fromkeys(names))
    spec_order: list[str] = []
    for algo in algos:
        spec_order += [spec.name for spec in field_specs(config_class(algo)) if spec.name not in spec_order]

    def rank(name: str) -> tuple[int, int]:
        if name in FIRST:
            return 0, FIRST.index(name)
        if name in LAST:
            return 2, LAST.index(name)
        return 1, spec_order.index(name) if name in spec_order else len(spec_order)

    return sorted(names, key=rank)


# ---------------------------------------------------------------------------------------------------- names


def reference_config(algo: str, preset: str | None) -> TrainConfig:
    """What a run is named against: its built-in preset, or the algorithm's defaults when it has none (or one that
    no longer exists, e.g. an imported run's, or a user preset: those live in a data home, which this module does
    not know — callers that do pass the preset's config as ``reference``)."""
    if preset is not None and preset in PRESETS.get(algo, {}):
        return preset_config(algo, preset)
    return config_class(algo)()


def overrides(config: TrainConfig, preset: str | None, reference: TrainConfig | None = None) -> dict[str, Any]:
    """The dotted fields where ``config`` differs from ``reference`` (default: its preset, or the defaults), in
    reading order."""
    ours = flatten(json.loads(config.to_json()))
    theirs = flatten(json.loads((reference or reference_config(config.algo, preset)).to_json()))
    changed = [name for name in ours if name != "algo" and not _same(ours[name], theirs.get(name))]
    return {name: ours[name] for name in ordered(changed, [config.algo])}


def default_name(config: TrainConfig, preset: str | None, reference: TrainConfig | None = None) -> str:
    """A run's name from what differs from its preset: ``dqn/fast lr=5e-3``, ``ppo/seed gamma=0.97 hidden=32-32``,
    ``dqn/fast`` when nothing differs, ``dqn/custom …`` (against the defaults) without a preset. Fifteen runs of
    one preset then no longer share one name, and a legend says which setting each curve is. ``reference``: the
    preset's config, for a user preset (``runs.presets.load_preset_config``)."""
    base = f"{config.algo}/{preset or 'custom'}"
    parts = [f"{alias(name)}={fmt_value(value)}" for name, value in overrides(config, preset, reference).items()]
    return _fit(base, parts)


def _fit(base: str, parts: Sequence[str], limit: int = NAME_LIMIT) -> str:
    """``base`` and as many of ``parts`` as fit in ``limit`` characters, then ``+N more``."""
    shown: list[str] = []
    for index, part in enumerate(parts):
        rest = len(parts) - index - 1
        if len(" ".join([base, *shown, part]) + (f" +{rest} more" if rest else "")) > limit:
            break
        shown.append(part)
    hidden = len(parts) - len(shown)
    return " ".join([base, *shown]) + (f" +{hidden} more" if hidden else "")


def base_name(name: str) -> str:
    """A run's name without its `` · seed N`` suffix: what the runs of one launch share."""
    return SEED_SUFFIX.sub("", name)


# --------------------------------------------------------------------------------------------------- groups


def group_key(run: dict[str, Any]) -> str:
    """The group a run is compared in: its launch's group, or itself when it has none."""
    return run.get("group_id") or run["id"]


def group_runs(runs: Iterable[dict[str, Any]]) -> dict[str, list[dict[str, Any]]]:
    """Runs by group key, groups in order of first appearance, each group's runs by seed."""
    groups: dict[str, list[dict[str, Any]]] = {}
    for run in runs:
        groups.setdefault(group_key(run), []).append(run)
    return {key: sorted(members, key=lambda run: (run["seed"], run["id"])) for key, members in groups.items()}


def group_label(runs: Sequence[dict[str, Any]]) -> str:
    """A group's display name: its runs' common base name and how many they are (``dqn/fast lr=5e-3 ×3``); a
    single run is shown by its own name. When members were renamed apart, the most common base is used."""
    if len(runs) == 1:
        return runs[0]["name"]
    base = Counter(base_name(run["name"]) for run in runs).most_common(1)[0][0]
    return f"{base} ×{len(runs)}"


def group_labels(groups: Sequence[Sequence[dict[str, Any]]]) -> list[str]:
    """One label per group, all distinct, so a legend or a table never shows two curves under one name.

    Groups whose labels collide get the settings that tell them apart (``dqn/fast ×3 lr=5e-3``: runs launched
    before names said what differs); groups that still collide get the end of their group id (``#3fa2c1``)."""
    labels = [group_label(runs) for runs in groups]
    for _, indices in _collisions(labels):
        settings = _distinguishing(groups, indices)
        for index in indices:
            if settings[index]:
                labels[index] = f"{labels[index]} {settings[index]}"
    for _, indices in _collisions(labels):
        for index in indices:
            labels[index] = f"{labels[index]} #{group_key(groups[index][0])[-6:]}"
    while collisions := _collisions(labels):  # ids sharing their last characters: number them
        for _, indices in collisions:
            for number, index in enumerate(indices[1:], start=2):
                labels[index] = f"{labels[index]} ({number})"
    return labels


def _collisions(labels: Sequence[str]) -> list[tuple[str, list[int]]]:
    where: dict[str, list[int]] = {}
    for index, label in enumerate(labels):
        where.setdefault(label, []).append(index)
    return [(label, indices) for label, indices in where.items() if len(indices) > 1]


def _distinguishing(groups: Sequence[Sequence[dict[str, Any]]], indices: Sequence[int], most: int = 3) -> dict:
    """For colliding groups: ``lr=5e-3 gamma=0.9``-style text from the fields that differ among them."""
    members = [run for index in indices for run in groups[index]]
    names = differing_fields(members)[:most]
    out = {}
    for index in indices:
        values = [_shared_value(groups[index], name) for name in names]
        out[index] = " ".join(f"{alias(name)}={fmt_value(value)}" for name, value in zip(names, values)
                              if value is not _MIXED)
    return out


_MIXED = object()  # a group whose members differ in a field (not one launch's runs)


def _shared_value(runs: Sequence[dict[str, Any]], name: str) -> Any:
    values = [run_config(run).get(name) for run in runs]
    return values[0] if all(_same(value, values[0]) for value in values) else _MIXED


def differing_fields(runs: Sequence[dict[str, Any]]) -> list[str]:
    """The dotted config fields whose values differ among ``runs`` (the seed is not a config field), in reading
    order. A field only some runs have (another algorithm's) counts where it is present: DQN's batch size is a
    column when DQN runs differ in it, not merely because a PPO run is listed beside them."""
    configs = [run_config(run) for run in runs]
    names = list(dict.fromkeys(name for config in configs for name in config))
    differing = []
    for name in names:
        values = [config[name] for config in configs if name in config]
        if any(not _same(value, values[0]) for value in values[1:]):
            differing.append(name)
    return ordered(differing, dict.fromkeys(run["algo"] for run in runs))


# ------------------------------------------------------------------------------------------- config diff


@dataclass(frozen=True)
class DiffColumn:
    """One config in a diff: the runs that share it (a whole group, when its seeds share one config)."""

    key: str  # the first run's id: names collide, ids don't
    label: str
    run_ids: tuple[str, ...]
    values: dict[str, Any] = field(default_factory=dict)  # field → value, for the diff's fields


@dataclass(frozen=True)
class ConfigDiff:
    """The fields that differ among some runs, and one column per distinct config of each group."""

    fields: list[str]
    columns: list[DiffColumn]

    def table(self) -> dict[str, dict[str, str]]:
        """``{column label: {field: shown value}}`` ("—": the field is not in that run's algorithm)."""
        return {column.label: {name: "—" if name not in column.values else fmt_value(column.values[name])
                               for name in self.fields} for column in self.columns}


def config_diff(runs: Sequence[dict[str, Any]]) -> ConfigDiff:
    """Config differences among ``runs``, keyed by run id; a group's runs that share one config are one column
    (labelled as the group), a group whose runs differ is split into one column per config. ``algo`` is a row
    when the runs are of several algorithms."""
    parts: list[list[dict[str, Any]]] = []
    for members in group_runs(runs).values():
        by_config: dict[str, list[dict[str, Any]]] = {}
        for run in members:
            by_config.setdefault(json.dumps(run_config(run), sort_keys=True), []).append(run)
        parts += by_config.values()
    fields = differing_fields(runs)
    if len({run["algo"] for run in runs}) > 1:
        fields = ["algo", *fields]
    columns = []
    for label, members in zip(group_labels(parts), parts):
        config = run_config(members[0]) | {"algo": members[0]["algo"]}
        columns.append(DiffColumn(key=members[0]["id"], label=label, run_ids=tuple(run["id"] for run in members),
                                  values={name: config[name] for name in fields if name in config}))
    return ConfigDiff(fields=fields, columns=columns)


# ----------------------------------------------------------------------------------------------- summary


def fmt_steps(steps: float) -> str:
    """Env steps to solve, exact: ``6,017`` (two runs 13 steps apart are not both "6k")."""
    return f"{steps:,.0f}"


def fmt_seconds(seconds: float) -> str:
    return f"{seconds:.2f} s" if seconds < 10 else f"{seconds:.1f} s"


def fmt_return(value: float) -> str:
    return f"{value:.1f}"


@dataclass(frozen=True)
class Metric:
    """A result of each seed that groups are compared on: its run column, which way is better, how it is written."""

    name: str
    title: str
    column: str  # of the store's run rows
    to_solve: bool  # steps or time to solve: lower is better, and a seed that has not solved counts as ∞
    better: str  # what doing better means, in words
    fmt: Callable[[float], str]

    def seed_values(self, runs: Sequence[dict[str, Any]]) -> np.ndarray:
        """One value per seed: its steps or seconds to solve (∞: not solved), or its last evaluation's return
        (a seed not evaluated yet has none)."""
        if self.to_solve:
            return _solve_values(runs, self.column)
        return np.array([run[self.column] for run in runs if run.get(self.column) is not None], dtype=float)

    def shown(self, value: float) -> str:
        return "not solved" if value == math.inf else self.fmt(value)

    def estimate_text(self, estimate: Estimate | None) -> str:
        """``12,000 [10,000, 14,000] (n=4)``: the IQM, its 95 % interval and the seeds behind it; ``480.0 (n=1)``:
        an interval of one point (one seed, or seeds that all agree) says nothing and is left out; "—": no seed has
        a value."""
        if estimate is None:
            return "—"
        low, high = self.shown(estimate.low), self.shown(estimate.high)
        interval = "" if estimate.low == estimate.high else f" [{low}, {high}]"
        return f"{self.shown(estimate.iqm)}{interval} (n={estimate.n})"


METRICS: dict[str, Metric] = {metric.name: metric for metric in (
    Metric("final_eval", "final eval", "final_eval", False, "a higher final evaluation return", fmt_return),
    Metric("steps_to_solve", "steps to solve", "steps_to_solve", True, "solving in fewer env steps", fmt_steps),
    Metric("time_to_solve", "time to solve", "time_to_solve_s", True, "solving in less training time", fmt_seconds),
)}


def group_summary(runs: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """One row per group, best first: solved fraction (high first), then the IQM of steps to solve (low first).

    Each of ``METRICS`` is an ``Estimate`` (IQM, 95 % bootstrap interval, n) across the group's seeds, or None when
    no seed has a value (a final eval before any evaluation). A seed that has not solved counts as solving at ∞:
    the IQM trims a quarter of the seeds from each end (none of fewer than four), so it is ∞, "not solved", when
    more seeds than it trims have not solved — a setting cannot look fast on its one lucky seed. The spread is
    min–max over the seeds (an unsolved seed makes the max "not solved"). Rows hold ``label``, ``algo``, ``seeds``,
    ``solved`` (count), ``solved_fraction``, ``final_eval``, ``steps_to_solve`` and ``time_to_solve`` (estimates),
    ``steps_range`` / ``time_range`` (text), ``active`` (seeds still queued or training), ``hyperparameters`` (the
    fields differing among ``runs``), ``group_id`` and ``run_ids``."""
    groups = group_runs(runs)
    fields = differing_fields(runs)
    rows = []
    for label, (key, members) in zip(group_labels(list(groups.values())), groups.items()):
        solved = sum(bool(run["solved"]) for run in members)
        rows.append({
            "label": label, "algo": members[0]["algo"], "seeds": len(members), "solved": solved,
            "solved_fraction": solved / len(members),
            **{name: _estimate(metric.seed_values(members)) for name, metric in METRICS.items()},
            "steps_range": _range(_solve_values(members, "steps_to_solve"), fmt_steps),
            "time_range": _range(_solve_values(members, "time_to_solve_s"), fmt_seconds),
            "active": sum(run["status"] in ("queued", "running") for run in members),
            "hyperparameters": {name: _shown_value(members, name) for name in fields},
            "group_id": key, "run_ids": [run["id"] for run in members],
        })
    return sorted(rows, key=_rank)


@dataclass(frozen=True)
class Improvement:
    """Of two groups, the one more likely to do better, and how likely: over every pair of a seed of each, the share
    where ``better``'s seed does better, ties counting half (0.5: no telling them apart)."""

    better: str  # group labels
    worse: str
    probability: float  # at least 0.5
    seeds: tuple[int, int]  # behind it: better's × worse's


@dataclass(frozen=True)
class GroupComparison:
    """Which of some groups is better on one metric: every two of them, the clearest first."""

    metric: Metric
    pairs: list[Improvement]
    seeds: dict[str, int]  # each group's label → its seeds with a value (0: left out of the pairs)


def compare_groups(runs: Sequence[dict[str, Any]], metric: str) -> GroupComparison:
    """The probability of improvement of each group of ``runs`` over each other on ``metric`` (a name in
    ``METRICS``), stated from the side more likely better; labelled as ``group_labels`` labels the groups."""
    if metric not in METRICS:
        raise ValueError(f"metric {metric!r} is unknown; allowed: {', '.join(METRICS)}")
    chosen = METRICS[metric]
    groups = list(group_runs(runs).values())
    values = {label: chosen.seed_values(members) for label, members in zip(group_labels(groups), groups)}
    pairs = []
    for (a, of_a), (b, of_b) in combinations([(label, v) for label, v in values.items() if v.size], 2):
        # Lower is better to solve: a improves on b as often as b's values exceed a's.
        p = probability_of_improvement(of_b, of_a) if chosen.to_solve else probability_of_improvement(of_a, of_b)
        if p < 0.5:
            a, b, of_a, of_b, p = b, a, of_b, of_a, 1 - p
        pairs.append(Improvement(better=a, worse=b, probability=p, seeds=(of_a.size, of_b.size)))
    return GroupComparison(metric=chosen, pairs=sorted(pairs, key=lambda pair: -pair.probability),
                           seeds={label: v.size for label, v in values.items()})


def _estimate(values: np.ndarray) -> Estimate | None:
    return iqm_estimate(values) if values.size else None


def _solve_values(runs: Sequence[dict[str, Any]], column: str) -> np.ndarray:
    return np.array([run[column] if run["solved"] and run.get(column) is not None else math.inf for run in runs],
                    dtype=float)


def _range(values: np.ndarray, fmt: Any) -> str:
    low, high = values.min(), values.max()
    shown = [fmt(float(v)) if math.isfinite(v) else "not solved" for v in (low, high)]
    return shown[0] if low == high else f"{shown[0]} – {shown[1]}"


def _shown_value(runs: Sequence[dict[str, Any]], name: str) -> str:
    value = _shared_value(runs, name)
    return "mixed" if value is _MIXED else "—" if value is None and not any(
        name in run_config(run) for run in runs) else fmt_value(value)


def _rank(row: dict[str, Any]) -> tuple:
    final = row["final_eval"].iqm if row["final_eval"] is not None else -math.inf
    return -row["solved_fraction"], row["steps_to_solve"].iqm, row["time_to_solve"].iqm, -final, row["label"]


# ------------------------------------------------------------------------------------------- evaluations


def stopped_on_solve(run: dict[str, Any]) -> bool:
    """The run ended because it solved (``stop_on_solve``): its last evaluation is solved and stands for the rest
    of the budget — a curve that simply ends there would read as a run that gave up."""
    return (bool(run["solved"]) and run["status"] == "completed"
            and bool(json.loads(run["config_json"]).get("stop_on_solve")))


def evaluation_rows(evaluations: Sequence[dict[str, Any]], x: str, until: float | None = None) -> list[dict]:
    """A run's evaluations as rows ``{x: …, "mean_return": …, "carried": False}`` for x = ``env_steps``,
    ``episode`` (the training episodes done at the evaluation) or ``time_s``; with ``until`` beyond the last
    evaluation, its value is carried forward to there (a row with ``carried`` True)."""
    source = "episodes" if x == "episode" else x
    rows = [{x: row[source], "mean_return": row["mean_return"], "std_return": row["std_return"], "carried": False}
            for row in evaluations]
    if rows and until is not None and until > rows[-1][x]:
        rows.append({**rows[-1], x: until, "carried": True})
    return rows
