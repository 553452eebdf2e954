"""Family parameters from a level and an elasticity at an operating point."""

from __future__ import annotations

import pytest

from forecasting.curves import Curve
from forecasting.shapes import SHAPE_FAMILIES, params_through


@pytest.mark.parametrize("family", SHAPE_FAMILIES)
@pytest.mark.parametrize("elasticity", [0.05, 0.3, 0.6, 0.9])
def test_curve_passes_through_the_point_with_the_elasticity(family, elasticity):
    slope = min(1.0, elasticity + 0.05) if family == "hill" else None
    curve = Curve.parametric(family, **params_through(family, 7500.0, 21000.0, elasticity, slope=slope))
    value = float(curve.value(7500.0))
    assert value == pytest.approx(21000.0, rel=1e-9)
    assert 7500.0 * float(curve.derivative(7500.0)) / value == pytest.approx(elasticity, rel=1e-7)


def test_power_accepts_a_straight_line():
    assert params_through("power", 2.0, 6.0, 1.0) == {"a": 3.0, "p": 1.0}


@pytest.mark.parametrize(
    "family, elasticity, slope, text",
    [
        ("log", 1.0, None, "elasticity must be in (0, 1)"),
        ("exp_saturation", 0.0, None, "elasticity must be in (0, 1)"),
        ("michaelis_menten", 1.2, None, "elasticity must be in (0, 1)"),
        ("hill", 0.7, 0.6, "elasticity must be in (0, 0.6)"),
        ("hill", 0.5, 1.5, "0 < slope <= 1"),
        ("hill", 0.5, None, "0 < slope <= 1"),
        ("logistic", 0.5, None, "unknown family"),
    ],
)
def test_out_of_range_requests_are_errors(family, elasticity, slope, text):
    with pytest.raises(ValueError) as info:
        params_through(family, 1.0, 1.0, elasticity, slope=slope)
    assert text in str(info.value)


def test_point_must_be_positive():
    with pytest.raises(ValueError, match="positive and finite"):
        params_through("log", 0.0, 1.0, 0.5)
