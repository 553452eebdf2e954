"""The budget frontier: the optimal plan as a function of the total budget.

Each point is the problem at another budget (share rules stay fractions of the budget) solved to a
certified optimum by :func:`solver.sweep.budget_sweep`: one compiled model, the budgets in
increasing order, each point warm-started from the previous points' multipliers and plan (points
the warm route cannot prove go through ``solve()``, so each Solution means what ``solve()``
would return). The duals are reused too: every point's slope comes from its own duals
(:func:`solver.sensitivity.frontier_slope`) with no extra solves, and the slope column is what
brackets the profit-maximizing budget in :mod:`solver.targets`.

The optimal objective ``V(B)`` is concave in ``B`` (the rules are jointly convex in spend and
budget), so the slope is nonincreasing along the frontier; an infeasible budget is a point with
its status and message, not an exception.

Examples
--------
>>> from formulations.problem import Problem
>>> p = Problem.from_dict({"version": 1, "budget": 100.0, "cells": [
...     {"category": "a", "segment": "s", "revenue": {"family": "log", "a": 100, "b": 10}},
...     {"category": "b", "segment": "s", "revenue": {"family": "log", "a": 100, "b": 10}}]})
>>> f = frontier_table(p, points=3)
>>> f["budget"].tolist(), [round(v, 4) for v in f["marginal_revenue"]]
([50.0, 100.0, 150.0], [2.8571, 1.6667, 1.1765])
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np
import pandas as pd

from formulations.errors import ProblemError
from formulations.problem import Problem
from solver.backends import SolveOptions
from solver.plans import plan_metrics, solution_spend
from solver.sensitivity import binding_rules, frontier_slope, marginal_revenue_per_budget_dollar
from solver.resolve import resolve
from solver.solution import Solution
from solver.sweep import budget_sweep
from solver.variants import with_budget

BASE_COLUMNS = ["budget", "factor", "status", "objective", "revenue", "spend", "profit", "roi", "new_customers",
                "slope", "marginal_revenue", "budget_dual", "upper_bound", "binding", "seconds", "message"]


def solve_at(problem: Problem, budget: float, *, options: SolveOptions | None = None,
             backend: str = "auto") -> tuple[Problem, Solution]:
    """The problem at ``budget`` (shares as fractions) and its certified solution."""
    p = problem if budget == problem.budget else with_budget(problem, budget)
    return p, resolve(p, backend=backend, options=options)


def frontier_row(problem: Problem, solution: Solution, base_budget: float) -> dict[str, object]:
    """One frontier row from a solved point (see :func:`frontier_table` for the columns)."""
    row: dict[str, object] = {
        "budget": problem.budget, "factor": problem.budget / base_budget, "status": solution.status.value,
        "message": solution.message, "seconds": solution.seconds, "upper_bound": solution.upper_bound,
    }
    if not solution.allocation:
        return row
    m = plan_metrics(problem, solution_spend(solution))
    row |= {
        "objective": solution.objective, "revenue": m.revenue, "spend": m.spend, "profit": m.profit, "roi": m.roi,
        "new_customers": m.new_customers,
        "slope": frontier_slope(solution, problem) if solution.is_optimal else np.nan,
        "marginal_revenue": marginal_revenue_per_budget_dollar(solution, problem) if solution.is_optimal else np.nan,
        "budget_dual": solution.duals.budget if solution.duals is not None and solution.is_optimal else np.nan,
        "binding": ", ".join(binding_rules(solution, problem)) if solution.is_optimal else "",
    }
    row |= {f"cac_{seg}": v for seg, v in m.cac.items()}
    return row


def budget_grid(problem: Problem, lo: float = 0.5, hi: float = 1.5, points: int = 25) -> list[float]:
    """``points`` budgets evenly spaced from ``lo`` to ``hi`` times the plan's budget, with the
    plan's own budget always included."""
    if points < 2 or not 0 < lo < hi:
        raise ValueError(f"need points >= 2 and 0 < lo < hi, got points={points}, lo={lo}, hi={hi}")
    grid = set(np.linspace(lo, hi, points) * problem.budget)
    if lo <= 1.0 <= hi:
        grid = {b for b in grid if not np.isclose(b, problem.budget, rtol=1e-12)} | {problem.budget}
    return sorted(float(b) for b in grid)


def frontier_table(problem: Problem, *, lo: float = 0.5, hi: float = 1.5, points: int = 25,
                   budgets: Sequence[float] | None = None, options: SolveOptions | None = None,
                   backend: str = "auto", progress: Callable[[int, int], None] | None = None) -> pd.DataFrame:
    """Solve the problem at a grid of budgets; one row per budget, in increasing order.

    Parameters
    ----------
    problem : the plan; its budget is the reference (``factor = budget / plan budget``)
    lo, hi, points : the grid, as fractions of the plan's budget (default 50 %-150 %, 25 points,
        the plan's budget included); ignored when ``budgets`` is given
    options, backend : passed to every solve
    progress : called with (points done, total) after each solve

    Returns
    -------
    DataFrame
        ``budget, factor, status, objective`` (the problem's objective), ``revenue, spend, profit``
        (currency), ``roi`` (revenue per dollar spent), ``new_customers``, ``slope`` (d objective /
        d budget, shares scaling with the budget), ``marginal_revenue`` (d revenue / d budget:
        the slope, plus 1 for a profit objective that spends its budget), ``budget_dual``
        (``Duals.budget``), ``upper_bound``, ``binding`` (rules that bind, comma-separated),
        ``seconds``, ``message``, then ``cac_<segment>`` (spend per new customer) per segment.
        Infeasible or unproven points keep their status and message with NaN outcomes.
    """
    grid = sorted(float(b) for b in budgets) if budgets is not None else budget_grid(problem, lo, hi, points)
    try:
        solutions = budget_sweep(problem, grid, backend=backend, options=options)
    except ProblemError:
        raise
    except Exception:  # noqa: BLE001 - a failing warm start must not lose the frontier: cold solves
        solutions = [solve_at(problem, b, options=options, backend=backend)[1] for b in grid]
    rows = []
    for k, (b, sol) in enumerate(zip(grid, solutions)):
        rows.append(frontier_row(with_budget(problem, b), sol, problem.budget))
        if progress is not None:
            progress(k + 1, len(grid))
    frame = pd.DataFrame(rows)
    extra = [c for c in frame.columns if c not in BASE_COLUMNS]
    return frame.reindex(columns=BASE_COLUMNS + extra)


def slope_range(frontier: pd.DataFrame, budget: float, tol: float = 0.1) -> tuple[float, float]:
    """Budgets around ``budget`` over which the frontier slope is proven within ``tol`` of its value.

    The slope is nonincreasing in the budget (concavity), so between the smallest grid budget whose
    slope is at most ``(1 + tol)`` times the slope at ``budget`` and the largest whose slope is at
    least ``(1 - tol)`` times it, every slope is within tolerance. Returns ``(low, high)``; NaN
    when ``budget`` is not an optimal point of the frontier.
    """
    ok = frontier[frontier["status"] == "optimal"]
    here = ok[np.isclose(ok["budget"], budget, rtol=1e-12)]
    if here.empty:
        return float("nan"), float("nan")
    s0 = float(here["slope"].iloc[0])
    below = ok[(ok["budget"] <= budget) & (ok["slope"] <= s0 + tol * abs(s0))]
    above = ok[(ok["budget"] >= budget) & (ok["slope"] >= s0 - tol * abs(s0))]
    return float(below["budget"].min()), float(above["budget"].max())


def marginal_bracket(frontier: pd.DataFrame, target: float) -> tuple[float, float] | None:
    """Two adjacent-side frontier budgets whose marginal revenues straddle ``target``: the largest
    with ``marginal_revenue >= target`` and the smallest below it (None if the grid has no such
    pair). A start for :func:`solver.targets.max_budget_for_marginal_return`."""
    ok = frontier[frontier["status"] == "optimal"]
    above = ok[ok["marginal_revenue"] >= target]
    below = ok[ok["marginal_revenue"] < target]
    if above.empty or below.empty:
        return None
    return float(above["budget"].max()), float(below["budget"].min())


def revenue_bracket(frontier: pd.DataFrame, target: float) -> tuple[float, float] | None:
    """Frontier budgets around the least budget reaching ``target`` revenue: the largest whose
    proven ``upper_bound`` is below ``target`` and the smallest above it whose ``revenue`` reaches
    it (None if the grid has no such pair). Meaningful for a revenue objective; a start for
    :func:`solver.targets.min_budget_for_revenue`, which checks it."""
    ok = frontier[frontier["status"] == "optimal"]
    short = ok[ok["upper_bound"] < target]
    if short.empty:
        return None
    lo = float(short["budget"].max())
    reach = ok[(ok["budget"] > lo) & (ok["revenue"] >= target)]
    return None if reach.empty else (lo, float(reach["budget"].min()))
