"""The product's promises on adversarial problems (:mod:`adversarial`) and on boundary parameters.

For any valid problem ``solve`` does not raise; it answers ``optimal`` (gap in ``[0, 1e-8 x
max(|objective|, 1e-9 x budget)]``), ``infeasible`` (with a Farkas-type proof, bound < 0) or
``time_limit`` / ``error`` with a message; the independent checker accepts every answer; and no
other route that supports the problem finds a better certified plan than an ``optimal`` one.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st

from adversarial import adversarial_problem
from certified import (assert_certified_optimal, assert_checker_ok, assert_proven_infeasible, denominator,
                       supporting_backends)
from solver import SolveOptions, Status, solve

#: Time limit of each other route in the comparison: a route that runs out says nothing (only
#: routes that return ``optimal`` are compared), and it keeps this file within its time budget.
OTHER_ROUTE_SECONDS = 5.0


def _produced_by(route: str, backend: str) -> bool:
    """Whether the answer of ``backend`` (e.g. ``highs-cuts``) came from route ``route``."""
    return backend == route or backend.startswith(route + "-")


# Seeds are not shrunk (a smaller seed is another problem, not a simpler one): a failure reports
# the seed hypothesis drew.
@settings(derandomize=True, max_examples=60, deadline=None, phases=(Phase.explicit, Phase.generate),
          suppress_health_check=[HealthCheck.too_slow])
@given(seed=st.integers(0, 10**6))
def test_adversarial_problems_get_a_checked_answer(seed: int) -> None:
    raw = adversarial_problem(seed, max_cells=40)
    what = f"seed {seed}"
    sol = solve(raw)  # the generator draws valid problems: solve must not raise
    assert sol.status in (Status.OPTIMAL, Status.INFEASIBLE, Status.TIME_LIMIT, Status.ERROR), what
    if sol.status is not Status.OPTIMAL:
        assert sol.message.strip(), f"{what}: {sol.status.value} without a message"
    assert_checker_ok(raw, sol, what)
    if sol.status is Status.INFEASIBLE:
        assert_proven_infeasible(raw, sol, what)
    if sol.status is not Status.OPTIMAL:
        return
    assert_certified_optimal(raw, sol, what)
    limit = 1e-8 * denominator(sol)
    assert sol.objective is not None
    for route in supporting_backends(raw):
        if _produced_by(route, sol.backend):
            continue
        other = solve(raw, backend=route, options=SolveOptions(time_limit=OTHER_ROUTE_SECONDS))
        if other.status is not Status.OPTIMAL:
            continue
        assert_certified_optimal(raw, other, f"{what} {route}")
        assert other.objective is not None
        assert other.objective <= sol.objective + limit, (
            f"{what}: {route} finds {other.objective!r} > {sol.objective!r} ({sol.backend}) + {limit:.3g}")


# --------------------------------------------------------------------------------------------
# Families x boundary parameters
# --------------------------------------------------------------------------------------------

CATEGORIES = ("a", "b", "c")
SEGMENTS = ("s0", "s1")

#: Curve variants: each family at typical parameters, power and hill at their boundaries.
VARIANTS = ("log", "exp_saturation", "power_0.3", "power_0.999", "power_1.0", "michaelis_menten", "hill_0.3",
            "hill_1.0", "logistic", "linear", "pwl")
SCENARIOS = ("plain", "max_share_0", "share_1", "at_most_profit", "money_1e3", "money_1e9")


def _curve(variant: str, spend: float, f: float) -> dict[str, Any]:
    """A curve of ``variant`` worth about ``3 f x spend`` at ``spend``."""
    family, _, param = variant.partition("_")
    if variant.startswith("power_"):
        p = float(param)
        return {"family": "power", "a": 3 * f * spend / spend**p, "p": p}
    if variant.startswith("hill_"):
        return {"family": "hill", "beta": 6 * f * spend, "kappa": 1.0, "slope": float(param), "scale": spend}
    if variant == "log":
        return {"family": "log", "a": 3 * f * spend / np.log(2.0), "b": spend}
    if variant == "exp_saturation":
        return {"family": "exp_saturation", "a": 4.8 * f * spend, "b": spend}
    if variant == "michaelis_menten":
        return {"family": "michaelis_menten", "alpha": 6 * f * spend, "lam": 1.0, "scale": spend}
    if variant == "logistic":
        return {"family": "logistic", "beta": 3.9 * f * spend, "lam": 1.5, "scale": spend}
    if variant == "linear":
        return {"family": "linear", "a": 1.5 * f}
    if variant == "pwl":
        slopes = f * np.array([4.0, 2.0, 1.0])
        xs = spend * np.array([0.0, 1.0, 2.0, 4.0])
        ys = np.concatenate([[0.0], np.cumsum(slopes * np.diff(xs))])
        return {"family": "pwl", "points": np.column_stack([xs, ys]).tolist()}
    raise ValueError(family)


def boundary_problem(variant: str, scenario: str) -> dict[str, Any]:
    """Three categories x two segments: segment s0's cells have curve ``variant``, s1's a power
    curve with p = 0.5; ``scenario`` adds the rule or scale under test."""
    budget = {"money_1e3": 1e3, "money_1e9": 1e9}.get(scenario, 1e6)
    spend = budget / (len(CATEGORIES) * len(SEGMENTS))
    cells = []
    for i, category in enumerate(CATEGORIES):
        for segment in SEGMENTS:
            f = 1.0 + 0.3 * i + (0.1 if segment == "s1" else 0.0)
            curve = _curve(variant, spend, f) if segment == "s0" else _curve("power_0.5", spend, f)
            cells.append({"category": category, "segment": segment, "revenue": curve})
    problem: dict[str, Any] = {"version": 1, "name": f"{variant}-{scenario}", "budget": budget,
                               "budget_mode": "equal", "objective": "revenue", "cells": cells}
    if scenario == "max_share_0":
        problem["category_shares"] = {"b": {"min": 0.0, "max": 0.0}}
    elif scenario == "share_1":
        problem["category_shares"] = {"a": {"min": 1.0, "max": 1.0}}
    elif scenario == "at_most_profit":
        problem["budget_mode"], problem["objective"] = "at_most", "profit"
    return problem


#: The cells each scenario forces, and by which rule: ``(category, segment) -> (by, rule)``.
FORCED = {
    "max_share_0": {("b", s): ("category_max", "b") for s in SEGMENTS},
    "share_1": {(c, s): ("budget", c) for c in ("b", "c") for s in SEGMENTS},
}


@pytest.mark.parametrize("scenario", SCENARIOS)
@pytest.mark.parametrize("variant", VARIANTS)
def test_boundary_parameters_get_a_certified_optimum(variant: str, scenario: str) -> None:
    raw = boundary_problem(variant, scenario)
    sol = solve(raw)
    assert_certified_optimal(raw, sol, f"{variant} {scenario}")
    forced = FORCED.get(scenario, {})
    fixed = {(f["category"], f["segment"]): (f["by"], f["rule"]) for f in sol.fixed_cells}
    assert fixed == forced, sol.fixed_cells
    assert all(f["spend"] == 0.0 for f in sol.fixed_cells), sol.fixed_cells
    spend = {(c.category, c.segment): c.spend for c in sol.allocation}
    for key in forced:
        assert spend[key] == 0.0, (key, spend[key])
    if scenario == "share_1":
        assert sum(v for (c, _), v in spend.items() if c == "a") == pytest.approx(raw["budget"], rel=1e-12)
