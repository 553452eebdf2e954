"""Every plan is checked on the exact curves and every rule before it is returned.

:func:`certify` evaluates a plan (scaled spends) against the model: the objective on the exact
curves, the violation of every rule, and the Lagrangian dual bound at the given multipliers
(:mod:`formulations.lagrangian`) -- a proof of how far the plan can be from the best possible.
It trusts nothing a backend says about its own answer.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

from formulations.lagrangian import Multipliers, dual_bound
from formulations.model import ArrayModel, row_violations


#: The gap is relative to ``max(|objective|, GAP_FLOOR x budget)``: the objective itself unless it
#: is below a billionth of the budget (a profit near zero), where relative accuracy means nothing.
GAP_FLOOR = 1e-9


@dataclass(frozen=True)
class Certificate:
    """Money-unit facts about one plan.

    ``objective``: exact objective (revenue, or revenue minus spend) of the plan; ``upper_bound``:
    proven bound on the best objective (``inf`` without multipliers or when not finite);
    ``gap = upper_bound - objective``; ``denominator = max(|objective|, GAP_FLOOR x budget)``;
    ``relative_gap = gap / denominator``; ``max_violation``: the largest rule violation in currency;
    ``violated_rules``: rules broken by more than the tolerance; ``dual_mismatch``: the largest
    distance (fraction of the budget) between the plan and the cells' best responses to the
    multipliers -- 0 when the multipliers are the plan's exact shadow prices.
    """

    objective: float
    upper_bound: float
    max_violation: float
    violated_rules: tuple[str, ...]
    denominator: float
    dual_mismatch: float = 0.0

    @property
    def gap(self) -> float:
        return self.upper_bound - self.objective

    @property
    def relative_gap(self) -> float:
        return self.gap / self.denominator

    @property
    def feasible(self) -> bool:
        return not self.violated_rules

    @property
    def bound_below_objective(self) -> bool:
        """The plan is worth more than the proven bound: it cannot be truly feasible."""
        return math.isfinite(self.upper_bound) and self.gap < 0

    def proves_optimal(self, gap_tol: float) -> bool:
        """Feasible, a finite bound, and ``0 <= bound - objective <= gap_tol x denominator``."""
        return (self.feasible and math.isfinite(self.upper_bound) and math.isfinite(self.objective)
                and 0.0 <= self.gap <= gap_tol * self.denominator)


def _describe_violations(model: ArrayModel, y: NDArray[np.float64], feas_tol: float) -> tuple[float, tuple[str, ...]]:
    scale = model.money_scale
    viol = row_violations(model, y)
    worst = max(float(v.max(initial=0.0)) for v in viol.values()) * scale
    tol = feas_tol * model.budget
    out: list[str] = []
    cells = model.problem.cells
    for i in np.flatnonzero(viol["bounds"] > tol):
        out.append(f"cell {cells[i].category} / {cells[i].segment} (cells[{i}]) spend bounds by {viol['bounds'][i] * scale:.6g}")
    if viol["budget"][0] > tol:
        out.append(f"budget by {viol['budget'][0] * scale:.6g}")
    for kind in ("share_min", "share_max"):
        for k in np.flatnonzero(viol[kind] > tol):
            out.append(f"category {model.categories[model.share_category[k]]} {kind.replace('share_', '')}imum share "
                       f"by {viol[kind][k] * scale:.6g}")
    for r in np.flatnonzero(viol["clv"] > tol):
        out.append(f"segment {model.segments[model.clv_segment[r]]} CLV/CAC rule by {viol['clv'][r] * scale:.6g}")
    return worst, tuple(out)


def certify(model: ArrayModel, y: NDArray[np.float64], multipliers: Multipliers | None,
            *, feas_tol: float) -> Certificate:
    """Check plan ``y`` (scaled) and the bound proved by ``multipliers`` (scaled).

    ``feas_tol`` is the largest accepted violation of any rule as a fraction of the budget.
    """
    objective = model.objective(y) * model.value_scale
    bound, mismatch = math.inf, math.inf
    if multipliers is not None:
        db = dual_bound(model, multipliers, start=y)
        bound = db.value * model.value_scale
        mismatch = float(np.max(np.abs(db.argmax - y), initial=0.0)) / model.budget
    worst, violated = _describe_violations(model, y, feas_tol)
    denominator = max(abs(objective), GAP_FLOOR * model.problem.budget)
    return Certificate(float(objective), float(bound), worst, violated, float(denominator), mismatch)
