"""Fit report: per-cell plot data (data points, fitted curve, interval bands) and plotly figures.

:func:`cell_plot_data` returns plain data (pandas frames and numbers) for any front end;
:func:`cell_figure` and :func:`report_figures` build plotly figures from it when plotly is
installed (imported lazily, so the rest of :mod:`forecasting` never needs it). The tables are
:meth:`forecasting.results.FitResult.table` (per-cell diagnostics) and
:meth:`~forecasting.results.FitResult.backtest` (against the naive baselines).

What a cell's plot shows, for one outcome, all at the level of an *average* period (seasonality
and trend divided out, so points from December and July are comparable with one curve):

- ``points``: each observed period's spend (effective spend if the fit uses carry-over) and
  outcome, raw and period-adjusted (``adjusted = outcome / factor``);
- ``curve``: the fitted curve on a spend grid with two bands at the fit's level: ``lower`` /
  ``upper`` for the curve itself (its samples: parameter uncertainty) and ``pred_lower`` /
  ``pred_upper`` for a new period's outcome (samples and noise).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from forecasting.carryover import geometric_adstock
from forecasting.cells import CellKey
from forecasting.intervals import noise_draws, quantile_band
from forecasting.results import FitResult

#: Grid points of a plotted curve, and its reach as a multiple of the highest observed spend.
PLOT_POINTS = 60
PLOT_REACH = 1.5


@dataclass(frozen=True)
class CellPlotData:
    """Everything one cell's fit plot needs (see the module docstring).

    Attributes
    ----------
    info
        ``category``, ``segment``, ``outcome``, ``family`` (the choice), ``curve_family``,
        ``status`` (``fitted`` / ``pooled``), ``pooling_weight``, ``holdout_mape``,
        ``holdout_wape``, ``coverage``, ``level``, ``sigma``, ``flags`` (list of texts).
    points
        Columns ``period`` (``YYYY-MM``), ``spend``, ``observed``, ``factor``, ``adjusted``.
    curve
        Columns ``spend``, ``fitted``, ``lower``, ``upper``, ``pred_lower``, ``pred_upper``.
    """

    info: dict[str, Any]
    points: pd.DataFrame = field(repr=False)
    curve: pd.DataFrame = field(repr=False)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form: ``info`` plus ``points`` and ``curve`` as lists of records."""
        return {"info": self.info, "points": self.points.to_dict("records"),
                "curve": self.curve.to_dict("records")}


def cell_plot_data(fit: FitResult, key: CellKey, outcome: str = "revenue", *,
                   level: float | None = None, seed: int = 0) -> CellPlotData:
    """Plot data of one cell's ``outcome`` (``"revenue"`` or ``"new_customers"``).

    Raises
    ------
    KeyError
        For a cell that was not fitted, or an outcome the history does not have.
    """
    if fit.panel is None:
        raise ValueError("this FitResult carries no history panel (build it with fit_curves)")
    cell = fit[key]
    out = cell.outcome(outcome)
    if out is None:
        raise KeyError(f"cell {key} has no {outcome!r} fit")
    lvl = fit.level if level is None else level
    panel = fit.panel
    row = panel.keys.index(tuple(key))
    obs = panel.observed[row]
    effects = fit.effects.get(outcome)
    factor = effects.factors(panel.periods) if effects is not None else np.ones(panel.n_periods)
    spend = geometric_adstock(panel.spend[row:row + 1], panel.observed[row:row + 1],
                              fit.carryover.get(outcome, 0.0))[0]
    observed = panel.outcomes[outcome][row]
    points = pd.DataFrame({
        "period": [str(p) for p in panel.periods[obs]], "spend": spend[obs],
        "observed": observed[obs], "factor": factor[obs], "adjusted": observed[obs] / factor[obs],
    })
    grid = np.linspace(0.0, PLOT_REACH * max(float(spend[obs].max()), 1e-9), PLOT_POINTS + 1)
    draws = out.samples.draws(grid)
    lo, hi = quantile_band(draws, lvl)
    plo, phi = quantile_band(noise_draws(draws, out.sigma, np.random.default_rng(seed)), lvl)
    curve = pd.DataFrame({"spend": grid, "fitted": out.curve.value(grid), "lower": lo, "upper": hi,
                          "pred_lower": plo, "pred_upper": phi})
    info = {
        "category": cell.category, "segment": cell.segment, "outcome": outcome,
        "family": out.describe(), "curve_family": out.curve.family,
        "status": "pooled" if out.pooled else "fitted", "pooling_weight": out.pooling_weight,
        "holdout_mape": _num(out.holdout_mape), "holdout_wape": _num(out.holdout_wape),
        "coverage": _num(out.coverage), "level": lvl, "sigma": out.sigma,
        "flags": list(cell.flags + out.flags) + [f"pooled: {r}" for r in cell.reasons],
    }
    return CellPlotData(info, points, curve)


def _num(value: float) -> float | None:
    return None if value is None or not math.isfinite(value) else float(value)


# --------------------------------------------------------------------------------------------
# plotly (optional)
# --------------------------------------------------------------------------------------------


def plotly_available() -> bool:
    """True when plotly can be imported."""
    try:
        import plotly.graph_objects  # noqa: F401
    except ImportError:
        return False
    return True


def cell_figure(fit: FitResult, key: CellKey, outcome: str = "revenue", *, level: float | None = None):
    """A plotly figure of one cell: period-adjusted data points, fitted curve, both bands.

    Raises
    ------
    ImportError
        When plotly is not installed.
    """
    import plotly.graph_objects as go

    data = cell_plot_data(fit, key, outcome, level=level)
    c, p, info = data.curve, data.points, data.info
    pct = f"{info['level'] * 100:.0f} %"
    fig = go.Figure()
    fig.add_trace(go.Scatter(x=np.concatenate([c["spend"], c["spend"][::-1]]),
                             y=np.concatenate([c["pred_upper"], c["pred_lower"][::-1]]),
                             fill="toself", line={"width": 0}, fillcolor="rgba(31,119,180,0.12)",
                             name=f"{pct} prediction interval", hoverinfo="skip"))
    fig.add_trace(go.Scatter(x=np.concatenate([c["spend"], c["spend"][::-1]]),
                             y=np.concatenate([c["upper"], c["lower"][::-1]]),
                             fill="toself", line={"width": 0}, fillcolor="rgba(31,119,180,0.30)",
                             name=f"{pct} curve band", hoverinfo="skip"))
    fig.add_trace(go.Scatter(x=c["spend"], y=c["fitted"], mode="lines", name=info["family"],
                             line={"color": "rgb(31,119,180)"}))
    fig.add_trace(go.Scatter(x=p["spend"], y=p["adjusted"], mode="markers", name="history (period-adjusted)",
                             text=p["period"], marker={"color": "rgb(40,40,40)", "size": 6}))
    held = "n/a" if info["holdout_wape"] is None else f"{info['holdout_wape'] * 100:.1f} %"
    title = (f"{info['category']} / {info['segment']} -- {outcome}: {info['family']}"
             f" ({info['status']}; held-out WAPE {held})")
    fig.update_layout(title=title, xaxis_title="spend per period", yaxis_title=f"{outcome} per period",
                      template="plotly_white", legend={"orientation": "h", "y": -0.2})
    return fig


def report_figures(fit: FitResult, outcome: str = "revenue", *, level: float | None = None) -> dict[CellKey, Any]:
    """:func:`cell_figure` of every fitted cell, keyed by (category, segment)."""
    return {c.key: cell_figure(fit, c.key, outcome, level=level)
            for c in fit.cells if c.outcome(outcome) is not None}
