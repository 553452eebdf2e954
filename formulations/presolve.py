"""Cells the rules force to their minimum spend, found before any solve.

A rule can leave a cell exactly one feasible spend: a category whose maximum share is no more
than its cells' minimums (a maximum of 0 %), a category that the other categories' minimum
shares squeeze out of the budget (another category held at 100 %), or a segment whose CLV/CAC
floor holds only when its cells spend their minimums. Such a cell must be priced out by the
Lagrangian certificate, and when its marginal revenue is infinite at its minimum (power with
``p < 1``, hill with slope < 1) no finite multiplier does it: the bound then only approaches the
optimum as the multipliers run to infinity, and a route's sliver of spend inside the feasibility
tolerance buys real revenue. Fixing those cells (upper bound = lower bound) is exact, since the rule
allows nothing else, and makes the certificate finite.

Every fixing names the rule that forces it (:class:`Fixing`); the solution file lists them and the
independent checker (``budget-solver check``) re-derives each from the problem data before using
the tightened bounds.

All quantities are in the scaled units of :mod:`formulations.model` (budget = 1).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

FloatArray = NDArray[np.float64]

#: Relative slack of the comparisons that decide a fixing (rounding of the sums involved).
FIX_TOL = 1e-12


@dataclass(frozen=True)
class Fixing:
    """Cell ``cell`` (index) held at its minimum spend ``by`` one rule: ``category_max`` (rule: the
    category), ``budget`` (the other categories' minimums fill the budget; rule: the category
    squeezed out) or ``segment_clv_cac`` (rule: the segment)."""

    cell: int
    by: str
    rule: str


def forced_cells(*, budget: float, lower: FloatArray, upper: FloatArray, category_of: NDArray[np.intp],
                 categories: tuple[str, ...], share_category: NDArray[np.intp], share_lo: FloatArray,
                 share_hi: FloatArray, clv_rule_of: NDArray[np.intp], clv_names: list[str],
                 acq_value_at_lower: FloatArray, acq_slope_at_lower: FloatArray) -> list[Fixing]:
    """The cells the rules force to their lower bound (only cells with ``upper > lower``).

    ``clv_rule_of``: each cell's CLV/CAC rule (-1: none); ``acq_value_at_lower`` and
    ``acq_slope_at_lower``: each cell's scaled acquisition value ``v_i`` and its slope at ``lower``.
    """
    movable = upper > lower
    out: list[Fixing] = []
    taken = np.zeros(lower.size, dtype=bool)

    def fix(cells: NDArray[np.intp], by: str, rule: str) -> None:
        for i in cells[movable[cells] & ~taken[cells]]:
            taken[i] = True
            out.append(Fixing(int(i), by, rule))

    n_cat = len(categories)
    cat_lower = np.bincount(category_of, weights=lower, minlength=n_cat)
    need = cat_lower.copy()  # each category's least spend under its minimum share and its cells
    need[share_category] = np.maximum(need[share_category], share_lo)
    for k, c in enumerate(share_category):
        if share_hi[k] <= cat_lower[c] * (1 + FIX_TOL):
            fix(np.flatnonzero(category_of == c), "category_max", categories[c])
    total_need = float(need.sum())
    for c in range(n_cat):
        room = budget - (total_need - need[c])
        if room <= cat_lower[c] * (1 + FIX_TOL) + FIX_TOL * budget:
            fix(np.flatnonzero(category_of == c), "budget", categories[c])
    ruled = np.flatnonzero(clv_rule_of >= 0)
    if ruled.size and np.any(movable[ruled]):
        m = len(clv_names)
        rule = clv_rule_of[ruled]
        best = np.bincount(rule, weights=acq_value_at_lower[ruled] - lower[ruled], minlength=m)
        steep = np.bincount(rule, weights=(acq_slope_at_lower[ruled] > 1.0).astype(float), minlength=m)
        forced = (steep == 0) & (best <= FIX_TOL * budget)
        for r in np.flatnonzero(forced):
            fix(ruled[rule == r], "segment_clv_cac", clv_names[r])
    return out
