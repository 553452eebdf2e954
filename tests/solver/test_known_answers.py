"""Solves against answers known independently: closed-form water-filling, brute-force grids,
two routes on the same instance, and the KKT conditions at the returned optimum."""

from __future__ import annotations

import itertools
from typing import Any

import numpy as np
import pytest

from forecasting.curves import Curve
from formulations.model import compile_problem
from formulations.problem import Problem
from certified import assert_certified_optimal, optimal_or_proven_infeasible, supporting_backends
from instances import ALL_FAMILIES, CONIC_FAMILIES, random_problem
from solver import Status, solve
from solver.backends import backend_names

#: Every registered route, then ``auto``: a test solves with each one that supports its instance.
ROUTES = (*backend_names(), "auto")


def _route_or_skip(problem: Any, backend: str) -> None:
    """Skip ``backend`` on ``problem`` when the registry says it does not support it (``auto``
    always does)."""
    if backend != "auto" and backend not in supporting_backends(problem):
        pytest.skip(f"{backend} does not support this instance")


def _cells(curves: list[dict[str, Any]], **extra: Any) -> list[dict[str, Any]]:
    return [{"category": f"c{i}", "segment": "s", "revenue": c, **extra} for i, c in enumerate(curves)]


@pytest.mark.parametrize("backend", ROUTES)
def test_log_curves_match_closed_form_water_filling(backend: str) -> None:
    # r_i = a_i log(1 + x/b_i): interior optimum x_i = a_i / lam - b_i, lam = sum a / (B + sum b).
    a = np.array([120_000.0, 80_000.0, 200_000.0, 50_000.0])
    b = np.array([20_000.0, 5_000.0, 60_000.0, 10_000.0])
    budget = 300_000.0
    problem = {"version": 1, "budget": budget,
               "cells": _cells([{"family": "log", "a": ai, "b": bi} for ai, bi in zip(a, b)])}
    # Budget and log curves only: every route supports it (decomposition and waterfill included).
    assert set(supporting_backends(problem)) == set(backend_names())
    lam = a.sum() / (budget + b.sum())
    expected = a / lam - b
    assert np.all(expected > 0)
    sol = solve(problem, backend=backend)
    assert_certified_optimal(problem, sol, backend)
    spend = np.array([c.spend for c in sol.allocation])
    np.testing.assert_allclose(spend, expected, rtol=2e-4)  # allocation is flat near the optimum
    optimum = float(np.sum(a * np.log1p(expected / b)))
    assert sol.objective == pytest.approx(optimum, rel=1e-9)
    assert sol.upper_bound >= optimum * (1 - 1e-12)
    assert sol.duals.budget == pytest.approx(lam, rel=1e-5)


def test_water_filling_with_bounds_clips_exactly() -> None:
    # Two identical cells, one capped: the capped one sits at its cap, the other takes the rest.
    curve = {"family": "exp_saturation", "a": 1e6, "b": 2e5}
    cells = _cells([curve, curve])
    cells[0]["max_spend"] = 50_000.0
    problem = {"version": 1, "budget": 400_000.0, "cells": cells}
    sol = solve(problem, backend="waterfill")
    assert_certified_optimal(problem, sol, "waterfill")
    assert [c.spend for c in sol.allocation] == pytest.approx([50_000.0, 350_000.0], rel=1e-10)
    assert sol.duals.budget == pytest.approx(1e6 / 2e5 * np.exp(-350_000 / 2e5), rel=1e-8)


def _grid_optimum(problem: Problem, steps: int) -> float:
    """Best objective over a grid of spends (step budget/steps) meeting every rule exactly."""
    model = compile_problem(problem)
    n = model.n
    levels = np.arange(steps + 1) / steps
    best = -np.inf
    for combo in itertools.product(levels, repeat=n - 1):
        y = np.array([*combo, 1.0 - sum(combo)])
        if y[-1] < -1e-12:
            continue
        y[-1] = max(y[-1], 0.0)
        if np.any(y < model.lower - 1e-12) or np.any(y > model.upper + 1e-12):
            continue
        cat = model.category_sums(y)[model.share_category]
        if np.any(cat < model.share_lo - 1e-12) or np.any(cat > model.share_hi + 1e-12):
            continue
        if np.any(model.clv_slack(y) < -1e-12):
            continue
        best = max(best, model.objective(y))
    return best * model.value_scale


@pytest.mark.parametrize("seed", range(4))
def test_tiny_problems_match_brute_force_grid(seed: int) -> None:
    raw = random_problem(seed, n_categories=2, n_segments=2, budget=1e5, caps=False)
    problem = Problem.from_dict(raw)
    sol = solve(problem)
    assert sol.status is Status.OPTIMAL
    grid_best = _grid_optimum(problem, steps=60)
    # No grid point that meets every rule beats the certified optimum...
    assert grid_best <= sol.objective * (1 + 1e-9)
    # ...and the optimum is no better than the proven bound, which the grid approaches.
    assert sol.objective <= sol.upper_bound + 1e-9 * abs(sol.upper_bound)
    assert grid_best >= sol.objective * (1 - 2e-3)


@pytest.mark.parametrize("samples", [0, 4])
@pytest.mark.parametrize("seed", range(3))
def test_conic_and_cut_routes_agree_for_every_family(seed: int, samples: int) -> None:
    for family in CONIC_FAMILIES:
        raw = random_problem(100 + seed, families=(family,), samples=samples if family not in ("pwl", "linear") else 0)
        conic = solve(raw, backend="clarabel")
        cuts = solve(raw, backend="highs")
        # random_problem is feasible by construction; an infeasible answer needs a checked proof
        # from both routes, and only then is there nothing to compare.
        conic_ok = optimal_or_proven_infeasible(raw, conic, f"{family} clarabel")
        cuts_ok = optimal_or_proven_infeasible(raw, cuts, f"{family} highs")
        assert conic_ok == cuts_ok, (family, conic.message, cuts.message)
        if not conic_ok:
            continue
        assert cuts.objective == pytest.approx(conic.objective, rel=1e-7), family
        assert cuts.upper_bound >= conic.objective * (1 - 1e-9)
        assert conic.upper_bound >= cuts.objective * (1 - 1e-9)


@pytest.mark.parametrize("seed", range(3))
def test_logistic_curves_have_no_conic_form_but_solve_with_a_proven_bound(seed: int) -> None:
    raw = random_problem(200 + seed, families=("logistic", "log"), samples=3)
    sol = solve(raw, backend="highs")
    assert sol.backend == "highs-cuts"
    assert_certified_optimal(raw, sol, "highs")
    fast = solve(raw)  # the decomposition route handles logistic curves too
    assert fast.backend == "decomposition"
    assert_certified_optimal(raw, fast, "auto")
    assert fast.objective == pytest.approx(sol.objective, rel=1e-8)
    refused = solve(raw, backend="clarabel")
    assert refused.status is Status.ERROR and "no conic form" in refused.message


@pytest.mark.parametrize("mode", ["equal", "at_most"])
@pytest.mark.parametrize("objective", ["revenue", "profit"])
def test_kkt_conditions_hold_at_the_optimum(mode: str, objective: str) -> None:
    raw = random_problem(7, n_categories=3, n_segments=4, budget_mode=mode, objective=objective,
                         roi=1.5 if objective == "profit" else 3.0)
    problem = Problem.from_dict(raw)
    sol = solve(problem, backend="clarabel")
    assert sol.status is Status.OPTIMAL
    d = sol.duals
    spend = np.array([c.spend for c in sol.allocation])
    cells = problem.cells
    cost = 1.0 if objective == "profit" else 0.0
    for i, c in enumerate(cells):
        rule = problem.segments.get(c.segment)
        mu = d.segment_clv_cac.get(c.segment, 0.0)
        h = 1e-6 * problem.budget

        def gain(x: float) -> float:
            g = c.revenue.derivative(x) - cost
            if rule is not None and rule.min_clv_cac_ratio:
                g += mu * rule.spend_per_customer_cap * c.acquisitions.derivative(x)
            return float(g)

        # Superdifferential of the cell's Lagrangian at its spend (pwl curves have kinks).
        left, right = gain(max(spend[i] - h, 0.0)), gain(spend[i] + h)
        price = d.budget - d.category_min.get(c.category, 0.0) + d.category_max.get(c.category, 0.0) + mu
        lo, hi = c.min_spend, c.upper(problem.budget)
        tol = 1e-4 * max(1.0, abs(price))
        if spend[i] > lo + h:
            assert price <= left + tol, (i, c.key)  # spending less would not gain
        if spend[i] < hi - h:
            assert price >= right - tol, (i, c.key)  # spending more would not gain
    # Complementary slackness: a priced rule is binding.
    by_cat = {cat: sum(s for s, c in zip(spend, cells) if c.category == cat) for cat in problem.categories}
    for cat, rule in problem.category_shares.items():
        if d.category_min[cat] > 1e-6:
            assert by_cat[cat] == pytest.approx(rule.min * problem.budget, rel=1e-6)
        if d.category_max[cat] > 1e-6:
            assert by_cat[cat] == pytest.approx(rule.max * problem.budget, rel=1e-6)
    if mode == "at_most" and d.budget > 1e-6:
        assert spend.sum() == pytest.approx(problem.budget, rel=1e-7)
    assert d.budget >= 0 or mode == "equal"


@pytest.mark.parametrize(("budget", "roi"), [(1e3, 3.0), (1e9, 3.0), (1e6, 1e-5), (1e6, 1e3), (1e9, 1e-6)])
def test_badly_scaled_problems_solve_to_full_accuracy(budget: float, roi: float) -> None:
    raw = random_problem(11, budget=budget, roi=roi, clv=False)
    conic, cuts = solve(raw, backend="clarabel"), solve(raw, backend="highs")
    assert conic.status is Status.OPTIMAL and cuts.status is Status.OPTIMAL, (conic.message, cuts.message)
    assert cuts.objective == pytest.approx(conic.objective, rel=1e-7)
    assert sum(c.spend for c in cuts.allocation) == pytest.approx(budget, rel=1e-9)


def test_steep_hill_with_infinite_slope_at_zero() -> None:
    curves = [{"family": "hill", "beta": 5e5 * (1 + i), "kappa": 1.0, "slope": 0.3, "scale": 1e5} for i in range(4)]
    problem = {"version": 1, "budget": 4e5, "cells": _cells(curves)}
    routes = supporting_backends(problem)
    assert {"waterfill", "clarabel", "highs"} <= set(routes)
    for backend in routes:
        assert_certified_optimal(problem, solve(problem, backend=backend), backend)
    auto = solve(problem)
    assert_certified_optimal(problem, auto, "auto")
    spend = [c.spend for c in auto.allocation]
    assert all(s > 0 for s in spend) and spend == sorted(spend)  # bigger curves get more


def test_posterior_curve_equals_mean_of_its_samples() -> None:
    samples = {"family": "log", "a": [100_000.0, 300_000.0], "b": [10_000.0, 30_000.0]}
    mean_curve = Curve.from_dict(samples)
    problem = {"version": 1, "budget": 600_000.0, "cells": _cells([samples, {"family": "linear", "a": 0.5}])}
    sol = solve(problem)
    assert_certified_optimal(problem, sol, "auto")
    x = sol.allocation[0].spend
    assert sol.allocation[0].revenue == pytest.approx(float(mean_curve.value(x)), rel=1e-12)
    # Optimality: the marginal revenue of the posterior-mean curve equals the linear cell's 0.5.
    assert mean_curve.derivative(x) == pytest.approx(0.5, rel=1e-6)


@pytest.mark.parametrize("backend", ROUTES)
@pytest.mark.parametrize("family", ALL_FAMILIES)
def test_every_family_gets_a_certified_optimum(family: str, backend: str) -> None:
    raw = random_problem(300, families=(family, "log"), clv=False)
    _route_or_skip(raw, backend)
    sol = solve(raw, backend=backend)
    # 0 <= gap <= 1e-8 x max(|objective|, 1e-9 x budget), and the checker agrees.
    assert_certified_optimal(raw, sol, f"{family} {backend}")


@pytest.mark.parametrize("family", ALL_FAMILIES)
def test_every_family_is_supported_by_the_routes_that_say_so(family: str) -> None:
    # Guards the skips above (support may grow, never shrink): the cut routes take everything,
    # the conic one all but logistic, the decomposition every smooth family.
    raw = random_problem(300, families=(family, "log"), clv=False)
    expected = {"highs", "pyomo"} | ({"clarabel"} if family != "logistic" else set()) \
        | ({"decomposition"} if family not in ("pwl", "linear") else set())
    assert expected <= set(supporting_backends(raw))


SMOOTH = ("log", "exp_saturation", "power", "michaelis_menten", "hill", "logistic")


@pytest.mark.parametrize(
    "options",
    [{}, {"samples": 3}, {"clv": False}, {"budget_mode": "at_most", "objective": "profit", "roi": 1.2},
     {"n_categories": 6, "n_segments": 10}],
    ids=["shares+clv", "posterior", "shares", "at_most-profit", "60-cells"],
)
@pytest.mark.parametrize("seed", range(3))
def test_decomposition_agrees_with_the_cut_route_and_closes_the_gap(seed: int, options: dict[str, Any]) -> None:
    raw = random_problem(400 + seed, families=SMOOTH, **options)
    fast = solve(raw, backend="decomposition")
    cuts = solve(raw, backend="highs")
    assert_certified_optimal(raw, fast, "decomposition")
    assert_certified_optimal(raw, cuts, "highs")
    assert fast.objective == pytest.approx(cuts.objective, rel=1e-8)
    # The decomposition closes the gap ten times tighter than the promise.
    assert 0.0 <= fast.gap <= 1e-9 * fast.gap_denominator
    for name in ("budget",):
        assert getattr(fast.duals, name) == pytest.approx(getattr(cuts.duals, name), rel=1e-5, abs=1e-9)


def test_closed_form_water_filling_agrees_with_the_decomposition_and_is_auto() -> None:
    rng = np.random.default_rng(11)
    specs = []
    for i in range(40):
        family = ("log", "exp_saturation", "michaelis_menten", "power")[i % 4]
        scale = float(rng.uniform(5e3, 5e4))
        specs.append({"log": {"family": "log", "a": 3 * scale, "b": scale},
                      "exp_saturation": {"family": "exp_saturation", "a": 2 * scale, "b": scale},
                      "michaelis_menten": {"family": "michaelis_menten", "alpha": 3 * scale, "lam": 1.0,
                                           "scale": scale},
                      "power": {"family": "power", "a": float(rng.uniform(5, 20)), "p": float(rng.uniform(0.3, 0.8))},
                      }[family])
    cells = _cells(specs)
    for c in cells[::7]:
        c["max_spend"] = 2_000.0   # some caps bind
    problem = {"version": 1, "budget": 600_000.0, "cells": cells}
    auto, dec = solve(problem), solve(problem, backend="decomposition")
    assert auto.backend == "waterfill"
    assert_certified_optimal(problem, auto, "auto")
    assert_certified_optimal(problem, dec, "decomposition")
    assert auto.objective == pytest.approx(dec.objective, rel=1e-12)
    np.testing.assert_allclose([c.spend for c in auto.allocation], [c.spend for c in dec.allocation],
                               rtol=1e-6, atol=1e-6 * 600_000)
    assert auto.duals.budget == pytest.approx(dec.duals.budget, rel=1e-9)
