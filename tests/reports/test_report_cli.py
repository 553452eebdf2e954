"""``budget-solver report``, ``frontier`` and ``scenarios`` end to end (exit codes, files, messages)."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest

from instances import random_problem
from solver.cli import main


@pytest.fixture(scope="module")
def problem_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("cli") / "problem.json"
    path.write_text(json.dumps(random_problem(8, families=("log", "exp_saturation", "power"))))
    return path


def test_report_writes_html_xlsx_json_and_the_solution(problem_file: Path, tmp_path: Path,
                                                       capsys: pytest.CaptureFixture[str]) -> None:
    scenarios = tmp_path / "scenarios.json"
    scenarios.write_text(json.dumps({"version": 1, "include": ["plan", "status_quo"],
                                     "scenarios": [{"name": "lean", "budget_factor": 0.8}]}))
    out = tmp_path / "report"
    code = main(["report", str(problem_file), "--out", str(out), "--points", "4", "--scenarios", str(scenarios),
                 "--revenue-target", "1", "--roi-floor", "1.5"])
    assert code == 0
    assert {p.name for p in out.iterdir()} >= {"report.html", "report.xlsx", "report.json", "solution.json",
                                               "allocation.csv", "summary.md"}
    data = json.loads((out / "report.json").read_text())
    assert len(data["frontier"]) == 5          # 4 points and the plan's own budget
    assert [s["scenario"] for s in data["scenarios"]] == ["optimal plan", "status quo", "lean"]
    modes = [t["mode"] for t in data["targets"]]
    assert modes == ["max_budget_for_marginal_return", "min_budget_for_revenue", "min_budget_for_revenue",
                     "max_revenue_with_roi_floor"]
    assert "One more dollar of budget earns $" in capsys.readouterr().out


def test_report_without_checks_has_no_resolve_columns(problem_file: Path, tmp_path: Path) -> None:
    assert main(["report", str(problem_file), "--out", str(tmp_path), "--points", "3", "--no-checks"]) == 0
    rules = json.loads((tmp_path / "report.json").read_text())["rules"]
    assert rules and "removal_gain" not in rules[0]


def test_frontier_command(problem_file: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "f.csv"
    assert main(["frontier", str(problem_file), "--out", str(out), "--points", "7", "--low", "0.8",
                 "--high", "1.2"]) == 0
    table = pd.read_csv(out)
    assert len(table) == 7 and (table["status"] == "optimal").all()
    assert (table["slope"].diff().dropna() <= 1e-7).all()
    printed = capsys.readouterr().out
    assert "next dollar $" in printed and "wrote" in printed


def test_scenarios_command_and_a_bad_scenarios_file(problem_file: Path, tmp_path: Path,
                                                    capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "s.csv"
    assert main(["scenarios", str(problem_file), "--out", str(out)]) == 0
    assert list(pd.read_csv(out)["scenario"]) == ["optimal plan", "status quo"]   # no budget-guide categories
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({"version": 1, "scenarios": [{"name": "x", "stress": [{"segment": "seg0",
                                                                                     "factor": -1}]}]}))
    capsys.readouterr()
    assert main(["scenarios", str(problem_file), "--scenarios", str(bad), "--out", str(out)]) == 1
    err = capsys.readouterr().err
    assert "scenarios[0].stress[0].factor" in err and "Traceback" not in err
