"""Adversarial problem instances: every family, parameter boundaries, rules at 0 and 100 %.

:func:`adversarial_problem` draws one problem-file dict from a seed. Unlike
:func:`instances.random_problem` (feasible by construction, typical magnitudes), it reaches the
edges where certificates break: power exponent and hill slope exactly 1 next to values below 1,
category shares of 0 and 100 % and min = max, cells forced to zero, CLV/CAC floors that are
tight or unreachable, ``at_most`` and ``profit``, money from 1e3 to 1e9 and revenue per dollar
from 1e-6 to 1e3, posterior samples, flat (linear) and kinked (pwl) curves, and problems that are
infeasible on purpose. Deterministic given the seed.

Examples
--------
>>> p = adversarial_problem(3)
>>> sorted(p)[:3], len(p["cells"]) >= 2
(['budget', 'budget_mode', 'category_shares'], True)
"""

from __future__ import annotations

from typing import Any

import numpy as np

SMOOTH = ("log", "exp_saturation", "power", "michaelis_menten", "hill", "logistic")
ALL = (*SMOOTH, "linear", "pwl")


def adversarial_curve(rng: np.random.Generator, family: str, spend: float, roi: float,
                      samples: int = 0) -> dict[str, Any]:
    """A curve of ``family`` worth about ``roi * spend`` at ``spend``, with boundary parameters
    (exponent or slope exactly 1 a quarter of the time)."""

    def draw(center: float, spread: float = 0.4) -> float | list[float]:
        if samples:
            return [float(center * np.exp(rng.normal(0, spread))) for _ in range(samples)]
        return float(center * np.exp(rng.normal(0, spread)))

    def exponent() -> float:
        return 1.0 if rng.random() < 0.25 else float(rng.choice([0.3, rng.uniform(0.3, 1.0), 0.999]))

    level = roi * spend
    if family == "log":
        return {"family": "log", "a": draw(level / np.log(2.0)), "b": draw(spend * 10 ** rng.uniform(-2, 1))}
    if family == "exp_saturation":
        return {"family": "exp_saturation", "a": draw(level * 1.6), "b": draw(spend * 10 ** rng.uniform(-1, 1))}
    if family == "power":
        p = exponent()
        return {"family": "power", "a": draw(level / spend**p), "p": p}
    if family == "michaelis_menten":
        return {"family": "michaelis_menten", "alpha": draw(2 * level), "lam": draw(10 ** rng.uniform(-1, 1)),
                "scale": spend}
    if family == "hill":
        return {"family": "hill", "beta": draw(2 * level), "kappa": draw(10 ** rng.uniform(-1, 1)),
                "slope": exponent(), "scale": spend}
    if family == "logistic":
        return {"family": "logistic", "beta": draw(1.3 * level), "lam": draw(10 ** rng.uniform(-0.5, 0.5)),
                "scale": spend}
    if family == "linear":
        return {"family": "linear", "a": float(roi * rng.uniform(0.0, 1.5))}
    if family == "pwl":
        k = int(rng.integers(1, 7))
        xs = np.concatenate([[0.0], np.sort(rng.uniform(0.1, 6.0, k)) * spend])
        xs = np.unique(xs)
        slopes = roi * 2.0 * np.sort(rng.uniform(0.0, 1.0, xs.size - 1))[::-1]
        if rng.random() < 0.2:
            slopes[:] = slopes[0]  # one straight piece: flat curvature everywhere
        ys = np.concatenate([[0.0], np.cumsum(slopes * np.diff(xs))])
        return {"family": "pwl", "points": np.column_stack([xs, ys]).tolist()}
    raise ValueError(family)


def adversarial_problem(seed: int, *, max_cells: int = 60, families: tuple[str, ...] = ALL,
                        infeasible_rate: float = 0.1) -> dict[str, Any]:
    """One adversarial problem dict (see the module docstring); feasible unless the draw says not."""
    rng = np.random.default_rng(seed)
    n_cat = int(rng.integers(1, 7))
    n_seg = int(rng.integers(1, 6))
    n_cells_full = n_cat * n_seg
    scale_cells = max(1, int(rng.integers(2, max_cells + 1)) // n_cells_full)
    budget = float(10 ** rng.uniform(3, 9))
    roi = float(10 ** rng.uniform(-6, 3))
    samples = int(rng.choice([0, 0, 0, 3, 8]))
    fams = tuple(rng.choice(families, size=int(rng.integers(1, 4)), replace=True))
    budget_mode = str(rng.choice(["equal", "equal", "at_most"]))
    objective = str(rng.choice(["revenue", "revenue", "profit"]))
    if objective == "profit":
        roi = float(10 ** rng.uniform(-0.5, 1.5))  # profit needs curves that can beat their cost
    cells = []
    n = n_cells_full * scale_cells
    spend = budget / n
    for c in range(n_cat):
        for s in range(n_seg):
            for j in range(scale_cells):
                fam = str(fams[int(rng.integers(len(fams)))])
                cell: dict[str, Any] = {
                    "category": f"cat{c}", "segment": f"seg{s}" if scale_cells == 1 else f"seg{s}_{j}",
                    "revenue": adversarial_curve(rng, fam, spend, roi * 10 ** rng.uniform(-0.7, 0.7),
                                                 samples if fam in SMOOTH else 0),
                }
                if rng.random() < 0.3:
                    cell["max_spend"] = float(spend * 10 ** rng.uniform(-0.5, 1.0))
                if rng.random() < 0.2:
                    cell["min_spend"] = float(spend * rng.uniform(0.0, 0.5))
                if rng.random() < 0.5:
                    cell["current_spend"] = float(spend * rng.uniform(0.2, 2.0))
                cells.append(cell)
    segments = sorted({c["segment"] for c in cells})
    problem: dict[str, Any] = {"version": 1, "name": f"adversarial-{seed}", "budget": budget,
                               "budget_mode": budget_mode, "objective": objective, "cells": cells}
    _add_shares(rng, problem, n_cat)
    _add_clv(rng, problem, segments, spend)
    _fix_bounds(problem)
    if rng.random() < infeasible_rate:
        _make_infeasible(rng, problem)
    return problem


def _add_shares(rng: np.random.Generator, problem: dict[str, Any], n_cat: int) -> None:
    shares: dict[str, dict[str, float]] = {}
    kind = rng.choice(["none", "loose", "tight", "zero", "all", "pinned"])
    if kind == "none":
        return
    for c in range(n_cat):
        if rng.random() < 0.6:
            even = 1.0 / n_cat
            lo = float(even * rng.uniform(0.0, 0.9))
            hi = float(min(1.0, even * rng.uniform(1.0, 2.0)))
            if kind == "tight":
                lo = hi = float(even)
            shares[f"cat{c}"] = {"min": lo, "max": hi}
    if kind == "zero" and n_cat > 1:
        shares[f"cat{int(rng.integers(n_cat))}"] = {"min": 0.0, "max": 0.0}
    if kind == "all":
        target = f"cat{int(rng.integers(n_cat))}"
        shares = {target: {"min": 1.0, "max": 1.0}}
    if kind == "pinned":
        target = f"cat{int(rng.integers(n_cat))}"
        shares[target] = {"min": float(rng.uniform(0.0, 1.0))}
        shares[target]["max"] = shares[target]["min"]
    if shares:
        total_min = sum(r["min"] for r in shares.values())
        if total_min > 1.0:
            for r in shares.values():
                r["min"] /= total_min
        problem["category_shares"] = shares


def _add_clv(rng: np.random.Generator, problem: dict[str, Any], segments: list[str], spend: float) -> None:
    kind = rng.choice(["none", "loose", "tight", "mixed"])
    if kind == "none":
        return
    rules = {}
    for s in segments:
        if rng.random() < 0.6:
            clv = float(10 ** rng.uniform(1, 3))
            ratio = float(rng.choice([1.0, 3.0, rng.uniform(1, 5)]))
            rules[s] = {"clv": clv, "min_clv_cac_ratio": ratio}
    if not rules:
        return
    for cell in problem["cells"]:
        rule = rules.get(cell["segment"])
        if rule is None:
            continue
        cap = rule["clv"] / rule["min_clv_cac_ratio"]  # money per customer allowed
        # customers per dollar around 1/cap: tight rules bind, loose ones rarely do
        rate = {"loose": 10.0, "tight": 2.0, "mixed": float(10 ** rng.uniform(0.0, 1.0))}[str(kind)] / cap
        fam = str(rng.choice(["log", "exp_saturation", "michaelis_menten", "power", "hill", "linear", "pwl"]))
        cell["acquisitions"] = adversarial_curve(rng, fam, spend, rate)
    problem["segments"] = rules


def _fix_bounds(problem: dict[str, Any]) -> None:
    """Keep min_spend <= max_spend, and let an equal-budget problem be spendable."""
    budget = problem["budget"]
    for cell in problem["cells"]:
        if "min_spend" in cell and "max_spend" in cell and cell["min_spend"] > cell["max_spend"]:
            cell["min_spend"] = cell["max_spend"]
    caps = [cell.get("max_spend", budget) for cell in problem["cells"]]
    if problem["budget_mode"] == "equal" and sum(caps) < budget:
        for cell in problem["cells"]:
            cell.pop("max_spend", None)
    mins = sum(cell.get("min_spend", 0.0) for cell in problem["cells"])
    if mins > budget:
        for cell in problem["cells"]:
            cell.pop("min_spend", None)


def _make_infeasible(rng: np.random.Generator, problem: dict[str, Any]) -> None:
    """Break the problem on purpose, in one of several ways."""
    how = rng.choice(["mins", "shares", "clv", "caps"])
    cells = problem["cells"]
    if how == "mins":
        for cell in cells:
            cell["min_spend"] = 1.2 * problem["budget"] / len(cells)
            cell.pop("max_spend", None)
    elif how == "shares":
        cats = sorted({c["category"] for c in cells})
        if len(cats) == 1:
            # One category cannot be asked for more than 100 % (a share above 1 is invalid input):
            # ask for all of it and cap its cells below the budget.
            problem["category_shares"] = {cats[0]: {"min": 1.0, "max": 1.0}}
            for cell in cells:
                cell["max_spend"] = 0.5 * problem["budget"] / len(cells)
                cell.pop("min_spend", None)
        else:
            problem["category_shares"] = {c: {"min": 1.1 / len(cats), "max": 1.0} for c in cats}
    elif how == "clv":
        seg = cells[0]["segment"]
        problem.setdefault("segments", {})[seg] = {"clv": 10.0, "min_clv_cac_ratio": 3.0}
        for cell in cells:
            if cell["segment"] == seg:
                cell["acquisitions"] = {"family": "log", "a": 1e-3, "b": 1e3}
                cell["min_spend"] = problem["budget"] / len(cells) / 2
                cell.pop("max_spend", None)
    else:
        problem["budget_mode"] = "equal"
        for cell in cells:
            cell["max_spend"] = 0.5 * problem["budget"] / len(cells)
            cell.pop("min_spend", None)
