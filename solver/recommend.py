"""Recommendations: concrete moves from today's plan towards the optimal one, ranked by value.

Each recommendation moves money between two cells (or between a cell and the unspent budget), and
its gain is the *exact* difference of predicted objective between the plans before and after the
move, evaluated on the exact curves -- never a dual-based extrapolation. Built from the status quo
(``current_spend``) and the optimal solution, greedily:

- Donors are the cells that spend more than in the optimal plan, recipients those that spend
  less; the budget not spent today (negative: overspent) is one more entry, worth 0 per dollar
  for a revenue objective and 1 for profit, whose optimal value is what the optimal plan leaves
  unspent (0 in ``equal`` mode).
- Every donor / recipient pair is tried with the best amount that (a) does not overshoot either
  entry's optimal value, (b) breaks no rule that the plan before it meets and breaks no rule by
  more than the plan before it does (each rule's violation is convex along the move, so these
  amounts form an interval; its end is found by bisection), and (c) maximizes the pair's exact
  gain (concave in the amount: bisection on the difference of the two marginal revenues -- the
  duals say where money is worth more, the curves say exactly how much). The amount is rounded
  down to three significant digits and the gain recomputed.
- The best pair is applied and the search repeats, up to ``max_moves``; a last ``remaining`` row
  carries the rest of the way to the optimal plan.

So when today's plan meets every rule, every plan along the way does too and every gain is the
exact gain of a feasible plan. When today's plan breaks rules (a fixed budget it does not spend,
a CLV/CAC floor it misses), no move makes a break worse, ``still_breaks`` lists what the plan
after each move still breaks, and the ``remaining`` row ends at the optimal plan, which meets
every rule. The gains add up exactly to ``objective(optimal) - objective(status quo)``; each is
exact given the moves before it (rows are in the order the moves apply).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import pandas as pd
from numpy.typing import NDArray

from formulations.problem import BudgetMode, Objective, Problem
from solver.formatting import money, signed_money
from solver.plans import RuleChecker, solution_spend, status_quo_spend
from solver.solution import Solution

FloatArray = NDArray[np.float64]
COLUMNS = ["rank", "kind", "action", "from_cell", "to_cell", "amount", "revenue_gain", "objective_gain",
           "cumulative_gain", "from_marginal", "to_marginal", "still_breaks"]
UNSPENT = "unspent budget"


@dataclass
class _State:
    """The plan being improved: real cells plus the unspent budget (last entry)."""

    problem: Problem
    x: FloatArray          # n + 1 entries; the last is the unspent budget (negative: overspent)
    target: FloatArray     # the optimal plan, same layout
    checker: RuleChecker
    cost: float            # value of one unspent dollar: 1 for profit, 0 for revenue

    def __post_init__(self) -> None:
        self.curves = [self.problem.table.revenue.curve(i) for i in range(len(self.problem.table))]
        self.move_to(self.x)

    def move_to(self, x: FloatArray) -> None:
        self.x = x
        self.now = self.checker.violations(x[:-1])

    def revenue(self, x: FloatArray) -> float:
        return float(self.problem.table.revenue.value_at(x[:-1]).sum())

    def objective(self, x: FloatArray) -> float:
        return self.revenue(x) - self.cost * float(x[:-1].sum())

    def marginal(self, x: FloatArray, i: int) -> float:
        """Revenue per dollar added to cell ``i``; for the unspent budget, ``cost`` (a dollar kept
        is worth a dollar of profit). Moving a dollar from i to j changes the objective by the
        difference of the two."""
        if i == len(x) - 1:
            return self.cost
        return float(self.curves[i].derivative(x[i]))

    def allowed(self, y: FloatArray) -> bool:
        """True when plan ``y`` breaks no rule by more than the current plan does."""
        then = self.checker.violations(y[:-1])
        return all(bool(np.all(then[k] <= self.now[k] + self.checker.tol)) for k in then)


def _moved(x: FloatArray, i: int, j: int, f: float) -> FloatArray:
    y = x.copy()
    y[i] -= f
    y[j] += f
    return y


def _round_down(f: float) -> float:
    """Three significant digits, rounded towards zero (keeps the move feasible and gainful)."""
    if f <= 0:
        return 0.0
    step = 10.0 ** (math.floor(math.log10(f)) - 2)
    return math.floor(f / step) * step or f


def _best_amount(s: _State, i: int, j: int) -> float:
    """The best allowed amount to move from entry ``i`` to ``j`` (see the module docstring)."""
    f_max = min(s.x[i] - s.target[i], s.target[j] - s.x[j])
    if f_max <= 0 or s.marginal(s.x, j) <= s.marginal(s.x, i):
        return 0.0
    if not s.allowed(_moved(s.x, i, j, f_max)):
        lo, hi = 0.0, f_max
        for _ in range(24):  # to 1e-7 of the move: amounts are rounded to 3 digits anyway
            mid = (lo + hi) / 2
            lo, hi = (mid, hi) if s.allowed(_moved(s.x, i, j, mid)) else (lo, mid)
        f_max = lo
    end = _moved(s.x, i, j, f_max)
    if f_max <= 0 or s.marginal(end, j) >= s.marginal(end, i):
        return f_max
    lo, hi = 0.0, f_max
    for _ in range(30):
        mid = (lo + hi) / 2
        y = _moved(s.x, i, j, mid)
        lo, hi = (mid, hi) if s.marginal(y, j) > s.marginal(y, i) else (lo, mid)
    return lo


def _names(problem: Problem) -> list[str]:
    t = problem.table
    return [f"{c} / {g}" for c, g in zip(t.category, t.segment)] + [UNSPENT]


def _action(what: str, src: str, dst: str, amount: float, gain: float) -> str:
    if src == UNSPENT:
        return f"put {money(amount)} of unspent budget into {dst}: {signed_money(gain)} {what}"
    if dst == UNSPENT:
        return f"cut {money(amount)} from {src} (leave it unspent): {signed_money(gain)} {what}"
    return f"move {money(amount)} from {src} to {dst}: {signed_money(gain)} {what}"


def recommendations(solution: Solution, problem: Problem, *, max_moves: int = 10,
                    min_gain: float = 1.0) -> pd.DataFrame:
    """Moves from the status quo to the optimal plan, each with its exact gain (module docstring).

    Parameters
    ----------
    solution : the optimal solution of ``problem``
    problem : with ``current_spend`` on every cell (otherwise the table is empty)
    max_moves : at most this many pairwise moves; the rest is one ``remaining`` row
    min_gain : stop when the best move earns less than this (objective currency)

    Returns
    -------
    DataFrame
        ``rank, kind`` (``move`` / ``remaining``), ``action`` (the sentence), ``from_cell,
        to_cell, amount`` (currency), ``revenue_gain`` and ``objective_gain`` (exact, currency;
        equal except for profit objectives moving unspent budget), ``cumulative_gain``,
        ``from_marginal`` / ``to_marginal`` (revenue per dollar in each entry before the move;
        for the unspent budget what a kept dollar is worth: 1 for profit, else 0) and
        ``still_breaks`` (rules the plan after the move breaks; empty when it meets them all).
    """
    current = status_quo_spend(problem)
    if current is None or not solution.is_optimal:
        return pd.DataFrame(columns=COLUMNS)
    best = solution_spend(solution)
    x0 = np.append(current, problem.budget - current.sum())
    target = np.append(best, problem.budget - best.sum() if problem.budget_mode is BudgetMode.AT_MOST else 0.0)
    s = _State(problem, x0, target, RuleChecker(problem), 1.0 if problem.objective is Objective.PROFIT else 0.0)
    what = "profit" if s.cost else "predicted revenue"
    names = _names(problem)
    rows: list[dict[str, object]] = []

    def record(kind: str, action: str, new: FloatArray, i: int | None = None, j: int | None = None,
               amount: float = float("nan")) -> None:
        rows.append({"kind": kind, "action": action, "from_cell": "" if i is None else names[i],
                     "to_cell": "" if j is None else names[j], "amount": amount,
                     "revenue_gain": s.revenue(new) - s.revenue(s.x), "objective_gain": s.objective(new) - s.objective(s.x),
                     "from_marginal": np.nan if i is None else s.marginal(s.x, i),
                     "to_marginal": np.nan if j is None else s.marginal(s.x, j),
                     "still_breaks": ", ".join(s.checker.breaks(new[:-1], short=True))})
        s.move_to(new)

    tol = 1e-9 * problem.budget
    for _ in range(max_moves):
        found = None
        # Concavity bounds a pair's gain by (its largest amount) x (the marginal difference now):
        # try the pairs in decreasing order of that bound and stop when it cannot beat the best.
        pairs = []
        for i in np.flatnonzero(s.x > s.target + tol):
            for j in np.flatnonzero(s.x < s.target - tol):
                reach = min(s.x[i] - s.target[i], s.target[j] - s.x[j])
                pairs.append((reach * (s.marginal(s.x, int(j)) - s.marginal(s.x, int(i))), int(i), int(j)))
        for bound, i, j in sorted(pairs, reverse=True):
            if bound <= (found[0] if found else min_gain):
                break
            f = _round_down(_best_amount(s, i, j))
            if f <= 0:
                continue
            new = _moved(s.x, i, j, f)
            gain = s.objective(new) - s.objective(s.x)
            if gain > min_gain and s.allowed(new) and (found is None or gain > found[0]):
                found = (gain, i, j, f, new)
        if found is None:
            break
        gain, i, j, f, new = found
        record("move", _action(what, names[i], names[j], f, gain), new, i, j, f)
    rest = s.objective(target) - s.objective(s.x)
    if abs(rest) > min_gain or np.abs(s.x - target).max() > tol:
        record("remaining", f"the remaining changes to the optimal plan: {signed_money(rest)} {what}", target)
    frame = pd.DataFrame(rows, columns=[c for c in COLUMNS if c not in ("rank", "cumulative_gain")])
    frame.insert(0, "rank", np.arange(1, len(frame) + 1))
    frame["cumulative_gain"] = frame["objective_gain"].cumsum()
    return frame.reindex(columns=COLUMNS)
