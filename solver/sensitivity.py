"""Sensitivity from one solution: what the next dollar earns, per cell and per rule.

Everything here reads a :class:`~solver.solution.Solution` and its
:class:`~formulations.problem.Problem` only; nothing is re-solved (see :mod:`solver.rulecheck`
for the re-solve cross-checks). All prices are objective currency (revenue, or profit for a
profit objective) per currency unit.

Cell prices and bound duals
---------------------------
With the duals of the solution (budget ``lam``, share ``nu_min_c`` / ``nu_max_c``, CLV/CAC
``mu_s``), a cell ``i`` in category ``c`` and segment ``s`` has

- *marginal gain* ``g_i = r_i'(x_i) - k + mu_s * (clv_s / ratio_s) * q_i'(x_i)`` (``k = 1`` for a
  profit objective, else 0): what one more dollar in the cell earns, counting the slack it
  creates in its segment's CLV/CAC rule;
- *price* ``p_i = lam - nu_min_c + nu_max_c + mu_s``: what one dollar costs in the rules it uses.

At the optimum an interior cell has ``g_i = p_i`` (for a ``pwl`` curve at one of its kinks,
``g_i`` is a range: the left slope >= ``p_i`` >= the right slope, and the cell's position is
``at kink``; the table's marginal values are the right slopes, what the *next* dollar earns). A cell at its maximum spend has
``g_i >= p_i`` and the dual of its cap is ``g_i - p_i`` (what one more dollar of cap earns); a
cell at its minimum has ``g_i <= p_i`` and the dual of its floor is ``p_i - g_i`` (what one
dollar less of floor earns). These are the multipliers of the bound rows in the Lagrangian
certificate of ``docs/design.md``; :mod:`solver.rulecheck` checks them by re-solving.

The budget frontier
-------------------
Share rules are fractions of the budget, so one more dollar of budget also moves every share
limit: the slope of optimal objective against the budget is

    dV/dB = lam + sum_c (U_c nu_max_c - L_c nu_min_c) + sum_{uncapped cells at the budget} cap dual

(``Duals.budget = lam`` alone is the slope with every share limit held in dollars).

Examples
--------
>>> from solver import solve
>>> p = {"version": 1, "budget": 100.0, "cells": [
...     {"category": "a", "segment": "s", "revenue": {"family": "log", "a": 100, "b": 10}},
...     {"category": "b", "segment": "s", "revenue": {"family": "log", "a": 100, "b": 10},
...      "max_spend": 30}]}
>>> from formulations.problem import Problem
>>> problem = Problem.from_dict(p); sol = solve(problem)
>>> round(frontier_slope(sol, problem), 4)
1.25
>>> cells = cell_table(sol, problem)
>>> cells["position"].tolist(), round(float(cells["bound_dual"].iloc[1]), 4)
(['interior', 'at max'], 1.25)
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from numpy.typing import NDArray

from forecasting.curves import PWL, CurveBatch
from formulations.problem import BudgetMode, Objective, Problem
from solver.formatting import money, pct, rate
from solver.plans import solution_spend
from solver.solution import Solution

#: A dual (money per money) counts as binding above this value.
BINDING_TOL = 1e-7
#: A cell is at a bound when within this fraction of the budget of it.
BOUND_TOL = 1e-6


def _what(problem: Problem) -> str:
    return "profit" if problem.objective is Objective.PROFIT else "predicted revenue"


def _spend_cost(problem: Problem) -> float:
    return 1.0 if problem.objective is Objective.PROFIT else 0.0


def cell_table(solution: Solution, problem: Problem) -> pd.DataFrame:
    """Marginal values per cell at the optimum (one row per cell, money per money).

    Columns: ``category, segment, spend, min_spend, max_spend`` (effective cap), ``position``
    (``interior`` / ``at kink`` / ``at min`` / ``at max`` / ``locked``), ``marginal_revenue``
    (``r_i'``, the right slope at a pwl kink),
    ``clv_credit`` (``mu_s cap_s q_i'``), ``marginal_gain`` (``g_i``), ``price`` (``p_i``),
    ``reduced_gain`` (``g_i - p_i``: 0 for interior cells; with a pwl kink, the right slope's excess over ``p_i`` or the left slope's shortfall, 0 in between) and ``bound_dual`` (the dual of the
    binding bound, >= 0; 0 for interior cells). Empty without a plan or duals.
    """
    columns = ["category", "segment", "spend", "min_spend", "max_spend", "position", "marginal_revenue",
               "clv_credit", "marginal_gain", "price", "reduced_gain", "bound_dual"]
    d = solution.duals
    if not solution.allocation or d is None:
        return pd.DataFrame(columns=columns)
    x = solution_spend(solution)
    table = problem.table
    tol = BOUND_TOL * problem.budget
    r_left, r1 = one_sided_slopes(table.revenue, x, tol)
    q_left, q_right = one_sided_slopes(table.acquisitions, x, tol)
    mu = np.array([d.segment_clv_cac.get(s, 0.0) for s in table.segment])
    cap = np.array([(problem.segments[s].spend_per_customer_cap or 0.0) if s in problem.segments else 0.0
                    for s in table.segment])
    with np.errstate(invalid="ignore"):  # 0 x inf for cells without a CLV/CAC price
        credit = np.where(mu > 0, mu * cap * q_right, 0.0)
        credit_left = np.where(mu > 0, mu * cap * q_left, 0.0)
    share = np.array([d.category_max.get(c, 0.0) - d.category_min.get(c, 0.0) for c in table.category])
    price = d.budget + share + mu
    gain = r1 - _spend_cost(problem) + credit
    gain_left = r_left - _spend_cost(problem) + credit_left
    # > 0: one more dollar earns more than it costs; < 0: one dollar less costs less than it frees.
    reduced = np.where(gain > price, gain - price, np.where(gain_left < price, gain_left - price, 0.0))
    lo, hi = np.asarray(table.min_spend, dtype=float), table.upper(problem.budget)
    at_lo, at_hi = x <= lo + tol, x >= hi - tol
    kink = gain_left > gain + BINDING_TOL
    position = np.where(at_lo & at_hi, "locked", np.where(at_hi & (reduced > 0), "at max",
                        np.where(at_lo & (reduced < 0), "at min", np.where(kink, "at kink", "interior"))))
    bound_dual = np.where(position == "at max", reduced, np.where(position == "at min", -reduced,
                          np.where(position == "locked", np.abs(reduced), 0.0)))
    return pd.DataFrame({
        "category": table.category.astype(str), "segment": table.segment.astype(str), "spend": x,
        "min_spend": lo, "max_spend": hi, "position": position, "marginal_revenue": r1, "clv_credit": credit,
        "marginal_gain": gain, "price": price, "reduced_gain": reduced, "bound_dual": bound_dual,
    }, columns=columns)


def one_sided_slopes(batch: CurveBatch, x: NDArray[np.float64], tol: float) -> tuple[NDArray[np.float64],
                                                                                   NDArray[np.float64]]:
    """Left and right derivatives of each curve at ``x`` (currency per currency, shape (n,)).

    Equal to ``derivative_at`` for smooth curves. A ``pwl`` curve within ``tol`` of a breakpoint
    is taken at the breakpoint: the right slope is the next piece's (0 after the last point), the
    left slope the previous piece's (the right one at 0 spend, where spend cannot go lower).
    """
    d = batch.derivative_at(x)
    left, right = d.copy(), d.copy()
    for g in batch.groups:
        if g.family != PWL:
            continue
        assert g.points is not None
        knots, slope, xi = g.points[0], g.params["slope"], x[g.index][:, None]
        rows = np.arange(g.index.size)
        k_right = np.maximum((knots <= xi + tol).sum(axis=1) - 1, 0)
        k_left = (knots < xi - tol).sum(axis=1) - 1
        right[g.index] = slope[rows, k_right]
        left[g.index] = np.where(k_left >= 0, slope[rows, np.maximum(k_left, 0)], right[g.index])
    return left, right


def frontier_slope(solution: Solution, problem: Problem) -> float:
    """d(optimal objective) / d(budget) with share rules as fractions of the budget (money/money).

    This is the slope of the budget frontier (see the module docstring); NaN without duals.
    """
    d = solution.duals
    if d is None:
        return float("nan")
    slope = d.budget
    slope += sum(problem.category_shares[c].max * v for c, v in d.category_max.items())
    slope -= sum(problem.category_shares[c].min * v for c, v in d.category_min.items())
    cells = cell_table(solution, problem)
    uncapped = np.isnan(problem.table.max_spend)
    if len(cells):
        slope += float(cells["bound_dual"].where((cells["position"] == "at max") & uncapped, 0.0).sum())
    return float(slope)


def budget_binds(solution: Solution, problem: Problem) -> bool:
    """True when the plan spends the whole budget (always in ``equal`` mode)."""
    if problem.budget_mode is BudgetMode.EQUAL:
        return True
    return bool(solution.allocation) and solution_spend(solution).sum() >= problem.budget * (1 - 1e-9)


def marginal_revenue_per_budget_dollar(solution: Solution, problem: Problem) -> float:
    """What one more dollar of budget adds to *predicted revenue* of the optimal plan.

    Equals :func:`frontier_slope` for a revenue objective; for a profit objective the slope plus
    the dollar itself when the budget is spent (profit = revenue - spend).
    """
    slope = frontier_slope(solution, problem)
    return slope + (_spend_cost(problem) if budget_binds(solution, problem) else 0.0)


def rule_table(solution: Solution, problem: Problem) -> pd.DataFrame:
    """One row per rule with its shadow price and a plain reading (money per money).

    Rows: ``budget`` (the frontier slope), ``budget_row`` (``Duals.budget``: share limits held in
    dollars), every category minimum and maximum, every CLV/CAC rule, and every binding cell
    bound. Columns: ``rule`` (a :mod:`solver.variants` rule key), ``kind``, ``category``,
    ``segment``, ``limit`` (the rule in words), ``shadow_price`` (gain per dollar of slack, >= 0
    except the budget's in ``equal`` mode), ``per_unit`` (gain per unit of
    :func:`solver.variants.relaxed`: equal to ``shadow_price`` except for CLV/CAC rules, where
    it is per dollar of allowed spend per new customer = ``shadow_price x`` the segment's new
    customers), ``unit``, ``binding``, ``reading``.
    """
    columns = ["rule", "kind", "category", "segment", "limit", "shadow_price", "per_unit", "unit", "binding",
               "reading"]
    d = solution.duals
    if d is None or not solution.allocation:
        return pd.DataFrame(columns=columns)
    rows: list[dict[str, object]] = []
    slope = frontier_slope(solution, problem)

    def add(rule: tuple[str, ...], limit: str, price: float, unit: str, per_unit: float | None = None,
            category: str = "", segment: str = "") -> None:
        rows.append({"rule": rule, "kind": rule[0], "category": category, "segment": segment, "limit": limit,
                     "shadow_price": price, "per_unit": price if per_unit is None else per_unit, "unit": unit,
                     "binding": abs(price) > BINDING_TOL})

    word = "exactly" if problem.budget_mode is BudgetMode.EQUAL else "at most"
    add(("budget",), f"spend {word} {money(problem.budget)} (shares scale with it)", slope, "dollar of budget")
    add(("budget_row",), f"spend {word} {money(problem.budget)} (share limits fixed in dollars)", d.budget,
        "dollar of budget")
    for cat, rule in problem.category_shares.items():
        add(("category_min", cat), f"{pct(rule.min, 0)} minimum ({money(rule.min * problem.budget)})",
            d.category_min.get(cat, 0.0), "dollar the minimum is lowered", category=cat)
        add(("category_max", cat), f"{pct(rule.max, 0)} maximum ({money(rule.max * problem.budget)})",
            d.category_max.get(cat, 0.0), "dollar the maximum is raised", category=cat)
    customers = solution.allocation_frame().groupby("segment")["new_customers"].sum(min_count=1)
    for seg, srule in problem.segments.items():
        if srule.min_clv_cac_ratio is None:
            continue
        mu = d.segment_clv_cac.get(seg, 0.0)
        add(("clv_cac", seg), f"CLV/CAC >= {srule.min_clv_cac_ratio:g} (at most "
            f"{money(srule.spend_per_customer_cap or 0)} per new customer)", mu,
            "dollar of allowed spend per new customer", per_unit=mu * float(customers.get(seg, 0.0)), segment=seg)
    for row in cell_table(solution, problem).itertuples():
        if row.bound_dual <= BINDING_TOL:
            continue
        if row.position == "at max" or (row.position == "locked" and row.reduced_gain > 0):
            add(("cell_max", row.category, row.segment), f"spend at most {money(row.max_spend)}", row.bound_dual,
                "dollar the cap is raised", category=row.category, segment=row.segment)
        else:
            add(("cell_min", row.category, row.segment), f"spend at least {money(row.min_spend)}", row.bound_dual,
                "dollar the floor is lowered", category=row.category, segment=row.segment)
    frame = pd.DataFrame(rows, columns=columns[:-1])
    frame["reading"] = [reading(r, problem) for r in frame.to_dict("records")]
    return frame


def _subject(row: dict[str, object], problem: Problem) -> str:
    kind, cat, seg = row["kind"], row["category"], row["segment"]
    if kind == "category_min":
        return f"The {pct(problem.category_shares[str(cat)].min, 0)} minimum on {cat}"
    if kind == "category_max":
        return f"The {pct(problem.category_shares[str(cat)].max, 0)} maximum on {cat}"
    if kind == "clv_cac":
        rule = problem.segments[str(seg)]
        return (f"The CLV/CAC >= {rule.min_clv_cac_ratio:g} rule of {seg} (at most "
                f"{money(rule.spend_per_customer_cap or 0)} per new customer)")
    if kind == "cell_max":
        return f"The {str(row['limit']).replace('spend at most ', '')} cap on {cat} / {seg}"
    return f"The {str(row['limit']).replace('spend at least ', '')} floor on {cat} / {seg}"


def reading(row: dict[str, object], problem: Problem) -> str:
    """The plain sentence for one row of :func:`rule_table` (uses ``removal_gain`` when present).

    ``removal_gain`` is the exact objective gained by dropping the rule (from
    :func:`solver.rulecheck.check_rules`); without it the sentence gives the per-dollar price only.
    """
    what = _what(problem)
    price = float(row["shadow_price"])  # type: ignore[arg-type]
    kind = row["kind"]
    if kind == "budget":
        return f"One more dollar of budget earns {rate(price)} of {what} (share rules scaling with the budget)."
    if kind == "budget_row":
        return (f"With every share limit held in dollars, one more dollar of budget earns {rate(price)} of {what} "
                "(the budget row's own shadow price).")
    subject = _subject(row, problem)
    if not row["binding"]:
        return f"{subject} does not bind: relaxing it would earn nothing."
    per_dollar = {
        "category_min": f"each dollar it forces into {row['category']} costs {rate(price)}",
        "category_max": f"each extra dollar allowed into {row['category']} would earn {rate(price)}",
        "clv_cac": (f"each dollar of slack in it would earn {rate(price)}, each extra dollar allowed per new "
                    f"customer {money(float(row['per_unit']))}"),  # type: ignore[arg-type]
        "cell_max": f"each extra dollar allowed would earn {rate(price)}",
        "cell_min": f"each dollar of the floor costs {rate(price)}",
    }[str(kind)]
    gain = row.get("removal_gain")
    if gain is not None and not (isinstance(gain, float) and np.isnan(gain)):
        return f"{subject} costs {money(float(gain))} of {what} (exact, re-solved without it); {per_dollar}."  # type: ignore[arg-type]
    return f"{subject} binds: {per_dollar} of {what}."


def rule_price(solution: Solution, problem: Problem, rule: tuple[str, ...]) -> float:
    """The gain per unit of :func:`solver.variants.relaxed` for ``rule`` at this solution.

    ``budget``: :func:`frontier_slope`; ``budget_row``: ``Duals.budget``; shares: their duals;
    ``clv_cac``: ``mu_s`` times the segment's new customers (per dollar of allowed spend per new
    customer); cell bounds: the bound dual of :func:`cell_table` (0 when the cell is not at the
    bound). NaN without duals.
    """
    d = solution.duals
    if d is None or not solution.allocation:
        return float("nan")
    kind = rule[0]
    if kind == "budget":
        return frontier_slope(solution, problem)
    if kind == "budget_row":
        return d.budget
    if kind == "category_min":
        return float(d.category_min.get(rule[1], 0.0))
    if kind == "category_max":
        return float(d.category_max.get(rule[1], 0.0))
    if kind == "clv_cac":
        customers = sum(c.new_customers or 0.0 for c in solution.allocation if c.segment == rule[1])
        return float(d.segment_clv_cac.get(rule[1], 0.0)) * customers
    cells = cell_table(solution, problem)
    row = cells[(cells["category"] == rule[1]) & (cells["segment"] == rule[2])].iloc[0]
    wanted = "at max" if kind == "cell_max" else "at min"
    locked_sign = row["reduced_gain"] > 0 if kind == "cell_max" else row["reduced_gain"] < 0
    if row["position"] == wanted or (row["position"] == "locked" and locked_sign):
        return float(row["bound_dual"])
    return 0.0


def short_label(rule: tuple[str, ...]) -> str:
    """A compact name for a rule key: ``min share technology``, ``CLV/CAC vip``, ``cap tech / vip``."""
    kind = rule[0]
    return {
        "budget": "budget",
        "budget_row": "budget row",
        "category_min": f"min share {rule[1]}" if len(rule) > 1 else "",
        "category_max": f"max share {rule[1]}" if len(rule) > 1 else "",
        "clv_cac": f"CLV/CAC {rule[1]}" if len(rule) > 1 else "",
        "cell_max": f"cap {' / '.join(rule[1:])}",
        "cell_min": f"floor {' / '.join(rule[1:])}",
    }[kind]


def binding_rules(solution: Solution, problem: Problem) -> list[str]:
    """Short labels of the rules (other than the budget) that bind at this solution."""
    table = rule_table(solution, problem)
    if table.empty:
        return []
    rows = table[table["binding"] & ~table["kind"].isin(["budget", "budget_row"])]
    labels = []
    for rule in rows["rule"]:
        share = problem.category_shares.get(rule[1]) if rule[0] in ("category_min", "category_max") else None
        if share is not None and share.min == share.max:   # a fixed share: one rule, however its dual splits
            label = f"fixed share {rule[1]}"
            if label not in labels:
                labels.append(label)
            continue
        labels.append(short_label(rule))
    return labels
