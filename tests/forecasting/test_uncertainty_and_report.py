"""Intervals, bootstrap samples in the problem file, plan-period curves, the fit report, sklearn API."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest

from forecasting.curves import Curve
from forecasting.fit import fit_curves
from forecasting.report import cell_plot_data
from forecasting.synthetic import generate_history

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def seasonal():
    """36 months + 3 unseen, 12 % noise and 20 % seasonality."""
    history, truth = generate_history(months=39, noise=0.12, seasonality=0.2, extras=False)
    cutoff = sorted(history["period"].unique())[36]
    seen, unseen = history[history["period"] < cutoff], history[history["period"] >= cutoff]
    return seen, unseen, truth, fit_curves(seen)


def test_seasonality_is_estimated_and_applied_to_the_plan_periods(seasonal):
    _, _, truth, fit = seasonal
    effects = fit.effects["revenue"]
    assert effects.kind == "month"
    assert np.allclose(effects.season, truth.seasonality, atol=0.03)
    december = fit.plan_curves(1, ["2026-12"])
    july = fit.plan_curves(1, ["2026-07"])
    key = fit.cells[0].key
    ratio = december[key].revenue.value(1000.0) / july[key].revenue.value(1000.0)
    assert ratio == pytest.approx(truth.seasonality[11] / truth.seasonality[6], rel=0.05)
    quarter = fit.plan_curves(3)[key].revenue  # three average months: 3 r(x / 3)
    assert quarter.value(3000.0) == pytest.approx(3 * fit[key].revenue.curve.value(1000.0))


def test_prediction_intervals_cover_unseen_months_near_nominal(seasonal):
    _, unseen, _, fit = seasonal
    inside = total = 0
    for period, rows in unseen.groupby("period"):
        spend = {(c, s): x for c, s, x in zip(rows["category"], rows["segment"], rows["spend"])}
        pred = fit.predict(spend, plan_periods=[str(period)]).set_index(["category", "segment"])
        actual = rows.set_index(["category", "segment"])["revenue"]
        lo, hi = pred.loc[actual.index, "revenue_lower"], pred.loc[actual.index, "revenue_upper"]
        inside += int(((actual >= lo) & (actual <= hi)).sum())
        total += len(actual)
        assert pred.loc[("total", "total"), "revenue_lower"] < actual.sum() * 1.2
    assert total == 90 and abs(inside / total - fit.level) <= 0.12  # 90 points: +-12 is ~3 sd
    held_out = fit.backtest()
    curves = held_out[(held_out["outcome"] == "revenue") & (held_out["method"] == "curves")].iloc[0]
    assert abs(curves["coverage"] - fit.level) <= 0.05  # rolling-origin coverage, 360 points


def test_backtest_beats_the_naive_baselines(seasonal):
    table = seasonal[3].backtest()
    wape = table[table["outcome"] == "revenue"].set_index("method")["wape"]
    assert wape["curves"] < 0.8 * wape["last_roi"] and wape["curves"] < 0.8 * wape["average_roi"]
    assert set(table["method"]) == {"curves", "last_roi", "average_roi"}


def test_bootstrap_writes_posterior_sample_curves_that_the_problem_file_accepts():
    history, _ = generate_history(months=24, noise=0.1, extras=False)
    fit = fit_curves(history, bootstrap=20, combine="select", seed=1)
    curve = fit.cells[0].revenue.curve
    assert curve.n_samples == 20 and curve.family != "pwl"
    assert Curve.from_dict(curve.to_dict()) == curve
    again = fit_curves(history, bootstrap=20, combine="select", seed=1)
    assert again.cells[0].revenue.curve == curve  # deterministic for a seed


def test_fit_report_plot_data(seasonal):
    _, _, _, fit = seasonal
    key = fit.cells[0].key
    data = cell_plot_data(fit, key, "revenue")
    assert len(data.points) == 36 and {"period", "spend", "observed", "adjusted"} <= set(data.points)
    c = data.curve
    assert np.all(c["lower"] <= c["fitted"] + 1e-9) and np.all(c["fitted"] <= c["upper"] + 1e-9)
    assert np.all(c["pred_lower"] <= c["lower"] + 1e-9) and np.all(c["upper"] <= c["pred_upper"] + 1e-9)
    assert data.info["status"] == "fitted" and 0 < data.info["holdout_wape"] < 0.3
    assert data.to_dict()["info"]["category"] == key[0]
    with pytest.raises(KeyError):
        cell_plot_data(fit, ("nope", "nope"))


def test_sklearn_estimator_api():
    from sklearn.base import clone
    from sklearn.utils.estimator_checks import check_estimator

    from forecasting.estimators import ConcaveCurveRegressor, IsotonicConcaveRegressor, curve_of

    rng = np.random.default_rng(0)
    x = 500.0 * np.exp(0.4 * rng.standard_normal((30, 1)))
    y = 50.0 * np.log1p(x[:, 0] / 200.0) * np.exp(0.03 * rng.standard_normal(30))
    model = ConcaveCurveRegressor(families=("log", "power")).fit(x, y)
    assert model.get_params()["families"] == ("log", "power") and hasattr(model, "curve_")
    assert np.allclose(model.predict([[500.0]]), 50.0 * np.log1p(2.5), rtol=0.03)
    lo, hi = model.predict_interval([[500.0]])
    assert lo[0] < model.predict([[500.0]])[0] < hi[0]
    assert isinstance(curve_of(model), Curve)
    assert clone(model).get_params() == model.get_params()
    for estimator in (ConcaveCurveRegressor(cv_folds=2), IsotonicConcaveRegressor()):
        check_estimator(estimator)


def test_decision_quality_benchmark_runs_on_a_small_instance():
    sys.path.insert(0, str(ROOT / "benchmarks"))
    try:
        import decision_quality as dq
    finally:
        sys.path.remove(str(ROOT / "benchmarks"))
    case = dq.make_case(0.05, 24, 2024)
    planned = dq.plan_case(case)
    row = {m: dq.regret_of(planned, planned.plans[m]) for m in dq.METHODS}
    assert row["product"] < 0.03 and row["product"] < row["status_quo"] / 3
    assert row["product"] < row["last_roi"] and row["product"] < row["average_roi"]
    inside, total = dq.future_coverage(planned.fit, case.unseen)
    assert total == 180 and 0.6 < inside / total < 0.95
    # --explain: every cell's concavity gap >= 0, the rest (across the rules) >= 0 by the
    # optimality of the true optimum, tighter caps cannot raise the optimum
    cells, counter = dq.explain(case, planned)
    assert len(cells) == 30 and (cells["loss"] >= -1e-12).all()
    assert counter["rules"] >= -1e-5 and counter["optimum_caps_1x"] >= -1e-6
    assert abs(cells["loss"].sum() + counter["rules"] - row["product"]) < 1e-12
    assert set(cells["beyond"]) <= {"-", "p", "o", "po"}
