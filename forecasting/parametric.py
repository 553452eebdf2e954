"""Batched robust fitting of the concave families in log space (the parametric engine).

Every fit in :mod:`forecasting` -- a cell's full-history fit, its rolling-origin folds, block
bootstrap resamples, pooled refits -- is a row of one *batch*: ``B`` rows of ``n`` observations
each, with per-observation weights (0 = not in this row's training set; a bootstrap count
otherwise). One Levenberg-Marquardt iteration updates all rows with a few numpy operations, so a
batch of 3000 rows costs about as much as a handful of single fits.

Model, in normalized units (spend ``u = x / mean spend``, outcome ``v = y / mean outcome`` of the
cell), for a family ``f`` with parameters ``theta`` (unconstrained)::

    log(v_t + d) = log(f(u_t; theta) + d) + e_t,      e_t ~ noise of scale sigma (robust)

with ``d = LOG_OFFSET`` so that an occasional zero outcome has a finite residual. Fitting in log
space is the maximum-likelihood fit for multiplicative noise (the residuals of a month with twice
the spend are not twice as large). The loss is ``soft_l1`` (pseudo-Huber) on ``e_t / sigma``,
switching from quadratic to linear at :data:`ROBUST_SCALE` standard deviations, so a one-off
outlier month cannot pull the curve. An optional Gaussian prior on the log level ``log f(1)`` and
the elasticity ``f'(1) / f(1)`` at the mean spend adds two pseudo-observations (partial pooling,
:mod:`forecasting.pooling`).

Parameters are transformed so that every iterate is a valid concave curve: amplitudes and scales
in log space within wide bounds, ``power``'s exponent in [0.01, 1] and ``hill``'s slope in
[0.05, 1] through a logistic map.

The fitted curve is the *median* response; :func:`to_curve` multiplies it by
``exp(sigma^2 / 2)`` to give the mean response (the log-normal mean), which is what revenue
predictions and the optimizer need.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray
from scipy.special import expit, logit

from forecasting.curves import PARAMETRIC_FAMILIES, Curve
from forecasting.shapes import SHAPE_FAMILIES, params_through

FloatArray = NDArray[np.float64]

#: Families the engine fits (concave for every parameter it can reach).
FIT_FAMILIES: tuple[str, ...] = SHAPE_FAMILIES
#: Offset (normalized units, i.e. a fraction of the cell's mean outcome) inside the log residual.
LOG_OFFSET = 0.02
#: The robust loss turns linear beyond this many noise standard deviations.
ROBUST_SCALE = 2.0
#: Smallest noise scale assumed (log units): keeps noise-free data well conditioned while its
#: log-normal mean correction ``exp(MIN_SIGMA^2 / 2) - 1 = 5e-9`` stays far below any tolerance.
MIN_SIGMA = 1e-4
#: Standard deviation (theta units) of the weak prior that regularizes Laplace covariances.
LAPLACE_PRIOR_SD = 1.0

_AMPLITUDE = (math.log(1e-6), math.log(1e8))
_SCALE = (math.log(1e-6), math.log(1e6))
_LOGIT = (-30.0, 30.0)
_ELASTICITY_START = (0.03, 0.95)


@dataclass(frozen=True)
class ParameterSpace:
    """How a family's parameters map to the unconstrained vector ``theta``.

    ``kinds[k]`` is ``"log"`` (a positive parameter, ``theta = log p``) or ``"unit"``
    (``p = lo + (hi - lo) * expit(theta)``, kept within ``[lo, hi]``).
    """

    family: str
    names: tuple[str, ...]
    kinds: tuple[str, ...]
    ranges: tuple[tuple[float, float], ...]
    fixed: Mapping[str, float]

    @property
    def size(self) -> int:
        """Number of free parameters."""
        return len(self.names)

    def params(self, theta: FloatArray) -> dict[str, FloatArray]:
        """Family parameters from ``theta`` of shape (..., P); each of shape (...,)."""
        out: dict[str, FloatArray] = {}
        for k, (name, kind, (lo, hi)) in enumerate(zip(self.names, self.kinds, self.ranges)):
            t = theta[..., k]
            out[name] = np.exp(t) if kind == "log" else lo + (hi - lo) * expit(t)
        for name, value in self.fixed.items():
            out[name] = np.full(theta.shape[:-1], value)
        return out

    def theta(self, params: Mapping[str, float]) -> FloatArray:
        """``theta`` (shape (P,)) for one set of parameters, clipped to the search box."""
        raw = []
        for name, kind, (lo, hi) in zip(self.names, self.kinds, self.ranges):
            p = float(params[name])
            if kind == "log":
                raw.append(math.log(p))
            else:
                frac = min(max((p - lo) / (hi - lo), 1e-9), 1.0 - 1e-9)
                raw.append(float(logit(frac)))
        return np.clip(np.array(raw), self.lower, self.upper)

    @property
    def lower(self) -> FloatArray:
        return np.array([_box(n, k)[0] for n, k in zip(self.names, self.kinds)])

    @property
    def upper(self) -> FloatArray:
        return np.array([_box(n, k)[1] for n, k in zip(self.names, self.kinds)])


def _box(name: str, kind: str) -> tuple[float, float]:
    if kind == "unit":
        return _LOGIT
    return _AMPLITUDE if name in ("a", "alpha", "beta") else _SCALE


SPACES: dict[str, ParameterSpace] = {
    "log": ParameterSpace("log", ("a", "b"), ("log", "log"), ((0, 0), (0, 0)), {}),
    "exp_saturation": ParameterSpace(
        "exp_saturation", ("a", "b"), ("log", "log"), ((0, 0), (0, 0)), {}
    ),
    "power": ParameterSpace("power", ("a", "p"), ("log", "unit"), ((0, 0), (0.01, 1.0)), {}),
    "michaelis_menten": ParameterSpace(
        "michaelis_menten", ("alpha", "lam"), ("log", "log"), ((0, 0), (0, 0)), {"scale": 1.0}
    ),
    "hill": ParameterSpace(
        "hill", ("beta", "kappa", "slope"), ("log", "log", "unit"),
        ((0, 0), (0, 0), (0.05, 1.0)), {"scale": 1.0},
    ),
}


# --------------------------------------------------------------------------------------------
# Evaluation in normalized units
# --------------------------------------------------------------------------------------------


def unit_values(family: str, theta: FloatArray, u: FloatArray) -> FloatArray:
    """``f(u; theta)`` for ``theta`` of shape (B, P) and ``u`` of shape (B, n) -> (B, n)."""
    params = {k: v[:, None] for k, v in SPACES[family].params(theta).items()}
    with np.errstate(all="ignore"):
        return np.asarray(PARAMETRIC_FAMILIES[family].value(u, params), dtype=np.float64)


def level_and_elasticity(family: str, theta: FloatArray) -> tuple[FloatArray, FloatArray]:
    """``log f(1)`` and the elasticity ``f'(1) / f(1)`` at the mean spend, each of shape (B,)."""
    params = {k: v[:, None] for k, v in SPACES[family].params(theta).items()}
    one = np.ones((theta.shape[0], 1))
    fam = PARAMETRIC_FAMILIES[family]
    with np.errstate(all="ignore"):
        value = np.asarray(fam.value(one, params))[:, 0]
        slope = np.asarray(fam.derivative(one, params))[:, 0]
    return np.log(np.maximum(value, 1e-300)), slope / np.maximum(value, 1e-300)


# --------------------------------------------------------------------------------------------
# The batch problem
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Prior:
    """Gaussian prior per row on ``log f(1)`` and the elasticity at ``u = 1`` (shapes (B,)).

    An infinite standard deviation switches that part of the prior off.
    """

    log_level: FloatArray
    log_level_sd: FloatArray
    elasticity: FloatArray
    elasticity_sd: FloatArray

    def take(self, rows: NDArray[np.intp]) -> Prior:
        """The prior of the given rows."""
        return Prior(self.log_level[rows], self.log_level_sd[rows], self.elasticity[rows],
                     self.elasticity_sd[rows])


@dataclass(frozen=True)
class BatchFit:
    """Result of :func:`fit_batch` for ``B`` rows of one family.

    Attributes
    ----------
    family
        The family fitted.
    theta
        (B, P) unconstrained parameters (see :class:`ParameterSpace`).
    sigma
        (B,) robust residual scale in log units (MAD of the weighted residuals, floored at
        :data:`MIN_SIGMA`); the noise level used for intervals and the mean correction.
    cost
        (B,) final objective (robust data term in units of ``sigma`` plus the prior term).
    cov
        (B, P, P) Laplace covariance of ``theta`` (inverse Gauss-Newton Hessian at the optimum,
        pooling prior included, regularized by a weak prior of sd :data:`LAPLACE_PRIOR_SD`
        around the optimum), for posterior-like parameter samples.
    prior_share
        (B, 2): the share of the posterior information on (log level, elasticity) that comes
        from the prior, ``posterior variance / prior variance``; 0 without a prior.
    ok
        (B,) True where the fit is finite.
    """

    family: str
    theta: FloatArray
    sigma: FloatArray
    cost: FloatArray
    cov: FloatArray
    prior_share: FloatArray
    ok: NDArray[np.bool_]


def log_residuals(family: str, theta: FloatArray, u: FloatArray, v: FloatArray) -> FloatArray:
    """``log(v + d) - log(f(u) + d)`` with ``d = LOG_OFFSET``; shape (B, n)."""
    f = unit_values(family, theta, u)
    with np.errstate(all="ignore"):
        r = np.log(v + LOG_OFFSET) - np.log(np.maximum(f, 0.0) + LOG_OFFSET)
    return np.where(np.isfinite(r), r, 50.0)


def robust_sigma(r: FloatArray, w: FloatArray) -> FloatArray:
    """Per-row robust scale: 1.4826 x weighted median absolute residual (around zero), (B,).

    Corrected for the few degrees of freedom of a short row (like a standard deviation with
    2 fitted parameters) and floored at :data:`MIN_SIGMA`.
    """
    a = np.abs(r)
    order = np.argsort(np.where(w > 0, a, np.inf), axis=1)
    a_sorted = np.take_along_axis(a, order, axis=1)
    cw = np.cumsum(np.take_along_axis(np.where(w > 0, w, 0.0), order, axis=1), axis=1)
    half = 0.5 * cw[:, -1:]
    idx = np.argmax(cw >= half, axis=1)
    med = np.where(cw[:, -1] > 0, a_sorted[np.arange(a.shape[0]), idx], MIN_SIGMA / 1.4826)
    n_eff = np.maximum((w > 0).sum(axis=1), 1)
    out = 1.4826 * med * np.sqrt(n_eff / np.maximum(n_eff - 2, 1))
    return np.maximum(out, MIN_SIGMA)


def _objective(
    family: str, theta: FloatArray, u: FloatArray, v: FloatArray, w: FloatArray,
    scale: FloatArray, prior: Prior | None,
) -> tuple[FloatArray, FloatArray, FloatArray]:
    """Standardized data residuals (B, n), prior residuals (B, 2) and robust cost (B,)."""
    z = log_residuals(family, theta, u, v) / scale[:, None]
    rho = 2.0 * (np.sqrt(1.0 + z * z) - 1.0)
    cost = (w * rho).sum(axis=1)
    if prior is None:
        zp = np.zeros((theta.shape[0], 2))
    else:
        lvl, ela = level_and_elasticity(family, theta)
        zp = np.column_stack([(lvl - prior.log_level) / prior.log_level_sd,
                              (ela - prior.elasticity) / prior.elasticity_sd])
        zp = np.where(np.isfinite(zp), zp, 0.0)
    cost = cost + (zp * zp).sum(axis=1)
    return z, zp, cost


def fit_batch(
    family: str,
    u: FloatArray,
    v: FloatArray,
    w: FloatArray,
    starts: FloatArray,
    *,
    prior: Prior | None = None,
    sigma: FloatArray | None = None,
    max_iter: int = 60,
    tol: float = 1e-7,
    ftol: float = 1e-6,
) -> BatchFit:
    """Fit ``family`` to every row of a batch by robust Levenberg-Marquardt in log space.

    Parameters
    ----------
    family
        One of :data:`FIT_FAMILIES`.
    u, v
        (B, n) normalized spend (>= 0) and outcome (>= 0); values where ``w == 0`` are ignored
        (but must be finite).
    w
        (B, n) observation weights >= 0 (0/1 masks for folds, counts for bootstrap resamples).
    starts
        (K, B, P) starting ``theta`` values; each row keeps its best start.
    prior
        Optional per-row Gaussian prior (partial pooling); ``None`` for none.
    sigma
        (B,) noise scale (log units) that standardizes the residuals; estimated from a log-log
        line per row when omitted.
    max_iter, tol, ftol
        Iteration cap, step tolerance (on ``theta``) and relative cost-decrease tolerance: a
        row stops when an accepted step moves less than ``tol`` or gains less than
        ``ftol x (1 + cost)`` (a flat ridge, e.g. ``log`` turning linear as ``b`` grows).

    Returns
    -------
    BatchFit
    """
    space = SPACES[family]
    u = np.asarray(u, float)
    v = np.asarray(v, float)
    w = np.asarray(w, float)
    scale = ROBUST_SCALE * (loglog_sigma(u, v, w) if sigma is None else np.asarray(sigma, float))
    best_theta = None
    best_cost = None
    for theta0 in starts:
        theta, cost = _levenberg_marquardt(family, theta0, u, v, w, scale, prior, max_iter, tol, ftol)
        if best_theta is None:
            best_theta, best_cost = theta, cost
        else:
            better = cost < best_cost
            best_theta = np.where(better[:, None], theta, best_theta)
            best_cost = np.where(better, cost, best_cost)
    assert best_theta is not None and best_cost is not None
    r = log_residuals(family, best_theta, u, v)
    sig = robust_sigma(r, w)
    cov, share = _laplace(family, best_theta, u, v, w, sig, prior, space)
    ok = np.all(np.isfinite(best_theta), axis=1) & np.isfinite(best_cost)
    return BatchFit(family, best_theta, sig, best_cost, cov, share, ok)


def _levenberg_marquardt(
    family: str, theta: FloatArray, u: FloatArray, v: FloatArray, w: FloatArray,
    scale: FloatArray, prior: Prior | None, max_iter: int, tol: float, ftol: float,
) -> tuple[FloatArray, FloatArray]:
    space = SPACES[family]
    lower, upper = space.lower, space.upper
    theta = np.clip(np.array(theta, float), lower, upper)
    z, zp, cost = _objective(family, theta, u, v, w, scale, prior)
    damping = np.full(theta.shape[0], 1e-3)
    active = np.ones(theta.shape[0], dtype=bool)
    for _ in range(max_iter):
        if not active.any():
            break
        rows = np.flatnonzero(active)
        sub_prior = None if prior is None else prior.take(rows)
        jz, jp = _jacobians(family, theta[rows], u[rows], v[rows], w[rows], scale[rows],
                            sub_prior, z[rows], zp[rows])
        # IRLS weight of the pseudo-Huber loss at the current residuals
        omega = w[rows] / np.sqrt(1.0 + z[rows] ** 2)
        hess = np.einsum("bn,bnp,bnq->bpq", omega, jz, jz) + np.einsum("bkp,bkq->bpq", jp, jp)
        grad = np.einsum("bn,bnp,bn->bp", omega, jz, z[rows]) + np.einsum("bkp,bk->bp", jp, zp[rows])
        diag = np.einsum("bpp->bp", hess)
        lhs = hess + (damping[rows][:, None] * np.maximum(diag, 1e-9))[:, :, None] * np.eye(space.size)
        try:
            step = -np.linalg.solve(lhs, grad[:, :, None])[:, :, 0]
        except np.linalg.LinAlgError:
            step = -grad / np.maximum(diag, 1e-9)
        step = np.where(np.isfinite(step), step, 0.0)
        trial = np.clip(theta[rows] + step, lower, upper)
        tz, tzp, tcost = _objective(family, trial, u[rows], v[rows], w[rows], scale[rows], sub_prior)
        better = tcost <= cost[rows]
        gain = cost[rows] - tcost
        take = rows[better]
        theta[take], z[take], zp[take], cost[take] = trial[better], tz[better], tzp[better], tcost[better]
        damping[take] = np.maximum(damping[take] / 3.0, 1e-9)
        damping[rows[~better]] = damping[rows[~better]] * 4.0
        moved = np.abs(step).max(axis=1)
        flat = gain <= ftol * (1.0 + np.abs(tcost))
        done = (better & ((moved < tol) | flat)) | (damping[rows] > 1e8)
        active[rows[done]] = False
    return theta, cost


def _jacobians(
    family: str, theta: FloatArray, u: FloatArray, v: FloatArray, w: FloatArray,
    scale: FloatArray, prior: Prior | None, z: FloatArray, zp: FloatArray,
) -> tuple[FloatArray, FloatArray]:
    """Forward-difference Jacobians of the standardized residuals: (B, n, P) and (B, 2, P)."""
    size = theta.shape[1]
    jz = np.empty(z.shape + (size,))
    jp = np.empty(zp.shape + (size,))
    for k in range(size):
        h = 1e-6 * np.maximum(1.0, np.abs(theta[:, k]))
        shifted = theta.copy()
        shifted[:, k] += h
        sz, szp, _ = _objective(family, shifted, u, v, w, scale, prior)
        jz[:, :, k] = (sz - z) / h[:, None]
        jp[:, :, k] = (szp - zp) / h[:, None]
    return jz, jp


def _laplace(
    family: str, theta: FloatArray, u: FloatArray, v: FloatArray, w: FloatArray,
    sigma: FloatArray, prior: Prior | None, space: ParameterSpace,
) -> tuple[FloatArray, FloatArray]:
    """Laplace covariance of theta (data term in units of the fitted sigma) and prior shares."""
    z, zp, _ = _objective(family, theta, u, v, w, sigma, prior)
    jz, jp = _jacobians(family, theta, u, v, w, sigma, prior, z, zp)
    data_info = np.einsum("bn,bnp,bnq->bpq", w, jz, jz)
    info = data_info + np.einsum("bkp,bkq->bpq", jp, jp)
    # a weak N(theta_hat, LAPLACE_PRIOR_SD^2) prior keeps directions the data do not identify
    # (a saturated logit, the ridge of log as b grows) from producing absurd draws
    cov = np.linalg.inv(info + np.eye(space.size) / LAPLACE_PRIOR_SD**2)
    share = np.zeros((theta.shape[0], 2))
    if prior is not None:
        # gradient of (log level, elasticity) wrt theta, from the prior rows' Jacobian
        sd = np.column_stack([prior.log_level_sd, prior.elasticity_sd])
        grad = jp * sd[:, :, None]
        post_var = np.einsum("bkp,bpq,bkq->bk", grad, cov, grad)
        with np.errstate(invalid="ignore", divide="ignore"):
            share = np.where(np.isfinite(sd), np.clip(post_var / sd**2, 0.0, 1.0), 0.0)
    return cov, share


# --------------------------------------------------------------------------------------------
# Starting values and conversion to curves
# --------------------------------------------------------------------------------------------


def loglog_line(u: FloatArray, v: FloatArray, w: FloatArray) -> tuple[FloatArray, FloatArray, FloatArray]:
    """Per-row weighted log-log line: elasticity, level at ``u = 1`` and robust residual scale.

    Rows with constant spend get elasticity 0.5 through their geometric mean outcome (and the
    scatter around it as scale); rows with fewer than 3 positive weighted points get elasticity
    0.5, the weighted mean level and a scale of 0.25.
    """
    ok = (u > 0) & (v > 0) & (w > 0)
    ww = np.where(ok, w, 0.0)
    lu = np.log(np.where(ok, u, 1.0))
    lv = np.log(np.where(ok, v, 1.0))
    sw = ww.sum(axis=1)
    safe = np.maximum(sw, 1e-12)
    mu_u = (ww * lu).sum(axis=1) / safe
    mu_v = (ww * lv).sum(axis=1) / safe
    var_u = (ww * (lu - mu_u[:, None]) ** 2).sum(axis=1) / safe
    cov_uv = (ww * (lu - mu_u[:, None]) * (lv - mu_v[:, None])).sum(axis=1) / safe
    enough = ok.sum(axis=1) >= 3
    good = enough & (var_u > 1e-8)
    slope = np.where(good, cov_uv / np.maximum(var_u, 1e-12), 0.5)
    fallback = np.log(np.maximum((w * v).sum(axis=1) / np.maximum(w.sum(axis=1), 1e-12), 1e-12))
    level = np.exp(np.where(enough, mu_v - slope * mu_u, fallback))
    resid = lv - (np.log(level)[:, None] + slope[:, None] * lu)
    # constant spend still tells the noise: the scatter of the outcome around its level
    sigma = np.where(enough, robust_sigma(np.where(ok, resid, 0.0), ww), 0.25)
    return slope, level, sigma


def loglog_sigma(u: FloatArray, v: FloatArray, w: FloatArray) -> FloatArray:
    """Noise scale (log units) of each row from its log-log line, floored at 0.02."""
    return np.maximum(loglog_line(u, v, w)[2], 0.02)


def start_thetas(family: str, u: FloatArray, v: FloatArray, w: FloatArray) -> FloatArray:
    """Two starts per row (shape (K, B, P)): through the data's level at its log-log elasticity,
    and a more saturated one (half the elasticity). ``power`` has one start."""
    space = SPACES[family]
    elasticity, level, _ = loglog_line(u, v, w)
    lo, hi = _ELASTICITY_START
    e = np.clip(elasticity, lo, hi)
    variants = [e] if family == "power" else [e, np.maximum(lo, e / 2.0)]
    out = np.empty((len(variants), u.shape[0], space.size))
    for k, es in enumerate(variants):
        for b in range(u.shape[0]):
            slope = min(1.0, max(0.1, float(es[b]) + 0.3)) if family == "hill" else None
            params = params_through(family, 1.0, float(level[b]), float(es[b]), slope=slope)
            out[k, b] = space.theta(params)
    return out


def mean_factor(sigma: FloatArray | float) -> FloatArray:
    """``exp(sigma^2 / 2)``: mean over median of log-normal noise of scale ``sigma``."""
    return np.exp(0.5 * np.square(sigma))


def to_curve(
    family: str, theta: FloatArray, x_unit: float, y_unit: float, *,
    sigma: float | FloatArray = 0.0, where: str = "curve",
) -> Curve:
    """The money-unit curve ``y_unit * c * f(x / x_unit; theta)`` with ``c = exp(sigma^2 / 2)``.

    ``theta`` of shape (P,) gives a plain curve; shape (S, P) gives a posterior-sample curve
    with S samples of the same family (``sigma`` a number or shape (S,)).
    """
    th = np.atleast_2d(np.asarray(theta, float))
    params = SPACES[family].params(th)
    amplitude = {"log": "a", "exp_saturation": "a", "power": "a",
                 "michaelis_menten": "alpha", "hill": "beta"}[family]
    params[amplitude] = params[amplitude] * mean_factor(np.asarray(sigma, float))
    spec = {k: (float(a[0]) if th.shape[0] == 1 else a.tolist()) for k, a in params.items()}
    unit = Curve.parametric(family, where=where, **spec)
    # time_scaled(k) is k f(x / k) (exact, same family); scale its output by y_unit / x_unit
    return unit.time_scaled(x_unit).scaled(y_unit / x_unit)
