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

4. **Where the regret comes from** (``--explain``, :func:`explain`): per cell, the concavity
   gap of the true curve between the plan and the optimum (the regret splits exactly into these
   cell losses plus a non-negative remainder from shifting spend across the binding rules),
   whether the plan or the optimum spends beyond the highest historical spend, the fitted and
   true families, level and elasticity errors; and counterfactual plans with only the level or
   only the shape of the fitted curves wrong, and with caps at 1x the historical peak.

    python benchmarks/decision_quality.py            # 4 noise levels x 24/36/48 months x 3 seeds
    python benchmarks/decision_quality.py --quick    # 15 % noise, 36 months, 1 seed (~10 s)
    python benchmarks/decision_quality.py --quick --explain   # ... with the per-cell breakdown

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


@dataclass(frozen=True)
class Planned:
    """A fitted instance and its plans: what :func:`regrets` and :func:`explain` evaluate."""

    problem: Problem                      # the product's problem (fitted plan curves, rules)
    fit: Any                              # the product's FitResult
    truth: dict[Key, Curve]               # true plan-period revenue curves
    optimum: dict[Key, float]             # spend of the true optimum
    best: float                           # its true revenue
    plans: dict[str, dict[Key, float]]    # method -> spend per cell


def plan_case(case: Case, **fit_options: Any) -> Planned:
    """Fit the history (``fit_options`` go to :func:`forecasting.fit.fit_curves`) and plan the
    quarter with every method of :data:`METHODS`."""
    problem, fit = fit_problem(case.fitted, PLAN, **fit_options)
    truth = {k: c.revenue.time_scaled(PLAN_MONTHS) for k, c in case.truth.curves.items()}
    optimum = optimal_spend(with_curves(problem, truth))
    current = _current_spend(problem)
    scale = problem.budget / sum(current.values())
    plans = {
        "product": optimal_spend(problem),
        "status_quo": {k: x * scale for k, x in current.items()},
        "last_roi": optimal_spend(with_curves(problem, naive_curves(case.fitted, "last_roi"))),
        "average_roi": optimal_spend(with_curves(problem, naive_curves(case.fitted, "average_roi"))),
    }
    return Planned(problem, fit, truth, optimum, true_revenue(optimum, truth), plans)


def regret_of(planned: Planned, spend: Mapping[Key, float]) -> float:
    """Share of the true optimum that a plan loses (evaluated on the true curves)."""
    return 1.0 - true_revenue(spend, planned.truth) / planned.best


def regrets(case: Case, **fit_options: Any) -> tuple[dict[str, float], Any]:
    """Regret of every method (fractions of the true optimum) and the product's fit."""
    planned = plan_case(case, **fit_options)
    return {m: regret_of(planned, planned.plans[m]) for m in METHODS}, planned.fit


def _current_spend(problem: Problem) -> dict[Key, float]:
    """The status quo: each cell's spend over the last quarter of the history."""
    records = problem.to_dict()["cells"]
    return {(r["category"], r["segment"]): float(r.get("current_spend") or 0.0) for r in records}


# --------------------------------------------------------------------------------------------
# Where the regret comes from (--explain)
# --------------------------------------------------------------------------------------------


def fitted_curves(problem: Problem) -> dict[Key, Curve]:
    """The revenue curves of a problem, per cell."""
    return {(c["category"], c["segment"]): Curve.from_dict(c["revenue"])
            for c in problem.to_dict()["cells"]}


def with_caps(problem: Problem, factor: float) -> Problem:
    """The same problem with every cell's upper spend bound multiplied by ``factor``."""
    data = problem.to_dict()
    for cell in data["cells"]:
        if cell.get("max_spend") is not None:
            cell["max_spend"] = float(cell["max_spend"]) * factor
    return Problem.from_dict(data)


def cell_losses(planned: Planned, spend: Mapping[Key, float]) -> dict[Key, float]:
    """Per-cell share of the true optimum lost, by concavity gap (Bregman divergence):
    ``r(x*) - r(x) - r'(x*) (x* - x)``, >= 0 for every cell. The rest of the regret,
    ``sum r'(x*) (x* - x)``, >= 0 by optimality, is the cost of shifting spend across the
    binding rules (budget, category shares, caps) and is reported as ``rules``."""
    out = {}
    for k, x in spend.items():
        r, xo = planned.truth[k], planned.optimum[k]
        gap = r.value(xo) - r.value(x) - r.derivative(xo) * (xo - x)
        out[k] = float(gap) / planned.best
    return out


def explain(case: Case, planned: Planned) -> tuple[pd.DataFrame, dict[str, float]]:
    """Per-cell breakdown of the product's regret, and counterfactual regrets.

    Cell columns: ``loss`` (:func:`cell_losses`, share of the optimum), ``opt`` / ``plan`` (spend
    of the true optimum and of the plan), ``peak`` (highest historical spend, plan units; the cap
    is twice that), ``beyond`` (``p``: the plan, ``o``: the optimum spends more than the peak),
    ``level`` (fitted / true revenue at the historical mean spend), ``ela_fit`` / ``ela_true``
    (elasticity there), ``mroi`` (fitted / true marginal return at the optimum's spend; the
    plan is right when it is equal across cells), ``shape`` (``mroi / level``: the part of
    the marginal error that is not a level error), the fitted family (``fit``) and the true one.

    Counterfactual regrets (each plan evaluated on the true curves): ``level_only`` plans on the
    true curves scaled by each cell's fitted level error (shape exact), ``shape_only`` on the
    fitted curves rescaled to the true level at the mean spend (level exact), ``caps_1x`` /
    ``optimum_caps_1x``: the product with caps at 1x the peak, against the optimum under the
    same caps.
    """
    fitted = fitted_curves(planned.problem)
    monthly = case.fitted.groupby(["category", "segment"])["spend"]
    peak, mean = monthly.max() * PLAN_MONTHS, monthly.mean() * PLAN_MONTHS
    plan = planned.plans["product"]
    losses = cell_losses(planned, plan)
    routes = {c.key: c.route for c in planned.fit.cells}
    described = {c.key: c.revenue.describe() for c in planned.fit.cells}
    rows, level = [], {}
    for k, r in planned.truth.items():
        f, m, xo = fitted[k], float(mean[k]), planned.optimum[k]
        level[k] = float(f.value(m) / r.value(m))
        mroi = float(f.derivative(xo) / r.derivative(xo))
        beyond = ("p" if plan[k] > peak[k] * 1.0001 else "") + ("o" if xo > peak[k] * 1.0001 else "")
        rows.append({"category": k[0], "segment": k[1], "route": routes.get(k, "?"),
                     "loss": losses[k], "opt": xo, "plan": plan[k], "peak": float(peak[k]),
                     "beyond": beyond or "-", "level": level[k],
                     "ela_fit": float(m * f.derivative(m) / f.value(m)),
                     "ela_true": float(m * r.derivative(m) / r.value(m)),
                     "mroi": mroi, "shape": mroi / level[k],
                     "true": r.family, "fit": described.get(k, "?")})
    frame = pd.DataFrame(rows).sort_values("loss", ascending=False, ignore_index=True)
    level_only = {k: planned.truth[k].scaled(level[k]) for k in planned.truth}
    shape_only = {k: fitted[k].scaled(1.0 / level[k]) for k in fitted}
    capped = with_caps(planned.problem, 0.5)
    capped_truth = with_curves(capped, planned.truth)
    best_capped = true_revenue(optimal_spend(capped_truth), planned.truth)
    counter = {
        "product": regret_of(planned, plan),
        "rules": regret_of(planned, plan) - sum(losses.values()),
        "level_only": regret_of(planned, optimal_spend(with_curves(planned.problem, level_only))),
        "shape_only": regret_of(planned, optimal_spend(with_curves(planned.problem, shape_only))),
        "caps_1x": 1.0 - true_revenue(optimal_spend(capped), planned.truth) / best_capped,
        "optimum_caps_1x": 1.0 - best_capped / planned.best,
    }
    return frame, counter


def explain_text(case: Case, frame: pd.DataFrame, counter: Mapping[str, float], top: int = 10) -> str:
    """The breakdown of :func:`explain` as text: summary lines and the ``top`` costliest cells."""
    beyond = frame["beyond"] != "-"
    lines = [
        (f"noise {case.noise:.0%} months {case.months} seed {case.seed}: regret "
         f"{counter['product']:.2%} = cells {frame['loss'].sum():.2%} + rules "
         f"{counter['rules']:.2%}; cells beyond the historical peak (plan or optimum): "
         f"{int(beyond.sum())} of {len(frame)}, {frame.loc[beyond, 'loss'].sum():.2%} of the loss"),
        (f"  counterfactual regrets: level errors only {counter['level_only']:.2%}, shape errors "
         f"only {counter['shape_only']:.2%}; caps at 1x the peak {counter['caps_1x']:.2%} "
         f"(that optimum is {counter['optimum_caps_1x']:.2%} below the 2x one)"),
        (f"  level error (fitted / true at mean spend): sd {np.std(np.log(frame['level'])):.3f} "
         f"log units; marginal error at the optimum: sd {np.std(np.log(frame['mroi'])):.3f}, of "
         f"which shape {np.std(np.log(frame['shape'])):.3f}"),
    ]
    shown = frame.head(top).copy()
    shown["loss"] = shown["loss"].map(lambda v: f"{v:.2%}")
    for col in ("opt", "plan", "peak"):
        shown[col] = shown[col].map(lambda v: f"{v:,.0f}")
    for col in ("level", "ela_fit", "ela_true", "mroi", "shape"):
        shown[col] = shown[col].map(lambda v: f"{v:.2f}")
    return "\n".join(lines) + "\n" + shown.to_string(index=False)


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


def run_case(noise: float, months: int, seed: int, explained: bool = False, **fit_options: Any) -> dict[str, Any]:
    """Regrets, coverages and fit time of one instance (one result row); with ``explained``,
    prints the per-cell breakdown of :func:`explain` (to stderr) and adds its counterfactual
    regrets to the row. ``fit_options`` go to :func:`forecasting.fit.fit_curves`."""
    case = make_case(noise, months, seed)
    started = time.perf_counter()
    planned = plan_case(case, **fit_options)
    regret = {m: regret_of(planned, planned.plans[m]) for m in METHODS}
    fit = planned.fit
    elapsed = time.perf_counter() - started
    extra: dict[str, Any] = {}
    if explained:
        frame, counter = explain(case, planned)
        print(explain_text(case, frame, counter), file=sys.stderr)
        extra = {f"explain_{k}": v for k, v in counter.items() if k != "product"}
        beyond = frame["beyond"] != "-"
        extra["explain_beyond"] = float(frame.loc[beyond, "loss"].sum())
        extra["explain_pooled"] = float(frame.loc[frame["route"] == "pool", "loss"].sum())
    inside, total = future_coverage(fit, case.unseen)
    backtest = fit.backtest()
    cv = backtest.loc[backtest["method"] == "curves", "coverage"].mean()
    pooled = sum(c.route == "pool" for c in fit.cells)
    return {"noise": noise, "months": months, "seed": seed, **regret,
            "future_inside": inside, "future_total": total, "cv_coverage": float(cv),
            "level": fit.level, "pooled": pooled, "seconds": elapsed, **extra}


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


EXPLAINED = {
    "explain_beyond": "cells beyond peak",
    "explain_pooled": "pooled cells",
    "explain_rules": "across rules",
    "explain_level_only": "level errors only",
    "explain_shape_only": "shape errors only",
    "explain_caps_1x": "caps 1x (regret)",
    "explain_optimum_caps_1x": "caps 1x (optimum lost)",
}


def explain_summary(rows: Sequence[dict[str, Any]]) -> pd.DataFrame:
    """One line per (noise, months) of the ``--explain`` quantities (means over seeds)."""
    frame = pd.DataFrame(rows)
    out = []
    for (noise, months), g in frame.groupby(["noise", "months"]):
        line: dict[str, Any] = {"noise": f"{noise:.0%}", "months": months,
                                "product": f"{g['product'].mean():.2%}"}
        line |= {label: f"{g[col].mean():.2%}" for col, label in EXPLAINED.items()}
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
    ap.add_argument("--explain", action="store_true",
                    help="per-cell regret breakdown of every instance (stderr) and a summary of "
                         "where the regret comes from")
    ap.add_argument("--weighting", choices=["holdout", "likelihood"], default="holdout",
                    help="how the fit weighs the families (forecasting.fit.fit_curves)")
    args = ap.parse_args(argv)
    grid = [(0.15, 36, 2024)] if args.quick else [
        (n, m, 2024 + s) for n in args.noise for m in args.months for s in range(args.seeds)]
    rows = []
    for noise, months, seed in grid:
        row = run_case(noise, months, seed, args.explain, weighting=args.weighting)
        rows.append(row)
        print(f"noise {noise:.0%} months {months} seed {seed}: regret product {row['product']:.2%}, "
              f"status quo {row['status_quo']:.2%}; {row['seconds']:.1f} s", file=sys.stderr)
    table = summarize(rows)
    print(markdown(table))
    if args.explain:
        print("\nwhere the regret comes from (mean over seeds, share of the true optimum):\n")
        print(markdown(explain_summary(rows)))
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
