"""Why a problem has no feasible plan, with a proof anyone can check.

A proof of infeasibility is a set of multipliers ``m`` on the rules' slacks (all in the scaled
units of :mod:`formulations.model`, ``>= 0`` except the budget's in ``equal`` mode), with

    h(m) = max over l <= y <= u of  sum_r m_r slack_r(y)  <  0,

where ``slack_budget = B - sum y``, ``slack_min_k = sum_{i in k} y_i - lo_k``,
``slack_max_k = hi_k - sum_{i in k} y_i`` and ``slack_clv_r = sum_{i in r} (v_i(y_i) - y_i)``. Every
feasible plan makes each slack ``>= 0`` (the budget's ``= 0`` in ``equal`` mode), hence the sum
``>= 0``; if even its maximum over the cell bounds is negative, no plan exists. ``h`` is the
Lagrangian dual function of the problem with a zero objective, separable per cell, so it is
computed rigorously (:func:`formulations.lagrangian.dual_bound`, with concavity bounds and a
rounding allowance) and re-checked by the independent checker from the solution file.

Where the proofs come from:

- :func:`conflicts`: the common conflicts, visible without solving, each with its multipliers
  (cell minimums above the budget, caps below it, category minimums above 100 %, a category's
  minimum above its cells' caps or its maximum below their minimums, share maximums and caps
  that cannot absorb the budget, a segment whose CLV/CAC floor no spend reaches);
- :func:`lp_proof`: every other case -- the phase-one LP (least total violation of the rules)
  with the acquisition curves replaced by tangent cuts, which lie above them, so the LP is a
  relaxation; its row duals are the multipliers, refined by more tangents until ``h < 0`` is
  proven on the exact curves. The rules with nonzero multipliers are the ones that conflict.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import highspy
import numpy as np
from numpy.typing import NDArray

from formulations.cuts import tangent_lines
from formulations.lagrangian import Multipliers, best_responses, dual_bound
from formulations.model import ArrayModel

FloatArray = NDArray[np.float64]
_TOL = 1e-9  # scaled (fraction of the budget)
_INF = highspy.kHighsInf


@dataclass(frozen=True)
class InfeasibilityProof:
    """Multipliers (scaled) whose ``value`` -- a rigorous upper estimate of ``h(m)``, scaled --
    is negative; ``rules``: the rules with a nonzero multiplier; ``reasons``: sentences a planner
    reads (what conflicts and what to change)."""

    multipliers: Multipliers
    value: float
    rules: tuple[str, ...]
    reasons: tuple[str, ...]

    @property
    def proven(self) -> bool:
        return bool(self.value < 0)


def farkas_value(model: ArrayModel, mult: Multipliers) -> float:
    """A rigorous upper estimate of ``h(mult)`` (see the module docstring), scaled."""
    return dual_bound(_zero_objective(model), mult).value


def _zero_objective(model: ArrayModel) -> ArrayModel:
    from forecasting.curves import CurveBatch

    return replace(model, spend_cost=0.0, revenue=CurveBatch([None] * model.n))


def rule_names(model: ArrayModel, mult: Multipliers) -> tuple[str, ...]:
    """The rules with a nonzero multiplier, named for a planner."""
    names = ["the budget"] if mult.budget != 0 else []
    for k, c in enumerate(model.share_category):
        cat = model.categories[c]
        if mult.share_min[k] > 0:
            names.append(f"the minimum share of category {cat}")
        if mult.share_max[k] > 0:
            names.append(f"the maximum share of category {cat}")
    for r, s in enumerate(model.clv_segment):
        if mult.clv[r] > 0:
            names.append(f"the CLV/CAC rule of segment {model.segments[s]}")
    return tuple(names)


def _money(model: ArrayModel, y: float) -> str:
    return f"{y * model.money_scale:,.2f}"


def _pct(x: float) -> str:
    return f"{100 * x:.4g} %"


def _proof(model: ArrayModel, mult: Multipliers, reason: str) -> InfeasibilityProof:
    return InfeasibilityProof(mult, farkas_value(model, mult), rule_names(model, mult), (reason,))


def conflicts(model: ArrayModel, clv: bool = True) -> list[InfeasibilityProof]:
    """Conflicts visible without solving, each with its proof (empty if none is visible).

    ``clv=False`` skips the CLV/CAC reachability check (one best-response pass over the cells).
    """
    out: list[InfeasibilityProof] = []
    k, m = model.share_category.size, model.clv_segment.size
    budget = model.budget
    problem = model.problem

    def mult(lam: float = 0.0, lo: dict[int, float] | None = None, hi: dict[int, float] | None = None,
             rules: dict[int, float] | None = None) -> Multipliers:
        smin, smax, mu = np.zeros(k), np.zeros(k), np.zeros(m)
        for j, v in (lo or {}).items():
            smin[j] = v
        for j, v in (hi or {}).items():
            smax[j] = v
        for j, v in (rules or {}).items():
            mu[j] = v
        return Multipliers(lam, smin, smax, mu)

    lower_total, upper_total = float(model.lower.sum()), float(model.upper.sum())
    if lower_total > budget * (1 + _TOL):
        out.append(_proof(model, mult(1.0), f"the cells' min_spend add to {_money(model, lower_total)}, more than "
                                            f"the budget {_money(model, budget)}"))
    if model.equal_budget and upper_total < budget * (1 - _TOL):
        out.append(_proof(model, mult(-1.0), f"the cells' max_spend add to only {_money(model, upper_total)}, less "
                                             f"than the budget {_money(model, budget)}, and budget_mode 'equal' must "
                                             "spend all of it (raise max_spend or use budget_mode 'at_most')"))
    cat_lower = model.category_sums(model.lower)
    cat_upper = model.category_sums(model.upper)
    min_share_total = sum(r.min for r in problem.category_shares.values())
    if min_share_total > 1 + _TOL:
        names = ", ".join(f"{c} {_pct(r.min)}" for c, r in problem.category_shares.items() if r.min > 0)
        out.append(_proof(model, mult(1.0, lo={j: 1.0 for j in range(k)}),
                          f"category minimums add to {_pct(min_share_total)} of the budget ({names})"))
    elif lower_total <= budget * (1 + _TOL):
        # Each category needs the larger of its minimum share and its cells' minimums.
        by_share = {j: 1.0 for j, c in enumerate(model.share_category) if model.share_lo[j] > cat_lower[c]}
        need = cat_lower.copy()
        need[model.share_category] = np.maximum(need[model.share_category], model.share_lo)
        if need.sum() > budget * (1 + _TOL) and by_share:
            out.append(_proof(model, mult(1.0, lo=by_share),
                              "; ".join(f"the minimum share of category {model.categories[model.share_category[j]]}"
                                        for j in by_share)
                              + f" and the other categories' cell min_spend need {_money(model, float(need.sum()))}, "
                              f"more than the budget {_money(model, budget)}"))
    for j, c in enumerate(model.share_category):
        name = model.categories[c]
        rule = problem.category_shares[name]
        if cat_upper[c] < model.share_lo[j] * (1 - _TOL):
            out.append(_proof(model, mult(lo={j: 1.0}),
                              f"category {name} must get at least {_pct(rule.min)} of the budget "
                              f"({_money(model, model.share_lo[j])}) but its cells' max_spend add to "
                              f"{_money(model, cat_upper[c])}"))
        if cat_lower[c] > model.share_hi[j] * (1 + _TOL):
            out.append(_proof(model, mult(hi={j: 1.0}),
                              f"category {name} may get at most {_pct(rule.max)} of the budget "
                              f"({_money(model, model.share_hi[j])}) but its cells' min_spend add to "
                              f"{_money(model, cat_lower[c])}"))
    if model.equal_budget and not out:
        capped = {j: 1.0 for j, c in enumerate(model.share_category) if model.share_hi[j] < cat_upper[c]}
        capacity = cat_upper.copy()
        capacity[model.share_category] = np.minimum(capacity[model.share_category], model.share_hi)
        if capacity.sum() < budget * (1 - _TOL):
            out.append(_proof(model, mult(-1.0, hi=capped),
                              f"the category maximum shares and cell caps allow at most "
                              f"{_money(model, float(capacity.sum()))} of spend, less than the budget "
                              f"{_money(model, budget)} that budget_mode 'equal' must spend"))
    if clv:
        out.extend(unreachable_clv(model))
    return [p for p in out if p.proven]


def precheck(model: ArrayModel, clv: bool = True) -> list[str]:
    """The sentences of :func:`conflicts` (empty if none is visible)."""
    return [p.reasons[0] for p in conflicts(model, clv)]


def clv_depends_on_budget(model: ArrayModel) -> bool:
    """Whether CLV/CAC reachability can change with the budget: only through cells of a ruled
    segment whose spend cap is the budget itself (no ``max_spend``)."""
    no_cap = np.isnan(model.problem.table.max_spend)
    return bool(np.any(no_cap & (model.clv_rule_of >= 0)))


def unreachable_clv(model: ArrayModel) -> list[InfeasibilityProof]:
    """Segments whose CLV/CAC rule fails at every spend their cells' bounds allow, with proofs
    (multiplier 1 on the rule: the rule's best slack over the bounds is negative)."""
    m = model.clv_segment.size
    if m == 0:
        return []
    in_rule = model.clv_rule_of >= 0
    ones = np.where(in_rule, 1.0, 0.0)
    _, best = best_responses(_zero_objective(model), ones, ones)
    best_by_rule = np.bincount(model.clv_rule_of[in_rule], weights=best[in_rule], minlength=m)
    out = []
    for r, s in enumerate(model.clv_segment):
        if best_by_rule[r] < -_TOL:
            name = model.segments[s]
            rule = model.problem.segments[name]
            mu = np.zeros(m)
            mu[r] = 1.0
            k = model.share_category.size
            out.append(_proof(model, Multipliers(0.0, np.zeros(k), np.zeros(k), mu),
                              f"segment {name} cannot reach CLV/CAC >= {rule.min_clv_cac_ratio:g} (CLV "
                              f"{rule.clv:g}) at any spend its cells' bounds allow: its new customers cost "
                              "more than the rule permits even at the best spend levels (lower min_spend, "
                              "lower the ratio, or drop the rule)"))
    return out


def lp_proof(model: ArrayModel, rounds: int = 40) -> InfeasibilityProof | None:
    """A proof from the phase-one LP (see the module docstring), or None when the rules can be
    met (the LP reaches zero violation with every acquisition curve's tangents exact enough)."""
    lp = _PhaseOne(model)
    for _ in range(rounds):
        result = lp.solve()
        if result is None:
            return None
        violation, mult, y = result
        value = farkas_value(model, mult)
        if value < 0:
            reason = _conflict_sentence(model, mult)
            return InfeasibilityProof(mult, value, rule_names(model, mult), (reason,))
        if not lp.refine(y):  # the relaxation is exact at its plan: the rules can be met
            return None
    return None


def _conflict_sentence(model: ArrayModel, mult: Multipliers) -> str:
    names = rule_names(model, mult)
    budget_words = "spending exactly the budget" if model.equal_budget else "the budget"
    others = [n for n in names if n != "the budget"]
    if not others:
        return f"{budget_words} cannot be met within the cells' min_spend / max_spend bounds"
    return f"these rules cannot hold together with {budget_words} and the cell bounds: " + "; ".join(others)


class _PhaseOne:
    """``min sum e`` over ``l <= y <= u``, ``a_i <= tangents of v_i`` and ``e >= 0`` with the rows
    ``slack_r(y, a) + e_r >= 0`` (the budget row two-sided in ``equal`` mode)."""

    def __init__(self, model: ArrayModel) -> None:
        self.model = model
        n = model.n
        self.clv_cells = np.flatnonzero(model.clv_rule_of >= 0)
        nc = self.clv_cells.size
        self.acq_col = np.full(n, -1, dtype=np.int64)
        self.acq_col[self.clv_cells] = n + np.arange(nc)
        k, m = model.share_category.size, model.clv_segment.size
        h = highspy.Highs()
        h.setOptionValue("output_flag", False)
        h.setOptionValue("primal_feasibility_tolerance", 1e-10)
        h.setOptionValue("dual_feasibility_tolerance", 1e-10)
        self.h = h
        acq_cap = model.acq_value(model.upper)[self.clv_cells] if nc else np.zeros(0)
        # Columns: y (n), a (nc), then elastic columns: budget (2), share min/max (2k), clv (m).
        n_el = 2 + 2 * k + m
        cost = np.concatenate([np.zeros(n + nc), np.ones(n_el)])
        lo = np.concatenate([model.lower, np.full(nc, -_INF), np.zeros(n_el)])
        hi = np.concatenate([model.upper, acq_cap, np.full(n_el, _INF)])
        h.addCols(cost.size, cost, lo, hi, 0, np.zeros(0, np.int32), np.zeros(0, np.int32), np.zeros(0))
        el = n + nc
        rows: list[tuple[NDArray[np.int64], FloatArray]] = []
        rlo: list[float] = []
        rhi: list[float] = []
        every = np.arange(n)
        # budget: sum y - e+ + e- in [B, B] (equal) or sum y - e+ <= B
        rows.append((np.concatenate([every, [el, el + 1]]), np.concatenate([np.ones(n), [-1.0, 1.0]])))
        rlo.append(model.budget if model.equal_budget else -_INF)
        rhi.append(model.budget)
        for j, c in enumerate(model.share_category):
            ix = np.flatnonzero(model.category_of == c)
            rows.append((np.concatenate([ix, [el + 2 + j]]), np.concatenate([np.ones(ix.size), [1.0]])))
            rlo.append(model.share_lo[j])
            rhi.append(_INF)
            rows.append((np.concatenate([ix, [el + 2 + k + j]]), np.concatenate([np.ones(ix.size), [-1.0]])))
            rlo.append(-_INF)
            rhi.append(model.share_hi[j])
        for r in range(m):
            ix = np.flatnonzero(model.clv_rule_of == r)
            rows.append((np.concatenate([ix, self.acq_col[ix], [el + 2 + 2 * k + r]]),
                         np.concatenate([np.ones(ix.size), -np.ones(ix.size), [-1.0]])))
            rlo.append(-_INF)
            rhi.append(0.0)
        starts = np.cumsum([0] + [len(ix) for ix, _ in rows[:-1]]).astype(np.int32)
        index = np.concatenate([ix for ix, _ in rows]).astype(np.int32)
        value = np.concatenate([v for _, v in rows]).astype(np.float64)
        h.addRows(len(rows), np.array(rlo), np.array(rhi), index.size, starts, index, value)
        self.k, self.m = k, m
        if nc:
            grid = model.lower[self.clv_cells][:, None] + (model.upper - model.lower)[self.clv_cells][:, None] * \
                np.array([0.0, 1 / 64, 1 / 16, 1 / 4, 1 / 2, 1.0])[None, :]
            for j in range(grid.shape[1]):
                self._tangents(self.clv_cells, grid[:, j])

    def _tangents(self, cells: NDArray[np.intp], points: FloatArray) -> None:
        """Rows ``a_i - slope y_i <= intercept`` for the acquisition value's tangents at ``points``."""
        cells, slope, intercept = tangent_lines(self.model, cells, points, acquisition=True)
        if cells.size == 0:
            return
        kk = cells.size
        starts = (2 * np.arange(kk)).astype(np.int32)
        index = np.column_stack([self.acq_col[cells], cells]).ravel().astype(np.int32)
        coef = np.column_stack([np.ones(kk), -slope]).ravel()
        self.h.addRows(kk, np.full(kk, -_INF), intercept, index.size, starts, index, coef)

    def solve(self) -> tuple[float, Multipliers, FloatArray] | None:
        self.h.run()
        if self.h.getModelStatus() != highspy.HighsModelStatus.kOptimal:
            return None
        sol = self.h.getSolution()
        dual = np.asarray(sol.row_dual)
        k, m, n = self.k, self.m, self.model.n
        # Minimization: a row's dual is d(total violation)/d(row bound). The multiplier of a
        # slack "activity - lo" is that dual, of "hi - activity" its negative.
        budget = -float(dual[0])
        smin = np.maximum(dual[1 : 1 + 2 * k : 2], 0.0)
        smax = np.maximum(-dual[2 : 2 + 2 * k : 2], 0.0)
        clv = np.maximum(-dual[1 + 2 * k : 1 + 2 * k + m], 0.0)
        mult = Multipliers(budget, smin, smax, clv).projected(self.model.equal_budget)
        return float(self.h.getInfo().objective_function_value), mult, np.asarray(sol.col_value)[:n]

    def refine(self, y: FloatArray) -> bool:
        """Tangents of the acquisition curves at ``y`` where the LP's value overstates them."""
        if self.clv_cells.size == 0:
            return False
        cols = np.asarray(self.h.getSolution().col_value)
        a = cols[self.acq_col[self.clv_cells]]
        exact = self.model.acq_value(y)[self.clv_cells]
        over = a > exact + 1e-13 * (1 + np.abs(exact))
        if not over.any():
            return False
        self._tangents(self.clv_cells[over], y[self.clv_cells][over])
        return True
