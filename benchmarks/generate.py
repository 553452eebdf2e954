"""Sized full problems for benchmarks: C categories x S segments, every rule the product has.

:func:`full_problem` builds a problem-file dict of ``n = C * S`` cells with a mix of curve families
(log, exp_saturation, michaelis_menten, power -- families whose marginal revenue has a closed-form
inverse, so the plain water-filling baseline can run on the same curves), a budget row, a
min/max share per category, a CLV/CAC rule per segment and a spend cap per cell. ``clv_tightness``
sets how many CLV/CAC rules bind: 0 gives generous CLVs (no rule binds), 1 puts most segments'
CLV near the acquisition cost of an even allocation (nearly all bind).

Random instances can be infeasible (a tight CLV rule no spend can meet); :func:`check_feasible`
says so with the product's own diagnosis, and the scripts report it instead of timing it.

Run ``python benchmarks/generate.py 20 30`` to print a summary of one instance.
"""

from __future__ import annotations

import sys
from typing import Any

import numpy as np

FAMILIES = ("log", "exp_saturation", "michaelis_menten", "power")


def _curves(rng: np.random.Generator, family: str, spend: np.ndarray, level: np.ndarray) -> list[dict[str, Any]]:
    """Curves whose value at ``spend`` is about ``level`` (vectorized draw, dicts at the end)."""
    k = spend.size
    jitter = np.exp(rng.normal(0.0, 0.25, k))
    if family == "log":
        a, b = level / np.log(2.0) * jitter, spend * np.exp(rng.normal(0, 0.3, k))
        return [{"family": "log", "a": x, "b": y} for x, y in zip(a.tolist(), b.tolist())]
    if family == "exp_saturation":
        a, b = 1.6 * level * jitter, spend * np.exp(rng.normal(0, 0.3, k))
        return [{"family": "exp_saturation", "a": x, "b": y} for x, y in zip(a.tolist(), b.tolist())]
    if family == "michaelis_menten":
        alpha, lam = 2.0 * level * jitter, np.exp(rng.normal(0, 0.3, k))
        return [{"family": "michaelis_menten", "alpha": x, "lam": y, "scale": s}
                for x, y, s in zip(alpha.tolist(), lam.tolist(), spend.tolist())]
    p = rng.uniform(0.3, 0.8, k)
    a = level / spend**p * jitter
    return [{"family": "power", "a": x, "p": y} for x, y in zip(a.tolist(), p.tolist())]


def full_problem(n_categories: int, n_segments: int, *, seed: int = 0, budget: float = 1e8,
                 clv_tightness: float = 0.5, shares: bool = True, clv: bool = True,
                 caps: bool = True) -> dict[str, Any]:
    """A problem-file dict with ``n_categories * n_segments`` cells (see the module docstring)."""
    rng = np.random.default_rng(seed)
    n = n_categories * n_segments
    spend = np.full(n, budget / n) * np.exp(rng.normal(0, 0.3, n))
    # Categories differ in return (a factor per category), so that share rules bind at the optimum
    # instead of averaging out over thousands of segments.
    cat_factor = rng.uniform(0.6, 1.5, n_categories)
    roi = rng.uniform(1.5, 4.5, n) * np.repeat(cat_factor, n_segments)
    family_of = rng.integers(0, len(FAMILIES), n)
    revenue: list[dict[str, Any] | None] = [None] * n
    acquisitions: list[dict[str, Any] | None] = [None] * n
    cac = rng.uniform(40.0, 160.0, n)  # cost per new customer at the typical spend
    for f, family in enumerate(FAMILIES):
        idx = np.flatnonzero(family_of == f)
        for i, c in zip(idx.tolist(), _curves(rng, family, spend[idx], roi[idx] * spend[idx])):
            revenue[i] = c
        for i, c in zip(idx.tolist(), _curves(rng, ("log", "exp_saturation", "michaelis_menten", "log")[f],
                                               spend[idx], spend[idx] / cac[idx])):
            acquisitions[i] = c
    cats = [f"cat{c:03d}" for c in range(n_categories)]
    segs = [f"seg{s:06d}" for s in range(n_segments)]
    cat_of = np.repeat(np.arange(n_categories), n_segments)
    seg_of = np.tile(np.arange(n_segments), n_categories)
    upper = (spend * rng.uniform(2.0, 5.0, n)).tolist()
    cells = []
    for i in range(n):
        cell: dict[str, Any] = {"category": cats[cat_of[i]], "segment": segs[seg_of[i]], "revenue": revenue[i]}
        if clv:
            cell["acquisitions"] = acquisitions[i]
        if caps:
            cell["max_spend"] = upper[i]
        cells.append(cell)
    problem: dict[str, Any] = {"version": 1, "name": f"bench-{n_categories}x{n_segments}-{seed}",
                               "budget": budget, "cells": cells}
    if shares:
        even = 1.0 / n_categories
        lo = even * rng.uniform(0.4, 0.9, n_categories)
        hi = np.minimum(1.0, even * rng.uniform(1.1, 1.6, n_categories))
        problem["category_shares"] = {c: {"min": float(a), "max": float(b)} for c, a, b in zip(cats, lo, hi)}
    if clv:
        seg_cac = np.bincount(seg_of, weights=cac, minlength=n_segments) / n_categories
        # ratio 3: the rule allows CAC up to clv / 3. Tight rules put clv / 3 near the even-spend CAC.
        binds = rng.random(n_segments) < clv_tightness
        headroom = np.where(binds, rng.uniform(0.7, 1.2, n_segments), rng.uniform(4.0, 8.0, n_segments))
        problem["segments"] = {s: {"clv": float(3 * c * h), "min_clv_cac_ratio": 3.0}
                               for s, c, h in zip(segs, seg_cac, headroom)}
    return problem


def budget_only(problem: dict[str, Any]) -> dict[str, Any]:
    """The same cells with the budget and cell bounds only (the water-filling baseline's problem)."""
    cells = [{k: v for k, v in c.items() if k != "acquisitions"} for c in problem["cells"]]
    return {"version": 1, "name": problem["name"] + "-budget-only", "budget": problem["budget"], "cells": cells}


def check_feasible(problem: dict[str, Any]) -> list[str]:
    """The product's pre-solve diagnosis of conflicting rules (empty when none is visible)."""
    from formulations.feasibility import precheck
    from formulations.model import compile_problem
    from formulations.problem import Problem

    return precheck(compile_problem(Problem.from_dict(problem)))


if __name__ == "__main__":
    c, s = (int(a) for a in sys.argv[1:3]) if len(sys.argv) >= 3 else (6, 20)
    p = full_problem(c, s)
    print(f"{p['name']}: {len(p['cells'])} cells, {len(p.get('category_shares', {}))} share rules, "
          f"{len(p.get('segments', {}))} CLV/CAC rules; conflicts: {check_feasible(p) or 'none visible'}")
