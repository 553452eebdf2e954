"""Move a route's plan onto the linear rules exactly, so that its objective is attainable.

Routes stop at their own tolerances: an interior-point plan can sit 1e-10 of the budget outside a
share limit, or leave a sliver of spend on a cell that should spend nothing. Inside the
feasibility tolerance that is harmless for the rules, but not for the objective: a curve with an
infinite slope at zero (power with ``p < 1``, hill with slope < 1) turns a 1e-10 sliver into real
revenue, and the plan's value then exceeds what any truly feasible plan earns -- above the
proven bound. :func:`snap_to_rules` removes that slack before the plan is evaluated:

1. every spend is clipped to its cell bounds (cells fixed by :mod:`formulations.presolve` land
   exactly on their minimum);
2. a category above its maximum (below its minimum) gives back (takes) the excess from its cells
   in proportion to their room;
3. the budget row's residual is spread over cells that already spend more than their minimum, in
   categories with room for it, in proportion to their room -- a cell at its minimum never gets a
   sliver.

4. a segment that breaks its CLV/CAC rule by a residual moves its cells towards their minimums by
   one common fraction, the smallest that makes the rule hold, and the spend taken out goes (as in
   step 3) to cells whose own rule has room for it.

Changes are of the size of the residuals (at most the feasibility tolerance).
All quantities are in the scaled units of :mod:`formulations.model`.
"""

from __future__ import annotations

import numpy as np
from numpy.typing import NDArray

from formulations.model import ArrayModel, max_violation

FloatArray = NDArray[np.float64]
#: CLV/CAC residuals below this fraction of the budget are rounding, covered by the bound's allowance.
CLV_ROUNDING = 1e-14


def snap_to_rules(model: ArrayModel, y: FloatArray, feas_tol: float) -> FloatArray:
    """``y`` moved onto the bounds, the share rules, the budget row and the CLV/CAC rules (see
    the module docstring); unchanged when it breaks a rule by more than ``feas_tol`` (a fraction
    of the budget): such a plan is reported as breaking it, not mended."""
    if max_violation(model, y) > feas_tol * model.budget:
        return y
    y = _snap_linear(model, np.clip(np.asarray(y, dtype=float), model.lower, model.upper), None)
    if model.clv_segment.size == 0:
        return y
    slack = model.clv_slack(y)
    if not np.any(slack < -CLV_ROUNDING * model.budget):
        return y
    linear = y
    y = _shrink_into_rules(model, y, np.maximum(-slack, 0.0))
    # The spend taken out goes to cells whose CLV/CAC rule has ample room for it (or that have none).
    slack = model.clv_slack(y)
    moved = abs(model.budget - float(y.sum()))
    tight = np.zeros(model.clv_segment.size + 1, dtype=bool)
    tight[:-1] = slack <= 10.0 * moved + 1e-12 * model.budget
    y = _snap_linear(model, y, tight[model.clv_rule_of])  # rule -1 (none) maps to the last entry
    # Spend no rule has room for stays out, off the budget row: then the plan as it was is better.
    return y if max_violation(model, y) <= feas_tol * model.budget else linear


def _snap_linear(model: ArrayModel, y: FloatArray, blocked: NDArray[np.bool_] | None) -> FloatArray:
    """Steps 2 and 3 of the module docstring; ``blocked`` cells receive no spend."""
    n_cat = len(model.categories)
    open_ = np.ones(model.n, dtype=bool) if blocked is None else ~blocked
    lo = np.full(n_cat, -np.inf)
    hi = np.full(n_cat, np.inf)
    if model.share_category.size:
        lo[model.share_category] = model.share_lo
        hi[model.share_category] = model.share_hi
        total = model.category_sums(y)
        y = _shift(model, y, np.minimum(hi - total, 0.0), model.lower, open_)   # give back above the maximum
        total = model.category_sums(y)
        y = _shift(model, y, np.maximum(lo - total, 0.0), model.upper, open_)   # take up to the minimum
    residual = model.budget - float(y.sum())
    if residual < 0 or (residual > 0 and model.equal_budget):
        total = model.category_sums(y)
        room_cat = (hi - total) if residual > 0 else (total - lo)
        eligible = (room_cat >= abs(residual))[model.category_of] & (y > model.lower)
        if residual > 0:
            eligible &= open_
        room = np.where(eligible, (model.upper - y) if residual > 0 else (y - model.lower), 0.0)
        available = float(room.sum())
        if available >= abs(residual) > 0:
            y = np.clip(y + residual * room / available, model.lower, model.upper)
    return y


def _shift(model: ArrayModel, y: FloatArray, change: FloatArray, towards: FloatArray,
           open_: NDArray[np.bool_]) -> FloatArray:
    """Move each category's cells towards ``towards`` (their lower or upper bounds) by the
    category's ``change`` in total (shape (n_categories,), signed), in proportion to their room;
    only ``open_`` cells move up."""
    if not np.any(change):
        return y
    room = np.abs(towards - y)
    room = np.where(open_ | (towards <= y), room, 0.0)
    room_cat = model.category_sums(room)
    need = np.abs(change)
    ok = (need > 0) & (room_cat >= need)
    frac = np.where(ok, need / np.where(room_cat > 0, room_cat, 1.0), 0.0)
    return np.clip(y + np.sign(towards - y) * room * frac[model.category_of], model.lower, model.upper)


def _shrink_into_rules(model: ArrayModel, y: FloatArray, deficit: FloatArray) -> FloatArray:
    """For every CLV/CAC rule with a ``deficit`` (shape (m,), scaled), take spend out of its cells
    whose next dollar costs the rule slack (acquisition value slope ``v' < 1``), in proportion to
    ``(y - lower) (1 - v')``, until the rule holds: per rule the smallest such step among
    doublings from the deficit's first-order size, at most 2^11 times it. Rules no step mends
    keep their spends."""
    rule = model.clv_rule_of
    members = np.flatnonzero((rule >= 0) & (y > model.lower))
    members = members[deficit[rule[members]] > 0]
    if members.size == 0:
        return y
    where = np.zeros(model.n, dtype=bool)
    where[members] = True
    gain = 1.0 - model.dacq_value(y, where)[members]
    direction = np.where(gain > 0, (y[members] - model.lower[members]) * gain, 0.0)
    m = model.clv_segment.size
    rate = np.bincount(rule[members], weights=direction * np.maximum(gain, 0.0), minlength=m)
    todo = (deficit > 0) & (rate > 0)
    t = np.where(todo, deficit / np.where(rate > 0, rate, 1.0), 0.0)
    out = y.copy()
    for _ in range(12):
        if not todo.any():
            break
        trial = y.copy()
        step = np.where(todo[rule[members]], t[rule[members]], 0.0)
        trial[members] = np.maximum(y[members] - step * direction, model.lower[members])
        done = todo & (model.clv_slack(trial) >= 0)
        cells = members[done[rule[members]]]
        out[cells] = trial[cells]
        todo &= ~done
        t *= 2.0
    return out
