"""Export a run to a zip and import it back; malicious or malformed zips are rejected with a clear message."""

import io
import pickle
import zipfile

import pytest

from cartpole_core.agent import save_checkpoint
from cartpole_core.archive import ImportRejected, export_runs, import_runs
from cartpole_core.presets import preset_config
from cartpole_core.store import RunStore
from cartpole_core.training import train


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    """A real trained run in a store, exported to a zip."""
    home = tmp_path_factory.mktemp("source")
    store = RunStore(home)
    config = preset_config("qlearning", "fast", total_env_steps=6000, stop_on_solve=False)
    store.create_run("run-a", config.to_json(), "qlearning", 7, preset="fast", tags=["mine"])
    events = []
    agent, result = train(config, seed=7, on_event=events.append)
    store.append_events("run-a", events)
    path = save_checkpoint(agent, store.run_dir("run-a") / "final.pt", env_steps=result.env_steps, kind="final")
    store.add_artifact("run-a", "final", result.env_steps, path)
    store.finish_run("run-a", result, "completed")
    return store, export_runs(store, ["run-a"], home / "export.zip")


def test_round_trip_keeps_metrics_config_and_checkpoint(exported, tmp_path):
    source, zip_path = exported
    target = RunStore(tmp_path)
    (run_id,) = import_runs(target, zip_path)
    original, copy = source.get_run("run-a"), target.get_run(run_id)
    assert run_id == "run-a"
    assert copy["config_json"] == original["config_json"] and copy["seed"] == 7
    assert copy["status"] == "completed" and set(copy["tags"]) == {"mine", "imported"}
    assert target.episodes(run_id) == source.episodes("run-a")
    assert target.evaluations(run_id) == source.evaluations("run-a")
    assert [u["td_error_abs"] for u in target.updates(run_id)] == pytest.approx(
        [u["td_error_abs"] for u in source.updates("run-a")])
    (artifact,) = target.artifacts(run_id)
    assert artifact["kind"] == "final"
    assert artifact["path"].read_bytes() == (source.run_dir("run-a") / "final.pt").read_bytes()


def test_importing_twice_gives_a_new_id(exported, tmp_path):
    _, zip_path = exported
    target = RunStore(tmp_path)
    first = import_runs(target, zip_path)
    second = import_runs(target, zip_path)
    assert first != second and len(target.list_runs()) == 2


def tampered(zip_path, tmp_path, replace: dict[str, bytes] | None = None, add: dict[str, bytes] | None = None):
    out = tmp_path / "tampered.zip"
    with zipfile.ZipFile(zip_path) as source, zipfile.ZipFile(out, "w") as target:
        for info in source.infolist():
            data = (replace or {}).get(info.filename, source.read(info))
            target.writestr(info.filename, data)
        for name, data in (add or {}).items():
            target.writestr(name, data)
    return out


class Boom:
    def __reduce__(self):
        return (print, ("pwned",))


@pytest.mark.parametrize(("change", "message"), [
    ({"add": {"../../evil.txt": b"x"}}, "outside the archive"),
    ({"add": {"/etc/evil.json": b"x"}}, "outside the archive"),
    ({"add": {"run-a/notes.exe": b"x"}}, "not part of a CartPole Lab export"),
    ({"add": {"run-a/evil.pt": pickle.dumps(Boom())}}, "pickled objects are refused"),
    ({"replace": {"run-a/final.pt": pickle.dumps({"q_table": [1, 2]})}}, "pickled objects are refused"),
    ({"replace": {"run-a/run.json": b"{not json"}}, "not a valid run record"),
    ({"replace": {"run-a/episodes.csv": b"episode,env_steps\n1,2\n"}}, "lacks the column"),
    ({"replace": {"run-a/episodes.csv": b"episode,env_steps,episode_return,length,epsilon,learning_rate,time_s\n"
                                        b"1,abc,1,1,0,0,0\n"}}, "where a number belongs"),
])
def test_malicious_or_malformed_zip_is_rejected_and_nothing_is_written(exported, tmp_path, change, message):
    _, zip_path = exported
    bad = tampered(zip_path, tmp_path, **change)
    target = RunStore(tmp_path / "home")
    with pytest.raises(ImportRejected, match=message):
        import_runs(target, bad)
    assert target.list_runs() == []
    assert list((tmp_path / "home" / "runs").iterdir()) == []


def test_zip_bomb_member_is_rejected(tmp_path):
    bomb = tmp_path / "bomb.zip"
    with zipfile.ZipFile(bomb, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("run-a/episodes.csv", b"0" * (65 * 1024 * 1024))
    with pytest.raises(ImportRejected, match="bytes"):
        import_runs(RunStore(tmp_path / "home"), bomb)


def test_not_a_zip_is_rejected(tmp_path):
    path = tmp_path / "runs.zip"
    path.write_bytes(io.BytesIO(b"hello").getvalue())
    with pytest.raises(ImportRejected, match="not a readable zip"):
        import_runs(RunStore(tmp_path / "home"), path)
