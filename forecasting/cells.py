"""The (category, segment) cell key and the pair of response curves a cell carries."""

from __future__ import annotations

from typing import Any, NamedTuple

from forecasting.curves import Curve

#: A cell is one (category, segment) pair.
CellKey = tuple[str, str]


class CellCurves(NamedTuple):
    """Revenue and acquisition curves of one cell, per history period (money in, outcome out).

    ``revenue`` maps spend (currency per period) to revenue (currency per period);
    ``acquisitions`` maps it to new customers per period, or is ``None`` when unknown.
    """

    revenue: Curve
    acquisitions: Curve | None = None

    def to_dict(self) -> dict[str, Any]:
        """Problem-file form ``{"revenue": {...}, "acquisitions": {...}}`` (the latter if known)."""
        out: dict[str, Any] = {"revenue": self.revenue.to_dict()}
        if self.acquisitions is not None:
            out["acquisitions"] = self.acquisitions.to_dict()
        return out
