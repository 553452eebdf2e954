"""Cells' best responses in closed form agree with a brute-force search on a fine grid."""

from __future__ import annotations

import numpy as np
import pytest

from formulations.lagrangian import respond
from formulations.model import compile_problem
from formulations.problem import Problem


def _pwl(rng: np.random.Generator, scale: float) -> dict[str, object]:
    xs = np.concatenate([[0.0], np.sort(rng.uniform(0.05, 3.0, int(rng.integers(1, 6))))]) * scale
    slopes = np.sort(rng.uniform(0.0, 2.0, xs.size - 1))[::-1]
    ys = np.concatenate([[0.0], np.cumsum(slopes * np.diff(xs))])
    return {"family": "pwl", "points": np.column_stack([xs, ys]).tolist()}


@pytest.mark.parametrize("seed", range(5))
def test_weighted_pwl_cells_take_the_best_breakpoint(seed: int) -> None:
    """Revenue and acquisitions both pwl, with a CLV/CAC weight: the response is exact."""
    rng = np.random.default_rng(seed)
    cells = [{"category": f"c{i}", "segment": "s", "revenue": _pwl(rng, 1e4), "acquisitions": _pwl(rng, 1e4),
              "max_spend": float(rng.uniform(1e4, 3e4))} for i in range(6)]
    problem = Problem.from_dict({"version": 1, "budget": 5e4, "budget_mode": "at_most", "cells": cells,
                                 "segments": {"s": {"clv": 300.0, "min_clv_cac_ratio": 3.0}}})
    model = compile_problem(problem)
    price = rng.uniform(0.2, 2.0, model.n) * model.money_scale / model.value_scale
    weight = rng.uniform(0.0, 3.0, model.n)
    y = respond(model, price, weight).y
    grid = np.linspace(model.lower, model.upper, 20001)  # (points, cells)

    def value(spend: np.ndarray) -> np.ndarray:
        return model.rev(spend) + weight * model.acq_value(spend) - price * spend

    best = np.max(np.stack([value(row) for row in grid]), axis=0)
    assert np.all(value(y) >= best - 1e-12 * (1 + np.abs(best)))
