"""Random problem instances in problem-file form, for tests (deterministic given a seed)."""

from __future__ import annotations

from typing import Any

import numpy as np

CONIC_FAMILIES = ("log", "exp_saturation", "power", "michaelis_menten", "hill", "linear", "pwl")
ALL_FAMILIES = (*CONIC_FAMILIES, "logistic")


def random_curve(rng: np.random.Generator, family: str, spend: float, roi: float,
                 samples: int = 0) -> dict[str, Any]:
    """A curve whose value at ``spend`` is about ``roi * spend``; ``samples`` > 0 gives lists."""

    def draw(center: float, spread: float = 0.3) -> float | list[float]:
        if samples:
            return [float(center * np.exp(rng.normal(0, spread))) for _ in range(samples)]
        return float(center * np.exp(rng.normal(0, spread)))

    level = roi * spend
    if family == "log":
        return {"family": "log", "a": draw(level / np.log(2.0)), "b": draw(spend)}
    if family == "exp_saturation":
        return {"family": "exp_saturation", "a": draw(level * 1.6), "b": draw(spend)}
    if family == "power":
        p = float(rng.uniform(0.3, 0.8))
        return {"family": "power", "a": draw(level / spend**p), "p": p}
    if family == "michaelis_menten":
        return {"family": "michaelis_menten", "alpha": draw(2 * level), "lam": draw(1.0), "scale": spend}
    if family == "hill":
        slope = float(rng.uniform(0.3, 1.0))
        return {"family": "hill", "beta": draw(2 * level), "kappa": draw(1.0), "slope": slope, "scale": spend}
    if family == "logistic":
        return {"family": "logistic", "beta": draw(1.3 * level), "lam": draw(1.5), "scale": spend}
    if family == "linear":
        return {"family": "linear", "a": float(roi * rng.uniform(0.05, 0.3))}
    if family == "pwl":
        xs = spend * np.array([0.0, 0.5, 1.0, 2.0, 4.0, 8.0]) * rng.uniform(0.7, 1.3)
        slopes = roi * 2.0 * np.sort(rng.uniform(0.05, 1.0, 5))[::-1]
        ys = np.concatenate([[0.0], np.cumsum(slopes * np.diff(xs))])
        return {"family": "pwl", "points": np.column_stack([xs, ys]).tolist()}
    raise ValueError(family)


def random_problem(
    seed: int,
    *,
    n_categories: int = 3,
    n_segments: int = 3,
    families: tuple[str, ...] = CONIC_FAMILIES,
    budget: float = 1e6,
    roi: float = 3.0,
    shares: bool = True,
    clv: bool = True,
    samples: int = 0,
    caps: bool = True,
    budget_mode: str = "equal",
    objective: str = "revenue",
) -> dict[str, Any]:
    """A feasible-by-construction problem dict (shares loose enough, CLV caps generous)."""
    rng = np.random.default_rng(seed)
    n = n_categories * n_segments
    spend = budget / n
    cells = []
    for c in range(n_categories):
        for s in range(n_segments):
            family = families[(c * n_segments + s) % len(families)]
            cell: dict[str, Any] = {
                "category": f"cat{c}",
                "segment": f"seg{s}",
                "revenue": random_curve(rng, family, spend, roi * rng.uniform(0.5, 1.5), samples),
                "current_spend": spend,
            }
            if clv:
                acq_family = ("log", "exp_saturation", "michaelis_menten")[s % 3]
                # new customers per dollar ~ 1/150 at the typical spend
                cell["acquisitions"] = random_curve(rng, acq_family, spend, rng.uniform(1 / 250, 1 / 100))
            if caps:
                cell["max_spend"] = float(spend * rng.uniform(2.0, 4.0))
                cell["min_spend"] = float(spend * rng.uniform(0.0, 0.2))
            cells.append(cell)
    problem: dict[str, Any] = {
        "version": 1,
        "name": f"random-{seed}",
        "budget": budget,
        "budget_mode": budget_mode,
        "objective": objective,
        "cells": cells,
    }
    if shares:
        even = 1.0 / n_categories
        problem["category_shares"] = {
            f"cat{c}": {"min": float(even * rng.uniform(0.3, 0.8)), "max": float(min(1.0, even * rng.uniform(1.1, 1.8)))}
            for c in range(n_categories)
        }
    if clv:
        problem["segments"] = {
            f"seg{s}": {"clv": float(rng.uniform(450, 1200)), "min_clv_cac_ratio": 3.0} for s in range(n_segments)
        }
    return problem
