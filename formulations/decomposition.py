"""Exact Lagrangian decomposition: the fast route for the standard structure.

The dual function ``g(lam, nu, mu)`` of :mod:`formulations.lagrangian` separates into one
maximization per cell, solved for all cells at once (:func:`~formulations.lagrangian.respond`,
vectorized safeguarded Newton). This route minimizes ``g`` over the few multipliers -- the budget
price ``lam``, one net price ``nu_k`` per category share rule (``> 0``: its maximum binds,
``< 0``: its minimum binds) and one ``mu_r >= 0`` per CLV/CAC rule -- by an active-set Newton
method:

- on the rules currently taken as binding, Newton steps on ``g``; the Hessian is
  ``H = sum_i a_i a_i^T / D_i`` over interior cells, with ``a_i = (1, 1, 1 - v_i')`` on the
  cell's budget, share and CLV/CAC coordinates and ``D_i = -(r_i'' + mu v_i'')`` its curvature,
  assembled with one ``bincount`` (no loop over cells); steps are damped by a line search;
- once the binding rows hold to 1e-13 of the budget, rules that the plan breaks join the set and
  rules whose multiplier reached zero leave it; the method stops when nothing changes.

At the end the cells' best responses meet every binding rule exactly and every other rule with
slack, so the plan is feasible and the dual bound equals its objective (strong duality): the
solver layer's certificate proves it. Curves need curvature (no ``linear`` or ``pwl`` cells;
those go to the other routes). If the method does not settle, it says so (``ERROR``) and
``backend="auto"`` moves on to the next route.
"""

from __future__ import annotations

import functools
import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
from numpy.typing import NDArray

from forecasting.curves import PWL
from formulations.lagrangian import Multipliers, Responses, respond
from formulations.model import ArrayModel
from formulations.result import RouteResult, RouteStatus

BACKEND = "decomposition"
FloatArray = NDArray[np.float64]
_FLAT = frozenset({PWL, "linear"})
_TOL = 1e-13        # binding rows hold to this fraction of the budget
_MAX_ROUNDS = 100
_STALL_ROUNDS = 15  # rounds without halving the binding residuals before giving up
_EFFORT_EVALUATIONS = 100  # give up after this many times the first dual evaluation's time ...
_MIN_EFFORT_SECONDS = 0.3  # ... but never before this


def supports(model: ArrayModel) -> bool:
    """Every revenue curve must be smooth and curved (no linear or pwl revenue, no power curve
    with ``p = 1``): its curvature sizes the Newton steps. Acquisition curves may be of any family."""
    return not (model.revenue.families() & _FLAT) and not model.revenue.has_straight_curves()


@dataclass
class _State:
    """Multipliers and which rules are taken as binding (mutable during the search)."""

    lam: float
    nu: FloatArray                 # (k,) net share price
    mu: FloatArray                 # (m,) CLV/CAC price
    lam_on: bool
    side: NDArray[np.int8]         # (k,) 0 free, +1 maximum binds, -1 minimum binds
    mu_on: NDArray[np.bool_]       # (m,)
    y: FloatArray | None = field(default=None)

    def copy(self) -> _State:
        return _State(self.lam, self.nu.copy(), self.mu.copy(), self.lam_on, self.side.copy(), self.mu_on.copy(), self.y)


class _Dual:
    """Evaluates ``g``, its gradient and Hessian on the binding coordinates for one model."""

    def __init__(self, model: ArrayModel) -> None:
        self.m = model
        k, r = model.share_category.size, model.clv_segment.size
        self.k, self.r = k, r
        self.rule_of_category = np.full(len(model.categories), -1, dtype=np.intp)
        self.rule_of_category[model.share_category] = np.arange(k)
        self.share_of_cell = self.rule_of_category[model.category_of]
        self.clv_of_cell = model.clv_rule_of

    def prices(self, st: _State) -> tuple[FloatArray, FloatArray]:
        m = self.m
        nu_cell = np.where(self.share_of_cell >= 0, st.nu[np.maximum(self.share_of_cell, 0)] if self.k else 0.0, 0.0)
        mu_cell = np.where(self.clv_of_cell >= 0, st.mu[np.maximum(self.clv_of_cell, 0)] if self.r else 0.0, 0.0)
        return m.spend_cost + st.lam + nu_cell + mu_cell, mu_cell

    def evaluate(self, st: _State, warm: Responses | None = None) -> tuple[Responses, Callable[[], float],
                                                                             dict[str, FloatArray]]:
        """Best responses, ``g`` (a function: computed on first call, as it needs every revenue
        curve's value) and every row's residual (gradient of ``g``) at ``st`` (``warm``: the
        responses at ``st.y`` of an earlier evaluation, see :func:`respond`)."""
        m = self.m
        price, weight = self.prices(st)
        resp = respond(m, price, weight, st.y, warm=warm)
        cat = m.category_sums(resp.y)[m.share_category]
        bound_k = np.where(st.nu >= 0, m.share_hi, m.share_lo)
        constant = st.lam * m.budget + float(st.nu @ bound_k)
        g = functools.cache(lambda: float(resp.upper.sum()) + constant)
        acq = resp.acq
        has = self.clv_of_cell >= 0
        clv_slack = np.bincount(self.clv_of_cell[has], weights=(acq - resp.y)[has], minlength=self.r)
        residual = {
            "budget": np.array([m.budget - resp.y.sum()]),
            "share_hi": m.share_hi - cat,
            "share_lo": m.share_lo - cat,
            "clv": clv_slack,
        }
        return resp, g, residual

    def coordinates(self, st: _State) -> tuple[NDArray[np.intp], NDArray[np.intp], NDArray[np.intp], int]:
        """Column of each cell's budget / share / CLV coordinate in the active system (-1: none)."""
        n = self.m.n
        col = 0
        lam_col = np.full(n, -1, dtype=np.intp)
        if st.lam_on:
            lam_col[:] = 0
            col = 1
        share_cols = np.full(self.k, -1, dtype=np.intp)
        on = np.flatnonzero(st.side != 0)
        share_cols[on] = col + np.arange(on.size)
        col += on.size
        clv_cols = np.full(self.r, -1, dtype=np.intp)
        act = np.flatnonzero(st.mu_on)
        clv_cols[act] = col + np.arange(act.size)
        col += act.size
        share_col = np.where(self.share_of_cell >= 0, share_cols[np.maximum(self.share_of_cell, 0)] if self.k else -1, -1)
        clv_col = np.where(self.clv_of_cell >= 0, clv_cols[np.maximum(self.clv_of_cell, 0)] if self.r else -1, -1)
        return lam_col, share_col, clv_col, col

    def active_gradient(self, st: _State, res: dict[str, FloatArray]) -> FloatArray:
        parts = [res["budget"]] if st.lam_on else []
        on = st.side != 0
        parts.append(np.where(st.side[on] > 0, res["share_hi"][on], res["share_lo"][on]))
        parts.append(res["clv"][st.mu_on])
        return np.concatenate(parts) if parts else np.zeros(0)

    def hessian(self, st: _State, resp: Responses) -> _Hessian:
        """The Hessian of ``g`` on the binding coordinates, by blocks (see :class:`_Hessian`).

        Each cell contributes ``a a^T / curvature`` with ``a`` its coefficients on its budget,
        share and CLV/CAC coordinates (1, 1, ``1 - v'``); a cell is in one segment, so the CLV/CAC
        block is diagonal and never formed densely (there can be tens of thousands of rules).
        """
        lam_col, share_col, clv_col, d = self.coordinates(st)
        n_core = int(st.lam_on) + int(np.count_nonzero(st.side))
        good = resp.interior & (resp.curvature > 0) & np.isfinite(resp.curvature)
        inv = np.zeros(self.m.n)
        inv[good] = 1.0 / resp.curvature[good]
        clv_coef = np.zeros(self.m.n)
        clv_coef[good] = 1.0 - resp.dacq[good]  # dacq may be inf at 0 spend, where inv is 0
        core = np.full(n_core * n_core, 0.0)
        coupling = np.zeros(n_core * (d - n_core))
        diag = np.zeros(d - n_core)
        has_clv = (clv_col >= 0) & good
        k = clv_col - n_core
        for a in (lam_col, share_col):
            on_a = (a >= 0) & good
            for b in (lam_col, share_col):
                ok = on_a & (b >= 0)
                if ok.any():
                    core += np.bincount(a[ok] * n_core + b[ok], weights=inv[ok], minlength=n_core * n_core)
            ok = on_a & has_clv
            if ok.any():
                coupling += np.bincount(a[ok] * (d - n_core) + k[ok], weights=(clv_coef * inv)[ok],
                                        minlength=coupling.size)
        if has_clv.any():
            diag += np.bincount(k[has_clv], weights=(clv_coef**2 * inv)[has_clv], minlength=diag.size)
        return _Hessian(core.reshape(n_core, n_core), coupling.reshape(n_core, d - n_core), diag)


@dataclass(frozen=True)
class _Hessian:
    """``[[core, coupling], [coupling^T, diag(clv)]]``: ``core`` (budget and share coordinates,
    ``n_core x n_core``), ``coupling`` (``n_core x r``), ``clv`` (the diagonal CLV/CAC block, ``r``)."""

    core: FloatArray
    coupling: FloatArray
    clv: FloatArray


def _apply_step(st: _State, step: FloatArray, t: float, equal_budget: bool) -> _State:
    new = st.copy()
    pos = 0
    if st.lam_on:
        new.lam = st.lam + t * step[0]
        if not equal_budget:
            new.lam = max(new.lam, 0.0)
        pos = 1
    on = np.flatnonzero(st.side != 0)
    nu = st.nu[on] + t * step[pos : pos + on.size]
    new.nu[on] = np.where(st.side[on] > 0, np.maximum(nu, 0.0), np.minimum(nu, 0.0))
    pos += on.size
    act = np.flatnonzero(st.mu_on)
    new.mu[act] = np.maximum(st.mu[act] + t * step[pos : pos + act.size], 0.0)
    return new


def _update_active_set(st: _State, res: dict[str, FloatArray], equal_budget: bool) -> bool:
    """Add broken rules, drop rules whose multiplier is zero while they hold; True if changed."""
    changed = False
    tol = 10 * _TOL
    if not equal_budget and not st.lam_on and res["budget"][0] < -tol:
        st.lam_on, changed = True, True
    if not equal_budget and st.lam_on and st.lam <= 0.0 and res["budget"][0] >= -tol:
        st.lam_on, st.lam, changed = False, 0.0, True
    over = (st.side == 0) & (res["share_hi"] < -tol)
    under = (st.side == 0) & (res["share_lo"] > tol)
    if over.any() or under.any():
        st.side[over], st.side[under], changed = 1, -1, True
    slack_ok = ((st.side > 0) & (res["share_hi"] >= -tol)) | ((st.side < 0) & (res["share_lo"] <= tol))
    release = (st.side != 0) & (st.nu == 0.0) & slack_ok
    if release.any():
        st.side[release], changed = 0, True
    broken = ~st.mu_on & (res["clv"] < -tol)
    if broken.any():
        st.mu_on[broken], changed = True, True
    free = st.mu_on & (st.mu == 0.0) & (res["clv"] >= -tol)
    if free.any():
        st.mu_on[free], changed = False, True
    return changed


def _initial_state(model: ArrayModel) -> _State:
    k, r = model.share_category.size, model.clv_segment.size
    even = np.clip(np.full(model.n, model.budget / model.n), model.lower, model.upper)
    marginal = model.drev(even) - model.spend_cost
    finite = marginal[np.isfinite(marginal)]
    lam = float(np.median(finite)) if finite.size else 1.0
    if not model.equal_budget:
        lam = 0.0
    return _State(lam, np.zeros(k), np.zeros(r), model.equal_budget, np.zeros(k, np.int8), np.zeros(r, bool))


def _warm_state(model: ArrayModel, start: RouteResult) -> _State:
    """Start from another budget's answer: its multipliers, binding rules and plan."""
    mult = start.multipliers
    assert mult is not None
    nu = mult.share_max - mult.share_min
    lam_on = model.equal_budget or mult.budget > 0
    return _State(float(mult.budget) if lam_on else 0.0, nu.copy(), mult.clv.copy(), lam_on,
                  np.sign(nu).astype(np.int8), mult.clv > 0, None if start.y is None else start.y.copy())


def solve_decomposition(model: ArrayModel, max_rounds: int = _MAX_ROUNDS,
                        start: RouteResult | None = None, time_limit: float = math.inf) -> RouteResult:
    """Solve ``model`` by the active-set dual Newton method (see the module docstring).

    ``start``: a converged result of a nearby model in the same units (e.g. the previous budget
    of a sweep, :meth:`ArrayModel.rebudget`); its multipliers and plan are the starting point.
    Gives up (``ERROR``, so that ``auto`` moves on) when the binding residuals stop shrinking for
    :data:`_STALL_ROUNDS` rounds -- nonsmooth or degenerate duals, where another route does
    better -- and at ``time_limit`` seconds (``TIME_LIMIT``).
    """
    if not supports(model):
        return RouteResult(RouteStatus.ERROR, BACKEND, message="linear or pwl curves need the 'highs' or 'clarabel' backend")
    clock = time.perf_counter()
    best_norm, stalled = math.inf, 0
    dual = _Dual(model)
    warm = start is not None and start.multipliers is not None and start.status is RouteStatus.CONVERGED
    st = _warm_state(model, start) if warm else _initial_state(model)  # type: ignore[arg-type]
    resp, g, res = dual.evaluate(st)
    # Effort budget: converging solves take a few dozen dual evaluations; a dual that needs far
    # more (curves flat near 0 spend, nonsmooth acquisition curves) is handed to another route.
    effort = max(_MIN_EFFORT_SECONDS, _EFFORT_EVALUATIONS * (time.perf_counter() - clock))
    time_limit = min(time_limit, effort)
    st.y = resp.y
    for rounds in range(1, max_rounds + 1):
        # Rules join the binding set as soon as the plan breaks them (at multiplier 0, so g and
        # the plan are unchanged) and leave it when their multiplier reaches 0 while they hold.
        changed = _update_active_set(st, res, model.equal_budget)
        grad = dual.active_gradient(st, res)
        if grad.size == 0 or np.max(np.abs(grad)) <= _TOL:
            if not changed:
                return RouteResult(RouteStatus.CONVERGED, BACKEND, resp.y, _multipliers(st), rounds)
            continue
        step = -_solve_newton(dual.hessian(st, resp), grad)
        # Newton on g (convex): accept a step that lowers g or shrinks the binding residuals.
        norm = float(np.max(np.abs(grad)))
        if changed or norm < 0.5 * best_norm:
            best_norm, stalled = norm, 0
        else:
            stalled += 1
            if stalled >= _STALL_ROUNDS:
                return RouteResult(RouteStatus.ERROR, BACKEND, None, _multipliers(st), rounds,
                                   f"the dual Newton method stalled (binding rules held only to {norm:.2g} "
                                   f"of the budget after {rounds} rounds)")
        if time.perf_counter() - clock > time_limit:
            return RouteResult(RouteStatus.TIME_LIMIT, BACKEND, None, _multipliers(st), rounds,
                               f"stopped after {time_limit:.3g} s ({rounds} rounds), the route's time or effort limit")
        t = 1.0
        for _ in range(30):
            trial = _apply_step(st, step, t, model.equal_budget)
            trial.y = resp.y
            t_resp, t_g, t_res = dual.evaluate(trial, warm=resp)
            t_norm = float(np.max(np.abs(dual.active_gradient(trial, t_res)), initial=0.0))
            if t_norm <= 0.5 * norm or t_g() <= g() - 1e-4 * t * abs(float(grad @ step)):
                break
            t *= 0.5
        st, resp, g, res = trial, t_resp, t_g, t_res
        st.y = resp.y
    return RouteResult(RouteStatus.ITERATION_LIMIT, BACKEND, None, _multipliers(st), max_rounds,
                       f"the dual Newton method did not settle in {max_rounds} rounds")


def _solve_newton(h: _Hessian, grad: FloatArray) -> FloatArray:
    """Solve ``H x = grad`` by a Schur complement on the budget and share coordinates:
    O(n_core^2 r) for ``r`` binding CLV/CAC rules, whose block of H is diagonal.
    A tiny ridge keeps coordinates whose cells all sit at a bound from making H singular."""
    n_core = h.core.shape[0]
    top = max(float(np.max(np.diag(h.core), initial=0.0)), float(np.max(h.clv, initial=0.0)))
    ridge = 1e-12 * (top if top > 0 else 1.0)
    core_diag = np.diag(h.core)
    a = h.core + np.diag(np.where(core_diag > 0, ridge, 1.0))
    d = h.clv + np.where(h.clv > 0, ridge, 1.0)
    b = h.coupling
    g_core, g_clv = grad[:n_core], grad[n_core:]
    b_over_d = b / d
    try:
        x_core = np.linalg.solve(a - b_over_d @ b.T, g_core - b_over_d @ g_clv) if n_core else np.zeros(0)
    except np.linalg.LinAlgError:
        x_core = g_core
    return np.concatenate([x_core, (g_clv - b.T @ x_core) / d])


def _multipliers(st: _State) -> Multipliers:
    return Multipliers(st.lam, np.maximum(-st.nu, 0.0), np.maximum(st.nu, 0.0), st.mu.copy())
