"""Baselines run in the same process as the product, on the same instances.

- :func:`slsqp`: scipy's SLSQP on the full problem (what marketing-mix optimizers use); a local
  method that reports its own idea of success.
- :func:`clarabel_default`: the exact conic model in cvxpy with Clarabel at default settings.
- :func:`highs_pieces`: HiGHS interior point on a fixed K-piece linearization (chords through
  K+1 breakpoints per curve on the cell's spend range -- an inner approximation, so the plan is
  feasible and its exact objective is below the optimum).
- :func:`plain_waterfill`: the budget-only problem by closed-form inverse marginal revenue and
  bisection on the budget price, numpy-vectorized: the physical limit for the simplest case.

Each returns ``(objective in money on the exact curves or nan, note)``; timing is the caller's.
Libraries used only by one baseline (scipy.optimize, cvxpy) are imported inside its function so
that other routes' processes do not load them; the caller imports them before its clock
(:func:`fair.preload`), so the import statements here are dictionary look-ups. Stopping
tolerances: see :mod:`fair`.
"""

from __future__ import annotations

import time

import highspy
import numpy as np
from numpy.typing import NDArray

from fair import CLARABEL_TOLERANCES, GAP_TOL, HIGHS_TOLERANCES
from formulations.model import ArrayModel, max_violation

FloatArray = NDArray[np.float64]


def slsqp(model: ArrayModel, time_limit: float = 120.0) -> tuple[float, str]:
    """SLSQP from the even allocation, analytic gradients, rows as vector constraints.

    Stopping accuracy ``ftol`` (SLSQP's target for the objective and for the summed constraint
    violation) is the product's relative gap tolerance times the objective's size at the start.
    """
    from scipy.optimize import minimize  # preloaded by the caller (fair.preload)

    n = model.n
    k, m = model.share_category.size, model.clv_segment.size
    cat = np.zeros((k, n))
    for r, c in enumerate(model.share_category):
        cat[r, model.category_of == c] = 1.0
    seg = np.zeros((m, n))
    has = model.clv_rule_of >= 0
    seg[model.clv_rule_of[has], np.flatnonzero(has)] = 1.0
    start = time.perf_counter()

    def check_time(_: FloatArray) -> None:
        if time.perf_counter() - start > time_limit:
            raise TimeoutError

    cons = [{"type": "eq" if model.equal_budget else "ineq",
             "fun": lambda y: np.array([model.budget - y.sum()]), "jac": lambda y: -np.ones((1, n))}]
    if k:
        cons.append({"type": "ineq", "fun": lambda y: cat @ y - model.share_lo, "jac": lambda y: cat})
        cons.append({"type": "ineq", "fun": lambda y: model.share_hi - cat @ y, "jac": lambda y: -cat})
    if m:
        cons.append({"type": "ineq", "fun": lambda y: model.clv_slack(y),
                     "jac": lambda y: seg * (model.dacq_value(y) - 1.0)[None, :]})
    y0 = np.clip(np.full(n, model.budget / n), model.lower, model.upper)
    ftol = GAP_TOL * max(abs(float(model.objective(y0))), 1.0)
    try:
        res = minimize(lambda y: -model.objective(y), y0, jac=lambda y: -(model.drev(y) - model.spend_cost),
                       bounds=list(zip(model.lower, model.upper)), constraints=cons, method="SLSQP",
                       callback=check_time, options={"maxiter": 1000, "ftol": ftol})
    except TimeoutError:
        return float("nan"), f"stopped at the {time_limit:g} s limit"
    y = np.clip(res.x, model.lower, model.upper)
    violation = max_violation(model, y)
    note = (f"{'success' if res.success else 'failed'} ({res.message}), violation {violation:.1e}"
            + ("" if violation <= 1e-6 else "; INFEASIBLE plan"))
    return model.objective(y) * model.value_scale, note


def clarabel_default(model: ArrayModel) -> tuple[float, str]:
    """The exact conic model at Clarabel's default tolerances (passed explicitly, :mod:`fair`)."""
    import warnings

    import cvxpy as cp  # preloaded by the caller (fair.preload)

    from formulations.conic import build_conic

    problem, handles = build_conic(model)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            problem.solve(solver=cp.CLARABEL, **CLARABEL_TOLERANCES)
        except cp.error.SolverError as e:
            return float("nan"), f"solver error: {e}"
    if handles["y"].value is None:  # type: ignore[attr-defined]
        return float("nan"), f"status {problem.status}"
    y = np.clip(np.asarray(handles["y"].value), model.lower, model.upper)  # type: ignore[attr-defined]
    return model.objective(y) * model.value_scale, f"status {problem.status}, violation {max_violation(model, y):.1e}"


def highs_pieces(model: ArrayModel, pieces: int) -> tuple[float, str]:
    """HiGHS interior point on chords through ``pieces + 1`` breakpoints per curve.

    The incremental (delta) form: one column ``d_ik`` in ``[0, width_k]`` per piece, spend
    ``y_i = l_i + sum_k d_ik``, revenue and acquisition value linear in ``d`` with the chords'
    slopes; the only rows are the budget, the shares and one per CLV/CAC rule. Concave curves
    make the pieces fill in order at the optimum (that is best for revenue and for the CLV/CAC
    rows alike), so this LP equals the chord approximation without binaries or per-piece rows.
    """
    n, k_pieces = model.n, pieces
    inf = highspy.kHighsInf
    grid = model.lower[:, None] + (model.upper - model.lower)[:, None] * np.linspace(0, 1, k_pieces + 1)[None, :]
    width = np.diff(grid, axis=1)

    def chord_slopes(f) -> FloatArray:  # type: ignore[no-untyped-def]
        values = np.stack([f(grid[:, j]) for j in range(k_pieces + 1)], axis=1)
        return np.where(width > 0, np.diff(values, axis=1) / np.where(width > 0, width, 1.0), 0.0)

    rev_slope = chord_slopes(model.rev)
    cell_of = np.repeat(np.arange(n), k_pieces)  # column j = i * K + k
    h = highspy.Highs()
    h.setOptionValue("output_flag", False)
    h.setOptionValue("solver", "ipm")
    h.setOptionValue("run_crossover", "on")  # without it the IPM ends "Unknown" on some instances
    for option, value in HIGHS_TOLERANCES.items():
        h.setOptionValue(option, value)
    h.changeObjectiveSense(highspy.ObjSense.kMaximize)
    cost = (rev_slope - model.spend_cost).ravel()
    h.addCols(cost.size, cost, np.zeros(cost.size), width.ravel(), 0,
              np.zeros(cost.size, np.int32), np.zeros(0, np.int32), np.zeros(0))
    rows_lo, rows_hi, starts, index, value = [], [], [], [], []

    def add_row(cells: NDArray[np.int64], coef: FloatArray, low: float, high: float) -> None:
        cols = (cells[:, None] * k_pieces + np.arange(k_pieces)[None, :]).ravel()
        starts.append(sum(len(i) for i in index))
        index.append(cols)
        value.append(coef[cells].ravel())
        rows_lo.append(low)
        rows_hi.append(high)

    ones = np.ones((n, k_pieces))
    free_budget = model.budget - model.lower.sum()
    add_row(np.arange(n), ones, free_budget if model.equal_budget else -inf, free_budget)
    for r, c in enumerate(model.share_category):
        ix = np.flatnonzero(model.category_of == c)
        base = model.lower[ix].sum()
        add_row(ix, ones, model.share_lo[r] - base, model.share_hi[r] - base)
    if model.clv_segment.size:
        acq_slope = chord_slopes(model.acq_value)
        acq_at_lower = model.acq_value(model.lower)
        for r in range(model.clv_segment.size):
            ix = np.flatnonzero(model.clv_rule_of == r)
            add_row(ix, 1.0 - acq_slope, -inf, float((acq_at_lower[ix] - model.lower[ix]).sum()))
    h.addRows(len(rows_lo), np.array(rows_lo), np.array(rows_hi), int(sum(len(i) for i in index)),
              np.array(starts, np.int32), np.concatenate(index).astype(np.int32), np.concatenate(value))
    h.run()
    status = h.modelStatusToString(h.getModelStatus())
    if h.getModelStatus() != highspy.HighsModelStatus.kOptimal:
        return float("nan"), status
    d = np.asarray(h.getSolution().col_value)
    y = np.clip(model.lower + np.bincount(cell_of, weights=d, minlength=n), model.lower, model.upper)
    return model.objective(y) * model.value_scale, f"{status}, violation {max_violation(model, y):.1e}"


def _inverse_marginal(model: ArrayModel, lam: float) -> FloatArray:
    """Money spend per cell where marginal revenue equals ``lam`` (closed forms), clipped."""
    x = np.zeros(model.n)
    for g in model.revenue.groups:
        p = {k: v[:, 0] for k, v in g.params.items()}
        with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
            if g.family == "log":
                v = p["a"] / lam - p["b"]
            elif g.family == "exp_saturation":
                v = p["b"] * np.log(p["a"] / (p["b"] * lam))
            elif g.family == "michaelis_menten":
                v = p["scale"] * (np.sqrt(p["alpha"] * p["lam"] / (p["scale"] * lam)) - p["lam"])
            elif g.family == "power":
                v = (lam / (p["a"] * p["p"])) ** (1.0 / (p["p"] - 1.0))
            else:
                raise ValueError(f"no closed-form inverse for {g.family}")
        x[g.index] = v
    ms = model.money_scale
    return np.clip(np.nan_to_num(x, nan=0.0, posinf=np.inf), model.lower * ms, model.upper * ms)


def plain_waterfill(model: ArrayModel) -> tuple[float, str]:
    """Budget-only water-filling: bisection on log(lam) with closed-form spends (money units).

    Stops at double precision, like the product's own price search: when the spend total meets
    the budget to 1e-15 relative, or when the bracket on the price no longer shrinks in floating
    point (its midpoint equals an end). The plan is the one at the upper end of the bracket (it
    spends at most the budget, or the budget to 1e-15), kept from its evaluation, not recomputed.
    """
    budget = model.budget * model.money_scale
    lo, hi = -30.0, 30.0  # log of the price, in revenue per dollar
    x_hi: FloatArray | None = None  # the plan at hi, once evaluated
    rounds = 0
    while True:
        mid = 0.5 * (lo + hi)
        if not lo < mid < hi:  # the bracket is two adjacent doubles: it cannot shrink further
            break
        rounds += 1
        x = _inverse_marginal(model, float(np.exp(mid)))
        spend = float(x.sum())
        if abs(spend - budget) <= 1e-15 * budget:  # spends the budget to double precision
            hi, x_hi = mid, x
            break
        if spend > budget:
            lo = mid
        else:
            hi, x_hi = mid, x
    if x_hi is None:
        x_hi = _inverse_marginal(model, float(np.exp(hi)))
    return float(model.revenue.value_at(x_hi).sum()), f"price {np.exp(hi):.6g}, {rounds} bisections"
