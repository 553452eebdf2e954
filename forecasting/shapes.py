"""Concave family parameters from an operating point: level and elasticity at a spend.

Used to build the synthetic truth (each cell's curve passes through its base spend with a chosen
return on spend and elasticity) and to start the least-squares fits from the data's scale.

The elasticity of ``f`` at ``x0`` is ``x0 f'(x0) / f(x0)``: 1 for a straight line through the
origin, smaller for a curve that saturates. Each family reaches a point ``(x0, y0)`` with any
elasticity in its range:

=====================  ===============================  =====================================
family                 elasticity range                 free shape parameter
=====================  ===============================  =====================================
``log``                0 < e < 1                        none
``exp_saturation``     0 < e < 1                        none
``power``              0 < e <= 1                       none (``p = e``)
``michaelis_menten``   0 < e < 1                        none
``hill``               0 < e < slope                    ``slope`` (0 < slope <= 1)
=====================  ===============================  =====================================

Parameters are returned with ``scale = 1`` (money in currency units), ready for
:meth:`forecasting.curves.Curve.parametric`.
"""

from __future__ import annotations

import math

import numpy as np
from scipy.optimize import brentq

#: Families that :func:`params_through` (and the fitter) handle.
SHAPE_FAMILIES: tuple[str, ...] = ("log", "exp_saturation", "power", "michaelis_menten", "hill")


def _log_elasticity_log(s: float) -> float:
    """log of the elasticity of ``log(1 + x/b)`` at ``x/b = exp(s)``."""
    log1p_t = np.logaddexp(0.0, s)
    return s - log1p_t - math.log(log1p_t)


def _log_elasticity_exp(s: float) -> float:
    """log of the elasticity of ``1 - exp(-x/b)`` at ``x/b = exp(s)``."""
    t = math.exp(s)
    return s - (t + math.log(-math.expm1(-t)))


def _ratio_for_elasticity(log_elasticity, target: float, upper: float) -> float:
    """``x0/b`` at which a one-parameter shape has elasticity ``target``."""
    goal = math.log(target)
    return math.exp(brentq(lambda s: log_elasticity(s) - goal, -40.0, upper, xtol=1e-13))


def params_through(
    family: str, x0: float, y0: float, elasticity: float, *, slope: float | None = None
) -> dict[str, float]:
    """Parameters of the ``family`` curve with ``f(x0) = y0`` and elasticity ``elasticity`` at x0.

    Parameters
    ----------
    family
        One of :data:`SHAPE_FAMILIES`.
    x0, y0
        The operating point: spend (> 0) and outcome there (> 0), in any consistent units.
    elasticity
        ``x0 f'(x0) / f(x0)``, within the family's range (see the module docstring).
    slope
        Hill slope (0 < slope <= 1, above ``elasticity``); required for ``hill`` only.

    Returns
    -------
    dict
        Family parameters (``scale = 1`` where the family has one).

    Raises
    ------
    ValueError
        For an unknown family, a non-positive point or an elasticity outside the family's range.
    """
    if family not in SHAPE_FAMILIES:
        raise ValueError(f"unknown family {family!r}; expected one of {', '.join(SHAPE_FAMILIES)}")
    if not (x0 > 0 and y0 > 0 and math.isfinite(x0) and math.isfinite(y0)):
        raise ValueError(f"the operating point must be positive and finite, got ({x0!r}, {y0!r})")
    top = 1.0 if family == "power" else (slope if family == "hill" else 1.0)
    if family == "hill" and not (slope is not None and 0.0 < slope <= 1.0):
        raise ValueError(f"hill needs 0 < slope <= 1, got {slope!r}")
    inclusive = family == "power"
    if not (0.0 < elasticity < top or (inclusive and elasticity == top)):
        raise ValueError(
            f"{family}: elasticity must be in (0, {top:g}{']' if inclusive else ')'}, "
            f"got {elasticity!r}"
        )
    if family == "log":
        t = _ratio_for_elasticity(_log_elasticity_log, elasticity, 700.0)
        return {"a": y0 / math.log1p(t), "b": x0 / t}
    if family == "exp_saturation":
        t = _ratio_for_elasticity(_log_elasticity_exp, elasticity, 6.5)
        return {"a": y0 / -math.expm1(-t), "b": x0 / t}
    if family == "power":
        return {"a": y0 / x0**elasticity, "p": elasticity}
    if family == "michaelis_menten":
        lam = x0 * elasticity / (1.0 - elasticity)
        return {"alpha": y0 * (lam + x0) / x0, "lam": lam, "scale": 1.0}
    saturation = 1.0 - elasticity / slope  # u^s / (kappa^s + u^s) at x0
    kappa = x0 * ((1.0 - saturation) / saturation) ** (1.0 / slope)
    return {"beta": y0 / saturation, "kappa": kappa, "slope": float(slope), "scale": 1.0}
