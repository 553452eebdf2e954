"""Water-filling: the exact closed-form route for the budget-and-bounds problem.

With only the budget row and cell bounds, every cell spends its best response to one price
``lam`` (the budget dual): ``y_i(lam) = argmax r_i(y) - (spend_cost + lam) y`` on ``[l_i, u_i]``
-- in closed form (the clipped inverse of the marginal revenue) for log, exp_saturation,
michaelis_menten and power curves, by a bracketed search otherwise.
``sum_i y_i(lam)`` is nonincreasing in ``lam``; the same bracketed root search that finds each
cell's best response (:func:`formulations.lagrangian.bracket_root`) finds the price at which it
equals the budget. Where the sum jumps (linear or piecewise-linear curves have whole intervals of
best responses at one price), the two plans on either side of the jump are blended, which keeps
the plan optimal for that price.
"""

from __future__ import annotations

import numpy as np
from numpy.typing import NDArray

from formulations.lagrangian import Multipliers, best_responses, bracket_root, dual_bound
from formulations.model import ArrayModel
from formulations.result import RouteResult, RouteStatus

BACKEND = "waterfill"
FloatArray = NDArray[np.float64]


def supports(model: ArrayModel) -> bool:
    """Only the budget row and bounds: no share and no CLV/CAC rules."""
    return model.share_category.size == 0 and model.clv_segment.size == 0


def closed_form(model: ArrayModel) -> bool:
    """Whether every revenue curve's best response has a closed form (see :func:`_plan`)."""
    return model.revenue.has_inverse_derivative()


def _plan(model: ArrayModel, lam: float) -> FloatArray:
    """Each cell's best response to the price ``spend_cost + lam`` (scaled): the clipped inverse
    of its marginal revenue where the family has a closed form, else a bracketed search."""
    price = model.spend_cost + lam
    money_slope = np.full(model.n, price * model.value_scale / model.money_scale)
    x = model.revenue.inverse_derivative_at(money_slope)
    if x is not None:
        return np.clip(x / model.money_scale, model.lower, model.upper)
    return best_responses(model, np.full(model.n, price), np.zeros(model.n))[0]


def solve_waterfill(model: ArrayModel) -> RouteResult:
    """Solve a budget-and-bounds model; ERROR if the model has share or CLV/CAC rules."""
    if not supports(model):
        return RouteResult(RouteStatus.ERROR, BACKEND, message="water-filling handles only the budget and cell bounds")
    budget = model.budget
    if model.lower.sum() > budget or (model.equal_budget and model.upper.sum() < budget):
        return RouteResult(RouteStatus.INFEASIBLE, BACKEND, message="the cell bounds cannot meet the budget")
    zeros = np.zeros(0)

    def result(y: FloatArray, lam: float, rounds: int) -> RouteResult:
        return RouteResult(RouteStatus.CONVERGED, BACKEND, y, Multipliers(lam, zeros, zeros, zeros), rounds)

    if not model.equal_budget:
        y0 = _plan(model, 0.0)
        if y0.sum() <= budget:
            return result(y0, 0.0, 1)
    # Bracket the price: at lam_lo every cell wants at least its share, at lam_hi at most.
    lam_lo, lam_hi = -1.0, 1.0
    while _plan(model, lam_lo).sum() < budget:
        lam_lo *= 2.0
        if lam_lo < -1e300:
            return RouteResult(RouteStatus.ERROR, BACKEND, message="no price spends the budget")
    while _plan(model, lam_hi).sum() > budget:
        lam_hi *= 2.0
        if lam_hi > 1e300:
            return RouteResult(RouteStatus.ERROR, BACKEND, message="no price meets the budget")
    if not model.equal_budget:
        lam_lo = max(lam_lo, 0.0)

    def excess(lam: FloatArray) -> FloatArray:
        return np.array([_plan(model, float(lam[0])).sum() - budget])

    lo, hi = np.array([lam_lo]), np.array([lam_hi])
    lo, hi, _, _ = bracket_root(excess, lo, hi, excess(lo), excess(hi), np.array([True]))
    y_over, y_under = _plan(model, float(lo[0])), _plan(model, float(hi[0]))
    over, under = y_over.sum() - budget, budget - y_under.sum()
    theta = 0.0 if over + under <= 0 else under / (over + under)
    y = np.clip(y_under + theta * (y_over - y_under), model.lower, model.upper)
    blended = float(hi[0] + theta * (lo[0] - hi[0]))
    if closed_form(model):  # smooth curves: the total is continuous, the bracket is the price
        return result(y, blended, 1)
    # The certificate's price: whichever candidate proves the tightest bound.
    prices = (float(hi[0]), float(lo[0]), blended)
    lam = min(prices, key=lambda p: dual_bound(model, Multipliers(p, zeros, zeros, zeros)).value)
    return result(y, lam, 1)
