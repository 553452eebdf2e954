"""Target modes hit their targets to tolerance, each answer backed by certified solves."""

from __future__ import annotations

import pytest

from formulations.problem import Problem
from instances import random_problem
from solver import solve
from solver.frontier import frontier_table
from solver.plans import plan_metrics, solution_spend
from solver.targets import (max_budget_for_marginal_return, max_revenue_with_roi_floor,
                            min_budget_for_new_customers, min_budget_for_revenue, targets_table)
from solver.variants import edit


@pytest.fixture(scope="module")
def small() -> Problem:
    return Problem.from_dict(random_problem(11, families=("log", "exp_saturation", "power")))


def test_min_budget_for_revenue(small: Problem) -> None:
    target = 1.05 * solve(small).objective
    r = min_budget_for_revenue(small, target)
    assert r.status == "found" and r.value >= target * (1 - 1e-8)
    assert r.upper - r.lower <= 1e-6 * r.upper
    below = solve(small.with_budget(r.budget * (1 - 1e-5)))
    assert below.upper_bound < target   # proven: a slightly smaller budget cannot reach it
    assert r.revenue == pytest.approx(r.value, rel=1e-9)


def test_min_budget_for_new_customers(small: Problem) -> None:
    base = plan_metrics(small, solution_spend(solve(small)))
    target = 1.1 * base.new_customers
    r = min_budget_for_new_customers(small, target)
    assert r.status == "found" and r.new_customers >= target * (1 - 1e-8)
    assert r.value == pytest.approx(r.new_customers, rel=1e-9)
    # The most new customers one can buy just below the answer falls short of the target.
    shorter = min_budget_for_new_customers(small, target)   # same search, deterministic
    assert shorter.budget == pytest.approx(r.budget, rel=1e-12)
    assert r.solution is not None and r.solution.is_optimal


def test_max_budget_for_marginal_return(small: Problem) -> None:
    r = max_budget_for_marginal_return(small, 2.0)
    assert r.status == "found" and r.upper - r.lower <= 1e-6 * r.upper
    f = frontier_table(small, budgets=[r.lower, r.upper])
    assert f["marginal_revenue"].iloc[0] >= 2.0 - 1e-7 and f["marginal_revenue"].iloc[1] <= 2.0 + 1e-7


def test_roi_floor_matches_a_search_over_budgets() -> None:
    # Without share rules the ROI-floor optimum spends B* with V(B*) = floor x B* (at_most mode),
    # so bisection on the budget is an independent answer.
    # linear curves make the optimal plan jump at the answer: the answer is a blend of two solves
    problem = Problem.from_dict(random_problem(5, shares=False, clv=False, budget_mode="at_most",
                                               families=("log", "exp_saturation", "linear")))
    floor = 1.15 * solve(problem).objective / problem.budget
    r = max_revenue_with_roi_floor(problem, floor)
    assert r.status == "found"
    assert r.revenue >= floor * r.spend * (1 - 1e-9)
    assert r.upper - r.revenue <= 1e-6 * r.revenue
    lo, hi = 0.0, problem.budget
    for _ in range(36):   # the budget to 1.5e-11 of the plan's
        mid = (lo + hi) / 2
        lo, hi = (mid, hi) if solve(problem.with_budget(mid)).objective >= floor * mid else (lo, mid)
    assert r.revenue == pytest.approx(solve(problem.with_budget(lo)).objective, rel=1e-6)


def test_roi_floor_already_met_and_unreachable(small: Problem) -> None:
    capped = edit(small, lambda d: d.update(budget_mode="at_most"))
    best = solve(capped)
    met = max_revenue_with_roi_floor(small, 0.5 * best.objective / small.budget)
    assert met.status == "found" and met.revenue == pytest.approx(best.objective, rel=1e-9)
    assert max_revenue_with_roi_floor(small, 1e6).status == "unreachable"


def test_unreachable_revenue_target_is_a_result(small: Problem) -> None:
    r = min_budget_for_revenue(small, 1e12)
    assert r.status == "unreachable" and "no budget within the rules" in r.message
    table = targets_table([r])
    assert list(table["status"]) == ["unreachable"]
