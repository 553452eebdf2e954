"""Thin run kinds over the analysis modules: budget frontier, scenarios, report (JSON).

Each kind checks its request at submission (422 with the product's own messages) and, in a worker,
calls one function of the analysis layer -- :func:`solver.frontier.frontier_table`,
:func:`solver.scenarios.compare_scenarios`, :func:`solver.report.build_report` -- and returns its
tables as JSON records. No analysis logic lives here.

Request bodies (solve options ``backend``, ``time_limit``, ``gap_tol`` come from the query):

- frontier: ``{"problem": <problem file>, "budgets": [...]}`` or ``{"problem", "lo", "hi", "points"}``
  (fractions of the problem's budget; defaults 0.5, 1.5, 25);
- scenarios: ``{"problem": <problem file>, "scenarios": <scenarios file> (optional: the built-ins)}``;
- report: ``{"problem", "scenarios" (optional), "frontier_points" (default 25), "check" (default
  true: re-solve the binding rules), "targets" (optional)}``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from formulations.errors import ProblemError
from formulations.problem import Problem, number
from solver.backends import SolveOptions
from solver.service.config import ServiceConfig
from solver.service.jobs import (
    BadInput,
    Submission,
    check_options,
    check_problem,
    sanitize,
)

FRONTIER, SCENARIOS, REPORT = "frontier", "scenarios", "report"
_MAX_POINTS = 200


def _keys(body: Any, allowed: set[str], what: str) -> Mapping[str, Any]:
    if not isinstance(body, Mapping):
        raise BadInput(f"{what}: expected a JSON object with keys {sorted(allowed)}, got {type(body).__name__}")
    unknown = sorted(set(body) - allowed)
    if unknown:
        raise BadInput(f"{what}: unknown key {unknown[0]!r} (expected {sorted(allowed)})")
    if "problem" not in body:
        raise BadInput(f"{what}: missing key 'problem'")
    return body


def _points(value: Any, where: str, config: ServiceConfig) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= min(_MAX_POINTS, config.max_sweep_points):
        raise BadInput(f"{where}: expected an integer from 1 to {min(_MAX_POINTS, config.max_sweep_points)}, got {value!r}")
    return value


def check_frontier(body: Any, query: Mapping[str, Any], config: ServiceConfig) -> Submission:
    """A frontier request (see the module docstring)."""
    d = _keys(body, {"problem", "budgets", "lo", "hi", "points"}, "frontier request")
    check_problem(d["problem"], config, "problem.")
    try:
        if "budgets" in d:
            budgets = d["budgets"]
            if not isinstance(budgets, list) or not budgets or len(budgets) > config.max_sweep_points:
                raise BadInput(f"budgets: expected a list of 1 to {config.max_sweep_points} budgets")
            for i, b in enumerate(budgets):
                number(b, f"budgets[{i}]", minimum=0.0, strict=True)
        lo = number(d.get("lo", 0.5), "lo", minimum=0.0, strict=True)
        hi = number(d.get("hi", 1.5), "hi", minimum=lo)
    except ProblemError as e:
        raise BadInput(str(e)) from None
    _points(d.get("points", 25), "points", config)
    return Submission(FRONTIER, dict(d), check_options(query, config) | {"lo": lo, "hi": hi})


def _check_scenarios(scenarios: Any) -> None:
    """A request's optional scenarios file (a dict), checked like the CLI checks a file."""
    from solver.scenarios import parse_scenarios

    if scenarios is not None:
        try:
            parse_scenarios(scenarios)
        except ProblemError as e:
            raise BadInput(str(e)) from None


def check_scenarios(body: Any, query: Mapping[str, Any], config: ServiceConfig) -> Submission:
    """A scenarios request: the problem, and a scenarios file (or none: the built-ins)."""
    d = _keys(body, {"problem", "scenarios"}, "scenarios request")
    check_problem(d["problem"], config, "problem.")
    _check_scenarios(d.get("scenarios"))
    return Submission(SCENARIOS, dict(d), check_options(query, config))


def check_report(body: Any, query: Mapping[str, Any], config: ServiceConfig) -> Submission:
    """A report request: the problem, optional scenarios, frontier points, check flag and targets."""
    d = _keys(body, {"problem", "scenarios", "frontier_points", "check", "targets"}, "report request")
    check_problem(d["problem"], config, "problem.")
    _points(d.get("frontier_points", 25), "frontier_points", config)
    if not isinstance(d.get("check", True), bool):
        raise BadInput(f"check: expected true or false, got {d['check']!r}")
    targets = d.get("targets")
    if targets is not None and not (isinstance(targets, Mapping) and all(isinstance(v, (int, float))
                                                                         and not isinstance(v, bool)
                                                                         for v in targets.values())):
        raise BadInput("targets: expected an object of numbers, e.g. {\"revenue\": 2500000}")
    _check_scenarios(d.get("scenarios"))
    return Submission(REPORT, dict(d), check_options(query, config))


def _options(options: Mapping[str, Any]) -> SolveOptions:
    return SolveOptions(gap_tol=float(options["gap_tol"]), time_limit=float(options["time_limit"]))


def run_frontier(input: Any, options: Mapping[str, Any]) -> dict[str, Any]:
    """``{"frontier": [row, ...]}``: one row per budget (columns of ``frontier_table``)."""
    from solver.frontier import frontier_table
    from solver.report import records

    frame = frontier_table(Problem.from_dict(input["problem"]), lo=float(options["lo"]), hi=float(options["hi"]),
                           points=int(input.get("points", 25)), budgets=input.get("budgets"),
                           options=_options(options), backend=options["backend"])
    return sanitize({"frontier": records(frame)})


def run_scenarios(input: Any, options: Mapping[str, Any]) -> dict[str, Any]:
    """``{"scenarios": [row, ...]}``: the comparison table of ``compare_scenarios``."""
    from solver.report import records
    from solver.scenarios import compare_scenarios

    frame = compare_scenarios(Problem.from_dict(input["problem"]), input.get("scenarios"),
                              options=_options(options), backend=options["backend"])
    return sanitize({"scenarios": records(frame)})


def run_report(input: Any, options: Mapping[str, Any]) -> dict[str, Any]:
    """``{"report": ...}``: the JSON report of ``report_dict`` (headline, solution, every table)."""
    from solver.report import build_report, report_dict

    report = build_report(Problem.from_dict(input["problem"]), scenarios=input.get("scenarios"),
                          frontier_points=int(input.get("frontier_points", 25)), check=bool(input.get("check", True)),
                          targets=input.get("targets"), options=_options(options), backend=options["backend"])
    return sanitize({"report": report_dict(report)})
