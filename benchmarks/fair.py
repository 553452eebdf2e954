"""Fairness rules shared by every benchmark script (see "Fairness" in benchmarks/README.md).

1. **Imports outside every clock.** :func:`preload` imports every library a route uses before
   anything is timed; :func:`timed` reports any module that still gets imported inside the clock
   (the scripts print it in the row's note, so a slip shows instead of hiding in the time).
2. **The same warm-up for every route.** :func:`warm_up` runs a route once, untimed, on a small
   instance of the same shape (:func:`warm_instance`) or on the timed instance itself, before its
   timed run: first-call caches (the product's and the baselines' own, cvxpy's, numpy's) are paid
   by nobody's clock.
3. **Comparable stopping accuracies.** The product accepts a plan when its proven gap is at most
   :data:`GAP_TOL` (relative) and no rule is broken by more than :data:`FEAS_TOL` of the budget
   (``solver.backends.SolveOptions``, read here, not copied). Baselines with a tolerance are given
   the same relative accuracy (:data:`CLARABEL_TOLERANCES`, :data:`HIGHS_TOLERANCES`,
   ``baselines.slsqp``), or stop at double precision like the product's own bisections
   (``baselines.plain_waterfill``).
"""

from __future__ import annotations

import importlib
import sys
import time
from collections.abc import Callable
from typing import Any, TypeVar

from solver.backends import SolveOptions

T = TypeVar("T")

#: The product's acceptance tolerances: relative proven gap, and rule violation / budget.
GAP_TOL: float = SolveOptions().gap_tol
FEAS_TOL: float = SolveOptions().feas_tol

#: Clarabel's stopping tolerances (its defaults in 0.11, passed explicitly so that a version bump
#: cannot change them silently): relative and absolute duality gap at the product's GAP_TOL, and a
#: feasibility tolerance of 1e-8 (looser than the product's 1e-9 of the budget: in Clarabel's favour).
CLARABEL_TOLERANCES: dict[str, float] = {"tol_gap_rel": GAP_TOL, "tol_gap_abs": GAP_TOL, "tol_feas": 1e-8}

#: HiGHS IPM stopping tolerances (its defaults, passed explicitly): relative optimality gap at the
#: product's GAP_TOL; primal and dual feasibility 1e-7 (looser than the product's); crossover then
#: returns a vertex, exact to rounding. Its accuracy is limited by the linearization, not by these.
HIGHS_TOLERANCES: dict[str, float] = {"ipm_optimality_tolerance": GAP_TOL,
                                      "primal_feasibility_tolerance": 1e-7,
                                      "dual_feasibility_tolerance": 1e-7}

#: Everything that builds or solves in the benchmarks, for every route.
_COMMON = ("numpy", "generate", "formulations.problem", "formulations.model", "baselines")
#: Libraries each route uses (on top of ``_COMMON``). The product's ``solver`` package imports
#: numpy, pandas and highspy (its cut route) at import time. Its fallback routes would load cvxpy
#: (the conic route) or scipy.optimize; they do not run on the benchmark instances (the row's note
#: names the route), so they are not preloaded: that keeps the product's peak memory its own, and
#: :func:`timed` would flag such an import (which could only count against the product).
ROUTE_IMPORTS: dict[str, tuple[str, ...]] = {
    "product": ("solver", "highspy"),
    "slsqp": ("scipy.optimize",),
    "clarabel": ("cvxpy", "clarabel", "formulations.conic"),
    "highs": ("highspy",),
    "waterfill": (),
}


def route_family(route: str) -> str:
    """``product-budget`` -> ``product``, ``highs8`` -> ``highs``; other names unchanged."""
    for family in ("product", "highs"):
        if route.startswith(family):
            return family
    return route


def preload(route: str) -> None:
    """Import every library ``route`` uses, once, before any clock starts."""
    for name in (*_COMMON, *ROUTE_IMPORTS[route_family(route)]):
        importlib.import_module(name)


def warm_instance(budget_only: bool = False) -> dict[str, Any]:
    """The small warm-up instance (6 cells), in the shape of the timed one: every rule, or the
    budget and cell bounds only (the water-filling routes)."""
    import generate

    raw = generate.full_problem(2, 3, seed=1, clv_tightness=0.5)
    return generate.budget_only(raw) if budget_only else raw


def warm_up(run: Callable[..., Any], *args: Any, **kwargs: Any) -> None:
    """One untimed call of ``run`` (the route's whole timed callable), result discarded."""
    run(*args, **kwargs)


def timed(run: Callable[..., T], *args: Any, **kwargs: Any) -> tuple[T, float, list[str]]:
    """``run(*args)``, its wall-clock seconds, and the modules it imported (should be none)."""
    before = set(sys.modules)
    start = time.perf_counter()
    result = run(*args, **kwargs)
    seconds = time.perf_counter() - start
    return result, seconds, sorted(set(sys.modules) - before)


def import_note(imported: list[str]) -> str:
    """A note for a row whose clock paid imports ("" when it paid none)."""
    if not imported:
        return ""
    top = sorted({m.split(".")[0] for m in imported})
    return f"; IMPORTED IN THE CLOCK: {', '.join(top[:5])}{' ...' if len(top) > 5 else ''}"
