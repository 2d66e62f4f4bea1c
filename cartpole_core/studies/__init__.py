"""Hyperparameter studies, in roles:

- ``space``: the search space generated from the config field metadata (``Dimension``, ``parse_vary``,
  ``check_space``), its Optuna distributions and grid, and ``apply`` of a trial's values to the base config.
- ``objectives``: what a study optimizes (steps or time to solve, area under the evaluation curve, final
  evaluation) — one run's value, a trial's value across its seeds (the IQM of ``cartpole_core.stats``), and the
  intermediate values a pruner reads.
- ``storage`` and ``controller``: a study's files under the data home (its spec, Optuna's journal, a lease) and the
  ask-and-tell loop that submits each trial as a group of ordinary runs, prunes them and records the result.

Import-light (no torch, Gymnasium or scikit-learn); Optuna is imported only where a study needs it.
"""
