"""The independent checker (`solver.check`, `budget-solver check`): real solutions pass, tampered ones fail,
its curve formulas agree with the solve path's, and it imports nothing of the solve path."""

from __future__ import annotations

import ast
import copy
import json
import math
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from typer.testing import CliRunner

from forecasting.curves import Curve
from instances import ALL_FAMILIES, random_curve, random_problem
# `from solver import solve` binds the module when `solver` resolves as a namespace package
# (tests/solver has no __init__.py and .venv/bin/pytest does not put the repo first on sys.path)
from solver.solve import solve
from solver.check import check_solution
from solver.check_curves import cell_function, concave_max_upper, parse_curve
from solver.cli import app

SMOOTH = ("log", "exp_saturation", "power", "michaelis_menten", "hill", "logistic")
CLOSED_FORM = ("log", "exp_saturation", "michaelis_menten", "power")
SOLVER_ROOT = Path(__file__).resolve().parents[2] / "solver"


def _failed(report: Any) -> set[str]:
    return {c.name for c in report.failures}


def _claim(report: Any, name: str) -> Any:
    return next(c for c in report.claims if c.name == name)


# --------------------------------------------------------------------------------------------
# Curve formulas, independent of forecasting.curves
# --------------------------------------------------------------------------------------------

@pytest.mark.parametrize("family", ALL_FAMILIES)
@pytest.mark.parametrize("samples", [0, 5])
def test_curve_formulas_match_the_solve_path(family: str, samples: int) -> None:
    rng = np.random.default_rng(10 * ALL_FAMILIES.index(family) + samples)
    for _ in range(20):
        spec = random_curve(rng, family, spend=rng.uniform(1e3, 1e6), roi=rng.uniform(0.5, 4.0), samples=samples)
        mine, ref = parse_curve(spec, "c"), Curve.from_dict(spec)
        x = np.concatenate([[0.0], rng.uniform(0, 1, 3) * 1e-3, rng.uniform(0, 8e6, 200)])
        # 1e-12 relative; atol only for subnormal results (logistic slopes far out: exp(-z) vs 1/cosh^2 overflow)
        np.testing.assert_allclose(mine.value(x), ref.value(x), rtol=1e-12, atol=1e-300)
        np.testing.assert_allclose(mine.slope(x), ref.derivative(x), rtol=1e-12, atol=1e-300)


@pytest.mark.parametrize("spec", [
    {"family": "power", "a": 3.0, "p": 0.4},
    {"family": "hill", "beta": [5.0, 6.0], "kappa": 2.0, "slope": [0.5, 0.9], "scale": 10.0},
])
def test_infinite_slope_at_zero(spec: dict[str, Any]) -> None:
    c = parse_curve(spec, "c")
    assert c.slope(np.array([0.0]))[0] == math.inf and c.value(np.array([0.0]))[0] == 0.0
    linear_at_zero = {**spec, **({"p": 1.0} if "p" in spec else {"slope": 1.0})}
    assert parse_curve(linear_at_zero, "c").slope(np.array([0.0]))[0] < math.inf


def test_curve_reader_refuses_non_concave_parameters() -> None:
    with pytest.raises(ValueError, match="concave"):
        parse_curve({"family": "hill", "beta": 1.0, "kappa": 1.0, "slope": 2.2}, "cells[0].revenue")
    with pytest.raises(ValueError, match="concave"):
        parse_curve({"family": "pwl", "points": [[0, 0], [1, 1], [2, 3]]}, "c")


def test_concave_max_upper_is_a_tight_upper_estimate() -> None:
    rng = np.random.default_rng(0)
    for _ in range(200):
        a, b, p = rng.uniform(1, 1e6), rng.uniform(1, 1e5), rng.uniform(0.1, 5)
        f = cell_function(parse_curve({"family": "log", "a": a, "b": b}, "c"), None, p, 0.0)
        hi = rng.uniform(1, 1e6)
        x = min(max(a / p - b, 0.0), hi)                          # closed-form argmax
        true = a * math.log1p(x / b) - p * x
        up = concave_max_upper(f, 0.0, hi)
        assert true <= up <= true + 1e-11 * max(a, p * hi)
    # infinite slope at 0: a sqrt(x) - p x has its max a^2 / (4 p) at x = (a / 2p)^2
    f = cell_function(parse_curve({"family": "power", "a": 10.0, "p": 0.5}, "c"), None, 7.0, 0.0)
    assert 100 / 28 <= concave_max_upper(f, 0.0, 1e6) <= 100 / 28 * (1 + 1e-12)


# --------------------------------------------------------------------------------------------
# Real solutions pass
# --------------------------------------------------------------------------------------------

REAL_CASES = [
    ("decomposition", dict(families=SMOOTH), 0),
    ("decomposition", dict(families=SMOOTH, samples=4), 3),
    ("decomposition", dict(families=SMOOTH, samples=2), 10),
    ("decomposition", dict(families=SMOOTH, caps=False, objective="profit"), 1),
    ("clarabel", {}, 0),
    ("clarabel", dict(samples=3, budget_mode="at_most"), 1),
    ("highs", dict(families=ALL_FAMILIES), 2),
    ("highs", dict(families=("pwl", "linear", "log"), caps=False), 4),
    ("waterfill", dict(families=CLOSED_FORM, shares=False, clv=False), 0),
    ("waterfill", dict(families=CLOSED_FORM, shares=False, clv=False, caps=False, samples=3), 2),
    ("auto", dict(families=ALL_FAMILIES, samples=3), 1),
    ("auto", dict(objective="profit", budget_mode="at_most"), 3),
    # Once reported optimal with the bound below the objective (slivers, tolerated violations):
    ("decomposition", dict(families=SMOOTH), 3),
    ("clarabel", {}, 2),
    ("waterfill", dict(families=CLOSED_FORM, shares=False, clv=False), 5),
    ("highs", dict(families=("pwl", "linear", "log")), 3),
]


@pytest.mark.parametrize(("backend", "kwargs", "seed"), REAL_CASES)
def test_real_solutions_pass(backend: str, kwargs: dict[str, Any], seed: int) -> None:
    problem = random_problem(seed, **kwargs)
    solution = json.loads(json.dumps(solve(problem, backend=backend).to_dict()))   # as the file holds it
    assert solution["status"] == "optimal"
    report = check_solution(problem, solution)
    assert report.ok, report.summary()
    names = {c.name for c in report.claims}
    assert {"allocation", "budget row", "objective", "Lagrangian bound", "optimality gap"} <= names


@pytest.fixture(scope="module")
def solved() -> tuple[dict[str, Any], dict[str, Any]]:
    """A solution with a binding category maximum and a binding CLV/CAC rule."""
    problem = random_problem(10, families=SMOOTH, samples=2)
    solution = json.loads(json.dumps(solve(problem, backend="decomposition").to_dict()))
    return problem, solution


def test_the_tampering_base_passes(solved: tuple[dict[str, Any], dict[str, Any]]) -> None:
    report = check_solution(*solved)
    assert report.ok, report.summary()


# --------------------------------------------------------------------------------------------
# Tampered solutions fail, naming the claim
# --------------------------------------------------------------------------------------------

def _tamper(solved: tuple[dict[str, Any], dict[str, Any]]) -> tuple[dict[str, Any], dict[str, Any]]:
    return solved[0], copy.deepcopy(solved[1])


def test_raised_objective_fails(solved: tuple[dict[str, Any], dict[str, Any]]) -> None:
    problem, sol = _tamper(solved)
    sol["objective"] *= 1.01
    assert "objective" in _failed(check_solution(problem, sol))


def test_spend_moved_to_break_a_share_fails(solved: tuple[dict[str, Any], dict[str, Any]]) -> None:
    problem, sol = _tamper(solved)
    budget, cat, rule = problem["budget"], *next(iter(problem["category_shares"].items()))
    rows = sol["allocation"]
    inside = [r for r in rows if r["category"] == cat]
    outside = max((r for r in rows if r["category"] != cat), key=lambda r: r["spend"])
    move = rule["max"] * budget - sum(r["spend"] for r in inside) + 1e-3 * budget
    assert move < outside["spend"]
    inside[0]["spend"] += move
    outside["spend"] -= move
    report = check_solution(problem, sol)
    assert "category maximum shares" in _failed(report)
    assert cat in _claim(report, "category maximum shares").detail


def test_upper_bound_below_objective_fails(solved: tuple[dict[str, Any], dict[str, Any]]) -> None:
    problem, sol = _tamper(solved)
    sol["upper_bound"] = sol["objective"] * (1 - 1e-6)
    assert {"optimality gap", "Lagrangian bound"} <= _failed(check_solution(problem, sol))


def test_flipped_dual_sign_fails(solved: tuple[dict[str, Any], dict[str, Any]]) -> None:
    problem, sol = _tamper(solved)
    group, name = next((g, n) for g in ("category_max", "segment_clv_cac", "category_min")
                       for n, v in sol["duals"][g].items() if v > 0)
    sol["duals"][group][name] *= -1
    report = check_solution(problem, sol)
    assert "dual signs" in _failed(report) and name in _claim(report, "dual signs").detail


def test_halved_dual_no_longer_proves_the_bound(solved: tuple[dict[str, Any], dict[str, Any]]) -> None:
    problem, sol = _tamper(solved)
    sol["duals"]["budget"] *= 0.5          # reported upper_bound kept: the duals now prove a larger g
    assert {"Lagrangian bound", "duals prove the gap"} <= _failed(check_solution(problem, sol))


def test_missing_cell_and_unknown_status_fail(solved: tuple[dict[str, Any], dict[str, Any]]) -> None:
    problem, sol = _tamper(solved)
    sol["allocation"] = sol["allocation"][1:]
    assert "allocation" in _failed(check_solution(problem, sol))
    problem, sol = _tamper(solved)
    sol["status"] = "great"
    assert "status" in _failed(check_solution(problem, sol))
    problem, sol = _tamper(solved)
    sol["duals"] = None
    assert "dual signs" in _failed(check_solution(problem, sol))


def test_other_status_plan_is_still_checked_and_needs_a_message(solved: tuple[dict[str, Any], dict[str, Any]]) -> None:
    problem, sol = _tamper(solved)
    sol["status"], sol["message"] = "time_limit", "stopped after 60 s"
    assert check_solution(problem, sol).ok
    sol["message"] = ""
    sol["allocation"][0]["spend"] += 0.01 * problem["budget"]
    assert {"message", "budget row", "objective"} <= _failed(check_solution(problem, sol))


# --------------------------------------------------------------------------------------------
# Infeasibility proofs
# --------------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def infeasible() -> tuple[dict[str, Any], dict[str, Any]]:
    """Category minimums add to 120 % of the budget."""
    problem = random_problem(2)
    problem["category_shares"] = {c: {"min": 0.4, "max": 1.0} for c in ("cat0", "cat1", "cat2")}
    solution = json.loads(json.dumps(solve(problem).to_dict()))
    assert solution["status"] == "infeasible"
    solution.pop("infeasibility", None)
    return problem, solution


def _with_proof(infeasible: tuple[dict[str, Any], dict[str, Any]], multipliers: dict[str, Any]) -> Any:
    problem, sol = infeasible[0], copy.deepcopy(infeasible[1])
    sol["infeasibility"] = {"multipliers": multipliers, "bound": None, "rules": ["category minimums"]}
    return check_solution(problem, sol)


def test_infeasible_without_a_proof_fails(infeasible: tuple[dict[str, Any], dict[str, Any]]) -> None:
    report = check_solution(*infeasible)
    assert "without a proof" in _claim(report, "infeasibility proof").detail and not report.ok


def test_correct_farkas_certificate_passes(infeasible: tuple[dict[str, Any], dict[str, Any]]) -> None:
    # 1 x (B - sum x) + sum_c 1 x (sum_c x - 0.4 B) = -0.2 B < 0 for every plan
    report = _with_proof(infeasible, {"budget": 1.0, "category_min": {c: 1.0 for c in ("cat0", "cat1", "cat2")}})
    assert report.ok, report.summary()


@pytest.mark.parametrize("multipliers", [
    {"budget": 0.5, "category_min": {"cat0": 1.0, "cat1": 1.0, "cat2": 1.0}},     # h > 0
    {"budget": 0.0},                                                             # h = 0, not < 0
    {"budget": 1.0, "category_min": {"cat0": -1.0, "cat1": 1.0, "cat2": 1.0}},    # wrong sign
])
def test_wrong_farkas_certificate_fails(infeasible: tuple[dict[str, Any], dict[str, Any]],
                                        multipliers: dict[str, Any]) -> None:
    assert "infeasibility proof" in _failed(_with_proof(infeasible, multipliers))


def test_hand_made_proof_for_minimums_above_the_budget() -> None:
    cells = [{"category": f"c{k}", "segment": "s", "min_spend": 60.0, "revenue": {"family": "log", "a": 9.0, "b": 5.0}}
             for k in range(2)]
    problem = {"version": 1, "budget": 100.0, "cells": cells}
    proof = {"multipliers": {"budget": 1.0}, "bound": -20.0, "rules": ["budget", "cell minimums"]}
    sol = {"status": "infeasible", "message": "cell minimums add to 120 > budget 100", "infeasibility": proof}
    report = check_solution(problem, sol)
    assert report.ok, report.summary()
    proof["multipliers"]["budget"] = -1.0
    assert not check_solution(problem, sol).ok


# --------------------------------------------------------------------------------------------
# Fixed cells: cells the rules force to their minimum, whose marginal revenue is infinite there
# --------------------------------------------------------------------------------------------

def _forced_zero(by: str) -> tuple[dict[str, Any], dict[str, Any]]:
    """A (log) takes the whole budget; B (sqrt, infinite slope at 0) is forced to 0 by rule ``by``."""
    a = {"category": "A", "segment": "s1", "revenue": {"family": "log", "a": 300.0, "b": 50.0}}
    b = {"category": "B", "segment": "s2", "revenue": {"family": "power", "a": 10.0, "p": 0.5},
         "acquisitions": {"family": "log", "a": 1.0, "b": 100.0}}
    problem: dict[str, Any] = {"version": 1, "budget": 100.0, "cells": [a, b]}
    duals: dict[str, Any] = {"budget": 2.0}                                # r_A'(100) = 300 / 150
    if by == "category_max":
        problem["category_shares"], duals["category_max"], rule = {"B": {"max": 0.0}}, {"B": 5.0}, "B"
    elif by == "budget":
        problem["category_shares"], duals["category_min"], rule = {"A": {"min": 1.0}}, {"A": 5.0}, "B"
    else:                          # clv / ratio x q'(0) = 50 x 0.01 <= 1: the segment can spend nothing
        problem["segments"] = {"s2": {"clv": 50.0, "min_clv_cac_ratio": 1.0}}
        duals["segment_clv_cac"], rule = {"s2": 5.0}, "s2"
    objective = 300.0 * math.log(3.0)
    sol = {"status": "optimal", "objective": objective, "upper_bound": objective, "duals": duals,
           "allocation": [{"category": "A", "segment": "s1", "spend": 100.0, "revenue": objective},
                          {"category": "B", "segment": "s2", "spend": 0.0, "revenue": 0.0}],
           "certificate": {"fixed_cells": [{"category": "B", "segment": "s2", "spend": 0.0, "by": by, "rule": rule}]}}
    return problem, sol


@pytest.mark.parametrize("by", ["category_max", "budget", "segment_clv_cac"])
def test_verified_fixed_cells_complete_the_bound(by: str) -> None:
    problem, sol = _forced_zero(by)
    report = check_solution(problem, sol)
    assert report.ok, report.summary()
    del sol["certificate"]                  # no finite multiplier prices B out: g > objective
    assert {"Lagrangian bound", "duals prove the gap"} <= _failed(check_solution(problem, sol))


def test_false_fixed_cell_claim_fails(solved: tuple[dict[str, Any], dict[str, Any]]) -> None:
    problem, sol = _tamper(solved)
    cell = problem["cells"][0]
    sol["certificate"] = {"fixed_cells": [{"category": cell["category"], "segment": cell["segment"],
                                           "spend": cell["min_spend"], "by": "category_max", "rule": cell["category"]}]}
    assert "fixed cells" in _failed(check_solution(problem, sol))
    problem, sol = _forced_zero("category_max")
    sol["certificate"]["fixed_cells"][0]["by"] = "segment_clv_cac"      # s2 has no CLV/CAC rule here
    assert "fixed cells" in _failed(check_solution(problem, sol))


# --------------------------------------------------------------------------------------------
# Command line and independence
# --------------------------------------------------------------------------------------------

def test_cli_exit_codes(tmp_path: Path, solved: tuple[dict[str, Any], dict[str, Any]]) -> None:
    problem, sol = solved
    (tmp_path / "p.json").write_text(json.dumps(problem))
    (tmp_path / "s.json").write_text(json.dumps(sol))
    run = lambda *args: CliRunner().invoke(app, ["check", *map(str, args)])  # noqa: E731
    ok = run(tmp_path / "p.json", tmp_path / "s.json")
    assert ok.exit_code == 0, ok.output
    assert "ok   budget row: |sum - budget| = " in ok.output and "FAIL" not in ok.output
    as_json = run(tmp_path / "p.json", tmp_path / "s.json", "--json")
    assert as_json.exit_code == 0 and json.loads(as_json.stdout)["ok"] is True
    bad = dict(sol, objective=sol["objective"] * 1.01)
    (tmp_path / "bad.json").write_text(json.dumps(bad))
    failed = run(tmp_path / "p.json", tmp_path / "bad.json")
    assert failed.exit_code == 4 and "FAIL objective" in failed.output
    missing = run(tmp_path / "p.json", tmp_path / "nope.json")
    assert missing.exit_code == 1 and "nope.json" in missing.output and "Traceback" not in missing.output
    broken = json.loads(json.dumps(problem))
    broken["cells"][1]["revenue"]["family"] = "quadratic"
    (tmp_path / "broken.json").write_text(json.dumps(broken))
    unreadable = run(tmp_path / "broken.json", tmp_path / "s.json")
    assert unreadable.exit_code == 1 and "broken.json: cells[1].revenue" in unreadable.output


def test_checker_imports_nothing_of_the_solve_path() -> None:
    allowed = {"__future__", "math", "collections.abc", "dataclasses", "pathlib", "typing", "numpy",
               "numpy.typing", "solver.check_curves", "formulations.problem"}
    for name in ("check.py", "check_curves.py"):
        tree = ast.parse((SOLVER_ROOT / name).read_text())
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom):
                assert node.module in allowed, (name, node.module)
                if node.module == "formulations.problem":
                    assert [a.name for a in node.names] == ["read_structured_file"]
            elif isinstance(node, ast.Import):
                assert all(a.name in allowed for a in node.names), (name, [a.name for a in node.names])
