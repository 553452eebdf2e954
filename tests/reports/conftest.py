"""Shared fixtures of the report tests: the sample problem, solved once, reported once.

``sample_problem.json`` is the demo's problem (30 cells fitted from the bundled history, the Q1
plan's six share rules and five CLV/CAC rules) frozen as a problem file, so that the precision
tests (duals against finite differences, rule costs against re-solves) do not move when the fitting
changes. The live fit runs through the CLI in ``tests/solver`` (``budget-solver demo``).
"""

from __future__ import annotations

from pathlib import Path

import pytest

from formulations.problem import Problem
from solver import solve
from solver.report import Report, build_report, write_report
from solver.solution import Solution

SAMPLE = Path(__file__).with_name("sample_problem.json")


@pytest.fixture(scope="session")
def sample_problem() -> Problem:
    """The demo's problem, frozen (see the module docstring)."""
    return Problem.read(SAMPLE)


@pytest.fixture(scope="session")
def sample_solution(sample_problem: Problem) -> Solution:
    return solve(sample_problem).raise_for_status()


@pytest.fixture(scope="session")
def sample_report(sample_problem: Problem, sample_solution: Solution) -> Report:
    """The full report of the sample (built-in scenarios, 25-point frontier, re-solve checks)."""
    return build_report(sample_problem, sample_solution)


@pytest.fixture(scope="session")
def fit_report(tmp_path_factory: pytest.TempPathFactory) -> tuple[Report, dict[str, Path]]:
    """A report built with its fit: 10 cells fitted from a 24-month synthetic history (two
    categories), a small frontier and no re-solve checks; and its written files."""
    from forecasting.synthetic import generate_history
    from solver.planning import fit_problem

    history, _ = generate_history(seed=5, months=24, noise=0.08)
    history = history[history["category"].isin(["technology", "advertising"])]
    plan = {"version": 1, "name": "fit report test", "budget": 150_000, "periods": 3,
            "category_shares": {"technology": {"min": 0.2, "max": 0.8}}}
    problem, fit = fit_problem(history, plan)
    report = build_report(problem, check=False, frontier_points=5, fit=fit,
                          scenarios={"version": 1, "include": ["plan", "status_quo"]})
    out = tmp_path_factory.mktemp("fit-report")
    return report, {p.suffix.lstrip("."): p for p in write_report(report, out)}


@pytest.fixture(scope="session")
def sample_report_files(sample_report: Report, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    out = tmp_path_factory.mktemp("report")
    return {p.suffix.lstrip("."): p for p in write_report(sample_report, out)}
