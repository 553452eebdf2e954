"""Per-cell diagnosis of the history before fitting: fit on its own, pool, or refuse -- and why.

Every cell gets exactly one :class:`Diagnosis`:

============  ==================================================================================
``fit``       enough periods and spend variation: the cell's own data choose and fit its curve
``pool``      too few periods (< :data:`MIN_OWN_PERIODS`) or too little spend variation (the
              spread of log spend below :data:`MIN_SPEND_SPREAD`): the curve is fitted to the
              cell's data with a prior from its category and segment (:mod:`forecasting.pooling`)
``refuse``    fewer than :data:`MIN_PERIODS` periods, spend zero in every period, or an outcome
              zero in every period: no curve can be honest; the reason names the cell
============  ==================================================================================

``flags`` add warnings that do not change the route: gaps (months without a row between the
cell's first and last period) and outcomes that are zero in some periods; outlier periods that
the robust loss down-weighted are flagged per outcome after the fit
(:attr:`forecasting.results.OutcomeFit.flags`). Nothing gets a silent default curve.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np
import pandas as pd

from forecasting.panel import Panel

#: Fewest periods for any curve (with pooling).
MIN_PERIODS = 3
#: Fewest periods for a cell to choose and fit its own curve (rolling-origin CV needs them).
MIN_OWN_PERIODS = 12
#: Smallest standard deviation of log spend (about +-5 %) for a cell's own elasticity.
MIN_SPEND_SPREAD = 0.05
#: Share of zero outcomes above which the cell is flagged.
ZERO_SHARE_FLAG = 0.2

Route = Literal["fit", "pool", "refuse"]


@dataclass(frozen=True)
class Diagnosis:
    """What the data of one cell support.

    Attributes
    ----------
    route
        ``fit``, ``pool`` or ``refuse`` (see the module docstring).
    reasons
        Why the cell is pooled or refused (empty for ``fit``).
    flags
        Warnings that do not change the route.
    n_periods
        Observed periods.
    spend_spread
        Standard deviation of log spend over periods with positive spend (NaN if < 2).
    """

    route: Route
    reasons: tuple[str, ...] = ()
    flags: tuple[str, ...] = ()
    n_periods: int = 0
    spend_spread: float = float("nan")


def diagnose(panel: Panel) -> list[Diagnosis]:
    """Diagnose every cell of the panel (in panel order)."""
    return [_diagnose_cell(panel, i) for i in range(panel.n_cells)]


def _diagnose_cell(panel: Panel, i: int) -> Diagnosis:
    obs = panel.observed[i]
    n = int(obs.sum())
    spend = panel.spend[i, obs]
    positive = spend[spend > 0]
    spread = float(np.std(np.log(positive), ddof=1)) if positive.size >= 2 else float("nan")
    refuse: list[str] = []
    pool: list[str] = []
    flags: list[str] = []
    if n < MIN_PERIODS:
        refuse.append(f"only {n} period(s); at least {MIN_PERIODS} are needed even with pooling")
    if n and not np.any(spend > 0):
        refuse.append(f"spend is zero in all {n} periods: there is no response to spend to learn")
    for name, values in panel.outcomes.items():
        y = values[i, obs]
        if n and not np.any(y > 0):
            refuse.append(f"{name} is zero in all {n} periods")
        elif n and np.mean(y == 0) > ZERO_SHARE_FLAG:
            flags.append(f"{name} is zero in {int(np.sum(y == 0))} of {n} periods")
    gaps = _gaps(panel, obs)
    if gaps:
        shown = ", ".join(gaps[:4]) + (f" and {len(gaps) - 4} more" if len(gaps) > 4 else "")
        flags.append(f"{len(gaps)} missing period(s) inside the history: {shown}")
    if not refuse:
        if n < MIN_OWN_PERIODS:
            pool.append(f"only {n} periods (fewer than {MIN_OWN_PERIODS} for an own curve)")
        if np.ptp(spend) <= 1e-9 * max(float(np.abs(spend).max()), 1.0):
            pool.append(f"spend is constant ({float(spend[0]):g} in all {n} periods)")
        elif not spread >= MIN_SPEND_SPREAD:
            pool.append(f"spend barely varies (log-spend spread {spread:.3f} < {MIN_SPEND_SPREAD})")
    route: Route = "refuse" if refuse else ("pool" if pool else "fit")
    reasons = tuple(refuse) if refuse else tuple(pool)
    return Diagnosis(route, reasons, tuple(flags), n, spread)


def _gaps(panel: Panel, obs: np.ndarray) -> list[str]:
    """Periods without a row between the cell's first and last observed period."""
    seen = np.flatnonzero(obs)
    if seen.size < 2:
        return []
    inside = np.arange(seen[0], seen[-1] + 1)
    missing = inside[~obs[inside]]
    return [str(p) for p in pd.PeriodIndex(panel.periods[missing])]
