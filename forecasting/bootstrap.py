"""Moving-block bootstrap over periods: resampled histories -> sampled curves.

A resample draws ``ceil(T / block)`` blocks of ``block`` consecutive periods (start positions
uniform, with replacement) and keeps the first ``T`` periods drawn; period ``t`` then enters the
fit with weight = the number of times it was drawn. Whole periods are resampled for all cells at
once, so the months that were good or bad for everyone stay together, and blocks keep the
short-range dependence (carry-over, slow drifts) that resampling single months would break.

Each resample refits the cell's curve(s) from the full-history fit as the starting point, with the
same family, the same pooling prior and the same period effects (those are shared by 30 cells and
estimated precisely; re-estimating them per resample would cost more than it shows). The ``S``
refits of one family are the ``S`` posterior samples that the problem file carries as parameter
lists (:meth:`forecasting.parametric.to_curve` with ``theta`` of shape (S, P)).
"""

from __future__ import annotations

import math

import numpy as np
from numpy.typing import NDArray

from forecasting.parametric import BatchFit, Prior, fit_batch

FloatArray = NDArray[np.float64]


def default_block(n_periods: int) -> int:
    """Block length ``round(T^(1/3))`` (at least 2): 3 for 24-48 monthly periods.

    >>> default_block(36), default_block(8)
    (3, 2)
    """
    return max(2, int(round(n_periods ** (1.0 / 3.0))))


def block_weights(n_periods: int, n_samples: int, rng: np.random.Generator,
                  block: int | None = None) -> FloatArray:
    """``(S, T)`` period weights (draw counts) of ``S`` moving-block resamples.

    Every row sums to ``T``.
    """
    size = default_block(n_periods) if block is None else int(block)
    if size < 1:
        raise ValueError(f"block length must be >= 1, got {block!r}")
    size = min(size, n_periods)
    n_blocks = math.ceil(n_periods / size)
    starts = rng.integers(0, n_periods - size + 1, size=(n_samples, n_blocks))
    picks = (starts[:, :, None] + np.arange(size)[None, None, :]).reshape(n_samples, -1)[:, :n_periods]
    out = np.zeros((n_samples, n_periods))
    np.add.at(out, (np.repeat(np.arange(n_samples), n_periods), picks.ravel()), 1.0)
    return out


def bootstrap_thetas(
    family: str,
    u: FloatArray,
    v: FloatArray,
    w: FloatArray,
    theta_hat: FloatArray,
    resample: FloatArray,
    *,
    prior: Prior | None = None,
    sigma: FloatArray | None = None,
) -> tuple[FloatArray, FloatArray]:
    """Refit one family on every resample of every row.

    Parameters
    ----------
    family
        The family (one per call).
    u, v, w
        (R, T) normalized spend, outcome and observation weights of R cells.
    theta_hat
        (R, P) full-history fit: the starting point of each refit.
    resample
        (S, T) period weights from :func:`block_weights`.
    prior
        The cells' pooling prior (rows aligned with ``u``), or None.
    sigma
        (R,) noise scale standardizing the residuals (the full fit's), or None.

    Returns
    -------
    (theta, sigma)
        ``(S, R, P)`` refitted parameters and ``(S, R)`` residual scales. A resample that leaves
        a cell with fewer than 2 observed periods keeps the full-history fit.
    """
    n_samples = resample.shape[0]
    rows = u.shape[0]
    weights = (resample[:, None, :] * w[None, :, :]).reshape(n_samples * rows, -1)
    tile = lambda a: np.tile(a, (n_samples, 1))  # noqa: E731 - (R, .) -> (S*R, .)
    rep_prior = None
    if prior is not None:
        idx = np.tile(np.arange(rows), n_samples)
        rep_prior = prior.take(idx)
    fit: BatchFit = fit_batch(
        family, tile(u), tile(v), weights, tile(theta_hat)[None], prior=rep_prior,
        sigma=None if sigma is None else np.tile(sigma, n_samples),
    )
    theta = fit.theta.reshape(n_samples, rows, -1)
    sig = fit.sigma.reshape(n_samples, rows)
    thin = ((weights > 0).sum(axis=1) < 2).reshape(n_samples, rows) | ~fit.ok.reshape(n_samples, rows)
    theta = np.where(thin[:, :, None], theta_hat[None], theta)
    return theta, sig
