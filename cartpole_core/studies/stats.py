"""Statistics across seeds, as rliable defines them (Agarwal et al., 2021, "Deep RL at the Edge of the Statistical
Precipice"): a study ranks configurations by the interquartile mean of their seeds, never by one lucky seed.

- ``iqm``: the mean of the middle 50 % — ``scipy.stats.trim_mean(values, 0.25)``, robust to one outlying seed yet
  less noisy than the median.
- ``bootstrap_ci``: the percentile bootstrap confidence interval of a statistic over resampled seeds.
- ``probability_of_improvement``: how often a run of X beats a run of Y, ties counting half (the Mann–Whitney U
  statistic over all pairs).

NumPy only (SciPy's stats module takes most of a second to import, for three short formulas).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np

IQM_CUT = 0.25  # the fraction trimmed from each end


def iqm(values: Sequence[float]) -> float:
    """Interquartile mean: the mean of the values left after trimming ``int(n / 4)`` from each end."""
    ordered = np.sort(_values(values))
    cut = int(IQM_CUT * len(ordered))
    return float(ordered[cut:len(ordered) - cut].mean())


def bootstrap_ci(values: Sequence[float], statistic: Callable[[np.ndarray], float] = iqm, level: float = 0.95,
                 resamples: int = 2000, seed: int = 0) -> tuple[float, float]:
    """The percentile bootstrap interval: ``statistic`` of ``resamples`` resamples (with replacement) of the
    values, cut at ``(1 - level) / 2`` and ``(1 + level) / 2``. Seeded, so a page shows the same interval twice."""
    if not 0 < level < 1:
        raise ValueError(f"level ({level}) must lie between 0 and 1")
    if resamples < 1:
        raise ValueError(f"resamples ({resamples}) must be at least 1")
    sample = _values(values)
    picks = np.random.default_rng(seed).integers(0, len(sample), size=(resamples, len(sample)))
    estimates = [statistic(sample[pick]) for pick in picks]
    low, high = np.percentile(estimates, [50 * (1 - level), 50 * (1 + level)])
    return float(low), float(high)


def probability_of_improvement(x: Sequence[float], y: Sequence[float]) -> float:
    """P(X > Y) + ½ P(X = Y) over all pairs of a run of X and a run of Y: 1 when every X beats every Y, ½ for
    identical samples."""
    xs, ys = _values(x)[:, None], _values(y)[None, :]
    return float(np.mean((xs > ys) + 0.5 * (xs == ys)))


def _values(values: Sequence[float]) -> np.ndarray:
    array = np.asarray(values, dtype=float).ravel()
    if array.size == 0:
        raise ValueError("no values: a statistic across seeds needs at least one run")
    if not np.isfinite(array).all():
        raise ValueError(f"values must be finite numbers, got {array.tolist()[:8]}")
    return array
