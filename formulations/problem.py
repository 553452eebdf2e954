"""The backend-neutral budget problem and its file form (problem file, version 1).

A :class:`Problem` is what a planner states: the budget, the cells (category x segment) with their
response curves and bounds, and the rules. It holds labels, never solver indices, and knows nothing
about any backend. Money is in one currency unit throughout; nothing is rescaled here.

Reading validates everything at the boundary: unknown keys, wrong types, non-finite numbers,
out-of-range curve parameters, duplicate cells and references to categories or segments that have
no cell raise :class:`~formulations.errors.ProblemError` naming the path of the bad value. Rules
that are each well formed but conflict with each other (minimum shares adding to more than 100 %,
a budget the cell bounds cannot absorb) are *not* errors: solving reports them as ``infeasible``.

Examples
--------
>>> p = Problem.from_dict({
...     "version": 1, "budget": 1000,
...     "cells": [{"category": "ads", "segment": "all", "revenue": {"family": "log", "a": 900, "b": 300}}],
... })
>>> p.cells[0].upper(p.budget)
1000.0
>>> Problem.from_dict({"version": 1, "budget": -5, "cells": []})
Traceback (most recent call last):
...
formulations.errors.ProblemError: budget: must be a finite number > 0, got -5
"""

from __future__ import annotations

import json
import math
import tomllib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from enum import StrEnum
from pathlib import Path
from typing import Any

import yaml

from forecasting.curves import Curve, CurveError
from formulations.errors import ProblemError, ProblemFileError

FORMAT_VERSION = 1


class BudgetMode(StrEnum):
    """How the budget row binds: spend exactly the budget, or up to it."""

    EQUAL = "equal"
    AT_MOST = "at_most"


class Objective(StrEnum):
    """What is maximized: predicted revenue, or predicted revenue minus spend."""

    REVENUE = "revenue"
    PROFIT = "profit"


@dataclass(frozen=True)
class Cell:
    """One (category, segment) pair with its curves and spend bounds (currency units).

    ``max_spend`` of ``None`` means "the budget". ``acquisitions`` (new customers as a function of
    spend) is needed only when the cell's segment has a CLV/CAC rule.
    """

    category: str
    segment: str
    revenue: Curve
    acquisitions: Curve | None = None
    min_spend: float = 0.0
    max_spend: float | None = None
    current_spend: float | None = None

    @property
    def key(self) -> tuple[str, str]:
        return (self.category, self.segment)

    def upper(self, budget: float) -> float:
        """The effective spend cap: ``max_spend``, or the budget when none is given."""
        return float(budget) if self.max_spend is None else float(self.max_spend)


@dataclass(frozen=True)
class ShareRule:
    """Minimum and maximum share of the budget for one category (fractions in [0, 1])."""

    min: float = 0.0
    max: float = 1.0


@dataclass(frozen=True)
class SegmentRule:
    """A segment's customer lifetime value and, optionally, its CLV/CAC floor.

    With ``min_clv_cac_ratio = k``: spend on the segment <= clv / k x predicted new customers.
    """

    clv: float
    min_clv_cac_ratio: float | None = None

    @property
    def spend_per_customer_cap(self) -> float | None:
        """``clv / ratio``: the most the segment may pay per new customer (None: no rule)."""
        if self.min_clv_cac_ratio is None:
            return None
        return self.clv / self.min_clv_cac_ratio


@dataclass(frozen=True)
class Problem:
    """A budget allocation problem (the in-memory form of a problem file)."""

    budget: float
    cells: tuple[Cell, ...]
    name: str = ""
    budget_mode: BudgetMode = BudgetMode.EQUAL
    objective: Objective = Objective.REVENUE
    category_shares: Mapping[str, ShareRule] = field(default_factory=dict)
    segments: Mapping[str, SegmentRule] = field(default_factory=dict)

    # --- views --------------------------------------------------------------------------
    @property
    def categories(self) -> tuple[str, ...]:
        """Categories in order of first appearance among the cells."""
        return tuple(dict.fromkeys(c.category for c in self.cells))

    @property
    def segment_names(self) -> tuple[str, ...]:
        """Segments in order of first appearance among the cells."""
        return tuple(dict.fromkeys(c.segment for c in self.cells))

    def with_budget(self, budget: float) -> Problem:
        """The same problem with another total budget (validated)."""
        return Problem.from_dict({**self.to_dict(), "budget": budget})

    def replace(self, **changes: Any) -> Problem:
        """A copy with fields replaced (no re-validation; prefer :meth:`from_dict` for user input)."""
        return replace(self, **changes)

    # --- file form ----------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        """The problem-file form (JSON-ready)."""
        cells = []
        for c in self.cells:
            d: dict[str, Any] = {"category": c.category, "segment": c.segment, "revenue": c.revenue.to_dict()}
            if c.acquisitions is not None:
                d["acquisitions"] = c.acquisitions.to_dict()
            d["min_spend"] = c.min_spend
            if c.max_spend is not None:
                d["max_spend"] = c.max_spend
            if c.current_spend is not None:
                d["current_spend"] = c.current_spend
            cells.append(d)
        out: dict[str, Any] = {"version": FORMAT_VERSION}
        if self.name:
            out["name"] = self.name
        out |= {
            "budget": self.budget,
            "budget_mode": self.budget_mode.value,
            "objective": self.objective.value,
            "cells": cells,
            "category_shares": {k: {"min": r.min, "max": r.max} for k, r in self.category_shares.items()},
            "segments": {
                k: {"clv": r.clv}
                | ({} if r.min_clv_cac_ratio is None else {"min_clv_cac_ratio": r.min_clv_cac_ratio})
                for k, r in self.segments.items()
            },
        }
        return out

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Problem:
        """Validate a problem-file dict and build the problem; raises ProblemError naming the path."""
        return _parse_problem(data)

    @classmethod
    def read(cls, path: str | Path) -> Problem:
        """Read a problem file (``.json`` canonical; ``.yaml``/``.yml`` and ``.toml`` accepted)."""
        return cls.from_dict(read_structured_file(path))

    def write(self, path: str | Path) -> None:
        """Write the problem file as JSON."""
        Path(path).write_text(json.dumps(self.to_dict(), indent=2) + "\n")


# --------------------------------------------------------------------------------------------
# Reading
# --------------------------------------------------------------------------------------------


def read_structured_file(path: str | Path) -> dict[str, Any]:
    """Read a JSON, YAML or TOML file into a dict; errors name the file and the syntax problem."""
    p = Path(path)
    if not p.is_file():
        raise ProblemFileError(f"{p}: no such file")
    text = p.read_text()
    suffix = p.suffix.lower()
    try:
        if suffix in (".yaml", ".yml"):
            data = yaml.safe_load(text)
        elif suffix == ".toml":
            data = tomllib.loads(text)
        else:
            data = json.loads(text)
    except json.JSONDecodeError as e:
        raise ProblemFileError(f"{p}: invalid JSON at line {e.lineno}, column {e.colno}: {e.msg}") from None
    except (yaml.YAMLError, tomllib.TOMLDecodeError) as e:
        raise ProblemFileError(f"{p}: cannot parse: {e}") from None
    if not isinstance(data, dict):
        raise ProblemFileError(f"{p}: expected an object at the top level, got {type(data).__name__}")
    return data


_TOP_KEYS = {"version", "name", "budget", "budget_mode", "objective", "cells", "category_shares", "segments"}
_CELL_KEYS = {"category", "segment", "revenue", "acquisitions", "min_spend", "max_spend", "current_spend"}


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


def _curve(spec: Any, where: str) -> Curve:
    try:
        return Curve.from_dict(spec, where=where)
    except CurveError as e:
        raise ProblemError(str(e)) from None


def _enum(enum: type[StrEnum], value: Any, where: str) -> Any:
    try:
        return enum(value)
    except ValueError:
        allowed = ", ".join(repr(m.value) for m in enum)  # type: ignore[attr-defined]
        raise ProblemError(f"{where}: expected one of {allowed}, got {value!r}") from None


def _parse_cell(raw: Any, where: str, budget: float) -> Cell:
    d = check_keys(raw, _CELL_KEYS, where, required=("category", "segment", "revenue"))
    min_spend = number(d.get("min_spend", 0.0), f"{where}.min_spend", minimum=0.0)
    max_spend = None
    if d.get("max_spend") is not None:
        max_spend = number(d["max_spend"], f"{where}.max_spend", minimum=0.0)
        if max_spend < min_spend:
            raise ProblemError(f"{where}: max_spend {max_spend:g} is below min_spend {min_spend:g}")
    elif min_spend > budget:
        raise ProblemError(f"{where}: min_spend {min_spend:g} exceeds the budget {budget:g}")
    current = None
    if d.get("current_spend") is not None:
        current = number(d["current_spend"], f"{where}.current_spend", minimum=0.0)
    acq = None if d.get("acquisitions") is None else _curve(d["acquisitions"], f"{where}.acquisitions")
    return Cell(
        category=label(d["category"], f"{where}.category"),
        segment=label(d["segment"], f"{where}.segment"),
        revenue=_curve(d["revenue"], f"{where}.revenue"),
        acquisitions=acq,
        min_spend=min_spend,
        max_spend=max_spend,
        current_spend=current,
    )


def _parse_problem(data: Mapping[str, Any]) -> Problem:
    d = check_keys(data, _TOP_KEYS, "problem", required=("version", "budget", "cells"))
    if d["version"] != FORMAT_VERSION or isinstance(d["version"], bool):
        raise ProblemError(f"version: this reader understands version {FORMAT_VERSION}, got {d['version']!r}")
    budget = number(d["budget"], "budget", minimum=0.0, strict=True)
    name = d.get("name", "")
    if not isinstance(name, str):
        raise ProblemError(f"name: expected a string, got {name!r}")
    mode = _enum(BudgetMode, d.get("budget_mode", "equal"), "budget_mode")
    objective = _enum(Objective, d.get("objective", "revenue"), "objective")

    raw_cells = d["cells"]
    if not isinstance(raw_cells, list) or not raw_cells:
        raise ProblemError("cells: expected a non-empty list of cells")
    cells = tuple(_parse_cell(c, f"cells[{i}]", budget) for i, c in enumerate(raw_cells))
    seen: dict[tuple[str, str], int] = {}
    for i, c in enumerate(cells):
        if c.key in seen:
            raise ProblemError(
                f"cells[{i}]: duplicate cell (category {c.category!r}, segment {c.segment!r}); "
                f"it already appears as cells[{seen[c.key]}]"
            )
        seen[c.key] = i
    categories = {c.category for c in cells}
    segment_names = {c.segment for c in cells}

    shares: dict[str, ShareRule] = {}
    raw_shares = d.get("category_shares") or {}
    if not isinstance(raw_shares, Mapping):
        raise ProblemError("category_shares: expected an object keyed by category")
    for cat, raw in raw_shares.items():
        where = f"category_shares.{cat}"
        if cat not in categories:
            raise ProblemError(f"{where}: category {cat!r} has no cell; known categories: {sorted(categories)}")
        r = check_keys(raw, {"min", "max"}, where)
        lo = number(r.get("min", 0.0), f"{where}.min", minimum=0.0, maximum=1.0)
        hi = number(r.get("max", 1.0), f"{where}.max", minimum=0.0, maximum=1.0)
        if lo > hi:
            raise ProblemError(f"{where}: min {lo:g} is above max {hi:g}")
        shares[cat] = ShareRule(lo, hi)

    segments: dict[str, SegmentRule] = {}
    raw_segments = d.get("segments") or {}
    if not isinstance(raw_segments, Mapping):
        raise ProblemError("segments: expected an object keyed by segment")
    for seg, raw in raw_segments.items():
        where = f"segments.{seg}"
        if seg not in segment_names:
            raise ProblemError(f"{where}: segment {seg!r} has no cell; known segments: {sorted(segment_names)}")
        r = check_keys(raw, {"clv", "min_clv_cac_ratio"}, where, required=("clv",))
        clv = number(r["clv"], f"{where}.clv", minimum=0.0, strict=True)
        ratio = None
        if r.get("min_clv_cac_ratio") is not None:
            ratio = number(r["min_clv_cac_ratio"], f"{where}.min_clv_cac_ratio", minimum=0.0, strict=True)
            for i, c in enumerate(cells):
                if c.segment == seg and c.acquisitions is None:
                    raise ProblemError(
                        f"cells[{i}] ({c.category} / {c.segment}): segment {seg!r} has a CLV/CAC rule, "
                        "so this cell needs an 'acquisitions' curve (new customers as a function of spend)"
                    )
        segments[seg] = SegmentRule(clv, ratio)

    return Problem(
        budget=budget,
        cells=cells,
        name=name,
        budget_mode=mode,
        objective=objective,
        category_shares=shares,
        segments=segments,
    )
