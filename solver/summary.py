"""A readable summary of one solution (Markdown), from the Solution and the Problem only.

It answers, in this order: is the plan proven optimal and how close is the bound; what does the
next dollar of budget earn; what each binding rule costs; how the plan differs from the status
quo by category and segment; and new customers and acquisition cost per segment against each
CLV/CAC limit.
"""

from __future__ import annotations

import pandas as pd

from formulations.problem import Problem
from solver.formatting import money
from solver.sensitivity import rule_table
from solver.solution import Solution

__all__ = ["money", "rule_readings", "segment_table", "category_table", "render_summary"]


def rule_readings(solution: Solution, problem: Problem, rules: pd.DataFrame | None = None) -> list[str]:
    """One sentence per priced rule: what the next dollar of budget earns, what each binding rule costs.

    ``rules`` is a :func:`solver.sensitivity.rule_table` (or :func:`solver.rulecheck.check_rules`
    table, whose readings lead with the exact cost of each rule); computed when not given.
    """
    table = rule_table(solution, problem) if rules is None else rules
    if table.empty:
        return []
    keep = table["kind"].isin(["budget", "budget_row"]) | table["binding"]
    if not (table["kind"].isin(["category_min", "category_max"]) & table["binding"]).any():
        keep &= table["kind"] != "budget_row"   # the same number as the budget's: say it once
    return [str(r) for r in table.loc[keep, "reading"]]


def segment_table(solution: Solution, problem: Problem) -> pd.DataFrame:
    """Spend, revenue, new customers and CAC per segment, with the CLV/CAC spend cap."""
    frame = solution.allocation_frame()
    grouped = frame.groupby("segment", sort=False)[["spend", "revenue", "new_customers"]].sum(min_count=1)
    grouped["cac"] = grouped["spend"] / grouped["new_customers"]
    grouped["max_cac"] = [problem.segments[s].spend_per_customer_cap if s in problem.segments else None
                          for s in grouped.index]
    return grouped


def category_table(solution: Solution) -> pd.DataFrame:
    """Spend and revenue per category, planned vs status quo, with the share of budget."""
    frame = solution.allocation_frame()
    g = frame.groupby("category", sort=False)[["spend", "current_spend", "revenue", "current_revenue"]].sum(min_count=1)
    g["share"] = g["spend"] / solution.budget
    return g


def _markdown_table(df: pd.DataFrame, formats: dict[str, str]) -> str:
    cols = [df.index.name or ""] + list(df.columns)
    lines = ["| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
    for idx, row in df.iterrows():
        cells = [str(idx)]
        for c in df.columns:
            v = row[c]
            cells.append("" if v is None or (isinstance(v, float) and pd.isna(v)) else formats.get(c, "{}").format(v))
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def render_summary(solution: Solution, problem: Problem) -> str:
    """The Markdown summary of a solution (see the module docstring)."""
    title = problem.name or "Budget allocation"
    lines = [f"# {title}", ""]
    if not solution.is_optimal:
        lines += [f"**Status: {solution.status.value}.** {solution.message}", ""]
        if not solution.allocation:
            return "\n".join(lines) + "\n"
    what = "profit" if solution.objective_kind == "profit" else "predicted revenue"
    current = [c for c in solution.allocation if c.current_spend is not None]
    lines += [
        f"**Status: {solution.status.value}** ({solution.backend}, {solution.seconds:.2f} s). "
        f"Budget {money(solution.budget)}, {problem.budget_mode.value.replace('_', ' ')}.",
        "",
        f"- Optimal {what}: **{money(solution.objective or 0)}**",
        f"- Proven upper bound: {money(solution.upper_bound or 0)} (gap {money(solution.gap or 0)}; no plan can do better "
        "than the bound)",
    ]
    if current and len(current) == len(solution.allocation):
        spent = sum(c.spend for c in solution.allocation)
        status_quo = sum(c.current_revenue or 0 for c in current)
        status_quo_spend = sum(c.current_spend or 0 for c in current)
        revenue = sum(c.revenue for c in solution.allocation)
        lines.append(f"- Predicted revenue {money(revenue)} on {money(spent)} vs status quo {money(status_quo)} on "
                     f"{money(status_quo_spend)} ({(revenue / status_quo - 1):+.1%})" if status_quo > 0 else "")
    lines += ["", "## What the next dollar earns and what each rule costs", ""]
    lines += [f"- {s}" for s in rule_readings(solution, problem)]
    lines += ["", "## By category", "",
              _markdown_table(category_table(solution), {"spend": "${:,.0f}", "current_spend": "${:,.0f}",
                                                         "revenue": "${:,.0f}", "current_revenue": "${:,.0f}",
                                                         "share": "{:.1%}"})]
    if any(c.new_customers is not None for c in solution.allocation):
        lines += ["", "## By segment", "",
                  _markdown_table(segment_table(solution, problem),
                                  {"spend": "${:,.0f}", "revenue": "${:,.0f}", "new_customers": "{:,.0f}",
                                   "cac": "${:,.2f}", "max_cac": "${:,.2f}"})]
    frame = solution.allocation_frame().set_index(["category", "segment"])
    frame.index = [f"{c} / {s}" for c, s in frame.index]
    frame.index.name = "cell"
    lines += ["", "## By cell", "",
              _markdown_table(frame[["spend", "current_spend", "revenue", "marginal_revenue"]],
                              {"spend": "${:,.0f}", "current_spend": "${:,.0f}", "revenue": "${:,.0f}",
                               "marginal_revenue": "{:.3f}"})]
    return "\n".join(lines) + "\n"
