"""scikit-learn estimators of concave response curves.

Each estimator learns ``outcome = f(spend)`` with ``f`` concave and nondecreasing, so that its
fitted curve (``curve_``, a :class:`~forecasting.curves.Curve` in the input's units) can enter the
optimization model. They follow the scikit-learn estimator API -- ``fit`` / ``predict``,
``get_params`` / ``set_params``, fitted attributes ending in ``_`` -- and pass
``sklearn.utils.estimator_checks`` where the checks apply (see ``tests/forecasting``):

- :class:`ConcaveCurveRegressor`: the product's parametric fitter on one series (robust log-space
  fits of the concave families, rolling-origin CV, CV-weighted average or best family); rows are
  periods in time order.
- :class:`IsotonicConcaveRegressor`: isotonic regression projected on concave curves.

For these two the curve's input is the row total of ``X``: one column of spend, or spend broken
down by cost type (``cost_labor``, ``cost_vendor``, ... as in the history), which add up to it.
- :class:`MonotoneGBMConcaveRegressor`: LightGBM, nondecreasing in the first column (spend), with
  any further columns as features (e.g. month, time index, cell code); each row's prediction is
  the concave curve in spend at that row's other features.

Inputs are non-negative (``positive_only`` tags): spend, cost types, features and outcomes.

Examples
--------
>>> import numpy as np
>>> x = np.linspace(100.0, 1000.0, 24)
>>> y = 50.0 * np.log1p(x / 200.0)
>>> model = ConcaveCurveRegressor(cv_folds=6).fit(x[:, None], y)
>>> bool(np.allclose(model.predict([[500.0]]), 50.0 * np.log1p(2.5), rtol=1e-3))
True
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from numpy.typing import ArrayLike, NDArray
from sklearn.base import BaseEstimator, RegressorMixin
from sklearn.utils.validation import check_is_fitted, validate_data

from forecasting.curves import Curve
from forecasting.fit import DEFAULT_FAMILIES, fit_response
from forecasting.intervals import DEFAULT_LEVEL, noise_draws, quantile_band
from forecasting.nonparametric import (
    GRID_POINTS,
    GBMSettings,
    concave_pwl,
    concave_regression,
    isotonic_knots,
)

FloatArray = NDArray[np.float64]

#: Fewest samples any of the estimators accepts.
MIN_SAMPLES = 3


class _CurveEstimator(RegressorMixin, BaseEstimator):
    """Shared validation and tags: non-negative inputs and a non-negative, 1-d target."""

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.input_tags.positive_only = True
        tags.target_tags.positive_only = True
        tags.regressor_tags.poor_score = True  # one input (spend): a curve, not a full regressor
        return tags

    def _validate_fit(self, X: ArrayLike, y: ArrayLike) -> tuple[FloatArray, FloatArray]:
        X, y = validate_data(self, X, y, dtype=np.float64, y_numeric=True)
        if X.shape[0] < MIN_SAMPLES:
            raise ValueError(f"{type(self).__name__}: got {X.shape[0]} sample(s); at least "
                             f"{MIN_SAMPLES} samples are needed to fit a curve")
        if np.any(X < 0) or np.any(y < 0):
            raise ValueError(f"Negative values in data passed to {type(self).__name__}: spend, "
                             "features and outcomes must be >= 0")
        return X, np.asarray(y, dtype=np.float64)

    def _checked(self, X: ArrayLike) -> FloatArray:
        check_is_fitted(self)
        X = validate_data(self, X, dtype=np.float64, reset=False)
        if np.any(X < 0):
            raise ValueError(f"Negative values in data passed to {type(self).__name__}")
        return X

    def _total(self, X: ArrayLike) -> FloatArray:
        """Row totals of ``X``: the spend of each row."""
        return self._checked(X).sum(axis=1)


class ConcaveCurveRegressor(_CurveEstimator):
    """Concave parametric response curve of one time-ordered series.

    Parameters
    ----------
    families
        Candidate concave families.
    combine
        ``"average"`` (likelihood-weighted average of the families, a pwl curve) or ``"select"``.
    cv_folds, cv_horizon
        Rolling-origin folds over the last rows and their test length.
    interval_level
        Nominal level of :meth:`predict_interval`.
    random_state
        Seed of the Laplace draws behind the intervals.

    Attributes
    ----------
    curve_
        The fitted :class:`~forecasting.curves.Curve` (spend in, outcome out).
    family_
        The choice (a family name or ``"average"``).
    weights_
        Family -> weight.
    holdout_wape_, holdout_mape_
        Rolling-origin held-out errors (fractions).
    fit_
        The full :class:`~forecasting.results.OutcomeFit`.
    n_features_in_
        Columns of ``X`` (spend, or spend by cost type).
    """

    def __init__(self, families: Sequence[str] = DEFAULT_FAMILIES, combine: str = "average",
                 cv_folds: int = 12, cv_horizon: int | None = 1,
                 interval_level: float = DEFAULT_LEVEL, random_state: int = 0) -> None:
        self.families = families
        self.combine = combine
        self.cv_folds = cv_folds
        self.cv_horizon = cv_horizon
        self.interval_level = interval_level
        self.random_state = random_state

    def fit(self, X: ArrayLike, y: ArrayLike) -> ConcaveCurveRegressor:
        """Fit the curve; ``X`` is (n, k) spend (by cost type) per period, rows in time order."""
        X, y = self._validate_fit(X, y)
        fit = fit_response(X.sum(axis=1), y, families=tuple(self.families), combine=self.combine,
                           cv_folds=self.cv_folds, cv_horizon=self.cv_horizon,
                           interval_level=self.interval_level, seed=self.random_state)
        self.fit_ = fit
        self.curve_ = fit.curve
        self.family_ = fit.family
        self.weights_ = dict(fit.weights)
        self.holdout_wape_ = fit.holdout_wape
        self.holdout_mape_ = fit.holdout_mape
        return self

    def predict(self, X: ArrayLike) -> FloatArray:
        """Predicted outcome (the curve's mean) at each row's spend."""
        x = self._total(X)
        return np.asarray(self.curve_.value(x), dtype=np.float64)

    def predict_interval(self, X: ArrayLike, level: float | None = None) -> tuple[FloatArray, FloatArray]:
        """Prediction interval (lower, upper) of a new period's outcome at each row's spend."""
        x = self._total(X)
        rng = np.random.default_rng(self.random_state)
        draws = noise_draws(self.fit_.samples.draws(x), self.fit_.sigma, rng)
        return quantile_band(draws, self.interval_level if level is None else level)


class IsotonicConcaveRegressor(_CurveEstimator):
    """Isotonic regression of the outcome on spend, projected on concave curves through 0.

    Attributes
    ----------
    curve_
        The fitted concave ``pwl`` :class:`~forecasting.curves.Curve` (flat after the largest
        spend seen).
    n_features_in_
        Columns of ``X`` (spend, or spend by cost type).
    """

    def fit(self, X: ArrayLike, y: ArrayLike) -> IsotonicConcaveRegressor:
        """Fit the curve; ``X`` is (n, k) spend (by cost type)."""
        X, y = self._validate_fit(X, y)
        x = X.sum(axis=1)
        if not np.any(x > 0):
            raise ValueError("IsotonicConcaveRegressor: spend must be positive somewhere")
        self.curve_ = concave_pwl(*isotonic_knots(x, y, np.ones_like(x)))
        return self

    def predict(self, X: ArrayLike) -> FloatArray:
        """The concave curve at each row's spend."""
        x = self._total(X)
        return np.asarray(self.curve_.value(x), dtype=np.float64)


class MonotoneGBMConcaveRegressor(_CurveEstimator):
    """LightGBM nondecreasing in spend (column 0), made concave in spend row by row.

    Parameters
    ----------
    n_estimators, learning_rate, num_leaves, min_child_samples
        LightGBM settings (single-threaded, deterministic).
    random_state
        LightGBM seed.

    Attributes
    ----------
    model_
        The fitted ``lightgbm.LGBMRegressor`` (monotone constraint +1 on column 0).
    curve_
        Concave ``pwl`` curve of the partial dependence on spend (averaged over the training
        rows' other columns).
    n_features_in_
        Number of columns (spend first).
    """

    def __init__(self, n_estimators: int = 150, learning_rate: float = 0.05, num_leaves: int = 8,
                 min_child_samples: int = 10, random_state: int = 0) -> None:
        self.n_estimators = n_estimators
        self.learning_rate = learning_rate
        self.num_leaves = num_leaves
        self.min_child_samples = min_child_samples
        self.random_state = random_state

    def fit(self, X: ArrayLike, y: ArrayLike) -> MonotoneGBMConcaveRegressor:
        """Fit LightGBM with the monotone constraint, and the partial-dependence curve."""
        from lightgbm import LGBMRegressor

        X, y = self._validate_fit(X, y)
        settings = GBMSettings(self.n_estimators, self.learning_rate, self.num_leaves,
                               self.min_child_samples, self.random_state)
        constraints = [1] + [0] * (X.shape[1] - 1)
        self.model_ = LGBMRegressor(**settings.params(), monotone_constraints=constraints)
        self.model_.fit(X, y)
        self.grid_ = np.linspace(0.0, float(X[:, 0].max()), GRID_POINTS + 1)[1:]
        if not self.grid_[-1] > 0:
            self.grid_ = np.linspace(0.0, 1.0, GRID_POINTS + 1)[1:]
        pd_values = self._grid_predictions(X[:, 1:]).mean(axis=0)
        self.curve_ = concave_pwl(*concave_regression(self.grid_, pd_values))
        return self

    def _grid_predictions(self, others: FloatArray) -> FloatArray:
        """(rows, grid) predictions at each grid spend with each row's other columns."""
        g, k = self.grid_.size, others.shape[0]
        design = np.column_stack([np.tile(self.grid_, k), np.repeat(others, g, axis=0)])
        return self.model_.predict(design).reshape(k, g)

    def predict(self, X: ArrayLike) -> FloatArray:
        """Each row's concave curve in spend (at its other columns), at its spend."""
        X = self._checked(X)
        others, inverse = np.unique(X[:, 1:], axis=0, return_inverse=True)
        grid_values = self._grid_predictions(others)
        out = np.empty(X.shape[0])
        for j in range(others.shape[0]):
            xk, yk = concave_regression(self.grid_, grid_values[j])
            rows = np.flatnonzero(inverse.ravel() == j)
            out[rows] = np.interp(X[rows, 0], xk, yk)
        return out


def curve_of(estimator: BaseEstimator) -> Curve:
    """The fitted curve of any estimator here (``curve_``), for building a problem file."""
    check_is_fitted(estimator, "curve_")
    return estimator.curve_
