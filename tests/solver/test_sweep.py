"""Warm-started budget sweeps return exactly what independent solves return."""

from __future__ import annotations

import numpy as np
import pytest

from formulations.problem import Problem
from instances import random_problem
from solver import Status, solve
from solver.sweep import budget_sweep

SMOOTH = ("log", "exp_saturation", "power", "michaelis_menten", "hill", "logistic")


@pytest.mark.parametrize("seed", range(3))
def test_sweep_matches_independent_solves(seed: int) -> None:
    problem = Problem.from_dict(random_problem(500 + seed, n_categories=4, n_segments=5, families=SMOOTH))
    budgets = list(np.linspace(0.6, 1.4, 9) * problem.budget)
    sweep = budget_sweep(problem, budgets)
    for b, s in zip(budgets, sweep):
        single = solve(problem.with_budget(b))
        assert s.status is single.status
        if single.is_optimal:
            assert s.objective == pytest.approx(single.objective, rel=1e-10)
            assert s.duals.budget == pytest.approx(single.duals.budget, rel=1e-7)
            assert s.gap <= 1e-9 * abs(s.objective)


def test_sweep_slope_is_the_budget_dual() -> None:
    problem = Problem.from_dict(random_problem(7, families=SMOOTH))
    b0 = problem.budget
    h = 1e-4 * b0
    low, mid, high = budget_sweep(problem, [b0 - h, b0, b0 + h])
    slope = (high.objective - low.objective) / (2 * h)
    assert slope == pytest.approx(mid.duals.budget, rel=1e-5)


def test_sweep_reports_infeasible_budgets_and_other_families() -> None:
    raw = random_problem(3, families=("pwl", "log"))
    raw["cells"][0]["min_spend"] = 400_000.0  # the smallest budgets cannot cover the minimums
    raw["cells"][0]["max_spend"] = 500_000.0
    budgets = [300_000.0, 1_000_000.0]
    small, big = budget_sweep(raw, budgets)
    assert small.status is Status.INFEASIBLE and "min_spend" in small.message
    assert big.status is solve({**raw, "budget": 1_000_000.0}).status
