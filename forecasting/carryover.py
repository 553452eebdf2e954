"""Carry-over of spend into later periods: normalized geometric adstock.

With carry-over ``theta`` (0 <= theta < 1) a period's effective spend is::

    a_t = (1 - theta) x_t + theta a_{t-1}

a weighted average of this and earlier periods' spend (weights ``(1 - theta) theta^k``). It is
normalized: a constant spend ``x`` has effective spend ``x``, so a curve fitted on effective spend
is directly the steady-state response to spend ``x`` per period -- the plan's curve (a plan spreads
its spend evenly over its periods). Carry-over into the plan from spend before it, and out of it
into later periods, is left out (the steady-state approximation).

The first observed period of a cell starts at steady state (``a = x``); after a gap (a period
without data) the recursion restarts the same way, since the spend in the gap is unknown.

Examples
--------
>>> import numpy as np
>>> geometric_adstock(np.array([[100.0, 0.0, 0.0, 100.0]]), np.ones((1, 4), bool), 0.5).tolist()
[[100.0, 50.0, 25.0, 62.5]]
"""

from __future__ import annotations

import numpy as np
from numpy.typing import NDArray

FloatArray = NDArray[np.float64]

#: Carry-over values tried by ``carryover="auto"`` (0 = none).
CARRYOVER_GRID: tuple[float, ...] = (0.0, 0.2, 0.4, 0.6)
#: "auto" keeps a carry-over only if it lowers the held-out error by at least this fraction.
MIN_IMPROVEMENT = 0.01


def geometric_adstock(spend: FloatArray, observed: NDArray[np.bool_], theta: float) -> FloatArray:
    """Effective spend (C, T) of spend (C, T) with carry-over ``theta`` (see the module docstring).

    Raises
    ------
    ValueError
        If ``theta`` is not in [0, 1).
    """
    if not 0.0 <= theta < 1.0:
        raise ValueError(f"carry-over must be in [0, 1), got {theta!r}")
    x = np.asarray(spend, dtype=np.float64)
    if theta == 0.0:
        return x.copy()
    out = np.zeros_like(x)
    previous = np.full(x.shape[0], np.nan)
    for t in range(x.shape[1]):
        obs = observed[:, t]
        start = obs & np.isnan(previous)
        cont = obs & ~np.isnan(previous)
        out[start, t] = x[start, t]
        out[cont, t] = (1.0 - theta) * x[cont, t] + theta * previous[cont]
        previous = np.where(obs, out[:, t], np.nan)
    return out
