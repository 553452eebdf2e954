"""Infeasible problems are results that name the conflict; unverified plans are never optimal."""

from __future__ import annotations

import copy
import json
from dataclasses import replace
from typing import Any

import numpy as np
import pytest

from formulations.model import compile_problem
from formulations.problem import Problem
from formulations.result import RouteResult, RouteStatus
from instances import random_problem
from solver import NotOptimalError, SolveOptions, Status, solve
from solver.solve import verified_solution as _verified


def _base() -> dict[str, Any]:
    return random_problem(5, n_categories=3, n_segments=2, clv=False)


def test_share_minimums_above_100_percent() -> None:
    raw = _base()
    for rule in raw["category_shares"].values():
        rule["min"], rule["max"] = 0.3833, 1.0
    sol = solve(raw)
    assert sol.status is Status.INFEASIBLE
    assert "category minimums add to 115 % of the budget" in sol.message
    assert sol.allocation == () and sol.objective is None


def test_budget_outside_cell_bounds() -> None:
    raw = _base()
    for cell in raw["cells"]:
        cell["min_spend"], cell["max_spend"] = 0.0, 1000.0
    sol = solve(raw)
    assert sol.status is Status.INFEASIBLE
    assert "max_spend add to only 6,000.00, less than the budget 1,000,000.00" in sol.message
    at_most = solve({**raw, "budget_mode": "at_most", "category_shares": {}})
    assert at_most.status is Status.OPTIMAL  # spending less than the budget is allowed there


def test_segment_that_cannot_reach_its_clv_cac_floor() -> None:
    raw = random_problem(5, n_categories=2, n_segments=2)
    raw["segments"]["seg1"]["clv"] = 1.0  # a customer is worth $1: no spend can meet CLV/CAC >= 3
    for cell in raw["cells"]:
        if cell["segment"] == "seg1":
            cell["min_spend"] = 1000.0
    sol = solve(raw)
    assert sol.status is Status.INFEASIBLE
    assert "segment seg1 cannot reach CLV/CAC >= 3" in sol.message


def test_rules_that_conflict_only_together_are_named() -> None:
    raw = _base()
    raw["category_shares"] = {"cat0": {"min": 0.6, "max": 1.0}, "cat1": {"min": 0.3, "max": 1.0}}
    # Each rule alone is fine; with cat2's cells forced to 30 %, 60 % + 30 % + 30 % > 100 %.
    for cell in raw["cells"]:
        cell.pop("max_spend", None)
        cell["min_spend"] = 0.0
        if cell["category"] == "cat2":
            cell["min_spend"] = 150_000.0  # two cells: cat2 takes at least 30 %
    sol = solve(raw)
    assert sol.status is Status.INFEASIBLE
    assert "minimum share of category cat0" in sol.message and "minimum share of category cat1" in sol.message
    assert sol.infeasibility is not None and sol.infeasibility.bound < 0


def test_infeasible_solution_file_has_status_and_message() -> None:
    raw = _base()
    raw["category_shares"] = {c: {"min": 0.5, "max": 1.0} for c in ("cat0", "cat1", "cat2")}
    d = solve(raw).to_dict()
    json.dumps(d)
    assert d["status"] == "infeasible" and d["message"].startswith("infeasible: ")
    assert d["allocation"] == [] and d["objective"] is None
    with pytest.raises(NotOptimalError, match="infeasible"):
        solve(raw).raise_for_status()


def test_a_plan_that_breaks_a_rule_is_never_returned_as_optimal() -> None:
    model = compile_problem(Problem.from_dict(_base()))
    good = solve(model.problem, backend="clarabel")
    y = np.array([c.spend for c in good.allocation]) / model.money_scale
    lying = RouteResult(RouteStatus.CONVERGED, "liar", y * 1.01, None)  # spends 101 % of the budget
    sol = _verified(model, lying, SolveOptions(), 0.0)
    assert sol.status is Status.ERROR and "breaks budget by" in sol.message and sol.allocation == ()


def test_a_feasible_plan_without_a_proof_is_not_optimal() -> None:
    model = compile_problem(Problem.from_dict(_base()))
    even = np.full(model.n, model.budget / model.n)
    even = np.clip(even, model.lower, model.upper)
    even *= model.budget / even.sum()
    claimed = RouteResult(RouteStatus.CONVERGED, "guess", even, None)
    sol = _verified(model, claimed, SolveOptions(), 0.0)
    assert sol.status is Status.ERROR and "not 1e-08" in sol.message
    limited = _verified(model, replace(claimed, status=RouteStatus.TIME_LIMIT), SolveOptions(), 0.0)
    assert limited.status is Status.TIME_LIMIT and limited.allocation  # best verified plan, honestly labelled


def test_solution_file_contract() -> None:
    raw = random_problem(3)
    sol = solve(raw)
    d = json.loads(json.dumps(sol.to_dict()))
    assert d["status"] == "optimal" and "message" not in d
    assert d["upper_bound"] >= d["objective"] - 1e-9 * abs(d["objective"])
    assert set(d["duals"]) == {"budget", "category_min", "category_max", "segment_clv_cac"}
    assert set(d["duals"]["category_min"]) == set(raw["category_shares"])
    assert set(d["duals"]["segment_clv_cac"]) == set(raw["segments"])
    assert all(v >= 0 for k in ("category_min", "category_max", "segment_clv_cac") for v in d["duals"][k].values())
    first = d["allocation"][0]
    assert {"category", "segment", "spend", "revenue", "marginal_revenue"} <= set(first)
    frame = sol.allocation_frame()
    assert len(frame) == len(raw["cells"]) and frame["spend"].sum() == pytest.approx(raw["budget"], rel=1e-9)


def test_problem_is_accepted_as_path_dict_or_object(tmp_path: Any) -> None:
    raw = random_problem(4, clv=False)
    path = tmp_path / "p.json"
    path.write_text(json.dumps(raw))
    objs = [solve(x).objective for x in (raw, path, str(path), Problem.from_dict(copy.deepcopy(raw)))]
    assert max(objs) - min(objs) <= 1e-9 * abs(objs[0])
    with pytest.raises(TypeError, match="expected a Problem"):
        solve(42)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="unknown backend 'gurobi'"):
        solve(raw, backend="gurobi")
