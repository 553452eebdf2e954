"""Exact evaluation of any spend plan on a problem: outcomes and the rules it meets or breaks.

Scenarios (the status quo), recommendations (each intermediate plan) and reports evaluate plans
that did not come out of a solve. Everything here is computed on the exact curves of the
:class:`~formulations.problem.Problem`, in currency units; no solver is involved.

Examples
--------
>>> from formulations.problem import Problem
>>> p = Problem.from_dict({"version": 1, "budget": 100.0, "cells": [
...     {"category": "a", "segment": "s", "revenue": {"family": "linear", "a": 2.0}},
...     {"category": "b", "segment": "s", "revenue": {"family": "linear", "a": 3.0}}],
...     "category_shares": {"a": {"min": 0.5}}})
>>> m = plan_metrics(p, [40.0, 60.0])
>>> m.revenue, m.spend, m.roi
(260.0, 100.0, 2.6)
>>> broken_rules(p, [40.0, 60.0])
['the 50% minimum on a (short by $10)']
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd
from numpy.typing import ArrayLike, NDArray

from formulations.model import compile_problem, row_violations
from formulations.problem import Objective, Problem
from solver.solution import Solution

FloatArray = NDArray[np.float64]

#: A plan meets a rule when it breaks it by at most this fraction of the budget (as ``solve``).
FEAS_TOL = 1e-9


@dataclass(frozen=True)
class PlanMetrics:
    """Outcomes of one plan (currency unless stated).

    ``profit = revenue - spend``; ``roi = revenue / spend`` (revenue per dollar spent, NaN without
    spend); ``new_customers`` is NaN when no cell has an acquisitions curve; per segment,
    ``cac[s] = spend_s / new_customers_s`` (NaN where the segment has no acquisitions curve).
    """

    spend: float
    revenue: float
    new_customers: float
    cac: dict[str, float] = field(default_factory=dict)

    @property
    def profit(self) -> float:
        return self.revenue - self.spend

    @property
    def roi(self) -> float:
        return self.revenue / self.spend if self.spend > 0 else float("nan")

    def objective(self, problem: Problem) -> float:
        """The problem's objective at this plan (revenue, or profit)."""
        return self.profit if problem.objective is Objective.PROFIT else self.revenue


def spend_vector(problem: Problem, spend: ArrayLike) -> FloatArray:
    """``spend`` as a float array in cell order, checked to have one finite value per cell."""
    x = np.asarray(spend, dtype=float).reshape(-1)
    if x.size != len(problem.cells) or not np.all(np.isfinite(x)):
        raise ValueError(f"expected {len(problem.cells)} finite spends (one per cell), got {x.size}")
    return x


def solution_spend(solution: Solution) -> FloatArray:
    """The spend of each cell of a solution's plan (cell order of its problem; empty without one)."""
    return solution.allocation_frame()["spend"].to_numpy(dtype=float)


def status_quo_spend(problem: Problem) -> FloatArray | None:
    """Each cell's ``current_spend``, or None unless every cell has one."""
    current = np.asarray(problem.table.current_spend, dtype=float)
    return None if np.isnan(current).any() else current.copy()


def cell_revenue(problem: Problem, spend: ArrayLike) -> FloatArray:
    """Predicted revenue of each cell at ``spend`` (exact curves)."""
    return problem.table.revenue.value_at(spend_vector(problem, spend))


def cell_new_customers(problem: Problem, spend: ArrayLike) -> FloatArray:
    """Predicted new customers of each cell at ``spend`` (NaN for cells without the curve)."""
    table = problem.table
    return np.where(table.has_acquisitions, table.acquisitions.value_at(spend_vector(problem, spend)), np.nan)


def plan_metrics(problem: Problem, spend: ArrayLike) -> PlanMetrics:
    """Spend, revenue, new customers and CAC per segment of a plan (exact curves)."""
    x = spend_vector(problem, spend)
    customers = cell_new_customers(problem, x)
    frame = pd.DataFrame({"segment": problem.table.segment, "spend": x, "customers": customers})
    by = frame.groupby("segment", sort=False).agg(spend=("spend", "sum"), customers=("customers", "sum"),
                                                  known=("customers", "count"))
    cac = {str(s): (float(r.spend / r.customers) if r.known and r.customers > 0 else float("nan"))
           for s, r in by.iterrows()}
    total = float(np.nansum(customers)) if np.any(~np.isnan(customers)) else float("nan")
    return PlanMetrics(spend=float(x.sum()), revenue=float(cell_revenue(problem, x).sum()), new_customers=total,
                       cac=cac)


class RuleChecker:
    """Checks many plans against one problem's rules (the problem is compiled once).

    :meth:`breaks` returns every broken rule with the amount (currency) by which the plan breaks
    it; a rule counts as broken when it is off by more than :data:`FEAS_TOL` of the budget.
    """

    def __init__(self, problem: Problem) -> None:
        self.problem = problem
        self.model = compile_problem(problem)
        self.tol = FEAS_TOL * problem.budget

    def violations(self, spend: ArrayLike) -> dict[str, FloatArray]:
        """:func:`formulations.model.row_violations` in currency, by rule kind."""
        x = spend_vector(self.problem, spend)
        scale = self.model.money_scale
        return {k: a * scale for k, a in row_violations(self.model, x / scale).items()}

    def ok(self, spend: ArrayLike) -> bool:
        """True when the plan meets every rule to :data:`FEAS_TOL` of the budget."""
        return all(float(v.max(initial=0.0)) <= self.tol for v in self.violations(spend).values())

    def breaks(self, spend: ArrayLike, short: bool = False) -> dict[str, float]:
        """Every rule the plan breaks and by how much (currency). Keys read like rules in the
        reports (``the 10% minimum on technology``), or with ``short`` like
        :func:`solver.sensitivity.short_label` (``min share technology``)."""
        problem, model, tol = self.problem, self.model, self.tol
        v = self.violations(spend)
        out: dict[str, float] = {}
        if v["budget"][0] > tol:
            word = "exactly" if model.equal_budget else "at most"
            out["budget" if short else f"the budget (spend {word} ${problem.budget:,.0f})"] = float(v["budget"][0])
        for k, c in enumerate(model.share_category):
            cat = model.categories[c]
            rule = problem.category_shares[cat]
            if v["share_min"][k] > tol:
                out[f"min share {cat}" if short else f"the {rule.min:.0%} minimum on {cat}"] = float(v["share_min"][k])
            if v["share_max"][k] > tol:
                out[f"max share {cat}" if short else f"the {rule.max:.0%} maximum on {cat}"] = float(v["share_max"][k])
        for k, seg_idx in enumerate(model.clv_segment):
            seg = model.segments[seg_idx]
            if v["clv"][k] > tol:
                ratio = problem.segments[seg].min_clv_cac_ratio
                out[f"CLV/CAC {seg}" if short else f"the CLV/CAC >= {ratio:g} rule of {seg}"] = float(v["clv"][k])
        for i in np.flatnonzero(v["bounds"] > tol):
            cell = f"{problem.table.category[i]} / {problem.table.segment[i]}"
            out[f"bounds {cell}" if short else f"the spend bounds of {cell}"] = float(v["bounds"][i])
        return out


def rule_breaks(problem: Problem, spend: ArrayLike) -> dict[str, float]:
    """Every rule the plan breaks, with the amount (currency) by which it breaks it."""
    return RuleChecker(problem).breaks(spend)


def broken_rules(problem: Problem, spend: ArrayLike) -> list[str]:
    """:func:`rule_breaks` as readable phrases (``"... (short by $10)"`` / ``"(over by $10)"``)."""
    out = []
    x = spend_vector(problem, spend)
    for rule, amount in rule_breaks(problem, x).items():
        if "minimum" in rule or ("budget" in rule and x.sum() < problem.budget):
            out.append(f"{rule} (short by ${amount:,.0f})")
        else:
            out.append(f"{rule} (over by ${amount:,.0f})")
    return out


def meets_rules(problem: Problem, spend: ArrayLike) -> bool:
    """True when the plan meets every rule to :data:`FEAS_TOL` of the budget."""
    return not rule_breaks(problem, spend)


def cells_matching(problem: Problem, category: str | None = None, segment: str | None = None) -> NDArray[np.intp]:
    """Indices of the cells in ``category`` and/or ``segment`` (None matches any)."""
    table = problem.table
    keep = np.ones(len(table), dtype=bool)
    if category is not None:
        keep &= table.category == category
    if segment is not None:
        keep &= table.segment == segment
    return np.flatnonzero(keep)
