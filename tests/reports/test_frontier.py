"""The budget frontier: its slope is the budget dual (finite differences to 1e-5 relative)."""

from __future__ import annotations

import numpy as np
import pytest

from formulations.problem import Problem
from instances import random_problem
from solver import SolveOptions
from solver.frontier import budget_grid, frontier_table, slope_range
from solver.targets import profit_maximizing_budget

TIGHT = SolveOptions(gap_tol=1e-10)


def test_default_frontier_has_25_points_around_the_plan(sample_report, sample_problem) -> None:
    f = sample_report.frontier
    assert len(f) >= 25 and (f["status"] == "optimal").all()
    assert f["budget"].min() == pytest.approx(0.5 * sample_problem.budget)
    assert f["budget"].max() == pytest.approx(1.5 * sample_problem.budget)
    assert np.isclose(f["budget"], sample_problem.budget, rtol=1e-12).any()
    assert (np.diff(f["slope"]) <= 1e-7).all()  # concave frontier: the slope never rises
    assert {f"cac_{s}" for s in sample_problem.segment_names} <= set(f.columns)
    lo, hi = slope_range(f, sample_problem.budget)
    assert lo <= sample_problem.budget <= hi


@pytest.mark.parametrize("factor", [0.6, 1.0, 1.4])
def test_frontier_slope_matches_central_finite_differences(sample_problem, factor: float) -> None:
    b = factor * sample_problem.budget
    h = 1e-4 * sample_problem.budget  # error: gap/h ~ 1e-10 x 2e6 / 60 ~ 3e-6 abs; curvature h^2 ~ 1e-8
    f = frontier_table(sample_problem, budgets=[b - h, b, b + h], options=TIGHT)
    assert (f["status"] == "optimal").all()
    fd = (f["objective"].iloc[2] - f["objective"].iloc[0]) / (2 * h)
    assert fd == pytest.approx(f["slope"].iloc[1], rel=1e-5)


def test_frontier_slope_with_a_profit_objective_and_a_flexible_budget() -> None:
    problem = Problem.from_dict(random_problem(7, families=("log", "exp_saturation"), objective="profit",
                                               budget_mode="at_most", roi=3.0))
    b, h = problem.budget, 1e-4 * problem.budget
    f = frontier_table(problem, budgets=[b - h, b, b + h], options=TIGHT)
    fd = (f["objective"].iloc[2] - f["objective"].iloc[0]) / (2 * h)
    assert fd == pytest.approx(f["slope"].iloc[1], rel=1e-5, abs=1e-9)


def test_infeasible_budgets_are_rows_not_errors() -> None:
    d = random_problem(3, shares=False, clv=False)
    for c in d["cells"]:
        c["max_spend"] = d["budget"] / len(d["cells"]) * 1.2   # caps absorb at most 1.2 x the budget
    f = frontier_table(Problem.from_dict(d), points=5)
    assert list(f["status"]) == ["optimal", "optimal", "optimal", "infeasible", "infeasible"]
    assert f["message"].iloc[-1].startswith("infeasible")
    assert np.isnan(f["revenue"].iloc[-1])


def test_profit_maximizing_budget_is_where_the_next_dollar_earns_one(sample_problem, sample_report) -> None:
    r = profit_maximizing_budget(sample_problem)
    assert r.status == "found" and r.upper - r.lower <= 1e-6 * r.upper
    f = frontier_table(sample_problem, budgets=[r.lower, r.upper])
    # the crossing lies in [lower, upper], up to the accuracy of the duals (certified to ~1e-9)
    assert f["marginal_revenue"].iloc[0] >= 1.0 - 1e-7 and f["marginal_revenue"].iloc[1] <= 1.0 + 1e-7
    assert sample_report.headline["profit_max_budget"] == pytest.approx(r.budget, rel=1e-5)


def test_budget_grid_validates_its_arguments(sample_problem) -> None:
    with pytest.raises(ValueError, match="points >= 2"):
        budget_grid(sample_problem, points=1)
    assert len(budget_grid(sample_problem, 0.5, 1.5, 30)) == 31  # the plan's own budget is added
