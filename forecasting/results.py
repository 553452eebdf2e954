"""What a fit returns: per-outcome fits, per-cell fits, and the whole :class:`FitResult`.

Curves are per history period (a monthly history gives monthly curves: spend in currency per month
to revenue in currency per month, or new customers per month) for an *average* period at the level
of the end of the history: seasonality and trend are in :attr:`FitResult.effects`, and
:meth:`FitResult.plan_curves` applies them to the plan's periods.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from forecasting.cells import CellCurves, CellKey
from forecasting.curves import Curve
from forecasting.intervals import CurveSamples, noise_draws, quantile_band
from forecasting.panel import Panel
from forecasting.seasonality import PeriodEffects

#: Outcome column of the history -> attribute of :class:`CellFit`.
OUTCOME_ATTRIBUTES: dict[str, str] = {"revenue": "revenue", "new_customers": "acquisitions"}


@dataclass(frozen=True)
class OutcomeFit:
    """The fitted curve of one outcome of one cell, with its diagnostics.

    Attributes
    ----------
    curve
        The curve that goes into the problem file (money units, per period, average period).
        A parametric family, a posterior-sample curve of one family (bootstrap with
        ``combine="select"``), or a concave ``pwl`` (an average of families, or nonparametric).
    family
        What was chosen: a family name, ``"average"`` (the weighted average of
        the families in :attr:`weights`), ``"isotonic"`` or ``"lightgbm"``.
    weights
        Member -> weight of the curve (1.0 on a single chosen member).
    candidates
        Held-out WAPE of every candidate (families and nonparametric routes) on the rolling-origin
        folds (``nan`` where it could not predict); empty for pooled cells.
    holdout_mape, holdout_wape
        Held-out errors of the chosen combination on the rolling-origin folds (fractions; NaN
        for pooled cells, which have too few periods for CV).
    coverage
        Share of held-out observations inside their prediction interval at the fit's level.
    baselines
        Held-out WAPE of the naive forecasts on the same folds: ``last_roi`` (spend x the last
        training period's return on spend) and ``average_roi``.
    sigma
        Residual noise scale (log units, about the relative noise).
    pooled
        True when the curve was fitted with a prior from its category and segment.
    pooling_weight, level_pooling_weight
        Share of the information on the elasticity / the return on spend at the mean spend
        that comes from that prior (0 when not pooled, 1 when the data say nothing).
    samples
        Sampled versions of the curve (money units), behind every interval.
    flags
        Warnings about this outcome's data (outlier periods down-weighted by the robust loss).
    holdout_totals
        Method (``curves``, ``last_roi``, ``average_roi``) -> (sum of absolute held-out errors,
        sum of held-out outcomes), for pooled backtests over cells.
    """

    curve: Curve
    family: str
    weights: Mapping[str, float]
    candidates: Mapping[str, float]
    holdout_mape: float
    holdout_wape: float
    coverage: float
    baselines: Mapping[str, float]
    sigma: float
    pooled: bool
    pooling_weight: float
    level_pooling_weight: float
    samples: CurveSamples = field(repr=False)
    flags: tuple[str, ...] = ()
    holdout_totals: Mapping[str, tuple[float, float]] = field(default_factory=dict, repr=False)

    def describe(self) -> str:
        """Short text of the choice, e.g. ``average(log 0.41, hill 0.33, power 0.26)``."""
        if self.family != "average":
            return self.family
        parts = sorted(self.weights.items(), key=lambda kv: -kv[1])
        return "average(" + ", ".join(f"{k} {v:.2f}" for k, v in parts if v > 0) + ")"


@dataclass(frozen=True)
class CellFit:
    """Fitted curves and diagnostics of one (category, segment) cell.

    Attributes
    ----------
    category, segment
        The cell.
    revenue, acquisitions
        Revenue fit; new-customer fit (None when the history has no ``new_customers``).
    n_periods
        Observed periods of the cell.
    holdout_periods
        Periods of the rolling-origin test blocks (0 for pooled cells).
    mean_spend, last_spend
        Mean spend and the last observed period's spend (currency per period).
    route
        ``"fit"`` (own curve) or ``"pool"`` (borrows from category and segment).
    reasons, flags
        Why the cell is pooled; warnings about its data (gaps, zero outcomes).
    """

    category: str
    segment: str
    revenue: OutcomeFit
    acquisitions: OutcomeFit | None
    n_periods: int
    holdout_periods: int
    mean_spend: float
    last_spend: float
    route: str = "fit"
    reasons: tuple[str, ...] = ()
    flags: tuple[str, ...] = ()

    @property
    def key(self) -> CellKey:
        return (self.category, self.segment)

    def outcome(self, name: str) -> OutcomeFit | None:
        """The fit of ``"revenue"`` or ``"new_customers"``."""
        return getattr(self, OUTCOME_ATTRIBUTES[name])


@dataclass(frozen=True)
class RefusedCell:
    """A cell that gets no curve, and why (each reason is a full sentence fragment)."""

    category: str
    segment: str
    reasons: tuple[str, ...]

    @property
    def key(self) -> CellKey:
        return (self.category, self.segment)


@dataclass(frozen=True)
class FitResult:
    """Fitted curves of every cell, in (category, segment) order, with diagnostics.

    ``curves`` maps ``(category, segment)`` to :class:`~forecasting.cells.CellCurves`;
    ``result[(category, segment)]`` is that cell's :class:`CellFit`; :meth:`table` gives one
    diagnostics row per cell (refused cells included, with their reason) and :meth:`backtest`
    the overall held-out comparison with the naive baselines.

    Attributes
    ----------
    cells
        One :class:`CellFit` per fitted cell.
    refused
        Cells without a curve (only when ``fit_curves(strict=False)``).
    families
        Candidate families.
    options
        The options of the fit (``combine``, ``cv_folds``, ``seasonality``, ``bootstrap``, ...).
    effects
        Outcome -> :class:`~forecasting.seasonality.PeriodEffects`.
    carryover
        Outcome -> geometric carry-over used (0 = none).
    level
        Nominal level of the prediction intervals.
    seconds
        Wall time of the fit.
    panel
        The history on the cell x period grid (for plots and backtests).
    """

    cells: tuple[CellFit, ...]
    families: tuple[str, ...]
    seconds: float
    refused: tuple[RefusedCell, ...] = ()
    options: Mapping[str, Any] = field(default_factory=dict)
    effects: Mapping[str, PeriodEffects] = field(default_factory=dict)
    carryover: Mapping[str, float] = field(default_factory=dict)
    level: float = 0.8
    panel: Panel | None = field(default=None, repr=False)

    # --- access -------------------------------------------------------------------------
    @property
    def curves(self) -> dict[CellKey, CellCurves]:
        """``(category, segment) -> CellCurves`` per history period (average period)."""
        return {
            c.key: CellCurves(c.revenue.curve, c.acquisitions.curve if c.acquisitions else None)
            for c in self.cells
        }

    @property
    def holdout(self) -> int:
        """Largest number of held-out (rolling-origin test) periods of a cell."""
        return max((c.holdout_periods for c in self.cells), default=0)

    def __getitem__(self, key: CellKey) -> CellFit:
        for cell in self.cells:
            if cell.key == tuple(key):
                return cell
        raise KeyError(key)

    def __iter__(self) -> Iterator[CellFit]:
        return iter(self.cells)

    def __len__(self) -> int:
        return len(self.cells)

    # --- plan curves ----------------------------------------------------------------------
    def period_factor(self, outcome: str, plan_periods: Sequence[str] | pd.PeriodIndex | None) -> float:
        """Average period factor of ``outcome`` over the plan's periods (1 when not given)."""
        if plan_periods is None or outcome not in self.effects:
            return 1.0
        return self.effects[outcome].mean_factor(pd.PeriodIndex(list(plan_periods), freq="M"))

    def plan_curves(self, periods: float, plan_periods: Sequence[str] | None = None) -> dict[CellKey, CellCurves]:
        """Curves of a plan covering ``periods`` history periods with spend spread evenly.

        A cell's plan curve is ``factor x periods x r(x / periods)`` (exact, same family), with
        ``factor`` the average period factor (seasonality and trend) of ``plan_periods``
        (``YYYY-MM`` labels); without ``plan_periods`` the factor is 1 (an average period at
        the level of the end of the history).
        """
        f_rev = self.period_factor("revenue", plan_periods)
        f_new = self.period_factor("new_customers", plan_periods)
        out = {}
        for c in self.cells:
            revenue = c.revenue.curve.time_scaled(periods)
            revenue = revenue.scaled(f_rev) if f_rev != 1.0 else revenue
            acq = None
            if c.acquisitions is not None:
                acq = c.acquisitions.curve.time_scaled(periods)
                acq = acq.scaled(f_new) if f_new != 1.0 else acq
            out[c.key] = CellCurves(revenue, acq)
        return out

    # --- predictions ---------------------------------------------------------------------
    def predict(
        self,
        spend: Mapping[CellKey, float],
        *,
        periods: int = 1,
        plan_periods: Sequence[str] | None = None,
        level: float | None = None,
        seed: int = 0,
    ) -> pd.DataFrame:
        """Predicted revenue and new customers of a plan, with prediction intervals.

        Parameters
        ----------
        spend
            Plan spend per cell over the whole plan (currency), spread evenly over ``periods``
            periods; cells not listed spend 0.
        periods
            Periods the plan covers (ignored when ``plan_periods`` is given: its length).
        plan_periods
            ``YYYY-MM`` labels of the plan's periods (seasonality and trend apply); default:
            ``periods`` average periods at the level of the end of the history.
        level
            Nominal interval level (default: the fit's).
        seed
            Seed of the noise draws.

        Returns
        -------
        pandas.DataFrame
            One row per cell plus a ``("total", "total")`` row, with ``spend`` and per outcome
            ``<outcome>``, ``<outcome>_lower``, ``<outcome>_upper`` (mean and interval of the
            plan's total over its periods). The total's interval comes from summed draws.
        """
        lvl = self.level if level is None else level
        labels = list(plan_periods) if plan_periods is not None else None
        n = len(labels) if labels else int(periods)
        rng = np.random.default_rng(seed)
        rows = []
        totals: dict[str, np.ndarray] = {}
        for c in self.cells:
            x = float(spend.get(c.key, 0.0)) / n
            row: dict[str, Any] = {"category": c.category, "segment": c.segment, "spend": x * n}
            for name, attr in OUTCOME_ATTRIBUTES.items():
                fit = getattr(c, attr)
                if fit is None:
                    continue
                factors = self._factors(name, labels, n)
                center = fit.samples.draws(np.array([x]))[:, 0]          # (S,)
                draws = noise_draws(center[:, None] * factors[None, :], fit.sigma, rng).sum(axis=1)
                lo, hi = quantile_band(draws, lvl)
                row |= {name: float(fit.curve.value(x) * factors.sum()),
                        f"{name}_lower": float(lo), f"{name}_upper": float(hi)}
                totals[name] = totals.get(name, 0.0) + draws
            rows.append(row)
        total: dict[str, Any] = {"category": "total", "segment": "total",
                                 "spend": float(sum(r["spend"] for r in rows))}
        for name, draws in totals.items():
            lo, hi = quantile_band(np.asarray(draws), lvl)
            total |= {name: float(sum(r[name] for r in rows)), f"{name}_lower": float(lo),
                      f"{name}_upper": float(hi)}
        return pd.DataFrame(rows + [total])

    def _factors(self, outcome: str, labels: list[str] | None, n: int) -> np.ndarray:
        if labels is None or outcome not in self.effects:
            return np.ones(n)
        return self.effects[outcome].factors(pd.PeriodIndex(labels, freq="M"))

    # --- reports -------------------------------------------------------------------------
    def table(self) -> pd.DataFrame:
        """Diagnostics per cell (refused cells last, with their reason).

        Columns: ``category``, ``segment``, ``n_periods``, ``holdout_periods``, ``mean_spend``,
        ``last_spend``, ``status`` (``fitted``, ``pooled`` or ``refused``), ``reason`` (why pooled
        or refused), ``flags``; then per outcome (prefix ``revenue_`` and ``acquisitions_``):
        ``family`` (the choice, see :meth:`OutcomeFit.describe`), ``curve_family`` (the problem
        file's family), ``holdout_mape``, ``holdout_wape``, ``coverage`` (held-out interval
        coverage at the fit's level), ``baseline_wape_last_roi``, ``baseline_wape_average_roi``,
        ``pooling_weight``, ``level_pooling_weight``, ``sigma``; and ``revenue_at_mean`` (fitted
        revenue at the mean spend), ``roi_at_mean`` (that over the mean spend),
        ``marginal_roi_at_last`` (d revenue / d spend at the last spend), ``cac_at_mean`` (mean
        spend over fitted new customers there). Rates are fractions, not percents.
        """
        rows = []
        for c in self.cells:
            row: dict[str, Any] = {
                "category": c.category, "segment": c.segment, "n_periods": c.n_periods,
                "holdout_periods": c.holdout_periods, "mean_spend": c.mean_spend,
                "last_spend": c.last_spend, "status": "pooled" if c.route == "pool" else "fitted",
                "reason": "; ".join(c.reasons),
                "flags": "; ".join(c.flags + c.revenue.flags
                                   + (c.acquisitions.flags if c.acquisitions else ())),
            }
            for attr in ("revenue", "acquisitions"):
                row |= _outcome_columns(attr, getattr(c, attr))
            at_mean = float(c.revenue.curve.value(c.mean_spend))
            new_at_mean = float(c.acquisitions.curve.value(c.mean_spend)) if c.acquisitions else math.nan
            row |= {
                "revenue_at_mean": at_mean,
                "roi_at_mean": at_mean / c.mean_spend if c.mean_spend > 0 else math.nan,
                "marginal_roi_at_last": float(c.revenue.curve.derivative(c.last_spend)),
                "cac_at_mean": c.mean_spend / new_at_mean if new_at_mean > 0 else math.nan,
            }
            rows.append(row)
        for r in self.refused:
            rows.append({"category": r.category, "segment": r.segment, "status": "refused",
                         "reason": "; ".join(r.reasons)})
        return pd.DataFrame(rows)

    def backtest(self) -> pd.DataFrame:
        """Overall held-out error of the fitted curves against the naive baselines.

        Pools the rolling-origin test periods of every data-rich cell: one row per outcome and
        method (``curves``, ``last_roi``, ``average_roi``) with ``wape`` = total absolute error
        over total outcome, the median cell WAPE, the number of ``cells``, and for the curves the
        mean held-out interval ``coverage`` at the nominal ``level``.
        """
        rows = []
        for name, attr in OUTCOME_ATTRIBUTES.items():
            fits = [getattr(c, attr) for c in self.cells if getattr(c, attr) is not None]
            fits = [f for f in fits if f.holdout_totals]
            if not fits:
                continue
            for method in ("curves", "last_roi", "average_roi"):
                err = np.array([f.holdout_totals.get(method, (math.nan, math.nan))[0] for f in fits])
                tot = np.array([f.holdout_totals.get(method, (math.nan, math.nan))[1] for f in fits])
                ok = np.isfinite(err) & np.isfinite(tot) & (tot > 0)
                curves = method == "curves"
                rows.append({
                    "outcome": name, "method": method, "cells": int(ok.sum()),
                    "wape": float(err[ok].sum() / tot[ok].sum()) if ok.any() else math.nan,
                    "median_cell_wape": float(np.median(err[ok] / tot[ok])) if ok.any() else math.nan,
                    "coverage": float(np.nanmean([f.coverage for f in fits])) if curves else math.nan,
                    "level": self.level if curves else math.nan,
                })
        return pd.DataFrame(rows)


def _outcome_columns(prefix: str, fit: OutcomeFit | None) -> dict[str, Any]:
    if fit is None:
        return {f"{prefix}_family": None, f"{prefix}_curve_family": None,
                f"{prefix}_holdout_mape": math.nan, f"{prefix}_holdout_wape": math.nan,
                f"{prefix}_coverage": math.nan, f"{prefix}_baseline_wape_last_roi": math.nan,
                f"{prefix}_baseline_wape_average_roi": math.nan, f"{prefix}_pooling_weight": math.nan,
                f"{prefix}_level_pooling_weight": math.nan, f"{prefix}_sigma": math.nan}
    return {
        f"{prefix}_family": fit.describe(),
        f"{prefix}_curve_family": fit.curve.family,
        f"{prefix}_holdout_mape": fit.holdout_mape,
        f"{prefix}_holdout_wape": fit.holdout_wape,
        f"{prefix}_coverage": fit.coverage,
        f"{prefix}_baseline_wape_last_roi": fit.baselines.get("last_roi", math.nan),
        f"{prefix}_baseline_wape_average_roi": fit.baselines.get("average_roi", math.nan),
        f"{prefix}_pooling_weight": fit.pooling_weight,
        f"{prefix}_level_pooling_weight": fit.level_pooling_weight,
        f"{prefix}_sigma": fit.sigma,
    }
