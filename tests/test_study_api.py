"""Studies from Python, as a notebook calls them: ``cartpole_core.run_study`` trains a small study into a data home
and returns its best trial; bad input is a ValueError naming it, and creates nothing."""

import pytest

import cartpole_core
from cartpole_core.runs.store import RunStore
from cartpole_core.studies import storage
from cartpole_core.studies.space import SpaceError


def test_run_study_trains_a_small_study_and_names_its_best_trial_whose_checkpoint_loads(tmp_path):
    told = []
    summary = cartpole_core.run_study(
        "qlearning", ["gamma=0.9:0.999", "learning_rate.start=0.1:1.0:log"], overrides={"total_env_steps": 20_000},
        trials=4, seeds=2, sampler="random", pruner="none", objective="final", home=tmp_path,
        confirm_trials=2, confirm_seeds=1, on_trial=lambda trial, summary: told.append(trial.number))
    assert summary["status"] == "completed" and summary["trials"] == 4 == summary["trials_completed"]
    assert sorted(told) == [0, 1, 2, 3]
    best = summary["best"]
    assert set(best["params"]) == {"gamma", "learning_rate.start"} and len(best["run_ids"]) == 2
    runs = RunStore(tmp_path).list_runs(tag=f"study:{summary['study_id']}")
    assert len(runs) == 8 + 2 and all(run["status"] == "completed" for run in runs)  # 2 trials confirmed on 1 seed
    assert best["confirmation"]["seeds"] == [2] and best["confirmation"]["held"] in (0, 1)
    assert any(run_id in best["checkpoint"] for run_id in best["run_ids"])  # the best trial's best seed's final
    agent = cartpole_core.load_agent(best["checkpoint"])
    assert agent.act([0.0, 0.0, 0.05, 0.0]) in (0, 1)
    assert cartpole_core.study_summary(summary["study_id"], home=tmp_path) == summary


@pytest.mark.parametrize("vary, options, named", [
    (["gamma=0.99:0.9"], {}, "gamma"),
    (["learning_rate.start=0:1:log"], {}, "learning_rate.start"),
    (["no_such_field=1:2"], {}, "no_such_field"),
    ([], {}, "field"),
    (["gamma"], {"trials": 0}, "trials"),
    (["gamma"], {"seeds": 99}, "seeds"),
    (["gamma"], {"sampler": "bayes"}, "sampler"),
    (["gamma"], {"confirm_trials": 11}, "trials to confirm"),
    (["gamma"], {"confirm_seeds": 0}, "confirmation seeds"),
])
def test_bad_input_is_a_value_error_naming_it_and_nothing_is_created(tmp_path, vary, options, named):
    with pytest.raises(ValueError, match=named) as caught:
        cartpole_core.run_study("qlearning", vary, home=tmp_path, **options)
    assert isinstance(caught.value, (SpaceError, ValueError))
    assert storage.list_studies(tmp_path) == ([], [])
