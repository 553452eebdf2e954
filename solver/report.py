"""One report from one model: every table the HTML, Excel and JSON outputs show.

:func:`build_report` solves the problem (or takes its solution), then runs, all through
:func:`solver.solve.solve` on variants of the same problem: the rule cross-checks
(:mod:`solver.rulecheck`), the budget frontier (:mod:`solver.frontier`), the target modes
(:mod:`solver.targets`), the scenarios (:mod:`solver.scenarios`) and the recommendations
(:mod:`solver.recommend`). The writers (:mod:`solver.report_html`, :mod:`solver.report_xlsx`,
:func:`write_json`) read only the :class:`Report`: its Problem, Solution and DataFrames.
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from forecasting.results import FitResult
from formulations.problem import Objective, Problem
from solver.backends import SolveOptions
from solver.frontier import frontier_table, marginal_bracket, revenue_bracket, slope_range
from solver.plans import plan_metrics, status_quo_spend
from solver.recommend import recommendations
from solver.resolve import resolve
from solver.rulecheck import check_rules
from solver.scenarios import evaluate, scenario_table
from solver.sensitivity import cell_table, frontier_slope, rule_table
from solver.solution import Solution
from solver.targets import (TargetResult, max_budget_for_marginal_return, max_revenue_with_roi_floor,
                            min_budget_for_new_customers, min_budget_for_revenue, targets_table)


@dataclass
class Report:
    """Everything the reports show (see :func:`build_report`); tables are pandas DataFrames.

    ``headline`` holds the first screen's numbers: ``objective``, ``upper_bound``,
    ``status_quo_revenue``, ``next_dollar`` (frontier slope, objective per budget dollar),
    ``next_dollar_fixed_shares`` (``Duals.budget``), ``next_dollar_range`` (budgets over which the
    slope stays within 10 %), ``profit_max_budget``.
    """

    problem: Problem
    solution: Solution
    headline: dict[str, Any] = field(default_factory=dict)
    rules: pd.DataFrame = field(default_factory=pd.DataFrame)
    cells: pd.DataFrame = field(default_factory=pd.DataFrame)
    frontier: pd.DataFrame = field(default_factory=pd.DataFrame)
    targets: pd.DataFrame = field(default_factory=pd.DataFrame)
    scenarios: pd.DataFrame = field(default_factory=pd.DataFrame)
    recommendations: pd.DataFrame = field(default_factory=pd.DataFrame)
    seconds: dict[str, float] = field(default_factory=dict)
    fit: FitResult | None = None
    fit_cells: pd.DataFrame = field(default_factory=pd.DataFrame)
    fit_backtest: pd.DataFrame = field(default_factory=pd.DataFrame)

    def tables(self) -> dict[str, pd.DataFrame]:
        """The report's tables by name, in reading order (as in the Excel workbook); the fit's
        per-cell diagnostics and backtest only when the report was built with the fit."""
        out = {"rules": self.rules, "recommendations": self.recommendations, "cells": self.cells,
               "frontier": self.frontier, "targets": self.targets, "scenarios": self.scenarios}
        if self.fit is not None:
            out |= {"fit_cells": self.fit_cells, "fit_backtest": self.fit_backtest}
        return out


def _cells(solution: Solution, problem: Problem) -> pd.DataFrame:
    frame = cell_table(solution, problem)
    if frame.empty:
        return frame
    plan = solution.allocation_frame()
    frame.insert(3, "current_spend", plan["current_spend"].to_numpy())
    frame.insert(4, "revenue", plan["revenue"].to_numpy())
    frame.insert(5, "current_revenue", plan["current_revenue"].to_numpy())
    frame.insert(6, "new_customers", plan["new_customers"].to_numpy())
    return frame


def build_report(problem: Problem, solution: Solution | None = None, *,
                 scenarios: str | Path | Mapping[str, Any] | None = None, frontier_points: int = 25,
                 frontier_range: tuple[float, float] = (0.5, 1.5), check: bool = True,
                 targets: Mapping[str, float] | None = None, options: SolveOptions | None = None,
                 backend: str = "auto", progress: Callable[[str], None] | None = None,
                 fit: FitResult | None = None) -> Report:
    """Solve (unless ``solution`` is given) and compute every table of the report.

    Parameters
    ----------
    problem, solution : the plan and, optionally, its solution (re-used as is)
    scenarios : a scenarios file, a scenarios dict, or None for the built-ins (plan, status quo,
        the budget guide's mixes)
    frontier_points, frontier_range : the frontier grid (fractions of the plan's budget)
    check : run the re-solve cross-checks of the binding rules (:func:`check_rules`)
    targets : extra target modes, any of ``revenue`` (currency), ``new_customers``,
        ``marginal_return`` (revenue per budget dollar), ``roi_floor`` (revenue per dollar spent)
    options, backend : passed to every solve
    progress : called with a short message before each stage
    fit : the curves' fit (:func:`forecasting.fit.fit_curves`), when the problem came from a
        history: adds the fit report (per-cell diagnostics, backtest against naive baselines,
        each cell's curve with its data points and interval bands)

    Returns
    -------
    Report
        For a solution that is not optimal, only ``headline`` (with the status and message) and
        the scenarios are filled: sensitivity needs a proven optimum.
    """
    say = progress or (lambda message: None)
    seconds: dict[str, float] = {}
    clock = time.perf_counter()

    def lap(name: str) -> None:
        nonlocal clock
        now = time.perf_counter()
        seconds[name] = now - clock
        clock = now

    sol = solution if solution is not None else resolve(problem, backend=backend, options=options)
    lap("solve")
    current = status_quo_spend(problem)
    sq = plan_metrics(problem, current) if current is not None else None
    headline: dict[str, Any] = {"name": problem.name, "status": sol.status.value, "message": sol.message,
                                "budget": problem.budget, "budget_mode": problem.budget_mode.value,
                                "objective_kind": problem.objective.value, "objective": sol.objective,
                                "upper_bound": sol.upper_bound, "backend": sol.backend,
                                "status_quo_revenue": sq.revenue if sq else None,
                                "status_quo_spend": sq.spend if sq else None}
    report = Report(problem, sol, headline, seconds=seconds)
    if fit is not None:
        report.fit, report.fit_cells, report.fit_backtest = fit, fit.table(), fit.backtest()
    say("scenarios")
    report.scenarios = scenario_table(evaluate(problem, scenarios, options=options, backend=backend, solution=sol),
                                      problem)
    lap("scenarios")
    if not sol.is_optimal:
        return report
    plan = plan_metrics(problem, sol.allocation_frame()["spend"].to_numpy(dtype=float))
    headline |= {"revenue": plan.revenue, "spend": plan.spend, "new_customers": plan.new_customers,
                 "next_dollar": frontier_slope(sol, problem),
                 "next_dollar_fixed_shares": sol.duals.budget if sol.duals else None}
    say("shadow prices" + (" and re-solve checks" if check else ""))
    report.rules = check_rules(sol, problem, options=options, backend=backend) if check else rule_table(sol, problem)
    report.cells = _cells(sol, problem)
    lap("sensitivity")
    say(f"budget frontier ({frontier_points} points)")
    report.frontier = frontier_table(problem, lo=frontier_range[0], hi=frontier_range[1], points=frontier_points,
                                     options=options, backend=backend)
    headline["next_dollar_range"] = slope_range(report.frontier, problem.budget)
    lap("frontier")
    say("target modes")
    results = [max_budget_for_marginal_return(problem, 1.0, start=marginal_bracket(report.frontier, 1.0),
                                              options=options, backend=backend)]
    if sq is not None:
        hint = revenue_bracket(report.frontier, sq.revenue) if problem.objective is Objective.REVENUE else None
        results.append(min_budget_for_revenue(problem, sq.revenue, start=hint, options=options, backend=backend))
    for key, value in (targets or {}).items():
        results.append(_target(problem, key, value, options, backend))
    report.targets = targets_table(results)
    headline["profit_max_budget"] = results[0].budget if results[0].status == "found" else None
    if sq is not None and results[1].status == "found":
        headline["status_quo_revenue_budget"] = results[1].budget
    lap("targets")
    say("recommendations")
    report.recommendations = recommendations(sol, problem)
    lap("recommendations")
    return report


def _target(problem: Problem, key: str, value: float, options: SolveOptions | None, backend: str) -> TargetResult:
    modes = {"revenue": min_budget_for_revenue, "new_customers": min_budget_for_new_customers,
             "marginal_return": max_budget_for_marginal_return, "roi_floor": max_revenue_with_roi_floor}
    if key not in modes:
        raise ValueError(f"unknown target {key!r}; expected one of {sorted(modes)}")
    return modes[key](problem, value, options=options, backend=backend)


# --- JSON ---------------------------------------------------------------------------------------


def _plain(value: Any) -> Any:
    """JSON-ready: NaN/inf -> None, numpy scalars -> Python, rule keys -> ``kind:name``."""
    if isinstance(value, tuple) and value and all(isinstance(v, str) for v in value):
        return ":".join(value)
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (np.floating, float)):
        return None if not math.isfinite(float(value)) else float(value)
    if isinstance(value, np.integer):
        return int(value)
    if isinstance(value, np.bool_):
        return bool(value)
    if value is pd.NA or value is pd.NaT:
        return None
    return value


def records(frame: pd.DataFrame) -> list[dict[str, Any]]:
    """A DataFrame as JSON-ready records (NaN -> null, rule keys -> ``kind:name``)."""
    return [_plain(r) for r in frame.to_dict("records")]


def report_dict(report: Report) -> dict[str, Any]:
    """The JSON report: ``headline``, ``solution`` (the solution file) and every table as records."""
    return {"version": 1, "headline": _plain(report.headline), "solution": _plain(report.solution.to_dict()),
            **{name: records(frame) for name, frame in report.tables().items()},
            "seconds": _plain(report.seconds)}


def write_json(report: Report, path: str | Path) -> Path:
    """Write :func:`report_dict` as JSON."""
    out = Path(path)
    out.write_text(json.dumps(report_dict(report), indent=1, allow_nan=False) + "\n")
    return out


def write_report(report: Report, out: str | Path) -> list[Path]:
    """Write report.html, report.xlsx and report.json into the directory ``out``."""
    from solver.report_html import write_html
    from solver.report_xlsx import write_xlsx

    folder = Path(out)
    folder.mkdir(parents=True, exist_ok=True)
    return [write_html(report, folder / "report.html"), write_xlsx(report, folder / "report.xlsx"),
            write_json(report, folder / "report.json")]
