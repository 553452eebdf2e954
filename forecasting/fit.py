"""Fit a concave response curve per (category, segment) cell from the history.

For every cell the revenue curve (revenue vs spend) and, when the history has ``new_customers``,
the new-customer curve are fitted from the concave families ``log``, ``exp_saturation``, ``power``,
``michaelis_menten`` and ``hill`` (0 < slope <= 1):

1. Spend and outcome are divided by their cell means, so every fit works on numbers near 1.
2. Each family is fitted by bounded robust least squares (``scipy.optimize.least_squares``,
   ``soft_l1`` loss with a scale set from the data's own noise level) on all periods but the
   last ``h`` (the held-out block, ``h = min(holdout, n // 3)``), starting from the curve that
   matches the data's level and log-log slope at the mean spend
   (:func:`forecasting.shapes.params_through`).
   Positive parameters are fitted in log space within wide bounds, ``power``'s exponent in
   [0.01, 1] and ``hill``'s slope in [0.05, 1], so every result is a valid concave
   :class:`~forecasting.curves.Curve`.
3. The family with the smallest absolute error on the held-out block wins (ties go to the
   earlier family in ``families``); it is refitted on all periods from three starts: the
   data-matched one, a more saturated one, and its held-out-stage solution.

Curves are per history period (a monthly history gives monthly curves: spend in currency per month
to revenue in currency per month, or new customers per month); they are not time-scaled.
Seasonality and trend are not modelled: they end up in the noise. Bad data raise :class:`FitError`
naming the cell and the reason; no cell ever gets a default curve.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd
from numpy.typing import ArrayLike
from scipy.optimize import least_squares

from forecasting.cells import CellCurves, CellKey
from forecasting.curves import PARAMETRIC_FAMILIES, Curve
from forecasting.history import validate_history
from forecasting.shapes import SHAPE_FAMILIES, params_through

DEFAULT_FAMILIES: tuple[str, ...] = SHAPE_FAMILIES
#: Fewest periods a cell needs (a training block for 3 parameters plus a held-out block).
MIN_PERIODS = 6
DEFAULT_HOLDOUT = 6

# Bounds in the normalized units (spend and outcome divided by their means).
_LOG_AMPLITUDE = (math.log(1e-6), math.log(1e8))
_LOG_SCALE = (math.log(1e-6), math.log(1e6))
_POWER_P = (0.01, 1.0)
_HILL_SLOPE = (0.05, 1.0)
_ELASTICITY_START = (0.03, 0.95)


class FitError(ValueError):
    """The history of a cell cannot support a curve fit; the message names the cell and why."""


@dataclass(frozen=True)
class _Space:
    """How a family's parameters map to the least-squares vector ``theta``."""

    names: tuple[str, ...]
    logged: tuple[bool, ...]
    lower: tuple[float, ...]
    upper: tuple[float, ...]

    def params(self, theta: np.ndarray) -> dict[str, float]:
        return {
            n: (math.exp(t) if lg else float(t)) for n, lg, t in zip(self.names, self.logged, theta)
        }

    def theta(self, params: Mapping[str, float]) -> np.ndarray:
        raw = [math.log(params[n]) if lg else params[n] for n, lg in zip(self.names, self.logged)]
        return np.clip(np.array(raw), self.lower, self.upper)


def _space(*spec: tuple[str, str]) -> _Space:
    """``spec``: (parameter, kind) with kind 'amplitude', 'scale' or a bounded shape name."""
    ranges = {"amplitude": _LOG_AMPLITUDE, "scale": _LOG_SCALE, "p": _POWER_P, "slope": _HILL_SLOPE}
    names = tuple(name for name, _ in spec)
    logged = tuple(kind in ("amplitude", "scale") for _, kind in spec)
    lower = tuple(ranges[kind][0] for _, kind in spec)
    upper = tuple(ranges[kind][1] for _, kind in spec)
    return _Space(names, logged, lower, upper)


_SPACES: dict[str, _Space] = {
    "log": _space(("a", "amplitude"), ("b", "scale")),
    "exp_saturation": _space(("a", "amplitude"), ("b", "scale")),
    "power": _space(("a", "amplitude"), ("p", "p")),
    "michaelis_menten": _space(("alpha", "amplitude"), ("lam", "scale")),
    "hill": _space(("beta", "amplitude"), ("kappa", "scale"), ("slope", "slope")),
}
_FIXED: dict[str, dict[str, float]] = {"michaelis_menten": {"scale": 1.0}, "hill": {"scale": 1.0}}


# --------------------------------------------------------------------------------------------
# Results
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class OutcomeFit:
    """The fitted curve of one outcome of one cell.

    Attributes
    ----------
    curve
        Chosen family refitted on all periods; spend per period -> outcome per period.
    family
        The chosen family.
    holdout_mape, holdout_wape
        Held-out error of the chosen family fitted without the held-out block: mean absolute
        percentage error (over held-out periods with a positive outcome; NaN if none) and
        weighted absolute percentage error ``sum |error| / sum |outcome|`` (NaN if the held-out
        outcomes are all zero). Fractions, not percents.
    candidates
        Held-out WAPE of every family tried (``inf`` where the fit failed).
    """

    curve: Curve
    family: str
    holdout_mape: float
    holdout_wape: float
    candidates: Mapping[str, float]


@dataclass(frozen=True)
class CellFit:
    """Fitted curves and diagnostics of one (category, segment) cell.

    Attributes
    ----------
    category, segment
        The cell.
    revenue, acquisitions
        Revenue fit; new-customer fit, or None when the history has no ``new_customers``.
    n_periods, holdout_periods
        Periods in the cell's history; of those, the final ones held out to choose the family.
    mean_spend, last_spend
        Mean spend over the history and spend in its last period (currency per period).
    """

    category: str
    segment: str
    revenue: OutcomeFit
    acquisitions: OutcomeFit | None
    n_periods: int
    holdout_periods: int
    mean_spend: float
    last_spend: float

    @property
    def key(self) -> CellKey:
        return (self.category, self.segment)


@dataclass(frozen=True)
class FitResult:
    """Fitted curves of every cell, in (category, segment) order.

    ``curves`` maps ``(category, segment)`` to :class:`~forecasting.cells.CellCurves`;
    ``result[(category, segment)]`` is that cell's :class:`CellFit`; :meth:`table` gives one
    diagnostics row per cell. ``families`` and ``holdout`` are the options used; ``seconds`` is
    the wall time of the fit.
    """

    cells: tuple[CellFit, ...]
    families: tuple[str, ...]
    holdout: int
    seconds: float

    @property
    def curves(self) -> dict[CellKey, CellCurves]:
        return {
            c.key: CellCurves(c.revenue.curve, c.acquisitions.curve if c.acquisitions else None)
            for c in self.cells
        }

    def __getitem__(self, key: CellKey) -> CellFit:
        for cell in self.cells:
            if cell.key == tuple(key):
                return cell
        raise KeyError(key)

    def __iter__(self) -> Iterator[CellFit]:
        return iter(self.cells)

    def __len__(self) -> int:
        return len(self.cells)

    def table(self) -> pd.DataFrame:
        """Diagnostics per cell.

        Columns: ``category``, ``segment``, ``n_periods``, ``holdout_periods``, ``mean_spend``,
        ``last_spend``; ``revenue_family``, ``revenue_holdout_mape``, ``revenue_holdout_wape``,
        ``revenue_at_mean`` (fitted revenue at the mean spend), ``roi_at_mean`` (that over the
        mean spend), ``marginal_roi_at_last`` (fitted d revenue / d spend at the last spend);
        ``acquisitions_family``, ``acquisitions_holdout_mape``, ``acquisitions_holdout_wape``,
        ``cac_at_mean`` (mean spend over fitted new customers there); the acquisition columns
        are missing values when the history has no ``new_customers``.
        """
        rows = []
        for c in self.cells:
            at_mean = float(c.revenue.curve.value(c.mean_spend))
            acq = c.acquisitions
            new_at_mean = float(acq.curve.value(c.mean_spend)) if acq else math.nan
            rows.append({
                "category": c.category,
                "segment": c.segment,
                "n_periods": c.n_periods,
                "holdout_periods": c.holdout_periods,
                "mean_spend": c.mean_spend,
                "last_spend": c.last_spend,
                "revenue_family": c.revenue.family,
                "revenue_holdout_mape": c.revenue.holdout_mape,
                "revenue_holdout_wape": c.revenue.holdout_wape,
                "revenue_at_mean": at_mean,
                "roi_at_mean": at_mean / c.mean_spend,
                "marginal_roi_at_last": float(c.revenue.curve.derivative(c.last_spend)),
                "acquisitions_family": acq.family if acq else None,
                "acquisitions_holdout_mape": acq.holdout_mape if acq else math.nan,
                "acquisitions_holdout_wape": acq.holdout_wape if acq else math.nan,
                "cac_at_mean": c.mean_spend / new_at_mean if acq and new_at_mean > 0 else math.nan,
            })
        return pd.DataFrame(rows)


# --------------------------------------------------------------------------------------------
# Public entry points
# --------------------------------------------------------------------------------------------


def fit_curves(
    history: pd.DataFrame,
    *,
    holdout: int = DEFAULT_HOLDOUT,
    families: Sequence[str] = DEFAULT_FAMILIES,
) -> FitResult:
    """Fit revenue (and new-customer) curves for every (category, segment) cell of a history.

    Parameters
    ----------
    history
        A history in the data contract of :mod:`forecasting.history` (validated here).
        Spend and revenue are currency per history period.
    holdout
        Size of the final block of periods held out to choose the family (at most a third of a
        cell's periods are held out). Must be >= 1.
    families
        Candidate families, a non-empty subset of :data:`DEFAULT_FAMILIES`.

    Returns
    -------
    FitResult
        One :class:`CellFit` per cell, sorted by (category, segment).

    Raises
    ------
    FitError
        Naming every cell that has fewer than :data:`MIN_PERIODS` periods, constant spend, or
        all-zero revenue (or all-zero new customers).
    forecasting.history.HistoryError
        If the history breaks the data contract.
    """
    started = time.perf_counter()
    families = _check_options(holdout, families)
    data = validate_history(history).sort_values(["category", "segment", "period"], kind="stable")
    has_new = "new_customers" in data.columns
    groups = list(data.groupby(["category", "segment"], sort=True))
    outcomes = ("revenue", "new_customers") if has_new else ("revenue",)
    problems = [
        f"cell ({c}, {s}): {reason}"
        for (c, s), g in groups
        for reason in dict.fromkeys(  # unique, in order: period and spend reasons repeat
            _data_problem(g["spend"].to_numpy(), g[o].to_numpy(), o) for o in outcomes
        )
        if reason
    ]
    if problems:
        raise FitError("cannot fit curves:\n  " + "\n  ".join(problems))
    cells = []
    for (c, s), g in groups:
        spend = g["spend"].to_numpy()
        where = f"cell ({c}, {s})"
        revenue = fit_response(spend, g["revenue"].to_numpy(), holdout=holdout, families=families,
                               where=f"{where}.revenue")
        acquisitions = None
        if has_new:
            acquisitions = fit_response(spend, g["new_customers"].to_numpy(), holdout=holdout,
                                        families=families, where=f"{where}.acquisitions")
        cells.append(CellFit(
            category=str(c), segment=str(s), revenue=revenue, acquisitions=acquisitions,
            n_periods=len(g), holdout_periods=_holdout_size(len(g), holdout),
            mean_spend=float(spend.mean()), last_spend=float(spend[-1]),
        ))
    return FitResult(tuple(cells), families, holdout, time.perf_counter() - started)


def fit_response(
    spend: ArrayLike,
    outcome: ArrayLike,
    *,
    holdout: int = DEFAULT_HOLDOUT,
    families: Sequence[str] = DEFAULT_FAMILIES,
    where: str = "curve",
) -> OutcomeFit:
    """Fit one concave curve ``outcome ~ f(spend)`` from time-ordered observations.

    Parameters
    ----------
    spend, outcome
        Equal-length 1-d arrays, oldest first; spend >= 0 (currency per period), outcome >= 0.
    holdout, families
        As in :func:`fit_curves`.
    where
        Names the curve in error messages and in the returned curve's validation.

    Raises
    ------
    FitError
        For fewer than :data:`MIN_PERIODS` observations, constant spend, an all-zero outcome,
        or when no family could be fitted.
    """
    families = _check_options(holdout, families)
    x = np.asarray(spend, dtype=np.float64)
    y = np.asarray(outcome, dtype=np.float64)
    if x.shape != y.shape or x.ndim != 1:
        raise ValueError(f"{where}: spend and outcome must be 1-d arrays of equal length")
    if not (np.all(np.isfinite(x)) and np.all(np.isfinite(y)) and x.min() >= 0 and y.min() >= 0):
        raise FitError(f"{where}: spend and outcome must be finite and >= 0")
    reason = _data_problem(x, y, "outcome")
    if reason:
        raise FitError(f"{where}: {reason}")
    x_unit, y_unit = float(x.mean()), float(y.mean())
    u, v = x / x_unit, y / y_unit
    n_hold = _holdout_size(len(x), holdout)
    train = slice(0, len(x) - n_hold)
    test = slice(len(x) - n_hold, len(x))

    candidates: dict[str, float] = {}
    trained: dict[str, tuple[np.ndarray, float, float]] = {}
    for family in families:
        theta = _fit_family(family, u[train], v[train], starts=1)
        if theta is None:
            candidates[family] = math.inf
            continue
        predicted = _model(family)(theta, u[test]) * y_unit
        mape, wape = _errors(predicted, y[test])
        candidates[family] = wape
        trained[family] = (theta, mape, float(np.abs(predicted - y[test]).sum()))
    if not trained:
        raise FitError(f"{where}: no family could be fitted ({', '.join(families)})")
    best = min(trained, key=lambda f: (trained[f][2], families.index(f)))
    theta = _fit_family(best, u, v, extra_start=trained[best][0])
    if theta is None:
        raise FitError(f"{where}: refitting {best} on all periods failed")
    params = {**_SPACES[best].params(theta), **_FIXED.get(best, {})}
    unit_curve = Curve.parametric(best, where=where, **params)
    return OutcomeFit(
        curve=_to_money_units(unit_curve, x_unit, y_unit),
        family=best,
        holdout_mape=trained[best][1],
        holdout_wape=candidates[best],
        candidates=candidates,
    )


# --------------------------------------------------------------------------------------------
# Internals
# --------------------------------------------------------------------------------------------


def _check_options(holdout: int, families: Sequence[str]) -> tuple[str, ...]:
    if isinstance(holdout, bool) or not isinstance(holdout, (int, np.integer)) or holdout < 1:
        raise ValueError(f"holdout must be an integer >= 1, got {holdout!r}")
    fams = tuple(families)
    unknown = [f for f in fams if f not in _SPACES]
    if not fams or unknown or len(set(fams)) != len(fams):
        raise ValueError(
            f"families must be distinct names among {', '.join(DEFAULT_FAMILIES)}; got {list(fams)}"
        )
    return fams


def _holdout_size(n: int, holdout: int) -> int:
    return max(1, min(holdout, n // 3))


def _data_problem(spend: np.ndarray, outcome: np.ndarray, name: str) -> str | None:
    """Why these data cannot support a fit, or None."""
    n = len(spend)
    if n < MIN_PERIODS:
        return f"only {n} period(s); at least {MIN_PERIODS} are needed to fit and hold out"
    if np.ptp(spend) <= 1e-9 * max(float(np.abs(spend).max()), 1.0):
        return (
            f"spend is constant ({float(spend[0]):g} in all {n} periods); "
            "the curve is not identifiable"
        )
    if not np.any(outcome > 0):
        return f"{name} is zero in all {n} periods"
    return None


def _errors(predicted: np.ndarray, actual: np.ndarray) -> tuple[float, float]:
    """(MAPE over positive actuals, WAPE); NaN where undefined."""
    err = np.abs(predicted - actual)
    positive = actual > 0
    mape = float(np.mean(err[positive] / actual[positive])) if positive.any() else math.nan
    total = float(np.abs(actual).sum())
    wape = float(err.sum() / total) if total > 0 else math.nan
    return mape, wape


def _model(family: str) -> Callable[[np.ndarray, np.ndarray], np.ndarray]:
    """``theta, u -> f(u)`` in normalized units, using the curve module's own formulas."""
    space, fixed, value = _SPACES[family], _FIXED.get(family, {}), PARAMETRIC_FAMILIES[family].value

    def f(theta: np.ndarray, u: np.ndarray) -> np.ndarray:
        return value(u, {**space.params(theta), **fixed})

    return f


def _loglog(u: np.ndarray, v: np.ndarray) -> tuple[float, float, float]:
    """Elasticity, level at u = 1 and robust relative noise from a log-log line (positive data)."""
    ok = (u > 0) & (v > 0)
    if ok.sum() < 3 or np.ptp(u[ok]) == 0:
        return 0.5, float(v.mean()), 0.25
    lu, lv = np.log(u[ok]), np.log(v[ok])
    slope, intercept = np.polyfit(lu, lv, 1)
    resid = lv - (intercept + slope * lu)
    sigma = 1.4826 * float(np.median(np.abs(resid - np.median(resid))))
    return float(slope), math.exp(intercept), sigma


def _starts(family: str, elasticity: float, level: float) -> list[dict[str, float]]:
    """Starting parameters through (1, level) at the data's elasticity and a more saturated one."""
    lo, hi = _ELASTICITY_START
    e = min(max(elasticity, lo), hi)
    if family == "power":
        return [params_through(family, 1.0, level, e)]
    out = []
    for e_start in (e, max(lo, e / 2.0)):
        slope = min(1.0, max(_HILL_SLOPE[0] * 2, e_start + 0.3)) if family == "hill" else None
        out.append(params_through(family, 1.0, level, e_start, slope=slope))
    return out


def _fit_family(
    family: str,
    u: np.ndarray,
    v: np.ndarray,
    *,
    starts: int | None = None,
    extra_start: np.ndarray | None = None,
) -> np.ndarray | None:
    """Best bounded robust least-squares ``theta`` over the first ``starts`` standard starting
    points (all if None) and ``extra_start``; None if every start fails.

    The robust loss switches from quadratic to linear at twice the data's own noise level
    (relative, from the log-log line), which is about the residual scale in normalized units.
    """
    space, model = _SPACES[family], _model(family)
    elasticity, level, sigma = _loglog(u, v)
    f_scale = max(2.0 * sigma, 0.02)
    standard = _starts(family, elasticity, level)[:starts]
    thetas = [space.theta({**p, **_FIXED.get(family, {})}) for p in standard]
    if extra_start is not None:
        thetas.append(extra_start)
    best: tuple[float, np.ndarray] | None = None
    for theta0 in thetas:
        with np.errstate(all="ignore"):
            try:
                sol = least_squares(
                    lambda t: model(t, u) - v, theta0, bounds=(space.lower, space.upper),
                    loss="soft_l1", f_scale=f_scale, method="trf",
                )
            except (ValueError, FloatingPointError):
                continue
        usable = np.all(np.isfinite(sol.x)) and np.isfinite(sol.cost)
        if usable and (best is None or sol.cost < best[0]):
            best = (float(sol.cost), sol.x)
    return None if best is None else best[1]


def _to_money_units(unit_curve: Curve, x_unit: float, y_unit: float) -> Curve:
    """``y_unit * f(x / x_unit)`` for a curve ``f`` fitted on spend / x_unit and outcome / y_unit.

    ``time_scaled(k)`` is ``k f(x / k)`` (exact, same family); scaling its output by
    ``y_unit / x_unit`` gives the curve in money units.
    """
    return unit_curve.time_scaled(x_unit).scaled(y_unit / x_unit)
