"""Nonparametric response curves that enter the model as concave piecewise-linear curves.

Two monotone learners, each turned into a concave nondecreasing curve through the origin:

- **isotonic** (light, per cell): scikit-learn's :class:`~sklearn.isotonic.IsotonicRegression`
  of the outcome on spend;
- **lightgbm** (global, optional extra ``ml``): one LightGBM model over all cells with a monotone
  (nondecreasing) constraint on spend, the cell as a categorical feature and the period features
  month-of-year and time index; a cell's curve is its partial dependence on spend (averaged over
  the cell's own periods).

A monotone fit is not concave, so it goes through :func:`concave_regression`: the least-squares
concave, nondecreasing function with ``g(0) = 0``. Every such function on knots ``k_1 < ... < k_m``
is ``g(x) = sum_l d_l min(x, k_l)`` with ``d_l >= 0`` (slopes ``s_j = sum_{l >= j} d_l`` that never
increase), so the fit is a nonnegative least-squares problem. The result is linear between knots and
flat after the last one -- exactly :meth:`forecasting.curves.Curve.pwl`'s contract -- and
:func:`least_concave_majorant` guards the conversion against rounding.

All functions work in normalized units (spend and outcome divided by the cell's means) like
:mod:`forecasting.parametric`.
"""

from __future__ import annotations

import importlib.util
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray
from scipy.optimize import nnls

from forecasting.curves import Curve

FloatArray = NDArray[np.float64]

NONPARAMETRIC_METHODS: tuple[str, ...] = ("isotonic", "lightgbm")
#: Points of the spend grid on which a LightGBM partial dependence is read.
GRID_POINTS = 40


def lightgbm_available() -> bool:
    """True when the optional ``lightgbm`` package is importable."""
    return importlib.util.find_spec("lightgbm") is not None


# --------------------------------------------------------------------------------------------
# Concave curves from points
# --------------------------------------------------------------------------------------------


def least_concave_majorant(x: FloatArray, y: FloatArray) -> tuple[FloatArray, FloatArray]:
    """Smallest concave function above the points, kept nondecreasing (flat after its maximum).

    Parameters
    ----------
    x, y
        Points (any order; repeated ``x`` keep their largest ``y``).

    Returns
    -------
    (xk, yk)
        Knots of the majorant, ``xk`` strictly increasing.

    Examples
    --------
    >>> least_concave_majorant(np.array([0.0, 1, 2, 3]), np.array([0.0, 1, 3, 2]))
    (array([0., 2.]), array([0., 3.]))
    """
    order = np.lexsort((-np.asarray(y, float), np.asarray(x, float)))
    xs, ys = np.asarray(x, float)[order], np.asarray(y, float)[order]
    first = np.concatenate([[True], np.diff(xs) > 0])
    xs, ys = xs[first], ys[first]
    hull: list[int] = []
    for i in range(len(xs)):
        while len(hull) >= 2:
            a, b = hull[-2], hull[-1]
            # drop b if it lies on or below the chord from a to i
            if (ys[b] - ys[a]) * (xs[i] - xs[a]) <= (ys[i] - ys[a]) * (xs[b] - xs[a]):
                hull.pop()
            else:
                break
        hull.append(i)
    hx, hy = xs[hull], ys[hull]
    top = int(np.argmax(hy))  # nondecreasing: stop at the maximum (flat afterwards)
    return hx[: top + 1], hy[: top + 1]


def concave_regression(x: FloatArray, y: FloatArray, w: FloatArray | None = None) -> tuple[FloatArray, FloatArray]:
    """Weighted least-squares concave nondecreasing fit through the origin.

    Parameters
    ----------
    x
        Spends >= 0 (normalized), any order.
    y
        Outcomes.
    w
        Weights >= 0 (default 1).

    Returns
    -------
    (xk, yk)
        Knots ``0 = xk[0] < xk[1] < ...`` and the fitted values there (``yk[0] = 0``); the curve is
        linear between knots and flat after the last.
    """
    x = np.asarray(x, float)
    y = np.asarray(y, float)
    w = np.ones_like(x) if w is None else np.asarray(w, float)
    keep = (w > 0) & (x > 0)
    knots = np.unique(x[keep])
    if knots.size == 0:
        raise ValueError("concave_regression needs at least one point with positive spend and weight")
    basis = np.minimum(x[keep][:, None], knots[None, :])
    root = np.sqrt(w[keep])
    d, _ = nnls(basis * root[:, None], y[keep] * root, maxiter=50 * knots.size)
    fitted = np.minimum(knots[:, None], knots[None, :]) @ d
    return np.concatenate([[0.0], knots]), np.concatenate([[0.0], fitted])


def concave_pwl(xk: FloatArray, yk: FloatArray, where: str = "curve") -> Curve:
    """A valid concave ``pwl`` :class:`Curve` from knots (merged by the majorant, origin first).

    Points whose slope change is below rounding are dropped; an all-flat fit gets a tiny
    positive last slope so the curve stays a valid, nondecreasing function.
    """
    hx, hy = least_concave_majorant(np.concatenate([[0.0], xk]), np.concatenate([[0.0], yk]))
    if hx[0] != 0.0:
        hx, hy = np.concatenate([[0.0], hx]), np.concatenate([[0.0], hy])
    if hx.size < 2:  # flat zero: keep a valid two-point curve
        hx, hy = np.array([0.0, max(float(np.max(xk)), 1.0)]), np.array([0.0, 0.0])
    return Curve.pwl(np.column_stack([hx, hy]), where=where)


def pwl_in_money(unit: Curve, x_unit: float, y_unit: float) -> Curve:
    """A unit-space pwl curve in money units: knots scaled by ``x_unit`` and ``y_unit``."""
    return Curve.pwl(np.column_stack([unit.params["x"] * x_unit, unit.params["y"] * y_unit]))


# --------------------------------------------------------------------------------------------
# Isotonic route (per cell)
# --------------------------------------------------------------------------------------------


def isotonic_knots(u: FloatArray, v: FloatArray, w: FloatArray) -> tuple[FloatArray, FloatArray]:
    """Knots of the concave curve (normalized units) from an isotonic fit of ``v`` on ``u``.

    scikit-learn's :func:`~sklearn.isotonic.isotonic_regression` (pool adjacent violators, with
    weights ``w``) gives nondecreasing fitted values at the observed spends; they are then
    projected on concave nondecreasing functions through the origin (:func:`concave_regression`).
    """
    from sklearn.isotonic import isotonic_regression

    keep = w > 0
    order = np.argsort(u[keep], kind="stable")
    x, y, wt = u[keep][order], v[keep][order], w[keep][order]
    fitted = isotonic_regression(y, sample_weight=wt, y_min=0.0, increasing=True)
    return concave_regression(x, fitted, wt)


def isotonic_curve(u: FloatArray, v: FloatArray, w: FloatArray, where: str = "curve") -> Curve:
    """Concave pwl :class:`Curve` (normalized units) of :func:`isotonic_knots`."""
    return concave_pwl(*isotonic_knots(u, v, w), where=where)


def isotonic_batch(u: FloatArray, v: FloatArray, w: FloatArray) -> list[Curve | None]:
    """:func:`isotonic_curve` for every row of (B, n) arrays (None where a row has < 3 points)."""
    out: list[Curve | None] = []
    for i in range(u.shape[0]):
        ok = (w[i] > 0) & (u[i] > 0)
        out.append(isotonic_curve(u[i], v[i], w[i]) if ok.sum() >= 3 else None)
    return out


def isotonic_predictions(u: FloatArray, v: FloatArray, w: FloatArray) -> FloatArray:
    """Values at ``u`` of every row's isotonic concave curve (NaN rows with < 3 points).

    The fast path for cross-validation: the same curve as :func:`isotonic_curve`, evaluated by
    linear interpolation (flat after the last knot) without building :class:`Curve` objects.
    """
    out = np.full(u.shape, np.nan)
    for i in range(u.shape[0]):
        ok = (w[i] > 0) & (u[i] > 0)
        if ok.sum() >= 3:
            xk, yk = isotonic_knots(u[i], v[i], w[i])
            out[i] = np.interp(u[i], xk, yk)
    return out


# --------------------------------------------------------------------------------------------
# LightGBM route (global over cells)
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class GBMSettings:
    """LightGBM settings of the global monotone model (single-threaded, deterministic)."""

    n_estimators: int = 150
    learning_rate: float = 0.05
    num_leaves: int = 8
    min_child_samples: int = 10
    random_state: int = 0

    def params(self) -> dict[str, object]:
        return {
            "objective": "regression", "n_estimators": self.n_estimators,
            "learning_rate": self.learning_rate, "num_leaves": self.num_leaves,
            "min_child_samples": self.min_child_samples, "random_state": self.random_state,
            "num_threads": 1, "verbose": -1, "deterministic": True, "force_row_wise": True,
        }


def period_features(months: NDArray[np.integer], n_periods: int) -> FloatArray:
    """(T, 2) period features: month of year (1-12) and time index (0 .. T-1)."""
    return np.column_stack([np.asarray(months, float), np.arange(n_periods, dtype=float)])


def lightgbm_batch(
    u: FloatArray, v: FloatArray, w: FloatArray, features: FloatArray,
    settings: GBMSettings = GBMSettings(),
) -> list[Curve | None]:
    """One monotone LightGBM over all rows; a concave pwl (normalized units) per row.

    Parameters
    ----------
    u, v, w
        (B, T) normalized spend, outcome and weights, one row per cell. One model is fitted per
        call: a rolling-origin fold is its own call (stacking folds as rows would let a fold
        learn from another fold's test periods through the shared trees).
    features
        (T, F) period features shared by all rows (see :func:`period_features`).
    settings
        LightGBM settings.

    Returns
    -------
    list
        Per row, the concave curve of its partial dependence on spend (None if the row has
        fewer than 3 weighted points).
    """
    from lightgbm import LGBMRegressor

    rows, periods = u.shape
    keep = (w > 0).ravel()
    design = _design(u, features)
    model = LGBMRegressor(**settings.params(),
                          monotone_constraints=[1] + [0] * (design.shape[1] - 1))
    model.fit(design[keep], v.ravel()[keep], sample_weight=w.ravel()[keep], categorical_feature=[1])
    out: list[Curve | None] = []
    for b in range(rows):
        obs = (w[b] > 0) & (u[b] > 0)
        if obs.sum() < 3:
            out.append(None)
            continue
        grid = np.geomspace(u[b, obs].min() / 2.0, u[b, obs].max(), GRID_POINTS)
        out.append(_partial_dependence_curve(model, b, grid, features[obs]))
    return out


def _design(u: FloatArray, features: FloatArray) -> FloatArray:
    rows, periods = u.shape
    cell = np.repeat(np.arange(rows, dtype=float), periods)
    period = np.tile(features, (rows, 1))
    return np.column_stack([u.ravel(), cell, period])


def _partial_dependence_curve(model, row: int, grid: FloatArray, features: FloatArray) -> Curve:
    """Average prediction over the row's periods at each grid spend -> concave pwl."""
    k = features.shape[0]
    design = np.column_stack([
        np.repeat(grid, k), np.full(grid.size * k, float(row)), np.tile(features, (grid.size, 1)),
    ])
    pd_values = model.predict(design).reshape(grid.size, k).mean(axis=1)
    xk, yk = concave_regression(grid, pd_values)
    return concave_pwl(xk, yk)


def evaluate(curves: Sequence[Curve | None], u: FloatArray) -> FloatArray:
    """Values of row curves at (B, n) spends; NaN rows where the curve is None."""
    out = np.full(u.shape, np.nan)
    for b, c in enumerate(curves):
        if c is not None:
            out[b] = c.value(u[b])
    return out
