"""Invariants of the optimum, checked on random instances (hypothesis, derandomized)."""

from __future__ import annotations

import copy
from typing import Any

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from forecasting.curves import Curve
from formulations.lagrangian import Multipliers, dual_bound
from formulations.model import compile_problem
from formulations.problem import Problem
from certified import assert_certified_optimal, assert_proven_infeasible, optimal_or_proven_infeasible
from instances import random_problem
from solver import solve

SETTINGS = settings(max_examples=12, deadline=None, derandomize=True,
                    suppress_health_check=[HealthCheck.too_slow])
seeds = st.integers(min_value=0, max_value=10_000)


@SETTINGS
@given(seed=seeds, growth=st.floats(min_value=1.01, max_value=2.0))
def test_more_budget_never_lowers_the_optimum(seed: int, growth: float) -> None:
    raw = random_problem(seed, n_categories=2, n_segments=3, budget_mode="at_most")
    base = solve(raw)
    # random_problem is feasible by construction: a base that is not optimal must at least be a
    # proven infeasibility, and only that says nothing about monotonicity.
    if not optimal_or_proven_infeasible(raw, base, "base"):
        return
    more = {**raw, "budget": raw["budget"] * growth}
    bigger = solve(more)
    assert_certified_optimal(more, bigger, f"budget x {growth}")
    assert bigger.objective >= base.objective * (1 - 1e-9)


@SETTINGS
@given(seed=seeds, data=st.data())
def test_permuting_cells_changes_nothing(seed: int, data: st.DataObject) -> None:
    raw = random_problem(seed, n_categories=2, n_segments=3)
    base = solve(raw)
    order = data.draw(st.permutations(range(len(raw["cells"]))))
    shuffled = {**raw, "cells": [raw["cells"][i] for i in order]}
    again = solve(shuffled)
    if not optimal_or_proven_infeasible(raw, base, "base"):
        assert_proven_infeasible(shuffled, again, "permuted")
        return
    assert_certified_optimal(shuffled, again, "permuted")
    assert again.objective == pytest.approx(base.objective, rel=1e-8)
    by_key = {(c.category, c.segment): c.spend for c in base.allocation}
    assert len(again.allocation) == len(by_key)
    for c in again.allocation:
        assert c.spend == pytest.approx(by_key[(c.category, c.segment)], rel=1e-4, abs=1e-6 * raw["budget"])


def _money_times(raw: dict[str, Any], factor: float) -> dict[str, Any]:
    """The same problem with every amount of money (and new customers) multiplied by ``factor``."""
    out = copy.deepcopy(raw)
    out["budget"] *= factor
    for cell in out["cells"]:
        for key in ("revenue", "acquisitions"):
            if key in cell:
                cell[key] = Curve.from_dict(cell[key]).time_scaled(factor).to_dict()
        for key in ("min_spend", "max_spend", "current_spend"):
            if key in cell:
                cell[key] *= factor
    return out


@SETTINGS
@given(seed=seeds)
def test_multiplying_all_money_by_1000_multiplies_the_allocation(seed: int) -> None:
    raw = random_problem(seed, n_categories=2, n_segments=2)
    base = solve(raw)
    big = _money_times(raw, 1000.0)
    scaled = solve(big)
    if not optimal_or_proven_infeasible(raw, base, "base"):
        assert_proven_infeasible(big, scaled, "x 1000")
        return
    assert_certified_optimal(big, scaled, "x 1000")
    assert scaled.objective == pytest.approx(1000 * base.objective, rel=1e-8)
    assert len(scaled.allocation) == len(base.allocation)
    for a, b in zip(base.allocation, scaled.allocation):
        assert b.spend == pytest.approx(1000 * a.spend, rel=1e-4, abs=1e-6 * scaled.budget)
    assert scaled.duals.budget == pytest.approx(base.duals.budget, rel=1e-4, abs=1e-7)


@SETTINGS
@given(seed=seeds, data=st.data())
def test_any_multipliers_bound_the_optimum_from_above(seed: int, data: st.DataObject) -> None:
    """Weak duality: the certificate is valid for arbitrary multipliers, not just good ones."""
    raw = random_problem(seed, n_categories=2, n_segments=2)
    sol = solve(raw)
    if not optimal_or_proven_infeasible(raw, sol):
        return  # weak duality needs an optimum to compare with
    model = compile_problem(Problem.from_dict(raw))
    k, m = model.share_category.size, model.clv_segment.size
    floats = st.floats(min_value=0.0, max_value=5.0)
    mult = Multipliers(
        budget=data.draw(st.floats(min_value=-2.0, max_value=5.0)),
        share_min=np.array(data.draw(st.lists(floats, min_size=k, max_size=k))),
        share_max=np.array(data.draw(st.lists(floats, min_size=k, max_size=k))),
        clv=np.array(data.draw(st.lists(floats, min_size=m, max_size=m))),
    )
    bound = dual_bound(model, mult).value * model.value_scale
    assert bound >= sol.objective * (1 - 1e-12)
