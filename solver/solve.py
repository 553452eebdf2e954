"""``solve(problem)``: the one entry point from a problem to a verified solution.

Examples
--------
>>> from solver import solve
>>> sol = solve({"version": 1, "budget": 100.0, "cells": [
...     {"category": "a", "segment": "s", "revenue": {"family": "log", "a": 100, "b": 10}},
...     {"category": "b", "segment": "s", "revenue": {"family": "log", "a": 100, "b": 10}}]})
>>> sol.status.value, [round(c.spend, 6) for c in sol.allocation]
('optimal', [50.0, 50.0])
>>> solve({"version": 1, "budget": 100.0, "cells": []})
Traceback (most recent call last):
...
formulations.errors.ProblemError: cells: expected a non-empty list of cells
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from formulations.feasibility import conflicting_rules, precheck, unreachable_clv
from formulations.lagrangian import Multipliers, refine_multipliers
from formulations.model import ArrayModel, compile_problem
from formulations.problem import Problem
from formulations.result import RouteResult, RouteStatus
from solver.backends import SolveOptions, candidates
from solver.solution import Duals, Solution
from solver.status import Status
from solver.verify import Certificate, certify

ProblemLike = Problem | Mapping[str, Any] | str | Path


def as_problem(problem: ProblemLike) -> Problem:
    """A validated :class:`Problem` from a Problem, a problem-file dict, or a file path."""
    if isinstance(problem, Problem):
        return problem
    if isinstance(problem, (str, Path)):
        return Problem.read(problem)
    if isinstance(problem, Mapping):
        return Problem.from_dict(problem)
    raise TypeError(f"expected a Problem, a problem-file dict or a path, got {type(problem).__name__}")


def solve(problem: ProblemLike, backend: str = "auto", options: SolveOptions | None = None) -> Solution:
    """Solve a budget problem to a verified optimum.

    Parameters
    ----------
    problem : Problem, dict in problem-file form, or path to a problem file
    backend : "auto" (the fastest route that supports the problem, falling back to the next one
        if a plan fails verification) or a name from :func:`solver.backends.backend_names`.
    options : tolerances and time limit (:class:`~solver.backends.SolveOptions`)

    Returns
    -------
    Solution
        ``optimal`` only if the plan meets every rule on the exact curves and the dual bound
        proves it within ``gap_tol``; otherwise ``infeasible`` (with the conflicting rules),
        ``time_limit`` or ``error`` with a message. Malformed input raises ProblemError instead.
    """
    opts = options or SolveOptions()
    start = time.perf_counter()
    p = as_problem(problem)
    model = compile_problem(p)
    routes = candidates(model, backend)
    # The CLV/CAC reachability check costs a best-response pass over every cell; a proven
    # optimum makes it moot, so it runs only when no route proves one (see _diagnosis).
    conflicts = precheck(model, clv=False)
    if conflicts:
        return _bare(p, Status.INFEASIBLE, "infeasible: " + "; ".join(conflicts), start)
    if not routes:  # pragma: no cover - "highs" supports every model
        return _bare(p, Status.ERROR, "no backend supports this problem", start)
    failures: list[str] = []
    fallback: Solution | None = None
    for route in routes:
        result = route.run(model, opts)
        if result.status is RouteStatus.INFEASIBLE:
            return _bare(p, Status.INFEASIBLE, "infeasible: " + _diagnosis(model), start, route.name)
        solution = verified_solution(model, result, opts, start)
        if solution.is_optimal:
            return solution
        unreachable = unreachable_clv(model) if not failures else []  # route-independent: once
        if unreachable:
            return _bare(p, Status.INFEASIBLE, "infeasible: " + "; ".join(unreachable), start, route.name)
        failures.append(f"{route.name}: {solution.message}")
        if fallback is None or (solution.allocation and not fallback.allocation):
            fallback = solution
    message = "no route proved an optimum: " + " | ".join(failures)
    if fallback is not None:
        return replace(fallback, message=message, seconds=time.perf_counter() - start)
    return _bare(p, Status.ERROR, message, start)


def _diagnosis(model: ArrayModel) -> str:
    """Why a problem that a route proved infeasible has no plan: segments that cannot reach their
    CLV/CAC floor at all, else a minimal set of conflicting rules."""
    unreachable = unreachable_clv(model)
    return "; ".join(unreachable) if unreachable else conflicting_rules(model)


def _bare(p: Problem, status: Status, message: str, start: float, backend: str = "") -> Solution:
    return Solution(status=status, message=message, name=p.name, objective_kind=p.objective.value,
                    budget=p.budget, backend=backend, seconds=time.perf_counter() - start)


def verified_solution(model: ArrayModel, result: RouteResult, opts: SolveOptions, start: float) -> Solution:
    """Turn a route's answer into a Solution after checking it on the exact curves."""
    p = model.problem
    if result.y is None:
        status = Status.TIME_LIMIT if result.status in (RouteStatus.TIME_LIMIT, RouteStatus.ITERATION_LIMIT) else Status.ERROR
        return _bare(p, status, result.message or f"{result.backend} returned no plan", start, result.backend)
    cert = certify(model, result.y, result.multipliers, feas_tol=opts.feas_tol)
    if result.multipliers is not None and cert.feasible and (
            not cert.proves_optimal(opts.gap_tol / 10) or cert.dual_mismatch > 1e-9):
        # Backends' multipliers are only as accurate as their tolerances: polish them so that
        # the bound is tight and the shadow prices are the plan's own.
        result = replace(result, multipliers=refine_multipliers(model, result.multipliers))
        cert = certify(model, result.y, result.multipliers, feas_tol=opts.feas_tol)
    if cert.proves_optimal(opts.gap_tol):
        status, message = Status.OPTIMAL, ""
    elif not cert.feasible:
        status = Status.ERROR
        message = f"{result.backend} returned a plan that breaks " + "; ".join(cert.violated_rules)
        return _bare(p, status, message, start, result.backend)
    else:
        limited = result.status in (RouteStatus.TIME_LIMIT, RouteStatus.ITERATION_LIMIT)
        status = Status.TIME_LIMIT if limited else Status.ERROR
        message = (f"{result.backend}: best plan is within {cert.relative_gap:.3g} (relative) of the proven "
                   f"bound, not {opts.gap_tol:g}" + (f" ({result.message})" if result.message else ""))
    return _solution(model, result, cert, status, message, start)


def _solution(model: ArrayModel, result: RouteResult, cert: Certificate, status: Status,
              message: str, start: float) -> Solution:
    assert result.y is not None
    p = model.problem
    table = p.table
    spend = result.y * model.money_scale
    has_acq = table.has_acquisitions
    current = table.current_spend
    plan = pd.DataFrame({
        "category": table.category,
        "segment": table.segment,
        "spend": spend,
        "revenue": model.revenue.value_at(spend),
        "marginal_revenue": model.revenue.derivative_at(spend),
        "new_customers": np.where(has_acq, table.acquisitions.value_at(spend), np.nan),
        "current_spend": current,
        "current_revenue": np.where(np.isnan(current), np.nan, model.revenue.value_at(np.nan_to_num(current))),
    })
    mult = result.multipliers or Multipliers.zeros(model)
    mult = mult.projected(model.equal_budget).scaled_by(model.dual_to_money)
    share_names = [model.categories[c] for c in model.share_category]
    clv_names = [model.segments[s] for s in model.clv_segment]
    duals = Duals(
        budget=float(mult.budget),
        category_min={n: float(v) for n, v in zip(share_names, mult.share_min)},
        category_max={n: float(v) for n, v in zip(share_names, mult.share_max)},
        segment_clv_cac={n: float(v) for n, v in zip(clv_names, mult.clv)},
    )
    return Solution(
        status=status,
        message=message,
        name=p.name,
        objective_kind=p.objective.value,
        budget=p.budget,
        objective=cert.objective,
        upper_bound=cert.upper_bound if np.isfinite(cert.upper_bound) else None,
        plan=plan,
        duals=duals if result.multipliers is not None else None,
        backend=result.backend,
        seconds=time.perf_counter() - start,
        iterations=result.iterations,
        max_violation=cert.max_violation,
    )
