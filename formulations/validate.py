"""Boundary checks shared by the problem, cell and plan readers: one message format.

Each function returns the checked value or raises :class:`~formulations.errors.ProblemError`
whose message starts with ``where`` (a path such as ``cells[3].max_spend``), says what was
expected, and quotes the bad value.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

from forecasting.curves import Curve, CurveError
from formulations.errors import ProblemError


def check_keys(obj: Any, allowed: set[str], where: str, required: Sequence[str] = ()) -> Mapping[str, Any]:
    """Check that ``obj`` is an object with only ``allowed`` keys and all ``required`` ones."""
    if not isinstance(obj, Mapping):
        raise ProblemError(f"{where}: expected an object, got {obj!r}")
    unknown = sorted(set(obj) - allowed)
    if unknown:
        raise ProblemError(f"{where}: unknown key(s) {unknown}; allowed: {sorted(allowed)}")
    for k in required:
        if k not in obj:
            raise ProblemError(f"{where}: missing required key {k!r}")
    return obj


def number(value: Any, where: str, *, minimum: float | None = None, strict: bool = False,
           maximum: float | None = None) -> float:
    """A finite float within optional bounds, else ProblemError naming ``where``."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ProblemError(f"{where}: expected a number, got {value!r}")
    v = float(value)
    ok = math.isfinite(v)
    if ok and minimum is not None:
        ok = v > minimum if strict else v >= minimum
    if ok and maximum is not None:
        ok = v <= maximum
    if not ok:
        bounds = []
        if minimum is not None:
            bounds.append(f"{'>' if strict else '>='} {minimum:g}")
        if maximum is not None:
            bounds.append(f"<= {maximum:g}")
        what = "a finite number" + (" " + " and ".join(bounds) if bounds else "")
        raise ProblemError(f"{where}: must be {what}, got {value!r}")
    return v


def label(value: Any, where: str) -> str:
    """A non-empty string label."""
    if not isinstance(value, str) or not value.strip():
        raise ProblemError(f"{where}: expected a non-empty string, got {value!r}")
    return value


def curve(spec: Any, where: str) -> Curve:
    try:
        return Curve.from_dict(spec, where=where)
    except CurveError as e:
        raise ProblemError(str(e)) from None


