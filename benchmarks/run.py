"""Route benchmarks: the product's ``solve()`` against baselines on the same sized instances.

Every (size, route) runs in its own subprocess so that peak memory (``ru_maxrss``) belongs to that
case alone; times are wall-clock seconds on this machine, and the ratios at the end are between
routes measured in this same run. No test asserts on these numbers.

    python benchmarks/run.py                 # the standard table (several minutes)
    python benchmarks/run.py --quick         # sizes up to 3,000 cells
    python benchmarks/run.py --sizes 120 600 --routes product slsqp   # a subset
    python benchmarks/run.py --case 600 product   # one case, prints one JSON line

Routes: ``product`` (``solve(problem_dict)``: parse, compile, solve, verify -- what a user calls),
``product-budget`` (the same on the budget-only version), ``slsqp``, ``clarabel`` (default
tolerances), ``highs8`` / ``highs16`` (HiGHS IPM on a fixed 8 / 16-piece linearization), and
``waterfill`` (plain closed-form water-filling of the budget-only problem, arrays prepared).

Every route follows the same rules (:mod:`fair`): its libraries are imported before any clock,
it gets one untimed warm-up run on a 6-cell instance of the same shape, and baselines with a
stopping tolerance get the product's relative accuracy. A row whose clock still paid an import
says so in its note ("IMPORTED IN THE CLOCK").
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path[:0] = [str(HERE.parent), str(HERE)]

from fair import import_note, preload, timed, warm_instance, warm_up  # noqa: E402

SIZES = {120: (6, 20), 600: (6, 100), 3000: (12, 250), 30_000: (20, 1500), 120_000: (20, 6000),
         1_200_000: (20, 60_000)}
ROUTE_LIMITS = {"slsqp": 600, "clarabel": 30_000, "highs8": 120_000, "highs16": 120_000}
ROUTES = ("product", "product-budget", "waterfill", "slsqp", "clarabel", "highs8", "highs16")


BUDGET_ROUTES = ("product-budget", "waterfill")


def _runner(route: str) -> Callable[[dict[str, object]], dict[str, object]]:
    """The route's whole timed callable: from the problem dict to the row's fields."""
    from baselines import clarabel_default, highs_pieces, plain_waterfill, slsqp

    from formulations.model import compile_problem
    from formulations.problem import Problem
    from solver import solve

    if route.startswith("product"):
        def run_product(raw: dict[str, object]) -> dict[str, object]:
            sol, seconds, imported = timed(solve, raw)
            return {"total_s": seconds, "objective": sol.objective, "gap": sol.gap,
                    "status": sol.status.value, "note": sol.backend + import_note(imported)}
        return run_product

    def solve_baseline(model: object) -> tuple[float, str]:
        if route == "slsqp":
            return slsqp(model)  # type: ignore[arg-type]
        if route == "clarabel":
            return clarabel_default(model)  # type: ignore[arg-type]
        if route.startswith("highs"):
            return highs_pieces(model, int(route[5:]))  # type: ignore[arg-type]
        if route == "waterfill":
            return plain_waterfill(model)  # type: ignore[arg-type]
        raise ValueError(f"unknown route {route!r}")

    def run_baseline(raw: dict[str, object]) -> dict[str, object]:
        model, build_s, imported = timed(lambda: compile_problem(Problem.from_dict(raw)))
        (obj, note), solve_s, imported_solve = timed(solve_baseline, model)
        return {"build_s": build_s, "solve_s": solve_s, "objective": obj,
                "note": note + import_note(imported + imported_solve)}
    return run_baseline


def run_case(n: int, route: str, seed: int = 0) -> dict[str, object]:
    """Time one route on the size-``n`` instance (in this process).

    The fairness rules (:mod:`fair`), the same for every route: its libraries are imported
    first, then it runs once untimed on a 6-cell instance of the same shape, then it is timed.
    """
    from generate import budget_only, full_problem

    preload(route)
    run = _runner(route)
    budget = route in BUDGET_ROUTES
    warm_up(run, warm_instance(budget_only=budget))
    raw = full_problem(*SIZES[n], seed=seed, clv_tightness=0.5)
    if budget:
        raw = budget_only(raw)
    row: dict[str, object] = {"n": n, "route": route} | run(raw)
    row["peak_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return row


def _subprocess(n: int, route: str, timeout: float) -> dict[str, object]:
    cmd = [sys.executable, str(Path(__file__).resolve()), "--case", str(n), route]
    try:
        out = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, check=False,
                             env={**os.environ, "PYTHONWARNINGS": "ignore"})
    except subprocess.TimeoutExpired:
        return {"n": n, "route": route, "note": f"did not finish in {timeout:g} s"}
    lines = [ln for ln in out.stdout.splitlines() if ln.startswith("{")]
    if not lines:
        return {"n": n, "route": route, "note": "failed: " + (out.stderr.strip().splitlines() or ["?"])[-1][:120]}
    return json.loads(lines[-1])


def _fmt(v: object, spec: str) -> str:
    return "" if v is None else format(v, spec) if isinstance(v, (int, float)) else str(v)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--case", nargs=2, metavar=("N", "ROUTE"))
    ap.add_argument("--quick", action="store_true", help="sizes up to 3,000 cells")
    ap.add_argument("--sizes", type=int, nargs="+", choices=list(SIZES), help="only these sizes")
    ap.add_argument("--routes", nargs="+", choices=ROUTES, help="only these routes")
    ap.add_argument("--timeout", type=float, default=300.0, help="seconds per case")
    args = ap.parse_args()
    if args.case:
        print(json.dumps(run_case(int(args.case[0]), args.case[1])))
        return
    sizes = [n for n in SIZES if (not args.quick or n <= 3000) and (not args.sizes or n in args.sizes)]
    routes = [r for r in ROUTES if not args.routes or r in args.routes]
    rows = []
    print(f"{'n':>9} {'route':<15} {'build s':>8} {'solve s':>8} {'total s':>8} {'objective':>18} "
          f"{'vs optimum':>11} {'peak MB':>8}  note", flush=True)
    for n in sizes:
        best = None
        for route in routes:
            if n > ROUTE_LIMITS.get(route, 10**9):
                continue
            row = _subprocess(n, route, args.timeout)
            if route in ("product", "product-budget"):
                best = row.get("objective") if route == "product" else best
            if "total_s" not in row and "solve_s" in row:
                row["total_s"] = float(row.get("build_s", 0.0)) + float(row["solve_s"])  # type: ignore[arg-type]
            obj = row.get("objective")
            ref = best if route not in ("product-budget", "waterfill") else None
            if route == "waterfill":
                ref = next((r.get("objective") for r in rows if r["n"] == n and r["route"] == "product-budget"), None)
            if isinstance(obj, float) and isinstance(ref, float) and ref:
                row["shortfall"] = (ref - obj) / abs(ref)
            rows.append(row)
            print(f"{n:>9} {route:<15} {_fmt(row.get('build_s'), '8.3f'):>8} {_fmt(row.get('solve_s'), '8.3f'):>8} "
                  f"{_fmt(row.get('total_s'), '8.3f'):>8} {_fmt(obj, '18.2f'):>18} "
                  f"{_fmt(row.get('shortfall'), '11.2e'):>11} {_fmt(row.get('peak_mb'), '8.0f'):>8}  "
                  f"{row.get('note', '')}", flush=True)
    (HERE / "results").mkdir(exist_ok=True)
    (HERE / "results" / "routes.json").write_text(json.dumps(rows, indent=1))
    print("\nratios (same run):")
    t = {(r["n"], r["route"]): r.get("total_s") for r in rows}
    for n, a, b, target in [(600, "slsqp", "product", ">= 1000x"), (120_000, "highs8", "product", ">= 20x"),
                            (1_200_000, "product", "waterfill", "<= 3x"),
                            (1_200_000, "product-budget", "waterfill", "<= 1.5x")]:
        x, y = t.get((n, a)), t.get((n, b))
        if isinstance(x, float) and isinstance(y, float):
            print(f"  n={n:>9,}: {a} / {b} = {x / y:8.2f}   (target {target})")


if __name__ == "__main__":
    main()
