"""Fit a concave response curve per (category, segment) cell from the history.

:func:`fit_curves` is the entry point (used by :mod:`solver.planning`). For every cell it fits the
revenue curve (revenue vs spend) and, when the history has ``new_customers``, the new-customer
curve:

1. **Diagnosis** (:mod:`forecasting.diagnostics`): each cell is fitted on its own, pooled (few
   periods, little spend variation) or refused (too few periods, no spend, an all-zero outcome),
   with the reason; gaps and zero outcomes are flagged.
2. **Period effects** (:mod:`forecasting.seasonality`): seasonality (month or quarter of year) and
   trend, common to the cells of an outcome, are estimated jointly with the curves by backfitting
   (fit flexible curves to the period-adjusted data, re-estimate the effects from their
   residuals, repeat). Optional carry-over (:mod:`forecasting.carryover`) is chosen by held-out
   error.
3. **Curves** (:mod:`forecasting.outcome`): every concave family (``log``, ``exp_saturation``,
   ``power``, ``michaelis_menten``, ``hill`` with slope <= 1) is fitted by robust (soft-L1)
   least squares in log space (:mod:`forecasting.parametric`), and scored by rolling-origin
   cross-validation (:mod:`forecasting.crossval`) together with the nonparametric routes
   (:mod:`forecasting.nonparametric`) and the naive baselines; the curve is the average of the
   families with Akaike weights from all periods (default) or the family with the best held-out
   error, or a nonparametric curve where it predicts clearly better on the held-out periods. Sparse cells borrow from their category and segment
   (:mod:`forecasting.pooling`).
4. **Uncertainty** (:mod:`forecasting.intervals`, :mod:`forecasting.bootstrap`): Laplace draws or
   block-bootstrap refits of every curve, behind :meth:`FitResult.predict` intervals whose
   held-out coverage the fit measures.

Curves are per history period for an average period at the level of the end of the history;
:meth:`FitResult.plan_curves` scales them to a plan's periods. Bad data give a per-cell diagnosis
(pooled, flagged or refused with the reason, :meth:`FitResult.table`); no cell ever gets a default
curve. With ``strict=True`` (the default) any refused cell raises :class:`FitError` naming every
refused cell and why.

Why these defaults: the demo fits 30 cells x 2 outcomes in a few seconds with 12 one-step
rolling-origin folds, the isotonic route and Laplace draws; the bootstrap (``bootstrap=100``)
multiplies the curve fits by its sample count and LightGBM (``nonparametric=("isotonic",
"lightgbm")``) adds one global model per fold, so both are opt-in.
"""

from __future__ import annotations

import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager

import numpy as np
import pandas as pd
from numpy.typing import ArrayLike

from forecasting.carryover import CARRYOVER_GRID, MIN_IMPROVEMENT
from forecasting.crossval import rolling_origin_splits
from forecasting.diagnostics import MIN_PERIODS, diagnose
from forecasting.intervals import DEFAULT_LEVEL, DEFAULT_SAMPLES
from forecasting.nonparametric import NONPARAMETRIC_METHODS, GBMSettings, lightgbm_available
from forecasting.outcome import WEIGHTINGS, OutcomeData, StageOptions, fit_outcome
from forecasting.panel import Panel
from forecasting.parametric import FIT_FAMILIES, fit_batch, start_thetas, unit_values
from forecasting.results import OUTCOME_ATTRIBUTES, CellFit, FitResult, OutcomeFit, RefusedCell
from forecasting.seasonality import PeriodEffects, estimate_period_effects, season_kind

__all__ = ["DEFAULT_FAMILIES", "MIN_PERIODS", "FitError", "FitResult", "fit_curves", "fit_response"]

DEFAULT_FAMILIES: tuple[str, ...] = FIT_FAMILIES
#: Backfitting rounds of curves and period effects.
BACKFIT_ROUNDS = 3
#: The flexible family used while estimating period effects and carry-over.
REFERENCE_FAMILY = "hill"


@contextmanager
def single_threaded() -> Iterator[None]:
    """Limit BLAS (and OpenMP) to one thread: the fits are many small matrix products, where
    extra threads only contend for the cores (3x slower on a shared 2-core machine)."""
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:  # pragma: no cover - threadpoolctl comes with scikit-learn
        yield
        return
    with threadpool_limits(limits=1):
        yield


class FitError(ValueError):
    """The history of some cells cannot support a curve; the message names each cell and why."""


def fit_curves(
    history: pd.DataFrame,
    *,
    families: Sequence[str] = DEFAULT_FAMILIES,
    combine: str = "average",
    cv_folds: int = 12,
    cv_horizon: int | None = 1,
    seasonality: str = "auto",
    trend: bool = True,
    carryover: float | str = 0.0,
    nonparametric: Sequence[str] = (),
    bootstrap: int = 0,
    block: int | None = None,
    interval_level: float = DEFAULT_LEVEL,
    n_samples: int = DEFAULT_SAMPLES,
    temperature: float = 0.1,
    nonparametric_margin: float = 0.02,
    seed: int = 0,
    strict: bool = True,
    weighting: str = "holdout",
) -> FitResult:
    """Fit revenue (and new-customer) curves for every (category, segment) cell of a history.

    Parameters
    ----------
    history
        A history in the data contract of :mod:`forecasting.history` (validated here).
        Spend and outcomes are per history period (month), currency.
    families
        Candidate concave families, a non-empty subset of :data:`DEFAULT_FAMILIES`.
    combine
        ``"average"``: the weighted average of the families (see ``weighting``), as a concave pwl
        curve; ``"select"``: the family with the smallest held-out error (a parametric curve;
        with ``bootstrap``, a posterior-sample curve of that family).
    cv_folds, cv_horizon
        Rolling-origin folds and test-block length (periods); the default tests one step ahead
        on each of the last 12 periods. ``cv_folds=0`` skips CV (equal weights, no held-out
        errors).
    seasonality
        ``"auto"`` (monthly from 24 periods, quarterly from 12, else none), ``"month"``,
        ``"quarter"`` or ``"none"``.
    trend
        Estimate a log-linear trend.
    carryover
        Geometric carry-over of spend in [0, 1), or ``"auto"`` to choose it from
        :data:`~forecasting.carryover.CARRYOVER_GRID` by held-out error.
    nonparametric
        Nonparametric routes to try: ``"isotonic"`` (scikit-learn) and/or ``"lightgbm"``
        (needs the ``gbm`` extra); empty to use the parametric families only.
    bootstrap
        Moving-block bootstrap resamples per curve (0: Laplace draws for intervals, and the
        point fit in the problem file).
    block
        Bootstrap block length (default ``round(T^(1/3))``).
    interval_level
        Nominal level of the prediction intervals (0.8 = 80 %).
    n_samples
        Laplace draws per curve behind the intervals (without bootstrap).
    temperature
        Softness of the ``holdout`` weights (relative held-out WAPE difference that costs a
        family a factor e in weight).
    nonparametric_margin
        Relative held-out WAPE improvement a nonparametric route needs over the best family.
    seed
        Seed of every random draw (the fit is deterministic for a given seed).
    strict
        Raise :class:`FitError` when any cell is refused (else list them in
        :attr:`FitResult.refused` and fit the others).
    weighting
        How ``average`` weighs the families: ``"holdout"`` (default: rolling-origin held-out
        WAPE with ``temperature``) or ``"likelihood"`` (Akaike weights of the full-history fits,
        :func:`forecasting.outcome.akaike`; in-sample, slightly lower regret in
        benchmarks/decision_quality.md). Held-out errors choose the nonparametric route and ``select``'s
        family either way.

    Returns
    -------
    FitResult
        One :class:`~forecasting.results.CellFit` per fitted cell, sorted by (category, segment).

    Raises
    ------
    FitError
        With ``strict``, naming every refused cell and the reason.
    forecasting.history.HistoryError
        If the history breaks the data contract.
    ValueError
        For bad options.
    """
    started = time.perf_counter()
    opts = _stage_options(families, combine, cv_folds, cv_horizon, nonparametric, bootstrap, block,
                          interval_level, n_samples, temperature, nonparametric_margin, seed,
                          weighting)
    season_kind(0, seasonality)  # validates the option
    _check_carryover(carryover)
    with single_threaded():
        return _fit_curves(history, opts, seasonality, trend, carryover, strict, started,
                           {"combine": combine, "cv_folds": cv_folds, "cv_horizon": cv_horizon,
                            "seasonality": seasonality, "trend": trend, "carryover": carryover,
                            "nonparametric": tuple(nonparametric), "bootstrap": bootstrap,
                            "seed": seed, "weighting": weighting})


def _fit_curves(history: pd.DataFrame, opts: StageOptions, seasonality: str, trend: bool,
                carryover: float | str, strict: bool, started: float,
                options: dict[str, object]) -> FitResult:
    panel = Panel.from_history(history)
    diagnoses = diagnose(panel)
    refused: dict[int, list[str]] = {i: list(d.reasons) for i, d in enumerate(diagnoses) if d.route == "refuse"}
    if strict and refused:
        _raise_refused(panel, refused)
    routes = [d.route for d in diagnoses]
    labels = [str(p) for p in panel.periods]
    fitted: dict[str, list[OutcomeFit | None]] = {}
    effects: dict[str, PeriodEffects] = {}
    carry: dict[str, float] = {}
    for name in panel.outcomes:
        resolved = season_kind(panel.n_periods, seasonality)
        carry[name] = _choose_carryover(panel, name, routes, resolved, trend, carryover, opts)
        effects[name] = _period_effects(panel, name, routes, resolved, trend, carry[name])
        data = OutcomeData.build(panel, name, effects[name], carry[name])
        fits, more = fit_outcome(data, routes, opts, labels, panel.keys)
        fitted[name] = fits
        for row, reason in more.items():  # pooled cells without donors: why pooled, why refused
            reasons = refused.setdefault(row, list(diagnoses[row].reasons))
            if reason not in reasons:
                reasons.append(reason)
    if strict and refused:
        _raise_refused(panel, refused)
    cells = _cells(panel, diagnoses, fitted, refused, opts)
    return FitResult(
        cells=tuple(cells),
        families=opts.families,
        seconds=time.perf_counter() - started,
        refused=tuple(RefusedCell(*panel.keys[i], tuple(r)) for i, r in sorted(refused.items())),
        options=options, effects=effects, carryover=carry, level=opts.level, panel=panel,
    )


def fit_response(
    spend: ArrayLike,
    outcome: ArrayLike,
    *,
    families: Sequence[str] = DEFAULT_FAMILIES,
    combine: str = "average",
    cv_folds: int = 12,
    cv_horizon: int | None = 1,
    nonparametric: Sequence[str] = (),
    interval_level: float = DEFAULT_LEVEL,
    n_samples: int = DEFAULT_SAMPLES,
    seed: int = 0,
    where: str = "curve",
    weighting: str = "holdout",
) -> OutcomeFit:
    """Fit one concave curve ``outcome ~ f(spend)`` from one time-ordered series.

    The same family fits, rolling-origin CV and combination as :func:`fit_curves`, without
    period effects and pooling (a single series has nothing to pool with).

    Parameters
    ----------
    spend, outcome
        Equal-length 1-d arrays, oldest first; spend >= 0 (currency per period), outcome >= 0.
    where
        Names the series in error messages.
    weighting
        How ``average`` weighs the families (as in :func:`fit_curves`).

    Raises
    ------
    FitError
        For fewer than :data:`MIN_PERIODS` observations, constant or zero spend, or an
        all-zero outcome.
    """
    x = np.asarray(spend, dtype=np.float64)
    y = np.asarray(outcome, dtype=np.float64)
    if x.shape != y.shape or x.ndim != 1:
        raise ValueError(f"{where}: spend and outcome must be 1-d arrays of equal length")
    if not (np.all(np.isfinite(x)) and np.all(np.isfinite(y)) and x.min() >= 0 and y.min() >= 0):
        raise FitError(f"{where}: spend and outcome must be finite and >= 0")
    history = pd.DataFrame({
        "period": pd.period_range("2000-01", periods=len(x), freq="M"),
        "category": "series", "segment": "series", "spend": x, "revenue": y,
    })
    panel = Panel.from_history(history)
    diagnosis = diagnose(panel)[0]
    if diagnosis.route == "refuse" or any("constant" in r for r in diagnosis.reasons):
        raise FitError(f"{where}: " + "; ".join(r.replace("revenue", "outcome") for r in diagnosis.reasons))
    opts = _stage_options(families, combine, cv_folds, cv_horizon, nonparametric, 0, None,
                          interval_level, n_samples, 0.1, 0.02, seed, weighting)
    data = OutcomeData.build(panel, "revenue", PeriodEffects.neutral(panel.periods[-1]), 0.0)
    with single_threaded():
        fits, _ = fit_outcome(data, ["fit"], opts, [str(p) for p in panel.periods], panel.keys)
    assert fits[0] is not None
    return fits[0]


# --------------------------------------------------------------------------------------------
# Options
# --------------------------------------------------------------------------------------------


def _stage_options(families, combine, cv_folds, cv_horizon, nonparametric, bootstrap, block,
                   level, n_samples, temperature, margin, seed,
                   weighting: str = "holdout") -> StageOptions:
    fams = tuple(families)
    if not fams or len(set(fams)) != len(fams) or any(f not in FIT_FAMILIES for f in fams):
        raise ValueError(
            f"families must be distinct names among {', '.join(FIT_FAMILIES)}; got {list(fams)}"
        )
    if combine not in ("average", "select"):
        raise ValueError(f"combine must be 'average' or 'select', got {combine!r}")
    _integer("cv_folds", cv_folds, 0)
    if cv_horizon is not None:
        _integer("cv_horizon", cv_horizon, 1)
    methods = tuple(nonparametric)
    if any(m not in NONPARAMETRIC_METHODS for m in methods) or len(set(methods)) != len(methods):
        raise ValueError(f"nonparametric must be distinct names among {NONPARAMETRIC_METHODS}; "
                         f"got {list(methods)}")
    if "lightgbm" in methods and not lightgbm_available():
        raise ValueError("nonparametric 'lightgbm' needs the lightgbm package: "
                         "pip install 'budget-solver[gbm]'")
    _integer("bootstrap", bootstrap, 0)
    if block is not None:
        _integer("block", block, 1)
    if not 0.0 < level < 1.0:
        raise ValueError(f"interval_level must be in (0, 1), got {level!r}")
    _integer("n_samples", n_samples, 10)
    if weighting not in WEIGHTINGS:
        raise ValueError(f"weighting must be one of {', '.join(WEIGHTINGS)}, got {weighting!r}")
    if not temperature > 0:
        raise ValueError(f"temperature must be > 0, got {temperature!r}")
    if not 0.0 <= margin < 1.0:
        raise ValueError(f"nonparametric_margin must be in [0, 1), got {margin!r}")
    return StageOptions(fams, combine, float(temperature), weighting, methods, float(margin), int(cv_folds),
                        cv_horizon, float(level), int(n_samples), int(bootstrap), block, int(seed),
                        GBMSettings(random_state=int(seed)))


def _integer(name: str, value: object, minimum: int) -> None:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < minimum:
        raise ValueError(f"{name} must be an integer >= {minimum}, got {value!r}")


def _check_carryover(carryover: float | str) -> None:
    if carryover == "auto":
        return
    if isinstance(carryover, bool) or not isinstance(carryover, (int, float)) or not 0 <= carryover < 1:
        raise ValueError(f"carryover must be a number in [0, 1) or 'auto', got {carryover!r}")


def _raise_refused(panel: Panel, refused: dict[int, list[str]]) -> None:
    lines = [f"cell ({panel.keys[i][0]}, {panel.keys[i][1]}): {'; '.join(r)}"
             for i, r in sorted(refused.items())]
    raise FitError("cannot fit curves:\n  " + "\n  ".join(lines))


# --------------------------------------------------------------------------------------------
# Period effects and carry-over
# --------------------------------------------------------------------------------------------


def _reference_rows(routes: Sequence[str]) -> np.ndarray:
    own = np.flatnonzero(np.asarray(routes) == "fit")
    return own if own.size else np.flatnonzero(np.asarray(routes) == "pool")


def _period_effects(panel: Panel, name: str, routes: Sequence[str], kind: str, trend: bool,
                    carryover: float) -> PeriodEffects:
    """Backfitting: flexible curves on adjusted data <-> effects from their log residuals."""
    effects = PeriodEffects.neutral(panel.periods[-1])
    rows = _reference_rows(routes)
    if (kind == "none" and not trend) or not rows.size:
        return effects
    theta = None
    for _ in range(BACKFIT_ROUNDS):
        d = OutcomeData.build(panel, name, effects, carryover).take(rows)
        starts = start_thetas(REFERENCE_FAMILY, d.u, d.v, d.w) if theta is None else theta[None]
        fit = fit_batch(REFERENCE_FAMILY, d.u, d.v, d.w, starts)
        theta = fit.theta
        curve = unit_values(REFERENCE_FAMILY, fit.theta, d.u) * d.y_unit[:, None]
        ok = (d.w > 0) & (d.raw > 0) & (curve > 0)
        with np.errstate(all="ignore"):
            resid = np.where(ok, np.log(np.where(ok, d.raw, 1.0)) - np.log(np.where(ok, curve, 1.0)), 0.0)
        effects = estimate_period_effects(resid, ok.astype(float), panel.periods, kind, trend)  # type: ignore[arg-type]
    return effects


def _choose_carryover(panel: Panel, name: str, routes: Sequence[str], kind: str, trend: bool,
                      carryover: float | str, opts: StageOptions) -> float:
    """The fixed carry-over, or for ``"auto"`` the grid value with the lowest held-out error."""
    if carryover != "auto":
        return float(carryover)
    rows = _reference_rows(routes)
    splits = rolling_origin_splits(panel.n_periods, max(opts.folds, 1), opts.horizon)
    if not rows.size or not splits:
        return 0.0
    scores = {}
    for theta in CARRYOVER_GRID:
        effects = _period_effects(panel, name, routes, kind, trend, theta)
        d = OutcomeData.build(panel, name, effects, theta).take(rows)
        err = 0.0
        for s in splits:
            tr, te = s.masks(panel.n_periods)
            w = d.w * tr[None, :]
            fit = fit_batch(REFERENCE_FAMILY, d.u, d.v, w, start_thetas(REFERENCE_FAMILY, d.u, d.v, w))
            pred = unit_values(REFERENCE_FAMILY, fit.theta, d.u) * d.y_unit[:, None] * d.factor[None, :]
            test = (d.w > 0) & te[None, :]
            err += float(np.abs(pred - d.raw)[test].sum())
        scores[theta] = err
    best = min(scores, key=scores.get)  # type: ignore[arg-type]
    return best if scores[best] < scores[0.0] * (1.0 - MIN_IMPROVEMENT) else 0.0


# --------------------------------------------------------------------------------------------
# Assembly
# --------------------------------------------------------------------------------------------


def _cells(panel: Panel, diagnoses, fitted: dict[str, list[OutcomeFit | None]],
           refused: dict[int, list[str]], opts: StageOptions) -> list[CellFit]:
    mean_spend, last_spend = panel.mean_spend(), panel.last_spend()
    splits = rolling_origin_splits(panel.n_periods, opts.folds, opts.horizon) if opts.folds else []
    tested = np.zeros(panel.n_periods, dtype=bool)
    for s in splits:
        tested |= s.masks(panel.n_periods)[1]
    out = []
    for i, key in enumerate(panel.keys):
        if i in refused:
            continue
        d = diagnoses[i]
        outcomes = {OUTCOME_ATTRIBUTES[n]: fitted[n][i] for n in fitted}
        if any(v is None for v in outcomes.values()):  # pragma: no cover - refused above
            continue
        out.append(CellFit(
            category=key[0], segment=key[1],
            revenue=outcomes["revenue"],  # type: ignore[arg-type]
            acquisitions=outcomes.get("acquisitions"),
            n_periods=int(d.n_periods),
            holdout_periods=int((panel.observed[i] & tested).sum()) if d.route == "fit" else 0,
            mean_spend=float(mean_spend[i]), last_spend=float(last_spend[i]),
            route=d.route, reasons=d.reasons, flags=d.flags,
        ))
    return out
