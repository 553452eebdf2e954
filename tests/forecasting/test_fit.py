"""Curve fitting: recovers known curves, picks a family that predicts, refuses bad data."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from forecasting.curves import Curve
from forecasting.crossval import MIN_TRAIN
from forecasting.fit import DEFAULT_FAMILIES, MIN_PERIODS, FitError, fit_curves, fit_response
from forecasting.history import HistoryError, read_history
from forecasting.shapes import params_through
from forecasting.synthetic import generate_history, read_true_curves

SAMPLE = Path(__file__).resolve().parents[2] / "solver" / "sample_data"


@pytest.fixture(scope="module")
def low_noise():
    """2 % noise, no seasonality: the fit should recover the truth to a few percent."""
    history, truth = generate_history(noise=0.02, seasonality=0.0)
    return history, truth, fit_curves(history)


def relative_errors(fitted: Curve, true: Curve, spends: np.ndarray) -> np.ndarray:
    return np.abs(fitted.value(spends) / true.value(spends) - 1.0)


# --------------------------------------------------------------------------------------------
# Recovery
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("outcome, worst, typical", [("revenue", 0.05, 0.015), ("acquisitions", 0.07, 0.02)])
def test_recovers_true_curves_at_half_one_and_twice_the_mean_spend(low_noise, outcome, worst, typical):
    _, truth, result = low_noise
    errors = np.array([
        relative_errors(getattr(cell, outcome).curve, getattr(truth.curves[cell.key], outcome),
                        np.array([0.5, 1.0, 2.0]) * cell.mean_spend)
        for cell in result
    ])
    assert errors.max() < worst, errors.max(axis=0)
    assert np.median(errors) < typical
    assert np.median(errors[:, 1]) < 0.005  # at the mean spend itself


def dominant(fit) -> str:
    """The member with the largest weight of a fit (its family when a single family won)."""
    return max(fit.weights, key=fit.weights.get)


def test_family_is_the_true_one_or_predicts_as_well_on_the_held_out_block(low_noise):
    history, truth, result = low_noise
    exact = 0
    for cell in result:
        true = truth.curves[cell.key].revenue
        if dominant(cell.revenue) == true.family:
            exact += 1
            continue
        rows = history[(history["category"] == cell.category) & (history["segment"] == cell.segment)]
        held_out = rows.sort_values("period")["spend"].to_numpy()[-cell.holdout_periods:]
        # predictions of the chosen curve on the held-out spends match the noise-free truth
        assert relative_errors(cell.revenue.curve, true, held_out).mean() < 0.02, cell.key
        # and its held-out error is no worse than the noise level
        assert cell.revenue.holdout_wape < 0.04, cell.key
    assert exact >= len(result) // 3


@pytest.mark.parametrize(
    "family, elasticity, slope",
    [("log", 0.4, None), ("exp_saturation", 0.5, None), ("power", 0.35, None),
     ("michaelis_menten", 0.6, None), ("hill", 0.3, 0.6)],
)
def test_noise_free_data_identify_the_family_and_its_parameters(family, elasticity, slope):
    rng = np.random.default_rng(3)
    spend = 8000.0 * np.exp(0.5 * rng.standard_normal(30))
    true = Curve.parametric(family, **params_through(family, 8000.0, 24000.0, elasticity, slope=slope))
    fit = fit_response(spend, true.value(spend))
    assert fit.family == family
    assert fit.holdout_wape < 1e-6
    grid = np.geomspace(1000.0, 64000.0, 20)
    assert relative_errors(fit.curve, true, grid).max() < 1e-6


def test_robust_loss_resists_an_outlier_month():
    rng = np.random.default_rng(4)
    spend = 5000.0 * np.exp(0.4 * rng.standard_normal(36))
    true = Curve.parametric("log", a=20000.0, b=4000.0)
    revenue = true.value(spend) * np.exp(0.03 * rng.standard_normal(36))
    revenue[10] *= 5.0  # a one-off campaign booked in the wrong cell
    fit = fit_response(spend, revenue, families=["log"])
    assert relative_errors(fit.curve, true, np.array([2500.0, 5000.0, 10000.0])).max() < 0.03


def test_bundled_sample_fit_accuracy():
    # Speed is measured in benchmarks/, never asserted here.
    history = read_history(SAMPLE / "email_history.csv")
    truth = read_true_curves(SAMPLE / "true_curves.json")
    result = fit_curves(history)
    at_mean = [
        relative_errors(c.revenue.curve, truth.curves[c.key].revenue, np.array([c.mean_spend]))[0]
        for c in result
    ]
    assert np.median(at_mean) < 0.03 and max(at_mean) < 0.08  # 12 % noise and 10 % seasonality


# --------------------------------------------------------------------------------------------
# Result object
# --------------------------------------------------------------------------------------------


def test_result_contents(low_noise):
    history, truth, result = low_noise
    # default: one-step-ahead rolling origin over the last 12 periods
    assert len(result) == 30 and result.families == DEFAULT_FAMILIES and result.holdout == 12
    assert list(result.curves) == sorted(truth.curves)
    cell = result[("advertising", "vip")]
    rows = history[(history["category"] == "advertising") & (history["segment"] == "vip")]
    assert cell.n_periods == 36 and cell.holdout_periods == 12 and cell.route == "fit"
    assert cell.mean_spend == pytest.approx(rows["spend"].mean())
    assert cell.last_spend == rows.sort_values("period")["spend"].iloc[-1]
    for fit in (cell.revenue, cell.acquisitions):
        assert set(fit.candidates) == set(DEFAULT_FAMILIES)
        assert sum(fit.weights.values()) == pytest.approx(1.0)
        assert set(fit.weights) <= set(DEFAULT_FAMILIES) and not fit.pooled
        # the combination's held-out error is at most the weighted mean of its members' errors
        # (triangle inequality), and no worse than the worst member
        bound = sum(w * fit.candidates[f] for f, w in fit.weights.items())
        assert fit.holdout_wape <= bound + 1e-12
        assert fit.family == (dominant(fit) if len(fit.weights) == 1 else "average")
    assert result.curves[cell.key].revenue is cell.revenue.curve
    assert result.curves[cell.key].acquisitions is cell.acquisitions.curve
    for pair in result.curves.values():  # valid problem-file curves
        for curve in pair:
            assert Curve.from_dict(curve.to_dict()) == curve
    with pytest.raises(KeyError):
        result[("advertising", "nobody")]


def test_table(low_noise):
    _, _, result = low_noise
    table = result.table()
    assert len(table) == 30
    assert list(table.columns[:6]) == [
        "category", "segment", "n_periods", "holdout_periods", "mean_spend", "last_spend",
    ]
    for outcome in ("revenue", "acquisitions"):
        assert table[f"{outcome}_curve_family"].isin(DEFAULT_FAMILIES + ("pwl",)).all()
        described = table[f"{outcome}_family"]
        assert (described.isin(DEFAULT_FAMILIES) | described.str.startswith("average(")).all()
        assert table[f"{outcome}_coverage"].between(0.0, 1.0).all()
    assert (table["status"] == "fitted").all() and (table["reason"] == "").all()
    assert (table["revenue_holdout_wape"] < 0.05).all() and (table["revenue_holdout_mape"] < 0.05).all()
    assert table["roi_at_mean"].between(1.4, 6.5).all()
    assert (table["marginal_roi_at_last"] > 0).all() and (table["cac_at_mean"] > 0).all()


def small_history(n: int = 8, **columns) -> pd.DataFrame:
    spend = np.linspace(1000.0, 3000.0, n)
    data = {
        "period": pd.period_range("2024-01", periods=n, freq="M"),
        "category": "advertising",
        "segment": "vip",
        "spend": spend,
        "revenue": 5000.0 * np.log1p(spend / 2000.0),
    }
    data.update(columns)
    return pd.DataFrame(data)


def test_history_without_new_customers_gives_no_acquisition_curves():
    result = fit_curves(small_history(14))
    cell = result[("advertising", "vip")]
    assert cell.acquisitions is None and result.curves[cell.key].acquisitions is None
    assert cell.holdout_periods == 14 - MIN_TRAIN  # the first fold keeps MIN_TRAIN periods
    assert result.table()["acquisitions_family"].isna().all()


def test_single_family_and_cv_options():
    result = fit_curves(small_history(14), families=["exp_saturation"], cv_folds=2, cv_horizon=1)
    assert result[("advertising", "vip")].revenue.family == "exp_saturation"
    assert result[("advertising", "vip")].revenue.curve.family == "exp_saturation"
    assert result[("advertising", "vip")].holdout_periods == 2
    two_step = fit_curves(small_history(14), families=["log"], cv_folds=2, cv_horizon=3)
    assert two_step[("advertising", "vip")].holdout_periods == 6


def test_likelihood_weights_concentrate_on_the_true_family_more_than_holdout_weights():
    """A saturating (exp_saturation) curve with 5 % noise, five histories: the Akaike weights
    (all 36 periods) put more weight on the true family than the held-out WAPE weights (12
    one-step errors), and both keep the weights a distribution."""
    true_weight = {"likelihood": [], "holdout": []}
    for seed in range(5, 10):
        rng = np.random.default_rng(seed)
        x = 1000.0 * np.exp(0.6 * rng.standard_normal(36))
        y = 4000.0 * (1.0 - np.exp(-x / 800.0)) * np.exp(0.05 * rng.standard_normal(36))
        for weighting, found in true_weight.items():
            fit = fit_response(x, y, weighting=weighting)
            assert abs(sum(fit.weights.values()) - 1.0) < 1e-12
            found.append(fit.weights.get("exp_saturation", 0.0))
    assert np.mean(true_weight["likelihood"]) > 0.85
    assert np.mean(true_weight["likelihood"]) > np.mean(true_weight["holdout"]) + 0.1


# --------------------------------------------------------------------------------------------
# Errors
# --------------------------------------------------------------------------------------------


def test_too_few_periods():
    with pytest.raises(FitError) as info:
        fit_curves(small_history(MIN_PERIODS - 1))
    assert "cell (advertising, vip)" in str(info.value)
    assert f"only {MIN_PERIODS - 1} period(s); at least {MIN_PERIODS}" in str(info.value)


def test_constant_spend_alone_is_refused_with_both_reasons():
    # constant spend is pooled; with nothing to pool from, the cell is refused saying both
    with pytest.raises(FitError, match=r"cell \(advertising, vip\): spend is constant \(2000 in all "
                       r"12 periods\); too little data .* fewer than 2 cells .* to borrow from"):
        fit_curves(small_history(12, spend=2000.0))


def donor_history(n: int = 14) -> pd.DataFrame:
    """Two data-rich cells (advertising x vip, prospects) to borrow from."""
    vip = small_history(n, new_customers=np.arange(n) + 5.0)
    prospects = vip.assign(segment="prospects", revenue=vip["revenue"] * 1.3)
    return pd.concat([vip, prospects], ignore_index=True)


def test_constant_spend_and_short_cells_are_pooled_with_their_reason():
    flat = small_history(14, new_customers=9.0).assign(category="technology", spend=2000.0,
                                                        revenue=5000.0 * np.log1p(1.0))
    short = small_history(5, new_customers=7.0).assign(category="technology", segment="prospects")
    result = fit_curves(pd.concat([donor_history(), flat, short], ignore_index=True))
    table = result.table().set_index(["category", "segment"])
    assert table.loc[("advertising", "vip"), "status"] == "fitted"
    assert table.loc[("technology", "vip"), "status"] == "pooled"
    assert "spend is constant (2000 in all 14 periods)" in table.loc[("technology", "vip"), "reason"]
    assert "only 5 periods" in table.loc[("technology", "prospects"), "reason"]
    flat_fit = result[("technology", "vip")].revenue
    # constant spend says nothing about the elasticity: it comes (almost) all from the prior
    assert flat_fit.pooled and flat_fit.pooling_weight > 0.9
    # its level still comes from its own data: revenue at its spend is close to the observed one
    assert flat_fit.curve.value(2000.0) == pytest.approx(5000.0 * np.log1p(1.0), rel=0.01)
    assert flat_fit.level_pooling_weight < 0.1


def test_all_zero_revenue():
    with pytest.raises(FitError, match=r"cell \(advertising, vip\): revenue is zero in all 8 periods"):
        fit_curves(small_history(revenue=0.0))


def test_all_zero_new_customers():
    with pytest.raises(FitError, match=r"cell \(advertising, vip\): new_customers is zero in all"):
        fit_curves(small_history(new_customers=0.0))


def test_every_bad_cell_is_named_in_one_error():
    short = small_history(MIN_PERIODS - 1, new_customers=5.0).assign(category="technology")
    no_revenue = small_history(14, new_customers=5.0, revenue=0.0).assign(segment="lapsed")
    no_spend = small_history(14, new_customers=5.0, spend=0.0).assign(segment="churned")
    flat = small_history(14, new_customers=5.0).assign(category="content", spend=100.0)
    history = pd.concat([donor_history(), short, no_revenue, no_spend, flat], ignore_index=True)
    with pytest.raises(FitError) as info:
        fit_curves(history)
    msg = str(info.value)
    assert f"cell (technology, vip): only {MIN_PERIODS - 1} period(s)" in msg
    assert "cell (advertising, lapsed): revenue is zero in all 14 periods" in msg
    assert "cell (advertising, churned): spend is zero in all 14 periods" in msg
    for fine in ("(advertising, vip)", "(advertising, prospects)", "(content, vip)"):
        assert fine not in msg  # fitted, or pooled (constant spend) with donors to borrow from
    lenient = fit_curves(history, strict=False)
    assert {r.key for r in lenient.refused} == {
        ("technology", "vip"), ("advertising", "lapsed"), ("advertising", "churned")}
    assert lenient[("content", "vip")].route == "pool"
    assert (lenient.table().set_index(["category", "segment"]).loc[("advertising", "lapsed"), "status"]
            == "refused")


def test_history_errors_come_first():
    with pytest.raises(HistoryError, match="negative value"):
        fit_curves(small_history(revenue=-1.0))


@pytest.mark.parametrize(
    "kwargs, text",
    [({"cv_folds": -1}, "cv_folds must be an integer >= 0"),
     ({"cv_horizon": 0}, "cv_horizon must be an integer >= 1"),
     ({"combine": "median"}, "combine must be 'average' or 'select'"),
     ({"weighting": "bic"}, "weighting must be one of likelihood, holdout"),
     ({"seasonality": "weekly"}, "seasonality must be 'auto', 'month', 'quarter' or 'none'"),
     ({"carryover": 1.0}, r"carryover must be a number in \[0, 1\) or 'auto'"),
     ({"nonparametric": ["xgboost"]}, "nonparametric must be distinct names"),
     ({"bootstrap": -5}, "bootstrap must be an integer >= 0"),
     ({"bootstrap": 2.5}, "bootstrap must be an integer >= 0"),
     ({"interval_level": 1.0}, r"interval_level must be in \(0, 1\)"),
     ({"n_samples": 3}, "n_samples must be an integer >= 10"),
     ({"families": ["logistic"]}, "families must be distinct names"),
     ({"families": []}, "families must be distinct names"),
     ({"families": ["log", "log"]}, "families must be distinct names")],
)
def test_bad_options(kwargs, text):
    with pytest.raises(ValueError, match=text):
        fit_curves(small_history(), **kwargs)


def test_fit_response_checks_its_input():
    with pytest.raises(FitError, match="my curve: spend and outcome must be finite and >= 0"):
        fit_response([1.0, 2.0, np.nan, 4, 5, 6], np.ones(6), where="my curve")
    with pytest.raises(ValueError, match="equal length"):
        fit_response(np.ones(6), np.ones(7))
