"""The report as an Excel workbook (openpyxl through pandas): the same tables as the HTML report.

Sheets: ``Summary`` (the first screen's numbers and readings), ``Rules`` (shadow prices, exact
costs and checks), ``Recommendations``, ``Cells`` (marginal values per cell), ``Frontier``,
``Targets``, ``Scenarios`` and ``Allocation`` (the solution file's plan). Money is in the
problem's currency, prices in currency per currency; rule keys are written ``kind:name``.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from solver.report import Report, records
from solver.summary import rule_readings


def summary_frame(report: Report) -> pd.DataFrame:
    """The Summary sheet: one row per headline figure, then one per rule reading."""
    rows = [{"item": k, "value": v} for k, v in records(pd.DataFrame([report.headline]))[0].items()]
    readings = rule_readings(report.solution, report.problem, report.rules if len(report.rules) else None)
    rows += [{"item": "reading", "value": line} for line in readings]
    return pd.DataFrame(rows, columns=["item", "value"])


def write_xlsx(report: Report, path: str | Path) -> Path:
    """Write the workbook; every sheet is a plain table with a header row (frozen)."""
    out = Path(path)
    sheets = {"Summary": summary_frame(report)}
    sheets |= {name.capitalize(): pd.DataFrame(records(frame), columns=list(frame.columns))
               for name, frame in report.tables().items()}
    sheets["Allocation"] = report.solution.allocation_frame()
    with pd.ExcelWriter(out, engine="openpyxl") as writer:
        for name, frame in sheets.items():
            frame.to_excel(writer, sheet_name=name, index=False)
            sheet = writer.sheets[name]
            sheet.freeze_panes = "A2"
            for k, column in enumerate(frame.columns, start=1):
                width = max([len(str(column))] + [len(str(v)) for v in frame[column].head(50)])
                sheet.column_dimensions[sheet.cell(row=1, column=k).column_letter].width = min(width + 2, 60)
    return out
