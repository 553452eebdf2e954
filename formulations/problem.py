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
import tomllib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from enum import StrEnum
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import yaml

from formulations.cells import Cell, CellTable
from formulations.errors import ProblemError, ProblemFileError
from formulations.validate import check_keys, number

__all__ = ["BudgetMode", "Cell", "CellTable", "Objective", "Problem", "SegmentRule", "ShareRule",
           "read_structured_file"]

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
    cells: Sequence[Cell]  # stored as a CellTable (columns); any sequence of Cell is accepted
    name: str = ""
    budget_mode: BudgetMode = BudgetMode.EQUAL
    objective: Objective = Objective.REVENUE
    category_shares: Mapping[str, ShareRule] = field(default_factory=dict)
    segments: Mapping[str, SegmentRule] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not isinstance(self.cells, CellTable):
            object.__setattr__(self, "cells", CellTable.from_cells(tuple(self.cells)))

    @property
    def table(self) -> CellTable:
        """The cells as columns (the same object as :attr:`cells`)."""
        assert isinstance(self.cells, CellTable)
        return self.cells

    # --- views --------------------------------------------------------------------------
    @property
    def categories(self) -> tuple[str, ...]:
        """Categories in order of first appearance among the cells."""
        return tuple(pd.unique(self.table.category))

    @property
    def segment_names(self) -> tuple[str, ...]:
        """Segments in order of first appearance among the cells."""
        return tuple(pd.unique(self.table.segment))

    def with_budget(self, budget: float) -> Problem:
        """The same problem with another total budget (share rules stay fractions of it).

        Cheap: the cells are shared, not re-read. Bounds that the new budget cannot meet are not
        an error here; solving reports them as ``infeasible``.
        """
        return replace(self, budget=number(budget, "budget", minimum=0.0, strict=True))

    def replace(self, **changes: Any) -> Problem:
        """A copy with fields replaced (no re-validation; prefer :meth:`from_dict` for user input)."""
        return replace(self, **changes)

    # --- file form ----------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        """The problem-file form (JSON-ready)."""
        cells = self.table.to_records()
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


def _enum(enum: type[StrEnum], value: Any, where: str) -> Any:
    try:
        return enum(value)
    except ValueError:
        allowed = ", ".join(repr(m.value) for m in enum)  # type: ignore[attr-defined]
        raise ProblemError(f"{where}: expected one of {allowed}, got {value!r}") from None


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

    table = CellTable.parse(d["cells"], budget)
    categories = set(pd.unique(table.category))
    segment_names = set(pd.unique(table.segment))

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
        segments[seg] = SegmentRule(clv, ratio)
    ruled = [s for s, rule in segments.items() if rule.min_clv_cac_ratio is not None]
    lacking = np.flatnonzero(~table.has_acquisitions & pd.Series(table.segment).isin(ruled).to_numpy())
    if lacking.size:
        i = int(lacking[0])
        seg = table.segment[i]
        raise ProblemError(
            f"cells[{i}] ({table.category[i]} / {seg}): segment {seg!r} has a CLV/CAC rule, "
            "so this cell needs an 'acquisitions' curve (new customers as a function of spend)"
        )

    return Problem(
        budget=budget,
        cells=table,
        name=name,
        budget_mode=mode,
        objective=objective,
        category_shares=shares,
        segments=segments,
    )
