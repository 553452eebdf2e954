"""The model as a Pyomo ``ConcreteModel`` (exact NLP or tangent LP) and a HiGHS route through it.

:func:`build_pyomo_model` turns an :class:`~formulations.model.ArrayModel` into a labelled Pyomo
model that users can extend with their own rules and hand to any Pyomo solver:

- sets ``cells`` (named ``"category/segment"``, in the array model's order), ``categories``,
  ``segments``, ``cells_in_category[c]``, ``cells_in_segment[s]``, ``share_rules`` (categories
  with a share rule), ``clv_rules`` (segments with a CLV/CAC rule), ``clv_cells``;
- variables ``spend[i]`` (scaled, bounded by the cell bounds), ``revenue[i]`` (hypograph of the
  scaled revenue curve) and ``acq_value[i]`` for ``i in clv_cells`` (hypograph of the scaled
  acquisition value ``v_i``, see :mod:`formulations.model`);
- constraints ``budget``, ``share_min[c]``, ``share_max[c]``, ``clv_cac[s]`` (``sum spend -
  sum acq_value <= 0``), and the hypographs ``revenue_curve`` / ``acq_curve``; objective
  ``total`` (maximize ``sum revenue - spend_cost * sum spend``).

With ``curves="exact"`` the hypographs are the curves' exact expressions (``log``, ``exp``,
powers, ``tanh``; posterior curves as the mean over samples), indexed by ``(cell, piece)`` with
piece 0 for smooth curves and one piece per line for ``pwl`` curves (min of lines): an NLP for
Ipopt or another NLP solver. ``power`` and ``hill`` curves with exponent < 1 have an infinite
slope at zero spend; start an NLP solve from an interior point (see :func:`set_plan`). With
``curves="tangents"`` the hypographs are ``ConstraintList`` s of outer tangent lines (each row
multiplied by the number of cells, see :func:`add_lines`; ``pwl`` and ``linear`` curves get
their exact lines): an LP whose optimum bounds the true optimum from above.

Units: everything is scaled as in :mod:`formulations.model`. Money spent is ``spend *
money_scale``, predicted revenue is ``revenue * value_scale`` (objective likewise), and a row
dual converts to money per money as ``dual * value_scale / money_scale`` (``dual_to_money``);
the three factors are attached to the model as Params of those names. For duals from another
solver, declare ``pm.dual = pyo.Suffix(direction=pyo.Suffix.IMPORT)`` (sign conventions are the
solver's; :func:`solve_pyomo` maps HiGHS's onto :class:`~formulations.lagrangian.Multipliers`).

:func:`solve_pyomo` is the Pyomo analogue of :mod:`formulations.cuts`: the tangent LP is solved
with HiGHS through Pyomo's persistent interface (``pyomo.contrib.solver``), refined with tangent
cuts at the LP plan and at the Lagrangian best responses until the Lagrangian bound from the LP's
row duals meets the exact objective of a plan that meets every rule. No inner (chord) LP is used:
a plan that breaks a CLV/CAC rule by more than ``feas_tol`` through the outer approximation is
never accepted, and the tangents added at it shrink the violation on the next round.
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from typing import Literal

import numpy as np
import pyomo.environ as pyo
from numpy.typing import NDArray
from pyomo.contrib.solver.common.results import TerminationCondition
from pyomo.contrib.solver.solvers.highs import Highs
from pyomo.core.base.constraint import ConstraintData

from forecasting.curves import PWL, CurveBatch
from formulations.cuts import STALL_WINDOW, curve_of, gap_stalled, initial_points
from formulations.lagrangian import Multipliers, dual_bound
from formulations.model import ArrayModel, max_violation
from formulations.result import RouteResult, RouteStatus

FloatArray = NDArray[np.float64]
BACKEND = "pyomo-highs"
HIGHS_OPTIONS: Mapping[str, float | bool] = {
    "output_flag": False,
    "primal_feasibility_tolerance": 1e-10,
    "dual_feasibility_tolerance": 1e-10,
}
_EXACT_LINES = frozenset({PWL, "linear"})  # families whose hypograph is a finite set of lines


def cell_names(model: ArrayModel) -> list[str]:
    """The Pyomo labels of the cells, ``"category/segment"``, in the array model's order.

    Raises ``ValueError`` if two cells get the same label (a ``/`` inside a name can do that).
    """
    names = [f"{model.categories[c]}/{model.segments[s]}" for c, s in zip(model.category_of, model.segment_of)]
    if len(set(names)) != len(names):
        raise ValueError("cell labels 'category/segment' are ambiguous; avoid '/' in category and segment names")
    return names


def _smooth_term(family: str, p: Mapping[str, float], y: pyo.Var, ms: float) -> object:
    """One sample's curve at spend ``ms * y`` (money units) as a Pyomo expression."""
    if family == "log":
        return p["a"] * pyo.log(1.0 + (ms / p["b"]) * y)
    if family == "exp_saturation":
        return p["a"] * (1.0 - pyo.exp(-(ms / p["b"]) * y))
    if family == "power":
        return p["a"] * ms * y if p["p"] == 1.0 else (p["a"] * ms ** p["p"]) * y ** p["p"]
    if family == "linear":
        return (p["a"] * ms) * y
    u = (ms / p["scale"]) * y
    if family == "michaelis_menten":
        return p["alpha"] * u / (p["lam"] + u)
    if family == "logistic":
        return p["beta"] * pyo.tanh((p["lam"] / 2.0) * u)
    if family == "hill":
        s = p["slope"]
        return p["beta"] * u / (p["kappa"] + u) if s == 1.0 else p["beta"] * u**s / (p["kappa"] ** s + u**s)
    raise ValueError(f"no Pyomo expression for curve family {family!r}")


def _lines(family: str, p: Mapping[str, FloatArray], j: int, ms: float, factor: float) -> list[tuple[float, float]]:
    """``(slope, intercept)`` in scaled units of the exact lines of member ``j`` of a ``pwl`` or
    ``linear`` curve group (``p``: the group's parameter arrays), output multiplied by ``factor``."""
    if family == PWL:
        return [(float(factor * s * ms), float(factor * b)) for s, b in zip(p["slope"][j], p["intercept"][j])]
    return [(float(factor * ms * np.mean(p["a"][j])), 0.0)]


def _exact_rows(batch: CurveBatch, names: Sequence[str], z: pyo.Var, y: pyo.Var, ms: float,
                factor: FloatArray) -> dict[tuple[str, int], object]:
    """Exact hypograph rows ``z_i <= factor_i * f_i(ms * y_i)`` keyed by (cell, piece)."""
    rows: dict[tuple[str, int], object] = {}
    for g in batch.groups:
        for j, i in enumerate(g.index):
            c = names[i]
            if g.family == PWL:
                for k, (slope, icpt) in enumerate(_lines(g.family, g.params, j, ms, factor[i])):
                    rows[c, k] = z[c] <= icpt + slope * y[c]
                continue
            samples = next(iter(g.params.values())).shape[1]
            w = float(factor[i]) / samples
            terms = [_smooth_term(g.family, {k: float(v[j, s]) for k, v in g.params.items()}, y[c], ms)
                     for s in range(samples)]
            rows[c, 0] = z[c] <= w * sum(terms) if samples > 1 else z[c] <= w * terms[0]
    pos = {c: i for i, c in enumerate(names)}
    return dict(sorted(rows.items(), key=lambda kv: (pos[kv[0][0]], kv[0][1])))


def build_pyomo_model(model: ArrayModel, curves: Literal["exact", "tangents"] = "exact",
                      tangent_points: int | FloatArray = 12) -> pyo.ConcreteModel:
    """Build the labelled Pyomo model of ``model`` (scaled units; see the module docstring).

    Parameters
    ----------
    model : ArrayModel
        The compiled problem; the Pyomo model is independent of it once built.
    curves : {"exact", "tangents"}
        Exact nonlinear hypographs (an NLP), or outer tangent lines (an LP) in ``ConstraintList`` s.
    tangent_points : int or array of shape (n, P)
        Only for ``"tangents"``: the number of tangent points per cell (geometric towards the lower
        bound, as in :func:`formulations.cuts.initial_points`), or the scaled spends at which to
        take them. ``pwl`` and ``linear`` curves always get their exact lines instead.

    Returns
    -------
    pyomo.environ.ConcreteModel
        With attribute ``curves`` (the mode). Adding constraints that restrict the plan is fine;
        :func:`solve_pyomo` solves a ``"tangents"`` model with them.
    """
    if curves not in ("exact", "tangents"):
        raise ValueError(f"curves must be 'exact' or 'tangents', got {curves!r}")
    names = cell_names(model)
    ms = model.money_scale
    clv = [names[i] for i in np.flatnonzero(model.clv_rule_of >= 0)]
    pm = pyo.ConcreteModel(name=model.problem.name or "budget")
    pm.curves = curves
    pm.cells = pyo.Set(initialize=names, ordered=True)
    pm.categories = pyo.Set(initialize=model.categories, ordered=True)
    pm.segments = pyo.Set(initialize=model.segments, ordered=True)
    pm.cells_in_category = pyo.Set(pm.categories, within=pm.cells, initialize={
        c: [names[i] for i in np.flatnonzero(model.category_of == k)] for k, c in enumerate(model.categories)})
    pm.cells_in_segment = pyo.Set(pm.segments, within=pm.cells, initialize={
        s: [names[i] for i in np.flatnonzero(model.segment_of == k)] for k, s in enumerate(model.segments)})
    pm.share_rules = pyo.Set(initialize=[model.categories[k] for k in model.share_category], ordered=True)
    pm.clv_rules = pyo.Set(initialize=[model.segments[k] for k in model.clv_segment], ordered=True)
    pm.clv_cells = pyo.Set(within=pm.cells, initialize=clv, ordered=True)
    pm.money_scale = pyo.Param(initialize=ms, doc="money per unit of spend")
    pm.value_scale = pyo.Param(initialize=model.value_scale, doc="money per unit of revenue/objective")
    pm.dual_to_money = pyo.Param(initialize=model.dual_to_money, doc="money/money per unit of row dual")
    pm.spend_cost = pyo.Param(initialize=model.spend_cost, doc="objective cost per unit of spend")

    pos = {c: i for i, c in enumerate(names)}
    rev_cap, acq_cap = model.rev(model.upper), model.acq_value(model.upper)
    pm.spend = pyo.Var(pm.cells, bounds=lambda _, c: (model.lower[pos[c]], model.upper[pos[c]]),
                       initialize=lambda _, c: model.lower[pos[c]])
    pm.revenue = pyo.Var(pm.cells, bounds=lambda _, c: (None, rev_cap[pos[c]]))
    pm.acq_value = pyo.Var(pm.clv_cells, bounds=lambda _, c: (None, acq_cap[pos[c]]))

    total = sum(pm.spend[c] for c in pm.cells)
    pm.budget = pyo.Constraint(expr=total == model.budget if model.equal_budget else total <= model.budget)
    share = {model.categories[c]: (lo, hi) for c, lo, hi in zip(model.share_category, model.share_lo, model.share_hi)}
    pm.share_min = pyo.Constraint(pm.share_rules, rule=lambda m, c: sum(m.spend[i] for i in m.cells_in_category[c])
                                  >= share[c][0])
    pm.share_max = pyo.Constraint(pm.share_rules, rule=lambda m, c: sum(m.spend[i] for i in m.cells_in_category[c])
                                  <= share[c][1])
    pm.clv_cac = pyo.Constraint(pm.clv_rules, rule=lambda m, s: sum(m.spend[i] for i in m.cells_in_segment[s])
                                - sum(m.acq_value[i] for i in m.cells_in_segment[s]) <= 0)
    pm.total = pyo.Objective(expr=sum(pm.revenue[c] for c in pm.cells) - model.spend_cost * total,
                             sense=pyo.maximize)

    rev_factor = np.full(model.n, 1.0 / model.value_scale)
    acq_factor = model.acq_value_coef / ms
    if curves == "exact":
        for name, batch, z, factor in (("revenue", model.revenue, pm.revenue, rev_factor),
                                       ("acq", model.acquisitions, pm.acq_value, acq_factor)):
            rows = _exact_rows(batch, names, z, pm.spend, ms, factor)
            pm.add_component(f"{name}_pieces", pyo.Set(dimen=2, initialize=list(rows), ordered=True))
            pm.add_component(f"{name}_curve", pyo.Constraint(getattr(pm, f"{name}_pieces"),
                                                             rule=lambda _, c, k, rows=rows: rows[c, k]))
        return pm

    pm.revenue_curve = pyo.ConstraintList()
    pm.acq_curve = pyo.ConstraintList()
    grid = np.asarray(initial_points(model.lower, model.upper, tangent_points)
                      if np.isscalar(tangent_points) else tangent_points, dtype=float)
    for acquisition, batch, factor in ((False, model.revenue, rev_factor), (True, model.acquisitions, acq_factor)):
        smooth = np.zeros(model.n, dtype=bool)
        for g in batch.groups:
            if g.family not in _EXACT_LINES:
                smooth[g.index] = True
                continue
            for j, i in enumerate(g.index):
                lines = _lines(g.family, g.params, j, ms, factor[i])
                add_lines(pm, [i] * len(lines), lines, acquisition)
        cells = np.flatnonzero(smooth)
        for col in grid.T:
            add_tangents(pm, model, cells, col[cells], acquisition)
    return pm


def add_lines(pm: pyo.ConcreteModel, cells: Sequence[int], lines: Sequence[tuple[float, float]],
              acquisition: bool) -> list[ConstraintData]:
    """Add rows ``z_i <= intercept + slope * spend_i`` to a tangents model (``z`` = ``revenue``, or
    ``acq_value`` if ``acquisition``); ``cells`` holds one cell position per ``(slope, intercept)``
    line, in scaled units. Returns the new rows (to pass to a persistent solver).

    Each row is multiplied by the number of cells ``n``: an LP solver's absolute row tolerance
    (1e-10 at best in HiGHS) then lets each hypograph overshoot by at most 1e-10 / n, so the
    objective by at most ~1e-10 in total. Unscaled, the overshoots add up to ``n * 1e-10`` and,
    on a 300-cell instance, stalled the refinement at a gap of 3.6e-9: HiGHS saw the new tangents
    as already satisfied and returned the same point every round.
    """
    target, z = (pm.acq_curve, pm.acq_value) if acquisition else (pm.revenue_curve, pm.revenue)
    k = float(len(pm.cells))
    out = []
    for i, (s, b) in zip(cells, lines, strict=True):
        c = pm.cells.at(int(i) + 1)
        out.append(target.add(k * z[c] - k * float(s) * pm.spend[c] <= k * float(b)))
    return out


def add_tangents(pm: pyo.ConcreteModel, model: ArrayModel, cells: NDArray[np.intp], points: FloatArray,
                 acquisition: bool) -> list[ConstraintData]:
    """Add the tangents of the cells' scaled revenue (or acquisition value) curves at scaled
    spends ``points`` (one per cell) to a tangents model; infinite slopes are skipped."""
    full = np.array(model.lower, dtype=float)
    full[cells] = points
    f, df = (model.acq_value, model.dacq_value) if acquisition else (model.rev, model.drev)
    slope, value = df(full)[cells], f(full)[cells]
    ok = np.isfinite(slope)
    lines = list(zip(slope[ok], value[ok] - slope[ok] * points[ok]))
    return add_lines(pm, list(cells[ok]), lines, acquisition) if lines else []


def set_plan(pm: pyo.ConcreteModel, model: ArrayModel, y: FloatArray) -> None:
    """Load scaled spends ``y`` into ``pm`` with the hypograph variables at the exact curve values
    (a consistent point: to evaluate rows, or to start an NLP solver from)."""
    rev, acq = model.rev(y), model.acq_value(y)
    for i, c in enumerate(pm.cells):
        pm.spend[c].set_value(float(y[i]), skip_validation=True)
        pm.revenue[c].set_value(float(rev[i]), skip_validation=True)
        if c in pm.clv_cells:
            pm.acq_value[c].set_value(float(acq[i]), skip_validation=True)


def solve_pyomo(model: ArrayModel, gap_tol: float = 1e-9, feas_tol: float = 1e-9, max_iterations: int = 400,
                time_limit: float = 60.0, pyomo_model: pyo.ConcreteModel | None = None) -> RouteResult:
    """Solve ``model`` by tangent-cut refinement of its Pyomo tangent LP in HiGHS.

    Stops (``converged``) when ``bound - objective(y) <= gap_tol * max(1, |bound|)`` for a plan
    ``y`` with ``max_violation(model, y) <= feas_tol``. ``bound`` is the Lagrangian bound at the
    LP's row duals (the best so far); with a user ``pyomo_model`` it is the lower of that and the
    LP optimum (an outer bound up to HiGHS's tolerances), because user rows can make the
    restricted optimum lower than the Lagrangian bound of the built-in rules. An infeasible LP
    proves the problem infeasible (``infeasible``).

    Parameters
    ----------
    model : ArrayModel
        The problem; the plan is checked against its rules on the exact curves.
    gap_tol, feas_tol, max_iterations, time_limit
        Stopping rules as in :class:`formulations.cuts.CutOptions` (time in seconds).
    pyomo_model : ConcreteModel, optional
        A ``build_pyomo_model(model, "tangents")`` model, possibly with user constraints, fixed
        ``spend`` variables or tightened bounds that *restrict* the plan (linear only, since HiGHS
        solves it; the objective must stay ``total``). It is modified in place: cuts are appended
        and the best plan is loaded into its variables.

    Returns
    -------
    RouteResult
        Backend ``"pyomo-highs"``; ``multipliers``: the LP duals of the built-in rules with the
        lowest Lagrangian bound, mapped onto :class:`~formulations.lagrangian.Multipliers`
        (``budget`` = d objective / d budget; the others >= 0). With user rows they certify the
        unrestricted problem only. ``y`` is returned only if it meets every rule to ``feas_tol``.
    """
    start = time.perf_counter()
    user = pyomo_model is not None
    pm = pyomo_model if user else build_pyomo_model(model, "tangents")
    if getattr(pm, "curves", None) != "tangents" or len(pm.cells) != model.n:
        raise ValueError("pyomo_model must be build_pyomo_model(model, 'tangents') of this model")
    names = list(pm.cells)
    clv_names = list(pm.clv_cells)
    clv_pos = np.flatnonzero(model.clv_rule_of >= 0)
    rows = [pm.budget, *pm.share_min.values(), *pm.share_max.values(), *pm.clv_cac.values()]
    k = len(pm.share_rules)
    opt = Highs()
    for key in list(opt.config.auto_updates):
        setattr(opt.config.auto_updates, key, False)  # cuts are passed explicitly: no model scans

    best_y: FloatArray | None = None
    best_obj, best_bound, best_lagrangian, best_mult = -np.inf, np.inf, np.inf, None
    gaps: list[float] = []
    for it in range(1, max_iterations + 1):
        res = opt.solve(pm, solver_options=dict(HIGHS_OPTIONS), load_solutions=False,
                        raise_exception_on_nonoptimal_result=False,
                        time_limit=max(time_limit - (time.perf_counter() - start), 1e-3))
        tc = res.termination_condition
        if tc == TerminationCondition.provenInfeasible or (
                tc == TerminationCondition.infeasibleOrUnbounded and not user):  # the built-in LP is bounded
            return RouteResult(RouteStatus.INFEASIBLE, BACKEND, iterations=it,
                               message="the linear relaxation of the rules has no solution")
        if tc == TerminationCondition.maxTimeLimit:
            return _stop(pm, model, RouteStatus.TIME_LIMIT, best_y, best_mult, it,
                         f"HiGHS hit the time limit; gap {best_bound - best_obj:.3g}")
        if tc != TerminationCondition.convergenceCriteriaSatisfied:
            return _stop(pm, model, RouteStatus.ERROR, best_y, best_mult, it, f"HiGHS stopped: {tc.name}")
        loader = res.solution_loader
        values = loader.get_vars([pm.spend[c] for c in names if not pm.spend[c].fixed])
        y_raw = np.array([pm.spend[c].value if pm.spend[c].fixed else values[pm.spend[c]] for c in names])
        t_lp = np.array(list(loader.get_vars([pm.revenue[c] for c in names]).values()))
        a_lp = np.zeros(model.n)
        if clv_names:
            a_lp[clv_pos] = list(loader.get_vars([pm.acq_value[c] for c in clv_names]).values())
        d = np.array(list(loader.get_duals(rows).values()), dtype=float)
        mult = Multipliers(budget=float(d[0]), share_min=np.maximum(-d[1:1 + k], 0.0),
                           share_max=np.maximum(d[1 + k:1 + 2 * k], 0.0), clv=np.maximum(d[1 + 2 * k:], 0.0))
        y = np.clip(y_raw, model.lower, model.upper)
        db = dual_bound(model, mult)
        if db.value < best_lagrangian:
            best_lagrangian, best_mult = db.value, db.multipliers
        best_bound = min(best_bound, best_lagrangian, float(res.incumbent_objective) if user else np.inf)
        if max_violation(model, y) <= feas_tol and model.objective(y) > best_obj:
            best_obj, best_y = model.objective(y), y
        if best_bound - best_obj <= gap_tol * max(1.0, abs(best_bound)):
            return _stop(pm, model, RouteStatus.CONVERGED, best_y, best_mult, it, "")
        gaps.append(best_bound - best_obj)
        if gap_stalled(gaps):
            return _stop(pm, model, RouteStatus.ITERATION_LIMIT, best_y, best_mult, it,
                         f"gap {best_bound - best_obj:.3g} did not halve in {STALL_WINDOW} LP solves")
        if time.perf_counter() - start > time_limit:
            return _stop(pm, model, RouteStatus.TIME_LIMIT, best_y, best_mult, it,
                         f"gap {best_bound - best_obj:.3g} after {time_limit:g} s")
        new = _violated_cuts(pm, model, y, t_lp, a_lp, [y, db.argmax])
        if not new:
            return _stop(pm, model, RouteStatus.ERROR, best_y, best_mult, it,
                         f"no cut improves the LP; gap stalled at {best_bound - best_obj:.3g}")
        opt.add_constraints(new)
    return _stop(pm, model, RouteStatus.ITERATION_LIMIT, best_y, best_mult, max_iterations,
                 f"gap {best_bound - best_obj:.3g} after {max_iterations} LP solves")


def _violated_cuts(pm: pyo.ConcreteModel, model: ArrayModel, y_lp: FloatArray, t_lp: FloatArray,
                   a_lp: FloatArray, candidates: Sequence[FloatArray]) -> list[ConstraintData]:
    """Tangents at each candidate plan that cut off the LP point (revenue and acquisition value)."""
    added: list[ConstraintData] = []
    has_rule = model.clv_rule_of >= 0
    for acquisition, z_lp, scope in ((False, t_lp, np.ones(model.n, bool)), (True, a_lp, has_rule)):
        f, df = curve_of(model, acquisition)
        for p in candidates:
            slope, value = df(p), f(p)
            with np.errstate(invalid="ignore"):
                cut_at_lp = value + slope * (y_lp - p)
            violated = scope & np.isfinite(slope) & (z_lp > cut_at_lp + 1e-13 * (1.0 + np.abs(z_lp)))
            ix = np.flatnonzero(violated)
            if ix.size:
                added += add_lines(pm, list(ix), list(zip(slope[ix], value[ix] - slope[ix] * p[ix])), acquisition)
    return added


def _stop(pm: pyo.ConcreteModel, model: ArrayModel, status: RouteStatus, y: FloatArray | None,
          mult: Multipliers | None, iterations: int, message: str) -> RouteResult:
    """The route's result; the plan (if any) is also loaded into the Pyomo model."""
    if y is not None:
        set_plan(pm, model, y)
    return RouteResult(status, BACKEND, y, mult, iterations, message)
