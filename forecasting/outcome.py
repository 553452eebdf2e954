"""One outcome (revenue or new customers) of every cell: candidates, CV, combination, samples.

:func:`fit_outcome` is the per-outcome stage of :func:`forecasting.fit.fit_curves`, on data that
are already normalized and period-adjusted (:class:`OutcomeData`):

1. **Candidates.** Each concave family is fitted to all data-rich cells at once
   (:func:`forecasting.parametric.fit_batch`); the nonparametric routes
   (:mod:`forecasting.nonparametric`) join when asked.
2. **Rolling-origin CV** (:mod:`forecasting.cross_validation`): every candidate is refitted on
   each fold's training periods and predicts the fold's test periods in currency (period factors
   applied); the held-out errors of the candidates and of the naive baselines (last training
   period's return on spend, average return on spend), and the coverage of the prediction
   intervals, are measured there.
3. **Combination.** ``combine="average"`` weighs the families by their rolling-origin held-out
   WAPE (``weighting="holdout"``, the default: ``w_f ~ exp(-(WAPE_f / min_g WAPE_g - 1) /
   temperature)``) or by their Akaike weights (``weighting="likelihood"``: ``w_f ~ exp(-AICc_f /
   2)`` of the full-history fits, an in-sample estimate of each family's out-of-sample log
   predictive density), and tabulates the weighted average as a concave pwl; ``combine="select"``
   keeps the family with the smallest held-out WAPE. A nonparametric route replaces them where
   its held-out WAPE is below the best family's by more than ``nonparametric_margin``.
4. **Pooling.** Sparse cells are fitted with the prior of :mod:`forecasting.pooling`, estimated
   from the data-rich cells' curves; they have no CV, so their families get equal weights
   (``select``: the family the data-rich cells chose most often).
5. **Samples.** Laplace draws (default) or block-bootstrap refits (``bootstrap > 0``) of every
   member give each curve its :class:`~forecasting.intervals.CurveSamples`; with the bootstrap
   the curve itself is the mean over the resamples (for ``select``, a posterior-sample curve of
   the one family, as the problem file carries it).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field, replace

import numpy as np
from numpy.typing import NDArray

from forecasting.bootstrap import block_weights, bootstrap_thetas
from forecasting.carryover import geometric_adstock
from forecasting.crossval import errors, rolling_origin_splits
from forecasting.curves import Curve
from forecasting.intervals import (
    CurveSamples,
    laplace_draws,
    noise_calibration,
    quantile_band,
)
from forecasting.nonparametric import (
    GBMSettings,
    concave_pwl,
    isotonic_batch,
    isotonic_predictions,
    lightgbm_batch,
    period_features,
    pwl_in_money,
)
from forecasting.panel import Panel
from forecasting.parametric import (
    LOG_OFFSET,
    SPACES,
    BatchFit,
    log_residuals,
    Prior,
    fit_batch,
    mean_factor,
    robust_sigma,
    start_thetas,
    to_curve,
    unit_values,
)
from forecasting.pooling import estimate_prior
from forecasting.results import OutcomeFit
from forecasting.seasonality import PeriodEffects

FloatArray = NDArray[np.float64]
IntArray = NDArray[np.intp]

#: Points of the money grid on which an averaged curve is tabulated as pwl.
GRID_POINTS = 64
#: An averaged curve is tabulated up to this multiple of the cell's highest spend (flat beyond).
GRID_REACH = 10.0
#: Standardized residual beyond which a period is flagged as an outlier.
OUTLIER_Z = 4.0
#: Samples behind the held-out coverage check.
CV_SAMPLES = 100
#: Noise calibration factors tried by the held-out (conformal) calibration of intervals.
CALIBRATION_GRID = np.round(np.arange(0.7, 2.51, 0.05), 2)
#: Fewest held-out points behind a calibration.
MIN_CALIBRATION = 20
#: Held-out WAPE a family with more parameters must gain over a simpler one to be kept.
TIE_WAPE = 1e-6


@dataclass(frozen=True)
class StageOptions:
    """Options of the per-outcome stage (validated by :func:`forecasting.fit.fit_curves`)."""

    families: tuple[str, ...]
    combine: str = "average"
    temperature: float = 0.1
    weighting: str = "holdout"
    nonparametric: tuple[str, ...] = ()
    nonparametric_margin: float = 0.02
    folds: int = 12
    horizon: int | None = 1
    level: float = 0.8
    n_samples: int = 200
    bootstrap: int = 0
    block: int | None = None
    seed: int = 0
    gbm: GBMSettings = field(default_factory=GBMSettings)

    @property
    def members(self) -> tuple[str, ...]:
        """Names behind the columns of weight arrays: families, then nonparametric routes."""
        return self.families + self.nonparametric


@dataclass(frozen=True)
class OutcomeData:
    """One outcome on the panel grid, normalized and period-adjusted (arrays (R, T)).

    ``u = adstock(spend) / x_unit`` and ``v = outcome / factor / y_unit`` with ``x_unit`` and
    ``y_unit`` the cell means; ``w`` is 1 where observed. ``raw`` and ``spend`` are the observed
    outcome and spend (currency); ``factor`` (T,) the period factors divided out of ``v``.
    """

    name: str
    u: FloatArray
    v: FloatArray
    w: FloatArray
    raw: FloatArray
    spend: FloatArray
    factor: FloatArray
    x_unit: FloatArray
    y_unit: FloatArray
    months: NDArray[np.integer]

    @classmethod
    def build(cls, panel: Panel, name: str, effects: PeriodEffects, carryover: float) -> OutcomeData:
        """Normalize one outcome of a panel with the given period effects and carry-over."""
        w = panel.observed.astype(float)
        effective = geometric_adstock(panel.spend, panel.observed, carryover)
        factor = effects.factors(panel.periods)
        raw = panel.outcomes[name]
        adjusted = raw / factor[None, :]
        x_unit = np.maximum(_masked_mean(effective, w), 1e-12)
        y_unit = np.maximum(_masked_mean(adjusted, w), 1e-12)
        return cls(name, effective / x_unit[:, None], adjusted / y_unit[:, None], w, raw,
                   panel.spend, factor, x_unit, y_unit, np.asarray(panel.periods.month))

    def take(self, rows: IntArray) -> OutcomeData:
        """The data of some cells."""
        return OutcomeData(self.name, self.u[rows], self.v[rows], self.w[rows], self.raw[rows],
                           self.spend[rows], self.factor, self.x_unit[rows], self.y_unit[rows],
                           self.months)


def _masked_mean(values: FloatArray, w: FloatArray) -> FloatArray:
    return (values * w).sum(axis=1) / np.maximum(w.sum(axis=1), 1e-12)


# --------------------------------------------------------------------------------------------
# The stage
# --------------------------------------------------------------------------------------------


def fit_outcome(
    data: OutcomeData,
    routes: Sequence[str],
    opts: StageOptions,
    labels: Sequence[str],
    keys: Sequence[tuple[str, str]],
) -> tuple[list[OutcomeFit | None], dict[int, str]]:
    """Fit one outcome of every cell whose route is ``fit`` or ``pool``.

    Parameters
    ----------
    data
        The outcome of all cells.
    routes
        Per cell ``"fit"``, ``"pool"`` or ``"refuse"`` (:mod:`forecasting.diagnostics`).
    opts
        Stage options.
    labels
        ``YYYY-MM`` labels of the T periods (for flags).
    keys
        The cells (category, segment), for the pooling prior.

    Returns
    -------
    (fits, refused)
        One :class:`OutcomeFit` per cell (None where refused), and the cells refused here:
        pooled cells with fewer than two data-rich cells to borrow from (row -> reason).
    """
    rng = np.random.default_rng(opts.seed)
    route = np.asarray(routes)
    own = np.flatnonzero(route == "fit")
    pooled = np.flatnonzero(route == "pool")
    out: list[OutcomeFit | None] = [None] * len(routes)
    refused: dict[int, str] = {}
    own_fits, factor = _own_stage(data, own, opts, labels, rng) if own.size else ([], None)
    for row, fit in zip(own, own_fits):
        out[row] = fit
    if pooled.size:
        prior = _pooling_prior(data, own, own_fits, keys)
        if prior is None:
            for r in pooled:
                refused[int(r)] = ("too little data for an own curve and fewer than 2 cells with "
                                   "enough history to borrow from")
        else:
            fits = _pooled_stage(data, pooled, prior.unit_prior(pooled, data.x_unit, data.y_unit),
                                 own_fits, opts, labels, rng)
            for row, fit in zip(pooled, fits):
                out[row] = fit
    return _calibrated(data, out, opts.level, factor), refused


def _calibrated(data: OutcomeData, fits: list[OutcomeFit | None], level: float,
                factor: float | None) -> list[OutcomeFit | None]:
    """Scale every cell's noise so that intervals cover ``level``: by the held-out (conformal)
    factor when there is one, else so that normal noise covers ``level`` of the pooled
    in-sample residuals."""
    if factor is None:
        z = [_log_residuals_of(data, i, f.curve)[0] / f.sigma for i, f in enumerate(fits) if f is not None]
        if not z:
            return fits
        factor = noise_calibration(np.concatenate(z), level)
    return [None if f is None else replace(f, sigma=f.sigma * factor) for f in fits]


def _own_stage(data: OutcomeData, rows: IntArray, opts: StageOptions, labels: Sequence[str],
               rng: np.random.Generator) -> tuple[list[OutcomeFit], float | None]:
    d = data.take(rows)
    full = {f: fit_batch(f, d.u, d.v, d.w, start_thetas(f, d.u, d.v, d.w)) for f in opts.families}
    cv = _cross_validate(d, full, opts)
    weights = _weights(cv, opts, akaike(d, full, opts.families))
    nonparametric = _nonparametric_full(d, weights, opts)
    samples = _samples(d, full, weights, nonparametric, opts, rng, prior=None)
    coverage, factor = _conformal(cv, weights, opts, rng)
    fits = []
    for i in range(len(rows)):
        totals = _holdout_totals(cv, weights[i], i, opts.members)
        fits.append(_outcome_fit(
            d, i, full, weights[i], nonparametric.get(i), samples[i], labels, opts,
            candidates={c: float(cv.wape[i, k]) for k, c in enumerate(cv.candidates)},
            holdout=_combined_errors(cv, weights[i], i, opts.members),
            coverage=float(coverage[i]),
            totals=totals, pooling=(0.0, 0.0), pooled=False,
        ))
    return fits, factor


def _pooled_stage(data: OutcomeData, rows: IntArray, prior: Prior, own_fits: list[OutcomeFit],
                  opts: StageOptions, labels: Sequence[str], rng: np.random.Generator) -> list[OutcomeFit]:
    d = data.take(rows)
    families = opts.families
    if opts.combine == "select":  # the family the data-rich cells chose most often
        chosen = [f.family for f in own_fits]
        families = (max(families, key=chosen.count),)
    full = {f: fit_batch(f, d.u, d.v, d.w, start_thetas(f, d.u, d.v, d.w), prior=prior)
            for f in families}
    weights = np.zeros((len(rows), len(opts.members)))
    for f in families:
        weights[:, opts.members.index(f)] = 1.0 / len(families)
    samples = _samples(d, full, weights, {}, opts, rng, prior=prior)
    fits = []
    for i in range(len(rows)):
        share = np.mean([full[f].prior_share[i] for f in families], axis=0)
        fits.append(_outcome_fit(
            d, i, full, weights[i], None, samples[i], labels, opts, candidates={},
            holdout=(math.nan, math.nan), coverage=math.nan, totals={},
            pooling=(float(share[1]), float(share[0])), pooled=True,
        ))
    return fits


def _pooling_prior(data: OutcomeData, own: IntArray, own_fits: list[OutcomeFit],
                   keys: Sequence[tuple[str, str]]):
    """Prior from the data-rich cells' curves: log return on spend and elasticity at mean spend."""
    n = len(keys)
    log_roi, log_roi_se = np.full(n, np.nan), np.full(n, np.nan)
    ela, ela_se = np.full(n, np.nan), np.full(n, np.nan)
    for row, fit in zip(own, own_fits):
        x0 = data.x_unit[row]
        draws = fit.samples.draws(np.array([x0 * 0.95, x0, x0 * 1.05]))
        draws = np.maximum(draws, 1e-300)
        e = (np.log(draws[:, 2]) - np.log(draws[:, 0])) / (math.log(1.05) - math.log(0.95))
        lr = np.log(draws[:, 1] / x0)
        log_roi[row], log_roi_se[row] = float(np.log(fit.curve.value(x0) / x0)), float(np.std(lr))
        ela[row], ela_se[row] = float(np.mean(e)), float(np.std(e))
    donors = np.isfinite(log_roi) & np.isfinite(ela)
    return estimate_prior(keys, donors, log_roi, log_roi_se, ela, ela_se)


# --------------------------------------------------------------------------------------------
# Cross-validation
# --------------------------------------------------------------------------------------------


@dataclass
class _CV:
    """Rolling-origin predictions of every candidate for R cells over K folds."""

    u: FloatArray                               # (R, T) normalized spend
    actual: FloatArray                          # (R, T) raw outcome
    test: NDArray[np.bool_]                     # (K, R, T)
    candidates: list[str]
    predictions: dict[str, FloatArray]          # candidate -> (K, R, T) currency
    scale: FloatArray                           # (R, T) y_unit x period factor
    fold_fits: dict[str, BatchFit]              # family -> fits of the K*R fold rows
    noise_factor: dict[str, FloatArray]         # family -> (K,) interval calibration per fold
    wape: FloatArray                            # (R, candidates)
    baselines: dict[str, FloatArray]            # baseline -> (K, R, T) currency


def _cross_validate(d: OutcomeData, full: dict[str, BatchFit], opts: StageOptions) -> _CV:
    n_rows, n_periods = d.u.shape
    splits = rolling_origin_splits(n_periods, opts.folds, opts.horizon) if opts.folds else []
    k = len(splits)
    train = np.zeros((k, n_rows, n_periods))
    test = np.zeros((k, n_rows, n_periods), dtype=bool)
    for j, s in enumerate(splits):
        tr, te = s.masks(n_periods)
        train[j] = d.w * tr[None, :]
        test[j] = (d.w > 0) & te[None, :]
    test &= ((train > 0).sum(axis=2) >= 3)[:, :, None]   # a fold needs 3 training points
    scale = d.y_unit[:, None] * d.factor[None, :]
    predictions: dict[str, FloatArray] = {}
    fold_fits: dict[str, BatchFit] = {}
    noise_factor: dict[str, FloatArray] = {}
    if k:
        tiled_u, tiled_v = np.tile(d.u, (k, 1)), np.tile(d.v, (k, 1))
        flat_train = train.reshape(k * n_rows, n_periods)
        for f, fit in full.items():
            ff = fit_batch(f, tiled_u, tiled_v, flat_train, np.tile(fit.theta, (k, 1))[None])
            fold_fits[f] = ff
            z = (log_residuals(f, ff.theta, tiled_u, tiled_v) / ff.sigma[:, None]).reshape(k, n_rows, n_periods)
            z = np.where(train > 0, z, np.nan)
            noise_factor[f] = np.array([noise_calibration(z[j], opts.level) for j in range(k)])
            unit = unit_values(f, ff.theta, tiled_u) * mean_factor(ff.sigma)[:, None]
            predictions[f] = unit.reshape(k, n_rows, n_periods) * scale[None]
        for method in opts.nonparametric:
            predictions[method] = _nonparametric_cv(d, method, train, opts) * scale[None]
    candidates = list(predictions)
    wape = np.full((n_rows, len(candidates)), math.nan)
    for c, name in enumerate(candidates):
        err, tot = _abs_totals(predictions[name], d.raw, test)
        wape[:, c] = np.where(tot > 0, err / np.maximum(tot, 1e-300), math.nan)
    return _CV(d.u, d.raw, test, candidates, predictions, scale, fold_fits, noise_factor, wape,
               _baselines(d, train) if k else {})


def _abs_totals(pred: FloatArray, actual: FloatArray, test: NDArray[np.bool_]) -> tuple[FloatArray, FloatArray]:
    """Per cell: sum of |error| over its test points (NaN if any prediction is missing), total."""
    diff = np.abs(pred - actual[None])
    err = np.where(test, diff, 0.0).sum(axis=(0, 2))
    missing = (test & ~np.isfinite(pred)).any(axis=(0, 2))
    total = np.where(test, actual[None], 0.0).sum(axis=(0, 2))
    return np.where(missing, math.nan, err), total


def _nonparametric_cv(d: OutcomeData, method: str, train: FloatArray, opts: StageOptions) -> FloatArray:
    """(K, R, T) normalized predictions of a nonparametric route, one refit per fold."""
    out = np.full(train.shape, np.nan)
    features = period_features(d.months, d.u.shape[1])
    for j in range(train.shape[0]):
        if method == "isotonic":
            out[j] = isotonic_predictions(d.u, d.v, train[j])
            continue
        for i, c in enumerate(lightgbm_batch(d.u, d.v, train[j], features, opts.gbm)):
            if c is not None:
                out[j, i] = c.value(d.u[i])
    return out


def _baselines(d: OutcomeData, train: FloatArray) -> dict[str, FloatArray]:
    """Naive forecasts on every fold: spend x last training period's / average return on spend."""
    spend, raw = d.spend[None], d.raw[None]
    obs = (train > 0) & (spend > 0)
    last_t = np.where(obs, np.arange(spend.shape[2])[None, None, :], -1).max(axis=2)
    rows = np.broadcast_to(np.arange(spend.shape[1])[None, :], last_t.shape)
    t = np.maximum(last_t, 0)
    last_roi = np.where(last_t >= 0, raw[0][rows, t] / np.maximum(spend[0][rows, t], 1e-300), np.nan)
    avg_roi = np.where(obs, raw, 0.0).sum(axis=2) / np.maximum(np.where(obs, spend, 0.0).sum(axis=2), 1e-300)
    avg_roi = np.where(obs.any(axis=2), avg_roi, np.nan)
    return {"last_roi": spend * last_roi[:, :, None], "average_roi": spend * avg_roi[:, :, None]}


#: Weighting rules of ``combine="average"``.
WEIGHTINGS = ("likelihood", "holdout")


def akaike(d: OutcomeData, full: dict[str, BatchFit], families: Sequence[str]) -> FloatArray:
    """(R, families) small-sample Akaike information criterion of each full-history fit.

    ``AICc = n log(SSR / n) + 2k + 2k(k + 1) / (n - k - 1)`` with ``SSR`` the sum of squared
    log residuals over the ``n`` observed periods and ``k`` the family's parameters: minus twice
    the Gaussian log-likelihood of the log-space model at its profile noise scale, plus the
    penalty that makes it an estimate of the expected out-of-sample log predictive density.
    NaN where ``n <= k + 1`` or a fit failed.
    """
    n = (d.w > 0).sum(axis=1).astype(float)
    out = np.full((d.u.shape[0], len(families)), math.nan)
    for j, f in enumerate(families):
        k = SPACES[f].size
        r = log_residuals(f, full[f].theta, d.u, d.v)
        ssr = np.maximum((np.where(d.w > 0, r, 0.0) ** 2).sum(axis=1), 1e-300)
        with np.errstate(all="ignore"):
            aic = n * np.log(ssr / np.maximum(n, 1.0)) + 2 * k + 2 * k * (k + 1) / (n - k - 1)
        out[:, j] = np.where((n > k + 1) & full[f].ok, aic, math.nan)
    return out


def _weights(cv: _CV, opts: StageOptions, aic: FloatArray) -> FloatArray:
    """(R, members) weights: see the module docstring (3. Combination); ``aic`` is
    :func:`akaike` of the families (used by the ``likelihood`` weighting)."""
    members = opts.members
    out = np.zeros((cv.u.shape[0], len(members)))
    col = {c: k for k, c in enumerate(cv.candidates)}
    for i in range(out.shape[0]):
        fam_err = np.array([cv.wape[i, col[f]] if f in col else math.nan for f in opts.families])
        finite = np.isfinite(fam_err)
        if not finite.any():  # no held-out periods: equal weights, or the first family
            n = len(opts.families) if opts.combine == "average" else 1
            out[i, :n] = 1.0 / n
            continue
        fam_err = _parsimonious(fam_err, opts.families)
        finite = np.isfinite(fam_err)
        best = float(np.nanmin(fam_err))
        challengers = [(cv.wape[i, col[m]], m) for m in opts.nonparametric if m in col]
        challengers = [(e, m) for e, m in challengers if np.isfinite(e)
                       and e < best * (1.0 - opts.nonparametric_margin)]
        if challengers:
            out[i, members.index(min(challengers)[1])] = 1.0
        elif opts.combine == "select":
            out[i, int(np.argmin(np.where(finite, fam_err, np.inf)))] = 1.0
        else:
            out[i, : len(opts.families)] = _average_weights(fam_err, aic[i], opts)
    return out


def _average_weights(fam_err: FloatArray, aic: FloatArray, opts: StageOptions) -> FloatArray:
    """Weights of the families kept by :func:`_parsimonious` (finite ``fam_err``): Akaike
    weights ``exp(-(AICc_f - min AICc) / 2)`` (``likelihood``), or
    ``exp(-(WAPE_f / min WAPE - 1) / temperature)`` (``holdout``); tiny weights are dropped."""
    finite = np.isfinite(fam_err)
    if opts.weighting == "likelihood" and np.isfinite(aic[finite]).all():
        log_w = np.where(finite, -0.5 * (aic - np.min(aic[finite])), -np.inf)
    else:
        rel = fam_err / max(float(np.nanmin(fam_err)), 1e-12) - 1.0
        log_w = np.where(finite, -rel / opts.temperature, -np.inf)
    wts = np.exp(log_w)
    wts[wts < 1e-3 * wts.max()] = 0.0
    return wts / wts.sum()


def _parsimonious(fam_err: FloatArray, families: Sequence[str]) -> FloatArray:
    """Drop (set to NaN) each family whose held-out WAPE does not beat a family with fewer
    parameters by more than :data:`TIE_WAPE`: ``hill`` with slope 1 *is* ``michaelis_menten``,
    and on noise-free data the simpler family must be the one identified."""
    size = np.array([SPACES[f].size for f in families])
    out = fam_err.copy()
    for k in range(len(families)):
        simpler = np.isfinite(fam_err) & (size < size[k])
        if np.isfinite(fam_err[k]) and np.any(fam_err[simpler] <= fam_err[k] + TIE_WAPE):
            out[k] = math.nan
    return out


def _combined_prediction(cv: _CV, weights: FloatArray, i: int, members: Sequence[str]) -> FloatArray:
    """(K, T) held-out prediction of cell ``i``'s weighted combination (currency)."""
    total = np.zeros(cv.test.shape[::2])
    for name, wt in zip(members, weights):
        if wt > 0:
            total = total + wt * cv.predictions.get(name, np.full(cv.test.shape, np.nan))[:, i]
    return total


def _combined_errors(cv: _CV, weights: FloatArray, i: int, members: Sequence[str]) -> tuple[float, float]:
    """Held-out (MAPE, WAPE) of cell ``i``'s weighted combination."""
    test = cv.test[:, i]
    if not test.any():
        return math.nan, math.nan
    pred = _combined_prediction(cv, weights, i, members)
    actual = np.broadcast_to(cv.actual[i], pred.shape)
    return errors(pred[test], actual[test])


def _holdout_totals(cv: _CV, weights: FloatArray, i: int, members: Sequence[str]) -> dict[str, tuple[float, float]]:
    """Sums of absolute held-out errors and of held-out outcomes: combination and baselines."""
    if not cv.test[:, i].any():
        return {}
    out = {}
    preds = {"curves": _combined_prediction(cv, weights, i, members)[:, None, :]}
    preds |= {b: p[:, i][:, None, :] for b, p in cv.baselines.items()}
    for name, pred in preds.items():
        err, tot = _abs_totals(pred, cv.actual[i][None], cv.test[:, i][:, None, :])
        out[name] = (float(err[0]), float(tot[0]))
    return out


def _predictive_draws(cv: _CV, weights: FloatArray, i: int, opts: StageOptions,
                      rng: np.random.Generator) -> tuple[FloatArray, FloatArray, IntArray, IntArray]:
    """Cell ``i``'s held-out predictive ingredients at its M test points: curve draws (S, M) in
    currency (Laplace draws of each fold fit, combined with the weights), fold noise scales
    (M,), and the points' fold and period indices."""
    folds, periods = np.nonzero(cv.test[:, i])
    n_rows = cv.actual.shape[0]
    rows = folds * n_rows + i
    family_sigma = np.median([ff.sigma[rows] * cv.noise_factor[f][folds]
                              for f, ff in cv.fold_fits.items()], axis=0)
    total = np.zeros((CV_SAMPLES, folds.size))
    sigma = np.zeros(folds.size)
    u = np.tile(cv.u[i, periods][:, None], (CV_SAMPLES, 1))                      # (S*M, 1)
    for name, wt in zip(opts.members, weights):
        if wt <= 0:
            continue
        if name in cv.fold_fits:
            ff = cv.fold_fits[name]
            theta = laplace_draws(ff, rows, CV_SAMPLES, rng)                       # (S, M, P)
            unit = unit_values(name, theta.reshape(-1, theta.shape[2]), u).reshape(CV_SAMPLES, -1)
            total += wt * unit * (mean_factor(ff.sigma[rows]) * cv.scale[i, periods])[None]
            sigma += wt * ff.sigma[rows] * cv.noise_factor[name][folds]
        else:
            total += wt * np.nan_to_num(cv.predictions[name][folds, i, periods])[None]
            sigma += wt * family_sigma
    return total, sigma, folds, periods


def _conformal(cv: _CV, weights: FloatArray, opts: StageOptions,
               rng: np.random.Generator) -> tuple[FloatArray, float | None]:
    """Held-out interval coverage per cell, and the noise calibration for the final intervals.

    Intervals are curve draws times log-normal noise of scale ``c x sigma``. The factor ``c`` is
    calibrated on held-out errors, over time (split conformal): fold ``k`` uses the smallest
    ``c`` of :data:`CALIBRATION_GRID` that covers ``level`` of the test points of the folds
    before it (all cells; while fewer than :data:`MIN_CALIBRATION` such points exist it keeps
    the training-residual calibration, ``c = 1``), so every reported coverage is out of sample.
    The final factor uses every fold. Returns ``(coverage (R,), final factor or None)``.
    """
    n_rows = cv.actual.shape[0]
    if not cv.test.any():
        return np.full(n_rows, math.nan), None
    k = cv.test.shape[0]
    grid = CALIBRATION_GRID
    inside, fold_of, cell_of = [], [], []
    for i in range(n_rows):
        if not cv.test[:, i].any():
            continue
        total, sigma, folds, periods = _predictive_draws(cv, weights[i], i, opts, rng)
        z = rng.standard_normal(total.shape)
        s = grid[:, None, None] * sigma[None, None, :]                      # (G, 1, M)
        lo, hi = quantile_band(total[None] * np.exp(s * z[None] - 0.5 * s * s), opts.level, axis=1)
        actual = cv.actual[i, periods]
        inside.append((actual >= lo) & (actual <= hi))                      # (G, M)
        fold_of.append(folds)
        cell_of.append(np.full(folds.size, i))
    hits, folds, cells = np.concatenate(inside, axis=1), np.concatenate(fold_of), np.concatenate(cell_of)
    chosen = np.full(k, int(np.argmin(np.abs(grid - 1.0))))
    final: float | None = None
    for j in range(1, k + 1):
        cal = folds < j
        n = int(cal.sum())
        if n < MIN_CALIBRATION:
            continue
        target = min(1.0, opts.level * (n + 1) / n)
        ok = np.flatnonzero(hits[:, cal].mean(axis=1) >= target)
        pick = int(ok[0]) if ok.size else grid.size - 1
        if j < k:
            chosen[j] = pick
        else:
            final = float(grid[pick])
    hit = hits[chosen[folds], np.arange(folds.size)]
    covered = np.bincount(cells, weights=hit, minlength=n_rows)
    count = np.bincount(cells, minlength=n_rows)
    coverage = np.where(count > 0, covered / np.maximum(count, 1), math.nan)
    return coverage, final


# --------------------------------------------------------------------------------------------
# Members, samples and the final curve
# --------------------------------------------------------------------------------------------


def _nonparametric_full(d: OutcomeData, weights: FloatArray, opts: StageOptions) -> dict[int, tuple[str, Curve]]:
    """Full-history nonparametric curves (money units) of the cells that chose one."""
    out: dict[int, tuple[str, Curve]] = {}
    for method in opts.nonparametric:
        col = opts.members.index(method)
        rows = np.flatnonzero(weights[:, col] > 0)
        if not rows.size:
            continue
        if method == "isotonic":
            curves = isotonic_batch(d.u[rows], d.v[rows], d.w[rows])
        else:  # one global model over all data-rich cells, as in CV
            every = lightgbm_batch(d.u, d.v, d.w, period_features(d.months, d.u.shape[1]), opts.gbm)
            curves = [every[r] for r in rows]
        for r, c in zip(rows, curves):
            if c is not None:
                out[int(r)] = (method, pwl_in_money(c, d.x_unit[r], d.y_unit[r]))
    return out


def _samples(d: OutcomeData, full: dict[str, BatchFit], weights: FloatArray,
             nonparametric: dict[int, tuple[str, Curve]], opts: StageOptions,
             rng: np.random.Generator, prior: Prior | None) -> list[CurveSamples]:
    """Per cell, the sampled versions of its member curves (Laplace or block bootstrap)."""
    n_rows = d.u.shape[0]
    members: list[list[tuple[float, Curve | tuple[Curve, ...]]]] = [[] for _ in range(n_rows)]
    resample = None
    if opts.bootstrap:
        resample = block_weights(d.u.shape[1], opts.bootstrap, rng, opts.block)
    for f, fit in full.items():
        col = opts.members.index(f)
        rows = np.flatnonzero(weights[:, col] > 0)
        if not rows.size:
            continue
        if resample is not None:
            theta, sigma = bootstrap_thetas(
                f, d.u[rows], d.v[rows], d.w[rows], fit.theta[rows], resample,
                prior=None if prior is None else prior.take(rows), sigma=fit.sigma[rows])
        else:
            theta = laplace_draws(fit, rows, opts.n_samples, rng)
            sigma = np.broadcast_to(fit.sigma[rows][None], theta.shape[:2])
        for j, r in enumerate(rows):
            curve = to_curve(f, theta[:, j], d.x_unit[r], d.y_unit[r], sigma=sigma[:, j])
            members[r].append((float(weights[r, col]), curve))
    for r, (method, curve) in nonparametric.items():
        if resample is not None and method == "isotonic":
            refits = isotonic_batch(np.tile(d.u[r], (len(resample), 1)),
                                    np.tile(d.v[r], (len(resample), 1)), resample * d.w[r][None])
            sampled = tuple(pwl_in_money(c, d.x_unit[r], d.y_unit[r]) if c is not None else curve
                            for c in refits)
            members[r].append((1.0, sampled))
        else:
            members[r].append((1.0, curve))
    return [CurveSamples(tuple(m)) for m in members]


def _outcome_fit(
    d: OutcomeData, i: int, full: dict[str, BatchFit], weights: FloatArray,
    nonparametric: tuple[str, Curve] | None, samples: CurveSamples, labels: Sequence[str],
    opts: StageOptions, *, candidates: dict[str, float], holdout: tuple[float, float],
    coverage: float, totals: dict[str, tuple[float, float]], pooling: tuple[float, float],
    pooled: bool,
) -> OutcomeFit:
    chosen = {m: float(w) for m, w in zip(opts.members, weights) if w > 0}
    where = f"{d.name}[{i}]"
    if nonparametric is not None:
        family, point = nonparametric
    elif len(chosen) == 1:
        family = next(iter(chosen))
        fit = full[family]
        point = to_curve(family, fit.theta[i], d.x_unit[i], d.y_unit[i], sigma=fit.sigma[i], where=where)
    else:
        family = "average"
        point = None
    curve = _problem_curve(d, i, chosen, full, point, samples, opts)
    sigma, flags = _residual_check(d, i, curve, labels)
    return OutcomeFit(
        curve=curve, family=family, weights=chosen, candidates=candidates,
        holdout_mape=holdout[0], holdout_wape=holdout[1], coverage=coverage,
        baselines={k: (v[0] / v[1] if v[1] > 0 else math.nan) for k, v in totals.items()
                   if k != "curves"},
        sigma=sigma, pooled=pooled, pooling_weight=pooling[0], level_pooling_weight=pooling[1],
        samples=samples, flags=flags, holdout_totals=totals,
    )


def _problem_curve(d: OutcomeData, i: int, chosen: dict[str, float], full: dict[str, BatchFit],
                   point: Curve | None, samples: CurveSamples, opts: StageOptions) -> Curve:
    """The curve written to the problem file (see the module docstring, 5. Samples)."""
    if opts.bootstrap:
        if len(samples.members) == 1 and not isinstance(samples.members[0][1], tuple) \
                and samples.members[0][1].family != "pwl":
            return samples.members[0][1]          # a posterior-sample curve of one family
        return _tabulate(d, i, samples.mean)
    if point is not None:
        return point
    curves = {f: to_curve(f, full[f].theta[i], d.x_unit[i], d.y_unit[i], sigma=full[f].sigma[i])
              for f in chosen}
    return _tabulate(d, i, lambda x: sum(w * curves[f].value(x) for f, w in chosen.items()))


def _tabulate(d: OutcomeData, i: int, values) -> Curve:
    """A concave pwl through ``values(x)`` on a geometric money grid (flat beyond its end)."""
    spend = d.u[i][d.w[i] > 0] * d.x_unit[i]
    positive = spend[spend > 0]
    low = positive.min() / 20.0 if positive.size else d.x_unit[i] / 20.0
    high = max(float(spend.max()), d.x_unit[i]) * GRID_REACH
    grid = np.concatenate([[0.0], np.geomspace(low, high, GRID_POINTS)])
    return concave_pwl(grid, np.asarray(values(grid), float))


def _log_residuals_of(d: OutcomeData, i: int, curve: Curve) -> tuple[FloatArray, FloatArray]:
    """Centred log residuals of a money-unit curve on row ``i``'s observed periods, and all
    residuals (0 where not observed)."""
    obs = d.w[i] > 0
    fitted = curve.value(d.u[i] * d.x_unit[i]) / d.y_unit[i]
    with np.errstate(all="ignore"):
        r = np.log(d.v[i] + LOG_OFFSET) - np.log(np.maximum(fitted, 0.0) + LOG_OFFSET)
    r = np.where(obs, r, 0.0)
    centred = r[obs] - np.median(r[obs])
    return centred, r


def _residual_check(d: OutcomeData, i: int, curve: Curve, labels: Sequence[str]) -> tuple[float, tuple[str, ...]]:
    """Robust noise scale of the final curve's log residuals, and outlier-period flags."""
    obs = d.w[i] > 0
    kept, r = _log_residuals_of(d, i, curve)
    centred = np.zeros_like(r)
    centred[obs] = kept
    sigma = float(robust_sigma(centred[None], obs[None].astype(float))[0])
    z = np.abs(centred) / sigma
    out = np.flatnonzero(obs & (z > OUTLIER_Z))
    flags: tuple[str, ...] = ()
    if out.size:
        shown = ", ".join(f"{labels[t]} ({math.expm1(r[t]) * 100:+.0f} %)" for t in out[:4])
        more = f" and {out.size - 4} more" if out.size > 4 else ""
        flags = (f"{d.name}: {out.size} outlier period(s) down-weighted by the robust loss: "
                 f"{shown}{more}",)
    return sigma, flags
