"""report.json and report.xlsx: the same tables as the report, and numbers that agree with each other."""

from __future__ import annotations

import json
import math
import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from solver.report import Report, report_dict

ROOT = Path(__file__).resolve().parents[2]
TABLES = ("rules", "recommendations", "cells", "frontier", "targets", "scenarios")


@pytest.fixture(scope="module")
def data(sample_report_files) -> dict:
    return json.loads(sample_report_files["json"].read_text())


def test_json_has_every_table_and_is_strict_json(data, sample_report: Report) -> None:
    assert data["version"] == 1
    assert set(data) == {"version", "headline", "solution", "seconds", *TABLES}
    for name in TABLES:
        frame = sample_report.tables()[name]
        assert len(data[name]) == len(frame) and list(data[name][0]) == list(frame.columns), name
    assert data["solution"]["status"] == "optimal"
    assert data["solution"]["allocation"] == report_dict(sample_report)["solution"]["allocation"]
    text = json.dumps(data)
    assert "NaN" not in text and "Infinity" not in text
    assert data["rules"][0]["rule"] == "budget" and any(":" in r["rule"] for r in data["rules"])


def test_fit_tables_go_to_json_and_excel_only_with_the_fit(fit_report, data) -> None:
    report, files = fit_report
    assert "fit_cells" not in data and "fit_backtest" not in data          # the sample has no fit
    fitted = json.loads(files["json"].read_text())
    assert len(fitted["fit_cells"]) == len(report.fit_cells) == 10
    methods = {r["method"] for r in fitted["fit_backtest"]}
    assert methods == {"curves", "last_roi", "average_roi"}
    sheets = pd.read_excel(files["xlsx"], sheet_name=None)
    assert len(sheets["Fit_cells"]) == 10 and set(sheets["Fit_backtest"]["method"]) == methods


def test_headline_agrees_with_the_tables(data, sample_report: Report, sample_problem) -> None:
    h, rules, frontier = data["headline"], pd.DataFrame(data["rules"]), pd.DataFrame(data["frontier"])
    budget_row = rules[rules["kind"] == "budget"].iloc[0]
    assert h["next_dollar"] == pytest.approx(budget_row["shadow_price"], rel=1e-12)
    assert h["next_dollar_fixed_shares"] == pytest.approx(data["solution"]["duals"]["budget"], rel=1e-12)
    here = frontier[np.isclose(frontier["budget"], sample_problem.budget, rtol=1e-12)].iloc[0]
    assert here["objective"] == pytest.approx(h["objective"], rel=1e-9)   # the frontier passes through the plan
    assert here["slope"] == pytest.approx(h["next_dollar"], rel=1e-6)
    lo, hi = h["next_dollar_range"]
    assert lo <= sample_problem.budget <= hi
    targets = pd.DataFrame(data["targets"]).set_index("mode")
    assert h["profit_max_budget"] == targets.loc["max_budget_for_marginal_return", "budget"]
    assert h["status_quo_revenue_budget"] == targets.loc["min_budget_for_revenue", "budget"]
    assert targets.loc["min_budget_for_revenue", "value"] >= h["status_quo_revenue"] * (1 - 1e-8)
    scenarios = pd.DataFrame(data["scenarios"]).set_index("scenario")
    assert scenarios.loc["optimal plan", "revenue"] == pytest.approx(h["revenue"], rel=1e-12)
    assert scenarios.loc["status quo", "revenue"] == pytest.approx(h["status_quo_revenue"], rel=1e-12)
    recs = pd.DataFrame(data["recommendations"])
    assert recs["objective_gain"].sum() == pytest.approx(h["objective"] - h["status_quo_revenue"], rel=1e-9)


def test_xlsx_has_the_same_tables(sample_report_files, sample_report: Report) -> None:
    sheets = pd.read_excel(sample_report_files["xlsx"], sheet_name=None)
    assert list(sheets) == ["Summary", *(t.capitalize() for t in TABLES), "Allocation"]
    for name in TABLES:
        frame, sheet = sample_report.tables()[name], sheets[name.capitalize()]
        assert list(sheet.columns) == list(frame.columns), name
        assert len(sheet) == len(frame), name
        for col in frame.columns:
            if pd.api.types.is_float_dtype(frame[col]):
                assert np.allclose(sheet[col].to_numpy(dtype=float), frame[col].to_numpy(dtype=float),
                                   rtol=1e-12, equal_nan=True), (name, col)
    summary = sheets["Summary"].set_index("item")
    assert float(summary.loc["next_dollar", "value"]) == pytest.approx(sample_report.headline["next_dollar"])
    readings = summary.loc["reading", "value"].tolist()
    assert readings[0].startswith("One more dollar of budget earns $")
    assert any("exact, re-solved without it" in r for r in readings)
    allocation = sheets["Allocation"]
    assert allocation["spend"].sum() == pytest.approx(sample_report.problem.budget, rel=1e-9)


def test_docs_describe_every_json_field(data) -> None:
    """docs/report.md documents each headline key and each column of each table."""
    doc = (ROOT / "docs" / "report.md").read_text()
    documented = set(re.findall(r"`([a-z_<>]+)`", doc))
    fields = set(data["headline"]) | set(data["seconds"]) | {"version", "headline", "solution", "seconds"}
    for name in TABLES:
        fields |= {name} | {re.sub(r"^cac_.*", "cac_<segment>", c) for c in data[name][0]}
    assert sorted(fields - documented) == []


def test_numbers_in_json_are_finite_or_null(data) -> None:
    def walk(value):
        if isinstance(value, float):
            assert math.isfinite(value)
        elif isinstance(value, dict):
            for v in value.values():
                walk(v)
        elif isinstance(value, list):
            for v in value:
                walk(v)
    walk(data)
