"""Curve uncertainty and prediction intervals.

A fitted curve carries :class:`CurveSamples`: ``S`` equally likely versions of the curve (money
units), either Laplace draws (parameters drawn from the Gaussian approximation of their posterior
at the fit, :func:`laplace_draws`) or block-bootstrap refits (:mod:`forecasting.bootstrap`). A
prediction for a period multiplies a sampled curve by the period factor and by log-normal noise of
the cell's residual scale ``sigma`` (mean one)::

    y = curve_s(x) * factor * exp(sigma z - sigma^2 / 2),   z ~ N(0, 1)

and an interval at level ``L`` is the ``(1 - L) / 2`` and ``(1 + L) / 2`` quantiles of the draws.
Sums (a plan's revenue over cells and periods) add the draws before taking quantiles, so curve
uncertainty that is shared within a cell is not averaged away.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

from forecasting.curves import PARAMETRIC_FAMILIES, PWL, Curve
from forecasting.parametric import SPACES, BatchFit

FloatArray = NDArray[np.float64]

#: Default nominal level of prediction intervals.
DEFAULT_LEVEL = 0.8
#: Default number of curve samples behind intervals.
DEFAULT_SAMPLES = 200


def sample_values(curve: Curve, x: FloatArray) -> FloatArray:
    """Per-sample values ``(S, n)`` of a curve at spends ``x`` (shape (n,)); pwl has S = 1."""
    xs = np.asarray(x, float).reshape(-1)
    if curve.family == PWL:
        return np.asarray(curve.value(xs), float)[None, :]
    params = {k: v[None, :] for k, v in curve.params.items()}
    with np.errstate(all="ignore"):
        values = PARAMETRIC_FAMILIES[curve.family].value(xs[:, None], params)
    return np.asarray(values, float).T


@dataclass(frozen=True)
class CurveSamples:
    """Sampled versions of one fitted curve: a weighted sum of member curves (money units).

    A member is a curve with ``S`` posterior samples, a tuple of ``S`` curves (e.g. bootstrap
    refits of a pwl curve), or a single pwl curve (the same in every sample). Sample ``s`` of the
    fitted curve is ``sum_m weight_m member_m(x; sample s)``.
    """

    members: tuple[tuple[float, Curve | tuple[Curve, ...]], ...]

    @property
    def n_samples(self) -> int:
        return max(_member_size(m) for _, m in self.members)

    def draws(self, x: FloatArray) -> FloatArray:
        """Curve values ``(S, n)`` at spends ``x`` (shape (n,))."""
        xs = np.asarray(x, float).reshape(-1)
        out = np.zeros((self.n_samples, xs.size))
        for weight, member in self.members:
            if isinstance(member, tuple):
                values = np.stack([c.value(xs) for c in member])
            else:
                values = sample_values(member, xs)
            out += weight * values          # a single-sample member broadcasts
        return out

    def mean(self, x: FloatArray) -> FloatArray:
        """Mean curve over the samples at ``x``."""
        return self.draws(x).mean(axis=0)


def _member_size(member: Curve | tuple[Curve, ...]) -> int:
    return len(member) if isinstance(member, tuple) else member.n_samples


def laplace_draws(fit: BatchFit, rows: NDArray[np.intp], n_samples: int,
                  rng: np.random.Generator) -> FloatArray:
    """``theta`` draws ``(S, R, P)`` from ``N(theta_hat, cov)`` of some rows of a batch fit,
    clipped to the parameter box (every draw is a valid concave curve)."""
    space = SPACES[fit.family]
    theta = fit.theta[rows]
    cov = fit.cov[rows]
    # symmetric square root that tolerates singular covariances
    vals, vecs = np.linalg.eigh(0.5 * (cov + np.swapaxes(cov, 1, 2)))
    root = vecs * np.sqrt(np.clip(vals, 0.0, None))[:, None, :]
    z = rng.standard_normal((n_samples, len(rows), space.size))
    draws = theta[None] + np.einsum("rpq,srq->srp", root, z)
    return np.clip(draws, space.lower, space.upper)


def noise_draws(center: FloatArray, sigma: FloatArray | float, rng: np.random.Generator) -> FloatArray:
    """``center * exp(sigma z - sigma^2 / 2)``: mean-one log-normal noise on sampled means."""
    s = np.asarray(sigma, float)
    z = rng.standard_normal(center.shape)
    return center * np.exp(s * z - 0.5 * s * s)


def noise_calibration(z: FloatArray, level: float) -> float:
    """Factor that makes a normal noise scale cover ``level`` of standardized residuals ``z``.

    ``z`` are residuals divided by their row's robust scale, pooled over rows (NaN ignored).
    The median absolute deviation is a robust but not level-matched scale: with tails a little
    heavier than normal its central 80 % interval is too narrow. The factor is the ratio of
    the residuals' central ``level`` spread to the normal one, ``(q_hi - q_lo) / (2 z_level)``,
    floored at 1 / 2 and capped at 2; 1 when fewer than 20 residuals are available.
    """
    from scipy.stats import norm

    zz = np.asarray(z, float)
    zz = zz[np.isfinite(zz)]
    if zz.size < 20:
        return 1.0
    lo, hi = np.quantile(zz, [(1.0 - level) / 2.0, (1.0 + level) / 2.0])
    factor = float((hi - lo) / (2.0 * norm.ppf((1.0 + level) / 2.0)))
    return min(max(factor, 0.5), 2.0)


def quantile_band(draws: FloatArray, level: float, axis: int = 0) -> tuple[FloatArray, FloatArray]:
    """Equal-tailed band of ``draws`` along ``axis`` at nominal ``level`` (0 < level < 1)."""
    if not 0.0 < level < 1.0:
        raise ValueError(f"interval level must be in (0, 1), got {level!r}")
    lo, hi = np.quantile(draws, [(1.0 - level) / 2.0, (1.0 + level) / 2.0], axis=axis)
    return lo, hi


def combined_unit_draws(
    members: Sequence[tuple[NDArray[np.float64], FloatArray]],
) -> FloatArray:
    """Weighted sum of member draws: ``members`` are (weights (R,), draws (S, R, n))."""
    out = None
    for weight, draws in members:
        part = weight[None, :, None] * draws
        out = part if out is None else out + part
    assert out is not None
    return out
