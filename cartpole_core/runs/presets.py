"""User presets: a configuration saved under a name — a study's best, a run's, any Train setup — kept in the data
home and offered wherever the built-in presets (``config.presets``) are: the Train page, the CLI's ``presets``,
``train --preset`` and ``study run --preset``.

One JSON file per preset, ``<home>/presets/<algo>/<name>.json``, with a format marker and a version, written whole
(a temporary file, then a rename): a reader sees the old preset or the new one, never a part. A file that cannot be
used (damaged, foreign, from a newer lab, named like a built-in) is reported and skipped, never deleted — it may be
the user's only copy.

A run records its preset's name only, as a label and the base its name is written against; what it trained is its
own config, so deleting or replacing a preset changes no run.
"""

from __future__ import annotations

import json
import os
import re
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cartpole_core.config.limits import shown
from cartpole_core.config.models import (
    ALGORITHMS,
    ConfigError,
    TrainConfig,
    config_class,
    config_from_dict,
    config_from_json,
)
from cartpole_core.config.presets import PRESETS, config_from_values, preset_config, unknown_preset
from cartpole_core.runs.home import write_whole

PRESETS_DIR = "presets"
PRESET_FORMAT = "cartpole-lab-preset"
PRESET_VERSION = 1
PRESET_NAME_MAX = 40  # it is a file name, typed in commands and carried in links
DESCRIPTION_MAX = 300
SOURCE_MAX = 200
PRESET_FILE_MAX = 100_000  # bytes; a preset is about 1 KB, anything far larger is not one
NAME_RULE = (f"letters (a-z, A-Z), digits and - _ . — starting with a letter or digit, at most {PRESET_NAME_MAX} "
             f"characters")
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]*")


class PresetError(ValueError):
    """A preset that cannot be saved, deleted or read as asked; the message names what was wrong and what is
    allowed."""


@dataclass(frozen=True)
class UserPreset:
    """A preset the user saved; ``source`` says where its config came from (``study …``, ``run …``)."""

    algo: str
    name: str
    description: str
    config_json: str
    created_at: float
    source: str | None

    def config(self) -> TrainConfig:
        return config_from_json(self.config_json)


def check_preset_name(algo: str, name: Any) -> str:
    """A new preset's name, trimmed: a short slug (it becomes a file name) that no built-in preset of ``algo`` has,
    ignoring case (``Fast`` beside ``fast`` would read as the same preset)."""
    _check_algo(algo)
    if not isinstance(name, str):
        raise PresetError(f"a preset name must be text, got {type(name).__name__}")
    name = name.strip()
    if not name:
        raise PresetError(f"a preset name must not be empty; allowed: {NAME_RULE}")
    if len(name) > PRESET_NAME_MAX or not _NAME.fullmatch(name):
        raise PresetError(f"preset name {shown(name)} is not allowed; allowed: {NAME_RULE}")
    builtin = _same_name(name, PRESETS[algo])
    if builtin:
        raise PresetError(f"{name!r} is the name of a built-in {algo} preset ({builtin}); choose another name "
                          f"(built-in: {', '.join(PRESETS[algo])})")
    return name


def _check_algo(algo: Any) -> None:
    if algo not in ALGORITHMS:
        raise PresetError(f"algo {shown(algo)} is unknown; allowed: {', '.join(ALGORITHMS)}")


def _same_name(name: str, names: Any) -> str | None:
    """The one of ``names`` that is ``name`` but for case, if any."""
    return next((other for other in names if other.casefold() == name.casefold()), None)


def _folder(home: str | os.PathLike, algo: str) -> Path:
    return Path(home) / PRESETS_DIR / algo


def _files(home: str | os.PathLike, algo: str) -> dict[str, Path]:
    """The user's preset files of ``algo`` by name (their file name without ``.json``), in name order; temporary
    files (``.name.json.….tmp``) are not presets."""
    folder = _folder(home, algo)
    if not folder.is_dir():
        return {}
    paths = [path for path in folder.iterdir() if path.suffix == ".json" and not path.name.startswith(".")]
    return {path.stem: path for path in sorted(paths, key=lambda path: path.stem.casefold())}


# ---------------------------------------------------------------------------------------------- saving


def save_preset(home: str | os.PathLike, algo: str, name: str, config: TrainConfig, description: str = "",
                source: str | None = None, *, replace: bool = False) -> UserPreset:
    """Save ``config`` as the user's preset ``name`` of ``algo``; PresetError (nothing written) for a name outside
    :data:`NAME_RULE`, a built-in's name, a name the user already has (unless ``replace``), or a description or
    source that is not short plain text. OSError when the data home cannot be written (nothing half-written)."""
    name = check_preset_name(algo, name)
    description = _text(description, "description", DESCRIPTION_MAX)
    source = None if source is None else _text(source, "source", SOURCE_MAX)
    if not isinstance(config, TrainConfig) or config.algo != algo:
        got = config.algo if isinstance(config, TrainConfig) else type(config).__name__
        raise PresetError(f"a {algo} preset needs a {algo} config, got {got}")
    existing = _same_name(name, _files(home, algo))
    if existing is not None and existing != name:
        raise PresetError(f"you have a {algo} preset {existing!r}, the same name but for case; use {existing!r} "
                          f"to replace it, or choose another name")
    if existing is not None and not replace:
        raise PresetError(f"you already have a {algo} preset {name!r}; choose another name, or replace it")
    preset = UserPreset(algo=algo, name=name, description=description,
                        config_json=config_from_json(config.to_json()).to_json(), created_at=time.time(),
                        source=source)
    data = {"format": PRESET_FORMAT, "version": PRESET_VERSION, "algo": algo, "name": name,
            "description": description, "source": source, "created_at": preset.created_at,
            "config": json.loads(preset.config_json)}
    folder = _folder(home, algo)
    folder.mkdir(parents=True, exist_ok=True)
    write_whole(folder / f"{name}.json", json.dumps(data, indent=1, ensure_ascii=False) + "\n")
    return preset


def _text(value: Any, what: str, limit: int) -> str:
    if not isinstance(value, str):
        raise PresetError(f"a preset's {what} must be text, got {type(value).__name__}")
    value = value.strip()
    if len(value) > limit:
        raise PresetError(f"a preset's {what} must be at most {limit} characters, got {len(value):,}")
    if any(ord(char) < 32 or ord(char) == 127 for char in value):
        raise PresetError(f"a preset's {what} must be one line, without control characters")
    return value


def delete_preset(home: str | os.PathLike, algo: str, name: str) -> None:
    """Delete the user's preset (a damaged one too); PresetError for a built-in or a name the user does not have.
    Runs launched from it keep their config."""
    _check_algo(algo)
    if isinstance(name, str) and name in PRESETS[algo]:
        raise PresetError(f"{name!r} is a built-in {algo} preset; only your own presets can be deleted")
    files = _files(home, algo)
    if not isinstance(name, str) or name not in files:
        yours = f"yours: {', '.join(files)}" if files else f"you have no {algo} presets"
        raise PresetError(f"you have no {algo} preset {shown(name)}; {yours}")
    files[name].unlink()


# --------------------------------------------------------------------------------------------- reading


def user_presets(home: str | os.PathLike, algo: str | None = None) -> tuple[list[UserPreset], list[str]]:
    """The user's presets (of ``algo``, or of every algorithm), by algorithm then name, and one line for each file
    that cannot be used, saying why and what to do; those files are skipped, never changed."""
    if algo is not None:
        _check_algo(algo)
    presets, problems = [], []
    for each in [algo] if algo else ALGORITHMS:
        for name, path in _files(home, each).items():
            try:
                presets.append(_read(path, each, name))
            except PresetError as err:
                problems.append(str(err))
    return presets, problems


def _read(path: Path, algo: str, name: str) -> UserPreset:
    """The preset in ``path``; PresetError naming the file, what is wrong with it and what to do."""
    if _same_name(name, PRESETS[algo]) or not _NAME.fullmatch(name) or len(name) > PRESET_NAME_MAX:
        raise PresetError(f"{path} is skipped: {name!r} cannot be a user preset's name ({NAME_RULE}, not a built-in "
                          f"preset's); rename the file")
    try:
        if path.stat().st_size > PRESET_FILE_MAX:
            raise ValueError(f"it is larger than {PRESET_FILE_MAX:,} bytes")
        data = json.loads(path.read_text(encoding="utf-8"))
        return _from_dict(data, algo, name)
    except OSError as err:
        raise PresetError(f"cannot read {path}: {err.strerror or err}") from None
    except (ValueError, TypeError, RecursionError) as err:  # JSONDecodeError, UnicodeDecodeError, ConfigError
        problem = " ".join(str(err).split())[:300]
        raise PresetError(f"{path} is damaged or not a preset ({problem}); fix or delete the file") from None


def _from_dict(data: Any, algo: str, name: str) -> UserPreset:
    if not isinstance(data, dict) or data.get("format") != PRESET_FORMAT:
        raise ValueError("it is not a CartPole Lab preset")
    if data.get("version") != PRESET_VERSION:
        raise ValueError(f"it has version {shown(data.get('version'))}; this CartPole Lab reads version "
                         f"{PRESET_VERSION}")
    if (data.get("algo"), data.get("name")) != (algo, name):
        raise ValueError(f"it holds the {shown(data.get('algo'))} preset {shown(data.get('name'))}, not {algo} "
                         f"{name!r}; it was copied or renamed")
    created_at, source = data.get("created_at"), data.get("source")
    if isinstance(created_at, bool) or not isinstance(created_at, (int, float)):
        raise ValueError(f"created_at must be a time in seconds, got {shown(created_at)}")
    config = config_from_dict(data.get("config"))
    if config.algo != algo:
        raise ValueError(f"its config is a {config.algo} config, not {algo}")
    return UserPreset(algo=algo, name=name, description=_text(data.get("description"), "description",
                                                              DESCRIPTION_MAX),
                      config_json=config.to_json(), created_at=float(created_at),
                      source=None if source is None else _text(source, "source", SOURCE_MAX))


def is_user_preset(home: str | os.PathLike, algo: str, name: str) -> bool:
    """Whether the user has a preset file of that name (readable or not): saving that name again needs replace."""
    return algo in ALGORITHMS and isinstance(name, str) and name not in PRESETS[algo] and name in _files(home, algo)


def all_preset_names(home: str | os.PathLike, algo: str) -> list[str]:
    """The presets of ``algo`` a user can pick: the built-ins first, then the user's (those that can be read)."""
    _check_algo(algo)
    return [*PRESETS[algo], *(preset.name for preset in user_presets(home, algo)[0])]


def load_preset_config(home: str | os.PathLike, algo: str, name: str, overrides: dict[str, Any] | None = None,
                       **fields: Any) -> TrainConfig:
    """The config of a built-in or user preset, as ``config.presets.preset_config`` makes it (fields replaced,
    dotted overrides applied). ConfigError, as ``preset_config`` raises it, for a name that is neither — with the
    user's presets among the allowed — and for a user preset whose file cannot be used."""
    config_class(algo)  # ConfigError for an unknown algorithm, as preset_config
    if isinstance(name, str) and name in PRESETS[algo]:
        return preset_config(algo, name, overrides, **fields)
    files = _files(home, algo)
    if not isinstance(name, str) or name not in files:
        raise unknown_preset(algo, name, all_preset_names(home, algo))
    try:
        preset = _read(files[name], algo, name)
    except PresetError as err:
        raise ConfigError([("preset", f"your {algo} preset {name!r} cannot be used: {err}")]) from None
    values = json.loads(preset.config_json)
    values.pop("algo", None)
    return config_from_values(algo, values, overrides, **fields)
