"""Shadow prices against re-solves: every binding rule's dual is what relaxing it earns."""

from __future__ import annotations

import numpy as np
import pytest

from formulations.problem import Problem
from instances import random_problem
from solver import SolveOptions, solve
from solver.rulecheck import LINEAR_RULES, check_rules
from solver.sensitivity import cell_table, frontier_slope, rule_price, rule_table
from solver.variants import relaxed, without_rule

TIGHT = SolveOptions(gap_tol=1e-10)


def test_every_binding_rule_of_the_sample_matches_its_resolve(sample_report) -> None:
    rules = sample_report.rules
    binding = rules[rules["binding"]]
    kinds = set(binding["kind"])
    assert {"budget", "category_min", "category_max", "clv_cac", "cell_max"} <= kinds
    for row in binding.itertuples():
        assert row.agrees, row.rule
        assert row.resolve_price == pytest.approx(row.per_unit, rel=2e-3), row.rule
        if row.kind in ("budget", "budget_row"):
            continue
        assert row.removal_gain >= -1e-6 * abs(sample_report.solution.objective)
        assert row.binds_until > 0
        if row.kind in LINEAR_RULES:  # concavity: dropping the rule gains at most price x relaxation used
            assert row.removal_gain <= row.per_unit * row.binds_until * (1 + 1e-6) + 1e-6
            assert 0 <= row.price_valid_up_to <= row.binds_until
        assert "costs $" in row.reading and "exact, re-solved without it" in row.reading


def test_removal_gain_is_the_difference_of_two_certified_optima(sample_problem, sample_solution, sample_report) -> None:
    rules = sample_report.rules
    row = rules[(rules["kind"] == "category_max") & rules["binding"]].iloc[0]
    free = solve(without_rule(sample_problem, row["rule"]))
    assert free.objective - sample_solution.objective == pytest.approx(row["removal_gain"], rel=1e-6, abs=1e-3)
    # Beyond the relaxation the free plan uses, the rule no longer binds: the price is 0.
    past = relaxed(sample_problem, row["rule"], row["binds_until"] * 1.01)
    assert rule_price(solve(past), past, row["rule"]) == pytest.approx(0.0, abs=1e-7)


def test_budget_row_dual_is_the_slope_with_share_limits_fixed_in_dollars(sample_problem) -> None:
    sol = solve(sample_problem, options=TIGHT)
    h = 1e-4 * sample_problem.budget
    up = solve(relaxed(sample_problem, ("budget_row",), h), options=TIGHT)
    down = solve(relaxed(sample_problem, ("budget_row",), -h), options=TIGHT)
    fd = (up.objective - down.objective) / (2 * h)
    assert fd == pytest.approx(sol.duals.budget, rel=1e-5)
    # ... and differs from the frontier slope when share rules bind (they scale with the budget).
    assert abs(frontier_slope(sol, sample_problem) - sol.duals.budget) > 1e-3


def test_cell_bound_duals_match_resolves_on_random_instances() -> None:
    checked = 0
    for seed in range(4):
        problem = Problem.from_dict(random_problem(seed, n_categories=3, n_segments=3, families=("log", "power",
                                                                                                 "exp_saturation")))
        sol = solve(problem)
        cells = cell_table(sol, problem)
        assert np.allclose(cells.loc[cells["position"] == "interior", "reduced_gain"], 0.0, atol=1e-6)
        table = check_rules(sol, problem, validity_steps=0)
        for row in table[table["binding"] & table["kind"].isin(["cell_min", "cell_max"])].itertuples():
            assert row.agrees, (seed, row.rule)
            assert row.resolve_price == pytest.approx(row.per_unit, rel=1e-3, abs=1e-6)
            checked += 1
    assert checked >= 2


def test_rule_table_reads_in_money_and_lists_every_rule(sample_problem, sample_solution) -> None:
    table = rule_table(sample_solution, sample_problem)
    assert len(table[table["kind"] == "category_min"]) == len(sample_problem.category_shares)
    assert len(table[table["kind"] == "clv_cac"]) == 5
    budget = table[table["kind"] == "budget"].iloc[0]
    assert budget["reading"].startswith("One more dollar of budget earns $")
    assert all(r.endswith("would earn nothing.") for r in table.loc[~table["binding"], "reading"])
