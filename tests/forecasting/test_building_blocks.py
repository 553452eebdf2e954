"""The pieces behind fit_curves, each against an independent computation or a known answer."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from forecasting.bootstrap import block_weights, default_block
from forecasting.carryover import geometric_adstock
from forecasting.crossval import MIN_TRAIN, errors, rolling_origin_splits
from forecasting.curves import Curve
from forecasting.diagnostics import MIN_OWN_PERIODS, diagnose
from forecasting.intervals import noise_calibration, quantile_band
from forecasting.nonparametric import concave_pwl, concave_regression, isotonic_curve, least_concave_majorant
from forecasting.panel import Panel
from forecasting.parametric import SPACES, fit_batch, start_thetas, unit_values
from forecasting.pooling import estimate_prior
from forecasting.seasonality import estimate_period_effects
from forecasting.shapes import params_through


# --- cross-validation ------------------------------------------------------------------------


def test_rolling_origin_folds_never_train_on_the_future():
    splits = rolling_origin_splits(36, folds=12, horizon=1)
    assert len(splits) == 12
    for k, s in enumerate(splits):
        train, test = s.masks(36)
        assert np.flatnonzero(test).tolist() == [24 + k]
        assert train[: 24 + k].all() and not train[24 + k:].any()
    assert len(rolling_origin_splits(MIN_TRAIN + 2, folds=12, horizon=1)) == 2
    assert rolling_origin_splits(MIN_TRAIN, folds=3, horizon=1) == []
    with pytest.raises(ValueError, match="folds must be >= 1"):
        rolling_origin_splits(36, folds=0)


def test_errors_are_mape_and_wape():
    mape, wape = errors(np.array([110.0, 45.0]), np.array([100.0, 50.0]))
    assert mape == pytest.approx(0.1) and wape == pytest.approx(15.0 / 150.0)


# --- carry-over and bootstrap ----------------------------------------------------------------


def test_adstock_is_normalized_and_restarts_after_gaps():
    spend = np.array([[100.0, 100.0, 0.0, 80.0, 80.0]])
    observed = np.array([[True, True, True, False, True]])
    out = geometric_adstock(spend, observed, 0.5)[0]
    assert out[:3].tolist() == [100.0, 100.0, 50.0]
    assert out[4] == 80.0  # restarts at steady state after the gap
    assert np.array_equal(geometric_adstock(spend, observed, 0.0), spend)
    with pytest.raises(ValueError, match=r"carry-over must be in \[0, 1\)"):
        geometric_adstock(spend, observed, 1.0)


def test_block_bootstrap_weights_resample_whole_blocks():
    rng = np.random.default_rng(0)
    w = block_weights(36, 500, rng)
    assert w.shape == (500, 36) and np.all(w.sum(axis=1) == 36)
    assert default_block(36) == 3
    # every period is drawn about once per resample on average (moving blocks, edge effects aside)
    assert np.abs(w.mean(axis=0)[6:-6] - 1.0).max() < 0.15
    # blocks: a drawn period's neighbour is drawn more often than in an iid bootstrap
    drawn = w[:, 10] > 0
    assert (w[drawn, 11] > 0).mean() > (w[:, 11] > 0).mean() + 0.1


# --- nonparametric ---------------------------------------------------------------------------


def test_least_concave_majorant_is_concave_above_every_point_and_tight():
    rng = np.random.default_rng(1)
    x = np.sort(rng.uniform(0.0, 10.0, 40))
    y = np.sqrt(x) + 0.2 * rng.standard_normal(40)
    hx, hy = least_concave_majorant(x, y)
    curve = concave_pwl(hx, hy)  # the majorant with the origin: a valid problem-file curve
    assert np.all(curve.value(x) >= y - 1e-12)
    slopes = np.diff(hy) / np.diff(hx)
    assert np.all(np.diff(slopes) <= 1e-12) and np.all(slopes >= 0)
    assert np.all(np.isin(hx, x))  # knots are data points: nothing smaller would do


def test_concave_regression_recovers_a_concave_function_and_beats_any_other_concave_fit():
    x = np.linspace(0.1, 4.0, 30)
    y = 2.0 * np.log1p(x)
    xk, yk = concave_regression(x, y)
    fit = Curve.pwl(np.column_stack([xk, yk]))
    assert np.abs(fit.value(x) - y).max() < 0.05
    # least squares: no worse than the true curve itself (also concave and through the origin)
    noisy = y + 0.1 * np.random.default_rng(2).standard_normal(30)
    xk, yk = concave_regression(x, noisy)
    sse = ((Curve.pwl(np.column_stack([xk, yk])).value(x) - noisy) ** 2).sum()
    assert sse <= ((y - noisy) ** 2).sum() + 1e-9
    curve = concave_pwl(xk, yk)
    assert curve.family == "pwl" and Curve.from_dict(curve.to_dict()) == curve


def test_isotonic_route_gives_a_valid_concave_curve():
    rng = np.random.default_rng(3)
    u = rng.uniform(0.3, 2.0, 36)
    v = np.log1p(u) / np.log(2.0) * np.exp(0.05 * rng.standard_normal(36))
    curve = isotonic_curve(u, v, np.ones(36))
    grid = np.linspace(0.0, 3.0, 50)
    d = np.diff(curve.value(grid))
    assert np.all(d >= -1e-12) and np.all(np.diff(d) <= 1e-9)
    assert np.abs(curve.value(np.array([1.0]))[0] - 1.0) < 0.1


# --- parametric engine -----------------------------------------------------------------------


@pytest.mark.parametrize("family", sorted(SPACES))
def test_batch_fit_recovers_every_family_from_noise_free_rows(family):
    rng = np.random.default_rng(4)
    u = np.exp(0.4 * rng.standard_normal((3, 24)))
    elasticities = [0.2, 0.35, 0.5]  # hill (slope 0.6) reaches below its slope
    truths = [Curve.parametric(family, **params_through(family, 1.0, 1.0, e, slope=0.6 if family == "hill" else None))
              for e in elasticities]
    v = np.stack([t.value(u[i]) for i, t in enumerate(truths)])
    w = np.ones_like(u)
    fit = fit_batch(family, u, v, w, start_thetas(family, u, v, w))
    grid = np.linspace(0.2, 3.0, 15)
    fitted = unit_values(family, fit.theta, np.tile(grid, (3, 1)))
    true = np.stack([t.value(grid) for t in truths])
    assert np.abs(fitted / true - 1.0).max() < 1e-5
    assert fit.ok.all() and np.all(fit.sigma < 1e-3)


# --- period effects, pooling, diagnosis ------------------------------------------------------


def test_period_effects_recover_a_known_season_and_trend():
    periods = pd.period_range("2023-01", periods=36, freq="M")
    season = np.exp(0.15 * np.sin(2 * np.pi * np.arange(12) / 12))
    season /= season.mean()
    years = (np.arange(36) - 35) / 12.0
    offsets = np.array([0.3, -0.2, 0.0, 0.1])[:, None]
    resid = offsets + np.log(season[periods.month - 1])[None, :] + 0.05 * years[None, :]
    effects = estimate_period_effects(resid, np.ones_like(resid), periods, "month", True)
    assert np.allclose(effects.season, season, rtol=5e-3)  # a weak ridge prior shrinks it
    assert effects.trend == pytest.approx(0.05, abs=1e-3)
    assert effects.factors(periods[-1:])[0] == pytest.approx(season[11], rel=5e-3)


def test_pooling_prior_is_the_shrunken_additive_fit_of_the_donors():
    keys = [(c, s) for c in "ab" for s in "xyz"]
    value = np.array([0.5, 0.5, 0.5, 1.5, 1.5, 1.5])  # category b has a higher log return on spend
    se = np.full(6, 0.01)
    donors = np.array([True, True, True, True, True, False])
    prior = estimate_prior(keys, donors, value, se, np.full(6, 0.4), se)
    assert prior is not None and prior.n_donors == 5
    # the non-donor cell (b, z) is pulled towards its category, not the overall mean
    assert prior.log_roi[5] > 1.0 and prior.elasticity[5] == pytest.approx(0.4)
    assert estimate_prior(keys, np.eye(6, dtype=bool)[0], value, se, value, se) is None


def test_diagnosis_routes_and_reasons():
    n = 20
    rows = []
    for segment, spend, revenue, periods in [
        ("rich", np.linspace(100, 300, n), np.linspace(500, 900, n), n),
        ("short", np.linspace(100, 300, 6), np.full(6, 700.0), 6),
        ("flat", np.full(n, 200.0), np.linspace(500, 900, n), n),
        ("dead", np.linspace(100, 300, n), np.zeros(n), n),
    ]:
        rows.append(pd.DataFrame({"period": pd.period_range("2024-01", periods=periods, freq="M"),
                                  "category": "c", "segment": segment, "spend": spend, "revenue": revenue}))
    history = pd.concat(rows, ignore_index=True)
    history = history.drop(history.index[(history["segment"] == "rich") & (history["period"] == pd.Period("2024-05", "M"))])
    panel = Panel.from_history(history)
    result = {panel.keys[i][1]: d for i, d in enumerate(diagnose(panel))}
    assert result["rich"].route == "fit" and "1 missing period(s) inside the history: 2024-05" in result["rich"].flags
    assert result["short"].route == "pool" and f"fewer than {MIN_OWN_PERIODS}" in result["short"].reasons[0]
    assert result["flat"].route == "pool" and "spend is constant" in result["flat"].reasons[0]
    assert result["dead"].route == "refuse" and "revenue is zero in all 20 periods" in result["dead"].reasons


# --- intervals -------------------------------------------------------------------------------


def test_noise_calibration_and_quantile_band():
    z = np.random.default_rng(5).standard_normal(20_000) * 1.5  # residuals 1.5x the assumed noise
    assert noise_calibration(z, 0.8) == pytest.approx(1.5, rel=0.05)
    lo, hi = quantile_band(np.arange(101.0)[:, None], 0.8)
    assert lo[0] == pytest.approx(10.0) and hi[0] == pytest.approx(90.0)
    assert math.isclose(float(np.mean((z / 1.5 > -1.2816) & (z / 1.5 < 1.2816))), 0.8, abs_tol=0.01)
