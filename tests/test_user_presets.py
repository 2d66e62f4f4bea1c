"""User presets (cartpole_core.runs.presets) on a temporary data home: saved, listed, loaded and deleted as the
Train page and the CLI use them; bad names refused with nothing written; damaged files reported, skipped and kept."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from cartpole_core.config.models import ConfigError
from cartpole_core.config.presets import preset_config
from cartpole_core.runs import presets
from cartpole_core.runs.compare import default_name
from cartpole_core.runs.presets import (
    PresetError,
    all_preset_names,
    delete_preset,
    is_user_preset,
    load_preset_config,
    save_preset,
    user_presets,
)

REPO = Path(__file__).resolve().parent.parent
TUNED = preset_config("dqn", "fast", gamma=0.95, batch_size=128)


def preset_file(home: Path, algo: str, name: str) -> Path:
    return home / "presets" / algo / f"{name}.json"


def test_a_saved_preset_is_listed_loaded_like_a_builtin_and_deleted(tmp_path):
    saved = save_preset(tmp_path, "dqn", "tuned", TUNED, "γ 0.95, batch 128", source="study dqn-20261201-3fa2c1")
    assert (saved.name, saved.description, saved.source) == ("tuned", "γ 0.95, batch 128", "study dqn-20261201-3fa2c1")
    assert preset_file(tmp_path, "dqn", "tuned").is_file()

    (listed,), problems = user_presets(tmp_path)
    assert listed == saved and problems == []
    assert user_presets(tmp_path, "ppo") == ([], [])
    assert all_preset_names(tmp_path, "dqn") == ["seed", "fast", "seed-large-batch", "tuned"]
    assert is_user_preset(tmp_path, "dqn", "tuned") and not is_user_preset(tmp_path, "dqn", "fast")
    assert not is_user_preset(tmp_path, "ppo", "tuned")

    assert load_preset_config(tmp_path, "dqn", "tuned") == TUNED
    changed = load_preset_config(tmp_path, "dqn", "tuned", {"epsilon.end": 0.1}, total_env_steps=5000)
    assert (changed.gamma, changed.batch_size, changed.epsilon.end, changed.total_env_steps) == (0.95, 128, 0.1, 5000)
    assert load_preset_config(tmp_path, "dqn", "seed") == preset_config("dqn", "seed")  # built-ins as before

    delete_preset(tmp_path, "dqn", "tuned")
    assert user_presets(tmp_path) == ([], [])
    with pytest.raises(ConfigError, match=r"preset 'tuned' is unknown for dqn; allowed: seed, fast, seed-large-batch$"):
        load_preset_config(tmp_path, "dqn", "tuned")


def test_unknown_names_list_the_users_presets_among_the_allowed(tmp_path):
    save_preset(tmp_path, "qlearning", "mine", preset_config("qlearning", "fast"))
    for name in ("nope", "../presets/qlearning/mine", "mine.json"):
        with pytest.raises(ConfigError, match="is unknown for qlearning; allowed: seed, fast, mine"):
            load_preset_config(tmp_path, "qlearning", name)
    with pytest.raises(ConfigError, match="algo 'sarsa' is unknown"):
        load_preset_config(tmp_path, "sarsa", "mine")


@pytest.mark.parametrize(("name", "named"), [
    ("", "must not be empty"),
    ("   ", "must not be empty"),
    ("a/b", "'a/b' is not allowed"),
    ("../escape", "'../escape' is not allowed"),
    (".hidden", "'.hidden' is not allowed"),
    ("-dash", "'-dash' is not allowed"),
    ("two words", "'two words' is not allowed"),
    ("naïve", "'naïve' is not allowed"),
    ("x" * 41, "is not allowed"),
    (None, "must be text, got NoneType"),
])
def test_a_bad_name_is_refused_with_what_is_allowed_and_nothing_written(tmp_path, name, named):
    with pytest.raises(PresetError, match="allowed" if isinstance(name, str) else "text") as err:
        save_preset(tmp_path, "dqn", name, TUNED)
    assert named in str(err.value)
    if isinstance(name, str):
        assert "letters (a-z, A-Z), digits and - _ ." in str(err.value) and "at most 40 characters" in str(err.value)
    assert not (tmp_path / "presets").exists()


@pytest.mark.parametrize("name", ["fast", "Fast", "SEED", "seed-large-batch"])
def test_a_builtin_name_cannot_be_shadowed_whatever_its_case(tmp_path, name):
    with pytest.raises(PresetError, match=r"is the name of a built-in dqn preset .* choose another name"):
        save_preset(tmp_path, "dqn", name, TUNED)
    assert not (tmp_path / "presets").exists()


def test_a_builtin_name_of_another_algorithm_is_free(tmp_path):
    save_preset(tmp_path, "ppo", "seed-large-batch", preset_config("ppo", "fast"))  # a DQN preset's name only
    assert all_preset_names(tmp_path, "ppo")[-1] == "seed-large-batch"


def test_saving_a_taken_name_needs_replace_and_a_case_variant_is_refused(tmp_path):
    save_preset(tmp_path, "dqn", "mine", TUNED, "first")
    before = preset_file(tmp_path, "dqn", "mine").read_bytes()
    with pytest.raises(PresetError, match="you already have a dqn preset 'mine'; choose another name, or replace it"):
        save_preset(tmp_path, "dqn", "mine", preset_config("dqn", "seed"), "second")
    assert preset_file(tmp_path, "dqn", "mine").read_bytes() == before
    with pytest.raises(PresetError, match="you have a dqn preset 'mine', the same name but for case"):
        save_preset(tmp_path, "dqn", "MINE", preset_config("dqn", "seed"), replace=True)

    save_preset(tmp_path, "dqn", "mine", preset_config("dqn", "seed"), "second", replace=True)
    (preset,), _ = user_presets(tmp_path, "dqn")
    assert preset.description == "second" and load_preset_config(tmp_path, "dqn", "mine") == preset_config("dqn",
                                                                                                           "seed")


@pytest.mark.parametrize(("change", "named"), [
    ({"description": "two\nlines"}, "description must be one line"),
    ({"description": "d" * 301}, "description must be at most 300 characters, got 301"),
    ({"source": "s" * 201}, "source must be at most 200 characters"),
    ({"algo": "ppo"}, "a ppo preset needs a ppo config, got dqn"),
    ({"algo": "sarsa"}, "algo 'sarsa' is unknown; allowed: qlearning, dqn, ppo"),
])
def test_bad_descriptions_sources_and_configs_are_refused_and_nothing_written(tmp_path, change, named):
    arguments = {"algo": "dqn", "name": "mine", "config": TUNED, **change}
    with pytest.raises(PresetError, match=named):
        save_preset(tmp_path, **arguments)
    assert not (tmp_path / "presets").exists()


def test_delete_refuses_builtins_and_names_the_user_does_not_have(tmp_path):
    with pytest.raises(PresetError, match="'fast' is a built-in dqn preset; only your own presets can be deleted"):
        delete_preset(tmp_path, "dqn", "fast")
    with pytest.raises(PresetError, match="you have no dqn preset 'mine'; you have no dqn presets"):
        delete_preset(tmp_path, "dqn", "mine")
    save_preset(tmp_path, "dqn", "other", TUNED)
    with pytest.raises(PresetError, match="you have no dqn preset '../other'; yours: other"):
        delete_preset(tmp_path, "dqn", "../other")


def write(home: Path, algo: str, name: str, content: str | dict) -> Path:
    path = preset_file(home, algo, name)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(content if isinstance(content, str) else json.dumps(content))
    return path


def good_file(name: str = "mine", **change) -> dict:
    return {"format": presets.PRESET_FORMAT, "version": presets.PRESET_VERSION, "algo": "dqn", "name": name,
            "description": "", "source": None, "created_at": 1.0, "config": json.loads(TUNED.to_json()), **change}


@pytest.mark.parametrize(("name", "content", "named"), [
    ("garbage", "{not json", "is damaged or not a preset"),
    ("empty", "", "is damaged or not a preset"),
    ("foreign", {"some": "other tool's file"}, "it is not a CartPole Lab preset"),
    ("newer", good_file("newer", version=2), "it has version 2; this CartPole Lab reads version 1"),
    ("invalid", good_file("invalid", config={**json.loads(TUNED.to_json()), "gamma": 2}), "gamma (2)"),
    ("ppo-config", good_file("ppo-config", config=json.loads(preset_config("ppo", "fast").to_json())),
     "its config is a ppo config, not dqn"),
    ("renamed", good_file("original"), "it holds the 'dqn' preset 'original', not dqn 'renamed'"),
    ("fast", good_file("fast"), "'fast' cannot be a user preset's name"),
    ("huge", good_file("huge", description="x" * 200_000), "larger than 100,000 bytes"),
])
def test_a_damaged_or_foreign_file_is_reported_skipped_and_kept(tmp_path, name, content, named):
    save_preset(tmp_path, "dqn", "good", TUNED)
    path = write(tmp_path, "dqn", name, content)
    before = path.read_bytes()

    listed, problems = user_presets(tmp_path)
    assert [preset.name for preset in listed] == ["good"]
    (problem,) = problems
    assert str(path) in problem and named in problem
    assert all_preset_names(tmp_path, "dqn") == ["seed", "fast", "seed-large-batch", "good"]
    if name != "fast":  # a file named like a built-in never hides the built-in
        with pytest.raises(ConfigError, match=f"your dqn preset '{name}' cannot be used"):
            load_preset_config(tmp_path, "dqn", name)
        assert is_user_preset(tmp_path, "dqn", name)  # so saving that name again asks to replace it
    else:
        assert load_preset_config(tmp_path, "dqn", "fast") == preset_config("dqn", "fast")
    assert path.read_bytes() == before  # never deleted nor rewritten


def test_an_unreadable_preset_can_still_be_deleted_by_name(tmp_path):
    write(tmp_path, "dqn", "broken", "{not json")
    delete_preset(tmp_path, "dqn", "broken")
    assert not preset_file(tmp_path, "dqn", "broken").exists()


def test_a_failed_write_leaves_the_previous_preset_whole_and_no_temporary_file(tmp_path, monkeypatch):
    save_preset(tmp_path, "dqn", "mine", TUNED)
    before = preset_file(tmp_path, "dqn", "mine").read_bytes()

    def disk_full(*args):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(presets.os, "replace", disk_full)
    with pytest.raises(OSError, match="No space left"):
        save_preset(tmp_path, "dqn", "mine", preset_config("dqn", "seed"), replace=True)
    with pytest.raises(OSError, match="No space left"):
        save_preset(tmp_path, "dqn", "new", preset_config("dqn", "seed"))
    assert sorted(os.listdir(tmp_path / "presets" / "dqn")) == ["mine.json"]
    assert preset_file(tmp_path, "dqn", "mine").read_bytes() == before


def test_a_temporary_file_left_by_a_crash_is_neither_a_preset_nor_a_problem(tmp_path):
    save_preset(tmp_path, "dqn", "mine", TUNED)
    (tmp_path / "presets" / "dqn" / ".mine.json.1a2b3c4d.tmp").write_text('{"format": "cartpole-lab-pre')
    assert [preset.name for preset in user_presets(tmp_path)[0]] == ["mine"] and user_presets(tmp_path)[1] == []


def test_runs_of_a_user_preset_are_named_against_it_and_an_unknown_preset_name_does_not_crash(tmp_path):
    save_preset(tmp_path, "dqn", "tuned", TUNED)
    reference = load_preset_config(tmp_path, "dqn", "tuned")
    assert default_name(TUNED, "tuned", reference) == "dqn/tuned"
    assert default_name(TUNED.model_copy(update={"gamma": 0.9}), "tuned", reference) == "dqn/tuned gamma=0.9"
    # Without the preset's config (a deleted preset, an imported run's), the name is written against the defaults.
    assert default_name(TUNED, "tuned").startswith("dqn/tuned ")


def test_the_user_presets_module_imports_without_torch(tmp_path):
    code = ("import json, sys\nimport cartpole_core.runs.presets\n"
            "print(json.dumps([m for m in ('torch', 'gymnasium', 'sklearn') if m in sys.modules]))")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, cwd=REPO)
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout) == []
