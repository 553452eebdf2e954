"""The problem compiled to arrays in scaled units: what every backend and the certificate read.

Scaling keeps every backend well conditioned whatever the currency magnitudes: spend is measured
in units of ``money_scale`` (the budget), so the budget row reads ``sum(y) = 1``, and the objective
in units of ``value_scale`` (predicted revenue at an even reference allocation, or the budget for a
profit objective). A dual in scaled units times ``value_scale / money_scale`` is a dual in money
per money; :meth:`ArrayModel.dual_to_money` does that conversion.

Rows (all in scaled spend units, ``y = x / money_scale``):

- budget: ``sum_i y_i = 1`` (``<= 1`` in ``at_most`` mode);
- shares: ``share_lo[k] <= sum_{i in category k} y_i <= share_hi[k]`` for each category rule;
- CLV/CAC: ``sum_{i in s} y_i - sum_{i in s} v_i(y_i) <= 0`` for each segment rule, where
  ``v_i(y) = cap_s * q_i(money_scale * y) / money_scale`` is the cell's *acquisition value*
  (new customers times the segment's allowed spend per customer, in scaled money);
- bounds: ``lower_i <= y_i <= upper_i``.

Objective: ``sum_i r_i(money_scale * y_i) / value_scale - spend_cost * sum_i y_i``.

The class never mutates the problem and holds no solver state.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace

import numpy as np
from numpy.typing import NDArray

import pandas as pd

from forecasting.curves import CurveBatch
from formulations.presolve import Fixing, forced_cells
from formulations.problem import BudgetMode, Objective, Problem

FloatArray = NDArray[np.float64]
IndexArray = NDArray[np.intp]
BoolArray = NDArray[np.bool_]


@dataclass(frozen=True, eq=False)
class ArrayModel:
    """Arrays of one problem; build with :func:`compile_problem`. See the module docstring."""

    problem: Problem
    money_scale: float
    value_scale: float
    lower: FloatArray
    upper: FloatArray
    equal_budget: bool
    spend_cost: float
    categories: tuple[str, ...]
    category_of: IndexArray
    segments: tuple[str, ...]
    segment_of: IndexArray
    share_category: IndexArray   # category index of each share rule, shape (k,)
    share_lo: FloatArray         # scaled (fraction x budget / money_scale), shape (k,)
    share_hi: FloatArray
    clv_segment: IndexArray      # segment index of each CLV/CAC rule, shape (m,)
    clv_rule_of: IndexArray      # rule index of each cell's segment, -1 if none, shape (n,)
    revenue: CurveBatch
    acquisitions: CurveBatch
    acq_value_coef: FloatArray   # cap_s of the cell's segment rule, 0 if none, shape (n,)
    #: cells the rules force to their minimum spend (their ``upper`` is set to ``lower``), see
    #: :mod:`formulations.presolve`
    fixed: tuple[Fixing, ...] = field(default=())

    @property
    def n(self) -> int:
        return int(self.lower.size)

    @property
    def budget(self) -> float:
        """The budget in scaled units (1 by construction)."""
        return self.problem.budget / self.money_scale

    @property
    def dual_to_money(self) -> float:
        """Factor from a scaled dual to money of objective per money of rule slack."""
        return self.value_scale / self.money_scale

    def rebudget(self, budget: float) -> ArrayModel:
        """The same model at another total budget, in the same units (scales unchanged), so
        plans and multipliers of one budget are warm starts for the next."""
        problem = self.problem.with_budget(budget)
        ratio = budget / self.problem.budget
        return with_forced_cells(replace(
            self,
            problem=problem,
            upper=problem.table.upper(budget) / self.money_scale,
            share_lo=self.share_lo * ratio,
            share_hi=self.share_hi * ratio,
            fixed=(),
        ))

    # --- scaled curve evaluation ---------------------------------------------------------
    def rev(self, y: FloatArray, where: BoolArray | None = None) -> FloatArray:
        """Scaled revenue of each cell at scaled spends ``y`` (only at ``where`` if given)."""
        return self.revenue.value_at(y * self.money_scale, where) / self.value_scale

    def drev(self, y: FloatArray, where: BoolArray | None = None) -> FloatArray:
        """Derivative of :meth:`rev` (dimensionless up to ``dual_to_money``)."""
        return self.revenue.derivative_at(y * self.money_scale, where) * self.money_scale / self.value_scale

    def d2rev(self, y: FloatArray, where: BoolArray | None = None) -> FloatArray:
        """Second derivative of :meth:`rev` (<= 0)."""
        return self.revenue.second_derivative_at(y * self.money_scale, where) * self.money_scale**2 / self.value_scale

    def rev_slopes(self, y: FloatArray, where: BoolArray | None = None) -> tuple[FloatArray, FloatArray]:
        """:meth:`drev` and :meth:`d2rev` in one pass."""
        d1, d2 = self.revenue.slopes_at(y * self.money_scale, where)
        return d1 * (self.money_scale / self.value_scale), d2 * (self.money_scale**2 / self.value_scale)

    def rev_slopes_of(self, y: FloatArray, cells: NDArray[np.intp]) -> tuple[FloatArray, FloatArray]:
        """:meth:`rev_slopes` of the given ``cells`` (shape (m,)) at their spends ``y`` (shape (m,))."""
        d1, d2 = self.revenue.slopes_of(y * self.money_scale, cells)
        return d1 * (self.money_scale / self.value_scale), d2 * (self.money_scale**2 / self.value_scale)

    def acq_slopes_of(self, y: FloatArray, cells: NDArray[np.intp]) -> tuple[FloatArray, FloatArray]:
        """:meth:`acq_slopes` of the given ``cells`` (shape (m,)) at their spends ``y`` (shape (m,))."""
        d1, d2 = self.acquisitions.slopes_of(y * self.money_scale, cells)
        coef = self.acq_value_coef[cells]
        return _ruled(coef, d1), _ruled(coef, d2 * self.money_scale)

    def acq_slopes(self, y: FloatArray, where: BoolArray | None = None) -> tuple[FloatArray, FloatArray]:
        """:meth:`dacq_value` and :meth:`d2acq_value` in one pass."""
        d1, d2 = self.acquisitions.slopes_at(y * self.money_scale, where)
        return _ruled(self.acq_value_coef, d1), _ruled(self.acq_value_coef, d2 * self.money_scale)

    def acq_value(self, y: FloatArray, where: BoolArray | None = None) -> FloatArray:
        """Scaled acquisition value ``v_i(y_i)`` (0 for cells without a CLV/CAC rule)."""
        return self.acq_value_coef * self.acquisitions.value_at(y * self.money_scale, where) / self.money_scale

    def dacq_value(self, y: FloatArray, where: BoolArray | None = None) -> FloatArray:
        """Derivative of :meth:`acq_value`."""
        d = self.acquisitions.derivative_at(y * self.money_scale, where)
        return _ruled(self.acq_value_coef, d)

    def d2acq_value(self, y: FloatArray, where: BoolArray | None = None) -> FloatArray:
        """Second derivative of :meth:`acq_value` (<= 0)."""
        d2 = self.acquisitions.second_derivative_at(y * self.money_scale, where) * self.money_scale
        return _ruled(self.acq_value_coef, d2)

    def objective(self, y: FloatArray) -> float:
        """Scaled objective at scaled spends ``y``."""
        return float(self.rev(y).sum() - self.spend_cost * y.sum())

    # --- row activities --------------------------------------------------------------------
    def category_sums(self, y: FloatArray) -> FloatArray:
        """Spend per category (shape (n_categories,)), same units as ``y``."""
        return np.bincount(self.category_of, weights=y, minlength=len(self.categories))

    def segment_sums(self, values: FloatArray) -> FloatArray:
        """Sum per segment (shape (n_segments,))."""
        return np.bincount(self.segment_of, weights=values, minlength=len(self.segments))

    def clv_slack(self, y: FloatArray) -> FloatArray:
        """``sum v_i(y_i) - sum y_i`` per CLV/CAC rule (>= 0 when the rule holds), scaled."""
        per_segment = self.segment_sums(self.acq_value(y) - np.where(self.clv_rule_of >= 0, y, 0.0))
        return per_segment[self.clv_segment]


def _ruled(coef: FloatArray, values: FloatArray) -> FloatArray:
    """``coef * values`` where ``coef > 0``, else 0 -- without evaluating the product elsewhere,
    where ``values`` may be infinite (a power curve's slope at 0 spend) and ``0 * inf`` is NaN."""
    out = np.zeros(np.broadcast(coef, values).shape)
    np.multiply(coef, values, out=out, where=coef > 0)
    return out


def compile_problem(problem: Problem) -> ArrayModel:
    """Compile a validated :class:`Problem` into scaled arrays (no solver work)."""
    table = problem.table
    budget = float(problem.budget)
    money_scale = budget
    category_of, categories_index = pd.factorize(table.category, sort=False)
    segment_of, segments_index = pd.factorize(table.segment, sort=False)
    categories, segments = tuple(categories_index), tuple(segments_index)
    cat_pos = {c: k for k, c in enumerate(categories)}
    seg_pos = {s: k for k, s in enumerate(segments)}
    category_of = category_of.astype(np.intp)
    segment_of = segment_of.astype(np.intp)
    lower = table.min_spend / money_scale
    upper = table.upper(budget) / money_scale
    n = len(table)

    share_items = list(problem.category_shares.items())
    share_category = np.array([cat_pos[c] for c, _ in share_items], dtype=np.intp)
    share_lo = np.array([r.min for _, r in share_items], dtype=float) * (budget / money_scale)
    share_hi = np.array([r.max for _, r in share_items], dtype=float) * (budget / money_scale)

    rules = [(s, r.spend_per_customer_cap) for s, r in problem.segments.items() if r.min_clv_cac_ratio]
    clv_segment = np.array([seg_pos[s] for s, _ in rules], dtype=np.intp)
    cap_of_segment = np.zeros(len(segments))
    rule_of_segment = np.full(len(segments), -1, dtype=np.intp)
    for k, (s, cap) in enumerate(rules):
        cap_of_segment[seg_pos[s]] = cap
        rule_of_segment[seg_pos[s]] = k
    clv_rule_of = rule_of_segment[segment_of]
    acq_value_coef = cap_of_segment[segment_of]

    revenue = table.revenue
    acquisitions = table.acquisitions.masked(acq_value_coef > 0)

    profit = problem.objective is Objective.PROFIT
    reference = np.clip(np.full(n, budget / n), lower * money_scale, upper * money_scale)
    value_scale = float(revenue.value_at(reference).sum())
    if profit or not np.isfinite(value_scale) or value_scale <= 0:
        value_scale = max(value_scale if np.isfinite(value_scale) else 0.0, budget)
    return with_forced_cells(ArrayModel(
        problem=problem,
        money_scale=money_scale,
        value_scale=value_scale,
        lower=lower,
        upper=upper,
        equal_budget=problem.budget_mode is BudgetMode.EQUAL,
        spend_cost=(money_scale / value_scale) if profit else 0.0,
        categories=categories,
        category_of=category_of,
        segments=segments,
        segment_of=segment_of,
        share_category=share_category,
        share_lo=share_lo,
        share_hi=share_hi,
        clv_segment=clv_segment,
        clv_rule_of=clv_rule_of,
        revenue=revenue,
        acquisitions=acquisitions,
        acq_value_coef=acq_value_coef,
    ))


def with_forced_cells(model: ArrayModel) -> ArrayModel:
    """``model`` with the cells its rules force to their minimum spend fixed there (upper = lower)
    and listed in ``fixed`` (see :mod:`formulations.presolve`)."""
    has_clv = bool(model.clv_segment.size)
    fixings = forced_cells(
        budget=model.budget, lower=model.lower, upper=model.upper, category_of=model.category_of,
        categories=model.categories, share_category=model.share_category, share_lo=model.share_lo,
        share_hi=model.share_hi, clv_rule_of=model.clv_rule_of,
        clv_names=[model.segments[s] for s in model.clv_segment],
        acq_value_at_lower=model.acq_value(model.lower) if has_clv else np.zeros(model.n),
        acq_slope_at_lower=model.dacq_value(model.lower) if has_clv else np.zeros(model.n))
    if not fixings:
        return model
    upper = model.upper.copy()
    cells = np.array([f.cell for f in fixings], dtype=np.intp)
    upper[cells] = model.lower[cells]
    return replace(model, upper=upper, fixed=tuple(fixings))


def row_violations(model: ArrayModel, y: FloatArray) -> dict[str, FloatArray]:
    """How much each rule is violated at scaled spends ``y`` (>= 0, scaled units), by rule kind.

    Keys: ``bounds`` (n,), ``budget`` (1,), ``share_min`` / ``share_max`` (k,), ``clv`` (m,).
    """
    cat = model.category_sums(y)[model.share_category]
    total = float(y.sum())
    budget_excess = total - model.budget
    return {
        "bounds": np.maximum(np.maximum(model.lower - y, y - model.upper), 0.0),
        "budget": np.array([abs(budget_excess) if model.equal_budget else max(budget_excess, 0.0)]),
        "share_min": np.maximum(model.share_lo - cat, 0.0),
        "share_max": np.maximum(cat - model.share_hi, 0.0),
        "clv": np.maximum(-model.clv_slack(y), 0.0),
    }


def max_violation(model: ArrayModel, y: FloatArray) -> float:
    """The largest rule violation at ``y`` (scaled units; 0 for a feasible plan)."""
    return max(float(v.max(initial=0.0)) for v in row_violations(model, y).values())
