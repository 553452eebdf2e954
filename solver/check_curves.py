"""The independent checker's own model: curve formulas, the problem file, rigorous 1-D concave maxima.

Written from the family formulas of the problem format (``docs/problem-format.md``), in plain
float64 numpy, sharing no code with the solve path (``forecasting.curves`` is never imported):
``budget-solver check`` must be able to re-check a plan even if the solver's curve code were wrong.

``x`` is spend (currency), ``u = x / scale``; value, then slope (first derivative in ``x``):

- log: ``a log(1 + x/b)``; ``a / (b + x)``
- exp_saturation: ``a (1 - exp(-x/b))``; ``(a/b) exp(-x/b)``
- power: ``a x^p``; ``a p x^(p-1)`` (``+inf`` at 0 when p < 1)
- michaelis_menten: ``alpha u / (lam + u)``; ``alpha lam / (scale (lam + u)^2)``
- logistic: ``beta (1 - e^-z) / (1 + e^-z)``, ``z = lam u``; ``beta (lam/scale) 2 e^-z / (1 + e^-z)^2``
- hill: ``beta t / (1 + t)``, ``t = (u/kappa)^slope``; ``beta slope t / (x (1 + t)^2)`` (``+inf`` at 0
  when slope < 1)
- linear: ``a x``; ``a``
- pwl: linear interpolation, flat after the last point; the slope of the piece right of ``x``

Also here: the problem file as the checker reads it (:func:`parse_problem`), one cell's
Lagrangian term (:func:`cell_function`) and its rigorous maximum (:func:`concave_max_upper`).

A parameter given as a list of S posterior samples makes the curve the mean over the samples.

Examples
--------
>>> c = parse_curve({"family": "log", "a": 1000.0, "b": 50.0}, "r")
>>> round(float(c.value(np.array([50.0]))[0]), 6), float(c.slope(np.array([0.0]))[0])
(693.147181, 20.0)
>>> f = lambda x: (-(x - 2.0) ** 2, 0 * x, -2 * (x - 2.0), 0 * x)   # max 0 at x = 2
>>> 0.0 <= concave_max_upper(f, 0.0, 10.0) < 1e-12
True
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from numpy.typing import NDArray

FloatArray = NDArray[np.float64]
EPS = float(np.finfo(np.float64).eps)
#: Relative allowance for one evaluated term (value or slope), in units of eps.
TERM_ALLOWANCE = 64.0 * EPS


class CheckInputError(ValueError):
    """The problem or solution given to the checker is malformed; the message names where.

    ``source`` is ``"problem"`` or ``"solution"`` once :func:`solver.check.check_solution` knows it.
    """

    source: str = ""


_POS = (0.0, False, math.inf)
_NONNEG = (0.0, True, math.inf)
_UNIT = (0.0, False, 1.0)
#: family -> parameter -> (lower bound, lower inclusive?, upper bound (inclusive)); then defaults.
FAMILIES: dict[str, tuple[dict[str, tuple[float, bool, float]], dict[str, float]]] = {
    "log": ({"a": _POS, "b": _POS}, {}),
    "exp_saturation": ({"a": _POS, "b": _POS}, {}),
    "power": ({"a": _POS, "p": _UNIT}, {}),
    "michaelis_menten": ({"alpha": _POS, "lam": _POS, "scale": _POS}, {"scale": 1.0}),
    "logistic": ({"beta": _POS, "lam": _POS, "scale": _POS}, {"scale": 1.0}),
    "hill": ({"beta": _POS, "kappa": _POS, "slope": _UNIT, "scale": _POS}, {"scale": 1.0}),
    "linear": ({"a": _NONNEG}, {}),
}


def _columns(x: FloatArray, params: Mapping[str, FloatArray]) -> tuple[FloatArray, dict[str, FloatArray]]:
    """Spends as a column (n, 1) and parameters as rows (1, S), so formulas broadcast to (n, S)."""
    return x[:, None], {k: v[None, :] for k, v in params.items()}


def _family_value(family: str, x: FloatArray, q: Mapping[str, FloatArray]) -> FloatArray:
    if family == "log":
        return q["a"] * np.log1p(x / q["b"])
    if family == "exp_saturation":
        return -q["a"] * np.expm1(-x / q["b"])
    if family == "power":
        return q["a"] * np.power(x, q["p"])
    if family == "michaelis_menten":
        u = x / q["scale"]
        return q["alpha"] * u / (q["lam"] + u)
    if family == "logistic":
        z = q["lam"] * x / q["scale"]
        return q["beta"] * -np.expm1(-z) / (1.0 + np.exp(-z))
    if family == "hill":
        with np.errstate(divide="ignore"):
            t = np.power(x / (q["scale"] * q["kappa"]), q["slope"])
            return q["beta"] / (1.0 + 1.0 / t)          # t = 0 -> 0, t = inf -> beta
    return q["a"] * x                                   # linear


def _family_slope(family: str, x: FloatArray, q: Mapping[str, FloatArray]) -> FloatArray:
    if family == "log":
        return q["a"] / (q["b"] + x)
    if family == "exp_saturation":
        return q["a"] / q["b"] * np.exp(-x / q["b"])
    if family == "power":
        with np.errstate(divide="ignore"):             # 0 ** (p - 1) = inf for p < 1, 1 for p = 1
            return q["a"] * q["p"] * np.power(x, q["p"] - 1.0)
    if family == "michaelis_menten":
        return q["alpha"] * q["lam"] / (q["scale"] * (q["lam"] + x / q["scale"]) ** 2)
    if family == "logistic":
        e = np.exp(-q["lam"] * x / q["scale"])
        return q["beta"] * q["lam"] / q["scale"] * 2.0 * e / (1.0 + e) ** 2
    if family == "hill":
        s, k = q["slope"], q["scale"] * q["kappa"]
        with np.errstate(divide="ignore", invalid="ignore"):
            t = np.power(x / k, s)
            inner = q["beta"] * s / (x * (t + 2.0 + 1.0 / t))   # t / (1 + t)^2 = 1 / (t + 2 + 1/t)
        at_zero = np.where(s < 1.0, np.inf, q["beta"] / k)
        return np.where(x > 0.0, inner, at_zero)
    return q["a"] * np.ones_like(x)                    # linear


@dataclass(frozen=True, eq=False)
class ExactCurve:
    """One response curve, evaluated from its formula (mean over posterior samples).

    ``params`` maps parameter names to arrays of shape (S,); for ``pwl`` it holds ``x`` and ``y``.
    """

    family: str
    params: Mapping[str, FloatArray] = field(repr=False)

    def value(self, x: FloatArray) -> FloatArray:
        """Outcome at each spend of ``x`` (1-D array, >= 0)."""
        x = np.asarray(x, dtype=np.float64)
        if self.family == "pwl":
            return np.interp(x, self.params["x"], self.params["y"])  # flat after the last point
        xc, q = _columns(x, self.params)
        return _family_value(self.family, xc, q).mean(axis=1)

    def slope(self, x: FloatArray) -> FloatArray:
        """First derivative at each spend of ``x`` (``+inf`` where it is infinite; the right
        derivative at a pwl breakpoint, 0 after its last point)."""
        x = np.asarray(x, dtype=np.float64)
        if self.family == "pwl":
            px, py = self.params["x"], self.params["y"]
            slopes = np.append(np.diff(py) / np.diff(px), 0.0)
            return slopes[np.searchsorted(px, x, side="right") - 1]
        xc, q = _columns(x, self.params)
        return _family_slope(self.family, xc, q).mean(axis=1)


def brief(value: Any, limit: int = 80) -> str:
    """``repr(value)``, cut to ``limit`` characters for one-line messages."""
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def number(value: Any, where: str, lo: float = -math.inf, strict: bool = False) -> float:
    """A finite float >= lo (> lo if strict), else CheckInputError naming ``where``."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) \
            or (value <= lo if strict else value < lo):
        raise CheckInputError(f"{where}: expected a finite number {'>' if strict else '>='} {lo:g}, got {brief(value)}")
    return float(value)


def keys(obj: Any, allowed: set[str], where: str) -> Mapping[str, Any]:
    """``obj`` as an object with only ``allowed`` keys, else CheckInputError naming ``where``."""
    if not isinstance(obj, Mapping):
        raise CheckInputError(f"{where}: expected an object, got {brief(obj)}")
    if set(obj) - allowed:
        raise CheckInputError(f"{where}: unknown key(s) {sorted(set(obj) - allowed)} (the checker reads version 1)")
    return obj


def _numbers(value: Any, where: str) -> FloatArray:
    items = value if isinstance(value, (list, tuple)) else [value]
    if not items or any(isinstance(v, bool) or not isinstance(v, (int, float)) for v in items):
        raise CheckInputError(f"{where}: expected a number or a non-empty list of numbers, got {brief(value)}")
    arr = np.asarray(items, dtype=np.float64)
    if not np.all(np.isfinite(arr)):
        raise CheckInputError(f"{where}: values must be finite, got {brief(value)}")
    return arr


def parse_curve(spec: Any, where: str) -> ExactCurve:
    """Read a curve of the problem file, checking the concave parameter ranges (the checker's
    bounds rely on concavity); raises :class:`CheckInputError` naming ``where``."""
    if not isinstance(spec, Mapping) or spec.get("family") not in (*FAMILIES, "pwl"):
        family = spec.get("family") if isinstance(spec, Mapping) else None
        raise CheckInputError(f"{where}: expected a curve with a known 'family' ({', '.join((*FAMILIES, 'pwl'))}), "
                              f"got {brief(family if family is not None else spec)}")
    family = spec["family"]
    if family == "pwl":
        return _parse_pwl(spec, where)
    ranges, defaults = FAMILIES[family]
    unknown = sorted(set(spec) - {"family"} - set(ranges))
    if unknown:
        raise CheckInputError(f"{where}: unknown key(s) {unknown} for family {family!r}")
    params: dict[str, FloatArray] = {}
    for name, (lo, lo_inclusive, hi) in ranges.items():
        if name not in spec and name not in defaults:
            raise CheckInputError(f"{where}: family {family!r} needs parameter {name!r}")
        arr = _numbers(spec.get(name, defaults.get(name)), f"{where}.{name}")
        if not np.all((arr >= lo if lo_inclusive else arr > lo) & (arr <= hi)):
            raise CheckInputError(f"{where}.{name}: outside the concave range of {family!r}: {brief(spec[name])}")
        params[name] = arr
    sizes = {a.size for a in params.values() if a.size > 1}
    if len(sizes) > 1:
        raise CheckInputError(f"{where}: posterior-sample lists have different lengths {sorted(sizes)}")
    n = max(sizes, default=1)
    return ExactCurve(family, {k: np.broadcast_to(a, (n,)).copy() for k, a in params.items()})


def _parse_pwl(spec: Mapping[str, Any], where: str) -> ExactCurve:
    if set(spec) != {"family", "points"} or not isinstance(spec["points"], (list, tuple)):
        raise CheckInputError(f"{where}: a pwl curve has exactly 'family' and 'points' (a list of [x, y])")
    pts = spec["points"]
    if len(pts) < 2 or any(not isinstance(p, (list, tuple)) or len(p) != 2 for p in pts):
        raise CheckInputError(f"{where}.points: expected at least two [x, y] pairs")
    arr = np.stack([_numbers(list(p), f"{where}.points[{k}]") for k, p in enumerate(pts)])
    x, y = arr[:, 0], arr[:, 1]
    if x[0] != 0.0 or np.any(np.diff(x) <= 0.0):
        raise CheckInputError(f"{where}.points: x must start at 0 and increase strictly")
    s = np.diff(y) / np.diff(x)
    if np.any(s < 0.0) or np.any(np.diff(s) > 1e-12 * np.maximum(np.abs(s[:-1]), np.abs(s[1:]))):
        raise CheckInputError(f"{where}.points: the curve must be nondecreasing and concave")
    return ExactCurve("pwl", {"x": x.copy(), "y": y.copy()})


@dataclass(frozen=True)
class CheckCell:
    """One cell: labels, curves and spend bounds (``hi`` defaults to the budget)."""

    category: str
    segment: str
    revenue: ExactCurve
    acquisitions: ExactCurve | None
    lo: float
    hi: float


@dataclass(frozen=True)
class CheckProblem:
    """The problem file as the checker reads it (version 1)."""

    budget: float
    equal: bool
    profit: bool
    cells: tuple[CheckCell, ...]
    shares: dict[str, tuple[float, float]]   # category -> (L, U), fractions of the budget
    cap: dict[str, float]                    # segment with a CLV/CAC rule -> clv / ratio

    def share(self, category: str) -> tuple[float, float]:
        return self.shares.get(category, (0.0, 1.0))   # no rule: 0 <= spend <= budget (always valid)


def parse_problem(d: Mapping[str, Any]) -> CheckProblem:
    """Read a problem-file dict; raises :class:`CheckInputError` naming the bad key."""
    d = keys(d, {"version", "name", "budget", "budget_mode", "objective", "cells", "category_shares",
                  "segments"}, "problem")
    if d.get("version") != 1:
        raise CheckInputError(f"version: the checker reads version 1, got {d.get('version')!r}")
    budget = number(d.get("budget"), "budget", 0.0, strict=True)
    mode, objective = d.get("budget_mode", "equal"), d.get("objective", "revenue")
    if mode not in ("equal", "at_most") or objective not in ("revenue", "profit"):
        raise CheckInputError(f"budget_mode / objective: unknown value {mode!r} / {objective!r}")
    if not isinstance(d.get("cells"), list):
        raise CheckInputError("cells: expected a list")
    cells, seen = [], set()
    for i, raw in enumerate(d["cells"]):
        w = f"cells[{i}]"
        c = keys(raw, {"category", "segment", "revenue", "acquisitions", "min_spend", "max_spend",
                        "current_spend"}, w)
        cat, seg = c.get("category"), c.get("segment")
        if not isinstance(cat, str) or not isinstance(seg, str) or (cat, seg) in seen:
            raise CheckInputError(f"{w}: needs string category and segment, each pair once, got {cat!r}/{seg!r}")
        seen.add((cat, seg))
        lo = number(c.get("min_spend", 0.0), f"{w}.min_spend", 0.0)
        hi = budget if c.get("max_spend") is None else number(c["max_spend"], f"{w}.max_spend", lo)
        acq = None if c.get("acquisitions") is None else parse_curve(c["acquisitions"], f"{w}.acquisitions")
        cells.append(CheckCell(cat, seg, parse_curve(c.get("revenue"), f"{w}.revenue"), acq, lo, hi))
    categories, segments = {c.category for c in cells}, {c.segment for c in cells}
    shares = {}
    for cat, r in (d.get("category_shares") or {}).items():
        w = f"category_shares.{cat}"
        r = keys(r, {"min", "max"}, w)
        lo, hi = number(r.get("min", 0.0), f"{w}.min", 0.0), number(r.get("max", 1.0), f"{w}.max", 0.0)
        if cat not in categories or not lo <= hi <= 1.0:
            raise CheckInputError(f"{w}: needs a category with cells and 0 <= min <= max <= 1")
        shares[cat] = (lo, hi)
    cap = {}
    for seg, r in (d.get("segments") or {}).items():
        w = f"segments.{seg}"
        r = keys(r, {"clv", "min_clv_cac_ratio"}, w)
        clv = number(r.get("clv"), f"{w}.clv", 0.0, strict=True)
        if seg not in segments:
            raise CheckInputError(f"{w}: segment has no cell")
        if r.get("min_clv_cac_ratio") is not None:
            ratio = number(r["min_clv_cac_ratio"], f"{w}.min_clv_cac_ratio", 0.0)
            if ratio > 0.0:
                cap[seg] = clv / ratio
    for i, c in enumerate(cells):
        if c.segment in cap and c.acquisitions is None:
            raise CheckInputError(f"cells[{i}]: segment {c.segment!r} has a CLV/CAC rule but the cell no acquisitions")
    return CheckProblem(budget, mode == "equal", objective == "profit", tuple(cells), shares, cap)


#: ``f(x) -> (value, value_error, slope, slope_error)`` for a 1-D array ``x``: a concave function,
#: its (super)gradient, and absolute bounds on the rounding error of each.
ConcaveFunction = Callable[[FloatArray], tuple[FloatArray, FloatArray, FloatArray, FloatArray]]

SECTIONS = 32
MAX_ROUNDS = 60


def concave_max_upper(f: ConcaveFunction, lo: float, hi: float) -> float:
    """A rigorous upper estimate of ``max_{lo <= x <= hi} f(x)`` (see :func:`concave_max_bounds`)."""
    return concave_max_bounds(f, lo, hi)[1]


def concave_max_bounds(f: ConcaveFunction, lo: float, hi: float) -> tuple[float, float]:
    """Rigorous lower and upper estimates of ``max_{lo <= x <= hi} f(x)`` for a concave ``f``.

    The lower estimate is the best value found (less its rounding error): some feasible point
    reaches it. For the upper one, the bracket ``[a, b]`` with slope ``> 0`` at ``a`` and ``<= 0``
    at ``b`` is narrowed by the sign of the slope (bisection, ``SECTIONS`` sections per round) to
    the last representable width. Then, by concavity (every tangent line lies above ``f``), with
    the slope errors ``e``: on ``[lo, a]`` ``f <= f(a) + max(0, e_a - f'(a)) (a - lo)``; on ``[a, b]``
    ``f <=`` the smaller of the two tangents' values across the bracket; on ``[b, hi]`` ``f <= f(b) +
    max(0, f'(b) + e_b) (hi - b)``. The largest of these plus the value errors is never below the
    true maximum, even when the search stops early or a slope's sign is misjudged by rounding.
    """
    if hi <= lo:
        v, ve, _, _ = f(np.array([lo]))
        return (float(v[0] - ve[0]), float(v[0] + ve[0])) if np.isfinite(v[0]) else (-math.inf, math.inf)
    v, ve, s, se = f(np.array([lo, hi]))
    if np.isnan(s).any() or not np.isfinite(v).all():
        return -math.inf, math.inf                      # cannot be bounded: claim fails upstream
    best = float(np.max(v - ve))
    if s[1] >= 0.0:                                     # nondecreasing up to hi
        return best, float(v[1] + ve[1] + se[1] * (hi - lo))
    if s[0] <= 0.0:                                     # nonincreasing from lo
        return best, float(v[0] + ve[0] + se[0] * (hi - lo))
    a, b = (float(lo), float(v[0]), float(ve[0]), float(s[0]), float(se[0])), \
           (float(hi), float(v[1]), float(ve[1]), float(s[1]), float(se[1]))
    width_tol = 4.0 * EPS * max(abs(lo), abs(hi))
    for _ in range(MAX_ROUNDS):
        if b[0] - a[0] <= width_tol:
            break
        xs = np.linspace(a[0], b[0], SECTIONS + 1)[1:-1]
        xs = xs[(xs > a[0]) & (xs < b[0])]
        if xs.size == 0:
            break
        v, ve, s, se = f(xs)
        if np.isnan(s).any() or not np.isfinite(v).all():
            return best, math.inf
        best = max(best, float(np.max(v - ve)))
        k = int(np.argmax(s <= 0.0)) if np.any(s <= 0.0) else xs.size
        if k > 0:
            a = (float(xs[k - 1]), float(v[k - 1]), float(ve[k - 1]), float(s[k - 1]), float(se[k - 1]))
        if k < xs.size:
            b = (float(xs[k]), float(v[k]), float(ve[k]), float(s[k]), float(se[k]))
    (xa, va, vea, sa, sea), (xb, vb, veb, sb, seb) = a, b
    d = xb - xa
    left = va + vea + (max(0.0, sea - sa) * (xa - lo) if xa > lo else 0.0)
    middle = min(va + vea + (sa + sea) * d, vb + veb + (seb - sb) * d)
    right = vb + veb + (max(0.0, sb + seb) * (hi - xb) if xb < hi else 0.0)
    return best, float(max(left, middle, right))


def cell_function(rev: ExactCurve | None, acq: ExactCurve | None, price: float, w: float) -> ConcaveFunction:
    """One cell's Lagrangian term ``x -> r(x) - price x + w q(x)`` (``w = mu clv / ratio >= 0``: concave)
    with its slope, and allowances of ``TERM_ALLOWANCE`` times the sum of the absolute terms."""
    def f(x: FloatArray) -> tuple[FloatArray, FloatArray, FloatArray, FloatArray]:
        val, vabs = -price * x, abs(price) * x
        slope, sabs = np.full_like(x, -price), np.full_like(x, abs(price))
        for curve, weight in ((rev, 1.0), (acq, w)):
            if curve is not None and weight != 0.0:
                v, s = weight * curve.value(x), weight * curve.slope(x)
                val, vabs, slope, sabs = val + v, vabs + np.abs(v), slope + s, sabs + np.abs(s)
        return val, TERM_ALLOWANCE * vabs, slope, TERM_ALLOWANCE * sabs
    return f
