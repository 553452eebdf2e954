"""Planner-sized problems: the whole ``solve()`` (parse, compile, solve, verify) from a problem dict.

The target (issue "Performance at scale") is under 20 ms up to 1,000 cells. Every library is
imported first and each size is solved once untimed (:mod:`fair`), then timed over repeated
calls; the table gives the median and the best of wall-clock and CPU time per call. No test
asserts on these numbers.

    python benchmarks/small.py [--repeats 15]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path[:0] = [str(HERE.parent), str(HERE)]

#: cells -> (categories, segments) of the full problem (budget, shares, CLV/CAC rules, caps)
SIZES = {30: (6, 5), 120: (6, 20), 600: (6, 100), 1000: (10, 100)}


def main() -> None:
    from fair import import_note, preload, warm_up
    from generate import full_problem

    preload("product")
    from solver import solve

    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--repeats", type=int, default=15)
    args = ap.parse_args()
    print(f"{'cells':>6} {'route':<14} {'wall ms (median)':>17} {'wall ms (best)':>15} "
          f"{'cpu ms (median)':>16} {'status':<8}")
    for n, (c, s) in SIZES.items():
        raw = full_problem(c, s, seed=0, clv_tightness=0.5)
        warm_up(solve, raw)  # the same instance, untimed (fair.warm_up)
        wall, cpu = [], []
        before = set(sys.modules)
        for _ in range(args.repeats):
            w, p = time.perf_counter(), time.process_time()
            solution = solve(raw)
            wall.append(1000 * (time.perf_counter() - w))
            cpu.append(1000 * (time.process_time() - p))
        print(f"{n:>6} {solution.backend:<14} {statistics.median(wall):>17.1f} {min(wall):>15.1f} "
              f"{statistics.median(cpu):>16.1f} {solution.status.value:<8}"
              f"{import_note(sorted(set(sys.modules) - before))}", flush=True)


if __name__ == "__main__":
    main()
