"""Assertions shared by the solver tests: what ``optimal`` and ``infeasible`` promise.

- ``optimal``: ``0 <= upper_bound - objective <= gap_tol x max(|objective|, 1e-9 x budget)``, and
  the independent checker (:func:`solver.check.check_solution`) accepts every claim;
- ``infeasible``: a Farkas-type proof (``solution.infeasibility.bound < 0``) that the checker
  re-verifies, and a message;
- the routes to test on an instance come from the registry (every route that supports it).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from formulations.model import compile_problem
from formulations.problem import Problem
from solver import Solution, Status
from solver.backends import backend_names, get_backend
from solver.check import check_solution

GAP_TOL = 1e-8
GAP_FLOOR = 1e-9


def as_dict(problem: Mapping[str, Any] | Problem) -> Mapping[str, Any]:
    return problem.to_dict() if isinstance(problem, Problem) else problem


def assert_checker_ok(problem: Mapping[str, Any] | Problem, sol: Solution, what: str = "") -> None:
    """The independent checker accepts every claim of ``sol``."""
    report = check_solution(as_dict(problem), sol.to_dict())
    assert report.ok, f"{what} {sol.status.value} ({sol.backend}): checker refuses:\n{report.summary()}"


def denominator(sol: Solution) -> float:
    assert sol.objective is not None
    return max(abs(sol.objective), GAP_FLOOR * sol.budget)


def assert_certified_optimal(problem: Mapping[str, Any] | Problem, sol: Solution, what: str = "",
                             gap_tol: float = GAP_TOL) -> None:
    """``sol`` is optimal, its gap is in ``[0, gap_tol x max(|objective|, 1e-9 budget)]`` and the
    checker accepts it."""
    assert sol.status is Status.OPTIMAL, f"{what}: {sol.status.value} ({sol.backend}): {sol.message}"
    assert sol.objective is not None and sol.upper_bound is not None, what
    assert sol.gap_denominator == denominator(sol), (what, sol.gap_denominator, denominator(sol))
    gap = sol.upper_bound - sol.objective
    assert 0.0 <= gap <= gap_tol * denominator(sol), (
        f"{what}: upper_bound - objective = {gap!r}, needs 0 <= gap <= {gap_tol:g} x {denominator(sol)!r}")
    assert_checker_ok(problem, sol, what)


def assert_proven_infeasible(problem: Mapping[str, Any] | Problem, sol: Solution, what: str = "") -> None:
    """``sol`` is infeasible with a proof (bound < 0), a message, and the checker accepts it."""
    assert sol.status is Status.INFEASIBLE, f"{what}: {sol.status.value} ({sol.backend}): {sol.message}"
    assert sol.infeasibility is not None, f"{what}: infeasible without a proof: {sol.message}"
    assert sol.infeasibility.bound < 0, (what, sol.infeasibility)
    assert sol.message.strip(), what
    assert sol.allocation == () and sol.objective is None, what
    assert_checker_ok(problem, sol, what)


def optimal_or_proven_infeasible(problem: Mapping[str, Any] | Problem, sol: Solution, what: str = "") -> bool:
    """True for a certified optimum; False for an infeasibility with a checked proof; fails otherwise."""
    if sol.status is Status.INFEASIBLE:
        assert_proven_infeasible(problem, sol, what)
        return False
    assert_certified_optimal(problem, sol, what)
    return True


def supporting_backends(problem: Mapping[str, Any] | Problem) -> list[str]:
    """Every registered route that says it supports ``problem``."""
    p = problem if isinstance(problem, Problem) else Problem.from_dict(problem)
    model = compile_problem(p)
    return [name for name in backend_names() if get_backend(name).supports(model)]
