"""Time-ordered cross-validation (rolling origin) and the held-out error measures.

A rolling-origin split trains on every period before an *origin* and tests on the ``horizon``
periods that follow it; the origin moves forward by ``horizon`` from fold to fold, so the test
blocks tile the end of the history and no fold ever trains on its future::

    n = 12, folds = 3, horizon = 2:
      fold 0: train 0..5   test 6, 7
      fold 1: train 0..7   test 8, 9
      fold 2: train 0..9   test 10, 11

Periods are positions on the history's global period axis (a cell with gaps simply has no
observation at some positions), so every cell of a history shares the same folds.

Examples
--------
>>> [(s.train.stop, s.test.start, s.test.stop) for s in rolling_origin_splits(12, 3, 2)]
[(6, 6, 8), (8, 8, 10), (10, 10, 12)]
>>> errors(np.array([90.0, 110.0]), np.array([100.0, 100.0]))
(0.1, 0.1)
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

#: Fewest training periods a fold may have.
MIN_TRAIN = 6


@dataclass(frozen=True)
class Split:
    """One fold: ``train`` and ``test`` are slices of the period axis (test follows train)."""

    train: slice
    test: slice

    def masks(self, n: int) -> tuple[NDArray[np.bool_], NDArray[np.bool_]]:
        """Boolean (n,) masks of the training and the test periods."""
        train = np.zeros(n, dtype=bool)
        test = np.zeros(n, dtype=bool)
        train[self.train] = True
        test[self.test] = True
        return train, test


def default_horizon(n_periods: int, folds: int) -> int:
    """Test-block length: about a quarter of the history over all folds, between 1 and 6.

    >>> default_horizon(36, 3), default_horizon(24, 3), default_horizon(12, 3)
    (3, 2, 1)
    """
    return int(min(6, max(1, n_periods // (4 * folds))))


def rolling_origin_splits(n_periods: int, folds: int = 3, horizon: int | None = None) -> list[Split]:
    """Expanding-window rolling-origin folds over ``n_periods`` time-ordered periods.

    Parameters
    ----------
    n_periods
        Length of the period axis.
    folds
        Number of folds wanted (>= 1). Fewer are returned when the history is too short to
        keep :data:`MIN_TRAIN` training periods in the first fold; none when even one fold
        cannot.
    horizon
        Periods per test block; :func:`default_horizon` when None.

    Returns
    -------
    list of Split
        In time order; the last test block ends at the last period.
    """
    if folds < 1:
        raise ValueError(f"folds must be >= 1, got {folds!r}")
    h = default_horizon(n_periods, folds) if horizon is None else int(horizon)
    if h < 1:
        raise ValueError(f"horizon must be >= 1, got {horizon!r}")
    k = min(folds, max(0, (n_periods - MIN_TRAIN) // h))
    first = n_periods - k * h
    return [Split(slice(0, first + i * h), slice(first + i * h, first + (i + 1) * h)) for i in range(k)]


def errors(predicted: NDArray[np.float64], actual: NDArray[np.float64]) -> tuple[float, float]:
    """Mean absolute percentage error and weighted absolute percentage error (fractions).

    MAPE averages ``|error| / actual`` over positive actuals (NaN if none); WAPE is
    ``sum |error| / sum |actual|`` (NaN if the actuals are all zero).
    """
    p = np.asarray(predicted, float)
    a = np.asarray(actual, float)
    err = np.abs(p - a)
    pos = a > 0
    mape = float(np.mean(err[pos] / a[pos])) if pos.any() else math.nan
    total = float(np.abs(a).sum())
    wape = float(err.sum() / total) if total > 0 else math.nan
    return mape, wape


def interval_coverage(lower: NDArray[np.float64], upper: NDArray[np.float64],
                      actual: NDArray[np.float64]) -> float:
    """Share of ``actual`` inside ``[lower, upper]`` (NaN for no observations)."""
    a = np.asarray(actual, float)
    if a.size == 0:
        return math.nan
    return float(np.mean((a >= lower) & (a <= upper)))
