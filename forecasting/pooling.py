"""Partial pooling: sparse cells borrow their curve's level and shape from category and segment.

A cell with few periods, or whose spend barely varied, cannot tell its elasticity (how fast
returns fall with spend) from noise. Such a cell is fitted with a Gaussian prior on two numbers at
its mean spend -- the log return on spend ``log(y(x_bar) / x_bar)`` and the elasticity
``x_bar y'(x_bar) / y(x_bar)`` -- built from the well-identified cells ("donors"):

    value_i = mu + category effect + segment effect + cell deviation (sd tau)

The effects are shrunken means of the donors' estimates (a random-effects fit: an effect backed by
``n`` donors keeps ``n / (n + SHRINK)`` of its raw mean), and ``tau`` is the donors' spread
around the additive fit net of their own estimation noise (method of moments, floored). The
sparse cell's fit then weighs its own data against the prior by their precisions: with no spend
variation at all its elasticity is the prior's, with a few periods of data it is in between. The
fit reports the prior's share of the information (:class:`forecasting.parametric.BatchFit`
``prior_share``) as the cell's pooling weight.

Data-rich cells are not pooled: on the synthetic benchmark shrinking them towards the category and
segment means cost decision quality, because their own data identify their curves.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

from forecasting.cells import CellKey
from forecasting.parametric import Prior

FloatArray = NDArray[np.float64]

#: Shrinkage constant of the category and segment effects (in donors).
SHRINK = 2.0
#: Floors of the prior standard deviations (log return on spend, elasticity).
MIN_TAU = (0.05, 0.05)
#: Ceilings (a prior wider than this says nothing useful).
MAX_TAU = (1.0, 0.5)


@dataclass(frozen=True)
class PoolingPrior:
    """Prior of every cell (donors included) on log return on spend and elasticity at mean spend.

    Attributes
    ----------
    log_roi, elasticity
        (C,) prior means.
    log_roi_sd, elasticity_sd
        Prior standard deviations (the same for every cell).
    n_donors
        Number of cells the prior was estimated from.
    """

    log_roi: FloatArray
    elasticity: FloatArray
    log_roi_sd: float
    elasticity_sd: float
    n_donors: int

    def unit_prior(self, rows: NDArray[np.intp], x_unit: FloatArray, y_unit: FloatArray) -> Prior:
        """The prior of some cells in normalized units (``u = x / x_unit``, ``v = y / y_unit``).

        The log level at ``u = 1`` is ``log(y(x_unit) / y_unit) = log roi + log(x_unit / y_unit)``.
        """
        k = len(rows)
        level = self.log_roi[rows] + np.log(x_unit[rows] / y_unit[rows])
        return Prior(level, np.full(k, self.log_roi_sd), self.elasticity[rows],
                     np.full(k, self.elasticity_sd))


def estimate_prior(
    keys: Sequence[CellKey],
    donors: NDArray[np.bool_],
    log_roi: FloatArray,
    log_roi_se: FloatArray,
    elasticity: FloatArray,
    elasticity_se: FloatArray,
) -> PoolingPrior | None:
    """Estimate the pooling prior from the donor cells' own estimates.

    Parameters
    ----------
    keys
        The cells (category, segment).
    donors
        (C,) True for well-identified cells (their estimates must be finite).
    log_roi, log_roi_se, elasticity, elasticity_se
        (C,) each cell's own estimate at its mean spend and its standard error (values of
        non-donors are ignored).

    Returns
    -------
    PoolingPrior or None
        None when there are fewer than 2 donors.
    """
    idx = np.flatnonzero(donors)
    if idx.size < 2:
        return None
    cats = [k[0] for k in keys]
    segs = [k[1] for k in keys]
    roi_mean, roi_tau = _additive_prior(cats, segs, idx, log_roi, log_roi_se, 0)
    ela_mean, ela_tau = _additive_prior(cats, segs, idx, elasticity, elasticity_se, 1)
    ela_mean = np.clip(ela_mean, 0.02, 0.98)
    return PoolingPrior(roi_mean, ela_mean, roi_tau, ela_tau, int(idx.size))


def _additive_prior(
    cats: list[str], segs: list[str], idx: NDArray[np.intp], value: FloatArray, se: FloatArray,
    which: int,
) -> tuple[FloatArray, float]:
    """Prior mean for every cell (mu + shrunken category and segment effects) and tau."""
    y = value[idx]
    mu = float(np.median(y))
    cat_effect: dict[str, float] = {}
    seg_effect: dict[str, float] = {}
    for _ in range(10):  # backfitting of the two shrunken effects
        resid = y - mu - np.array([seg_effect.get(segs[i], 0.0) for i in idx])
        cat_effect = _shrunken_means([cats[i] for i in idx], resid)
        resid = y - mu - np.array([cat_effect.get(cats[i], 0.0) for i in idx])
        seg_effect = _shrunken_means([segs[i] for i in idx], resid)
        mu = float(np.mean(y - [cat_effect.get(cats[i], 0.0) + seg_effect.get(segs[i], 0.0)
                                for i in idx]))
    mean = np.array([mu + cat_effect.get(c, 0.0) + seg_effect.get(s, 0.0) for c, s in zip(cats, segs)])
    spread = float(np.mean((y - mean[idx]) ** 2)) - float(np.mean(np.square(se[idx])))
    tau = math.sqrt(max(spread, MIN_TAU[which] ** 2))
    return mean, min(tau, MAX_TAU[which])


def _shrunken_means(labels: list[str], resid: FloatArray) -> dict[str, float]:
    out: dict[str, float] = {}
    for label in dict.fromkeys(labels):
        members = resid[[i for i, lab in enumerate(labels) if lab == label]]
        out[label] = float(members.sum() / (members.size + SHRINK))
    return out
