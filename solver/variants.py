"""Variants of a problem, always rebuilt through the problem-file form.

Sensitivity re-solves, the frontier, target searches and scenarios all ask "the same problem,
except ...". Each function here edits the problem-file dict of :meth:`Problem.to_dict` and builds
the new problem with :meth:`Problem.from_dict`, so every variant is validated exactly like user
input (a bad override raises :class:`~formulations.errors.ProblemError` naming the path).

Rule keys name one rule of a problem (used across the reports):

- ``("budget",)``: the total budget, share rules staying fractions of it (the planner's budget);
- ``("budget_row",)``: the budget row alone, share rules held at their currency amounts;
- ``("category_min", c)``; ``("category_max", c)``; ``("clv_cac", s)``;
- ``("cell_min", c, s)`` / ``("cell_max", c, s)``: the spend bounds of cell (c, s).

Examples
--------
>>> from formulations.problem import Problem
>>> p = Problem.from_dict({"version": 1, "budget": 100.0, "cells": [
...     {"category": "a", "segment": "s", "revenue": {"family": "log", "a": 50, "b": 10}},
...     {"category": "b", "segment": "s", "revenue": {"family": "log", "a": 80, "b": 10}}],
...     "category_shares": {"a": {"min": 0.3, "max": 0.6}}})
>>> round(relaxed(p, ("category_min", "a"), 10.0).category_shares["a"].min, 12)
0.2
>>> without_rule(p, ("category_min", "a")).category_shares["a"]
ShareRule(min=0.0, max=0.6)
>>> locked(p, {("b", "s"): 25.0}).cells[1].max_spend
25.0
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Mapping
from typing import Any

from formulations.errors import ProblemError
from formulations.problem import Problem

RuleKey = tuple[str, ...]
ProblemDict = dict[str, Any]


def edit(problem: Problem, change: Callable[[ProblemDict], None], where: str = "") -> Problem:
    """Apply ``change`` to a deep copy of the problem dict and validate the result.

    ``where`` prefixes any validation error (e.g. the scenario that asked for the change).
    """
    d = copy.deepcopy(problem.to_dict())
    change(d)
    try:
        return Problem.from_dict(d)
    except ProblemError as e:
        if not where:
            raise
        raise ProblemError(f"{where}: {e}") from None


def _cell(d: ProblemDict, category: str, segment: str) -> dict[str, Any]:
    for c in d["cells"]:
        if c["category"] == category and c["segment"] == segment:
            return c
    raise ProblemError(f"cell ({category!r}, {segment!r}) is not in the problem")


def with_budget(problem: Problem, budget: float, *, shares_in_dollars: bool = False) -> Problem:
    """The problem at another budget.

    With ``shares_in_dollars`` the share rules keep their currency amounts (their fractions are
    rescaled) and cells without a ``max_spend`` keep the old budget as their cap, so the budget
    row alone changes: its slope is the budget dual ``Duals.budget``. Otherwise shares stay
    fractions of the budget and uncapped cells stay capped by the budget (the planner's frontier).
    """
    if not shares_in_dollars:
        return problem.with_budget(float(budget))

    def change(d: ProblemDict) -> None:
        old = d["budget"]
        d["budget"] = float(budget)
        for rule in d["category_shares"].values():
            rule["min"] = min(rule["min"] * old / budget, 1.0)
            rule["max"] = min(rule["max"] * old / budget, 1.0)
        for cell in d["cells"]:
            cell.setdefault("max_spend", old)
    return edit(problem, change)


def relaxed(problem: Problem, rule: RuleKey, amount: float) -> Problem:
    """The problem with one rule loosened by ``amount`` (negative: tightened).

    Units of ``amount``: currency for the budget, share and cell-bound rules (a category minimum
    lowered by ``amount`` dollars, i.e. ``amount / budget`` share points); for a CLV/CAC rule,
    currency of allowed spend per new customer (``clv / ratio`` raised by ``amount``).
    """
    kind = rule[0]

    def change(d: ProblemDict) -> None:
        budget = d["budget"]
        if kind in ("category_min", "category_max"):
            share = d["category_shares"][rule[1]]
            if kind == "category_min":
                share["min"] = max(share["min"] - amount / budget, 0.0)
            else:
                share["max"] = min(share["max"] + amount / budget, 1.0)
        elif kind == "clv_cac":
            seg = d["segments"][rule[1]]
            cap = seg["clv"] / seg["min_clv_cac_ratio"] + amount
            seg["min_clv_cac_ratio"] = seg["clv"] / cap
        elif kind == "cell_min":
            c = _cell(d, rule[1], rule[2])
            c["min_spend"] = max(c.get("min_spend", 0.0) - amount, 0.0)
        elif kind == "cell_max":
            c = _cell(d, rule[1], rule[2])
            c["max_spend"] = c.get("max_spend", budget) + amount
        else:
            raise ValueError(f"unknown rule kind {kind!r}")

    if kind in ("budget", "budget_row"):
        return with_budget(problem, problem.budget + amount, shares_in_dollars=kind == "budget_row")
    return edit(problem, change)


def without_rule(problem: Problem, rule: RuleKey) -> Problem:
    """The problem with one rule removed (a category min -> 0, max -> 100 %, no CLV/CAC floor,
    a cell bound -> 0 / the budget). The budget cannot be removed."""
    kind = rule[0]

    def change(d: ProblemDict) -> None:
        if kind == "category_min":
            d["category_shares"][rule[1]]["min"] = 0.0
        elif kind == "category_max":
            d["category_shares"][rule[1]]["max"] = 1.0
        elif kind == "clv_cac":
            d["segments"][rule[1]].pop("min_clv_cac_ratio", None)
        elif kind == "cell_min":
            _cell(d, rule[1], rule[2])["min_spend"] = 0.0
        elif kind == "cell_max":
            _cell(d, rule[1], rule[2]).pop("max_spend", None)
        else:
            raise ValueError(f"rule {rule!r} cannot be removed")
    return edit(problem, change)


def locked(problem: Problem, spends: Mapping[tuple[str, str], float], where: str = "") -> Problem:
    """Cells fixed at a spend: ``min_spend = max_spend = value`` for each (category, segment)."""
    def change(d: ProblemDict) -> None:
        for (cat, seg), value in spends.items():
            c = _cell(d, cat, seg)
            c["min_spend"] = c["max_spend"] = float(value)
    return edit(problem, change, where)


def stressed(problem: Problem, factors: Mapping[tuple[str, str], float], curve: str = "revenue",
             where: str = "") -> Problem:
    """Curves of the given cells multiplied by a factor (``Curve.scaled``): ``curve`` is
    ``"revenue"``, ``"acquisitions"`` or ``"both"``."""
    from forecasting.curves import Curve

    names = ("revenue", "acquisitions") if curve == "both" else (curve,)

    def change(d: ProblemDict) -> None:
        for (cat, seg), factor in factors.items():
            c = _cell(d, cat, seg)
            for name in names:
                if c.get(name) is not None:
                    c[name] = Curve.from_dict(c[name]).scaled(factor).to_dict()
    return edit(problem, change, where)


def with_shares(problem: Problem, shares: Mapping[str, Mapping[str, float] | None], where: str = "") -> Problem:
    """Share rules replaced per category (``None`` removes the category's rule)."""
    def change(d: ProblemDict) -> None:
        for cat, rule in shares.items():
            if rule is None:
                d["category_shares"].pop(cat, None)
            else:
                d["category_shares"][cat] = dict(rule)
    return edit(problem, change, where)
