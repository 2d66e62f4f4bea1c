"""Statistics across seeds, as rliable defines them (Agarwal et al., 2021, "Deep RL at the Edge of the Statistical
Precipice"): groups of runs are compared, and a study ranks its trials, by the interquartile mean of their seeds,
never by one lucky seed.

- ``iqm``: the mean of the middle 50 % — ``scipy.stats.trim_mean(values, 0.25)``, robust to one outlying seed yet
  less noisy than the median.
- ``bootstrap_ci``: the percentile bootstrap confidence interval of the IQM over resampled seeds.
- ``iqm_estimate``: both, with how many seeds stand behind them (an ``Estimate``), as the pages show them.
- ``probability_of_improvement``: how often a run of X beats a run of Y, ties counting half (the Mann–Whitney U
  statistic over all pairs).

A value may be ``math.inf``, "never reached" (steps or time to solve of a seed that did not solve): it counts above
every number, so an IQM is ∞ when a seed it does not trim never reached, an interval's end is ∞ when that many of
the resamples' IQMs are, and two seeds that never reached tie.

NumPy only (SciPy's stats module takes most of a second to import, for three short formulas). The bottom layer,
beside ``records``: the runs table, the studies and their pages share one set of definitions.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache

import numpy as np

IQM_CUT = 0.25  # the fraction trimmed from each end
LEVEL = 0.95  # of the confidence intervals the pages show


@dataclass(frozen=True)
class Estimate:
    """The IQM of some seeds' values, its bootstrap confidence interval ``low``–``high``, and ``n``: how many seeds
    stand behind it (a number without its ``n`` hides that it may rest on one run)."""

    iqm: float
    low: float
    high: float
    n: int


def iqm(values: Sequence[float]) -> float:
    """Interquartile mean: the mean of the values left after trimming ``int(n / 4)`` from each end."""
    return float(_iqms(_values(values)[None, :])[0])


def bootstrap_ci(values: Sequence[float], level: float = LEVEL, resamples: int = 2000,
                 seed: int = 0) -> tuple[float, float]:
    """The percentile bootstrap interval of the IQM: the IQMs of ``resamples`` resamples (with replacement) of the
    values, cut at ``(1 - level) / 2`` and ``(1 + level) / 2``. Each end is the resampled IQM at or just outside its
    cut, never interpolated: a hair wider than interpolating, and an end among IQMs of ∞ is ∞, not NaN. Seeded, so
    a page shows the same interval twice."""
    if not 0 < level < 1:
        raise ValueError(f"level ({level}) must lie between 0 and 1")
    if resamples < 1:
        raise ValueError(f"resamples ({resamples}) must be at least 1")
    sample = _values(values)
    picks = np.random.default_rng(seed).integers(0, len(sample), size=(resamples, len(sample)))
    estimates = _iqms(sample[picks])
    low = np.percentile(estimates, 50 * (1 - level), method="lower")
    high = np.percentile(estimates, 50 * (1 + level), method="higher")
    return float(low), float(high)


def iqm_estimate(values: Sequence[float], level: float = LEVEL) -> Estimate:
    """The IQM of the values with its bootstrap interval and the number of values. Remembered for the last few
    thousand samples: a page redraws every group's estimates from the same values at each rerun."""
    return _estimate(tuple(_values(values).tolist()), level)


@lru_cache(maxsize=4096)
def _estimate(values: tuple[float, ...], level: float) -> Estimate:
    return Estimate(iqm(values), *bootstrap_ci(values, level), n=len(values))


def probability_of_improvement(x: Sequence[float], y: Sequence[float]) -> float:
    """P(X > Y) + ½ P(X = Y) over all pairs of a run of X and a run of Y: 1 when every X beats every Y, ½ for
    identical samples. Where lower is better (steps to solve), swap them: ``probability_of_improvement(y, x)`` is how
    often X is lower."""
    xs, ys = _values(x)[:, None], _values(y)[None, :]
    return float(np.mean((xs > ys) + 0.5 * (xs == ys)))


def _iqms(samples: np.ndarray) -> np.ndarray:
    """The IQM of each row: all of a bootstrap's resamples at once."""
    size = samples.shape[1]
    cut = int(IQM_CUT * size)
    if cut:
        samples = np.sort(samples, axis=1)[:, cut:size - cut]
    return samples.mean(axis=1)


def _values(values: Sequence[float]) -> np.ndarray:
    array = np.asarray(values, dtype=float).ravel()
    if array.size == 0:
        raise ValueError("no values: a statistic across seeds needs at least one run")
    if not (np.isfinite(array) | (array == np.inf)).all():
        raise ValueError(f"values must be numbers, or inf for never reached; got {array.tolist()[:8]}")
    return array
