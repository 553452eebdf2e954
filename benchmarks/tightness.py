"""How the fast route's time depends on how many CLV/CAC rules bind (one size, several tightnesses).

For ``clv_tightness`` from 0 (no rule binds) to 1 (nearly all segments' CLV at the acquisition cost
of an even allocation), one instance each: ``solve()`` from the problem dict, its status (a tight
random instance can be infeasible: the product then says so with its proof), the number of
binding CLV/CAC and share rules at the optimum, and the proven relative gap.

    python benchmarks/tightness.py [--size 20x6000]
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path[:0] = [str(HERE.parent), str(HERE)]


def main() -> None:
    from fair import import_note, preload, timed, warm_instance, warm_up
    from generate import full_problem

    preload("product")
    from solver import solve

    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--size", default="20x6000", help="categories x segments")
    ap.add_argument("--levels", type=float, nargs="+", default=[0.0, 0.25, 0.5, 0.75, 0.9, 1.0])
    args = ap.parse_args()
    c, s = (int(v) for v in args.size.split("x"))
    warm_up(solve, warm_instance())  # one untimed solve of the same shape (fair.warm_up)
    print(f"n = {c * s:,} cells, {s:,} segments with a CLV/CAC rule")
    print(f"{'tightness':>9} {'total s':>8} {'status':<11} {'binding CLV/CAC':>16} {'binding shares':>15} "
          f"{'gap':>9}  route")
    for level in args.levels:
        raw = full_problem(c, s, seed=0, clv_tightness=level)
        sol, seconds, imported = timed(solve, raw)
        if sol.duals is not None:
            clv = sum(v > 1e-9 for v in sol.duals.segment_clv_cac.values())
            shares = sum(v > 1e-9 for v in (*sol.duals.category_min.values(), *sol.duals.category_max.values()))
            gap = f"{sol.gap / abs(sol.objective):9.1e}" if sol.objective else ""
        else:
            clv = shares = 0
            gap = ""
        print(f"{level:>9.2f} {seconds:>8.3f} {sol.status.value:<11} {clv:>16,} {shares:>15} {gap:>9}  "
              f"{sol.backend}{'; ' + sol.message[:90] if sol.message else ''}{import_note(imported)}", flush=True)


if __name__ == "__main__":
    main()
