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

import json
import os
import time
from collections.abc import Mapping
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from formulations.feasibility import InfeasibilityProof, conflicts, lp_proof, unreachable_clv
from formulations.lagrangian import Multipliers, refine_multipliers
from formulations.model import ArrayModel, compile_problem
from formulations.problem import Problem
from formulations.repair import snap_to_rules
from formulations.result import RouteResult, RouteStatus
from solver.backends import SolveOptions, candidates
from solver.solution import Duals, InfeasibilityCertificate, Solution
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


#: Set (to anything but "" or "0") to have every solve() re-check its answer with the
#: independent checker (solver.check) and raise SelfCheckError if a claim fails; the test suite
#: sets it, so every solution it produces is checked.
SELF_CHECK_ENV = "BUDGET_SOLVER_SELF_CHECK"


#: Models of up to this many cells check CLV/CAC reachability before any route runs.
EARLY_CLV_CHECK = 200_000


class SelfCheckError(AssertionError):
    """A solution whose claims the independent checker refuted (only with SELF_CHECK_ENV set)."""


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
        proves ``0 <= bound - objective <= gap_tol x max(|objective|, 1e-9 x budget)``;
        ``infeasible`` only with a proof (:attr:`Solution.infeasibility`, naming the conflicting
        rules); otherwise ``time_limit`` or ``error`` with a message. A route that fails or
        raises is reported in the message and the next route is tried. Malformed input raises
        ProblemError instead.
    """
    p = as_problem(problem)
    solution = _solve(p, backend, options or SolveOptions())
    if os.environ.get(SELF_CHECK_ENV, "") not in ("", "0"):
        _self_check(p, solution)
    return solution


def _self_check(p: Problem, solution: Solution) -> None:
    from solver.check import check_solution

    report = check_solution(p.to_dict(), json.loads(json.dumps(solution.to_dict())))
    if not report.ok:
        raise SelfCheckError(f"the checker refutes a {solution.status.value} solution of {p.name!r}:\n"
                             + report.summary())


def _solve(p: Problem, backend: str, opts: SolveOptions) -> Solution:
    start = time.perf_counter()
    model = compile_problem(p)
    routes = candidates(model, backend)
    # The CLV/CAC reachability check costs a best-response pass over every cell: up front on
    # models of up to EARLY_CLV_CHECK cells (a route would spend far longer failing on an
    # unreachable floor), else only when no route proves an optimum (which makes it moot).
    clv_checked = model.n <= EARLY_CLV_CHECK
    proofs = conflicts(model, clv=clv_checked)
    if proofs:
        return infeasible_solution(model, proofs, start)
    failures: list[str] = []
    fallback: Solution | None = None
    for route in routes:
        remaining = opts.time_limit - (time.perf_counter() - start)
        if remaining <= 0:
            failures.append(f"{route.name}: not tried, the time limit of {opts.time_limit:g} s was reached")
            break
        try:
            result = route.run(model, replace(opts, time_limit=remaining))
        except Exception as e:  # noqa: BLE001 - a route's crash is a failed route, not a failed solve
            failures.append(f"{route.name} raised {type(e).__name__}: {e}")
            continue
        if result.status is RouteStatus.INFEASIBLE:
            proof = prove_infeasible(model, clv=not clv_checked)
            if proof is not None:
                return infeasible_solution(model, [proof], start, route.name)
            clv_checked = True
            failures.append(f"{route.name}: reported infeasible, but no proof of it was found"
                            + (f" ({result.message})" if result.message else ""))
            continue
        solution = verified_solution(model, result, opts, start)
        if solution.is_optimal:
            return solution
        if not clv_checked:  # route-independent: once
            clv_checked = True
            unreachable = unreachable_clv(model)
            if unreachable:
                return infeasible_solution(model, unreachable, start, route.name)
        failures.append(f"{route.name}: {solution.message}")
        if fallback is None or (solution.allocation and not fallback.allocation):
            fallback = solution
    if fallback is None or not fallback.allocation:
        proof = prove_infeasible(model, clv=not clv_checked)
        if proof is not None:
            return infeasible_solution(model, [proof], start)
    message = "no route proved an optimum: " + " | ".join(failures)
    if fallback is not None:
        return replace(fallback, message=message, seconds=time.perf_counter() - start)
    return _bare(p, Status.ERROR, message, start)


def prove_infeasible(model: ArrayModel, clv: bool = True) -> InfeasibilityProof | None:
    """A proof that ``model`` has no feasible plan, or None: a segment that cannot reach its
    CLV/CAC floor (unless ``clv`` is False: already checked), else the phase-one LP's."""
    unreachable = unreachable_clv(model) if clv else []
    if unreachable:
        return unreachable[0]
    return lp_proof(model)


def infeasible_solution(model: ArrayModel, proofs: list[InfeasibilityProof], start: float,
                        backend: str = "") -> Solution:
    """The ``infeasible`` solution: every conflict's sentence, and the first proof as the
    certificate (multipliers are dimensionless; the bound in currency)."""
    p = model.problem
    proof = proofs[0]
    certificate = InfeasibilityCertificate(
        multipliers=_by_rule(model, proof.multipliers),
        bound=float(proof.value * model.money_scale),
        rules=proof.rules,
    )
    message = "infeasible: " + "; ".join(r for pr in proofs for r in pr.reasons)
    return replace(_bare(p, Status.INFEASIBLE, message, start, backend), infeasibility=certificate,
                   fixed_cells=_fixed_cells(model))


def _by_rule(model: ArrayModel, mult: Multipliers) -> Duals:
    """Multipliers keyed by the rules' names (the budget, categories, segments)."""
    share_names = [model.categories[c] for c in model.share_category]
    clv_names = [model.segments[s] for s in model.clv_segment]
    return Duals(
        budget=float(mult.budget),
        category_min={n: float(v) for n, v in zip(share_names, mult.share_min)},
        category_max={n: float(v) for n, v in zip(share_names, mult.share_max)},
        segment_clv_cac={n: float(v) for n, v in zip(clv_names, mult.clv)},
    )


def _fixed_cells(model: ArrayModel) -> tuple[dict[str, Any], ...]:
    cells = model.problem.cells
    return tuple({"category": cells[f.cell].category, "segment": cells[f.cell].segment,
                  "spend": float(model.lower[f.cell] * model.money_scale), "by": f.by, "rule": f.rule}
                 for f in model.fixed)


def _bare(p: Problem, status: Status, message: str, start: float, backend: str = "") -> Solution:
    return Solution(status=status, message=message, name=p.name, objective_kind=p.objective.value,
                    budget=p.budget, backend=backend, seconds=time.perf_counter() - start)


def verified_solution(model: ArrayModel, result: RouteResult, opts: SolveOptions, start: float) -> Solution:
    """Turn a route's answer into a Solution after checking it on the exact curves.

    The plan is first moved onto the linear rules exactly (:func:`formulations.repair.snap_to_rules`)
    so that its objective is one a truly feasible plan earns; then every rule is checked and the
    dual bound computed (:func:`solver.verify.certify`).
    """
    p = model.problem
    if result.y is None:
        status = Status.TIME_LIMIT if result.status in (RouteStatus.TIME_LIMIT, RouteStatus.ITERATION_LIMIT) else Status.ERROR
        return _bare(p, status, result.message or f"{result.backend} returned no plan", start, result.backend)
    result = replace(result, y=snap_to_rules(model, result.y, opts.feas_tol))
    assert result.y is not None
    cert = certify(model, result.y, result.multipliers, feas_tol=opts.feas_tol)
    kinked = bool((model.revenue.families() | model.acquisitions.families()) & {"pwl", "linear"})
    if result.multipliers is not None and cert.feasible and (
            not cert.proves_optimal(opts.gap_tol / 10) or (cert.dual_mismatch > 1e-9 and not kinked)):
        # Backends' multipliers are only as accurate as their tolerances: polish them so that
        # the bound is tight and the shadow prices are the plan's own. (At a kink of a pwl or
        # linear curve a whole range of spends answers the same prices: there the mismatch
        # says nothing about the prices.)
        result = replace(result, multipliers=refine_multipliers(model, result.multipliers))
        cert = certify(model, result.y, result.multipliers, feas_tol=opts.feas_tol)
    if cert.proves_optimal(opts.gap_tol):
        status, message = Status.OPTIMAL, ""
    elif not cert.feasible:
        status = Status.ERROR
        message = f"{result.backend} returned a plan that breaks " + "; ".join(cert.violated_rules)
        return _bare(p, status, message, start, result.backend)
    elif cert.bound_below_objective:
        status = Status.ERROR
        message = (f"{result.backend}: the plan is worth {cert.objective:.12g}, more than the proven bound "
                   f"{cert.upper_bound:.12g}: it cannot be truly feasible, so nothing is proven")
    else:
        limited = result.status in (RouteStatus.TIME_LIMIT, RouteStatus.ITERATION_LIMIT)
        status = Status.TIME_LIMIT if limited else Status.ERROR
        message = (f"{result.backend}: best plan is within {cert.relative_gap:.3g} (relative) of the proven "
                   f"bound, not {opts.gap_tol:g}" + (f" ({result.message})" if result.message else ""))
    return _solution(model, result, cert, status, message, start, opts)


def _solution(model: ArrayModel, result: RouteResult, cert: Certificate, status: Status,
              message: str, start: float, opts: SolveOptions) -> Solution:
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
    duals = _by_rule(model, mult.projected(model.equal_budget).scaled_by(model.dual_to_money))
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
        gap_denominator=cert.denominator,
        gap_tol=opts.gap_tol,
        feas_tol=opts.feas_tol,
        fixed_cells=_fixed_cells(model),
    )
