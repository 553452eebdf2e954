"""Parse many problem-file curve specs at once, without one Python object per curve.

:func:`parse_curves` turns a list of curve dicts (one per cell, or None) into a
:class:`~forecasting.curves.CurveBatch`. Plain parametric curves -- the bulk of any large problem --
are validated column-wise per family with numpy (types, finiteness, ranges, key sets); posterior
sample lists and ``pwl`` curves go through :meth:`Curve.from_dict` one by one. Whenever a
column-wise check fails, the offending spec is re-parsed by :meth:`Curve.from_dict` so the error
message is exactly the one a single curve would get (naming ``where(i)``).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from operator import itemgetter
from typing import Any

import numpy as np
from numpy.typing import NDArray

from forecasting.curves import PARAMETRIC_FAMILIES, PWL, Curve, CurveBatch, CurveError, make_group

Where = Callable[[int], str]


def _fail(specs: Sequence[Any], i: int, where: Where) -> CurveError:
    """The exact single-curve error for spec ``i`` (which a vectorized check flagged)."""
    try:
        Curve.from_dict(specs[i], where=where(i))
    except CurveError as e:
        return e
    return CurveError(f"{where(i)}: invalid curve specification")  # pragma: no cover - defensive


def _column(group: list[Mapping[str, Any]], name: str, default: float | None) -> NDArray[np.float64] | None:
    """The parameter ``name`` of every spec as floats, or None if any value is not a plain number."""
    try:
        values = list(map(itemgetter(name), group)) if default is None else [d.get(name, default) for d in group]
    except KeyError:
        return None
    if bool in set(map(type, values)):
        return None
    try:
        arr = np.asarray(values, dtype=np.float64)
    except (TypeError, ValueError):
        return None  # a list (posterior samples), None (missing) or text
    return arr if arr.ndim == 1 else None


def parse_curves(specs: Sequence[Mapping[str, Any] | None], where: Where) -> CurveBatch:
    """Validate and group ``specs`` (problem-file curve dicts, None for "no curve").

    Raises :class:`CurveError` with the same message :meth:`Curve.from_dict` gives, naming
    ``where(i)`` for the first bad spec found.
    """
    n = len(specs)
    try:
        family_of = np.fromiter((None if spec is None else spec.get("family") for spec in specs), dtype=object, count=n)
    except AttributeError:  # not an object: find it for the message
        raise _fail(specs, next(i for i, s in enumerate(specs) if s is not None and not isinstance(s, Mapping)),
                    where) from None
    groups = []
    slow: list[int] = []
    present = np.flatnonzero(family_of != None)  # noqa: E711 - elementwise on an object array
    known = np.zeros(n, dtype=bool)
    for name, fam in PARAMETRIC_FAMILIES.items():
        idx = np.flatnonzero(family_of == name)
        if idx.size == 0:
            continue
        known[idx] = True
        fast, rest = _parametric_group(specs, idx, name, fam, where)
        if fast is not None:
            groups.append(fast)
        slow.extend(rest)
    pwl = np.flatnonzero(family_of == PWL)
    known[pwl] = True
    slow.extend(pwl.tolist())
    unknown = present[~known[present]]
    if unknown.size:
        raise _fail(specs, int(unknown.min()), where)
    if slow:
        curves = {i: Curve.from_dict(specs[i], where=where(i)) for i in sorted(slow)}
        nested = CurveBatch([curves.get(i) for i in range(n)])
        groups.extend(nested.groups)
    return CurveBatch.from_groups(n, groups)


def _parametric_group(specs: Sequence[Any], idx: NDArray[np.intp], name: str, fam: Any,
                      where: Where) -> tuple[Any, list[int]]:
    """Column-wise validation of one family's plain-number specs; returns (group or None, slow)."""
    group = [specs[i] for i in idx]
    columns: dict[str, NDArray[np.float64]] = {}
    for param in fam.ranges:
        col = _column(group, param, fam.defaults.get(param))
        if col is None:
            return None, idx.tolist()  # samples, missing or non-numeric: one by one
        columns[param] = col
    optional = [p for p in fam.ranges if p in fam.defaults]
    expected = 1 + len(fam.ranges) - len(optional) + sum(
        np.fromiter((p in d for d in group), dtype=np.int64, count=len(group)) for p in optional)
    lengths = np.fromiter(map(len, group), dtype=np.int64, count=len(group))
    bad = lengths != expected  # an unknown key
    for param, col in columns.items():
        lo, lo_inc, hi, hi_inc = fam.ranges[param]
        ok = np.isfinite(col) & (col >= lo if lo_inc else col > lo) & (col <= hi if hi_inc else col < hi)
        bad |= ~ok
    if name == "hill":
        bad |= columns["slope"] > 1.0
    if bad.any():
        raise _fail(specs, int(idx[np.argmax(bad)]), where)
    return make_group(name, idx.astype(np.intp), {k: v[:, None] for k, v in columns.items()}), []
