"""``solve_cvar(problem, alpha)``: the plan that maximizes the mean of the worst ``alpha`` of samples.

For problems whose curves carry posterior samples (a bootstrap or Bayesian fit), the default
objective is the mean over samples. :func:`solve_cvar` instead maximizes ``CVaR_alpha``: the mean
revenue (or profit) of the worst ``alpha`` fraction of the samples (joint scenarios across cells),
solved exactly as a conic program (:mod:`formulations.risk`). Like :func:`solver.solve` it trusts
nothing a backend says:

- the plan is checked against every rule on the exact curves (:func:`solver.verify.certify`);
- its CVaR is evaluated exactly from the per-sample revenues (sorting, no solver tolerances);
- the upper bound is *proved*: for scenario weights ``q`` with ``0 <= q_s <= 1 / (alpha S)`` and
  ``sum q = 1``, ``CVaR_alpha(x) <= sum_s q_s R_s(x)`` for every plan ``x`` (CVaR is the minimum
  over such weights), so the certified optimum of the ordinary problem whose curves are the
  ``q``-weighted mixtures of the samples (:func:`solver.solve`, with its own dual bound) bounds
  every plan's CVaR. The weights are the conic solver's tail duals (the worst-case mixture),
  projected onto that set; at the optimum the bound meets the plan's CVaR. The reported duals
  are that mixture problem's: shadow prices of the CVaR objective.

The status is ``optimal`` only when the plan meets every rule and its CVaR is within ``gap_tol``
(relative) of the proven bound; otherwise ``infeasible`` (with the conflicting rules) or
``error`` / ``time_limit`` with a message.
"""

from __future__ import annotations

import time
from dataclasses import replace
from typing import Any

import numpy as np
from numpy.typing import NDArray

from formulations.feasibility import conflicts
from formulations.model import ArrayModel, compile_problem
from formulations.problem import Problem
from formulations.result import RouteResult, RouteStatus
from formulations.risk import BACKEND, check_alpha, cvar, scenario_count, scenario_revenue, solve_cvar_model
from solver.backends import SolveOptions
from solver.solution import Solution
from solver.solve import ProblemLike, as_problem, infeasible_solution, prove_infeasible, solve, verified_solution
from solver.status import Status
from solver.verify import certify

FloatArray = NDArray[np.float64]
#: Amplitude parameter of each family (the one a scenario weight multiplies).
AMPLITUDE = {"log": "a", "exp_saturation": "a", "power": "a", "linear": "a", "michaelis_menten": "alpha",
             "logistic": "beta", "hill": "beta"}
#: Smallest relative weight written for a scenario with weight 0 (amplitudes must be > 0); it
#: only raises the mixture, so the bound stays valid.
MIN_WEIGHT = 1e-12


def solve_cvar(problem: ProblemLike, alpha: float, options: SolveOptions | None = None) -> Solution:
    """Maximize the CVaR at level ``alpha`` in (0, 1] of the objective over posterior samples.

    Parameters
    ----------
    problem
        A Problem, problem-file dict or path; its curves may carry ``S`` posterior samples (all
        curves with samples the same ``S``; curves without samples are the same in every sample).
    alpha
        The worst fraction of samples whose mean is maximized (``1`` = the mean objective).
    options
        ``gap_tol`` (relative, between the plan's CVaR and the proven bound), ``feas_tol``,
        ``time_limit`` of the bound's solve.

    Returns
    -------
    Solution
        ``objective``: the plan's exact CVaR (money); ``upper_bound``: the proven bound;
        ``plan``: spend and *mean* revenue per cell; ``objective_kind``: e.g.
        ``"revenue CVaR at alpha=0.1"``.

    Raises
    ------
    formulations.errors.ProblemError
        For malformed input, ``alpha`` outside (0, 1], or unequal sample counts.
    """
    opts = options or SolveOptions()
    start = time.perf_counter()
    p = as_problem(problem)
    level = check_alpha(alpha)
    model = compile_problem(p)
    n_scenarios = scenario_count(model)
    kind = f"{p.objective.value} CVaR at alpha={level:g}"
    proofs = conflicts(model)
    if proofs:
        return replace(infeasible_solution(model, proofs, start), objective_kind=kind)
    result = solve_cvar_model(model, level)
    if result.status is RouteStatus.INFEASIBLE:
        proof = prove_infeasible(model, clv=False)
        if proof is not None:
            return replace(infeasible_solution(model, [proof], start, BACKEND), objective_kind=kind)
        return _bare(p, kind, Status.ERROR, f"{BACKEND} reported infeasible, but no proof of it was found", start)
    if result.y is None or result.weights is None:
        return _bare(p, kind, Status.ERROR, f"{BACKEND}: {result.message}", start)
    cert = certify(model, result.y, None, feas_tol=opts.feas_tol)
    if not cert.feasible:
        return _bare(p, kind, Status.ERROR,
                     f"{BACKEND} returned a plan that breaks " + "; ".join(cert.violated_rules), start)
    value = plan_cvar(model, result.y, level, n_scenarios)
    weights = envelope_projection(result.weights, level)
    bounding = solve(mixture_problem(p, weights), options=opts)
    base = verified_solution(model, RouteResult(RouteStatus.CONVERGED, BACKEND, result.y, None,
                                                result.iterations), opts, start)
    status, message, bound = _judge(value, bounding, model, opts.gap_tol)
    return replace(base, status=status, message=message, objective=value, upper_bound=bound,
                   duals=bounding.duals, objective_kind=kind, seconds=time.perf_counter() - start)


def plan_cvar(model: ArrayModel, y: FloatArray, alpha: float, n_scenarios: int) -> float:
    """Exact CVaR (money) of plan ``y`` (scaled): per-scenario objective, sorted."""
    x = y * model.money_scale
    totals = scenario_revenue(model.revenue, x, n_scenarios).sum(axis=1)
    totals = totals - model.spend_cost * model.value_scale * float(y.sum())
    return cvar(totals, alpha)


def envelope_projection(q: FloatArray, alpha: float) -> FloatArray:
    """Scenario weights inside the CVaR risk envelope ``0 <= q_s <= 1 / (alpha S)``, ``sum q = 1``
    (the solver's duals are within its tolerances of it)."""
    s = q.size
    cap = 1.0 / (alpha * s)
    out = np.clip(np.nan_to_num(np.asarray(q, float)), 0.0, cap)
    deficit = 1.0 - out.sum()
    room = (cap - out) if deficit > 0 else out
    if room.sum() > 0:
        out = np.clip(out + deficit * room / room.sum(), 0.0, cap)
    return out / out.sum() if abs(out.sum() - 1.0) > 1e-15 else out


def mixture_problem(problem: Problem, weights: FloatArray) -> Problem:
    """The same rules with each sampled revenue curve replaced by its ``weights``-mixture.

    Every family's value is linear in its amplitude, so ``sum_s q_s f(x; theta_s)`` is the
    sample-mean curve (the problem format's meaning of samples) with amplitudes ``S q_s a_s``.
    Curves without samples are unchanged (the weights sum to one).
    """
    data = problem.to_dict()
    s = weights.size
    for cell in data["cells"]:
        _reweight(cell["revenue"], s * np.maximum(weights, MIN_WEIGHT / s))
    return Problem.from_dict(data)


def _reweight(curve: dict[str, Any], factor: FloatArray) -> None:
    name = AMPLITUDE.get(curve["family"])
    if name is None:
        return
    lengths = {len(v) for v in curve.values() if isinstance(v, list) and curve["family"] != "pwl"}
    if not lengths:
        return
    amplitude = np.broadcast_to(np.asarray(curve[name], float), factor.shape)
    curve[name] = (amplitude * factor).tolist()
    for key, v in curve.items():  # numbers become lists of the same length (the format's rule)
        if key not in ("family", name) and isinstance(v, (int, float)):
            curve[key] = [v] * factor.size


def _judge(value: float, bounding: Solution, model: ArrayModel, gap_tol: float) -> tuple[Status, str, float | None]:
    if bounding.upper_bound is None or not bounding.is_optimal:
        return (Status.ERROR, f"no proven bound: the weighted-mixture solve ended '{bounding.status.value}'"
                              f" ({bounding.message})", bounding.upper_bound)
    bound = float(bounding.upper_bound)
    gap = (bound - value) / max(abs(value), model.value_scale)
    if gap <= gap_tol:
        return Status.OPTIMAL, "", bound
    return (Status.ERROR, f"{BACKEND}: the plan's CVaR is within {gap:.3g} (relative) of the proven bound, "
                          f"not {gap_tol:g}", bound)


def _bare(p: Problem, kind: str, status: Status, message: str, start: float) -> Solution:
    return Solution(status=status, message=message, name=p.name, objective_kind=kind, budget=p.budget,
                    backend=BACKEND, seconds=time.perf_counter() - start)
