"""Problem file v1: round trips in every format and one clear message per kind of bad input."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import pytest
import yaml

from formulations.errors import ProblemError, ProblemFileError
from formulations.problem import BudgetMode, Objective, Problem

EXAMPLE: dict[str, Any] = {
    "version": 1,
    "name": "Q1 2027 email budget",
    "budget": 600000,
    "budget_mode": "equal",
    "objective": "revenue",
    "cells": [
        {
            "category": "content_creation",
            "segment": "new_subscribers",
            "revenue": {"family": "log", "a": 250000, "b": 40000},
            "acquisitions": {"family": "exp_saturation", "a": 1800, "b": 60000},
            "min_spend": 0,
            "max_spend": 200000,
            "current_spend": 45000,
        },
        {
            "category": "technology",
            "segment": "new_subscribers",
            "revenue": {"family": "hill", "beta": [3e5, 3.2e5], "kappa": 1.2, "slope": 0.8, "scale": 1e5},
            "acquisitions": {"family": "log", "a": 900, "b": 20000},
        },
    ],
    "category_shares": {"content_creation": {"min": 0.05, "max": 0.40}},
    "segments": {"new_subscribers": {"clv": 180.0, "min_clv_cac_ratio": 3.0}},
}


def test_example_from_the_format_document_parses() -> None:
    p = Problem.from_dict(EXAMPLE)
    assert p.budget == 600000 and p.budget_mode is BudgetMode.EQUAL and p.objective is Objective.REVENUE
    assert p.cells[0].upper(p.budget) == 200000 and p.cells[1].upper(p.budget) == 600000
    assert p.cells[1].revenue.n_samples == 2
    assert p.segments["new_subscribers"].spend_per_customer_cap == pytest.approx(60.0)
    assert p.categories == ("content_creation", "technology")


@pytest.mark.parametrize("suffix", [".json", ".yaml", ".toml"])
def test_round_trip_through_files(tmp_path: Path, suffix: str) -> None:
    p = Problem.from_dict(EXAMPLE)
    path = tmp_path / f"problem{suffix}"
    if suffix == ".json":
        p.write(path)
    elif suffix == ".yaml":
        path.write_text(yaml.safe_dump(p.to_dict()))
    else:
        pytest.importorskip("tomli_w") if False else None
        path.write_text(_to_toml(p.to_dict()))
    again = Problem.read(path)
    assert again.to_dict() == p.to_dict()


def _to_toml(d: dict[str, Any]) -> str:
    """Tiny TOML writer for this test's shapes (tables, arrays of tables, scalars, lists)."""
    lines: list[str] = []

    def scalar(v: Any) -> str:
        return json.dumps(v)

    def table(prefix: str, obj: dict[str, Any]) -> None:
        simple = {k: v for k, v in obj.items() if not isinstance(v, (dict, list)) or
                  (isinstance(v, list) and not any(isinstance(x, dict) for x in v))}
        lines.append(f"[{prefix}]" if prefix else "")
        for k, v in simple.items():
            lines.append(f'"{k}" = {scalar(v)}')
        for k, v in obj.items():
            if isinstance(v, dict):
                table(f'{prefix}."{k}"' if prefix else f'"{k}"', v)
            elif isinstance(v, list) and any(isinstance(x, dict) for x in v):
                for item in v:
                    name = f'{prefix}."{k}"' if prefix else f'"{k}"'
                    lines.append(f"[[{name}]]")
                    for kk, vv in item.items():
                        if isinstance(vv, dict):
                            lines.append(f'"{kk}" = {{ ' + ", ".join(f'"{a}" = {scalar(b)}' for a, b in vv.items()) + " }")
                        else:
                            lines.append(f'"{kk}" = {scalar(vv)}')

    table("", d)
    return "\n".join(lines) + "\n"


def _broken(change: Any) -> dict[str, Any]:
    d = copy.deepcopy(EXAMPLE)
    change(d)
    return d


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda d: d.update(extra=1), "problem: unknown key(s) ['extra']"),
        (lambda d: d.pop("budget"), "problem: missing required key 'budget'"),
        (lambda d: d.update(version=2), "version: this reader understands version 1, got 2"),
        (lambda d: d.update(budget=float("nan")), "budget: must be a finite number > 0"),
        (lambda d: d.update(budget="lots"), "budget: expected a number, got 'lots'"),
        (lambda d: d.update(budget_mode="maybe"), "budget_mode: expected one of 'equal', 'at_most', got 'maybe'"),
        (lambda d: d.update(cells=[]), "cells: expected a non-empty list of cells"),
        (lambda d: d["cells"][0].update(colour="red"), "cells[0]: unknown key(s) ['colour']"),
        (lambda d: d["cells"][1].pop("revenue"), "cells[1]: missing required key 'revenue'"),
        (lambda d: d["cells"][0].update(min_spend=-5), "cells[0].min_spend: must be a finite number >= 0, got -5"),
        (lambda d: d["cells"][0].update(max_spend=10, min_spend=20), "cells[0]: max_spend 10 is below min_spend 20"),
        (lambda d: d["cells"][0].update(current_spend=float("inf")), "cells[0].current_spend: must be a finite number"),
        (lambda d: d["cells"][1].update(category="content_creation"),
         "cells[1]: duplicate cell (category 'content_creation', segment 'new_subscribers'); it already appears as cells[0]"),
        (lambda d: d["cells"][1]["revenue"].update(slope=1.5), "cells[1].revenue: hill with slope 1.5 > 1 is S-shaped"),
        (lambda d: d["cells"][1]["revenue"].update(kappa=[1, 2, 3]), "cells[1].revenue: posterior-sample lists must all have the same length"),
        (lambda d: d["cells"][0]["revenue"].update(b=0), "cells[0].revenue.b: must satisfy 0 < b, got 0"),
        (lambda d: d["category_shares"].update(vip={"min": 0.1}), "category_shares.vip: category 'vip' has no cell"),
        (lambda d: d["category_shares"]["content_creation"].update(min=0.5, max=0.2), "category_shares.content_creation: min 0.5 is above max 0.2"),
        (lambda d: d["category_shares"]["content_creation"].update(max=1.2), "category_shares.content_creation.max: must be a finite number >= 0 and <= 1, got 1.2"),
        (lambda d: d["segments"].update(lapsed={"clv": 5}), "segments.lapsed: segment 'lapsed' has no cell"),
        (lambda d: d["segments"]["new_subscribers"].update(clv=0), "segments.new_subscribers.clv: must be a finite number > 0, got 0"),
        (lambda d: d["cells"][1].pop("acquisitions"),
         "cells[1] (technology / new_subscribers): segment 'new_subscribers' has a CLV/CAC rule, so this cell needs an 'acquisitions' curve"),
    ],
)
def test_bad_input_names_the_field(change: Any, message: str) -> None:
    with pytest.raises(ProblemError) as err:
        Problem.from_dict(_broken(change))
    assert message in str(err.value)


def test_unreadable_files_name_the_file_and_position(tmp_path: Path) -> None:
    with pytest.raises(ProblemFileError, match="no such file"):
        Problem.read(tmp_path / "missing.json")
    bad = tmp_path / "bad.json"
    bad.write_text('{"version": 1,\n "budget": }')
    with pytest.raises(ProblemFileError, match=r"bad.json: invalid JSON at line 2, column 12"):
        Problem.read(bad)
    listed = tmp_path / "list.json"
    listed.write_text("[1, 2]")
    with pytest.raises(ProblemFileError, match="expected an object at the top level"):
        Problem.read(listed)


def test_errors_are_value_errors() -> None:
    assert issubclass(ProblemError, ValueError) and issubclass(ProblemFileError, ProblemError)
