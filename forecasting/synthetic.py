"""A realistic, reproducible email-marketing history with known true response curves.

Every (category, segment) cell gets a TRUE monthly revenue curve and new-customer curve from the
concave families (``log``, ``exp_saturation``, ``power``, ``michaelis_menten``, ``hill`` with
slope <= 1). Each curve passes through the cell's base monthly spend with a chosen return on spend
(revenue per dollar, 1.5-6) and elasticity; the elasticities are drawn so that about a quarter of
the cells are clearly over-invested (marginal revenue per dollar well below the average), a quarter
clearly under-invested, the rest in between. Segment acquisition costs are set against suggested
customer lifetime values so that a CLV/CAC >= 3 rule is achievable but binds: with the default
seed, ``lapsed`` (expensive to win back) breaks it by about 60 % at the status-quo spend and
``prospects`` narrowly; cutting a segment's spend lowers its acquisition cost, so the rule can be
met.

Observed month ``t`` of a cell with spend ``x_t``::

    revenue_t       = r(x_t) * season[month(t)] * trend_t * noise_t
    new_customers_t = round(q(x_t) * season[month(t)] * trend_t * noise'_t)

with ``season`` twelve fixed factors of mean 1 (Q4 peak, summer dip), ``trend_t = (1 + g) **
((t - t_mid) / 12)`` centred on the middle of the history (so the true curves are the
average-month, mid-history level), and mean-one log-normal noise. Spend varies log-normally
around the base (independently of the season, so the season does not bias a fit that ignores it).
Money is in currency units per month; the curves are per month (one history period).

Deterministic for a given seed: the curves depend on the seed only, the spend path on the seed
and the number of months, and the noise on all the settings. Run
``python -m forecasting.synthetic --out DIR`` to write ``email_history.csv`` and
``true_curves.json``.
"""

from __future__ import annotations

import argparse
import json
import math
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np
import pandas as pd

from forecasting.cells import CellCurves, CellKey
from forecasting.curves import Curve
from forecasting.history import validate_history
from forecasting.shapes import SHAPE_FAMILIES, params_through

HISTORY_FILE = "email_history.csv"
TRUTH_FILE = "true_curves.json"


class Category(NamedTuple):
    """Budget category profile: share of the budget and multipliers on the segment profile."""

    budget_share: float
    roi_factor: float        # multiplies the segment's revenue per dollar
    cac_factor: float        # multiplies the segment's cost per acquisition
    labor_share: float       # part of spend that is labor (the rest vendor/media)
    email_share: float       # part of the segment's sends driven by this category


class Segment(NamedTuple):
    """Customer segment profile (money in currency units, per month)."""

    budget_share: float
    roi: float               # typical revenue per dollar at base spend
    cac: float               # typical spend per new customer at base spend
    clv: float               # suggested customer lifetime value
    order_value: float       # average revenue per conversion
    list_size: int           # subscribers on the list


CATEGORIES: dict[str, Category] = {
    "technology": Category(0.15, 1.00, 1.15, 0.30, 0.25),
    "content_creation": Category(0.20, 1.10, 1.00, 0.70, 0.30),
    "list_management": Category(0.10, 1.20, 1.10, 0.40, 0.15),
    "human_resources": Category(0.15, 0.90, 1.30, 0.95, 0.10),
    "advertising": Category(0.28, 0.80, 0.75, 0.10, 0.05),
    "testing_optimization": Category(0.12, 1.30, 1.00, 0.60, 0.15),
}
SEGMENTS: dict[str, Segment] = {
    "new_subscribers": Segment(0.24, 3.0, 45.0, 180.0, 55.0, 150_000),
    "active_customers": Segment(0.26, 4.0, 90.0, 360.0, 85.0, 400_000),
    "vip": Segment(0.14, 5.0, 160.0, 600.0, 160.0, 30_000),
    "lapsed": Segment(0.14, 2.0, 80.0, 150.0, 65.0, 250_000),
    "prospects": Segment(0.22, 2.2, 46.0, 110.0, 45.0, 200_000),
}
#: Suggested CLV/CAC ratio for the segments' acquisition rule.
CLV_CAC_RATIO = 3.0
#: Month-of-year shape of email demand (Jan..Dec), before scaling to the requested amplitude.
_SEASON_SHAPE = np.array([-0.2, -0.5, -0.1, 0.0, 0.1, -0.3, -0.6, -0.4, 0.0, 0.2, 0.8, 1.0])
#: Elasticity ranges of over-invested, balanced and under-invested cells, and their shares.
_INVESTMENT = {
    "over": ((0.12, 0.30), 0.27),
    "balanced": ((0.35, 0.55), 0.46),
    "under": ((0.65, 0.85), 0.27),
}
_ROI_RANGE = (1.5, 6.0)
_SENDS_PER_MONTH = 4.0


@dataclass(frozen=True)
class SyntheticTruth:
    """The true model behind a synthetic history.

    Attributes
    ----------
    curves
        ``(category, segment) -> CellCurves``: true revenue and new-customer curves per month, at
        the average season and the mid-history trend level.
    base_spend
        ``(category, segment) -> float``: the monthly spend the cell's spend varies around.
    seasonality
        Twelve multiplicative factors, January to December, of mean 1.
    segment_clv
        Suggested customer lifetime value per segment (use with :data:`CLV_CAC_RATIO`).
    settings
        The generator arguments (seed, months, start, noise, seasonality, trend, ...).
    """

    curves: dict[CellKey, CellCurves]
    base_spend: dict[CellKey, float]
    seasonality: tuple[float, ...]
    segment_clv: dict[str, float]
    settings: dict[str, Any]

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form; curves in problem-file form (:meth:`Curve.to_dict`)."""
        return {
            "description": (
                "True monthly response curves of a synthetic email-marketing history. Money is in "
                "currency units per month; curves are per month (one history period) at the "
                "average season and the mid-history trend level; observed outcomes are the curve "
                "times seasonality[month - 1] times the trend times noise."
            ),
            "settings": dict(self.settings),
            "seasonality": list(self.seasonality),
            "segments": {
                s: {"clv": clv, "min_clv_cac_ratio": CLV_CAC_RATIO}
                for s, clv in self.segment_clv.items()
            },
            "cells": [
                {"category": c, "segment": s, **pair.to_dict(),
                 "base_spend": self.base_spend[(c, s)]}
                for (c, s), pair in self.curves.items()
            ],
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> SyntheticTruth:
        """Inverse of :meth:`to_dict` (curves are validated by :meth:`Curve.from_dict`)."""
        curves: dict[CellKey, CellCurves] = {}
        base: dict[CellKey, float] = {}
        for i, cell in enumerate(data["cells"]):
            key = (str(cell["category"]), str(cell["segment"]))
            acq = cell.get("acquisitions")
            curves[key] = CellCurves(
                Curve.from_dict(cell["revenue"], where=f"cells[{i}].revenue"),
                None if acq is None else Curve.from_dict(acq, where=f"cells[{i}].acquisitions"),
            )
            base[key] = float(cell["base_spend"])
        return cls(
            curves=curves,
            base_spend=base,
            seasonality=tuple(float(v) for v in data["seasonality"]),
            segment_clv={s: float(v["clv"]) for s, v in data["segments"].items()},
            settings=dict(data["settings"]),
        )


# --------------------------------------------------------------------------------------------
# Generation
# --------------------------------------------------------------------------------------------


def generate_history(
    *,
    seed: int = 2024,
    months: int = 36,
    start: str = "2023-01",
    noise: float = 0.12,
    seasonality: float = 0.10,
    trend: float = 0.0,
    spend_variation: float = 0.35,
    monthly_budget: float = 200_000.0,
    extras: bool = True,
) -> tuple[pd.DataFrame, SyntheticTruth]:
    """Generate a monthly history for 6 categories x 5 segments and its true curves.

    Parameters
    ----------
    seed
        Random seed; the output is a deterministic function of all the arguments.
    months
        Number of monthly periods (>= 1), starting at ``start`` (``YYYY-MM``).
    noise
        Log-normal (mean one) multiplicative noise on revenue and new customers; 0.12 is 12 %.
    seasonality
        Amplitude of the yearly pattern: the largest factor (December) is ``1 + seasonality``;
        the factors have mean 1.
    trend
        Yearly growth of the response (0.05 = +5 % a year), centred on the middle of the history.
    spend_variation
        Log-normal spread of each month's spend around the cell's base spend (mean preserved).
    monthly_budget
        Sum of the cells' base monthly spends (currency units).
    extras
        Also emit ``emails_sent``, ``conversions``, ``cost_labor`` and ``cost_vendor``.

    Returns
    -------
    history : pandas.DataFrame
        Validated, normalized history (see :mod:`forecasting.history`), sorted by period,
        category, segment. Money is rounded to cents, counts to whole numbers.
    truth : SyntheticTruth
        The true curves, base spends, seasonality factors and suggested CLVs.
    """
    _check_settings(months, noise, seasonality, trend, spend_variation, monthly_budget)
    settings = {
        "seed": seed, "months": months, "start": start, "noise": noise, "seasonality": seasonality,
        "trend": trend, "spend_variation": spend_variation, "monthly_budget": monthly_budget,
        "extras": extras,
    }
    keys = [(c, s) for c in CATEGORIES for s in SEGMENTS]
    curve_rng, spend_rng, noise_rng = (np.random.default_rng([seed, k]) for k in range(3))
    base = _base_spend(keys, monthly_budget, curve_rng)
    curves = _true_curves(keys, base, curve_rng)
    periods = pd.period_range(pd.Period(start, freq="M"), periods=months, freq="M")
    centred = _SEASON_SHAPE - _SEASON_SHAPE.mean()
    season = 1.0 + seasonality * centred / np.abs(centred).max()
    years_from_middle = (np.arange(months) - (months - 1) / 2.0) / 12.0
    level = season[periods.month - 1] * (1.0 + trend) ** years_from_middle

    # (cells, months) arrays
    spend = np.array([base[k] for k in keys])[:, None] * _mean_one_lognormal(
        spend_rng, spend_variation, (len(keys), months)
    )
    spend = np.round(spend, 2)
    revenue = np.stack([curves[k].revenue.value(spend[i]) for i, k in enumerate(keys)])
    new = np.stack([curves[k].acquisitions.value(spend[i]) for i, k in enumerate(keys)])
    shape = (len(keys), months)
    revenue = np.round(revenue * level * _mean_one_lognormal(noise_rng, noise, shape), 2)
    new = np.rint(new * level * _mean_one_lognormal(noise_rng, noise, shape))

    frame = {
        "period": periods[np.tile(np.arange(months), len(keys))],
        "category": np.repeat([c for c, _ in keys], months),
        "segment": np.repeat([s for _, s in keys], months),
        "spend": spend.ravel(),
        "revenue": revenue.ravel(),
        "new_customers": new.ravel(),
    }
    if extras:
        frame.update(_extra_columns(keys, base, spend, revenue, noise_rng))
    history = pd.DataFrame(frame).sort_values(["period", "category", "segment"], kind="stable")
    truth = SyntheticTruth(
        curves=curves,
        base_spend=base,
        seasonality=tuple(float(v) for v in season),
        segment_clv={s: p.clv for s, p in SEGMENTS.items()},
        settings=settings,
    )
    return validate_history(history), truth


def _check_settings(
    months: int,
    noise: float,
    seasonality: float,
    trend: float,
    spend_variation: float,
    monthly_budget: float,
) -> None:
    checks = {
        "months": (months, isinstance(months, int) and months >= 1, "an integer >= 1"),
        "noise": (noise, 0.0 <= noise <= 1.0, "in [0, 1]"),
        "seasonality": (seasonality, 0.0 <= seasonality < 0.9, "in [0, 0.9)"),
        "trend": (trend, -0.9 < trend < 10.0, "in (-0.9, 10)"),
        "spend_variation": (spend_variation, 0.0 < spend_variation <= 1.5, "in (0, 1.5]"),
        "monthly_budget": (
            monthly_budget, monthly_budget > 0 and math.isfinite(monthly_budget), "> 0"
        ),
    }
    for name, (value, ok, expected) in checks.items():
        if not ok:
            raise ValueError(f"{name} must be {expected}, got {value!r}")


def _mean_one_lognormal(
    rng: np.random.Generator, sigma: float, shape: tuple[int, ...]
) -> np.ndarray:
    return np.exp(sigma * rng.standard_normal(shape) - sigma**2 / 2.0)


def _base_spend(
    keys: Sequence[CellKey], total: float, rng: np.random.Generator
) -> dict[CellKey, float]:
    weight = np.array([CATEGORIES[c].budget_share * SEGMENTS[s].budget_share for c, s in keys])
    weight *= np.exp(0.3 * rng.standard_normal(len(keys)))
    spend = np.round(total * weight / weight.sum(), 2)
    return {k: float(v) for k, v in zip(keys, spend)}


def _spread(rng: np.random.Generator, items: Sequence[str], n: int) -> list[str]:
    """``n`` labels covering ``items`` as evenly as possible, in random order."""
    labels = [items[i % len(items)] for i in range(n)]
    return [labels[i] for i in rng.permutation(n)]


def _investment_labels(rng: np.random.Generator, n: int) -> list[str]:
    counts = {k: int(round(share * n)) for k, (_, share) in _INVESTMENT.items()}
    counts["balanced"] = n - counts["over"] - counts["under"]
    labels = [k for k, c in counts.items() for _ in range(c)]
    return [labels[i] for i in rng.permutation(n)]


def _shape_curve(
    family: str, x0: float, y0: float, elasticity: float, rng: np.random.Generator, where: str
) -> Curve:
    """The ``family`` curve through (x0, y0) with that elasticity (random hill slope above it)."""
    slope = None
    if family == "hill":
        slope = float(rng.uniform(max(0.5, elasticity + 0.1), 1.0))
    params = params_through(family, x0, y0, elasticity, slope=slope)
    return Curve.parametric(family, where=where, **params)


def _true_curves(
    keys: Sequence[CellKey], base: Mapping[CellKey, float], rng: np.random.Generator
) -> dict[CellKey, CellCurves]:
    n = len(keys)
    revenue_families = _spread(rng, SHAPE_FAMILIES, n)
    acquisition_families = _spread(rng, SHAPE_FAMILIES, n)
    investment = _investment_labels(rng, n)
    curves = {}
    for i, (c, s) in enumerate(keys):
        cat, seg, x0 = CATEGORIES[c], SEGMENTS[s], base[(c, s)]
        roi = seg.roi * cat.roi_factor * math.exp(0.2 * rng.standard_normal())
        roi = float(np.clip(roi, *_ROI_RANGE))
        elasticity = float(rng.uniform(*_INVESTMENT[investment[i]][0]))
        cac = seg.cac * cat.cac_factor * math.exp(0.15 * rng.standard_normal())
        acq_elasticity = float(rng.uniform(0.3, 0.8))
        where = f"synthetic[{c}, {s}]"
        curves[(c, s)] = CellCurves(
            _shape_curve(revenue_families[i], x0, roi * x0, elasticity, rng, f"{where}.revenue"),
            _shape_curve(
                acquisition_families[i], x0, x0 / cac, acq_elasticity, rng, f"{where}.acquisitions"
            ),
        )
    return curves


def _extra_columns(
    keys: Sequence[CellKey],
    base: Mapping[CellKey, float],
    spend: np.ndarray,
    revenue: np.ndarray,
    rng: np.random.Generator,
) -> dict[str, np.ndarray]:
    """Sends, conversions and the labor/vendor split of spend, consistent with the outcomes."""
    cats = [CATEGORIES[c] for c, _ in keys]
    segs = [SEGMENTS[s] for _, s in keys]
    x0 = np.array([base[k] for k in keys])[:, None]
    sends = np.array([s.list_size * c.email_share for c, s in zip(cats, segs)])[:, None]
    sends = sends * _SENDS_PER_MONTH
    emails = np.rint(sends * (spend / x0) ** 0.3 * _mean_one_lognormal(rng, 0.05, spend.shape))
    order_value = np.array([s.order_value for s in segs])[:, None]
    conversions = np.rint(revenue / (order_value * _mean_one_lognormal(rng, 0.05, spend.shape)))
    labor_share = np.array([c.labor_share for c in cats])[:, None]
    labor_share = np.clip(labor_share * _mean_one_lognormal(rng, 0.05, spend.shape), 0.0, 1.0)
    labor = np.round(spend * labor_share, 2)
    return {
        "emails_sent": emails.ravel(),
        "conversions": conversions.ravel(),
        "cost_labor": labor.ravel(),
        "cost_vendor": np.round(spend - labor, 2).ravel(),
    }


# --------------------------------------------------------------------------------------------
# Files
# --------------------------------------------------------------------------------------------

_COUNT_COLUMNS = ("new_customers", "emails_sent", "conversions")


def write_synthetic(
    out_dir: str | os.PathLike[str], history: pd.DataFrame, truth: SyntheticTruth
) -> tuple[Path, Path]:
    """Write ``email_history.csv`` and ``true_curves.json`` into ``out_dir`` (created if needed).

    Counts are written as integers, money with at most two decimals, periods as ``YYYY-MM``.
    Returns the two paths.
    """
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    csv_path, json_path = out / HISTORY_FILE, out / TRUTH_FILE
    table = history.copy()
    for name in _COUNT_COLUMNS:
        if name in table:
            table[name] = table[name].astype("int64")
    table.to_csv(csv_path, index=False, lineterminator="\n")
    json_path.write_text(json.dumps(truth.to_dict(), indent=2) + "\n", encoding="utf-8")
    return csv_path, json_path


def read_true_curves(path: str | os.PathLike[str]) -> SyntheticTruth:
    """Load a ``true_curves.json`` written by :func:`write_synthetic`."""
    return SyntheticTruth.from_dict(json.loads(Path(path).read_text(encoding="utf-8")))


def main(argv: Sequence[str] | None = None) -> int:
    """Command line: ``python -m forecasting.synthetic --out DIR [--seed N] [--months M] ...``."""
    parser = argparse.ArgumentParser(
        prog="python -m forecasting.synthetic",
        description=f"Write a synthetic email-marketing history ({HISTORY_FILE}) and its true "
        f"response curves ({TRUTH_FILE}).",
    )
    parser.add_argument("--out", required=True, help="output directory (created if needed)")
    parser.add_argument("--seed", type=int, default=2024, help="random seed (default 2024)")
    parser.add_argument("--months", type=int, default=36, help="number of months (default 36)")
    parser.add_argument("--start", default="2023-01", help="first month YYYY-MM (default 2023-01)")
    parser.add_argument("--noise", type=float, default=0.12,
                        help="multiplicative noise (default 0.12)")
    parser.add_argument("--seasonality", type=float, default=0.10,
                        help="seasonal amplitude (default 0.10)")
    parser.add_argument("--trend", type=float, default=0.0, help="yearly growth (default 0)")
    parser.add_argument("--no-extras", action="store_true",
                        help="omit emails, conversions and cost columns")
    args = parser.parse_args(argv)
    try:
        history, truth = generate_history(
            seed=args.seed, months=args.months, start=args.start, noise=args.noise,
            seasonality=args.seasonality, trend=args.trend, extras=not args.no_extras,
        )
    except ValueError as exc:
        parser.error(str(exc))
    paths = write_synthetic(args.out, history, truth)
    print(f"wrote {paths[0]} ({len(history)} rows) and {paths[1]} ({len(truth.curves)} cells)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
