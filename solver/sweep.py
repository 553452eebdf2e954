"""Many budgets of one problem, each certified, reusing work between them.

:func:`budget_sweep` compiles the problem once and walks the budgets in increasing order; each
point is the same model at another budget (:meth:`ArrayModel.rebudget`, same units), solved by the
decomposition route from the previous point's multipliers and plan -- typically two or three
Newton rounds -- and certified like any solve. Points the fast route cannot prove (other curve
families, infeasible budgets, a route failure) go through :func:`solver.solve.solve`, so every
returned Solution means exactly what ``solve()`` would have returned.

Examples
--------
>>> sols = budget_sweep({"version": 1, "budget": 100.0, "cells": [
...     {"category": "a", "segment": "s", "revenue": {"family": "log", "a": 100, "b": 10}},
...     {"category": "b", "segment": "s", "revenue": {"family": "log", "a": 100, "b": 10}}]}, [50.0, 100.0, 150.0])
>>> [round(s.duals.budget, 4) for s in sols]
[2.8571, 1.6667, 1.1765]
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import replace

import numpy as np

from formulations import decomposition
from formulations.lagrangian import Multipliers
from formulations.feasibility import clv_depends_on_budget, precheck, unreachable_clv
from formulations.model import compile_problem
from formulations.result import RouteResult
from solver.backends import SolveOptions
from solver.solution import Solution
from solver.solve import ProblemLike, as_problem, solve, verified_solution


def budget_sweep(problem: ProblemLike, budgets: Sequence[float], *, backend: str = "auto",
                 options: SolveOptions | None = None) -> list[Solution]:
    """Certified solutions of ``problem`` at each of ``budgets`` (in the given order)."""
    opts = options or SolveOptions()
    base = compile_problem(as_problem(problem))
    fast = backend in ("auto", decomposition.BACKEND) and decomposition.supports(base)
    solved: dict[float, Solution] = {}
    history: list[tuple[float, RouteResult]] = []  # the last two converged points
    per_point_clv = clv_depends_on_budget(base)
    clv_conflicts = [] if per_point_clv else unreachable_clv(base)
    for budget in sorted(set(float(b) for b in budgets)):
        start = time.perf_counter()
        model = base.rebudget(budget)
        if fast and not clv_conflicts and not precheck(model, clv=per_point_clv):
            guess = _extrapolate(history, budget, model.equal_budget)
            result = decomposition.solve_decomposition(model, start=guess)
            solution = verified_solution(model, result, opts, start)
            if solution.is_optimal:
                solved[budget] = solution
                history = [*history[-1:], (budget, result)]
                continue
        history = []
        solved[budget] = solve(model.problem, backend=backend, options=opts)
    return [solved[float(b)] for b in budgets]


def _extrapolate(history: list[tuple[float, RouteResult]], budget: float, equal_budget: bool) -> RouteResult | None:
    """A starting point for ``budget``: the last point, or the line through the last two
    (multipliers and plan move smoothly with the budget between changes of binding rules)."""
    if not history:
        return None
    b1, r1 = history[-1]
    if len(history) < 2 or r1.y is None or r1.multipliers is None:
        return r1
    b0, r0 = history[0]
    assert r0.y is not None and r0.multipliers is not None
    t = (budget - b1) / (b1 - b0)
    m0, m1 = r0.multipliers, r1.multipliers
    guess = Multipliers(
        m1.budget + t * (m1.budget - m0.budget),
        m1.share_min + t * (m1.share_min - m0.share_min),
        m1.share_max + t * (m1.share_max - m0.share_max),
        m1.clv + t * (m1.clv - m0.clv),
    ).projected(equal_budget)
    # Rules that did not bind at the last point start unbound.
    guess = Multipliers(guess.budget, np.where(m1.share_min > 0, guess.share_min, 0.0),
                        np.where(m1.share_max > 0, guess.share_max, 0.0), np.where(m1.clv > 0, guess.clv, 0.0))
    return replace(r1, multipliers=guess, y=r1.y + t * (r1.y - r0.y))
