"""Response-curve families: exact value and derivative, validation, and the problem-file form.

A curve maps spend ``x`` (currency units, ``x >= 0``) to an outcome (revenue in currency units, or
new customers). Every family here is concave and nondecreasing on ``x >= 0`` for the parameter
ranges it accepts; parameters outside those ranges raise :class:`CurveError` naming where they are.

Any parameter of a parametric family may be a sequence of ``S`` posterior samples; the curve is then
the mean over the samples, ``f(x) = (1/S) sum_s f(x; theta_s)`` (still concave).

This module knows nothing about optimization. :class:`CurveBatch` evaluates many curves at once
(grouped by family into numpy arrays) for the solvers and the certificate.

Examples
--------
>>> c = Curve.from_dict({"family": "log", "a": 1000.0, "b": 50.0})
>>> round(float(c.value(50.0)), 6)
693.147181
>>> float(c.derivative(0.0))
20.0
>>> Curve.from_dict({"family": "hill", "beta": 1, "kappa": 2, "slope": 2.5}, where="cells[0].revenue")
Traceback (most recent call last):
...
forecasting.curves.CurveError: cells[0].revenue: hill with slope 2.5 > 1 is S-shaped (not concave) ...
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar

import numpy as np
from numpy.typing import ArrayLike, NDArray
from scipy.special import expit

FloatArray = NDArray[np.float64]


class CurveError(ValueError):
    """A curve specification is malformed or outside its family's concave range."""


# --------------------------------------------------------------------------------------------
# Families
# --------------------------------------------------------------------------------------------


class Family(ABC):
    """One parametric family. Functions broadcast: ``x`` of shape (n, 1), params of shape (n, S)."""

    name: ClassVar[str]
    #: parameter name -> (lower bound, lower inclusive?, upper bound, upper inclusive?)
    ranges: ClassVar[dict[str, tuple[float, bool, float, bool]]]
    defaults: ClassVar[dict[str, float]] = {}
    formula: ClassVar[str]

    @staticmethod
    @abstractmethod
    def value(x: FloatArray, p: Mapping[str, FloatArray]) -> FloatArray: ...

    @staticmethod
    @abstractmethod
    def derivative(x: FloatArray, p: Mapping[str, FloatArray]) -> FloatArray: ...

    @staticmethod
    @abstractmethod
    def second_derivative(x: FloatArray, p: Mapping[str, FloatArray]) -> FloatArray: ...

    @classmethod
    def slopes(cls, x: FloatArray, p: Mapping[str, FloatArray]) -> tuple[FloatArray, FloatArray]:
        """First and second derivative together (families override it to share work)."""
        return cls.derivative(x, p), cls.second_derivative(x, p)

    @staticmethod
    @abstractmethod
    def time_scaled(p: Mapping[str, FloatArray], periods: float) -> dict[str, FloatArray]:
        """Parameters of ``periods * f(x / periods)`` (the same family)."""

    #: Whether :meth:`inverse_derivative` has a closed form for this family.
    has_inverse: ClassVar[bool] = False

    @staticmethod
    def inverse_derivative(s: FloatArray, p: Mapping[str, FloatArray]) -> FloatArray:
        """The spend ``x`` (unbounded: may be negative or ``inf``) where ``f'(x) = s``, for
        ``s > 0``; ``inf`` where ``s <= 0``. Only families with ``has_inverse``."""
        raise NotImplementedError

    def extra_check(self, p: Mapping[str, FloatArray], where: str) -> None:
        """Family-specific checks beyond the parameter ranges."""


_POS = (0.0, False, math.inf, False)
_NONNEG = (0.0, True, math.inf, False)
_UNIT = (0.0, False, 1.0, True)


class LogFamily(Family):
    name = "log"
    ranges = {"a": _POS, "b": _POS}
    formula = "a * log(1 + x / b)"

    @staticmethod
    def value(x, p):
        return p["a"] * np.log1p(x / p["b"])

    @staticmethod
    def derivative(x, p):
        return p["a"] / (p["b"] + x)

    @staticmethod
    def second_derivative(x, p):
        return -p["a"] / (p["b"] + x) ** 2

    @classmethod
    def slopes(cls, x, p):
        t = 1.0 / (p["b"] + x)
        d1 = p["a"] * t
        return d1, -d1 * t

    @staticmethod
    def time_scaled(p, periods):
        return {"a": p["a"] * periods, "b": p["b"] * periods}

    has_inverse = True

    @staticmethod
    def inverse_derivative(s, p):
        with np.errstate(divide="ignore"):
            return np.where(s > 0, p["a"] / s - p["b"], np.inf)


class ExpSaturationFamily(Family):
    name = "exp_saturation"
    ranges = {"a": _POS, "b": _POS}
    formula = "a * (1 - exp(-x / b))"

    @staticmethod
    def value(x, p):
        return -p["a"] * np.expm1(-x / p["b"])

    @staticmethod
    def derivative(x, p):
        return (p["a"] / p["b"]) * np.exp(-x / p["b"])

    @staticmethod
    def second_derivative(x, p):
        return -(p["a"] / p["b"] ** 2) * np.exp(-x / p["b"])

    @classmethod
    def slopes(cls, x, p):
        inv_b = 1.0 / p["b"]
        d1 = p["a"] * inv_b * np.exp(-x * inv_b)
        return d1, -d1 * inv_b

    @staticmethod
    def time_scaled(p, periods):
        return {"a": p["a"] * periods, "b": p["b"] * periods}

    has_inverse = True

    @staticmethod
    def inverse_derivative(s, p):
        with np.errstate(divide="ignore", invalid="ignore"):
            return np.where(s > 0, p["b"] * np.log(p["a"] / (p["b"] * s)), np.inf)


class PowerFamily(Family):
    name = "power"
    ranges = {"a": _POS, "p": _UNIT}
    formula = "a * x ** p"

    @staticmethod
    def value(x, p):
        return p["a"] * np.power(x, p["p"])

    @staticmethod
    def derivative(x, p):
        with np.errstate(divide="ignore"):
            return p["a"] * p["p"] * np.power(x, p["p"] - 1.0)

    @staticmethod
    def second_derivative(x, p):
        with np.errstate(divide="ignore", invalid="ignore"):
            d2 = p["a"] * p["p"] * (p["p"] - 1.0) * np.power(x, p["p"] - 2.0)
        return np.where(p["p"] == 1.0, 0.0, d2)

    @classmethod
    def slopes(cls, x, p):
        with np.errstate(divide="ignore", invalid="ignore"):
            d1 = p["a"] * p["p"] * np.power(x, p["p"] - 1.0)
            d2 = np.where(p["p"] == 1.0, 0.0, d1 * (p["p"] - 1.0) / x)
        return d1, d2

    @staticmethod
    def time_scaled(p, periods):
        return {"a": p["a"] * periods ** (1.0 - p["p"]), "p": p["p"]}

    has_inverse = True

    @staticmethod
    def inverse_derivative(s, p):
        # p == 1 is linear: every spend has slope a (a step, not a point); p < 1 only here.
        with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
            x = np.power(s / (p["a"] * p["p"]), 1.0 / (p["p"] - 1.0))
        return np.where(s > 0, x, np.inf)


class MichaelisMentenFamily(Family):
    name = "michaelis_menten"
    ranges = {"alpha": _POS, "lam": _POS, "scale": _POS}
    defaults = {"scale": 1.0}
    formula = "alpha * u / (lam + u), u = x / scale"

    @staticmethod
    def value(x, p):
        u = x / p["scale"]
        return p["alpha"] * u / (p["lam"] + u)

    @staticmethod
    def derivative(x, p):
        u = x / p["scale"]
        return p["alpha"] * p["lam"] / (p["lam"] + u) ** 2 / p["scale"]

    @staticmethod
    def second_derivative(x, p):
        u = x / p["scale"]
        return -2.0 * p["alpha"] * p["lam"] / (p["lam"] + u) ** 3 / p["scale"] ** 2

    @classmethod
    def slopes(cls, x, p):
        inv_s = 1.0 / p["scale"]
        t = 1.0 / (p["lam"] + x * inv_s)
        d1 = p["alpha"] * p["lam"] * inv_s * t * t
        return d1, -2.0 * d1 * t * inv_s

    @staticmethod
    def time_scaled(p, periods):
        return {"alpha": p["alpha"] * periods, "lam": p["lam"], "scale": p["scale"] * periods}

    has_inverse = True

    @staticmethod
    def inverse_derivative(s, p):
        with np.errstate(divide="ignore", invalid="ignore"):
            u = np.sqrt(p["alpha"] * p["lam"] / (p["scale"] * s)) - p["lam"]
        return np.where(s > 0, p["scale"] * u, np.inf)


class LogisticFamily(Family):
    name = "logistic"
    ranges = {"beta": _POS, "lam": _POS, "scale": _POS}
    defaults = {"scale": 1.0}
    formula = "beta * (1 - exp(-lam u)) / (1 + exp(-lam u)), u = x / scale"

    @staticmethod
    def value(x, p):
        # (1 - e^-z) / (1 + e^-z) == tanh(z / 2), stable for all z >= 0.
        return p["beta"] * np.tanh(p["lam"] * x / p["scale"] / 2.0)

    @staticmethod
    def second_derivative(x, p):
        half = p["lam"] / p["scale"] / 2.0
        with np.errstate(over="ignore"):
            sech2 = 1.0 / np.cosh(half * x) ** 2
        return -2.0 * p["beta"] * half**2 * sech2 * np.tanh(half * x)

    @staticmethod
    def derivative(x, p):
        half = p["lam"] / p["scale"] / 2.0
        with np.errstate(over="ignore"):  # cosh overflows to inf far out: derivative 0
            return p["beta"] * half / np.cosh(half * x) ** 2

    @staticmethod
    def time_scaled(p, periods):
        return {"beta": p["beta"] * periods, "lam": p["lam"], "scale": p["scale"] * periods}


class HillFamily(Family):
    name = "hill"
    ranges = {"beta": _POS, "kappa": _POS, "slope": (0.0, False, math.inf, False), "scale": _POS}
    defaults = {"scale": 1.0}
    formula = "beta * u^slope / (kappa^slope + u^slope), u = x / scale"

    @staticmethod
    def _z(x, p):
        with np.errstate(divide="ignore"):
            return p["slope"] * (np.log(x / p["scale"]) - np.log(p["kappa"]))

    @staticmethod
    def value(x, p):
        return p["beta"] * expit(HillFamily._z(x, p))

    @staticmethod
    def derivative(x, p):
        z = HillFamily._z(x, p)
        s = expit(z)
        u = x / p["scale"]
        with np.errstate(divide="ignore", invalid="ignore"):
            d = p["beta"] * p["slope"] * s * (1.0 - s) / u / p["scale"]
        at_zero = np.where(p["slope"] < 1.0, np.inf, p["beta"] / (p["kappa"] * p["scale"]))
        return np.where(u > 0.0, d, at_zero)

    @staticmethod
    def second_derivative(x, p):
        z = HillFamily._z(x, p)
        s = expit(z)
        u = x / p["scale"]
        slope = p["slope"]
        with np.errstate(divide="ignore", invalid="ignore"):
            d2 = p["beta"] * slope * s * (1.0 - s) / u**2 * (slope * (1.0 - 2.0 * s) - 1.0) / p["scale"] ** 2
        at_zero = np.where(slope < 1.0, -np.inf, -2.0 * p["beta"] / (p["kappa"] ** 2 * p["scale"] ** 2))
        return np.where(u > 0.0, d2, at_zero)

    @staticmethod
    def time_scaled(p, periods):
        return {
            "beta": p["beta"] * periods,
            "kappa": p["kappa"],
            "slope": p["slope"],
            "scale": p["scale"] * periods,
        }

    def extra_check(self, p, where):
        bad = p["slope"][p["slope"] > 1.0]
        if bad.size:
            raise CurveError(
                f"{where}: hill with slope {float(bad[0]):g} > 1 is S-shaped (not concave) and "
                "cannot be solved to a proven global optimum yet; refit the cell with a concave "
                "family (log, exp_saturation, michaelis_menten, hill with slope <= 1) or give "
                "its concave envelope as a 'pwl' curve"
            )


class LinearFamily(Family):
    name = "linear"
    ranges = {"a": _NONNEG}
    formula = "a * x"

    @staticmethod
    def value(x, p):
        return p["a"] * x

    @staticmethod
    def derivative(x, p):
        return p["a"] * np.ones_like(x)

    @staticmethod
    def second_derivative(x, p):
        return np.zeros(np.broadcast_shapes(np.shape(x), np.shape(p["a"])))

    @staticmethod
    def time_scaled(p, periods):
        return {"a": p["a"]}


PARAMETRIC_FAMILIES: dict[str, Family] = {
    f.name: f
    for f in (
        LogFamily(),
        ExpSaturationFamily(),
        PowerFamily(),
        MichaelisMentenFamily(),
        LogisticFamily(),
        HillFamily(),
        LinearFamily(),
    )
}
PWL = "pwl"
FAMILY_NAMES: tuple[str, ...] = (*PARAMETRIC_FAMILIES, PWL)


# --------------------------------------------------------------------------------------------
# One curve
# --------------------------------------------------------------------------------------------


def _as_param_array(value: Any, where: str) -> FloatArray:
    scalar_or_list = (int, float, np.integer, np.floating, list, tuple, np.ndarray)
    if isinstance(value, bool) or not isinstance(value, scalar_or_list):
        raise CurveError(f"{where}: expected a number or a list of numbers, got {value!r}")
    arr = np.atleast_1d(np.asarray(value, dtype=object))
    if arr.ndim != 1 or arr.size == 0:
        raise CurveError(f"{where}: expected a number or a non-empty flat list of numbers")
    for v in arr:
        if isinstance(v, bool) or not isinstance(v, (int, float, np.floating, np.integer)):
            raise CurveError(f"{where}: expected numbers, got {v!r}")
    out = arr.astype(np.float64)
    if not np.all(np.isfinite(out)):
        raise CurveError(f"{where}: values must be finite, got {value!r}")
    return out


def _check_range(name: str, arr: FloatArray, rng: tuple[float, bool, float, bool], where: str) -> None:
    lo, lo_inc, hi, hi_inc = rng
    ok = (arr >= lo if lo_inc else arr > lo) & (arr <= hi if hi_inc else arr < hi)
    if not np.all(ok):
        bad = float(arr[~ok][0])
        lo_s = f"{lo:g} {'<=' if lo_inc else '<'}"
        hi_s = "" if math.isinf(hi) else f" {'<=' if hi_inc else '<'} {hi:g}"
        raise CurveError(f"{where}.{name}: must satisfy {lo_s} {name}{hi_s}, got {bad:g}")


@dataclass(frozen=True, eq=False)
class Curve:
    """One response curve: a family name and its parameters (money in, outcome out).

    ``params`` maps each parameter name to an array of shape (S,) (S = 1 without posterior
    samples). For ``pwl``, ``params`` holds ``x`` and ``y``, the breakpoints.
    Build it with :meth:`from_dict` (validating) or :meth:`parametric` / :meth:`pwl`.
    """

    family: str
    params: Mapping[str, FloatArray] = field(repr=False)

    # --- construction ------------------------------------------------------------------
    @classmethod
    def parametric(cls, family: str, where: str = "curve", **params: ArrayLike) -> Curve:
        """Validated parametric curve; ``params`` are numbers or sample sequences."""
        return cls.from_dict({"family": family, **params}, where=where)

    @classmethod
    def pwl(cls, points: Sequence[Sequence[float]] | FloatArray, where: str = "curve") -> Curve:
        """Validated concave piecewise-linear curve through ``points`` (flat after the last)."""
        return cls.from_dict({"family": PWL, "points": np.asarray(points, float).tolist()}, where=where)

    @classmethod
    def from_dict(cls, spec: Mapping[str, Any], where: str = "curve") -> Curve:
        """Parse and validate the problem-file form of a curve; errors name ``where``."""
        if not isinstance(spec, Mapping):
            raise CurveError(f"{where}: expected an object with a 'family' key, got {spec!r}")
        family = spec.get("family")
        if family not in FAMILY_NAMES:
            raise CurveError(
                f"{where}.family: unknown family {family!r}; expected one of {', '.join(FAMILY_NAMES)}"
            )
        if family == PWL:
            return cls._pwl_from_dict(spec, where)
        fam = PARAMETRIC_FAMILIES[family]
        unknown = sorted(set(spec) - {"family"} - set(fam.ranges))
        if unknown:
            raise CurveError(
                f"{where}: unknown key(s) {unknown} for family {family!r}; "
                f"expected {sorted(fam.ranges)}"
            )
        params: dict[str, FloatArray] = {}
        for name in fam.ranges:
            if name in spec:
                params[name] = _as_param_array(spec[name], f"{where}.{name}")
            elif name in fam.defaults:
                params[name] = np.array([fam.defaults[name]])
            else:
                raise CurveError(f"{where}: family {family!r} needs parameter {name!r}")
        lengths = {n: a.size for n, a in params.items() if a.size > 1}
        if len(set(lengths.values())) > 1:
            raise CurveError(
                f"{where}: posterior-sample lists must all have the same length, got "
                + ", ".join(f"{n}: {k}" for n, k in lengths.items())
            )
        n_samples = max(lengths.values(), default=1)
        params = {n: np.broadcast_to(a, (n_samples,)).copy() for n, a in params.items()}
        fam.extra_check(params, where)
        for name, arr in params.items():
            _check_range(name, arr, fam.ranges[name], where)
        return cls(family, params)

    @classmethod
    def _pwl_from_dict(cls, spec: Mapping[str, Any], where: str) -> Curve:
        unknown = sorted(set(spec) - {"family", "points"})
        if unknown:
            raise CurveError(f"{where}: unknown key(s) {unknown} for family 'pwl'; expected ['points']")
        pts = spec.get("points")
        try:
            arr = np.asarray(pts, dtype=np.float64)
        except (TypeError, ValueError):
            raise CurveError(f"{where}.points: expected a list of [x, y] pairs") from None
        if arr.ndim != 2 or arr.shape[1] != 2 or arr.shape[0] < 2:
            raise CurveError(f"{where}.points: expected at least two [x, y] pairs")
        if not np.all(np.isfinite(arr)):
            raise CurveError(f"{where}.points: values must be finite")
        x, y = arr[:, 0], arr[:, 1]
        if x[0] != 0.0:
            raise CurveError(f"{where}.points: the first point must have x = 0, got {x[0]:g}")
        if np.any(np.diff(x) <= 0):
            k = int(np.argmax(np.diff(x) <= 0)) + 1
            raise CurveError(f"{where}.points[{k}]: x values must be strictly increasing")
        slopes = np.diff(y) / np.diff(x)
        if np.any(slopes < 0):
            k = int(np.argmax(slopes < 0)) + 1
            raise CurveError(f"{where}.points[{k}]: the curve decreases (slope {slopes[k - 1]:g} < 0)")
        # A rise within the rounding of the slopes themselves (points on a straight line, as a
        # spreadsheet writes them) is not a rise: each slope is good to about eps x (|y_k| +
        # |y_k+1|) / dx_k.
        dx = np.diff(x)
        rounding = 8 * np.finfo(float).eps * (np.abs(y[:-1]) + np.abs(y[1:])) / dx
        tol = 1e-12 * np.maximum(np.abs(slopes[:-1]), np.abs(slopes[1:])) + rounding[:-1] + rounding[1:]
        rising = np.diff(slopes) > tol
        if np.any(rising):
            k = int(np.argmax(rising)) + 1
            raise CurveError(
                f"{where}.points[{k}]: the curve is not concave (slope rises from "
                f"{slopes[k - 1]:g} to {slopes[k]:g}); give its concave envelope instead"
            )
        return cls(PWL, {"x": x.copy(), "y": y.copy()})

    # --- properties ---------------------------------------------------------------------
    @property
    def n_samples(self) -> int:
        """Number of posterior samples S (1 for a plain curve and for ``pwl``)."""
        if self.family == PWL:
            return 1
        return int(next(iter(self.params.values())).size)

    # --- evaluation ---------------------------------------------------------------------
    def value(self, x: ArrayLike) -> FloatArray:
        """Outcome at spend ``x`` (any shape); the sample mean for posterior curves."""
        return self._evaluate(x, order=0)

    def derivative(self, x: ArrayLike) -> FloatArray:
        """Marginal outcome per currency unit at ``x`` (a supergradient at a pwl kink)."""
        return self._evaluate(x, order=1)

    def second_derivative(self, x: ArrayLike) -> FloatArray:
        """Second derivative at ``x`` (<= 0; 0 on pwl and linear pieces, -inf where infinite)."""
        return self._evaluate(x, order=2)

    def _evaluate(self, x: ArrayLike, order: int) -> FloatArray:
        xs = np.asarray(x, dtype=np.float64)
        if self.family == PWL:
            params = _pwl_lines(self.params["x"][None, :], self.params["y"][None, :])
        else:
            params = {k: v[None, :] for k, v in self.params.items()}
        flat = _evaluate_group(self.family, params, xs.reshape(-1, 1), order)
        return flat.reshape(xs.shape)

    # --- transformations ----------------------------------------------------------------
    def time_scaled(self, periods: float) -> Curve:
        """The curve of a plan that spreads spend evenly over ``periods`` history periods.

        Returns ``g(x) = periods * f(x / periods)`` in the same family (exact, no refit).
        """
        if not periods > 0:
            raise CurveError(f"periods must be > 0, got {periods!r}")
        if self.family == PWL:
            return Curve(PWL, {"x": self.params["x"] * periods, "y": self.params["y"] * periods})
        fam = PARAMETRIC_FAMILIES[self.family]
        return Curve(self.family, fam.time_scaled(self.params, float(periods)))

    def scaled(self, factor: float) -> Curve:
        """``factor * f(x)``: the same family with its output multiplied (factor > 0)."""
        if not factor > 0:
            raise CurveError(f"curve scale factor must be > 0, got {factor!r}")
        if self.family == PWL:
            return Curve(PWL, {"x": self.params["x"], "y": self.params["y"] * factor})
        out_param = {
            "log": "a", "exp_saturation": "a", "power": "a", "linear": "a",
            "michaelis_menten": "alpha", "logistic": "beta", "hill": "beta",
        }[self.family]
        params = dict(self.params)
        params[out_param] = params[out_param] * factor
        return Curve(self.family, params)

    # --- serialization ------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        """Problem-file form: numbers for single-sample parameters, lists for samples."""
        if self.family == PWL:
            pts = np.column_stack([self.params["x"], self.params["y"]])
            return {"family": PWL, "points": pts.tolist()}
        out: dict[str, Any] = {"family": self.family}
        for name, arr in self.params.items():
            out[name] = float(arr[0]) if arr.size == 1 else [float(v) for v in arr]
        return out

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Curve):
            return NotImplemented
        return self.family == other.family and set(self.params) == set(other.params) and all(
            np.array_equal(self.params[k], other.params[k]) for k in self.params
        )

    def __hash__(self) -> int:
        return hash((self.family, tuple(sorted(self.params))))


# --------------------------------------------------------------------------------------------
# Many curves at once
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Group:
    family: str
    index: NDArray[np.intp]          # positions in the batch
    params: dict[str, FloatArray]    # each (n_group, S); for pwl: the lines of _pwl_lines
    points: tuple[FloatArray, FloatArray] | None = None  # pwl only: x, y of shape (n_group, K)


class CurveBatch:
    """Vectorized evaluation of ``n`` curves, one per position; ``None`` is the zero curve.

    Curves are grouped by (family, number of samples) so that evaluation is a handful of numpy
    operations regardless of ``n``. Inputs and outputs are arrays of shape (n,). Build it from
    Curve objects, or -- without creating one object per cell -- from problem-file specs with
    :func:`forecasting.batch.parse_curves` or from arrays with :meth:`from_groups`.
    """

    def __init__(self, curves: Sequence[Curve | None]) -> None:
        buckets: dict[tuple[str, int], list[int]] = {}
        for i, c in enumerate(curves):
            if c is None:
                continue
            size = c.params["x"].size if c.family == PWL else c.n_samples
            buckets.setdefault((c.family, size), []).append(i)
        groups = []
        for (family, _), idx in buckets.items():
            members = [curves[i] for i in idx]
            names = members[0].params.keys()  # type: ignore[union-attr]
            params = {k: np.stack([m.params[k] for m in members]) for k in names}  # type: ignore[union-attr]
            groups.append(make_group(family, np.asarray(idx, dtype=np.intp), params))
        self._set(len(curves), groups)

    @classmethod
    def from_groups(cls, n: int, groups: Sequence[_Group]) -> CurveBatch:
        """A batch of ``n`` positions from prepared groups (see :func:`make_group`)."""
        batch = cls.__new__(cls)
        batch._set(n, groups)
        return batch

    def _set(self, n: int, groups: Sequence[_Group]) -> None:
        self.n = n
        self.groups: tuple[_Group, ...] = tuple(groups)
        self._locator: tuple[NDArray[np.intp], NDArray[np.intp]] | None = None
        self._has_inverse: bool | None = None

    def _locate(self) -> tuple[NDArray[np.intp], NDArray[np.intp]]:
        """Per position: its group (-1 for the zero curve) and its row in that group."""
        if self._locator is None:
            group_of = np.full(self.n, -1, dtype=np.intp)
            row_of = np.zeros(self.n, dtype=np.intp)
            for k, g in enumerate(self.groups):
                group_of[g.index] = k
                row_of[g.index] = np.arange(g.index.size)
            self._locator = (group_of, row_of)
        return self._locator

    def curve(self, i: int) -> Curve | None:
        """The curve at position ``i`` as a :class:`Curve` (None for the zero curve)."""
        group_of, row_of = self._locate()
        k, row = int(group_of[i]), int(row_of[i])
        if k < 0:
            return None
        g = self.groups[k]
        if g.family == PWL:
            assert g.points is not None
            return Curve(PWL, {"x": g.points[0][row].copy(), "y": g.points[1][row].copy()})
        return Curve(g.family, {name: arr[row].copy() for name, arr in g.params.items()})

    def masked(self, keep: NDArray[np.bool_]) -> CurveBatch:
        """The same positions with the curves outside ``keep`` replaced by the zero curve."""
        groups = []
        for g in self.groups:
            k = keep[g.index]
            if k.all():
                groups.append(g)
            elif k.any():
                points = None if g.points is None else (g.points[0][k], g.points[1][k])
                groups.append(_Group(g.family, g.index[k], {n: v[k] for n, v in g.params.items()}, points))
        return CurveBatch.from_groups(self.n, groups)

    def to_dicts(self) -> list[dict[str, Any] | None]:
        """The problem-file form of every position (None for the zero curve)."""
        out: list[dict[str, Any] | None] = [None] * self.n
        for g in self.groups:
            if g.family == PWL:
                assert g.points is not None
                for row, i in enumerate(g.index):
                    out[i] = {"family": PWL, "points": np.column_stack([g.points[0][row], g.points[1][row]]).tolist()}
                continue
            names = list(g.params)
            single = next(iter(g.params.values())).shape[1] == 1
            columns = [g.params[k][:, 0].tolist() if single else g.params[k].tolist() for k in names]
            for i, values in zip(g.index.tolist(), zip(*columns)):
                d: dict[str, Any] = {"family": g.family}
                for name, v in zip(names, values):
                    d[name] = v if single or len(set(v)) > 1 else v[0]
                out[i] = d
        return out

    def families(self) -> set[str]:
        """The families present in the batch."""
        return {g.family for g in self.groups}

    def value_at(self, x: FloatArray, where: NDArray[np.bool_] | None = None) -> FloatArray:
        """Curve values at spends ``x`` (shape (n,)); only at ``where`` (else 0) if given."""
        return self._apply(x, 0, where)

    def derivative_at(self, x: FloatArray, where: NDArray[np.bool_] | None = None) -> FloatArray:
        """Curve derivatives at spends ``x`` (shape (n,)); ``inf`` where infinite at zero."""
        return self._apply(x, 1, where)

    def second_derivative_at(self, x: FloatArray, where: NDArray[np.bool_] | None = None) -> FloatArray:
        """Second derivatives at spends ``x`` (shape (n,)); 0 on linear pieces."""
        return self._apply(x, 2, where)

    def slopes_at(self, x: FloatArray, where: NDArray[np.bool_] | None = None) -> tuple[FloatArray, FloatArray]:
        """First and second derivatives at ``x`` in one pass (shape (n,) each)."""
        d1, d2 = self._apply(x, 3, where, outputs=2)
        return d1, d2

    def inverse_derivative_at(self, s: FloatArray) -> FloatArray | None:
        """The spends where each curve's derivative equals ``s`` (shape (n,)), in closed form;
        None unless every curve's family has one (single-sample curves; ``power`` with p < 1).

        Unbounded: entries may be negative or ``inf`` (clip to the cells' bounds: by concavity the
        clipped value maximizes ``f(x) - s x`` on the bounds). A position without a curve (the
        zero curve) gets ``-inf`` where ``s > 0`` and ``inf`` elsewhere.
        """
        return self.argmax_at(s) if self.has_inverse_derivative() else None

    def argmax_at(self, s: FloatArray) -> FloatArray:
        """Per position, a maximizer of ``f(x) - s x`` over ``x >= 0`` in closed form (shape (n,)),
        or NaN where the family has none: the inverse of the marginal (single-sample log,
        exp_saturation, michaelis_menten, power with ``p < 1``), or for ``pwl`` the breakpoint
        where the pieces' slopes fall below ``s`` (``inf`` for ``s < 0``: the curve is flat after
        its last point). Unbounded like :meth:`inverse_derivative_at`: clip to the cells' bounds
        (by concavity the clipped value maximizes on the bounds). Positions without a curve get
        ``-inf`` where ``s > 0`` and ``inf`` elsewhere."""
        x = np.where(s > 0, -np.inf, np.inf)
        for g in self.groups:
            si = s[g.index]
            if g.family == PWL:
                assert g.points is not None
                px, py = g.points
                with np.errstate(divide="ignore", invalid="ignore"):
                    slopes = np.diff(py, axis=1) / np.diff(px, axis=1)
                k = np.sum(slopes > si[:, None], axis=1)
                x[g.index] = np.where(si < 0, np.inf, np.take_along_axis(px, k[:, None], axis=1)[:, 0])
                continue
            fam = PARAMETRIC_FAMILIES.get(g.family)
            single = next(iter(g.params.values())).shape[1] == 1
            if fam is None or not fam.has_inverse or not single:
                x[g.index] = np.nan
                continue
            params = {k: v[:, 0] for k, v in g.params.items()}
            xi = fam.inverse_derivative(si, params)
            if g.family == "power":
                xi = np.where(params["p"] >= 1.0, np.nan, xi)
            x[g.index] = xi
        return x

    def pwl_mask(self) -> NDArray[np.bool_]:
        """Positions whose curve is a ``pwl`` (shape (n,))."""
        mask = np.zeros(self.n, dtype=bool)
        for g in self.groups:
            if g.family == PWL:
                mask[g.index] = True
        return mask

    def pwl_rows(self, positions: NDArray[np.intp]) -> tuple[FloatArray, FloatArray, FloatArray]:
        """Breakpoints ``x`` and lines (``slope``, ``intercept``; the curve is their minimum) of the
        pwl curves at ``positions`` (all pwl), each of shape (len(positions), K), padded by
        repeating each row's last entry."""
        group_of, row_of = self._locate()
        width_x = max(g.points[0].shape[1] for g in self.groups if g.family == PWL)  # type: ignore[union-attr]
        width_l = max(g.params["slope"].shape[1] for g in self.groups if g.family == PWL)
        xs = np.empty((positions.size, width_x))
        slope = np.empty((positions.size, width_l))
        intercept = np.empty((positions.size, width_l))
        of_group = group_of[positions]
        for k, g in enumerate(self.groups):
            sel = np.flatnonzero(of_group == k)
            if sel.size == 0:
                continue
            assert g.family == PWL and g.points is not None
            rows = row_of[positions[sel]]
            for out, src in ((xs, g.points[0]), (slope, g.params["slope"]), (intercept, g.params["intercept"])):
                part = src[rows]
                out[sel, : part.shape[1]] = part
                out[sel, part.shape[1]:] = part[:, -1:]
        return xs, slope, intercept

    def has_straight_curves(self) -> bool:
        """Whether some curve is a straight line (``linear``, or ``power`` with ``p = 1`` in every
        sample): it has no curvature anywhere, so its best response to a price jumps between
        its bounds."""
        return any(g.family == "linear" or (g.family == "power" and bool(np.any(np.all(g.params["p"] >= 1.0, axis=1))))
                   for g in self.groups)

    def has_inverse_derivative(self) -> bool:
        """Whether :meth:`inverse_derivative_at` has a closed form for every curve (computed once)."""
        if self._has_inverse is None:
            self._has_inverse = all(
                (fam := PARAMETRIC_FAMILIES.get(g.family)) is not None and fam.has_inverse
                and next(iter(g.params.values())).shape[1] == 1
                and not (g.family == "power" and np.any(g.params["p"] >= 1.0))
                for g in self.groups)
        return self._has_inverse

    def slopes_of(self, x: FloatArray, positions: NDArray[np.intp]) -> tuple[FloatArray, FloatArray]:
        """First and second derivatives of the curves at ``positions`` (shape (m,)) at spends
        ``x`` (shape (m,)): the compact form of :meth:`slopes_at` for a few positions."""
        group_of, row_of = self._locate()
        d1, d2 = np.zeros(positions.size), np.zeros(positions.size)
        of_group = group_of[positions]
        for k, g in enumerate(self.groups):
            sel = np.flatnonzero(of_group == k)
            if sel.size == 0:
                continue
            rows = row_of[positions[sel]]
            params = g.params if rows.size == g.index.size and (rows[1:] > rows[:-1]).all() else \
                {name: v.take(rows, axis=0) for name, v in g.params.items()}
            d1[sel], d2[sel] = _evaluate_group(g.family, params, x[sel][:, None], 3)
        return d1, d2

    def _apply(self, x: FloatArray, order: int, where: NDArray[np.bool_] | None, outputs: int = 1) -> Any:
        outs = [np.zeros(self.n) for _ in range(outputs)]
        for g in self.groups:
            if where is None:
                idx, params, keep = g.index, g.params, None
            else:
                keep = where[g.index]
                count = int(np.count_nonzero(keep))
                if count == 0:
                    continue
                if count > 0.3 * keep.size:  # gathering parameters would cost more than it saves
                    idx, params = g.index, g.params
                else:
                    rows = np.flatnonzero(keep)
                    idx, params, keep = g.index[rows], {k: v.take(rows, axis=0) for k, v in g.params.items()}, None
            values = _evaluate_group(g.family, params, x[idx][:, None], order)
            for out, v in zip(outs, values if outputs > 1 else (values,)):
                out[idx] = v if keep is None else np.where(keep, v, 0.0)
        return tuple(outs) if outputs > 1 else outs[0]


def _evaluate_group(family: str, params: Mapping[str, FloatArray], x: FloatArray, order: int) -> FloatArray:
    """Value (order 0), derivative (1), second derivative (2) or both derivatives (3) of m curves of one family at
    ``x`` of shape (m, 1) (or (k, 1) against one curve).

    ``params`` are (m, S) arrays, or the pwl lines of :func:`_pwl_lines`; returns shape (m,).
    """
    if family == PWL:
        if order == 3:
            return _evaluate_group(family, params, x, 1), np.zeros(x.shape[0])
        if order == 2:
            return np.zeros(x.shape[0])
        vals = params["intercept"] + params["slope"] * x
        if order == 0:
            return vals.min(axis=1)
        k = np.argmin(vals, axis=1)
        slopes = np.broadcast_to(params["slope"], vals.shape)
        return np.take_along_axis(slopes, k[:, None], axis=1)[:, 0]
    fam = PARAMETRIC_FAMILIES[family]
    if order == 3:
        return tuple(_sample_mean(v) for v in fam.slopes(x, params))
    f = (fam.value, fam.derivative, fam.second_derivative)[order]
    return _sample_mean(f(x, params))


def _sample_mean(values: FloatArray) -> FloatArray:
    values = np.asarray(values, dtype=np.float64)
    return values[:, 0] if values.shape[1] == 1 else values.mean(axis=1)


def make_group(family: str, index: NDArray[np.intp], params: Mapping[str, FloatArray]) -> _Group:
    """A batch group; ``params`` are (n_group, S) arrays, or ``x``/``y`` breakpoints for pwl."""
    if family == PWL:
        return _Group(family, index, _pwl_lines(params["x"], params["y"]), (params["x"], params["y"]))
    return _Group(family, index, dict(params))


def _pwl_lines(x: FloatArray, y: FloatArray) -> dict[str, FloatArray]:
    """A concave pwl (flat after its last point) as the minimum of lines ``intercept + slope x``."""
    slope = np.diff(y, axis=1) / np.diff(x, axis=1)
    intercept = y[:, :-1] - slope * x[:, :-1]
    flat_slope = np.zeros((x.shape[0], 1))
    return {
        "slope": np.hstack([slope, flat_slope]),
        "intercept": np.hstack([intercept, y[:, -1:]]),
    }
