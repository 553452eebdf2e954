"""The model as a linear program of tangent cuts, refined in HiGHS until the gap is proven.

Each concave curve is replaced by its hypograph variable and tangent half-planes,
``t_i <= r_i(p) + r_i'(p) (y_i - p)``, an *outer* approximation: the LP optimum bounds the true
optimum from above. Each round

1. solves the LP (HiGHS dual simplex, warm-started from the previous basis),
2. evaluates the Lagrangian dual function at the LP's row duals -- a bound anyone can re-check --
   and the LP plan on the exact curves (a lower bound when the plan meets every rule),
3. stops when the two meet to ``gap_tol``; otherwise adds the tangents that cut off the current
   LP point, at the LP plan and at the cells' Lagrangian best responses.

Tangent cuts of the acquisition curves make the CLV/CAC rows a relaxation too, so an LP plan can
break a CLV/CAC rule by the approximation error. Such a plan is never accepted: when the outer
plan is infeasible, an *inner* LP -- the same rows with the acquisition curves replaced by chords
through the points cut so far, which lie below the concave curves -- yields a plan that meets
every rule on the exact curves.

An infeasible LP proves the problem infeasible (the LP is a relaxation).
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import highspy
import numpy as np
from numpy.typing import NDArray

from formulations.lagrangian import Multipliers, dual_bound
from formulations.model import ArrayModel, max_violation
from formulations.result import RouteResult, RouteStatus

FloatArray = NDArray[np.float64]
IntArray = NDArray[np.int32]
_INF = highspy.kHighsInf
BACKEND = "highs-cuts"
#: The refinement stops when the gap has not halved over this many LP solves.
STALL_WINDOW = 40
#: Steepest cut kept (scaled units: revenue or acquisition value per budget).
MAX_SLOPE = 1e6


@dataclass(frozen=True)
class CutOptions:
    """Stopping rules. Tolerances are in scaled units (see :mod:`formulations.model`).

    ``gap_tol``: stop when ``bound - objective <= gap_tol * max(1, |bound|)``;
    ``feas_tol``: largest accepted rule violation, as a fraction of the budget.
    """

    gap_tol: float = 1e-9
    feas_tol: float = 1e-9
    max_iterations: int = 400
    time_limit: float = 60.0
    initial_points: int = 12


def gap_stalled(gaps: list[float]) -> bool:
    """Whether a refinement's gaps (one per LP solve, latest last) have stopped closing: the
    latest is not half of the one :data:`STALL_WINDOW` solves earlier (an infinite gap -- no
    feasible plan yet -- counts as not closing)."""
    return len(gaps) > STALL_WINDOW and not gaps[-1] < 0.5 * gaps[-1 - STALL_WINDOW]


def curve_of(model: ArrayModel, acquisition: bool):  # type: ignore[no-untyped-def]
    """The scaled curve and its derivative: acquisition value, or revenue."""
    return (model.acq_value, model.dacq_value) if acquisition else (model.rev, model.drev)


def tangent_lines(model: ArrayModel, cells: NDArray[np.int64], points: FloatArray,
                  acquisition: bool) -> tuple[NDArray[np.int64], FloatArray, FloatArray]:
    """The tangents of the cells' scaled revenue (or acquisition value) curves at ``points``
    (shape (len(cells),)): ``(cells, slope, intercept)`` of the lines ``intercept + slope y``,
    leaving out points where the slope is infinite (0 spend on a curve steep there)."""
    f, df = curve_of(model, acquisition)
    full = np.zeros(model.n)
    full[cells] = points
    slope = df(full)[cells]
    value = f(full)[cells]
    ok = np.isfinite(slope)
    return cells[ok], slope[ok], value[ok] - slope[ok] * points[ok]


def initial_points(lower: FloatArray, upper: FloatArray, count: int) -> FloatArray:
    """Tangent points per cell, shape (n, count+1): geometric towards the lower bound."""
    fractions = np.concatenate([[0.0], 2.0 ** -np.arange(count - 1, -1, -1)])
    return lower[:, None] + (upper - lower)[:, None] * fractions[None, :]


class TangentLP:
    """The outer (or inner) LP in HiGHS. Columns: y (n), t (n), a (one per CLV cell).

    Rows: budget, share rules, CLV/CAC rules, then cut rows ``t_i - s y_i <= c``. Row duals of a
    maximization in HiGHS are d(objective)/d(row bound), which maps directly onto
    :class:`~formulations.lagrangian.Multipliers`.
    """

    def __init__(self, model: ArrayModel) -> None:
        self.model = model
        n = model.n
        self.clv_cells = np.flatnonzero(model.clv_rule_of >= 0)
        self.acq_col = np.full(n, -1, dtype=np.int64)
        self.acq_col[self.clv_cells] = 2 * n + np.arange(self.clv_cells.size)
        h = highspy.Highs()
        h.setOptionValue("output_flag", False)
        h.setOptionValue("primal_feasibility_tolerance", 1e-10)
        h.setOptionValue("dual_feasibility_tolerance", 1e-10)
        h.setOptionValue("presolve", "off")  # presolve would discard the warm basis at every re-solve
        h.changeObjectiveSense(highspy.ObjSense.kMaximize)
        self.h = h
        rev_cap = model.rev(model.upper)
        acq_cap = model.acq_value(model.upper)[self.clv_cells]
        costs = np.concatenate([np.full(n, -model.spend_cost), np.ones(n), np.zeros(self.clv_cells.size)])
        lower = np.concatenate([model.lower, np.full(n, -_INF), np.full(self.clv_cells.size, -_INF)])
        upper = np.concatenate([model.upper, rev_cap, acq_cap])
        self._add_columns(costs, lower, upper)
        self._add_structural_rows()

    def _add_columns(self, costs: FloatArray, lower: FloatArray, upper: FloatArray) -> None:
        k = costs.size
        self.h.addCols(k, costs, lower, upper, 0, np.zeros(k, np.int32), np.zeros(0, np.int32), np.zeros(0))

    def _add_rows(self, lo: FloatArray, hi: FloatArray, rows: list[tuple[NDArray[np.int64], FloatArray]]) -> None:
        starts = np.cumsum([0] + [len(ix) for ix, _ in rows[:-1]]).astype(np.int32)
        index = np.concatenate([ix for ix, _ in rows]).astype(np.int32)
        value = np.concatenate([v for _, v in rows]).astype(np.float64)
        self.h.addRows(len(rows), lo, hi, index.size, starts, index, value)

    def _add_structural_rows(self) -> None:
        m = self.model
        n = m.n
        budget_lo = m.budget if m.equal_budget else -_INF
        rows = [(np.arange(n), np.ones(n))]
        lo, hi = [budget_lo], [m.budget]
        for k, c in enumerate(m.share_category):
            ix = np.flatnonzero(m.category_of == c)
            rows.append((ix, np.ones(ix.size)))
            lo.append(m.share_lo[k])
            hi.append(m.share_hi[k])
        for r in range(m.clv_segment.size):
            ix = np.flatnonzero(m.clv_rule_of == r)
            rows.append((np.concatenate([ix, self.acq_col[ix]]), np.concatenate([np.ones(ix.size), -np.ones(ix.size)])))
            lo.append(-_INF)
            hi.append(0.0)
        self.n_structural = len(rows)
        self._add_rows(np.array(lo), np.array(hi), rows)

    def add_lines(self, cells: NDArray[np.int64], slope: FloatArray, intercept: FloatArray, acquisition: bool) -> None:
        """Add rows ``z_i - slope * y_i <= intercept`` (z = t for revenue, a for acquisition value).

        Lines steeper than :data:`MAX_SLOPE` (tangents a hair from 0 spend on a curve whose slope
        is infinite there) are left out: the LP stays a relaxation without them, and such rows
        make the simplex method lose its footing."""
        keep = np.abs(slope) <= MAX_SLOPE
        if not keep.all():
            cells, slope, intercept = cells[keep], slope[keep], intercept[keep]
        if cells.size == 0:
            return
        hyp = self.acq_col[cells] if acquisition else self.model.n + cells
        k = cells.size
        # Rows are multiplied by n: each cell's hypograph is worth ~1/n of the objective, and an
        # unscaled row violated by less than HiGHS's smallest feasibility tolerance (1e-10) would
        # count as satisfied, stalling the gap at ~n * 1e-11.
        w = float(self.model.n)
        starts = (2 * np.arange(k)).astype(np.int32)
        index = np.column_stack([hyp, cells]).ravel().astype(np.int32)
        value = (w * np.column_stack([np.ones(k), -slope])).ravel()
        self.h.addRows(k, np.full(k, -_INF), w * intercept.astype(np.float64), index.size, starts, index, value)

    def add_tangents(self, cells: NDArray[np.int64], points: FloatArray, acquisition: bool) -> None:
        """Tangent rows of the cells' revenue (or acquisition value) curves at ``points``."""
        self.add_lines(*tangent_lines(self.model, cells, points, acquisition), acquisition)


    def solve(self) -> tuple[str, FloatArray | None, FloatArray | None, Multipliers | None]:
        """Run HiGHS. Returns (status, y, hypograph values t, multipliers); status 'optimal',
        'infeasible' or a HiGHS status string."""
        self.h.run()
        status = self.h.getModelStatus()
        if status not in (highspy.HighsModelStatus.kOptimal, highspy.HighsModelStatus.kInfeasible):
            # The warm basis lost its footing (steep cuts, near-parallel rows): once more from cold.
            self.h.clearSolver()
            self.h.run()
            status = self.h.getModelStatus()
        if status == highspy.HighsModelStatus.kInfeasible:
            return "infeasible", None, None, None
        if status != highspy.HighsModelStatus.kOptimal:
            return self.h.modelStatusToString(status), None, None, None
        sol = self.h.getSolution()
        col = np.asarray(sol.col_value)
        dual = np.asarray(sol.row_dual)
        m = self.model
        n, k = m.n, m.share_category.size
        share = dual[1 : 1 + k]
        mult = Multipliers(
            budget=float(dual[0]),
            share_min=np.maximum(-share, 0.0),
            share_max=np.maximum(share, 0.0),
            clv=np.maximum(dual[1 + k : 1 + k + m.clv_segment.size], 0.0),
        )
        return "optimal", col[:n].copy(), col, mult


def _padded(points: list[list[float]], cells: NDArray[np.int64], fill: FloatArray) -> FloatArray:
    """Points of ``cells`` as a (len(cells), P) array padded with ``fill`` (one value per cell)."""
    width = max((len(points[i]) for i in cells), default=0) + 1
    out = np.repeat(fill[cells][:, None], width, axis=1)
    for row, i in enumerate(cells):
        out[row, : len(points[i])] = points[i]
    return out


def _inner_plan(model: ArrayModel, rev_points: list[list[float]], acq_points: list[list[float]]) -> FloatArray | None:
    """A plan that meets every rule on the exact curves, from the LP with chord-approximated
    acquisition curves (chords lie below a concave curve). None if that LP is infeasible."""
    lp = TangentLP(model)
    n = model.n
    every = np.arange(n)
    rev = _padded(rev_points, every, model.upper)
    lp.add_tangents(np.repeat(every, rev.shape[1]), rev.ravel(), acquisition=False)
    clv = lp.clv_cells
    if clv.size:
        acq = np.hstack([_padded(acq_points, clv, model.upper), model.lower[clv][:, None]])
        acq.sort(axis=1)
        values = np.empty_like(acq)
        full = model.lower.copy()
        for j in range(acq.shape[1]):
            full[clv] = acq[:, j]
            values[:, j] = model.acq_value(full)[clv]
        width = np.diff(acq, axis=1)
        distinct = width > 1e-15
        slope = np.where(distinct, np.diff(values, axis=1) / np.where(distinct, width, 1.0), 0.0)
        intercept = values[:, :-1] - slope * acq[:, :-1]
        rows, cols = np.nonzero(distinct)
        lp.add_lines(clv[rows], slope[rows, cols], intercept[rows, cols], acquisition=True)
    status, y, _, _ = lp.solve()
    return y if status == "optimal" else None


def solve_cuts(model: ArrayModel, options: CutOptions | None = None) -> RouteResult:
    """Solve ``model`` by tangent-cut refinement in HiGHS; see the module docstring."""
    opts = options or CutOptions()
    start = time.perf_counter()
    lp = TangentLP(model)
    n = model.n
    grid = initial_points(model.lower, model.upper, opts.initial_points)
    cells = np.repeat(np.arange(n), grid.shape[1])
    lp.add_tangents(cells, grid.ravel(), acquisition=False)
    lp.add_tangents(np.repeat(lp.clv_cells, grid.shape[1]), grid[lp.clv_cells].ravel(), acquisition=True)
    rev_points = [list(row) for row in grid]
    acq_points = [list(row) if model.clv_rule_of[i] >= 0 else [] for i, row in enumerate(grid)]

    best_y: FloatArray | None = None
    best_obj = -np.inf
    best_bound = np.inf
    best_mult: Multipliers | None = None
    last_argmax: FloatArray | None = None
    tried_inner_at = -1
    gaps: list[float] = []
    for it in range(1, opts.max_iterations + 1):
        status, y, cols, mult = lp.solve()
        if status == "infeasible":
            return RouteResult(RouteStatus.INFEASIBLE, BACKEND, iterations=it,
                               message="the linear relaxation of the rules has no solution")
        if status != "optimal" or y is None or cols is None or mult is None:
            return RouteResult(RouteStatus.ERROR, BACKEND, best_y, best_mult, it, f"HiGHS stopped: {status}")
        y = np.clip(y, model.lower, model.upper)
        db = dual_bound(model, mult, start=last_argmax)
        last_argmax = db.argmax
        if db.value < best_bound:
            best_bound, best_mult = db.value, db.multipliers
        if max_violation(model, y) <= opts.feas_tol:
            obj = model.objective(y)
            if obj > best_obj:
                best_obj, best_y = obj, y
        tol = opts.gap_tol * max(1.0, abs(best_bound))
        if best_bound - best_obj <= tol:
            return RouteResult(RouteStatus.CONVERGED, BACKEND, best_y, best_mult, it)

        # Converged but for CLV/CAC feasibility of the outer plan: ask the inner LP for a plan.
        outer_gap = best_bound - model.objective(y)
        if lp.clv_cells.size and outer_gap <= tol and tried_inner_at < it - 5:
            tried_inner_at = it
            inner = _inner_plan(model, rev_points, acq_points)
            if inner is not None:
                inner = np.clip(inner, model.lower, model.upper)
                if max_violation(model, inner) <= opts.feas_tol and model.objective(inner) > best_obj:
                    best_obj, best_y = model.objective(inner), inner
                    if best_bound - best_obj <= tol:
                        return RouteResult(RouteStatus.CONVERGED, BACKEND, best_y, best_mult, it)

        gaps.append(best_bound - best_obj)
        if gap_stalled(gaps):
            return RouteResult(RouteStatus.ITERATION_LIMIT, BACKEND, best_y, best_mult, it,
                               f"gap {best_bound - best_obj:.3g} did not halve in {STALL_WINDOW} LP solves")
        if time.perf_counter() - start > opts.time_limit:
            return RouteResult(RouteStatus.TIME_LIMIT, BACKEND, best_y, best_mult, it,
                               f"gap {best_bound - best_obj:.3g} after {opts.time_limit:g} s")
        added = _add_violated_cuts(lp, cols, np.stack([y, db.argmax]), rev_points, acq_points)
        if added == 0:
            return RouteResult(RouteStatus.ERROR, BACKEND, best_y, best_mult, it,
                               f"no cut improves the LP; gap stalled at {best_bound - best_obj:.3g}")
    return RouteResult(RouteStatus.ITERATION_LIMIT, BACKEND, best_y, best_mult, opts.max_iterations,
                       f"gap {best_bound - best_obj:.3g} after {opts.max_iterations} LP solves")


def _add_violated_cuts(lp: TangentLP, cols: FloatArray, candidates: FloatArray,
                       rev_points: list[list[float]], acq_points: list[list[float]]) -> int:
    """Add the tangents at each candidate plan (rows of ``candidates``) that cut off the LP point."""
    m = lp.model
    n = m.n
    y_lp, t_lp = np.clip(cols[:n], m.lower, m.upper), cols[n : 2 * n]
    a_lp = np.zeros(n)
    a_lp[lp.clv_cells] = cols[lp.acq_col[lp.clv_cells]]
    added = 0
    for acquisition, z_lp, store in ((False, t_lp, rev_points), (True, a_lp, acq_points)):
        f, df = curve_of(lp.model, acquisition)
        scope = lp.clv_cells if acquisition else np.arange(n)
        for p in candidates:
            slope, value = df(p), f(p)
            with np.errstate(invalid="ignore"):  # inf slope at 0 times 0: no cut there anyway
                cut_at_lp = value + slope * (y_lp - p)
            violated = np.zeros(n, dtype=bool)
            violated[scope] = z_lp[scope] > cut_at_lp[scope] + 1e-13 * (1.0 + np.abs(z_lp[scope]))
            violated &= np.isfinite(slope)
            ix = np.flatnonzero(violated)
            if ix.size:
                lp.add_lines(ix, slope[ix], value[ix] - slope[ix] * p[ix], acquisition)
                for i in ix:
                    store[i].append(float(p[i]))
                added += ix.size
        added += _refine_towards_lower_bound(lp, y_lp, z_lp, scope, acquisition, store)
    return added


def _refine_towards_lower_bound(lp: TangentLP, y_lp: FloatArray, z_lp: FloatArray, scope: NDArray[np.int64],
                                acquisition: bool, store: list[list[float]]) -> int:
    """Cuts for cells the LP parks at their lower bound with an overestimated value there.

    Where the slope at the lower bound is infinite (power, hill with slope < 1) no tangent touches
    the curve at the bound, and every finite tangent overestimates it; a tangent closer to the
    bound (1/16 of the way from the bound to the nearest point so far) shrinks the overestimate
    geometrically until the LP moves the cell off its bound.
    """
    m = lp.model
    f, df = curve_of(lp.model, acquisition)
    at_lower = np.zeros(m.n, dtype=bool)
    at_lower[scope] = y_lp[scope] <= m.lower[scope] + 1e-15
    overestimated = at_lower & (z_lp > f(m.lower) + 1e-13 * (1.0 + np.abs(z_lp))) & ~np.isfinite(df(m.lower))
    ix = np.flatnonzero(overestimated)
    if ix.size == 0:
        return 0
    nearest = np.array([min((q for q in store[i] if q > m.lower[i]), default=m.upper[i]) for i in ix])
    points = np.zeros(m.n)
    points[ix] = m.lower[ix] + (nearest - m.lower[ix]) / 16.0
    lp.add_tangents(ix, points[ix], acquisition)
    for i in ix:
        store[i].append(float(points[i]))
    return int(ix.size)
