"""Risk-aware objective: maximize the CVaR of revenue over posterior samples, as an exact conic program.

A problem whose curves carry ``S`` posterior samples (see the problem format: a parameter given as
a list) has one revenue function per sample, ``R_s(x) = sum_i r_i(x_i; theta_{i,s})`` (minus spend
for a ``profit`` objective). The default objective is their mean. The *conditional value at risk*
at level ``alpha`` in (0, 1] is the mean of the worst ``alpha`` fraction of the samples:

    CVaR_alpha(x) = max_tau  tau - 1 / (alpha S) * sum_s max(tau - R_s(x), 0)

(Rockafellar-Uryasev; when ``alpha S`` is not a whole number the boundary sample counts with the
fractional weight that makes the worst samples' weights sum to one). Each ``R_s`` is concave, so
``CVaR_alpha`` is concave in ``x`` and ``max_x CVaR_alpha(x)`` subject to the model's rules is a
convex program; with the per-sample hypographs ``T[i, s] <= r_i(x_i; theta_{i,s})`` of
:func:`formulations.conic.sample_expression` it is an exact conic program that Clarabel solves.
``alpha = 1`` is the mean objective.

Samples are *joint* across cells: sample ``s`` of every cell's curve is one scenario (as a
Bayesian model's posterior draw ``s`` is). Curves without samples (or ``pwl``) are the same in
every scenario; curves with samples must all have the same count ``S``.

The rules (budget, shares, bounds, CLV/CAC) are the model's, on the mean acquisition curves --
the same feasible set as :func:`solver.solve`.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

from forecasting.curves import PWL, CurveBatch
from formulations.conic import CLARABEL_SETTINGS, CONIC_FAMILIES, pwl_lines, rule_rows, sample_expression
from formulations.errors import ProblemError
from formulations.model import ArrayModel
from formulations.result import RouteStatus

FloatArray = NDArray[np.float64]
BACKEND = "clarabel-cvar"


@dataclass(frozen=True)
class CVaRResult:
    """The conic route's answer (scaled units of the model).

    ``y``: spend (shape (n,)) or None; ``value``: the solver's CVaR (objective units, not yet
    checked); ``weights``: the scenario weights ``q_s`` (shape (S,), the duals of the tail rows:
    ``0 <= q_s <= 1 / (alpha S)``, sum 1) -- the worst-case mixture that certifies the bound.
    """

    status: RouteStatus
    y: FloatArray | None = None
    value: float = float("nan")
    weights: FloatArray | None = None
    iterations: int = 0
    message: str = ""


def scenario_count(model: ArrayModel) -> int:
    """The number of joint samples ``S`` of the revenue curves (1 without samples).

    Raises
    ------
    ProblemError
        When two revenue curves have different sample counts greater than one.
    """
    counts = {next(iter(g.params.values())).shape[1] for g in model.revenue.groups if g.family != PWL}
    counts.discard(1)
    if len(counts) > 1:
        raise ProblemError(f"CVaR needs the same number of posterior samples in every revenue curve that "
                           f"has samples; found {sorted(counts)}")
    return counts.pop() if counts else 1


def check_alpha(alpha: float) -> float:
    """``alpha`` as a float in (0, 1], else ProblemError."""
    if isinstance(alpha, bool) or not isinstance(alpha, (int, float)) or not 0.0 < float(alpha) <= 1.0:
        raise ProblemError(f"cvar alpha must be a number in (0, 1] (the worst fraction of samples), got {alpha!r}")
    return float(alpha)


def scenario_revenue(batch: CurveBatch, x: FloatArray, n_scenarios: int) -> FloatArray:
    """Per-scenario revenue of every cell, shape (S, n), at money spends ``x`` (shape (n,))."""
    out = np.zeros((n_scenarios, batch.n))
    for g in batch.groups:
        curve_values = np.stack([_sample_values(batch, i, x[i], n_scenarios) for i in g.index], axis=1)
        out[:, g.index] = curve_values
    return out


def _sample_values(batch: CurveBatch, i: int, x: float, n_scenarios: int) -> FloatArray:
    from forecasting.intervals import sample_values

    curve = batch.curve(i)
    assert curve is not None
    values = sample_values(curve, np.array([x]))[:, 0]
    return np.broadcast_to(values, (n_scenarios,)) if values.size == 1 else values


def cvar(values: FloatArray, alpha: float) -> float:
    """CVaR of equally likely outcomes ``values`` (shape (S,)): the mean of the worst ``alpha``
    fraction, the boundary outcome weighted fractionally (exact, by sorting)."""
    v = np.sort(np.asarray(values, float))
    s = v.size
    weight = np.clip(alpha * s - np.arange(s), 0.0, 1.0)  # 1 for the worst floor(alpha S), then the fraction
    return float((weight * v).sum() / (alpha * s))


def solve_cvar_model(model: ArrayModel, alpha: float) -> CVaRResult:
    """Maximize ``CVaR_alpha`` of the (scaled) objective over the model's feasible set with Clarabel.

    The result still needs checking on the exact curves (:func:`solver.risk.solve_cvar`).
    """
    families = model.revenue.families() | model.acquisitions.families()
    if not families <= CONIC_FAMILIES:
        return CVaRResult(RouteStatus.ERROR, message=f"families {sorted(families - CONIC_FAMILIES)} have no "
                                                     "conic form; CVaR needs exact conic curves")
    import cvxpy as cp

    n, s_count = model.n, scenario_count(model)
    y = cp.Variable(n, name="spend")
    t = cp.Variable((n, s_count), name="scenario_revenue")
    constraints, _ = rule_rows(model, y)
    constraints += _scenario_rows(model, y, t, s_count)
    curved = np.zeros(n, dtype=bool)
    for g in model.revenue.groups:
        curved[g.index] = True
    constraints += [t[np.flatnonzero(~curved), :] == 0] if not curved.all() else []
    tau = cp.Variable(name="var")
    excess = cp.Variable(s_count, name="shortfall", nonneg=True)
    scenario = cp.sum(t, axis=0) - model.spend_cost * cp.sum(y)
    tail = excess >= tau - scenario
    problem = cp.Problem(cp.Maximize(tau - cp.sum(excess) / (alpha * s_count)), constraints + [tail])
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)
            problem.solve(solver=cp.CLARABEL, **CLARABEL_SETTINGS)
    except cp.error.SolverError as e:
        return CVaRResult(RouteStatus.ERROR, message=f"Clarabel failed: {e}")
    iterations = int(problem.solver_stats.num_iters or 0) if problem.solver_stats else 0
    if problem.status in (cp.INFEASIBLE, cp.INFEASIBLE_INACCURATE):
        return CVaRResult(RouteStatus.INFEASIBLE, iterations=iterations, message="the rules conflict")
    if problem.status not in (cp.OPTIMAL, cp.OPTIMAL_INACCURATE) or y.value is None:
        return CVaRResult(RouteStatus.ERROR, iterations=iterations, message=f"Clarabel status: {problem.status}")
    weights = np.asarray(tail.dual_value, float).reshape(-1)
    return CVaRResult(RouteStatus.CONVERGED, np.clip(np.asarray(y.value, float), model.lower, model.upper),
                      float(problem.value), weights, iterations)


def _scenario_rows(model: ArrayModel, y, t, s_count: int) -> list:
    """``t[i, s] <= r_i(x_i; theta_{i,s}) / value_scale`` for every cell with a revenue curve."""
    rows = []
    for g in model.revenue.groups:
        yg, w = y[g.index], np.full(g.index.size, 1.0 / model.value_scale)
        if g.family == PWL:
            lines = pwl_lines(g.params, w, yg, model.money_scale)
            rows += [t[g.index, s] <= line for s in range(s_count) for line in lines]
            continue
        own = next(iter(g.params.values())).shape[1]
        for s in range(s_count):
            expr = sample_expression(g.family, g.params, s if own > 1 else 0, w, yg, model.money_scale, rows)
            rows.append(t[g.index, s] <= expr)
    return rows
