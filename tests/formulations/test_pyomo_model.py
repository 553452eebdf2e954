"""The Pyomo model (exact NLP and tangent LP) and the pyomo-highs route.

The exact Pyomo rows must evaluate to the array model's rows; the route must agree with the
HiGHS tangent-cut route and the Clarabel conic route, certify its answer with its own duals,
respect user constraints and prove infeasibility.
"""

from __future__ import annotations

from typing import Any

import cvxpy as cp
import numpy as np
import pyomo.environ as pyo
import pytest

from formulations.conic import build_conic, solve_conic
from formulations.cuts import solve_cuts
from formulations.lagrangian import dual_bound
from formulations.model import ArrayModel, compile_problem, max_violation
from formulations.problem import Problem
from formulations.pyomo_model import BACKEND, build_pyomo_model, cell_names, set_plan, solve_pyomo
from formulations.result import RouteStatus
from tests.instances import ALL_FAMILIES, CONIC_FAMILIES, random_curve, random_problem

TOL = 1e-7


def compiled(problem: dict[str, Any]) -> ArrayModel:
    return compile_problem(Problem.from_dict(problem))


def every_family_problem(seed: int, samples: int, clv: float = 400.0,
                         families: tuple[str, ...] = ALL_FAMILIES) -> dict[str, Any]:
    """Every family for revenue *and* acquisitions, with a CLV/CAC rule on every segment
    (segment ``s`` has lifetime value ``clv * (1 + 0.2 s)`` and a CLV/CAC floor of 3)."""
    problem = random_problem(seed, n_categories=4, n_segments=4, families=families, samples=samples)
    rng = np.random.default_rng(seed + 100)
    spend = problem["budget"] / len(problem["cells"])
    for j, cell in enumerate(problem["cells"]):
        family = families[(j + 3) % len(families)]
        cell["acquisitions"] = random_curve(rng, family, spend, 1 / 150, samples)
    problem["segments"] = {f"seg{s}": {"clv": clv * (1 + 0.2 * s), "min_clv_cac_ratio": 3.0} for s in range(4)}
    return problem


def relative(a: float, b: float) -> float:
    return abs(a - b) / max(1.0, abs(b))


# --- (a) the exact model evaluates to the array model's rows --------------------------------------


@pytest.mark.parametrize("samples", [0, 4])
def test_exact_rows_match_array_model(samples: int) -> None:
    model = compiled(every_family_problem(7, samples))
    assert model.revenue.families() | model.acquisitions.families() == set(ALL_FAMILIES)
    pm = build_pyomo_model(model, "exact")
    names = cell_names(model)
    assert list(pm.cells) == names and set(pm.clv_cells) == set(names)
    rng = np.random.default_rng(1)
    for y in (model.lower + rng.uniform(0, 1, model.n) * (model.upper - model.lower), model.upper,
              np.maximum(model.lower, 1e-3)):
        set_plan(pm, model, y)
        assert relative(pyo.value(pm.total), model.objective(y)) <= 1e-12
        assert relative(pyo.value(pm.budget.body), float(y.sum())) <= 1e-12
        cats = model.category_sums(y)[model.share_category]
        for k, c in enumerate(pm.share_rules):
            assert abs(pyo.value(pm.share_min[c].body) - cats[k]) <= 1e-12
            assert abs(pyo.value(pm.share_max[c].body) - cats[k]) <= 1e-12
        for r, s in enumerate(pm.clv_rules):
            assert abs(pyo.value(pm.clv_cac[s].body) + model.clv_slack(y)[r]) <= 1e-12
        # Each hypograph holds with equality at the exact value: the tightest piece has zero slack.
        for curve, values in ((pm.revenue_curve, model.rev(y)), (pm.acq_curve, model.acq_value(y))):
            slack = {c: np.inf for c in names}
            for (c, _), row in curve.items():
                slack[c] = min(slack[c], row.uslack())
            for i, c in enumerate(names):
                assert abs(slack[c]) <= 1e-12 * max(1.0, abs(values[i])), (c, slack[c])


def test_model_units_and_labels() -> None:
    model = compiled(random_problem(3, objective="profit", budget_mode="at_most"))
    pm = build_pyomo_model(model, "tangents", tangent_points=4)
    assert pyo.value(pm.money_scale) == model.money_scale
    assert pyo.value(pm.value_scale) == model.value_scale
    assert pyo.value(pm.dual_to_money) == pytest.approx(model.value_scale / model.money_scale)
    assert pyo.value(pm.spend_cost) == model.spend_cost
    assert pm.budget.upper == pytest.approx(1.0) and pm.budget.lower is None
    assert list(pm.cells_in_category["cat1"]) == ["cat1/seg0", "cat1/seg1", "cat1/seg2"]
    assert len(pm.revenue_curve) > 0 and len(pm.acq_curve) > 0
    with pytest.raises(ValueError):
        build_pyomo_model(model, "pwl")  # type: ignore[arg-type]


# --- (b) agreement with the other routes, and the certificate -------------------------------------

AGREEMENT = [
    (0, {}),
    (1, {"samples": 3}),
    (2, {"budget_mode": "at_most", "objective": "profit"}),
    (3, {"n_categories": 5, "n_segments": 4}),
    (5, {"budget_mode": "at_most", "roi": 0.8, "objective": "profit"}),
    (6, {"shares": False}),
]


@pytest.mark.parametrize(("seed", "kwargs"), AGREEMENT)
def test_agrees_with_cuts_and_conic(seed: int, kwargs: dict[str, Any]) -> None:
    model = compiled(random_problem(seed, **kwargs))
    result = solve_pyomo(model)
    assert result.status is RouteStatus.CONVERGED, result.message
    assert result.backend == BACKEND and result.y is not None and result.multipliers is not None
    assert max_violation(model, result.y) <= 1e-9
    obj = model.objective(result.y)
    for other in (solve_cuts(model), solve_conic(model)):
        assert other.status is RouteStatus.CONVERGED and other.y is not None
        assert relative(obj, model.objective(other.y)) <= TOL, other.backend
    bound = dual_bound(model, result.multipliers).value
    assert -1e-8 <= bound - obj <= TOL * max(1.0, abs(bound))  # plans may break a rule by feas_tol
    m = result.multipliers
    assert np.all(m.share_min >= 0) and np.all(m.share_max >= 0) and np.all(m.clv >= 0)


@pytest.mark.parametrize(("seed", "kwargs"), [(3, {}), (2, {"budget_mode": "at_most", "objective": "profit"})])
def test_agrees_when_clv_rules_bind(seed: int, kwargs: dict[str, Any]) -> None:
    """Binding CLV/CAC rules (the outer LP may break them; the accepted plan may not)."""
    model = compiled({**every_family_problem(seed, 0, 400.0, CONIC_FAMILIES), **kwargs})
    result = solve_pyomo(model)
    assert result.status is RouteStatus.CONVERGED, result.message
    assert max_violation(model, result.y) <= 1e-9
    assert np.count_nonzero(result.multipliers.clv > 1e-3) >= 2
    for other in (solve_cuts(model), solve_conic(model)):
        assert relative(model.objective(result.y), model.objective(other.y)) <= TOL, other.backend
    bound = dual_bound(model, result.multipliers).value
    assert bound - model.objective(result.y) <= TOL * max(1.0, abs(bound))


def test_many_cells_reach_the_tolerance() -> None:
    """300 cells with six shares: per-cell LP tolerances must not add up to a stalled gap."""
    model = compiled(random_problem(11, n_categories=6, n_segments=50, clv=False))
    result, conic = solve_pyomo(model), solve_conic(model)
    assert result.status is RouteStatus.CONVERGED, result.message
    assert relative(model.objective(result.y), model.objective(conic.y)) <= TOL
    bound = dual_bound(model, result.multipliers).value
    assert bound - model.objective(result.y) <= 1e-9 * max(1.0, abs(bound))


def test_agrees_with_cuts_on_every_family() -> None:
    """Every family (logistic has no conic form) with binding CLV/CAC rules."""
    model = compiled(every_family_problem(9, samples=2))
    result, cuts = solve_pyomo(model), solve_cuts(model)
    assert result.status is RouteStatus.CONVERGED and cuts.status is RouteStatus.CONVERGED
    assert max_violation(model, result.y) <= 1e-9
    assert relative(model.objective(result.y), model.objective(cuts.y)) <= TOL
    assert np.count_nonzero(result.multipliers.clv > 1e-6) >= 2
    bound = dual_bound(model, result.multipliers).value
    assert bound - model.objective(result.y) <= TOL * max(1.0, abs(bound))


def test_budget_dual_is_marginal_revenue() -> None:
    """The budget multiplier is d objective / d budget: compare with a finite difference."""
    problem = random_problem(4, shares=False, clv=False, families=CONIC_FAMILIES)
    model = compiled(problem)
    result = solve_pyomo(model)
    up = compiled({**problem, "budget": problem["budget"] * 1.001})
    result_up = solve_pyomo(up)
    gain = (up.objective(result_up.y) * up.value_scale
            - model.objective(result.y) * model.value_scale) / (problem["budget"] * 0.001)
    assert result.multipliers.budget * model.dual_to_money == pytest.approx(gain, rel=2e-3)


# --- (c) user constraints ---------------------------------------------------------------------------


def test_user_fixed_spend_is_respected() -> None:
    problem = random_problem(0)
    model = compiled(problem)
    free = solve_pyomo(model)
    big = int(np.argmax(free.y))
    target = 0.8 * float(free.y[big])
    pm = build_pyomo_model(model, "tangents")
    pm.spend[cell_names(model)[big]].fix(target)
    result = solve_pyomo(model, pyomo_model=pm)
    assert result.status is RouteStatus.CONVERGED, result.message
    assert result.y[big] == pytest.approx(target, abs=1e-12)
    assert pyo.value(pm.spend[cell_names(model)[big]]) == pytest.approx(target, abs=1e-12)
    # Reference: the same restriction stated as cell bounds, solved by the HiGHS cut route.
    cell = problem["cells"][big]
    cell["min_spend"] = cell["max_spend"] = target * model.money_scale
    ref = solve_cuts(compiled(problem))
    assert ref.status is RouteStatus.CONVERGED
    assert relative(model.objective(result.y), model.objective(ref.y)) <= TOL
    assert model.objective(result.y) < model.objective(free.y)


def test_user_linear_constraint_is_respected() -> None:
    """A user row ``spend[a] >= 2 spend[b]`` added to the tangent model, against cvxpy/Clarabel
    with the same row."""
    model = compiled(random_problem(1))
    free = solve_pyomo(model)
    a, b = int(np.argmin(free.y)), int(np.argmax(free.y))
    names = cell_names(model)
    pm = build_pyomo_model(model, "tangents")
    pm.user_ratio = pyo.Constraint(expr=pm.spend[names[a]] >= 2 * pm.spend[names[b]])
    result = solve_pyomo(model, pyomo_model=pm)
    assert result.status is RouteStatus.CONVERGED, result.message
    assert result.y[a] >= 2 * result.y[b] - 1e-9
    conic, h = build_conic(model)
    y = h["y"]
    restricted = cp.Problem(conic.objective, [*conic.constraints, y[a] >= 2 * y[b]])
    restricted.solve(solver=cp.CLARABEL, tol_gap_abs=1e-11, tol_gap_rel=1e-11, tol_feas=1e-11)
    assert relative(model.objective(result.y), float(restricted.value)) <= TOL
    # The same row on the exact model is an ordinary Pyomo constraint, satisfied by this plan.
    exact = build_pyomo_model(model, "exact")
    exact.user_ratio = pyo.Constraint(expr=exact.spend[names[a]] >= 2 * exact.spend[names[b]])
    set_plan(exact, model, result.y)
    assert exact.user_ratio.lslack() >= -1e-9
    assert relative(pyo.value(exact.total), model.objective(result.y)) <= 1e-12


def test_rejects_foreign_pyomo_model() -> None:
    model = compiled(random_problem(0))
    with pytest.raises(ValueError):
        solve_pyomo(model, pyomo_model=build_pyomo_model(model, "exact"))


# --- (d) infeasibility and limits --------------------------------------------------------------------


def test_share_minimums_above_one_are_infeasible() -> None:
    problem = random_problem(2)
    problem["category_shares"] = {f"cat{c}": {"min": 0.4} for c in range(3)}
    result = solve_pyomo(compiled(problem))
    assert result.status is RouteStatus.INFEASIBLE
    assert result.y is None


def test_clv_rules_out_of_reach_are_infeasible() -> None:
    """No plan meets these CLV/CAC rules (the tangent LP has no solution), as in the cut route."""
    model = compiled(every_family_problem(8, samples=2, clv=300.0))
    assert solve_pyomo(model).status is RouteStatus.INFEASIBLE
    assert solve_cuts(model).status is RouteStatus.INFEASIBLE


def test_iteration_limit_is_reported_honestly() -> None:
    model = compiled(random_problem(3, samples=2))
    result = solve_pyomo(model, max_iterations=2)
    assert result.status is RouteStatus.ITERATION_LIMIT
    assert "gap" in result.message
    if result.y is not None:
        assert max_violation(model, result.y) <= 1e-9


def test_time_limit_is_reported_honestly() -> None:
    result = solve_pyomo(compiled(random_problem(3)), time_limit=0.0)
    assert result.status is RouteStatus.TIME_LIMIT
    assert "gap" in result.message
