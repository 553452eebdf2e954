"""Scenarios: every kind does what docs/scenarios.md says, bad files fail naming the path."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import yaml

from formulations.errors import ProblemError
from formulations.problem import Problem
from instances import random_problem
from solver import solve
from solver.plans import RuleChecker, plan_metrics, status_quo_spend
from solver.scenarios import BUDGET_GUIDE, compare_scenarios, evaluate, parse_scenarios, read_scenarios


def _by_name(results):
    return {r.name: r for r in results}


def _category_shares(result) -> dict[str, float]:
    p = result.problem
    return {c: float(result.spend[p.table.category == c].sum() / p.budget) for c in p.categories}


@pytest.fixture(scope="module")
def small() -> Problem:
    return Problem.from_dict(random_problem(4, families=("log", "exp_saturation", "power")))


def test_built_ins_on_the_sample(sample_report, sample_problem) -> None:
    table = sample_report.scenarios
    names = list(table["scenario"])
    assert names[:2] == ["optimal plan", "status quo"]
    for mix in BUDGET_GUIDE:   # each budget-guide mix, as given and re-optimized within its band
        assert f"{mix} (as given)" in names and f"{mix} (±5 pts)" in names
    plan = table.iloc[0]
    assert plan["revenue"] == pytest.approx(sample_report.solution.objective, rel=1e-12)
    sq = table.iloc[1]
    current = status_quo_spend(sample_problem)
    assert sq["status"] == "evaluated" and sq["revenue"] == pytest.approx(plan_metrics(sample_problem, current).revenue)
    assert plan["revenue_vs_status_quo"] == pytest.approx(plan["revenue"] - sq["revenue"])
    assert sq["revenue_vs_status_quo"] == pytest.approx(0.0)
    solved = table[table["status"] == "optimal"]
    # Nothing that meets the plan's rules beats the optimum (a mix replaces the plan's share rules:
    # it may beat it only by breaking them); the banded mixes are less constrained than the fixed
    # ones, so they do at least as well.
    keeps = solved[solved["breaks_plan_rules"] == ""]
    assert len(keeps) >= 2 and (keeps["revenue"] <= plan["revenue"] * (1 + 1e-9)).all()
    assert (solved.loc[solved["revenue"] > plan["revenue"] * (1 + 1e-9), "breaks_plan_rules"] != "").all()
    assert "budget" in sq["breaks_plan_rules"] or sq["breaks_plan_rules"] == ""
    for mix in BUDGET_GUIDE:
        fixed, band = (table.set_index("scenario").loc[f"{mix} ({k})"] for k in ("as given", "±5 pts"))
        if fixed["status"] == "optimal":
            assert band["revenue"] >= fixed["revenue"] * (1 - 1e-9)
    assert {f"cac_{s}" for s in sample_problem.segment_names} <= set(table.columns)
    assert table.loc[table["status"] == "optimal", "binding"].str.len().gt(0).all()


def test_mix_as_given_fixes_shares_and_holds_unnamed_categories_at_the_status_quo(sample_problem) -> None:
    results = _by_name(evaluate(sample_problem, {"version": 1, "include": ["budget_guide"]}))
    current = status_quo_spend(sample_problem)
    ads_share = current[sample_problem.table.category == "advertising"].sum() / current.sum()
    for mix_name, mix in BUDGET_GUIDE.items():
        fixed = results[f"{mix_name} (as given)"]
        assert "advertising held at its status-quo share" in fixed.note
        if fixed.status != "optimal":
            assert fixed.status == "infeasible" and fixed.message
            continue
        shares = _category_shares(fixed)
        assert shares["advertising"] == pytest.approx(ads_share, abs=1e-8)
        for cat, share in mix.items():
            assert shares[cat] == pytest.approx(share * (1 - ads_share), abs=1e-8), (mix_name, cat)
        band = results[f"{mix_name} (±5 pts)"]
        if band.status == "optimal":
            for cat, share in _category_shares(band).items():
                target = ads_share if cat == "advertising" else mix[cat] * (1 - ads_share)
                width = 0 if cat == "advertising" else 0.05
                assert abs(share - target) <= width + 1e-8, (mix_name, cat)


def test_others_zero_gives_unnamed_categories_nothing(small: Problem) -> None:
    doc = {"version": 1, "include": [], "scenarios": [
        {"name": "two", "mix": {"cat0": 0.6, "cat1": 0.4}, "others": "zero", "mix_mode": "as_given",
         "category_shares": {"cat0": None, "cat1": None, "cat2": None}}]}
    (r,) = evaluate(edit_mins(small), doc)
    assert r.status == "optimal", r.message
    shares = _category_shares(r)
    assert shares == pytest.approx({"cat0": 0.6, "cat1": 0.4, "cat2": 0.0}, abs=1e-8)
    assert "cat2 held at 0" in r.note


def edit_mins(problem: Problem) -> Problem:
    """The problem without cell minimums (so that a category can get nothing)."""
    d = problem.to_dict()
    for c in d["cells"]:
        c["min_spend"] = 0.0
    d["category_shares"] = {}
    return Problem.from_dict(d)


def test_budget_stress_lock_and_overrides(small: Problem) -> None:
    base = solve(small)
    cell = small.cells[4]
    doc = {"version": 1, "include": ["plan"], "scenarios": [
        {"name": "+20%", "budget_factor": 1.2},
        {"name": "fixed budget", "budget": 900_000},
        {"name": "half revenue", "stress": [{"segment": s, "factor": 0.5} for s in small.segment_names]},
        {"name": "locked", "lock": [{"category": cell.category, "segment": cell.segment, "spend": "current"}]},
        {"name": "no shares", "category_shares": {c: None for c in small.category_shares}},
        {"name": "strict CLV", "segments": {"seg0": {"min_clv_cac_ratio": 50.0}}},
    ]}
    r = _by_name(evaluate(small, doc))
    assert r["+20%"].problem.budget == pytest.approx(1.2 * small.budget)
    assert r["fixed budget"].problem.budget == 900_000
    # Scaling every revenue curve by 0.5 halves the objective and keeps the optimal plan.
    half = r["half revenue"]
    assert half.solution.objective == pytest.approx(0.5 * base.objective, rel=1e-8)
    assert np.allclose(half.spend, r["optimal plan"].spend, atol=1e-4 * small.budget)
    locked = r["locked"]
    assert locked.spend[4] == pytest.approx(cell.current_spend, abs=1e-6 * small.budget)
    assert locked.solution.objective <= base.objective * (1 + 1e-9)
    assert r["no shares"].problem.category_shares == {}
    assert r["no shares"].solution.objective >= base.objective * (1 - 1e-9)
    strict = r["strict CLV"]
    assert strict.status in ("optimal", "infeasible")
    assert strict.problem.segments["seg0"].min_clv_cac_ratio == 50.0


def test_infeasible_scenario_is_a_row_with_the_solvers_message(small: Problem) -> None:
    doc = {"version": 1, "include": [], "scenarios": [
        {"name": "impossible", "category_shares": {"cat0": {"min": 0.7}, "cat1": {"min": 0.7}}}]}
    table = compare_scenarios(small, doc)
    assert list(table["status"]) == ["infeasible"]
    assert "category minimums add to" in table["message"].iloc[0] and np.isnan(table["revenue"].iloc[0])


def test_status_quo_without_current_spend_is_skipped() -> None:
    d = random_problem(2, families=("log",))
    for c in d["cells"]:
        c.pop("current_spend")
    table = compare_scenarios(Problem.from_dict(d), {"version": 1, "include": ["plan", "status_quo"]})
    assert list(table["status"]) == ["optimal", "skipped"]
    assert table["revenue_vs_status_quo"].isna().all()


def test_status_quo_lists_the_rules_it_breaks(small: Problem) -> None:
    d = small.to_dict()
    d["cells"][0]["current_spend"] = 0.0   # the status quo no longer spends the budget
    p = Problem.from_dict(d)
    (sq,) = evaluate(p, {"version": 1, "include": ["status_quo"]})
    assert sq.status == "evaluated" and "breaks the budget" in sq.note
    assert RuleChecker(p).breaks(sq.spend)


def test_a_yaml_scenarios_file(tmp_path: Path, small: Problem) -> None:
    path = tmp_path / "scenarios.yaml"
    path.write_text(yaml.safe_dump({"version": 1, "include": ["plan"], "defaults": {"band": 0.1},
                                    "scenarios": [{"name": "even", "mix": {"cat0": 0.34, "cat1": 0.33, "cat2": 0.33},
                                                   "mix_mode": "band"}]}))
    scenarios, include = read_scenarios(path)
    assert include == ["plan"] and scenarios[0].spec["band"] == 0.1
    table = compare_scenarios(small, path)
    assert list(table["scenario"]) == ["optimal plan", "even (±10 pts)"]


@pytest.mark.parametrize("doc, message", [
    ({"version": 2}, "version: expected 1"),
    ({"version": 1, "include": ["everything"]}, "include: expected a list drawn from"),
    ({"version": 1, "scenarios": [{"budget": 5}]}, "scenarios[0]: missing required key 'name'"),
    ({"version": 1, "scenarios": [{"name": "x", "budjet": 5}]}, "budjet"),
    ({"version": 1, "scenarios": [{"name": "x", "budget": -5}]}, "scenarios[0].budget"),
    ({"version": 1, "scenarios": [{"name": "x", "budget": 5, "budget_factor": 2}]}, "not both"),
    ({"version": 1, "scenarios": [{"name": "x", "stress": [{"factor": 0.5}]}]}, "give a category, a segment or both"),
    ({"version": 1, "scenarios": [{"name": "x", "stress": [{"segment": "s", "factor": 0}]}]}, "stress[0].factor"),
    ({"version": 1, "scenarios": [{"name": "x", "mix": {"a": 0.5, "b": 0.4}}]}, "must add up to 1"),
    ({"version": 1, "scenarios": [{"name": "x", "status_quo": True, "budget": 5}]}, "takes no other keys"),
    ({"version": 1, "scenarios": [{"name": "x"}, {"name": "x"}]}, "unique"),
])
def test_malformed_scenarios_name_the_path(doc: dict, message: str) -> None:
    with pytest.raises(ProblemError) as e:
        parse_scenarios(doc)
    assert message in str(e.value)


@pytest.mark.parametrize("scenario, message", [
    ({"name": "x", "lock": [{"category": "cat0", "segment": "nope", "spend": 5}]}, "no cell ('cat0', 'nope')"),
    ({"name": "x", "mix": {"nope": 1.0}}, "mix.nope: no such category"),
    ({"name": "x", "stress": [{"category": "nope", "factor": 2}]}, "stress[0]: no cell matches"),
    ({"name": "x", "category_shares": {"cat0": {"min": 2}}}, "category_shares.cat0.min"),
])
def test_references_are_checked_against_the_problem(small: Problem, scenario: dict, message: str) -> None:
    with pytest.raises(ProblemError) as e:
        evaluate(small, {"version": 1, "include": [], "scenarios": [scenario]})
    assert message in str(e.value) and "scenarios[0]" in str(e.value)


def test_scenarios_file_in_json(tmp_path: Path, small: Problem) -> None:
    path = tmp_path / "s.json"
    path.write_text(json.dumps({"version": 1, "include": [], "scenarios": [{"name": "more", "budget_factor": 1.1}]}))
    table = compare_scenarios(small, path)
    assert table["budget"].iloc[0] == pytest.approx(1.1 * small.budget)


DOC = Path(__file__).resolve().parents[2] / "docs" / "scenarios.md"


def test_the_documented_example_runs_and_every_key_is_documented(sample_problem) -> None:
    from solver.scenarios import _DEFAULT_KEYS, _FILE_KEYS, _SCENARIO_KEYS

    text = DOC.read_text()
    example = yaml.safe_load(text.split("```yaml", 1)[1].split("```", 1)[0])
    scenarios, include = parse_scenarios(example)
    assert include == ["plan", "status_quo", "budget_guide"] and len(scenarios) == 8
    table = compare_scenarios(sample_problem, example | {"include": []}).set_index("scenario")
    assert set(table["status"]) <= {"optimal", "infeasible", "evaluated"}
    assert table.loc["20% more budget", "budget"] == pytest.approx(1.2 * sample_problem.budget)
    assert table.loc["today", "status"] == "evaluated"
    assert len(table) == 9   # "my mix" gives two rows
    for key in _FILE_KEYS | _DEFAULT_KEYS | _SCENARIO_KEYS:
        assert f"`{key}`" in text, key
