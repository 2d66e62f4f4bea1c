"""Hyperparameter studies, in roles:

- ``space``: the search space generated from the config field metadata (``Dimension``, ``parse_vary``,
  ``check_space``), its Optuna distributions and grid, and ``apply`` of a trial's values to the base config.
- ``objectives``: what a study optimizes (steps or time to solve, area under the evaluation curve, final
  evaluation) — one run's value, a trial's value across its seeds (the IQM of ``cartpole_core.stats``), and the
  intermediate values a pruner reads.
- ``storage`` and ``controller``: a study's files under the data home (its spec, Optuna's journal, a lease) and the
  ask-and-tell loop that submits each trial as a group of ordinary runs, prunes them and records the result.
- ``driver``: the dashboard's thread that drives every study that should be running.
- ``api``: studies from Python — ``run_study``, ``resume_study``, ``study_summary`` (exported here) — as the CLI
  makes and drives them.

Import-light (no torch, Gymnasium or scikit-learn); Optuna is imported only where a study needs it.
"""

from cartpole_core.studies.api import resume_study, run_study, study_summary

__all__ = ["resume_study", "run_study", "study_summary"]
