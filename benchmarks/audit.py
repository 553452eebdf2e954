"""Audit campaign: solve adversarial problems and count every broken promise.

For each seed, :func:`tests.adversarial.adversarial_problem` draws a problem; ``solve(auto)`` must
answer within a second (up to 1,000 cells), never raise, call ``optimal`` only with
``0 <= bound - objective <= gap_tol x max(|objective|, floor)``, call ``infeasible`` only with a
proof, and never be beaten by another route's verified plan. Every solution goes through the
independent checker (``solver.check``) when it is available.

Usage::

    python benchmarks/audit.py --seeds 0:300 [--max-cells 300] [--routes] [--show-failures]

Prints one table: counts per outcome, the slowest problems and every failure with its seed.
"""

from __future__ import annotations

import argparse
import signal
import sys
import time
import traceback
from collections import Counter
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))

from adversarial import adversarial_problem  # noqa: E402

from formulations.problem import Problem  # noqa: E402
from solver.solve import solve  # noqa: E402
from solver.backends import SolveOptions, candidates  # noqa: E402
from solver.status import Status  # noqa: E402

try:
    from solver.check import check_solution
except ImportError:  # pragma: no cover - the checker is optional for this script
    check_solution = None  # type: ignore[assignment]


class _Stall(BaseException):  # not an Exception: solve() must not take it for a route failure
    pass


def _alarm(signum: int, frame: Any) -> None:
    raise _Stall()


def audit_one(seed: int, max_cells: int, routes: bool, stall: float, check: bool = True) -> dict[str, Any]:
    """Solve one adversarial problem and list what is wrong with the answer."""
    data = adversarial_problem(seed, max_cells=max_cells)
    out: dict[str, Any] = {"seed": seed, "cells": len(data["cells"]), "problems": []}
    try:
        problem = Problem.from_dict(data)
    except ValueError as e:
        out.update(status="refused", seconds=0.0, detail=str(e)[:120])
        return out
    signal.signal(signal.SIGALRM, _alarm)
    signal.setitimer(signal.ITIMER_REAL, stall)
    start = time.perf_counter()
    try:
        sol = solve(problem)
    except _Stall:
        out.update(status="stall", seconds=time.perf_counter() - start)
        out["problems"].append(f"no answer after {stall:g} s")
        return out
    except Exception as e:  # noqa: BLE001 - the audit counts every exception
        signal.setitimer(signal.ITIMER_REAL, 0)
        out.update(status="exception", seconds=time.perf_counter() - start)
        out["problems"].append(f"{type(e).__name__}: {e}"[:200] + "\n" + traceback.format_exc(limit=-3))
        return out
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
    out.update(status=sol.status.value, seconds=time.perf_counter() - start, backend=sol.backend,
               objective=sol.objective, bound=sol.upper_bound, message=sol.message[:160])
    if out["seconds"] > 1.0 and out["cells"] <= 1000:
        out["problems"].append(f"slow: {out['seconds']:.2f} s")
    opts = SolveOptions()
    if sol.status is Status.OPTIMAL:
        obj, bound = sol.objective or 0.0, sol.upper_bound
        floor = max(abs(obj), 1e-9 * problem.budget)
        if bound is None or bound < obj:
            out["problems"].append(f"optimal with bound {bound} below objective {obj}")
        elif bound - obj > opts.gap_tol * floor:
            out["problems"].append(f"optimal with gap {(bound - obj) / floor:.3g} > {opts.gap_tol:g}")
    if check and check_solution is not None:
        report = check_solution(data, sol.to_dict())
        if not report.ok:
            out["problems"].append("checker: " + "; ".join(c.name + " " + c.detail for c in report.failures)[:300])
    if routes and sol.status is Status.OPTIMAL:
        from formulations.model import compile_problem

        for backend in candidates(compile_problem(problem), "auto"):
            if backend.name == sol.backend or sol.backend.startswith(backend.name):
                continue
            other = solve(problem, backend=backend.name)
            if other.status is Status.OPTIMAL and other.objective is not None and sol.objective is not None:
                floor = max(abs(sol.objective), 1e-9 * problem.budget)
                if other.objective > sol.objective + 1e-8 * floor:
                    out["problems"].append(f"{backend.name} finds {other.objective:.12g} > {sol.objective:.12g}")
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", default="0:200", help="range a:b of seeds")
    parser.add_argument("--max-cells", type=int, default=300)
    parser.add_argument("--routes", action="store_true", help="also compare every other supporting route")
    parser.add_argument("--stall", type=float, default=20.0, help="seconds before a solve counts as stalled")
    parser.add_argument("--show-failures", action="store_true")
    parser.add_argument("--no-check", action="store_true", help="skip the independent checker")
    args = parser.parse_args(argv)
    a, b = (int(x) for x in args.seeds.split(":"))
    solve({"version": 1, "budget": 1.0, "cells": [  # warm-up: imports and first calls off the clock
        {"category": "a", "segment": "s", "revenue": {"family": "log", "a": 1, "b": 1}}]})
    rows = [audit_one(seed, args.max_cells, args.routes, args.stall, not args.no_check) for seed in range(a, b)]
    statuses = Counter(r["status"] for r in rows)
    failed = [r for r in rows if r["problems"]]
    times = sorted(rows, key=lambda r: -r.get("seconds", 0.0))
    print(f"audit of seeds {a}:{b} (up to {args.max_cells} cells)")
    print("| outcome | count |\n|---|---|")
    for k, v in sorted(statuses.items()):
        print(f"| {k} | {v} |")
    print(f"| with a broken promise | {len(failed)} |")
    print(f"| over 1 s | {sum(1 for r in rows if r.get('seconds', 0) > 1.0)} |")
    print(f"slowest: " + ", ".join(f"seed {r['seed']} ({r['cells']} cells) {r.get('seconds', 0):.2f} s" for r in times[:5]))
    if args.show_failures:
        for r in failed:
            print(f"- seed {r['seed']} ({r['cells']} cells, {r['status']}, {r.get('backend', '')}, "
                  f"{r.get('seconds', 0):.2f} s): " + " | ".join(r["problems"]) + f"  [{r.get('message', '')}]")
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
