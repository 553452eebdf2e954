"""CVaR over posterior samples: exact against brute force, proven bound, explicit statuses."""

from __future__ import annotations

import json

import numpy as np
import pytest

from forecasting.curves import Curve
from formulations.errors import ProblemError
from formulations.problem import Problem
from formulations.risk import cvar
from solver import solve
from solver.risk import envelope_projection, mixture_problem, solve_cvar
from solver.status import Status

BUDGET = 100.0
# 3 joint samples: cell "steady" is certain, cell "risky" pays more on average but collapses in
# sample 2 -- the worst-case plan must move spend to "steady".
STEADY = {"family": "log", "a": 60.0, "b": 20.0}
RISKY = {"family": "log", "a": [150.0, 130.0, 10.0], "b": [25.0, 25.0, 25.0]}


def tiny(**extra) -> dict:
    cells = [{"category": "steady", "segment": "s", "revenue": STEADY},
             {"category": "risky", "segment": "s", "revenue": RISKY}]
    return {"version": 1, "budget": BUDGET, "cells": cells} | extra


def brute_force(alpha: float, objective: str = "revenue") -> tuple[float, float]:
    """Grid search over x_steady (x_risky = budget - x_steady): best CVaR and its x_steady."""
    x = np.linspace(0.0, BUDGET, 200_001)
    steady = Curve.from_dict(STEADY).value(x)
    a, b = np.array(RISKY["a"]), np.array(RISKY["b"])
    scenarios = steady[:, None] + a[None, :] * np.log1p((BUDGET - x)[:, None] / b[None, :])
    if objective == "profit":
        scenarios = scenarios - BUDGET
    values = np.array([cvar(row, alpha) for row in scenarios[::50]])  # coarse pass
    k = int(np.argmax(values)) * 50
    fine = slice(max(k - 50, 0), k + 51)
    local = np.array([cvar(row, alpha) for row in scenarios[fine]])
    return float(local.max()), float(x[fine][int(np.argmax(local))])


@pytest.mark.parametrize("alpha", [1 / 3, 0.5, 2 / 3, 0.9])
def test_cvar_matches_brute_force_on_two_cells_three_samples(alpha):
    sol = solve_cvar(tiny(), alpha)
    assert sol.status is Status.OPTIMAL, sol.message
    best, x_steady = brute_force(alpha)
    assert sol.objective == pytest.approx(best, rel=1e-7)
    assert sol.objective >= best - 1e-6 * abs(best)  # a grid cannot beat the exact optimum
    assert sol.upper_bound >= sol.objective - 1e-9 and sol.upper_bound == pytest.approx(best, rel=1e-7)
    spend = dict(zip(sol.plan["category"], sol.plan["spend"]))
    assert spend["steady"] == pytest.approx(x_steady, abs=2e-3 * BUDGET)
    assert spend["steady"] + spend["risky"] == pytest.approx(BUDGET, rel=1e-9)


def test_alpha_one_is_the_mean_objective_and_risk_aversion_moves_spend_to_the_certain_cell():
    mean = solve(tiny())
    whole = solve_cvar(tiny(), 1.0)
    assert whole.objective == pytest.approx(mean.objective, rel=1e-8)
    worst = solve_cvar(tiny(), 1 / 3)
    steady = {s.category: s.spend for s in worst.allocation}["steady"]
    assert steady > {s.category: s.spend for s in mean.allocation}["steady"] + 10.0
    assert worst.objective < whole.objective


def test_profit_objective_and_rules_are_kept():
    data = tiny(objective="profit", category_shares={"risky": {"min": 0.6, "max": 1.0}})
    sol = solve_cvar(data, 1 / 3)
    assert sol.status is Status.OPTIMAL, sol.message
    spend = {s.category: s.spend for s in sol.allocation}
    assert spend["risky"] >= 0.6 * BUDGET - 1e-7  # the share rule binds (the risk-averse plan wants less)
    x = spend["steady"]
    scenarios = (Curve.from_dict(STEADY).value(x) + np.array(RISKY["a"]) * np.log1p((BUDGET - x) / 25.0)
                 - BUDGET)
    assert sol.objective == pytest.approx(cvar(scenarios, 1 / 3), rel=1e-9)


def test_bound_is_a_mixture_problem_that_bounds_every_plan():
    q = envelope_projection(np.array([0.2, 0.5, 0.7]), 0.5)
    assert q.sum() == pytest.approx(1.0) and q.max() <= 1 / (0.5 * 3) + 1e-15 and q.min() >= 0
    mixture = mixture_problem(Problem.from_dict(tiny()), q)
    bound = solve(mixture).upper_bound
    for x in np.linspace(0.0, BUDGET, 11):  # CVaR of any plan <= the mixture's optimum
        scenarios = Curve.from_dict(STEADY).value(x) + np.array(RISKY["a"]) * np.log1p((BUDGET - x) / 25.0)
        assert cvar(scenarios, 0.5) <= bound + 1e-9


def test_cvar_of_sorted_samples():
    values = np.array([5.0, 1.0, 3.0, 2.0])
    assert cvar(values, 0.25) == 1.0
    assert cvar(values, 0.5) == 1.5
    assert cvar(values, 0.375) == pytest.approx((1.0 + 0.5 * 2.0) / 1.5)
    assert cvar(values, 1.0) == pytest.approx(values.mean())


@pytest.mark.parametrize("alpha", [0.0, -0.1, 1.5, "0.5", True])
def test_bad_alpha_is_rejected(alpha):
    with pytest.raises(ProblemError, match=r"cvar alpha must be a number in \(0, 1\]"):
        solve_cvar(tiny(), alpha)


def test_unequal_sample_counts_are_rejected():
    data = tiny()
    data["cells"][0]["revenue"] = {"family": "log", "a": [60.0, 61.0], "b": 20.0}
    with pytest.raises(ProblemError, match=r"same number of posterior samples .* \[2, 3\]"):
        solve_cvar(data, 0.5)


def test_infeasible_rules_give_an_explicit_status():
    data = tiny(category_shares={"risky": {"min": 0.7, "max": 1.0}, "steady": {"min": 0.5, "max": 1.0}})
    sol = solve_cvar(data, 0.5)
    assert sol.status is Status.INFEASIBLE and "infeasible" in sol.message and sol.plan is None


def test_optimize_command_takes_cvar_alpha(tmp_path):
    from typer.testing import CliRunner

    from solver.cli import app

    path = tmp_path / "problem.json"
    path.write_text(json.dumps(tiny()))
    result = CliRunner().invoke(app, ["optimize", str(path), "--out", str(tmp_path / "out"),
                                      "--cvar-alpha", "0.3333333333333333"])
    assert result.exit_code == 0, result.output
    written = json.loads((tmp_path / "out" / "solution.json").read_text())
    assert written["objective"] == pytest.approx(brute_force(1 / 3)[0], rel=1e-7)
    bad = CliRunner().invoke(app, ["optimize", str(path), "--out", str(tmp_path / "bad"), "--cvar-alpha", "2"])
    assert bad.exit_code == 1
