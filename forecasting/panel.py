"""The history as arrays: one row per cell, one column per period of the history's period axis.

Every fitting stage works on a :class:`Panel`: spend and outcomes of ``C`` cells over the ``T``
consecutive months from the history's first to its last period. A cell without a row for some
month (a gap, or a cell that started later) has ``observed = False`` there; its spend and outcome
there are 0 and carry no weight. Cells are sorted by (category, segment).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd
from numpy.typing import NDArray

from forecasting.cells import CellKey
from forecasting.history import validate_history

FloatArray = NDArray[np.float64]
OUTCOMES: tuple[str, ...] = ("revenue", "new_customers")


@dataclass(frozen=True)
class Panel:
    """Spend and outcomes on a (cell, period) grid.

    Attributes
    ----------
    keys
        The ``C`` cells, sorted.
    periods
        The ``T`` consecutive monthly periods from the first to the last history period.
    spend
        (C, T) spend per period, currency (0 where not observed).
    outcomes
        Outcome name (``revenue``, and ``new_customers`` when the history has it) -> (C, T)
        values (0 where not observed).
    observed
        (C, T) True where the history has a row for the cell and period.
    """

    keys: tuple[CellKey, ...]
    periods: pd.PeriodIndex
    spend: FloatArray
    outcomes: dict[str, FloatArray]
    observed: NDArray[np.bool_]

    @classmethod
    def from_history(cls, history: pd.DataFrame) -> Panel:
        """Arrange a history (validated here) on the cell x month grid."""
        data = validate_history(history)
        periods = pd.period_range(data["period"].min(), data["period"].max(), freq="M")
        keys = tuple(sorted({(str(c), str(s)) for c, s in zip(data["category"], data["segment"])}))
        row = {k: i for i, k in enumerate(keys)}
        r = np.array([row[(str(c), str(s))] for c, s in zip(data["category"], data["segment"])],
                     dtype=np.intp)
        first = periods[0].ordinal
        t = np.asarray(data["period"].array.asi8, dtype=np.int64) - first
        shape = (len(keys), len(periods))
        observed = np.zeros(shape, dtype=bool)
        observed[r, t] = True
        spend = np.zeros(shape)
        spend[r, t] = data["spend"].to_numpy()
        outcomes = {}
        for name in OUTCOMES:
            if name in data.columns:
                arr = np.zeros(shape)
                arr[r, t] = data[name].to_numpy()
                outcomes[name] = arr
        return cls(keys, periods, spend, outcomes, observed)

    @property
    def n_cells(self) -> int:
        return len(self.keys)

    @property
    def n_periods(self) -> int:
        return len(self.periods)

    def cell_periods(self) -> NDArray[np.intp]:
        """(C,) number of observed periods per cell."""
        return self.observed.sum(axis=1)

    def mean_spend(self) -> FloatArray:
        """(C,) mean spend over each cell's observed periods (currency per period)."""
        return _masked_mean(self.spend, self.observed)

    def mean_outcome(self, name: str) -> FloatArray:
        """(C,) mean of an outcome over each cell's observed periods."""
        return _masked_mean(self.outcomes[name], self.observed)

    def last_spend(self) -> FloatArray:
        """(C,) spend in each cell's last observed period."""
        last = self.n_periods - 1 - np.argmax(self.observed[:, ::-1], axis=1)
        return self.spend[np.arange(self.n_cells), last]

    def subset(self, rows: Sequence[int] | NDArray[np.intp]) -> Panel:
        """The panel of some cells only (same period axis)."""
        idx = np.asarray(rows, dtype=np.intp)
        return Panel(tuple(self.keys[i] for i in idx), self.periods, self.spend[idx],
                     {k: v[idx] for k, v in self.outcomes.items()}, self.observed[idx])

    def truncated(self, n_periods: int) -> Panel:
        """The panel of the first ``n_periods`` periods (for backtests)."""
        return Panel(self.keys, self.periods[:n_periods], self.spend[:, :n_periods],
                     {k: v[:, :n_periods] for k, v in self.outcomes.items()},
                     self.observed[:, :n_periods])


def _masked_mean(values: FloatArray, mask: NDArray[np.bool_]) -> FloatArray:
    count = mask.sum(axis=1)
    total = np.where(mask, values, 0.0).sum(axis=1)
    return np.divide(total, count, out=np.zeros(len(count)), where=count > 0)
