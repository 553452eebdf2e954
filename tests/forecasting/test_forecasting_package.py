"""Package boundary and regressions in the curve module found while building the fitter."""

from __future__ import annotations

import subprocess
import sys
import warnings
from pathlib import Path

import numpy as np
import pytest

from forecasting.curves import Curve, CurveError

REPO = Path(__file__).resolve().parents[2]


def test_forecasting_imports_neither_formulations_nor_solver():
    code = (
        "import sys, forecasting.history, forecasting.fit, forecasting.synthetic\n"
        "bad = sorted(m for m in sys.modules if m.split('.')[0] in ('formulations', 'solver'))\n"
        "print(bad)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True,
                         check=True)
    assert out.stdout.strip() == "[]"


def test_numpy_scalar_parameters_are_numbers():
    curve = Curve.parametric("log", a=np.int64(5), b=np.float32(2.0))
    assert float(curve.value(2.0)) == pytest.approx(5 * np.log(2.0))
    with pytest.raises(CurveError, match="expected a number"):
        Curve.parametric("log", a=np.bool_(True), b=1.0)


def test_logistic_derivative_far_out_is_zero_without_warnings():
    curve = Curve.parametric("logistic", beta=10.0, lam=1.0)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert float(curve.derivative(5000.0)) == 0.0
