"""Recommendations: every gain is the exact objective difference of two plans; no move breaks a rule."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from formulations.problem import Problem
from instances import random_problem
from solver import solve
from solver.plans import RuleChecker, cell_revenue, solution_spend, status_quo_spend
from solver.recommend import UNSPENT, recommendations
from solver.variants import edit


def _replay(problem: Problem, table: pd.DataFrame) -> list[np.ndarray]:
    """The plans after each move, rebuilt from the table's cells and amounts."""
    names = [f"{c} / {s}" for c, s in zip(problem.table.category, problem.table.segment)]
    x = status_quo_spend(problem)
    plans = [x.copy()]
    for row in table[table["kind"] == "move"].itertuples():
        if row.from_cell != UNSPENT:
            x[names.index(row.from_cell)] -= row.amount
        if row.to_cell != UNSPENT:
            x[names.index(row.to_cell)] += row.amount
        plans.append(x.copy())
    return plans


def _check(problem: Problem, feasible_start: bool) -> pd.DataFrame:
    sol = solve(problem)
    table = recommendations(sol, problem)
    assert len(table) >= 2
    plans = _replay(problem, table)
    moves = table[table["kind"] == "move"]
    checker = RuleChecker(problem)
    for k, row in enumerate(moves.itertuples()):
        exact = cell_revenue(problem, plans[k + 1]).sum() - cell_revenue(problem, plans[k]).sum()
        assert row.revenue_gain == pytest.approx(exact, rel=1e-12, abs=1e-6)
        assert row.objective_gain > 0 and row.to_marginal > row.from_marginal
        before, after = checker.violations(plans[k]), checker.violations(plans[k + 1])
        assert all(np.all(after[r] <= before[r] + checker.tol) for r in before)   # never breaks a rule more
        if feasible_start:
            assert checker.ok(plans[k + 1]) and row.still_breaks == ""
    total = sol.objective - cell_revenue(problem, status_quo_spend(problem)).sum()
    assert table["objective_gain"].sum() == pytest.approx(total, rel=1e-9)
    assert table["kind"].iloc[-1] in ("remaining", "move")
    return table


def test_sample_recommendations_are_exact_and_never_break_a_rule_more(sample_problem, sample_report) -> None:
    table = _check(sample_problem, feasible_start=False)
    assert table["action"].iloc[0].startswith(("move $", "put $"))
    assert "predicted revenue" in table["action"].iloc[0]
    pd.testing.assert_frame_equal(table, sample_report.recommendations)


def test_from_a_feasible_status_quo_every_plan_meets_every_rule() -> None:
    d = random_problem(21, families=("log", "exp_saturation", "michaelis_menten"))
    problem = Problem.from_dict(d)
    # Today's plan: the optimum of a distorted problem (feasible for the real rules by construction).
    distorted = solve(edit(problem, lambda p: [c.update(revenue={"family": "log", "a": 1e6, "b": 1e5 * (i + 1)})
                                               for i, c in enumerate(p["cells"])]))
    spend = solution_spend(distorted)
    if not RuleChecker(problem).ok(spend):
        pytest.skip("the distorted optimum breaks a CLV/CAC rule of the real curves")
    today = edit(problem, lambda p: [c.update(current_spend=float(v)) for c, v in zip(p["cells"], spend)])
    _check(today, feasible_start=True)


def test_no_status_quo_means_no_recommendations() -> None:
    d = random_problem(2, families=("log",))
    for c in d["cells"]:
        c.pop("current_spend")
    problem = Problem.from_dict(d)
    assert recommendations(solve(problem), problem).empty
