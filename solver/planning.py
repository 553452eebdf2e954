"""History + plan -> problem file: where fitted curves meet the planner's rules.

The plan file has the problem file's keys except ``cells`` (cells come from the history), plus:

- ``periods`` (required, > 0): how many history periods the plan covers (a quarter planned from
  monthly history is 3). Spend is spread evenly over them, so a cell's plan curve is
  ``periods * r(x / periods)`` (:meth:`forecasting.curves.Curve.time_scaled`, exact).
- ``cell_bounds`` (optional): ``[{"category", "segment", "min_spend", "max_spend"}]`` for the plan
  period, in currency.
- ``max_spend_vs_history`` (optional, > 0): caps each cell not listed in ``cell_bounds`` at this
  multiple of its highest spend in any history period, times ``periods`` -- the curves are only
  known where spend has been observed, and this keeps the plan from betting on extrapolation.
- ``plan_periods`` (optional): the plan's months, ``["2026-01", "2026-02", "2026-03"]``, one per
  period. The fitted seasonality and trend of those months scale the plan curves
  (:meth:`forecasting.results.FitResult.plan_curves`); without it the curves are for average
  months at the level of the end of the history.

Each cell's ``current_spend`` (the status quo) is its spend over the last ``periods`` history
periods (scaled to a whole plan period if the history is shorter).
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pandas as pd

from forecasting.fit import FitResult, fit_curves
from forecasting.history import read_history
from formulations.errors import ProblemError
from formulations.problem import Problem, read_structured_file
from formulations.validate import check_keys, number

PLAN_KEYS = {"version", "name", "budget", "budget_mode", "objective", "category_shares", "segments",
             "periods", "cell_bounds", "max_spend_vs_history", "plan_periods"}


class PlanError(ProblemError):
    """The plan file is malformed or names categories / segments the history does not have."""


def read_plan(path: str | Path) -> dict[str, Any]:
    """Read a plan file (JSON, YAML or TOML) and check its keys; returns the raw dict."""
    return validate_plan(read_structured_file(path))


def validate_plan(plan: Mapping[str, Any]) -> dict[str, Any]:
    """Check the plan's own keys (the problem keys are checked when the problem is built)."""
    try:
        check_keys(plan, PLAN_KEYS, "plan", required=("version", "budget", "periods"))
        number(plan["periods"], "periods", minimum=0.0, strict=True)
        if plan.get("max_spend_vs_history") is not None:
            number(plan["max_spend_vs_history"], "max_spend_vs_history", minimum=0.0, strict=True)
        _check_plan_periods(plan)
        bounds = plan.get("cell_bounds", [])
        if not isinstance(bounds, list):
            raise PlanError("cell_bounds: expected a list of {category, segment, min_spend, max_spend}")
        for i, b in enumerate(bounds):
            check_keys(b, {"category", "segment", "min_spend", "max_spend"}, f"cell_bounds[{i}]",
                       required=("category", "segment"))
    except PlanError:
        raise
    except ProblemError as e:
        raise PlanError(str(e)) from None
    return dict(plan)


def _check_plan_periods(plan: Mapping[str, Any]) -> None:
    """``plan_periods``: distinct ``YYYY-MM`` months, one per plan period."""
    labels = plan.get("plan_periods")
    if labels is None:
        return
    expected = f"a list of {plan['periods']} distinct months 'YYYY-MM' (one per plan period)"
    if not isinstance(labels, list) or len(labels) != plan["periods"] or len(set(map(str, labels))) != len(labels):
        raise PlanError(f"plan_periods: expected {expected}, got {labels!r}")
    for i, label in enumerate(labels):
        if not (isinstance(label, str) and re.fullmatch(r"\d{4}-(0[1-9]|1[0-2])", label)):
            raise PlanError(f"plan_periods[{i}]: expected a month 'YYYY-MM', got {label!r}")


def _status_quo(history: pd.DataFrame, periods: float) -> dict[tuple[str, str], float]:
    """Spend per cell over the last ``periods`` history periods (the plan's status quo)."""
    last = sorted(history["period"].unique())
    take = max(1, min(len(last), math.ceil(periods)))
    recent = history[history["period"].isin(last[-take:])]
    per_cell = recent.groupby(["category", "segment"])["spend"].sum()
    return {k: float(v) * periods / take for k, v in per_cell.items()}


def build_problem(history: pd.DataFrame, fit: FitResult, plan: Mapping[str, Any]) -> Problem:
    """Compose the problem: one cell per fitted history cell, curves time-scaled to the plan.

    Raises PlanError when the plan refers to a category or segment the history does not have,
    and ProblemError (naming the key) for anything else the problem file would refuse.
    """
    plan = validate_plan(plan)
    periods = float(plan["periods"])
    categories = set(history["category"])
    segments = set(history["segment"])
    for cat in plan.get("category_shares") or {}:
        if cat not in categories:
            raise PlanError(f"category_shares.{cat}: category {cat!r} is not in the history "
                            f"(history categories: {sorted(categories)})")
    for seg in plan.get("segments") or {}:
        if seg not in segments:
            raise PlanError(f"segments.{seg}: segment {seg!r} is not in the history "
                            f"(history segments: {sorted(segments)})")
    explicit: dict[tuple[str, str], dict[str, Any]] = {}
    # time-scaled to the plan; seasonality and trend of plan_periods applied when given
    fitted = fit.plan_curves(periods, plan.get("plan_periods"))
    for i, b in enumerate(plan.get("cell_bounds", [])):
        key = (b["category"], b["segment"])
        if key not in fitted:
            raise PlanError(f"cell_bounds[{i}]: cell {key[0]} / {key[1]} is not in the history")
        explicit[key] = {k: b[k] for k in ("min_spend", "max_spend") if k in b}
    peak = history.groupby(["category", "segment"])["spend"].max()
    multiple = plan.get("max_spend_vs_history")
    status_quo = _status_quo(history, periods)

    cells = []
    for key, curves in fitted.items():
        cell: dict[str, Any] = {
            "category": key[0],
            "segment": key[1],
            "revenue": curves.revenue.to_dict(),
            "current_spend": status_quo.get(key, 0.0),
        }
        if curves.acquisitions is not None:
            cell["acquisitions"] = curves.acquisitions.to_dict()
        if multiple is not None and key not in explicit:
            cell["max_spend"] = float(multiple) * float(peak[key]) * periods
        cell |= explicit.get(key, {})
        cells.append(cell)
    problem = {k: v for k, v in plan.items()
               if k not in ("periods", "cell_bounds", "max_spend_vs_history", "plan_periods")}
    problem["cells"] = cells
    return Problem.from_dict(problem)


def fit_problem(history: str | Path | pd.DataFrame, plan: str | Path | Mapping[str, Any],
                **fit_options: Any) -> tuple[Problem, FitResult]:
    """Read and validate the history and the plan, fit every cell, and build the problem.

    ``fit_options`` go to :func:`forecasting.fit.fit_curves` (e.g. ``bootstrap=100``).
    """
    frame = read_history(history)
    plan_dict = read_plan(plan) if isinstance(plan, (str, Path)) else validate_plan(plan)
    fit = fit_curves(frame, **fit_options)
    return build_problem(frame, fit, plan_dict), fit
