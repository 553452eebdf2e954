"""Period effects: yearly seasonality and trend, common to all cells of an outcome.

An observed outcome is modelled as ``curve(spend) x factor(period) x noise`` with::

    log factor(t) = season[month or quarter of t] + trend * (t - t_ref) / 12

``t_ref`` is the history's last period, so the fitted curves are the response of an *average
month at the level of the end of the history*; ``season`` is normalized so that the factors of the
twelve months (or four quarters) average to 1 (arithmetic mean). The effects are shared by all
cells of one outcome: 30 cells x 36 months give about 1000 observations for 12 numbers, where a
per-cell seasonality would have 3 per month.

:func:`estimate_period_effects` fits them to the log residuals of the current curves with cell
offsets (a robust Huber regression with a light ridge on the seasonal terms); :mod:`forecasting.fit`
alternates it with the curve fits (backfitting), which estimates curves and period effects jointly.

Examples
--------
>>> import pandas as pd
>>> fx = PeriodEffects("quarter", (0.9, 1.0, 1.0, 1.1), 0.0, pd.Period("2025-12", "M"))
>>> fx.factors(pd.period_range("2026-01", periods=3, freq="M")).round(3).tolist()
[0.9, 0.9, 0.9]
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

import numpy as np
import pandas as pd
from numpy.typing import NDArray

FloatArray = NDArray[np.float64]
SeasonKind = Literal["month", "quarter", "none"]

#: Fewest history periods for monthly seasonality (each month seen twice) and for quarterly.
MIN_PERIODS_MONTH = 24
MIN_PERIODS_QUARTER = 12
#: Prior standard deviation of a log seasonal effect (a light ridge; 0.5 = +-65 %).
SEASON_PRIOR_SD = 0.5
_HUBER = 1.345


@dataclass(frozen=True)
class PeriodEffects:
    """Multiplicative period effects of one outcome.

    Attributes
    ----------
    kind
        ``"month"`` (12 factors, January first), ``"quarter"`` (4) or ``"none"``.
    season
        The factors, arithmetic mean 1 (empty for ``"none"``).
    trend
        Log growth per year (0.05 is about +5 % a year).
    reference
        The period at which the trend factor is 1 (the history's last period).
    """

    kind: SeasonKind
    season: tuple[float, ...]
    trend: float
    reference: pd.Period

    @classmethod
    def neutral(cls, reference: pd.Period) -> PeriodEffects:
        """No seasonality and no trend (every factor 1)."""
        return cls("none", (), 0.0, reference)

    def factors(self, periods: pd.PeriodIndex | Sequence[pd.Period]) -> FloatArray:
        """Factor of each period (shape (len(periods),)); periods may lie in the future."""
        idx = pd.PeriodIndex(periods, freq="M")
        out = np.exp(self.trend * (idx.asi8 - self.reference.ordinal) / 12.0)
        if self.kind == "month":
            out = out * np.asarray(self.season)[idx.month - 1]
        elif self.kind == "quarter":
            out = out * np.asarray(self.season)[idx.quarter - 1]
        return out

    def mean_factor(self, periods: pd.PeriodIndex | Sequence[pd.Period]) -> float:
        """Average factor over ``periods``: scales a per-period curve to those periods."""
        return float(self.factors(periods).mean())

    def describe(self) -> str:
        """One line for reports, e.g. ``month: Jan 0.95 ... Dec 1.10; trend +2.0 %/year``."""
        if self.kind == "month":
            labels = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct",
                      "Nov", "Dec")
        else:
            labels = ("Q1", "Q2", "Q3", "Q4")
        season = ", ".join(f"{lab} {v:.3f}" for lab, v in zip(labels, self.season))
        growth = math.expm1(self.trend) * 100.0
        return f"{self.kind}{': ' + season if season else ''}; trend {growth:+.1f} %/year"


def season_kind(n_periods: int, requested: str) -> SeasonKind:
    """Resolve ``"auto"`` to the richest seasonality the history length supports.

    >>> season_kind(36, "auto"), season_kind(18, "auto"), season_kind(8, "auto")
    ('month', 'quarter', 'none')
    """
    if requested not in ("auto", "month", "quarter", "none"):
        raise ValueError(f"seasonality must be 'auto', 'month', 'quarter' or 'none', got {requested!r}")
    if requested != "auto":
        return requested  # type: ignore[return-value]
    if n_periods >= MIN_PERIODS_MONTH:
        return "month"
    if n_periods >= MIN_PERIODS_QUARTER:
        return "quarter"
    return "none"


def estimate_period_effects(
    log_residual: FloatArray,
    weight: FloatArray,
    periods: pd.PeriodIndex,
    kind: SeasonKind,
    trend: bool,
) -> PeriodEffects:
    """Fit season and trend to log residuals ``log(outcome) - log(curve(spend))``.

    Parameters
    ----------
    log_residual
        (C, T) residuals of the current curves (without period effects), log units.
    weight
        (C, T) weights >= 0 (0 where not observed or the outcome is 0).
    periods
        The T periods.
    kind
        Seasonality to fit (``"none"`` fits only the trend, if asked).
    trend
        Fit a log-linear trend.

    Returns
    -------
    PeriodEffects
        With ``reference = periods[-1]``. Each cell gets its own offset (absorbing any level
        error of its curve), so the effects only describe changes over time.
    """
    reference = periods[-1]
    n_cells, n_periods = log_residual.shape
    groups = _season_index(periods, kind)
    n_season = 0 if groups is None else (12 if kind == "month" else 4)
    cols = n_cells + n_season + (1 if trend else 0)
    if n_season == 0 and not trend:
        return PeriodEffects.neutral(reference)
    cell_idx = np.repeat(np.arange(n_cells), n_periods)
    time_idx = np.tile(np.arange(n_periods), n_cells)
    y = log_residual.ravel()
    w = weight.ravel().astype(float)
    keep = w > 0
    design = np.zeros((y.size, cols))
    design[np.arange(y.size), cell_idx] = 1.0
    if groups is not None:
        design[np.arange(y.size), n_cells + groups[time_idx]] = 1.0
    years = (periods.asi8 - reference.ordinal) / 12.0
    if trend:
        design[:, -1] = years[time_idx]
    design, y, w = design[keep], y[keep], w[keep]
    ridge = np.zeros(cols)
    if n_season:
        scale = _robust_scale(y - np.median(y))
        ridge[n_cells:n_cells + n_season] = (scale / SEASON_PRIOR_SD) ** 2
    # sum-to-zero is imposed after the fit by moving the seasonal mean into the cell offsets
    coef = _huber_regression(design, y, w, ridge)
    season: tuple[float, ...] = ()
    if n_season:
        effects = coef[n_cells:n_cells + n_season]
        factors = np.exp(effects)
        factors /= factors.mean()
        season = tuple(float(v) for v in factors)
    slope = float(coef[-1]) if trend else 0.0
    return PeriodEffects(kind if n_season else "none", season, slope, reference)


def _season_index(periods: pd.PeriodIndex, kind: SeasonKind) -> NDArray[np.intp] | None:
    if kind == "month":
        return np.asarray(periods.month - 1, dtype=np.intp)
    if kind == "quarter":
        return np.asarray(periods.quarter - 1, dtype=np.intp)
    return None


def _robust_scale(r: FloatArray) -> float:
    return max(1.4826 * float(np.median(np.abs(r))), 1e-6) if r.size else 1.0


def _huber_regression(design: FloatArray, y: FloatArray, w: FloatArray, ridge: FloatArray,
                      iterations: int = 8) -> FloatArray:
    """Weighted Huber regression by iteratively reweighted least squares (ridge on some terms)."""
    omega = w.copy()
    coef = np.zeros(design.shape[1])
    for _ in range(iterations):
        gram = design.T @ (design * omega[:, None]) + np.diag(ridge)
        coef = np.linalg.lstsq(gram, design.T @ (omega * y), rcond=None)[0]  # gram may be singular
        resid = y - design @ coef
        scale = _robust_scale(resid)
        z = np.abs(resid) / (_HUBER * scale)
        omega = w * np.where(z <= 1.0, 1.0, 1.0 / np.maximum(z, 1e-12))
    return coef
