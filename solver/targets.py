"""Target modes, each answered by certified solves of the same model.

- :func:`min_budget_for_revenue` / :func:`min_budget_for_new_customers`: the smallest budget at
  which some plan that meets every rule reaches a revenue (or new-customer) target. The optimal
  value ``V(B)`` (revenue, or new customers when the model maximizes them) is concave in ``B``, so
  ``{B : V(B) >= T}`` is an interval and a bracket ``[lower, upper]`` with ``V(upper) >= T`` and
  ``V(lower) < T`` (proven: its *upper bound* is below ``T``) or ``lower`` infeasible always holds
  the answer. Each round takes the Newton step from ``lower`` (a supergradient's tangent lies
  above ``V``, so it never passes the answer) and the chord step (the chord lies below ``V``, so it
  never falls short), with a bisection when they stall.
- :func:`max_budget_for_marginal_return`: the largest budget at which one more dollar of budget
  still earns at least ``target`` of predicted revenue (``target = 1``: the profit-maximizing
  budget). The marginal return (from each solve's duals) is nonincreasing in ``B``; safeguarded
  false position on it.
- :func:`max_revenue_with_roi_floor`: the most revenue subject to ``revenue >= floor x spend``
  with the budget as a cap. With a spend cost ``c`` in ``[0, floor]`` the same model maximizes
  ``revenue - c x spend`` (revenue curves scaled by ``1 / c``, profit objective); any ``c`` gives
  the proven bound ``revenue* <= c U_c / (1 - c / floor)`` (``U_c`` the solve's upper bound), and
  the search stops when the best plan meeting the floor is within ``rel_tol`` of the best bound.
  Candidates are the plans at each ``c`` that meet the floor and the best blend of the two plans
  bracketing the answer (the rules are convex, so a blend meets them; with linear or pwl curves
  the optimal plan jumps at the answer and only a blend attains it).

Tolerances: budgets are bracketed to ``rel_tol`` (default 1e-6) of the answer; every point is a
certified solve (gap 1e-8 relative by default). Statuses: ``found``, ``unreachable`` (no budget
within the rules reaches the target; the message says the best found), ``error`` (a solve was not
proven optimal).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from forecasting.curves import Curve
from formulations.problem import Problem
from solver.backends import SolveOptions
from solver.formatting import money
from solver.plans import plan_metrics, solution_spend
from solver.sensitivity import frontier_slope, marginal_revenue_per_budget_dollar
from solver.solution import Solution
from solver.resolve import resolve
from solver.variants import edit, with_budget

MAX_SOLVES = 80


@dataclass(frozen=True)
class TargetResult:
    """The answer of one target mode (currency unless stated).

    ``budget`` is the answer (for the ROI floor: the plan's spend); ``lower``/``upper`` bracket the
    exact answer; ``value`` is what the mode measures at ``budget`` (revenue, new customers or the
    marginal return); ``revenue``, ``spend``, ``new_customers`` describe the plan at the answer on
    the original curves; ``solution``/``problem`` are the certified solve behind it.
    """

    mode: str
    target: float
    status: str
    budget: float = float("nan")
    lower: float = float("nan")
    upper: float = float("nan")
    value: float = float("nan")
    revenue: float = float("nan")
    spend: float = float("nan")
    new_customers: float = float("nan")
    solves: int = 0
    message: str = ""
    solution: Solution | None = field(default=None, repr=False)
    problem: Problem | None = field(default=None, repr=False)

    def row(self) -> dict[str, Any]:
        """The result as one table row (no solver objects)."""
        return {k: getattr(self, k) for k in ("mode", "target", "status", "budget", "lower", "upper", "value",
                                              "revenue", "spend", "new_customers", "solves", "message")}


def targets_table(results: list[TargetResult]) -> pd.DataFrame:
    """One row per target result (the columns of :meth:`TargetResult.row`)."""
    return pd.DataFrame([r.row() for r in results])


class _Search:
    """Solves the problem's variants by budget and remembers every point (no solve twice)."""

    def __init__(self, make: Callable[[float], Problem], original: Problem, options: SolveOptions | None,
                 backend: str) -> None:
        self.make, self.original, self.options, self.backend = make, original, options, backend
        self.points: dict[float, tuple[Problem, Solution]] = {}

    def __call__(self, budget: float) -> tuple[Problem, Solution]:
        if budget not in self.points:
            if len(self.points) >= MAX_SOLVES:
                raise _NotOptimal(f"the search did not converge in {MAX_SOLVES} solves")
            p = self.make(budget)
            self.points[budget] = (p, resolve(p, backend=self.backend, options=self.options))
        return self.points[budget]

    def result(self, mode: str, target: float, status: str, budget: float, lower: float, upper: float,
               value: float, message: str = "") -> TargetResult:
        p, sol = self.points.get(budget, (None, None))
        extra: dict[str, Any] = {}
        if p is not None and sol is not None and sol.allocation:
            m = plan_metrics(with_budget(self.original, p.budget), solution_spend(sol))
            extra = {"revenue": m.revenue, "spend": m.spend, "new_customers": m.new_customers}
        return TargetResult(mode, target, status, budget, lower, upper, value, solves=len(self.points),
                            message=message, solution=sol, problem=p, **extra)


def _min_budget(search: _Search, mode: str, target: float, rel_tol: float,
                start: tuple[float, float] | None = None) -> TargetResult:
    b0 = search.original.budget

    def classify(b: float) -> tuple[str, float, float]:
        """(state, optimal value, frontier slope) at budget b; state is reached / at_target
        (the target lies within the solve's gap) / short (proven: bound below target) /
        infeasible / error."""
        if b <= 0:
            return "infeasible", -np.inf, np.nan
        p, sol = search(b)
        if sol.status.value == "infeasible":
            return "infeasible", -np.inf, np.nan
        if not sol.is_optimal:
            return "error", np.nan, np.nan
        value, bound = float(sol.objective or 0), float(sol.upper_bound or 0)
        state = "reached" if value >= target else ("short" if bound < target else "at_target")
        return state, value, frontier_slope(sol, p)

    def fail(b: float) -> _NotOptimal:
        sol = search(b)[1]
        return _NotOptimal(f"budget {money(b)}: {sol.status.value}: {sol.message}")

    def unreachable(why: str) -> TargetResult:
        best = max((float(sol.objective or 0) for _, sol in search.points.values() if sol.is_optimal),
                   default=float("nan"))
        return search.result(mode, target, "unreachable", np.nan, np.nan, np.nan, best,
                             f"no budget within the rules reaches {target:,.6g} ({why}); the best found is {best:,.6g}")

    reached = ("reached", "at_target")
    try:
        hinted = start is not None and classify(start[0])[0] in ("short", "infeasible") \
            and classify(start[1])[0] in reached
        state = "hinted" if hinted else classify(b0)[0]
        if state == "hinted":                     # a verified bracket, e.g. from the frontier
            assert start is not None
            lo, hi = start
        elif state == "error":
            raise fail(b0)
        elif state in reached:                    # walk down until the target is missed
            hi, lo = b0, b0 / 2
            while (st := classify(lo)[0]) in reached:
                hi, lo = lo, lo / 2
            if st == "error":
                raise fail(lo)
        else:                                     # walk up by Newton steps, which never pass the answer
            if state == "infeasible":
                return unreachable(f"the plan's budget {money(b0)} is infeasible")
            lo = b0
            while True:
                _, v_lo, g_lo = classify(lo)
                if not g_lo > 0:
                    return unreachable(f"one more dollar earns nothing at {money(lo)}")
                newton = lo + (target - v_lo) / g_lo
                over = lo + 1.5 * (newton - lo)   # a guess past the answer, to bracket it
                st = classify(over)[0]
                if st in reached:
                    hi = over
                    break
                if st == "short":
                    lo = over
                    continue
                st = classify(newton)[0]
                if st in reached:
                    hi = newton
                    break
                if st != "short":
                    return unreachable(f"budgets from {money(newton)} up break the rules")
                lo = newton
        while hi - lo > rel_tol * hi and classify(hi)[0] != "at_target":
            s_lo, v_lo, g_lo = classify(lo)
            _, v_hi, _ = classify(hi)
            width, trial = hi - lo, []
            if s_lo == "short" and g_lo > 0:
                chord = lo + (target - v_lo) * (hi - lo) / (v_hi - v_lo)
                trial = [lo + (target - v_lo) / g_lo,                     # Newton: <= answer
                         chord]                                           # chord: >= answer
                if chord >= hi * (1 - rel_tol):   # the chord says hi is the answer: probe just below
                    trial.append(hi * (1 - rel_tol / 2))
            for b in [*trial, None]:
                if b is None:
                    if hi - lo <= width / 2:
                        break
                    b = (lo + hi) / 2
                if lo < b < hi:
                    st = classify(b)[0]
                    if st == "error":
                        raise fail(b)
                    lo, hi = (b, hi) if st in ("short", "infeasible") else (lo, b)
        return search.result(mode, target, "found", hi, lo, hi, classify(hi)[1])
    except _NotOptimal as e:
        return TargetResult(mode, target, "error", message=str(e), solves=len(search.points))


class _NotOptimal(Exception):
    """A solve of the search was neither optimal nor infeasible (or the search ran out of solves)."""


def _false_position(f: Callable[[float], float], lo: float, hi: float, is_lo: Callable[[float], bool],
                    done: Callable[[float, float], bool]) -> tuple[float, float]:
    """Shrink ``[lo, hi]`` around the sign change of a monotone ``f`` until ``done(lo, hi)``.

    Illinois false position (the stale end's value is halved when one end moves twice in a row),
    with a bisection every third step so that step functions (pwl curves) converge too. ``is_lo``
    says whether a value belongs to the ``lo`` side. Values are cached by the caller's search.
    """
    f_lo, f_hi, side = f(lo), f(hi), 0
    for k in range(MAX_SOLVES):
        if done(lo, hi):
            break
        b = (lo + hi) / 2
        if k % 3 != 2 and f_hi != f_lo:
            b = lo - f_lo * (hi - lo) / (f_hi - f_lo)
            if not lo < b < hi:
                b = (lo + hi) / 2
        fb = f(b)
        if is_lo(fb):
            lo, f_lo = b, fb
            f_hi, side = (f_hi / 2 if side == -1 else f_hi), -1
        else:
            hi, f_hi = b, fb
            f_lo, side = (f_lo / 2 if side == 1 else f_lo), 1
    return lo, hi


def min_budget_for_revenue(problem: Problem, target: float, *, rel_tol: float = 1e-6,
                           start: tuple[float, float] | None = None, options: SolveOptions | None = None,
                           backend: str = "auto") -> TargetResult:
    """The smallest budget at which a plan meeting every rule predicts ``target`` revenue.

    The search maximizes predicted revenue (a profit objective is replaced by revenue); shares
    stay fractions of the budget and the budget mode is the problem's. ``value`` is the optimal
    revenue at ``budget`` (>= ``target`` up to the solve's gap). ``start`` may give a bracket
    ``(lower, upper)`` (e.g. :func:`solver.frontier.revenue_bracket`); it is used only once two
    solves confirm it (``lower`` proven short of the target, ``upper`` reaching it).
    """
    make = (lambda b: edit(problem, lambda d: d.update(budget=float(b), objective="revenue")))
    return _min_budget(_Search(make, problem, options, backend), "min_budget_for_revenue", target, rel_tol, start)


def min_budget_for_new_customers(problem: Problem, target: float, *, rel_tol: float = 1e-6,
                                 options: SolveOptions | None = None, backend: str = "auto") -> TargetResult:
    """The smallest budget at which a plan meeting every rule predicts ``target`` new customers.

    Solved as the same model with each cell's acquisitions curve as its objective curve (cells
    without one count 0 new customers): ``value`` is the most new customers at ``budget``.
    ``revenue`` is that plan's predicted revenue.
    """
    zero = {"family": "linear", "a": 0.0}

    def make(b: float) -> Problem:
        def change(d: dict[str, Any]) -> None:
            d.update(budget=float(b), objective="revenue")
            for c in d["cells"]:
                c["revenue"] = c.get("acquisitions") or zero
        return edit(problem, change)
    return _min_budget(_Search(make, problem, options, backend), "min_budget_for_new_customers", target, rel_tol)


def max_budget_for_marginal_return(problem: Problem, target: float = 1.0, *, rel_tol: float = 1e-6,
                                   start: tuple[float, float] | None = None, options: SolveOptions | None = None,
                                   backend: str = "auto") -> TargetResult:
    """The largest budget at which one more dollar of budget earns at least ``target`` revenue.

    ``value`` is the marginal return (d predicted revenue / d budget,
    :func:`solver.sensitivity.marginal_revenue_per_budget_dollar`) at ``budget``; ``target = 1``
    gives the profit-maximizing budget. ``start`` may give a bracket (e.g. from the frontier).
    """
    search = _Search(lambda b: with_budget(problem, b), problem, options, backend)
    mode = "max_budget_for_marginal_return"

    def excess(b: float) -> float:
        p, sol = search(b)
        if sol.status.value == "infeasible":
            return np.nan
        if not sol.is_optimal:
            raise _NotOptimal(f"budget {money(b)}: {sol.status.value}: {sol.message}")
        return marginal_revenue_per_budget_dollar(sol, p) - target

    try:
        lo, hi = start if start is not None else (problem.budget, problem.budget)
        while not excess(lo) >= 0:
            if np.isnan(excess(lo)) or lo < 1e-6 * problem.budget:
                return search.result(mode, target, "unreachable", np.nan, np.nan, lo, np.nan,
                                     f"one more dollar earns less than {target:g} at every feasible budget tried")
            lo, hi = lo / 1.5, lo
        while not excess(hi) < 0:
            if np.isnan(excess(hi)) or hi > 1e6 * problem.budget:
                return search.result(mode, target, "unreachable", lo, lo, np.nan, excess(lo) + target,
                                     f"one more dollar earns at least {target:g} up to {money(lo)}, the largest "
                                     "feasible budget tried")
            lo, hi = hi, 1.25 * hi
        lo, hi = _false_position(excess, lo, hi, lambda f: f >= 0, lambda a, b: b - a <= rel_tol * b)
        return search.result(mode, target, "found", lo, lo, hi, excess(lo) + target)
    except _NotOptimal as e:
        return TargetResult(mode, target, "error", message=str(e), solves=len(search.points))


def profit_maximizing_budget(problem: Problem, **kwargs: Any) -> TargetResult:
    """:func:`max_budget_for_marginal_return` with ``target = 1``: beyond this budget the next
    dollar earns less than a dollar of predicted revenue."""
    return max_budget_for_marginal_return(problem, 1.0, **kwargs)


def max_revenue_with_roi_floor(problem: Problem, floor: float, *, rel_tol: float = 1e-6,
                               options: SolveOptions | None = None, backend: str = "auto") -> TargetResult:
    """The most predicted revenue with ``revenue >= floor x spend``, spending at most the budget.

    ``floor`` is revenue per dollar spent (> 0). The budget becomes a cap (``at_most``): spending
    less is how ROI rises; share rules stay fractions of the budget. ``budget`` and ``spend`` are
    the plan's spend; ``value`` is its ROI; ``revenue`` its predicted revenue; the bracket is on
    revenue: ``lower`` = that revenue, ``upper`` = the proven bound on the best possible.
    ``solution`` is the certified solve nearest the answer (a blend of two solves when the curves
    are linear or pwl; ``revenue`` and ``spend`` then describe the blend).
    """
    mode = "max_revenue_with_roi_floor"
    if not floor > 0:
        raise ValueError(f"the ROI floor must be > 0, got {floor!r}")

    def make(c: float) -> Problem:
        def change(d: dict[str, Any]) -> None:
            d["budget_mode"] = "at_most"
            d["objective"] = "revenue" if c == 0 else "profit"
            if c > 0:
                for cell in d["cells"]:
                    cell["revenue"] = Curve.from_dict(cell["revenue"]).scaled(1.0 / c).to_dict()
        return edit(problem, change)

    search = _Search(make, problem, options, backend)
    capped = edit(problem, lambda d: d.update(budget_mode="at_most"))
    best: tuple[float, np.ndarray, float] | None = None   # (revenue, plan, spend cost) meeting the floor
    bound = np.inf

    def consider(x: np.ndarray, c: float) -> float:
        """Record plan ``x`` if it meets the floor and beats the best; returns revenue - floor x spend."""
        nonlocal best
        m = plan_metrics(capped, x)
        if m.revenue >= floor * m.spend and (best is None or m.revenue > best[0]):
            best = (m.revenue, x, c)
        return m.revenue - floor * m.spend

    def evaluate(c: float) -> float:
        nonlocal bound
        _, sol = search(c)
        if sol.status.value == "infeasible":
            raise _NotOptimal("the rules cannot be met even without the ROI floor: " + sol.message)
        if not sol.is_optimal:
            raise _NotOptimal(f"spend cost {c:g}: {sol.status.value}: {sol.message}")
        ub = float(sol.upper_bound or 0)
        if c < floor:
            bound = min(bound, ub if c == 0 else c * ub / (1 - c / floor))
        return consider(solution_spend(sol), c)

    def closed(lo: float, hi: float) -> bool:
        """Also try the best blend of the plans at ``lo`` (breaks the floor) and ``hi`` (meets it):
        the rules are convex, so the blend meets them; with linear or pwl curves the plan jumps at
        the answer's spend cost and only a blend reaches it. True when the gap is closed."""
        if lo in search.points and hi in search.points:
            x_lo, x_hi = (solution_spend(search.points[c][1]) for c in (lo, hi))
            a, b = 0.0, 1.0   # revenue - floor x spend is concave along the blend: bisection
            for _ in range(50):
                mid = (a + b) / 2
                m = plan_metrics(capped, x_hi + mid * (x_lo - x_hi))
                a, b = (mid, b) if m.revenue >= floor * m.spend else (a, mid)
            consider(x_hi + a * (x_lo - x_hi), hi)
        return best is not None and bound - best[0] <= rel_tol * best[0]

    def done(message: str = "") -> TargetResult:
        assert best is not None
        m = plan_metrics(capped, best[1])
        p, sol = search.points[best[2]]
        return TargetResult(mode, floor, "found", m.spend, m.revenue, bound, m.roi, m.revenue, m.spend,
                            m.new_customers, len(search.points), message, sol, p)

    try:
        if evaluate(0.0) >= 0:
            return done(message="the unconstrained optimum already meets the floor")
        if evaluate(floor) < 0:
            return TargetResult(mode, floor, "unreachable", solves=len(search.points),
                                message=f"no plan within the rules returns {floor:g} per dollar spent")
        _false_position(evaluate, 0.0, floor, lambda g: g < 0, closed)
        gap = bound - best[0] if best is not None else np.inf
        return done(message="" if gap <= rel_tol * best[0] else f"stopped {money(gap)} from the proven bound")
    except _NotOptimal as e:
        return TargetResult(mode, floor, "error", message=str(e), solves=len(search.points))
