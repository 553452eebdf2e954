"""Re-solve cross-checks of the shadow prices: exact rule costs, dual checks, validity ranges.

For every binding rule of :func:`solver.sensitivity.rule_table`, :func:`check_rules` re-solves
variants of the same problem (built by :mod:`solver.variants`, solved by
:func:`solver.solve.solve`) and adds:

- ``removal_gain``: the exact objective gained by dropping the rule (optimum without it minus
  optimum with it, both certified) -- "the 10 % minimum on list_management costs $8,000";
- ``binds_until``: how far the rule must be relaxed before it stops binding (the plan without the
  rule breaks the original rule by exactly this much, in the rule's relaxation unit). Proven: that
  plan is optimal for every looser version of the rule, so the shadow price is 0 beyond it;
- ``resolve_price``: the dual re-measured by re-solving with the rule relaxed by ``step`` --
  ``(V(step) - V(0)) / step`` (central differences for the two budget rows), with
  ``resolve_error``, its worst case from the two solves' proven gaps, and ``price_at_step``, the
  dual at the relaxed optimum. For a rule whose relaxation enters linearly (budget, shares, cell
  bounds) the optimal value is concave in the relaxation, so
  ``price_at_step <= (V(step) - V(0)) / step <= shadow price``: ``agrees`` checks exactly this,
  widened by ``resolve_error`` and 1e-6 relative;
- ``price_valid_up_to`` (linear rules only): a relaxation up to which the shadow price is proven
  to stay within ``validity_tol`` (default 10 %) of its value: by concavity the dual is
  nonincreasing in the relaxation, so once the dual re-solved at ``delta`` is within tolerance it
  is within tolerance on all of ``[0, delta]``. Found by bisection on ``[0, binds_until]``
  (``validity_steps`` solves), so it is a proven lower bound, not the exact edge. CLV/CAC rules
  relax nonlinearly (their cap multiplies a curve); no range is claimed for them.

Units: ``removal_gain`` in objective currency; relaxations (``step``, ``binds_until``,
``price_valid_up_to``) in currency for budget, share and cell rules, in currency of allowed spend
per new customer for CLV/CAC rules; prices per unit of relaxation (``per_unit``).
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pandas as pd

from formulations.problem import Problem
from solver.backends import SolveOptions
from solver.plans import solution_spend
from solver.sensitivity import reading, rule_price, rule_table
from solver.solution import Solution
from solver.resolve import resolve
from solver.variants import RuleKey, relaxed, without_rule

LINEAR_RULES = ("budget", "budget_row", "category_min", "category_max", "cell_min", "cell_max")
CHECK_COLUMNS = ["step", "resolve_price", "resolve_error", "price_at_step", "agrees", "removal_gain",
                 "binds_until", "price_valid_up_to", "check_message"]


def _rule_used(free: Solution, problem: Problem, rule: RuleKey) -> float:
    """How much the plan without ``rule`` breaks it (relaxation units, >= 0)."""
    x = solution_spend(free)
    table = problem.table
    kind = rule[0]
    if kind in ("category_min", "category_max"):
        spend = float(x[table.category == rule[1]].sum())
        share = problem.category_shares[rule[1]]
        used = share.min * problem.budget - spend if kind == "category_min" else spend - share.max * problem.budget
    elif kind == "clv_cac":
        idx = table.segment == rule[1]
        customers = float(np.nansum(free.allocation_frame()["new_customers"].to_numpy(dtype=float)[idx]))
        cac = float(x[idx].sum() / customers) if customers > 0 else float("inf")
        used = cac - (problem.segments[rule[1]].spend_per_customer_cap or 0.0)
    else:
        i = int(np.flatnonzero((table.category == rule[1]) & (table.segment == rule[2]))[0])
        used = (x[i] - table.upper(problem.budget)[i] if kind == "cell_max" else table.min_spend[i] - x[i])
    return max(float(used), 0.0)


def _scale(problem: Problem, rule: RuleKey) -> float:
    if rule[0] == "clv_cac":
        return problem.segments[rule[1]].spend_per_customer_cap or 1.0
    return problem.budget


def check_rules(solution: Solution, problem: Problem, *, options: SolveOptions | None = None,
                backend: str = "auto", step: float = 1e-4, validity_steps: int = 4,
                validity_tol: float = 0.1) -> pd.DataFrame:
    """:func:`~solver.sensitivity.rule_table` with the re-solve columns of the module docstring.

    Parameters
    ----------
    solution, problem : an optimal solution of ``problem`` (anything else gets no checks)
    options, backend : passed to every re-solve
    step : relaxation for the dual check, as a fraction of the budget (of the allowed spend per
        new customer for CLV/CAC rules)
    validity_steps : bisection solves per linear rule for ``price_valid_up_to`` (0: skip)
    validity_tol : the relative change of the shadow price the validity range allows

    Returns
    -------
    DataFrame
        One row per rule; the check columns are NaN for rules that do not bind. ``reading``
        leads with the exact cost of each binding rule.
    """
    table = rule_table(solution, problem)
    for col in CHECK_COLUMNS:
        table[col] = np.nan if col not in ("agrees", "check_message") else None
    if not solution.is_optimal or table.empty:
        return table
    value = float(solution.objective or 0.0)
    gap = float(solution.gap or 0.0)

    def run(p: Problem) -> Solution:
        return resolve(p, backend=backend, options=options)

    for k, row in table.iterrows():
        if not row["binding"]:
            continue
        rule: RuleKey = row["rule"]
        price0 = float(row["per_unit"])
        h = step * _scale(problem, rule)
        notes: list[str] = []
        if rule[0] in ("budget", "budget_row"):
            up, down = run(relaxed(problem, rule, h)), run(relaxed(problem, rule, -h))
            solved = [up, down]
            if up.is_optimal and down.is_optimal:
                fd = (float(up.objective or 0) - float(down.objective or 0)) / (2 * h)
                err = (float(up.gap or 0) + float(down.gap or 0)) / (2 * h)
                lo_p, hi_p = sorted((rule_price(up, relaxed(problem, rule, h), rule),
                                     rule_price(down, relaxed(problem, rule, -h), rule)))
        else:
            free = run(without_rule(problem, rule))
            if free.is_optimal:
                used = _rule_used(free, problem, rule)
                table.at[k, "removal_gain"] = float(free.objective or 0) - value
                table.at[k, "binds_until"] = used
                if 0 < used < np.inf:
                    h = min(h, used / 1000)  # stay well inside the range where the rule binds
                if rule[0] in LINEAR_RULES and validity_steps > 0 and np.isfinite(used):
                    table.at[k, "price_valid_up_to"] = _valid_up_to(
                        lambda d: relaxed(problem, rule, d), run, rule, price0, used, validity_steps, validity_tol)
            moved = relaxed(problem, rule, h)
            up = run(moved)
            solved = [free, up]
            if up.is_optimal:
                fd = (float(up.objective or 0) - value) / h
                err = (float(up.gap or 0) + gap) / h
                lo_p, hi_p = rule_price(up, moved, rule), price0
        failed = [s for s in solved if not s.is_optimal]
        if failed:
            notes.append("re-solve not optimal: " + "; ".join(f"{s.status.value}: {s.message}" for s in failed))
        else:
            slack = err + 1e-6 * max(1.0, abs(price0))
            table.at[k, "step"] = h
            table.at[k, "resolve_price"] = fd
            table.at[k, "resolve_error"] = err
            table.at[k, "price_at_step"] = lo_p if rule[0] not in ("budget", "budget_row") else np.nan
            table.at[k, "agrees"] = bool(min(lo_p, hi_p) - slack <= fd <= max(lo_p, hi_p) + slack)
        table.at[k, "check_message"] = "; ".join(notes)
    table["reading"] = [reading(r, problem) for r in table.to_dict("records")]
    return table


def _valid_up_to(variant: Callable[[float], Problem], run: Callable[[Problem], Solution], rule: RuleKey,
                 price0: float, used: float, steps: int, tol: float) -> float:
    """Largest relaxation in ``[0, used]`` proven to keep the price within ``tol`` (bisection)."""
    lo, hi = 0.0, used
    for _ in range(steps):
        mid = (lo + hi) / 2
        p = variant(mid)
        sol = run(p)
        if not sol.is_optimal:
            break
        if rule_price(sol, p, rule) >= (1 - tol) * price0:
            lo = mid
        else:
            hi = mid
    return lo
