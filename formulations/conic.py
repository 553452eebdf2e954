"""The model as an exact conic program in cvxpy, solved by Clarabel.

Every concave family but ``logistic`` has an exact conic form: ``log`` and ``exp_saturation`` use
the exponential cone, ``power`` and ``hill`` the power cone (``cp.power(..., approx=False)``, not
cvxpy's rational second-order-cone approximation), ``michaelis_menten`` and ``hill`` an
``inv_pos`` (second-order cone), ``pwl`` and ``linear`` plain linear rows. Curves enter through
hypograph variables ``t_i <= r_i(y_i)`` and ``a_i <= v_i(y_i)`` so that every rule is a linear
row whose dual is read directly.

Interior-point methods stop at their own tolerances; Clarabel is run with tight ones here and the
solver layer still re-checks the plan and the dual bound on the exact curves.
"""

from __future__ import annotations

import warnings
from collections.abc import Mapping
from typing import TYPE_CHECKING

import numpy as np
from numpy.typing import NDArray

from forecasting.curves import PWL, CurveBatch
from formulations.lagrangian import Multipliers
from formulations.model import ArrayModel
from formulations.result import RouteResult, RouteStatus

if TYPE_CHECKING:  # cvxpy is heavy (~60 MB, ~1 s): imported only when this route runs
    import cvxpy as cp

FloatArray = NDArray[np.float64]
BACKEND = "clarabel-conic"
CONIC_FAMILIES = frozenset({"log", "exp_saturation", "power", "michaelis_menten", "hill", "linear", PWL})
CLARABEL_SETTINGS: Mapping[str, float | int] = {
    "tol_gap_abs": 1e-11,
    "tol_gap_rel": 1e-11,
    "tol_feas": 1e-11,
    "tol_ktratio": 1e-9,
    "max_iter": 400,
}


def _status_map() -> dict[str, RouteStatus]:
    import cvxpy as cp

    return {
        cp.OPTIMAL: RouteStatus.CONVERGED,
        cp.OPTIMAL_INACCURATE: RouteStatus.CONVERGED,  # the solver layer's certificate decides
        cp.INFEASIBLE: RouteStatus.INFEASIBLE,
        cp.INFEASIBLE_INACCURATE: RouteStatus.INFEASIBLE,
        cp.USER_LIMIT: RouteStatus.ITERATION_LIMIT,
    }


def supports(model: ArrayModel) -> bool:
    """Whether every curve of ``model`` has an exact conic form."""
    return (model.revenue.families() | model.acquisitions.families()) <= CONIC_FAMILIES


def _hypograph_rows(batch: CurveBatch, y: cp.Expression, z: cp.Expression, z_pos: NDArray[np.intp],
                    money_scale: float, out_factor: FloatArray) -> list[cp.Constraint]:
    """Constraints ``z[z_pos[i]] <= out_factor[i] * f_i(money_scale * y[i])`` for the batch's curves.

    ``out_factor`` has one entry per cell (shape (n,)); cells whose curve is None get no row.
    """
    import cvxpy as cp

    rows: list[cp.Constraint] = []
    for g in batch.groups:
        idx = g.index
        zg = z[z_pos[idx]]
        yg = y[idx]
        f = out_factor[idx]
        if g.family == PWL:
            for k in range(g.params["slope"].shape[1]):
                slope, icpt = g.params["slope"][:, k], g.params["intercept"][:, k]
                rows.append(zg <= cp.multiply(f * icpt, 1.0) + cp.multiply(f * slope * money_scale, yg))
            continue
        p = g.params
        n_samples = next(iter(p.values())).shape[1]
        terms: list[cp.Expression] = []
        for s in range(n_samples):
            w = f / n_samples
            if g.family == "log":
                terms.append(cp.multiply(w * p["a"][:, s], cp.log1p(cp.multiply(money_scale / p["b"][:, s], yg))))
            elif g.family == "exp_saturation":
                a = w * p["a"][:, s]
                terms.append(a - cp.multiply(a, cp.exp(cp.multiply(-money_scale / p["b"][:, s], yg))))
            elif g.family == "linear":
                terms.append(cp.multiply(w * p["a"][:, s] * money_scale, yg))
            elif g.family == "michaelis_menten":
                alpha, lam, scale = w * p["alpha"][:, s], p["lam"][:, s], p["scale"][:, s]
                u = cp.multiply(money_scale / scale, yg)
                terms.append(alpha - cp.multiply(alpha * lam, cp.inv_pos(lam + u)))
            elif g.family in ("power", "hill"):
                terms.append(_per_exponent(g.family, p, s, w, yg, money_scale))
            else:  # pragma: no cover - guarded by supports()
                raise ValueError(f"family {g.family!r} has no conic form")
        rows.append(zg <= cp.sum(terms) if len(terms) > 1 else zg <= terms[0])
    return rows


def _per_exponent(family: str, p: Mapping[str, FloatArray], s: int, w: FloatArray,
                  yg: cp.Expression, money_scale: float) -> cp.Expression:
    """Power-cone terms; cvxpy's power atom takes one exponent, so cells are grouped by exponent."""
    import cvxpy as cp

    expo = p["p" if family == "power" else "slope"][:, s]
    parts = []
    selectors = []
    for e in np.unique(expo):
        sel = np.flatnonzero(expo == e)
        ysel = yg[sel]
        powered = ysel if e == 1.0 else cp.power(ysel, float(e), approx=False)
        if family == "power":
            expr = cp.multiply(w[sel] * p["a"][sel, s] * money_scale ** e, powered)
        else:
            beta, kappa_e = w[sel] * p["beta"][sel, s], p["kappa"][sel, s] ** e
            u_e = cp.multiply((money_scale / p["scale"][sel, s]) ** e, powered)
            expr = beta - cp.multiply(beta * kappa_e, cp.inv_pos(kappa_e + u_e))
        parts.append(expr)
        selectors.append(sel)
    if len(parts) == 1:
        return parts[0]
    # Reassemble the group's order: sum of scattered pieces.
    n_g = expo.size
    out = 0
    for sel, expr in zip(selectors, parts):
        scatter = np.zeros((n_g, sel.size))
        scatter[sel, np.arange(sel.size)] = 1.0
        out = out + scatter @ expr
    return out


def build_conic(model: ArrayModel) -> tuple[cp.Problem, dict[str, object]]:
    """The cvxpy problem of ``model`` and a handle dict (variables and rule constraints)."""
    import cvxpy as cp

    n = model.n
    y = cp.Variable(n, name="spend")
    t = cp.Variable(n, name="revenue")
    clv_cells = np.flatnonzero(model.clv_rule_of >= 0)
    a = cp.Variable(max(clv_cells.size, 1), name="acquisition_value")
    a_pos = np.zeros(n, dtype=np.intp)
    a_pos[clv_cells] = np.arange(clv_cells.size)

    constraints: list[cp.Constraint] = [y >= model.lower, y <= model.upper]
    constraints += _hypograph_rows(model.revenue, y, t, np.arange(n), model.money_scale,
                                   np.full(n, 1.0 / model.value_scale))
    constraints += _hypograph_rows(model.acquisitions, y, a, a_pos, model.money_scale,
                                   model.acq_value_coef / model.money_scale)
    budget = cp.sum(y) == model.budget if model.equal_budget else cp.sum(y) <= model.budget
    share_min, share_max = [], []
    for k, c in enumerate(model.share_category):
        total = cp.sum(y[np.flatnonzero(model.category_of == c)])
        share_min.append(total >= model.share_lo[k])
        share_max.append(total <= model.share_hi[k])
    clv_rows = []
    for r in range(model.clv_segment.size):
        ix = np.flatnonzero(model.clv_rule_of == r)
        clv_rows.append(cp.sum(y[ix]) - cp.sum(a[a_pos[ix]]) <= 0)
    objective = cp.Maximize(cp.sum(t) - model.spend_cost * cp.sum(y))
    problem = cp.Problem(objective, constraints + [budget] + share_min + share_max + clv_rows)
    handles = {"y": y, "budget": budget, "share_min": share_min, "share_max": share_max, "clv": clv_rows}
    return problem, handles


def solve_conic(model: ArrayModel) -> RouteResult:
    """Solve ``model`` exactly with Clarabel; the result still needs the solver layer's check."""
    if not supports(model):
        missing = sorted((model.revenue.families() | model.acquisitions.families()) - CONIC_FAMILIES)
        return RouteResult(RouteStatus.ERROR, BACKEND,
                           message=f"families {missing} have no conic form; use the 'highs' backend")
    import cvxpy as cp

    problem, h = build_conic(model)
    try:
        with warnings.catch_warnings():
            # cvxpy warns on OPTIMAL_INACCURATE; the solver layer's certificate is the judge.
            warnings.simplefilter("ignore", UserWarning)
            problem.solve(solver=cp.CLARABEL, **CLARABEL_SETTINGS)
    except cp.error.SolverError as e:
        return RouteResult(RouteStatus.ERROR, BACKEND, message=f"Clarabel failed: {e}")
    status = _status_map().get(problem.status, RouteStatus.ERROR)
    iterations = int(problem.solver_stats.num_iters or 0) if problem.solver_stats else 0
    if status is not RouteStatus.CONVERGED:
        return RouteResult(status, BACKEND, iterations=iterations, message=f"Clarabel status: {problem.status}")
    y = np.clip(np.asarray(h["y"].value, dtype=float), model.lower, model.upper)  # type: ignore[attr-defined]

    def duals(rows: object) -> FloatArray:
        return np.array([float(np.squeeze(c.dual_value)) for c in rows], dtype=float)  # type: ignore[attr-defined]

    mult = Multipliers(
        budget=float(np.squeeze(h["budget"].dual_value)),  # type: ignore[attr-defined]
        share_min=duals(h["share_min"]),
        share_max=duals(h["share_max"]),
        clv=duals(h["clv"]),
    )
    return RouteResult(RouteStatus.CONVERGED, BACKEND, y, mult, iterations)
