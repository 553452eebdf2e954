"""The command line end to end, and the history + plan -> problem composition."""

from __future__ import annotations

import json
from importlib import resources
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from forecasting.history import read_history
from forecasting.synthetic import generate_history
from instances import random_problem
from solver.cli import main
from solver.planning import PlanError, fit_problem

DATA = Path(str(resources.files("solver") / "sample_data"))


@pytest.fixture(scope="module")
def small_history(tmp_path_factory: pytest.TempPathFactory) -> Path:
    history, _ = generate_history(seed=3, months=24, noise=0.05)
    keep = history[history["category"].isin(["technology", "advertising"])]
    path = tmp_path_factory.mktemp("hist") / "history.csv"
    keep.to_csv(path, index=False)
    return path


def _plan(**extra: Any) -> dict[str, Any]:
    return {"version": 1, "name": "test plan", "budget": 150_000, "periods": 3,
            "category_shares": {"technology": {"min": 0.2, "max": 0.8}}} | extra


def test_demo_writes_every_output_and_proves_optimality(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["demo", "--out", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert "optimal: revenue $" in out and "One more dollar of budget earns $" in out
    solution = json.loads((tmp_path / "solution.json").read_text())
    assert solution["status"] == "optimal"
    assert solution["upper_bound"] - solution["objective"] <= 1e-8 * solution["objective"]
    allocation = pd.read_csv(tmp_path / "allocation.csv")
    assert len(allocation) == 30 and allocation["spend"].sum() == pytest.approx(600_000, rel=1e-9)
    assert (tmp_path / "summary.md").read_text().startswith("# Q1 2026 email marketing budget (sample)")
    assert (tmp_path / "problem.json").exists() and (tmp_path / "fit_report.csv").exists()


def test_optimize_writes_solution_allocation_and_summary(tmp_path: Path) -> None:
    problem = tmp_path / "p.json"
    problem.write_text(json.dumps(random_problem(2)))
    assert main(["optimize", str(problem), "--out", str(tmp_path / "out")]) == 0
    d = json.loads((tmp_path / "out" / "solution.json").read_text())
    assert d["status"] == "optimal" and len(d["allocation"]) == 9
    assert (tmp_path / "out" / "allocation.csv").exists() and (tmp_path / "out" / "summary.md").exists()
    assert main(["optimize", str(problem), "--out", str(tmp_path / "o2"), "--backend", "highs"]) == 0


def test_infeasible_problem_exits_2_with_the_conflict(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    raw = random_problem(2)
    raw["category_shares"] = {c: {"min": 0.4, "max": 1.0} for c in ("cat0", "cat1", "cat2")}
    problem = tmp_path / "p.json"
    problem.write_text(json.dumps(raw))
    assert main(["optimize", str(problem), "--out", str(tmp_path / "out")]) == 2
    assert "category minimums add to 120 % of the budget" in capsys.readouterr().err
    assert json.loads((tmp_path / "out" / "solution.json").read_text())["status"] == "infeasible"
    assert not (tmp_path / "out" / "allocation.csv").exists()


def test_bad_problem_file_is_one_line_and_writes_nothing(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    raw = random_problem(2)
    raw["cells"][3]["revenue"]["family"] = "quadratic"
    problem = tmp_path / "p.json"
    problem.write_text(json.dumps(raw))
    assert main(["optimize", str(problem), "--out", str(tmp_path / "out")]) == 1
    err = capsys.readouterr().err
    assert err.startswith("error: cells[3].revenue.family: unknown family 'quadratic'") and "Traceback" not in err
    assert not (tmp_path / "out").exists()
    assert main(["optimize", str(tmp_path / "missing.json")]) == 1
    assert "missing.json: no such file" in capsys.readouterr().err
    assert main(["validate", str(problem)]) == 1
    assert main(["optimize", str(problem), "--backend", "gurobi", "--out", str(tmp_path / "x")]) == 1
    assert main(["frobnicate"]) == 1


def test_fit_command_writes_a_problem_that_solves(tmp_path: Path, small_history: Path) -> None:
    plan = tmp_path / "plan.json"
    plan.write_text(json.dumps(_plan()))
    out = tmp_path / "problem.json"
    assert main(["fit", str(small_history), "--plan", str(plan), "--out", str(out),
                 "--fit-report", str(tmp_path / "fit.csv")]) == 0
    assert main(["validate", str(out)]) == 0
    assert main(["optimize", str(out), "--out", str(tmp_path / "o")]) == 0
    assert len(pd.read_csv(tmp_path / "fit.csv")) == 10


def test_fit_bootstrap_select_writes_posterior_samples_for_the_cvar_objective(tmp_path: Path, small_history: Path) -> None:
    plan = tmp_path / "plan.json"
    plan.write_text(json.dumps(_plan()))
    out = tmp_path / "problem.json"
    assert main(["fit", str(small_history), "--plan", str(plan), "--out", str(out),
                 "--combine", "select", "--bootstrap", "6", "--seed", "2"]) == 0
    cells = json.loads(out.read_text())["cells"]
    sampled = [c for c in cells if c["revenue"]["family"] != "pwl"]
    lists = [[v for v in c["revenue"].values() if isinstance(v, list)] for c in sampled]
    assert sampled and all(ls and all(len(v) == 6 for v in ls) for ls in lists)
    assert main(["optimize", str(out), "--out", str(tmp_path / "mean")]) == 0
    assert main(["optimize", str(out), "--out", str(tmp_path / "cvar"), "--cvar-alpha", "0.34"]) == 0
    mean = json.loads((tmp_path / "mean" / "solution.json").read_text())["objective"]
    worst = json.loads((tmp_path / "cvar" / "solution.json").read_text())["objective"]
    assert worst < mean  # the mean of the worst third of samples is below the mean of all


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--carryover", "often"], "--carryover: expected a number in [0, 1) or 'auto', got 'often'"),
        (["--carryover", "1.5"], "carryover must be a number in [0, 1) or 'auto', got 1.5"),
        (["--combine", "vote"], "combine must be 'average' or 'select', got 'vote'"),
        (["--nonparametric", "xgboost"], "nonparametric must be distinct names among"),
    ],
)
def test_fit_options_are_checked(tmp_path: Path, small_history: Path, capsys: pytest.CaptureFixture[str],
                                 args: list[str], message: str) -> None:
    plan = tmp_path / "plan.json"
    plan.write_text(json.dumps(_plan()))
    out = tmp_path / "problem.json"
    assert main(["fit", str(small_history), "--plan", str(plan), "--out", str(out), *args]) == 1
    assert message in capsys.readouterr().err
    assert not out.exists()


@pytest.mark.parametrize(
    ("plan", "message"),
    [
        (_plan(category_shares={"crypto": {"min": 0.1}}), "category_shares.crypto: category 'crypto' is not in the history"),
        (_plan(segments={"martians": {"clv": 100}}), "segments.martians: segment 'martians' is not in the history"),
        (_plan(periods=0), "periods: must be a finite number > 0, got 0"),
        (_plan(cells=[]), "plan: unknown key(s) ['cells']"),
        (_plan(cell_bounds=[{"category": "technology", "segment": "nobody", "max_spend": 5}]),
         "cell_bounds[0]: cell technology / nobody is not in the history"),
    ],
)
def test_plan_errors_name_the_key(small_history: Path, plan: dict[str, Any], message: str) -> None:
    with pytest.raises(PlanError) as err:
        fit_problem(small_history, plan)
    assert message in str(err.value)


def test_bad_history_row_is_named_on_the_command_line(tmp_path: Path, small_history: Path,
                                                      capsys: pytest.CaptureFixture[str]) -> None:
    lines = small_history.read_text().splitlines()
    fields = lines[4].split(",")
    fields[3] = "-12"  # negative spend on CSV line 5
    lines[4] = ",".join(fields)
    bad = tmp_path / "bad.csv"
    bad.write_text("\n".join(lines) + "\n")
    plan = tmp_path / "plan.json"
    plan.write_text(json.dumps(_plan()))
    assert main(["fit", str(bad), "--plan", str(plan), "--out", str(tmp_path / "p.json")]) == 1
    err = capsys.readouterr().err
    assert "line 5" in err and "spend" in err
    assert not (tmp_path / "p.json").exists()


def test_plan_curves_are_time_scaled_and_status_quo_is_last_periods(small_history: Path) -> None:
    problem, fitted = fit_problem(small_history, _plan(max_spend_vs_history=2.0,
                                                       cell_bounds=[{"category": "technology", "segment": "vip",
                                                                     "min_spend": 1000.0, "max_spend": 9000.0}]))
    history = read_history(small_history)
    last3 = sorted(history["period"].unique())[-3:]
    for cell in problem.cells:
        monthly = fitted[cell.key].revenue.curve
        x = np.array([3_000.0, 30_000.0])
        np.testing.assert_allclose(cell.revenue.value(x), 3 * monthly.value(x / 3), rtol=1e-12)
        rows = history[(history["category"] == cell.category) & (history["segment"] == cell.segment)]
        assert cell.current_spend == pytest.approx(rows[rows["period"].isin(last3)]["spend"].sum())
        if cell.key == ("technology", "vip"):
            assert (cell.min_spend, cell.max_spend) == (1000.0, 9000.0)
        else:
            assert cell.max_spend == pytest.approx(2.0 * rows["spend"].max() * 3)
