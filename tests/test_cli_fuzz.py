"""Property-based: the command line never shows a traceback, whatever it is given.

Over a thousand generated command lines (``train`` with ``--set`` of real and junk field names and values — huge
and 5,000-digit numbers, nan/inf/-0, booleans, nested lists, unicode, empty —, random seeds, names and tags;
``runs show|cancel|delete|export|import|list`` with junk ids and filters; ``replay`` with junk physics, seeds and
step caps; ``fields``/``presets`` with junk algorithms; random argument soup) run ``main(argv)`` in this process.
Each must exit 0, 2 or 1 (the documented codes) with one ``error:`` line on stderr when it fails and never raise;
after a rejected (exit 2) command nothing was written: a new data home was not created and an existing store's
contents and files are unchanged. Valid ``train`` commands get a 100-step Q-learning budget, so they do train;
DQN and PPO commands are always given one invalid field, so they exercise validation only.
"""

from __future__ import annotations

import contextlib
import io
import itertools
import json
import os
import shutil
import sqlite3
import tempfile
from collections import Counter
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from cartpole_core.cli import main, parse_value
from cartpole_core.config.models import ALGORITHMS, config_class, field_specs
from cartpole_core.config.presets import preset_config, preset_names
from cartpole_core.engine.envs import CONDITIONS
from cartpole_core.runs.store import STATUSES, RunStore

COUNTS: Counter[str] = Counter()  # generated inputs per test, printed by the last test
MINIMUM_INPUTS = 1_000
FUZZ = settings(deadline=None, derandomize=True, database=None, print_blob=True,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.filter_too_much])

_BASE = Path(tempfile.gettempdir()) / f"cli-fuzz-{os.getpid()}"  # made and removed by _scratch, around the tests
_NUMBER = itertools.count()


def fresh_path(stem: str) -> Path:
    """A path under this module's temporary folder that does not exist yet."""
    return _BASE / f"{stem}-{next(_NUMBER)}"


@pytest.fixture(scope="module", autouse=True)
def _scratch():
    _BASE.mkdir(exist_ok=True)
    yield
    shutil.rmtree(_BASE, ignore_errors=True)


# ------------------------------------------------------------------------------------------------ running


def run(argv: list[str]) -> tuple[int, str, str]:
    """``main(argv)`` with stdout and stderr captured. Anything it raises (but --help's exit) fails the test."""
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            code = main(argv)
        except SystemExit as exit_:  # --help (or an abbreviation, --he) prints usage and exits 0
            assert exit_.code == 0 and out.getvalue().startswith("usage:"), (argv, exit_.code)
            code = 0
    return code, out.getvalue(), err.getvalue()


def check_result(argv: list[str], code: int, stdout: str, stderr: str, codes: tuple[int, ...] = (0, 2)) -> None:
    assert code in codes, (argv, code, stderr)
    assert "Traceback" not in stderr and "Traceback" not in stdout, (argv, stderr)
    if code:
        lines = stderr.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("error: "), (argv, stderr)
    if code == 2:
        assert stdout == "", (argv, stdout)


def snapshot(home: Path) -> tuple[list[str], list[str]]:
    """An existing data home's store contents and files (SQLite's -wal/-shm side files aside)."""
    files = sorted(str(path.relative_to(home)) for path in home.rglob("*")
                   if not path.name.endswith(("-wal", "-shm")))
    with contextlib.closing(sqlite3.connect(home / "lab.sqlite")) as conn:
        dump = list(conn.iterdump())
    return files, dump


_PRISTINE: dict[str, object] = {}


def prepared_home() -> tuple[Path, dict[str, str]]:
    """A copy of a small store: one queued run, one completed run (with metrics, no checkpoints)."""
    if not _PRISTINE:
        home = fresh_path("pristine")
        store = RunStore(home)
        config = preset_config("qlearning", "fast")
        ids = {"queued": store.create_run("qlearning-20260101-000000-aaaaaa", config.to_json(), "qlearning", 0,
                                          name="waiting", tags=["t"]),
               "completed": store.create_run("qlearning-20260101-000001-bbbbbb", config.to_json(), "qlearning", 1,
                                             name="done")}
        store.set_status(ids["completed"], "completed")
        store.close()
        _PRISTINE.update(home=home, ids=ids, snapshot=snapshot(home))
    home = fresh_path("home")
    shutil.copytree(_PRISTINE["home"], home)
    return home, dict(_PRISTINE["ids"])


# ---------------------------------------------------------------------------------------------- strategies

NO_NUL = st.characters(blacklist_characters="\x00", blacklist_categories=["Cs"])
# Bytes in argv that are not UTF-8 reach Python as lone surrogates U+DC80–U+DCFF (surrogateescape).
ARGV_CHARS = st.one_of(NO_NUL, NO_NUL, NO_NUL, st.characters(min_codepoint=0xDC80, max_codepoint=0xDCFF))
TEXT = st.text(ARGV_CHARS, max_size=24)
LONG_TEXT = st.text(ARGV_CHARS, min_size=190, max_size=260)

SPECIAL = st.sampled_from(["nan", "NaN", "-nan", "inf", "-inf", "Infinity", "-Infinity", "-0", "0", "-0.0", "+1",
                           "1e309", "-1e309", "1e-400", "5e-324", "true", "false", "True", "FALSE", "null", "none",
                           "None", "", " ", ",", ",,", "[]", "{}", "[1,", "\"0.5\"", "0x10", "1_000", "½", "٣",
                           "[true, 64]", "true,64", "64,true", "[[64]]", "{\"start\": true}", "{\"kind\": 5}"])


def number_text() -> st.SearchStrategy[str]:
    return st.one_of(
        SPECIAL,
        st.integers(min_value=-10**6, max_value=10**6).map(str),
        st.integers(min_value=2**31 - 3, max_value=2**70).map(str),
        st.integers(min_value=-2**70, max_value=-(2**63) + 3).map(str),
        st.integers(min_value=4_290, max_value=6_000).map(lambda digits: "9" * digits),  # beyond int(str) limits
        st.integers(min_value=4_290, max_value=6_000).map(lambda digits: "-1" + "0" * digits),
        st.floats(allow_nan=True, allow_infinity=True).map(repr),
    )


def nested_text() -> st.SearchStrategy[str]:
    depth = st.one_of(st.integers(min_value=1, max_value=12), st.integers(min_value=900, max_value=3_500))
    return st.one_of(
        depth.map(lambda d: "[" * d + "1" + "]" * d),
        depth.map(lambda d: '{"start": ' * d + "0.5" + "}" * d),
        depth.map(lambda d: "[" * d),  # unbalanced
    )


def value_text() -> st.SearchStrategy[str]:
    return st.one_of(
        number_text(), number_text(), nested_text(), TEXT,
        st.lists(number_text().filter(lambda t: len(t) < 100), max_size=5).map(",".join),
        st.lists(st.integers(min_value=-5, max_value=300), max_size=5).map(json.dumps),
    )


def in_range_text(spec) -> st.SearchStrategy[str]:
    """A value the field accepts (mostly), written as a user would type it."""
    if spec.choices:
        return st.sampled_from(spec.choices)
    if spec.kind == "bool":
        return st.sampled_from(["true", "false"])
    if spec.kind == "int_list":
        # Q-learning bins: four, and small tables (64⁴ bins would be a 268 MB table per checkpoint)
        return st.lists(st.integers(min_value=1, max_value=8), min_size=1, max_size=4).filter(
            lambda sizes: spec.name != "bins" or len(sizes) == 4).map(lambda sizes: ",".join(map(str, sizes)))
    if spec.kind == "float_list":
        return st.lists(st.floats(min_value=-5, max_value=5), min_size=4, max_size=4).map(
            lambda bounds: ",".join(map(repr, sorted(bounds))))
    low = spec.low if spec.low is not None else -10.0
    high = spec.high if spec.high is not None else 10.0
    if spec.kind.endswith("int"):
        return st.integers(min_value=int(low) + spec.low_open, max_value=int(min(high, 10**7))).map(str)
    return st.floats(min_value=low, max_value=high, exclude_min=spec.low_open, exclude_max=spec.high_open).map(repr)


@st.composite
def train_argv(draw) -> tuple[list[str], str]:
    algo = draw(st.sampled_from(["qlearning", *ALGORITHMS]))  # Q-learning twice as often: only it trains here
    specs = field_specs(config_class(algo))
    argv = ["train", "--algo", algo, "--json"]
    valid = draw(st.booleans())  # half the examples: in-range values only (mostly valid commands, which train)
    if draw(st.booleans()):
        presets = st.sampled_from(preset_names(algo))
        argv.append("--preset=" + draw(presets if valid else st.one_of(presets, TEXT)))
    for _ in range(draw(st.integers(min_value=0, max_value=4))):
        kind = draw(st.integers(min_value=0, max_value=2 if valid else 9))
        if kind <= 5:  # a real field
            spec = draw(st.sampled_from(specs))
            value = draw(in_range_text(spec) if kind <= 2 else value_text())
            name = spec.name
        elif kind <= 7:  # a junk name
            name, value = draw(TEXT), draw(value_text())
        else:  # no '=' or an empty name
            argv.append("--set=" + draw(st.one_of(TEXT.filter(lambda t: "=" not in t), TEXT.map(lambda t: "=" + t))))
            continue
        argv.append(f"--set={name}={value}")
    good_text = st.text(st.characters(min_codepoint=32, max_codepoint=0x2FFF, blacklist_categories=["Cs", "Cc"]),
                        min_size=1, max_size=40).filter(str.strip)
    if draw(st.booleans()):
        seeds = st.integers(0, 2**31 - 1).map(str)
        argv.append("--seed=" + draw(seeds if valid else st.one_of(number_text(), TEXT, seeds)))
    if draw(st.integers(min_value=0, max_value=3)) == 0:
        argv.append("--name=" + draw(good_text if valid else st.one_of(TEXT, LONG_TEXT)))
    for _ in range(draw(st.integers(min_value=0, max_value=2))):
        argv.append("--tag=" + draw(good_text if valid else st.one_of(TEXT, st.text(ARGV_CHARS, min_size=45,
                                                                                      max_size=60))))
    if algo == "qlearning":
        argv.append("--set=total_env_steps=100")  # valid ones train, briefly
    else:
        argv.append("--set=total_env_steps=99")  # below the minimum: DQN / PPO only validate
    return argv, algo


def _small_tables(argv: list[str]) -> list[str]:
    """Junk may still spell a valid but huge Q-table (e.g. ``bins=[60,60,60,60]``): keep training cheap."""
    for index, arg in enumerate(argv):
        if arg.startswith("--set=bins="):
            try:
                bins = parse_value(arg.split("=", 2)[2])
            except Exception:  # noqa: BLE001 — the CLI reports it; only sizes matter here
                continue
            if isinstance(bins, list) and all(isinstance(b, int) and not isinstance(b, bool) for b in bins):
                product = 1
                for size in bins:
                    product *= max(1, min(abs(size), 10**6))
                if product > 4096:
                    argv[index] = "--set=bins=1,1,6,12"
    return argv


# ---------------------------------------------------------------------------------------------------- tests


@settings(FUZZ, max_examples=900)
@given(case=train_argv())
def test_train_with_random_fields_values_seeds_names_and_tags(case):
    argv, algo = case
    home = fresh_path("train")
    argv = _small_tables(argv) + ["--home", str(home)]
    code, stdout, stderr = run(argv)
    COUNTS["train"] += 1
    check_result(argv, code, stdout, stderr)
    if code == 2:
        assert not home.exists(), argv
        COUNTS["train rejected"] += 1
        if os.environ.get("CLI_FUZZ_DEBUG"):
            print(stderr.strip()[:200])
        return
    assert algo == "qlearning"
    summary = json.loads(stdout.strip().splitlines()[-1])
    assert summary["status"] == "completed" and summary["env_steps"] <= 100 + 256  # stopped by the budget (or
    assert (home / "runs" / summary["run_id"]).is_dir()  # max_episodes), within one step of every env
    COUNTS["train trained"] += 1
    shutil.rmtree(home)


RUN_ID = st.one_of(TEXT, LONG_TEXT, st.sampled_from(["", "-", "..", "../x", "*", "%", "' OR 1=1 --",
                                                      "qlearning-20260101-000000-aaaaab", "🙂"]))


@st.composite
def runs_argv(draw) -> list[str]:
    command = draw(st.sampled_from(["show", "cancel", "delete", "export", "list", "import", "check"]))
    argv = ["runs", command]
    if command in ("show", "cancel", "delete", "export"):
        real = draw(st.sampled_from(["queued", "completed", None, None]))
        argv.append(f"REAL:{real}" if real else draw(RUN_ID))
        if command == "export":
            argv.append(draw(st.sampled_from(["--out=OUT", "--out=OUT", "--out=FOLDER", "--out=NO/PARENT.zip"])))
    elif command == "list":
        if draw(st.booleans()):
            argv.append("--algo=" + draw(st.one_of(st.sampled_from(ALGORITHMS), TEXT)))
        if draw(st.booleans()):
            argv.append("--status=" + draw(st.one_of(st.sampled_from(STATUSES), TEXT)))
        if draw(st.booleans()):
            argv.append("--tag=" + draw(st.one_of(st.just("t"), TEXT)))
    elif command == "import":
        argv.append(draw(st.sampled_from(["MISSING", "JUNK", "EMPTY", "DIR"])))
    if draw(st.booleans()):
        argv.append("--json")
    return argv


@settings(FUZZ, max_examples=500)
@given(argv=runs_argv())
def test_runs_commands_with_junk_ids_filters_and_files(argv):
    home, ids = prepared_home()
    out, junk = fresh_path("export.zip"), fresh_path("junk.zip")
    junk.write_bytes(b"PK\x03\x04" + b"\xff" * 64)
    files = {"MISSING": str(fresh_path("missing.zip")), "JUNK": str(junk),
             "EMPTY": str(fresh_path("empty.zip")), "DIR": str(_BASE)}
    Path(files["EMPTY"]).write_bytes(b"")
    argv = [ids[arg[5:]] if arg.startswith("REAL:") else files.get(arg, arg) for arg in argv]
    outs = {"--out=OUT": f"--out={out}", "--out=FOLDER": f"--out={_BASE}",
            "--out=NO/PARENT.zip": f"--out={fresh_path('none')}/x.zip"}
    argv = [outs.get(arg, arg) for arg in argv] + ["--home", str(home)]
    code, stdout, stderr = run(argv)
    COUNTS["runs"] += 1
    check_result(argv, code, stdout, stderr)
    if code == 2:
        assert snapshot(home) == _PRISTINE["snapshot"], argv
        assert not out.exists()
    elif argv[1] == "cancel":
        assert argv[2] == ids["queued"]
    elif argv[1] == "delete":
        assert argv[2] == ids["completed"]
    shutil.rmtree(home)


@st.composite
def replay_argv(draw) -> list[str]:
    argv = ["replay", draw(st.one_of(st.just("REAL"), RUN_ID.filter(lambda t: not t.startswith("-"))))]
    names = st.one_of(st.sampled_from(list(CONDITIONS)), TEXT)
    for _ in range(draw(st.integers(min_value=0, max_value=3))):
        argv.append(f"--physics={draw(names)}={draw(value_text())}")
    if draw(st.booleans()):
        argv.append("--seed=" + draw(st.one_of(number_text(), TEXT)))
    if draw(st.booleans()):
        argv.append("--max-steps=" + draw(st.one_of(number_text(), TEXT)))
    if draw(st.booleans()):
        argv.append("--obs-noise=" + draw(st.one_of(number_text(), TEXT)))
    if draw(st.booleans()):
        argv.append("--checkpoint=" + draw(st.one_of(st.sampled_from(["final", "best", "step-5", "x.pt"]), TEXT)))
    argv.append("--out=OUT" + draw(st.sampled_from([".gif", ".mp4", ".GIF", ".txt", "", ".gif/x.gif"])))
    if draw(st.booleans()):
        argv.append("--json")
    return argv


@settings(FUZZ, max_examples=400)
@given(argv=replay_argv(), existing=st.booleans())
def test_replay_with_junk_physics_seeds_and_caps(argv, existing):
    """No stored run has a checkpoint, so every replay is refused: before or after finding its run."""
    home, ids = prepared_home() if existing else (fresh_path("replay-home"), {"completed": "none"})
    out = fresh_path("replay")
    argv = [ids["completed"] if arg == "REAL" else arg for arg in argv]
    argv = [f"--out={out}{arg[9:]}" if arg.startswith("--out=OUT") else arg for arg in argv] + ["--home", str(home)]
    code, stdout, stderr = run(argv)
    COUNTS["replay"] += 1
    check_result(argv, code, stdout, stderr, codes=(2,))
    assert not any(_BASE.glob(f"{out.name}*")), argv
    if existing:
        assert snapshot(home) == _PRISTINE["snapshot"], argv
        shutil.rmtree(home)
    else:
        assert not home.exists(), argv


WORDS = st.sampled_from(["runs", "list", "show", "cancel", "delete", "check", "fields", "presets", "--algo",
                         "qlearning", "dqn", "ppo", "sarsa", "--json", "--status", "completed", "--tag", "--help",
                         "-h", "--home", "--set", "--seed", "--preset", "-x", "--", "=", ""])


@settings(FUZZ, max_examples=400)
@given(words=st.lists(st.one_of(WORDS, WORDS, TEXT), max_size=7))
def test_random_arguments_to_the_store_and_listing_commands(words):
    """Argument soup (no train, replay, export, import or salvage: those have their own tests above)."""
    home = fresh_path("soup")
    argv = [*words, "--home", str(home)]
    previous = os.getcwd()
    os.chdir(_BASE)  # anything relative lands here
    try:
        code, stdout, stderr = run(argv)
    finally:
        os.chdir(previous)
    COUNTS["argument soup"] += 1
    check_result(argv, code, stdout, stderr, codes=(0, 1, 2))
    if code == 2:
        assert not home.exists(), argv
    shutil.rmtree(home, ignore_errors=True)


@settings(FUZZ, max_examples=60)
@given(command=st.sampled_from(["fields", "presets"]), algo=st.one_of(st.sampled_from(ALGORITHMS), TEXT))
def test_fields_and_presets_with_junk_algorithms(command, algo):
    argv = [command, f"--algo={algo}"]
    code, stdout, stderr = run(argv)
    COUNTS["fields/presets"] += 1
    check_result(argv, code, stdout, stderr)
    assert (code == 0) == (algo in ALGORITHMS), (argv, stderr)


FUZZ_TESTS = ("train", "runs", "replay", "argument soup", "fields/presets")


def test_zz_enough_inputs_were_generated(capsys):
    if any(name not in COUNTS for name in FUZZ_TESTS):
        pytest.skip("only part of this file ran")
    total = sum(COUNTS[name] for name in FUZZ_TESTS)
    with capsys.disabled():
        print(f"\ncommand-line fuzz: {total:,} generated inputs — "
              + ", ".join(f"{name} {count:,}" for name, count in COUNTS.items()))
    assert total >= MINIMUM_INPUTS
