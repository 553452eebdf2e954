"""The solution a user reads: allocation, objective, proven bound, duals (money units).

``Solution.to_dict()`` is the solution file of ``PROBLEM_FORMAT.md``. Reports, the CLI and the
HTTP service read a :class:`Solution`, never solver objects.

Dual sign conventions (all in objective currency per currency unit of rule slack):

- ``budget``: gain per extra unit of budget (any sign in ``equal`` mode, >= 0 in ``at_most``);
- ``category_min[c]``: gain per unit by which category c's minimum is lowered (>= 0);
- ``category_max[c]``: gain per unit by which category c's maximum is raised (>= 0);
- ``segment_clv_cac[s]``: gain per unit of slack in ``spend_s <= clv_s / ratio_s * new_customers_s``.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any

import pandas as pd

from solver.status import NotOptimalError, Status


ALLOCATION_COLUMNS = ("category", "segment", "spend", "revenue", "marginal_revenue",
                      "new_customers", "current_spend", "current_revenue")


@dataclass(frozen=True)
class CellPlan:
    """One cell of the plan: spend and predicted outcomes at that spend (currency, customers)."""

    category: str
    segment: str
    spend: float
    revenue: float
    marginal_revenue: float
    new_customers: float | None = None
    current_spend: float | None = None
    current_revenue: float | None = None

    def to_dict(self) -> dict[str, Any]:
        d: dict[str, Any] = {
            "category": self.category,
            "segment": self.segment,
            "spend": self.spend,
            "revenue": self.revenue,
            "marginal_revenue": self.marginal_revenue,
        }
        for key in ("new_customers", "current_spend", "current_revenue"):
            if getattr(self, key) is not None:
                d[key] = getattr(self, key)
        return d


@dataclass(frozen=True)
class Duals:
    """Shadow prices in money per money (see the module docstring for signs)."""

    budget: float
    category_min: Mapping[str, float] = field(default_factory=dict)
    category_max: Mapping[str, float] = field(default_factory=dict)
    segment_clv_cac: Mapping[str, float] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {
            "budget": self.budget,
            "category_min": dict(self.category_min),
            "category_max": dict(self.category_max),
            "segment_clv_cac": dict(self.segment_clv_cac),
        }


@dataclass(frozen=True)
class InfeasibilityCertificate:
    """A proof that no plan meets the rules (Farkas type; see :mod:`formulations.feasibility`).

    ``multipliers``: one number per rule, dimensionless, on the rules' slacks in currency
    (``budget``: ``B - sum x``, any sign in ``equal`` mode; ``category_min[c]``: ``sum_c x - min_c B``;
    ``category_max[c]``: ``max_c B - sum_c x``; ``segment_clv_cac[s]``: ``clv/ratio x new customers_s -
    spend_s``; all but the budget's >= 0); ``bound``: a rigorous upper estimate (currency) of the
    largest value of ``sum_r multiplier_r x slack_r(x)`` over the cells' spend bounds. Every plan
    that met the rules would make that sum >= 0, so ``bound < 0`` proves there is none.
    ``rules``: the rules with a nonzero multiplier.
    """

    multipliers: Duals
    bound: float
    rules: tuple[str, ...]

    def to_dict(self) -> dict[str, Any]:
        return {"multipliers": self.multipliers.to_dict(), "bound": self.bound, "rules": list(self.rules)}


@dataclass(frozen=True)
class Solution:
    """A solve's outcome. ``allocation`` is empty unless a plan passed verification.

    ``objective`` is evaluated on the exact curves at the allocation; ``upper_bound`` is the
    Lagrangian bound at ``duals`` (anyone can recompute it); ``max_violation`` is the largest rule
    violation of the plan in currency (0 up to rounding for an optimal plan).

    ``relative_gap = (upper_bound - objective) / gap_denominator`` with ``gap_denominator =
    max(|objective|, 1e-9 x budget)``; ``optimal`` means ``0 <= relative_gap <= gap_tol``.
    ``fixed_cells``: cells the rules force to their minimum spend, each with the rule that forces
    it (``{"category", "segment", "spend", "by", "rule"}``); the bound's cell ranges hold them
    there. ``infeasibility``: the proof behind an ``infeasible`` status.
    """

    status: Status
    message: str = ""
    name: str = ""
    objective_kind: str = "revenue"
    budget: float = 0.0
    objective: float | None = None
    upper_bound: float | None = None
    plan: pd.DataFrame | None = field(default=None, repr=False)  # one row per cell, ALLOCATION_COLUMNS
    duals: Duals | None = None
    backend: str = ""
    seconds: float = 0.0
    iterations: int = 0
    max_violation: float | None = None
    gap_denominator: float | None = None
    gap_tol: float | None = None
    feas_tol: float | None = None
    fixed_cells: tuple[Mapping[str, Any], ...] = ()
    infeasibility: InfeasibilityCertificate | None = None

    @property
    def is_optimal(self) -> bool:
        return self.status is Status.OPTIMAL

    @property
    def gap(self) -> float | None:
        """Proven distance to the best possible objective (currency), if known."""
        if self.objective is None or self.upper_bound is None:
            return None
        return self.upper_bound - self.objective

    @property
    def relative_gap(self) -> float | None:
        """``(upper_bound - objective) / gap_denominator``, if known (see the class docstring)."""
        if self.gap is None or not self.gap_denominator:
            return None
        return self.gap / self.gap_denominator

    @property
    def gap_basis(self) -> str | None:
        """``objective``, or ``budget_floor`` when |objective| < 1e-9 x budget sets the scale."""
        if self.gap_denominator is None or self.objective is None:
            return None
        return "budget_floor" if self.gap_denominator > abs(self.objective) else "objective"

    def raise_for_status(self) -> Solution:
        """Return self if optimal, else raise :class:`~solver.status.NotOptimalError`."""
        if not self.is_optimal:
            raise NotOptimalError(f"solution status is {self.status.value}: {self.message}")
        return self

    @cached_property
    def allocation(self) -> tuple[CellPlan, ...]:
        """The plan cell by cell (empty unless a plan passed verification)."""
        if self.plan is None:
            return ()
        rows = self.plan.to_dict("records")
        return tuple(CellPlan(**{k: (None if isinstance(v, float) and math.isnan(v) else v) for k, v in r.items()})
                     for r in rows)

    def allocation_frame(self) -> pd.DataFrame:
        """The allocation as a DataFrame, one row per cell (empty without a plan)."""
        if self.plan is None:
            return pd.DataFrame(columns=list(ALLOCATION_COLUMNS))
        return self.plan.copy()

    def to_dict(self) -> dict[str, Any]:
        """The solution file (JSON-ready)."""
        d: dict[str, Any] = {"status": self.status.value}
        if self.message:
            d["message"] = self.message
        d |= {
            "name": self.name,
            "objective_kind": self.objective_kind,
            "budget": self.budget,
            "objective": self.objective,
            "upper_bound": self.upper_bound,
            "gap": self.relative_gap,
            "gap_abs": self.gap,
            "gap_denominator": self.gap_denominator,
            "gap_basis": self.gap_basis,
            "gap_tol": self.gap_tol,
            "feas_tol": self.feas_tol,
            "max_violation": self.max_violation,
            "allocation": self._allocation_records(),
            "duals": None if self.duals is None else self.duals.to_dict(),
            "backend": self.backend,
            "seconds": self.seconds,
            "iterations": self.iterations,
            "certificate": {"fixed_cells": [dict(f) for f in self.fixed_cells]},
        }
        if self.infeasibility is not None:
            d["infeasibility"] = self.infeasibility.to_dict()
        return d

    def _allocation_records(self) -> list[dict[str, Any]]:
        if self.plan is None:
            return []
        out = []
        for r in self.plan.to_dict("records"):
            out.append({k: v for k, v in r.items() if not (isinstance(v, float) and math.isnan(v))})
        return out

    def write(self, path: str | Path) -> None:
        """Write the solution file as JSON."""
        Path(path).write_text(json.dumps(self.to_dict(), indent=2) + "\n")
