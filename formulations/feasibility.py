"""Why a problem has no feasible plan, in words a planner can act on.

:func:`precheck` finds the common conflicts without solving anything (bounds against the budget,
share minimums adding to more than 100 %, a segment whose CLV/CAC floor no spend can meet).
:func:`conflicting_rules` names a minimal set of rules that conflict when the conflict only shows
when several rules meet (a deletion filter over the share and CLV/CAC rules, each test an LP).
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np
from numpy.typing import NDArray

from formulations.lagrangian import best_responses
from formulations.model import ArrayModel

_TOL = 1e-9  # scaled (fraction of the budget)


def _money(model: ArrayModel, y: float) -> str:
    return f"{y * model.money_scale:,.2f}"


def _pct(x: float) -> str:
    return f"{100 * x:.4g} %"


def precheck(model: ArrayModel, clv: bool = True) -> list[str]:
    """Conflicts visible without solving; each entry names the rules involved. Empty if none.

    ``clv=False`` skips the CLV/CAC reachability check (one best-response computation), for
    callers that already know its answer (see :func:`clv_depends_on_budget`).
    """
    out: list[str] = []
    budget = model.budget
    problem = model.problem
    lower_total, upper_total = float(model.lower.sum()), float(model.upper.sum())
    if lower_total > budget * (1 + _TOL):
        out.append(f"the cells' min_spend add to {_money(model, lower_total)}, more than the budget "
                   f"{_money(model, budget)}")
    if model.equal_budget and upper_total < budget * (1 - _TOL):
        out.append(f"the cells' max_spend add to only {_money(model, upper_total)}, less than the budget "
                   f"{_money(model, budget)}, and budget_mode 'equal' must spend all of it "
                   "(raise max_spend or use budget_mode 'at_most')")
    min_share_total = sum(r.min for r in problem.category_shares.values())
    if min_share_total > 1 + _TOL:
        out.append(f"category minimums add to {_pct(min_share_total)} of the budget")
    cat_lower = model.category_sums(model.lower)
    cat_upper = model.category_sums(model.upper)
    for k, c in enumerate(model.share_category):
        name = model.categories[c]
        rule = problem.category_shares[name]
        if cat_upper[c] < model.share_lo[k] * (1 - _TOL):
            out.append(f"category {name} must get at least {_pct(rule.min)} of the budget "
                       f"({_money(model, model.share_lo[k])}) but its cells' max_spend add to "
                       f"{_money(model, cat_upper[c])}")
        if cat_lower[c] > model.share_hi[k] * (1 + _TOL):
            out.append(f"category {name} may get at most {_pct(rule.max)} of the budget "
                       f"({_money(model, model.share_hi[k])}) but its cells' min_spend add to "
                       f"{_money(model, cat_lower[c])}")
    if model.equal_budget:
        capacity = cat_upper.copy()
        capacity[model.share_category] = np.minimum(capacity[model.share_category], model.share_hi)
        if capacity.sum() < budget * (1 - _TOL) and upper_total >= budget * (1 - _TOL):
            out.append(f"the category maximum shares and cell caps allow at most "
                       f"{_money(model, float(capacity.sum()))} of spend, less than the budget "
                       f"{_money(model, budget)} that budget_mode 'equal' must spend")
    if clv:
        out.extend(unreachable_clv(model))
    return out


def clv_depends_on_budget(model: ArrayModel) -> bool:
    """Whether CLV/CAC reachability can change with the budget: only through cells of a ruled
    segment whose spend cap is the budget itself (no ``max_spend``)."""
    no_cap = np.isnan(model.problem.table.max_spend)
    return bool(np.any(no_cap & (model.clv_rule_of >= 0)))


def unreachable_clv(model: ArrayModel) -> list[str]:
    """Segments whose CLV/CAC rule fails at every spend their cells' bounds allow."""
    if model.clv_segment.size == 0:
        return []
    in_rule = model.clv_rule_of >= 0
    price = np.where(in_rule, 1.0, 0.0)
    weight = np.where(in_rule, 1.0, 0.0)
    # Best case per cell: max over its bounds of (acquisition value - spend), ignoring revenue.
    probe = replace(model, spend_cost=0.0, revenue=_zero_revenue(model))
    _, best = best_responses(probe, price, weight)
    best_by_rule = np.bincount(model.clv_rule_of[in_rule], weights=best[in_rule], minlength=model.clv_segment.size)
    out = []
    for r, s in enumerate(model.clv_segment):
        if best_by_rule[r] < -_TOL:
            name = model.segments[s]
            rule = model.problem.segments[name]
            out.append(f"segment {name} cannot reach CLV/CAC >= {rule.min_clv_cac_ratio:g} (CLV "
                       f"{rule.clv:g}) at any spend its cells' bounds allow: its new customers cost "
                       "more than the rule permits even at the best spend levels (lower min_spend, "
                       "lower the ratio, or drop the rule)")
    return out


def _zero_revenue(model: ArrayModel):  # type: ignore[no-untyped-def]
    from forecasting.curves import CurveBatch

    return CurveBatch([None] * model.n)


def restrict_rules(model: ArrayModel, shares: NDArray[np.intp], clv: NDArray[np.intp]) -> ArrayModel:
    """The model keeping only the share rules ``shares`` and CLV/CAC rules ``clv`` (indices)."""
    keep_rule = np.full(model.clv_segment.size, -1, dtype=np.intp)
    keep_rule[clv] = np.arange(clv.size)
    has = model.clv_rule_of >= 0
    new_rule_of = np.full(model.n, -1, dtype=np.intp)
    new_rule_of[has] = keep_rule[model.clv_rule_of[has]]
    return replace(
        model,
        share_category=model.share_category[shares],
        share_lo=model.share_lo[shares],
        share_hi=model.share_hi[shares],
        clv_segment=model.clv_segment[clv],
        clv_rule_of=new_rule_of,
        acq_value_coef=np.where(new_rule_of >= 0, model.acq_value_coef, 0.0),
    )


def _rule_names(model: ArrayModel, shares: NDArray[np.intp], clv: NDArray[np.intp]) -> list[str]:
    names = []
    for k in shares:
        name = model.categories[model.share_category[k]]
        rule = model.problem.category_shares[name]
        names.append(f"the {_pct(rule.min)}-{_pct(rule.max)} share rule of category {name}")
    for r in clv:
        name = model.segments[model.clv_segment[r]]
        names.append(f"the CLV/CAC rule of segment {name}")
    return names


def conflicting_rules(model: ArrayModel) -> str:
    """A sentence naming a minimal set of share and CLV/CAC rules that cannot hold together
    with the budget and cell bounds (deletion filter; each test solves the problem's LP)."""
    from formulations.cuts import CutOptions, solve_cuts
    from formulations.result import RouteStatus

    def infeasible(shares: NDArray[np.intp], clv: NDArray[np.intp]) -> bool:
        sub = restrict_rules(model, shares, clv)
        if precheck(sub):
            return True
        return solve_cuts(sub, CutOptions(gap_tol=1e-6, max_iterations=60)).status is RouteStatus.INFEASIBLE

    shares = np.arange(model.share_category.size)
    clv = np.arange(model.clv_segment.size)
    if not infeasible(np.array([], np.intp), np.array([], np.intp)):
        for k in list(shares):
            trial = shares[shares != k]
            if infeasible(trial, clv):
                shares = trial
        for r in list(clv):
            trial = clv[clv != r]
            if infeasible(shares, trial):
                clv = trial
        rules = _rule_names(model, shares, clv)
    else:
        rules = []
    budget_words = "spending exactly the budget" if model.equal_budget else "the budget"
    if not rules:
        return f"{budget_words} cannot be met within the cells' min_spend / max_spend bounds"
    return f"these rules cannot hold together with {budget_words} and the cell bounds: " + "; ".join(rules)
