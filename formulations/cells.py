"""Cells of a problem: one (category, segment) pair each, stored as columns.

:class:`CellTable` is a ``Sequence[Cell]`` -- ``problem.cells[3]`` is a :class:`Cell` -- but holds
columns (labels, bounds, :class:`~forecasting.curves.CurveBatch` curves), so a problem of a
million cells is parsed, validated and compiled with a few numpy operations per column instead
of one Python object per cell. Cells are materialized only when indexed or iterated.

:meth:`CellTable.parse` validates the problem file's ``cells`` list column-wise; when a check
fails, the offending cell is re-read by the one-cell reader so the message is exactly the one
a single cell would get (``cells[3].max_spend: must be a finite number >= 0, got -5``).
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, overload

import numpy as np
import pandas as pd
from numpy.typing import NDArray

from forecasting.batch import parse_curves
from forecasting.curves import Curve, CurveBatch, CurveError
from formulations.errors import ProblemError
from formulations.validate import check_keys, curve, label, number

CELL_KEYS = frozenset({"category", "segment", "revenue", "acquisitions", "min_spend", "max_spend", "current_spend"})
FloatArray = NDArray[np.float64]


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


def parse_cell(raw: Any, where: str, budget: float) -> Cell:
    """Validate one problem-file cell (the reference reader; its messages are the contract)."""
    d = check_keys(raw, set(CELL_KEYS), where, required=("category", "segment", "revenue"))
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
    acq = None if d.get("acquisitions") is None else curve(d["acquisitions"], f"{where}.acquisitions")
    return Cell(
        category=label(d["category"], f"{where}.category"),
        segment=label(d["segment"], f"{where}.segment"),
        revenue=curve(d["revenue"], f"{where}.revenue"),
        acquisitions=acq,
        min_spend=min_spend,
        max_spend=max_spend,
        current_spend=current,
    )


class CellTable(Sequence[Cell]):
    """Columns of ``n`` cells (see the module docstring). NaN in ``max_spend`` means "the budget",
    in ``current_spend`` "not given"."""

    def __init__(self, category: NDArray[Any], segment: NDArray[Any], min_spend: FloatArray,
                 max_spend: FloatArray, current_spend: FloatArray, revenue: CurveBatch,
                 acquisitions: CurveBatch) -> None:
        self.category, self.segment = category, segment
        self.min_spend, self.max_spend, self.current_spend = min_spend, max_spend, current_spend
        self.revenue, self.acquisitions = revenue, acquisitions

    # --- Sequence[Cell] -------------------------------------------------------------------
    def __len__(self) -> int:
        return int(self.min_spend.size)

    @overload
    def __getitem__(self, i: int) -> Cell: ...
    @overload
    def __getitem__(self, i: slice) -> Sequence[Cell]: ...

    def __getitem__(self, i: int | slice) -> Cell | Sequence[Cell]:
        if isinstance(i, slice):
            return tuple(self[k] for k in range(*i.indices(len(self))))
        n = len(self)
        if not -n <= i < n:
            raise IndexError(f"cell index {i} out of range for {n} cells")
        i %= n
        revenue = self.revenue.curve(i)
        assert revenue is not None
        return Cell(
            category=str(self.category[i]),
            segment=str(self.segment[i]),
            revenue=revenue,
            acquisitions=self.acquisitions.curve(i),
            min_spend=float(self.min_spend[i]),
            max_spend=None if np.isnan(self.max_spend[i]) else float(self.max_spend[i]),
            current_spend=None if np.isnan(self.current_spend[i]) else float(self.current_spend[i]),
        )

    def __iter__(self) -> Iterator[Cell]:
        return (self[i] for i in range(len(self)))

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Sequence) or len(other) != len(self):
            return NotImplemented if not isinstance(other, Sequence) else False
        return all(a == b for a, b in zip(self, other))

    __hash__ = None  # type: ignore[assignment]

    # --- columns --------------------------------------------------------------------------
    def upper(self, budget: float) -> FloatArray:
        """Effective spend caps: ``max_spend``, or the budget where none is given."""
        return np.where(np.isnan(self.max_spend), float(budget), self.max_spend)

    @property
    def has_acquisitions(self) -> NDArray[np.bool_]:
        has = np.zeros(len(self), dtype=bool)
        for g in self.acquisitions.groups:
            has[g.index] = True
        return has

    # --- construction ---------------------------------------------------------------------
    @classmethod
    def from_cells(cls, cells: Sequence[Cell]) -> CellTable:
        """Columns of already-built :class:`Cell` objects."""
        if isinstance(cells, CellTable):
            return cells
        n = len(cells)

        def floats(values: Any) -> FloatArray:
            return np.fromiter((np.nan if v is None else v for v in values), dtype=np.float64, count=n)

        return cls(
            category=np.array([c.category for c in cells], dtype=object),
            segment=np.array([c.segment for c in cells], dtype=object),
            min_spend=floats(c.min_spend for c in cells),
            max_spend=floats(c.max_spend for c in cells),
            current_spend=floats(c.current_spend for c in cells),
            revenue=CurveBatch([c.revenue for c in cells]),
            acquisitions=CurveBatch([c.acquisitions for c in cells]),
        )

    @classmethod
    def parse(cls, raw: Sequence[Any], budget: float) -> CellTable:
        """Validate the problem file's ``cells`` list column-wise (see the module docstring)."""
        if not isinstance(raw, list) or not raw:
            raise ProblemError("cells: expected a non-empty list of cells")
        n = len(raw)
        try:
            ok_keys = np.fromiter((c.keys() <= CELL_KEYS for c in raw), dtype=bool, count=n)
        except AttributeError:
            ok_keys = np.array([isinstance(c, Mapping) and set(c) <= CELL_KEYS for c in raw])
        _first_bad(raw, ~ok_keys, budget)
        bad = np.zeros(n, dtype=bool)
        columns: dict[str, Any] = {}
        for key in ("category", "segment"):
            values = [c.get(key) for c in raw]
            bad |= np.fromiter((type(v) is not str or not v.strip() for v in values), dtype=bool, count=n)
            columns[key] = np.array(values, dtype=object)
        bad |= np.fromiter(("revenue" not in c for c in raw), dtype=bool, count=n)
        for key in ("min_spend", "max_spend", "current_spend"):
            default = 0.0 if key == "min_spend" else None
            values = [c.get(key, default) for c in raw]
            types = set(map(type, values))
            if not types <= {float, int, type(None)}:
                bad |= np.fromiter((type(v) not in (float, int, type(None)) for v in values), dtype=bool, count=n)
                values = [v if type(v) in (float, int) else np.nan for v in values]
            arr = np.array([np.nan if v is None else v for v in values] if type(None) in types else values, dtype=float)
            given = ~np.isnan(arr) if key != "min_spend" else np.ones(n, dtype=bool)
            bad |= given & ~(np.isfinite(arr) & (arr >= 0))
            columns[key] = arr
        lo, hi = columns["min_spend"], columns["max_spend"]
        bad |= (~np.isnan(hi) & (hi < lo)) | (np.isnan(hi) & (lo > budget))
        _first_bad(raw, bad, budget)
        revenue = _curves([c.get("revenue") for c in raw], "revenue")
        acquisitions = _curves([c.get("acquisitions") for c in raw], "acquisitions")
        table = cls(columns["category"], columns["segment"], lo, hi, columns["current_spend"], revenue, acquisitions)
        _check_unique(table)
        return table

    def to_records(self) -> list[dict[str, Any]]:
        """The problem file's ``cells`` list."""
        revenue, acquisitions = self.revenue.to_dicts(), self.acquisitions.to_dicts()
        out = []
        for i, (cat, seg, lo, hi, cur) in enumerate(zip(self.category.tolist(), self.segment.tolist(),
                                                         self.min_spend.tolist(), self.max_spend.tolist(),
                                                         self.current_spend.tolist())):
            d: dict[str, Any] = {"category": cat, "segment": seg, "revenue": revenue[i]}
            if acquisitions[i] is not None:
                d["acquisitions"] = acquisitions[i]
            d["min_spend"] = lo
            if hi == hi:  # not NaN
                d["max_spend"] = hi
            if cur == cur:
                d["current_spend"] = cur
            out.append(d)
        return out


def _first_bad(raw: Sequence[Any], bad: NDArray[np.bool_], budget: float) -> None:
    """Raise the one-cell reader's message for the first flagged cell (if any is flagged)."""
    if bad.any():
        i = int(np.argmax(bad))
        parse_cell(raw[i], f"cells[{i}]", budget)
        raise ProblemError(f"cells[{i}]: invalid cell")  # pragma: no cover - the reader raised


def _curves(specs: list[Any], field: str) -> CurveBatch:
    try:
        return parse_curves(specs, lambda i: f"cells[{i}].{field}")
    except CurveError as e:
        raise ProblemError(str(e)) from None


def _check_unique(table: CellTable) -> None:
    frame = pd.DataFrame({"category": table.category, "segment": table.segment})
    repeats = frame.duplicated(keep="first").to_numpy()
    if repeats.any():
        j = int(np.argmax(repeats))
        key = (table.category[j], table.segment[j])
        first = int(np.argmax((table.category == key[0]) & (table.segment == key[1])))
        raise ProblemError(
            f"cells[{j}]: duplicate cell (category {key[0]!r}, segment {key[1]!r}); "
            f"it already appears as cells[{first}]"
        )
