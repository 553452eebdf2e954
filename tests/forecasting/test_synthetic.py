"""Synthetic history: deterministic, realistic magnitudes, consistent with its true curves."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from forecasting.curves import Curve
from forecasting.history import read_history
from forecasting.shapes import SHAPE_FAMILIES
from forecasting.synthetic import (
    CATEGORIES,
    CLV_CAC_RATIO,
    HISTORY_FILE,
    SEGMENTS,
    TRUTH_FILE,
    generate_history,
    main,
    read_true_curves,
    write_synthetic,
)

REPO = Path(__file__).resolve().parents[2]
SAMPLE = REPO / "solver" / "sample_data"


@pytest.fixture(scope="module")
def default():
    return generate_history()


def test_shape_and_columns(default):
    history, truth = default
    assert len(history) == len(CATEGORIES) * len(SEGMENTS) * 36 == 1080
    assert list(history.columns) == [
        "period", "category", "segment", "spend", "revenue", "new_customers",
        "emails_sent", "conversions", "cost_labor", "cost_vendor",
    ]
    periods = history["period"].drop_duplicates().astype(str).tolist()
    assert periods == pd.period_range("2023-01", periods=36, freq="M").astype(str).tolist()
    assert set(truth.curves) == {(c, s) for c in CATEGORIES for s in SEGMENTS}
    assert len(SEGMENTS) >= 5 and set(CATEGORIES) == {
        "technology", "content_creation", "list_management", "human_resources",
        "advertising", "testing_optimization",
    }
    counts = history[["new_customers", "emails_sent", "conversions"]]
    assert np.array_equal(counts, np.rint(counts))
    np.testing.assert_allclose(history["cost_labor"] + history["cost_vendor"], history["spend"], atol=0.011)


def test_deterministic_for_a_seed(default):
    history, truth = default
    again, truth_again = generate_history()
    pd.testing.assert_frame_equal(history, again)
    assert truth.to_dict() == truth_again.to_dict()
    other, other_truth = generate_history(seed=7)
    assert not history["revenue"].equals(other["revenue"])
    assert other_truth.to_dict()["cells"] != truth.to_dict()["cells"]


def test_curves_depend_on_the_seed_only(default):
    _, truth = default
    _, short_quiet = generate_history(months=12, noise=0.0, seasonality=0.0)
    assert short_quiet.curves == truth.curves


def test_true_curves_are_concave_families_with_a_mix(default):
    _, truth = default
    for kind in ("revenue", "acquisitions"):
        families = [getattr(pair, kind).family for pair in truth.curves.values()]
        assert set(families) == set(SHAPE_FAMILIES)
    hills = [c for pair in truth.curves.values() for c in pair if c.family == "hill"]
    assert all(float(c.params["slope"][0]) <= 1.0 for c in hills)


def test_magnitudes_are_realistic(default):
    history, truth = default
    monthly = history.groupby("period")["spend"].sum()
    assert monthly.between(150_000, 250_000).all()
    assert sum(truth.base_spend.values()) == pytest.approx(200_000, abs=1)
    roi, marginal = [], []
    for key, pair in truth.curves.items():
        x0 = truth.base_spend[key]
        roi.append(float(pair.revenue.value(x0)) / x0)
        marginal.append(float(pair.revenue.derivative(x0)))
        new_customers = float(pair.acquisitions.value(x0))
        assert 10 <= new_customers <= 1000, (key, new_customers)
    assert all(1.5 - 1e-9 <= r <= 6.0 + 1e-9 for r in roi)
    marginal = np.array(marginal)
    # something for an optimizer to find: clearly over- and under-invested cells
    assert (marginal < 0.8).sum() >= 4 and (marginal > 2.5).sum() >= 4


def test_clv_cac_rule_binds_for_lapsed_but_is_achievable(default):
    _, truth = default

    def segment_cac(segment: str, factor: float) -> float:
        keys = [k for k in truth.curves if k[1] == segment]
        spend = sum(truth.base_spend[k] * factor for k in keys)
        new = sum(float(truth.curves[k].acquisitions.value(truth.base_spend[k] * factor)) for k in keys)
        return spend / new

    limits = {s: truth.segment_clv[s] / CLV_CAC_RATIO for s in SEGMENTS}
    assert all(100 <= clv <= 600 for clv in truth.segment_clv.values())
    assert segment_cac("lapsed", 1.0) > limits["lapsed"]
    for segment in ("new_subscribers", "active_customers", "vip"):
        assert segment_cac(segment, 1.0) < limits[segment]
    for segment in SEGMENTS:  # cutting a segment's spend lowers its CAC below the limit
        assert min(segment_cac(segment, f) for f in np.geomspace(0.01, 1.0, 20)) < limits[segment]


def test_noise_free_history_lies_on_the_true_curves():
    history, truth = generate_history(months=12, noise=0.0, seasonality=0.0)
    for (c, s), g in history.groupby(["category", "segment"]):
        pair = truth.curves[(c, s)]
        np.testing.assert_allclose(g["revenue"], pair.revenue.value(g["spend"].to_numpy()), atol=0.006)
        np.testing.assert_allclose(g["new_customers"], pair.acquisitions.value(g["spend"].to_numpy()), atol=0.5)


def test_noise_and_seasonality_levels():
    history, truth = generate_history(noise=0.12, seasonality=0.10, months=120)
    assert len(truth.seasonality) == 12
    assert np.mean(truth.seasonality) == pytest.approx(1.0)
    assert np.argmax(truth.seasonality) == 11  # December peak
    assert max(abs(f - 1) for f in truth.seasonality) == pytest.approx(0.10)
    expected = np.concatenate([
        truth.curves[(c, s)].revenue.value(g["spend"].to_numpy())
        * np.take(truth.seasonality, g["period"].dt.month.to_numpy() - 1)
        for (c, s), g in history.groupby(["category", "segment"], sort=False)
    ])
    order = history.sort_values(["category", "segment"], kind="stable")
    ratio = np.log(order["revenue"].to_numpy() / expected)
    assert np.std(ratio) == pytest.approx(0.12, rel=0.1)
    assert abs(np.mean(np.exp(ratio)) - 1.0) < 0.01  # mean-one noise


def test_trend_is_centred_on_the_middle_of_the_history():
    flat, truth = generate_history(noise=0.0, seasonality=0.0, months=25)
    growing, _ = generate_history(noise=0.0, seasonality=0.0, months=25, trend=0.2)
    ratio = (growing["revenue"] / flat["revenue"]).groupby(growing["period"]).mean()
    assert ratio.iloc[12] == pytest.approx(1.0, abs=1e-6)
    assert ratio.iloc[-1] == pytest.approx(1.2, rel=1e-4)
    assert ratio.iloc[0] == pytest.approx(1 / 1.2, rel=1e-4)


@pytest.mark.parametrize(
    "kwargs", [{"months": 0}, {"noise": -0.1}, {"seasonality": 1.0}, {"spend_variation": 0.0},
               {"monthly_budget": -5.0}, {"start": "not a month"}],
)
def test_bad_settings_are_errors(kwargs):
    with pytest.raises(ValueError):
        generate_history(**kwargs)


def test_write_and_read_back(tmp_path, default):
    history, truth = default
    csv_path, json_path = write_synthetic(tmp_path / "out", history, truth)
    assert csv_path.name == HISTORY_FILE and json_path.name == TRUTH_FILE
    pd.testing.assert_frame_equal(read_history(csv_path), history)
    assert ",98," in csv_path.read_text().splitlines()[1]  # counts are written as integers
    back = read_true_curves(json_path)
    assert back.curves == truth.curves
    assert back.seasonality == truth.seasonality and back.base_spend == truth.base_spend
    data = json.loads(json_path.read_text())
    cell = data["cells"][0]
    assert Curve.from_dict(cell["revenue"]) == truth.curves[(cell["category"], cell["segment"])].revenue
    assert data["segments"]["lapsed"] == {"clv": 150.0, "min_clv_cac_ratio": CLV_CAC_RATIO}


def test_bundled_sample_is_the_default_generator_output(default):
    history, truth = default
    pd.testing.assert_frame_equal(read_history(SAMPLE / HISTORY_FILE), history)
    assert read_true_curves(SAMPLE / TRUTH_FILE).to_dict() == truth.to_dict()
    assert (SAMPLE / HISTORY_FILE).stat().st_size < 150_000


def test_command_line(tmp_path, capsys):
    assert main(["--out", str(tmp_path), "--seed", "5", "--months", "12", "--noise", "0.05"]) == 0
    assert "360 rows" in capsys.readouterr().out
    history = read_history(tmp_path / HISTORY_FILE)
    expected, _ = generate_history(seed=5, months=12, noise=0.05)
    pd.testing.assert_frame_equal(history, expected)


def test_module_entry_point(tmp_path):
    out = subprocess.run(
        [sys.executable, "-m", "forecasting.synthetic", "--out", str(tmp_path), "--months", "6",
         "--no-extras"],
        cwd=REPO, capture_output=True, text=True, check=True,
    )
    assert "180 rows" in out.stdout
    assert list(read_history(tmp_path / HISTORY_FILE).columns) == [
        "period", "category", "segment", "spend", "revenue", "new_customers",
    ]


def test_command_line_reports_bad_settings(tmp_path, capsys):
    with pytest.raises(SystemExit) as info:
        main(["--out", str(tmp_path), "--noise", "-1"])
    assert info.value.code == 2
    assert "noise must be in [0, 1]" in capsys.readouterr().err
