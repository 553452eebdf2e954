"""Budget-frontier benchmark: a 100-point sweep at n = 3,000, every point certified.

Compares :func:`solver.sweep.budget_sweep` (one compiled model, warm-started decomposition) with
100 independent ``solve()`` calls on the same budgets, in the same process, and checks the
frontier's slope against the budget dual (central finite differences). Both methods get the same
warm-up (one untimed run on three of the budgets) after every import (:mod:`fair`).

    python benchmarks/frontier.py [--points 100] [--size 12x250]
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path[:0] = [str(HERE.parent), str(HERE)]


def main() -> None:
    from fair import preload, timed, warm_up
    from generate import full_problem

    preload("product")
    from formulations.problem import Problem
    from solver import solve
    from solver.sensitivity import frontier_slope
    from solver.sweep import budget_sweep

    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--points", type=int, default=100)
    ap.add_argument("--size", default="12x250", help="categories x segments")
    args = ap.parse_args()
    c, s = (int(v) for v in args.size.split("x"))
    problem = Problem.from_dict(full_problem(c, s, clv_tightness=0.5))
    budgets = list(np.linspace(0.5, 1.5, args.points) * problem.budget)

    def solve_each(points: list[float]) -> list[object]:
        return [solve(problem.with_budget(b)) for b in points]

    # The same warm-up for both methods: one untimed run on three of the same budgets.
    warm_up(budget_sweep, problem, budgets[:3])
    warm_up(solve_each, budgets[:3])

    cpu = time.process_time()
    sweep, sweep_wall, sweep_imports = timed(budget_sweep, problem, budgets)
    sweep_cpu = time.process_time() - cpu
    cpu = time.process_time()
    single, single_wall, single_imports = timed(solve_each, budgets)
    single_cpu = time.process_time() - cpu
    if sweep_imports or single_imports:
        print(f"WARNING: imported inside the clock: {sorted(set(sweep_imports + single_imports))[:5]}")

    certified = sum(s.is_optimal for s in sweep)
    agree = max(abs(a.objective - b.objective) / abs(b.objective) for a, b in zip(sweep, single))
    obj = np.array([s.objective for s in sweep])
    # The frontier's slope: the budget dual plus the share duals times their fractions (share
    # limits are fractions of the budget, so they move with it; solver.sensitivity.frontier_slope).
    dual = np.array([frontier_slope(s, problem.with_budget(b)) for s, b in zip(sweep, budgets)])
    fd = np.gradient(obj, np.array(budgets))
    print(f"n = {len(problem.cells):,}, {args.points} budgets from 50 % to 150 %")
    print(f"{'method':<28} {'wall s':>8} {'cpu s':>8} {'per point ms':>13}")
    print(f"{'budget_sweep (warm)':<28} {sweep_wall:8.3f} {sweep_cpu:8.3f} {1000 * sweep_wall / args.points:13.2f}")
    print(f"{'solve() per point (cold)':<28} {single_wall:8.3f} {single_cpu:8.3f} {1000 * single_wall / args.points:13.2f}")
    print(f"speed-up {single_wall / sweep_wall:.1f}x; certified points {certified}/{args.points}; "
          f"max objective difference {agree:.1e}; max gap {max(s.gap / abs(s.objective) for s in sweep):.1e}")
    print(f"frontier slope from the duals vs finite differences of the frontier (interior points): "
          f"max relative difference {np.max(np.abs(fd[1:-1] - dual[1:-1]) / dual[1:-1]):.1e} "
          f"(grid step {budgets[1] - budgets[0]:,.0f}; O(step^2) for a smooth frontier)")


if __name__ == "__main__":
    main()
