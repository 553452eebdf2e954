"""Decision-quality benchmark: fit -> optimize -> evaluate the plan on the TRUE curves.

For every setting (noise level x history length x seed) a synthetic history with known true curves
(:mod:`forecasting.synthetic`: 6 categories x 5 segments, 10 % seasonality) is generated with
three extra months that the fit never sees; a few cells are *sparse* (only their last
``SPARSE_MONTHS`` months are kept, so they are pooled). Then:

1. **Plans.** One quarter (3 months) with the sample plan's rules -- budget, category shares, cell
   caps at twice the highest monthly spend seen -- is planned four ways:

   - ``product``: :func:`solver.planning.fit_problem` (the product's default fit) then
     :func:`solver.solve`;
   - ``status_quo``: the last quarter's spend mix scaled to the budget (what a planner does
     without a model; it may break the category shares);
   - ``last_roi`` / ``average_roi``: :func:`solver.solve` on *linear* curves from the naive
     forecasts (each cell's last-month or average return on spend), same rules.

2. **Regret.** Every plan's revenue is evaluated on the TRUE curves; the regret is the share of
   the true optimum (the same rules solved on the true curves) that the plan loses.

3. **Coverage.** The fit's prediction intervals (nominal level 80 %) for the three unseen months,
   at the spend actually booked in them, per cell and outcome: the share of actual outcomes
   inside (``future``); and the fit's own held-out coverage on its rolling-origin folds
   (``cv``, out of sample over time).

    python benchmarks/decision_quality.py            # 4 noise levels x 24/36/48 months x 3 seeds
    python benchmarks/decision_quality.py --quick    # 15 % noise, 36 months, 1 seed (~10 s)

Prints one row per (noise, months) with the mean and worst regret over seeds; no test asserts on
these numbers (tests/forecasting/test_uncertainty_and_report.py runs a small instance).
"""

from __future__ import annotations

import argparse
import math
import sys
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

HERE = Path(__file__).resolve().parent
if str(HERE.parent) not in sys.path:
    sys.path.insert(0, str(HERE.parent))

from forecasting.curves import Curve  # noqa: E402
from forecasting.synthetic import SyntheticTruth, generate_history  # noqa: E402
from formulations.problem import Problem  # noqa: E402
from solver import solve  # noqa: E402
from solver.planning import fit_problem  # noqa: E402

#: Months of a plan (one quarter) and months held back from the fit for the coverage check.
PLAN_MONTHS = 3
#: Cells of every history that keep only their last SPARSE_MONTHS months (pooled by the fit).
SPARSE_CELLS = (("technology", "lapsed"), ("advertising", "prospects"), ("list_management", "vip"))
SPARSE_MONTHS = 8
SEASONALITY = 0.10
MONTHLY_BUDGET = 200_000.0
PLAN: dict[str, Any] = {
    "version": 1,
    "name": "decision-quality benchmark quarter",
    "budget": PLAN_MONTHS * MONTHLY_BUDGET,
    "budget_mode": "equal",
    "objective": "revenue",
    "periods": PLAN_MONTHS,
    "max_spend_vs_history": 2.0,
    "category_shares": {
        "technology": {"min": 0.10, "max": 0.30},
        "content_creation": {"min": 0.15, "max": 0.40},
        "list_management": {"min": 0.10, "max": 0.30},
        "human_resources": {"min": 0.10, "max": 0.25},
        "advertising": {"min": 0.05, "max": 0.30},
        "testing_optimization": {"min": 0.05, "max": 0.15},
    },
}
METHODS = ("product", "status_quo", "last_roi", "average_roi")

Key = tuple[str, str]


@dataclass(frozen=True)
class Case:
    """One benchmark instance: a history split into the fitted part and the unseen months."""

    noise: float
    months: int
    seed: int
    fitted: pd.DataFrame
    unseen: pd.DataFrame
    truth: SyntheticTruth


def make_case(noise: float, months: int, seed: int) -> Case:
    """A synthetic history of ``months`` fitted + :data:`PLAN_MONTHS` unseen months."""
    history, truth = generate_history(seed=seed, months=months + PLAN_MONTHS, noise=noise,
                                      seasonality=SEASONALITY, monthly_budget=MONTHLY_BUDGET,
                                      extras=False)
    periods = sorted(history["period"].unique())
    cutoff, sparse_from = periods[months], periods[months - SPARSE_MONTHS]
    key = list(zip(history["category"], history["segment"]))
    sparse = np.array([k in SPARSE_CELLS for k in key]) & (history["period"] < sparse_from).to_numpy()
    kept = history[~sparse]
    return Case(noise, months, seed, kept[kept["period"] < cutoff].reset_index(drop=True),
                kept[kept["period"] >= cutoff].reset_index(drop=True), truth)


# --------------------------------------------------------------------------------------------
# Plans and their true revenue
# --------------------------------------------------------------------------------------------


def with_curves(problem: Problem, curves: Mapping[Key, Curve]) -> Problem:
    """The same rules and bounds with other revenue curves (no acquisition curves)."""
    data = problem.to_dict()
    for cell in data["cells"]:
        cell["revenue"] = curves[(cell["category"], cell["segment"])].to_dict()
        cell.pop("acquisitions", None)
    data["segments"] = {}
    return Problem.from_dict(data)


def optimal_spend(problem: Problem) -> dict[Key, float]:
    """Spend per cell of the certified optimum (raises when not optimal)."""
    plan = solve(problem).raise_for_status().allocation_frame()
    return {(c, s): float(x) for c, s, x in zip(plan["category"], plan["segment"], plan["spend"])}


def true_revenue(spend: Mapping[Key, float], truth: Mapping[Key, Curve]) -> float:
    """Revenue of a plan on the true (plan-period) curves."""
    return float(sum(truth[k].value(x) for k, x in spend.items()))


def naive_curves(history: pd.DataFrame, kind: str) -> dict[Key, Curve]:
    """Linear plan curves ``roi x spend`` from the last month's or the average return on spend."""
    out = {}
    for key, rows in history.sort_values("period").groupby(["category", "segment"]):
        if kind == "last_roi":
            roi = rows["revenue"].iloc[-1] / rows["spend"].iloc[-1]
        else:
            roi = rows["revenue"].sum() / rows["spend"].sum()
        out[key] = Curve.parametric("linear", a=float(roi))
    return out


def regrets(case: Case) -> tuple[dict[str, float], Any]:
    """Regret of every method (fractions of the true optimum) and the product's fit."""
    problem, fit = fit_problem(case.fitted, PLAN)
    truth = {k: c.revenue.time_scaled(PLAN_MONTHS) for k, c in case.truth.curves.items()}
    best = true_revenue(optimal_spend(with_curves(problem, truth)), truth)
    current = _current_spend(problem)
    scale = problem.budget / sum(current.values())
    plans = {
        "product": optimal_spend(problem),
        "status_quo": {k: x * scale for k, x in current.items()},
        "last_roi": optimal_spend(with_curves(problem, naive_curves(case.fitted, "last_roi"))),
        "average_roi": optimal_spend(with_curves(problem, naive_curves(case.fitted, "average_roi"))),
    }
    return {m: 1.0 - true_revenue(plans[m], truth) / best for m in METHODS}, fit


def _current_spend(problem: Problem) -> dict[Key, float]:
    """The status quo: each cell's spend over the last quarter of the history."""
    records = problem.to_dict()["cells"]
    return {(r["category"], r["segment"]): float(r.get("current_spend") or 0.0) for r in records}


# --------------------------------------------------------------------------------------------
# Interval coverage on the unseen months
# --------------------------------------------------------------------------------------------


def future_coverage(fit: Any, unseen: pd.DataFrame) -> tuple[int, int]:
    """(inside, total) of the unseen months' actual outcomes vs the fit's intervals."""
    inside = total = 0
    for period, rows in unseen.groupby("period"):
        spend = {(c, s): float(x) for c, s, x in zip(rows["category"], rows["segment"], rows["spend"])}
        pred = fit.predict(spend, plan_periods=[str(period)]).set_index(["category", "segment"])
        for outcome in ("revenue", "new_customers"):
            if outcome not in pred:
                continue
            actual = rows.set_index(["category", "segment"])[outcome]
            lo = pred.loc[actual.index, f"{outcome}_lower"].to_numpy()
            hi = pred.loc[actual.index, f"{outcome}_upper"].to_numpy()
            inside += int(((actual.to_numpy() >= lo) & (actual.to_numpy() <= hi)).sum())
            total += len(actual)
    return inside, total


# --------------------------------------------------------------------------------------------
# The run
# --------------------------------------------------------------------------------------------


def run_case(noise: float, months: int, seed: int) -> dict[str, Any]:
    """Regrets, coverages and fit time of one instance (one result row)."""
    case = make_case(noise, months, seed)
    started = time.perf_counter()
    regret, fit = regrets(case)
    elapsed = time.perf_counter() - started
    inside, total = future_coverage(fit, case.unseen)
    backtest = fit.backtest()
    cv = backtest.loc[backtest["method"] == "curves", "coverage"].mean()
    pooled = sum(c.route == "pool" for c in fit.cells)
    return {"noise": noise, "months": months, "seed": seed, **regret,
            "future_inside": inside, "future_total": total, "cv_coverage": float(cv),
            "level": fit.level, "pooled": pooled, "seconds": elapsed}


def summarize(rows: Sequence[dict[str, Any]]) -> pd.DataFrame:
    """One line per (noise, months): mean and worst regret per method, coverages, fit time."""
    frame = pd.DataFrame(rows)
    out = []
    for (noise, months), g in frame.groupby(["noise", "months"]):
        line: dict[str, Any] = {"noise": f"{noise:.0%}", "months": months, "seeds": len(g)}
        for m in METHODS:
            line[m] = f"{g[m].mean():.2%}" + (f" (max {g[m].max():.2%})" if len(g) > 1 else "")
        line["coverage future"] = f"{g['future_inside'].sum() / g['future_total'].sum():.1%}"
        line["coverage cv"] = f"{g['cv_coverage'].mean():.1%}"
        line["pooled"] = int(g["pooled"].iloc[0])
        line["fit+solve s"] = f"{g['seconds'].mean():.1f}"
        out.append(line)
    return pd.DataFrame(out)


def markdown(frame: pd.DataFrame) -> str:
    """A GitHub-markdown table of a small frame (no extra dependency)."""
    cols = list(frame.columns)
    lines = ["| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
    lines += ["| " + " | ".join(str(v) for v in row) + " |" for row in frame.itertuples(index=False)]
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="15 %% noise, 36 months, one seed")
    ap.add_argument("--noise", type=float, nargs="+", default=[0.05, 0.10, 0.15, 0.25])
    ap.add_argument("--months", type=int, nargs="+", default=[24, 36, 48])
    ap.add_argument("--seeds", type=int, default=3, help="seeds per setting (2024, 2025, ...)")
    args = ap.parse_args(argv)
    grid = [(0.15, 36, 2024)] if args.quick else [
        (n, m, 2024 + s) for n in args.noise for m in args.months for s in range(args.seeds)]
    rows = []
    for noise, months, seed in grid:
        row = run_case(noise, months, seed)
        rows.append(row)
        print(f"noise {noise:.0%} months {months} seed {seed}: regret product {row['product']:.2%}, "
              f"status quo {row['status_quo']:.2%}; {row['seconds']:.1f} s", file=sys.stderr)
    table = summarize(rows)
    print(markdown(table))
    level = rows[0]["level"]
    print(f"\nregret = share of the true optimum lost (plans evaluated on the TRUE curves); "
          f"coverage of {level:.0%} prediction intervals; {len(SPARSE_CELLS)} sparse cells "
          f"({SPARSE_MONTHS} months) per history.")
    headline = [r for r in rows if r["noise"] == 0.15 and r["months"] == 36]
    if headline:
        worst = max(r["product"] for r in headline)
        cov = sum(r["future_inside"] for r in headline) / sum(r["future_total"] for r in headline)
        ok = worst <= 0.02 and abs(cov - level) <= 0.05
        print(f"acceptance (15 % noise, 36 months): worst regret {worst:.2%} (<= 2 %), "
              f"future coverage {cov:.1%} (nominal {level:.0%} +- 5 points): "
              f"{'PASS' if ok else 'FAIL'}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
