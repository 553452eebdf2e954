"""The one place where the report modules call :func:`solver.solve.solve` on problem variants.

A report runs dozens of solves on variants the user never wrote (other budgets, relaxed or
removed rules, scenarios). An infeasible or unproven variant is a *result* (a Solution with its
status and message), and so is an unexpected exception inside a solve route: it becomes a
``status: error`` solution whose message names the exception, so one bad variant shows up in the
report instead of aborting it. Input errors (:class:`~formulations.errors.ProblemError`) still
raise: they are the caller's to fix.
"""

from __future__ import annotations

import time

from formulations.errors import ProblemError
from formulations.problem import Problem
from solver.backends import SolveOptions
from solver.solution import Solution
from solver.solve import solve
from solver.status import Status


def resolve(problem: Problem, *, backend: str = "auto", options: SolveOptions | None = None) -> Solution:
    """``solve(problem)``, with any exception but a ProblemError turned into an error Solution."""
    start = time.perf_counter()
    try:
        return solve(problem, backend=backend, options=options)
    except ProblemError:
        raise
    except Exception as e:  # noqa: BLE001 - a failing route must not abort a whole report
        return Solution(status=Status.ERROR, message=f"the solver raised {type(e).__name__}: {e}",
                        name=problem.name, objective_kind=problem.objective.value, budget=problem.budget,
                        seconds=time.perf_counter() - start)
