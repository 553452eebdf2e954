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

import math
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
            rows += [zg <= line for line in pwl_lines(g.params, f, yg, money_scale)]
            continue
        n_samples = next(iter(g.params.values())).shape[1]
        terms = [sample_expression(g.family, g.params, s, f / n_samples, yg, money_scale, rows)
                 for s in range(n_samples)]
        rows.append(zg <= cp.sum(terms) if len(terms) > 1 else zg <= terms[0])
    return rows


def pwl_lines(p: Mapping[str, FloatArray], w: FloatArray, yg: cp.Expression,
              money_scale: float) -> list[cp.Expression]:
    """The lines ``w * (intercept_k + slope_k * money_scale * yg)`` of a pwl group (its curve is
    their minimum, so ``z <= line`` for every line is its exact hypograph)."""
    import cvxpy as cp

    return [cp.multiply(w * p["intercept"][:, k], 1.0) + cp.multiply(w * p["slope"][:, k] * money_scale, yg)
            for k in range(p["slope"].shape[1])]


def sample_expression(family: str, p: Mapping[str, FloatArray], s: int, w: FloatArray,
                      yg: cp.Expression, money_scale: float,
                      side_constraints: list[cp.Constraint] | None = None) -> cp.Expression:
    """The exact concave expression ``w * f(money_scale * yg; theta_s)`` of posterior sample ``s``.

    ``p``: a parametric group's parameters, each of shape (n_group, S); ``w``: weights of shape
    (n_group,); ``yg``: the group's spend variables (scaled). Every family but ``pwl`` and
    ``logistic`` (not in :data:`CONIC_FAMILIES`).

    ``side_constraints``: where ``power`` and ``hill`` terms put their power-cone constraints
    (one vectorized cone for the whole group, whatever the exponents); the expression is then
    exact only together with them, inside a problem that maximizes it. Without the list, cells
    are grouped by exponent into cvxpy ``power`` atoms (slow when every cell has its own).
    """
    import cvxpy as cp

    if family == "log":
        return cp.multiply(w * p["a"][:, s], cp.log1p(cp.multiply(money_scale / p["b"][:, s], yg)))
    if family == "exp_saturation":
        a = w * p["a"][:, s]
        return a - cp.multiply(a, cp.exp(cp.multiply(-money_scale / p["b"][:, s], yg)))
    if family == "linear":
        return cp.multiply(w * p["a"][:, s] * money_scale, yg)
    if family == "michaelis_menten":
        alpha, lam, scale = w * p["alpha"][:, s], p["lam"][:, s], p["scale"][:, s]
        return _saturating(alpha, lam, cp.multiply(money_scale / scale, yg), side_constraints)
    if family in ("power", "hill"):
        expo = p["p" if family == "power" else "slope"][:, s]
        powered = _powered(yg, expo, side_constraints)
        if family == "power":
            return cp.multiply(w * p["a"][:, s] * money_scale ** expo, powered)
        beta, kappa_e = w * p["beta"][:, s], p["kappa"][:, s] ** expo
        u_e = cp.multiply((money_scale / p["scale"][:, s]) ** expo, powered)
        return _saturating(beta, kappa_e, u_e, side_constraints)
    raise ValueError(f"family {family!r} has no conic form")  # pragma: no cover - supports()


def _saturating(top: FloatArray, half: FloatArray, u: cp.Expression,
                side_constraints: list[cp.Constraint] | None) -> cp.Expression:
    """``top * u / (half + u)`` for ``u >= 0`` (affine when ``side_constraints`` is given).

    The textbook ``top - top * half / (half + u)`` subtracts two nearly equal numbers when the
    curve is far below its saturation (``u << half``, common in bootstrap samples): the conic
    solver's relative accuracy then applies to ``top``, not to the value. With
    ``side_constraints`` it is ``(top / half) * (u - r)`` with ``r >= u^2 / (half + u)`` as
    rotated second-order cones (``||(2u, r - half - u)|| <= r + half + u``), every term of the
    value's own size; ``r`` is pushed down wherever the expression is maximized.
    """
    import cvxpy as cp

    if side_constraints is None:
        return top - cp.multiply(top * half, cp.inv_pos(half + u))
    rate = top / half
    r = cp.Variable(half.size)
    v = half + u
    side_constraints.append(cp.SOC(r + v, cp.vstack([2 * u, r - v]), axis=0))
    return cp.multiply(rate, u - r)


def _powered(yg: cp.Expression, expo: FloatArray, side_constraints: list[cp.Constraint] | None) -> cp.Expression:
    """``yg ** expo`` elementwise (``0 < expo <= 1``) as a concave expression.

    With ``side_constraints``: a variable ``w`` with the power cones ``|w_i| <= yg_i^e_i * 1^(1-e_i)``
    (:class:`cvxpy.PowCone3D` takes a vector of exponents), exact wherever ``w`` is pushed up.
    Without: cvxpy's ``power`` atom (``approx=False``: power cones too) per distinct exponent.
    """
    import cvxpy as cp

    if np.all(expo == 1.0):
        return yg
    if side_constraints is not None:
        # A power cone needs an exponent strictly inside (0, 1); exponent 1 is the identity.
        cone = np.flatnonzero(expo < 1.0)
        if cone.size == expo.size:
            w = cp.Variable(expo.size)
            side_constraints.append(cp.constraints.PowCone3D(yg, np.ones(expo.size), w, expo))
            return w
        w = cp.Variable(cone.size)
        side_constraints.append(cp.constraints.PowCone3D(yg[cone], np.ones(cone.size), w, expo[cone]))
        return _scatter(expo.size, [(cone, w), (np.flatnonzero(expo >= 1.0), yg[np.flatnonzero(expo >= 1.0)])])
    parts, selectors = [], []
    for e in np.unique(expo):
        sel = np.flatnonzero(expo == e)
        parts.append(yg[sel] if e == 1.0 else cp.power(yg[sel], float(e), approx=False))
        selectors.append(sel)
    if len(parts) == 1:
        return parts[0]
    return _scatter(expo.size, list(zip(selectors, parts)))


def _scatter(size: int, pieces: list[tuple[NDArray[np.intp], cp.Expression]]) -> cp.Expression:
    """The vector of length ``size`` holding each piece's values at its positions (the pieces'
    positions partition ``range(size)``): a sum of sparse scatter products."""
    import scipy.sparse as sp

    out: cp.Expression = 0  # type: ignore[assignment]
    for sel, part in pieces:
        if sel.size == 0:
            continue
        scatter = sp.csr_matrix((np.ones(sel.size), (sel, np.arange(sel.size))), shape=(size, sel.size))
        out = out + scatter @ part
    return out


def build_conic(model: ArrayModel) -> tuple[cp.Problem, dict[str, object]]:
    """The cvxpy problem of ``model`` and a handle dict (variables and rule constraints)."""
    import cvxpy as cp

    n = model.n
    y = cp.Variable(n, name="spend")
    t = cp.Variable(n, name="revenue")
    constraints, handles = rule_rows(model, y)
    constraints += _hypograph_rows(model.revenue, y, t, np.arange(n), model.money_scale,
                                   np.full(n, 1.0 / model.value_scale))
    objective = cp.Maximize(cp.sum(t) - model.spend_cost * cp.sum(y))
    return cp.Problem(objective, constraints), handles


def rule_rows(model: ArrayModel, y: cp.Variable) -> tuple[list[cp.Constraint], dict[str, object]]:
    """Every rule of ``model`` on the scaled spend variable ``y`` (shape (n,)): bounds, budget,
    shares and CLV/CAC rows (with the acquisition hypographs they need), and the handle dict
    (``y`` and the rule constraints, for their duals)."""
    import cvxpy as cp

    n = model.n
    clv_cells = np.flatnonzero(model.clv_rule_of >= 0)
    a = cp.Variable(max(clv_cells.size, 1), name="acquisition_value")
    a_pos = np.zeros(n, dtype=np.intp)
    a_pos[clv_cells] = np.arange(clv_cells.size)

    constraints: list[cp.Constraint] = [y >= model.lower, y <= model.upper]
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
    handles = {"y": y, "budget": budget, "share_min": share_min, "share_max": share_max, "clv": clv_rows}
    return constraints + [budget] + share_min + share_max + clv_rows, handles


def solve_conic(model: ArrayModel, time_limit: float = math.inf) -> RouteResult:
    """Solve ``model`` exactly with Clarabel (stopping at ``time_limit`` seconds); the result
    still needs the solver layer's check."""
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
            limit = {"time_limit": float(time_limit)} if math.isfinite(time_limit) else {}
            problem.solve(solver=cp.CLARABEL, **CLARABEL_SETTINGS, **limit)
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
