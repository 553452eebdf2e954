"""History data contract: every error names its CSV line and column; valid data are normalized."""

from __future__ import annotations

import textwrap

import numpy as np
import pandas as pd
import pytest

from forecasting.history import MAX_ROWS_PER_PROBLEM, HistoryError, read_history, validate_history

HEADER = "period,category,segment,spend,revenue,new_customers"
GOOD_ROWS = [
    "2024-01,advertising,vip,1000,3000,12",
    "2024-02,advertising,vip,1200,3300,14",
    "2024-01,technology,lapsed,500,900,3",
]


def write_csv(tmp_path, *lines: str, name: str = "history.csv"):
    path = tmp_path / name
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def csv_error(tmp_path, *lines: str) -> str:
    with pytest.raises(HistoryError) as info:
        read_history(write_csv(tmp_path, *lines))
    return str(info.value)


def with_row(row: str, position: int = 1) -> list[str]:
    """The good file with ``row`` replacing data row ``position`` (line position + 2)."""
    rows = list(GOOD_ROWS)
    rows[position] = row
    return [HEADER, *rows]


# --------------------------------------------------------------------------------------------
# Columns
# --------------------------------------------------------------------------------------------


def test_missing_required_column_names_header_line_and_column(tmp_path):
    msg = csv_error(tmp_path, "period,category,segment,spend", "2024-01,a,b,1")
    assert "history.csv" in msg
    assert "line 1" in msg
    assert "missing required column(s) 'revenue'" in msg


def test_unknown_column_is_an_error_naming_it(tmp_path):
    msg = csv_error(tmp_path, HEADER + ",channel", "2024-01,a,b,1,2,3,email")
    assert "line 1" in msg and "unknown column(s) 'channel'" in msg


def test_bare_cost_prefix_is_not_a_cost_column(tmp_path):
    msg = csv_error(tmp_path, HEADER + ",cost_", "2024-01,a,b,1,2,3,4")
    assert "unknown column(s) 'cost_'" in msg


def test_repeated_header_column(tmp_path):
    msg = csv_error(tmp_path, HEADER + ",spend", "2024-01,a,b,1,2,3,4")
    assert "line 1" in msg and "'spend'" in msg and "more than once" in msg


def test_index_column_written_by_pandas_is_reported(tmp_path):
    frame = pd.DataFrame({"period": ["2024-01"], "category": ["a"], "segment": ["b"],
                          "spend": [1.0], "revenue": [2.0]})
    path = tmp_path / "with_index.csv"
    frame.to_csv(path)  # index=True writes an unnamed first column
    with pytest.raises(HistoryError, match=r"line 1 \(header\): unknown column\(s\) 'Unnamed: 0'"):
        read_history(path)


# --------------------------------------------------------------------------------------------
# Values: each message names the line (header = 1, first data row = 2) and the column
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "row, column, text",
    [
        ("2024-02,advertising,vip,abc,3300,14", "spend", "not a number: 'abc'"),
        ("2024-02,advertising,vip,1200,1.2.3,14", "revenue", "not a number: '1.2.3'"),
        ("2024-02,advertising,vip,1200,NaN,14", "revenue", "NaN value"),
        ("2024-02,advertising,vip,1200,3300,nan", "new_customers", "NaN value"),
        ("2024-02,advertising,vip,,3300,14", "spend", "missing value (empty)"),
        ("2024-02,advertising,vip,inf,3300,14", "spend", "infinite value inf"),
        ("2024-02,advertising,vip,1200,-inf,14", "revenue", "infinite value -inf"),
        ("2024-02,advertising,vip,-5,3300,14", "spend", "negative value -5"),
        ("2024-02,advertising,vip,1200,-0.5,14", "revenue", "negative value -0.5"),
        ("2024-02,advertising,vip,1200,3300,-1", "new_customers", "negative value -1"),
        ("2024-02,,vip,1200,3300,14", "category", "empty category"),
        ("2024-02,advertising,   ,1200,3300,14", "segment", "empty segment"),
        ("2024-13,advertising,vip,1200,3300,14", "period", "cannot read period '2024-13'"),
        ("Feb 2024,advertising,vip,1200,3300,14", "period", "cannot read period 'Feb 2024'"),
        ("20240201,advertising,vip,1200,3300,14", "period", "cannot read period '20240201'"),
        (",advertising,vip,1200,3300,14", "period", "missing value"),
    ],
)
def test_bad_value_names_line_and_column(tmp_path, row, column, text):
    msg = csv_error(tmp_path, *with_row(row, position=1))
    assert f"line 3, column {column!r}: {text}" in msg


def test_duplicate_rows_name_both_lines(tmp_path):
    msg = csv_error(tmp_path, HEADER, *GOOD_ROWS, "2024-01,advertising,vip,1,2,3")
    assert "line 5" in msg and "duplicate of line 2" in msg
    assert "category 'advertising'" in msg and "segment 'vip'" in msg and "2024-01" in msg


def test_iso_date_and_month_of_one_cell_are_duplicates(tmp_path):
    msg = csv_error(tmp_path, HEADER, *GOOD_ROWS, "2024-02-01,advertising,vip,1,2,3")
    assert "line 5" in msg and "duplicate of line 3" in msg


def test_spaces_around_names_do_not_hide_a_duplicate(tmp_path):
    msg = csv_error(tmp_path, HEADER, *GOOD_ROWS, "2024-01, advertising ,vip,1,2,3")
    assert "line 5" in msg and "duplicate of line 2" in msg


def test_empty_history_header_only(tmp_path):
    with pytest.raises(HistoryError, match="history is empty"):
        read_history(write_csv(tmp_path, HEADER))


def test_empty_file(tmp_path):
    path = tmp_path / "empty.csv"
    path.write_text("", encoding="utf-8")
    with pytest.raises(HistoryError, match="empty.csv: the file is empty"):
        read_history(path)


def test_row_with_extra_fields_is_an_error(tmp_path):
    msg = csv_error(tmp_path, HEADER, GOOD_ROWS[0], "2024-01,a,b,1,2,3,4,5")
    assert "not a readable CSV" in msg and "line 3" in msg


def test_first_row_with_extra_fields_is_not_taken_as_an_index(tmp_path):
    msg = csv_error(tmp_path, HEADER, "x," + GOOD_ROWS[0], "y," + GOOD_ROWS[1])
    assert "line 2" in msg and "more fields than the header" in msg


def test_row_with_missing_fields(tmp_path):
    msg = csv_error(tmp_path, HEADER, GOOD_ROWS[0], "2024-02,advertising,vip,1200")
    assert "line 3, column 'revenue': missing value" in msg
    assert "line 3, column 'new_customers': missing value" in msg


def test_line_break_inside_a_quoted_field_is_refused(tmp_path):
    msg = csv_error(tmp_path, HEADER, GOOD_ROWS[0], '2024-02,"adver\ntising",vip,1,2,3')
    assert "line 3" in msg and "line break" in msg


def test_all_problems_reported_in_line_order_and_capped(tmp_path):
    rows = [f"2024-{m:02d},advertising,vip,-1,{'x' if m == 1 else 5},1" for m in range(1, 10)]
    with pytest.raises(HistoryError) as info:
        read_history(write_csv(tmp_path, HEADER, *rows))
    problems = info.value.problems
    assert problems[0] == "line 2, column 'spend': negative value -1 (must be >= 0)"
    assert problems[1] == "line 2, column 'revenue': not a number: 'x'"
    negatives = [p for p in problems if "'spend'" in p]
    assert len(negatives) == MAX_ROWS_PER_PROBLEM + 1
    assert negatives[-1] == "... and 4 more row(s) with this problem in column 'spend'"
    assert str(info.value).startswith("history.csv: 7 problems:")


def test_blank_lines_are_skipped_and_line_numbers_still_count_them(tmp_path):
    lines = [HEADER, GOOD_ROWS[0], "", ",,,,,", GOOD_ROWS[1], "2024-03,technology,lapsed,-2,1,1"]
    msg = csv_error(tmp_path, *lines)
    assert msg == "history.csv: line 6, column 'spend': negative value -2 (must be >= 0)"


# --------------------------------------------------------------------------------------------
# DataFrames
# --------------------------------------------------------------------------------------------


def good_frame() -> pd.DataFrame:
    return pd.DataFrame({
        "period": ["2024-01", "2024-02", "2024-01"],
        "category": ["advertising", "advertising", "technology"],
        "segment": ["vip", "vip", "lapsed"],
        "spend": [1000.0, 1200.0, 500.0],
        "revenue": [3000.0, 3300.0, 900.0],
    })


def test_dataframe_errors_name_row_position_and_csv_line():
    frame = good_frame()
    frame.loc[2, "spend"] = np.nan
    frame.loc[1, "revenue"] = -3.0
    with pytest.raises(HistoryError) as info:
        validate_history(frame.set_axis([10, 20, 30]))  # rows are located by position
    assert info.value.problems == (
        "row 1 (line 3), column 'revenue': negative value -3 (must be >= 0)",
        "row 2 (line 4), column 'spend': missing value (NaN)",
    )


def test_dataframe_missing_category_and_unknown_column():
    frame = good_frame().assign(notes="x")
    with pytest.raises(HistoryError, match="unknown column\\(s\\) 'notes'"):
        validate_history(frame)
    frame = good_frame()
    frame.loc[0, "category"] = None
    with pytest.raises(HistoryError, match=r"row 0 \(line 2\), column 'category': empty category"):
        validate_history(frame)


def test_dataframe_boolean_column_is_not_numeric():
    frame = good_frame().assign(revenue=[True, False, True])
    with pytest.raises(HistoryError, match="column 'revenue': not a number: True"):
        validate_history(frame)


def test_dataframe_with_timestamps_and_periods():
    stamps = good_frame().assign(period=pd.to_datetime(["2024-01-31", "2024-02-01", "2024-01-15"]))
    periods = good_frame().assign(period=pd.PeriodIndex(["2024-01", "2024-02", "2024-01"], freq="M"))
    expected = validate_history(good_frame())
    pd.testing.assert_frame_equal(validate_history(stamps), expected)
    pd.testing.assert_frame_equal(validate_history(periods), expected)


def test_validate_does_not_modify_its_input():
    frame = good_frame()
    before = frame.copy()
    validate_history(frame)
    pd.testing.assert_frame_equal(frame, before)


# --------------------------------------------------------------------------------------------
# Normalized form
# --------------------------------------------------------------------------------------------


def test_normalized_form(tmp_path):
    text = textwrap.dedent("""\
        cost_vendor,revenue,spend,segment,category,period,conversions,cost_labor,new_customers
        600,3000,1000, vip ,advertising,2024-01-31,40,400,12
        -50,900,500,lapsed,technology,2024-01,10,550,3
        """)
    path = tmp_path / "h.csv"
    path.write_text("\ufeff" + text, encoding="utf-8")  # a BOM, as Excel writes
    df = read_history(path)
    assert list(df.columns) == [
        "period", "category", "segment", "spend", "revenue",
        "new_customers", "conversions", "cost_vendor", "cost_labor",
    ]
    assert df["period"].dtype == pd.PeriodDtype("M")
    assert df["period"].astype(str).tolist() == ["2024-01", "2024-01"]
    assert df["segment"].tolist() == ["vip", "lapsed"]
    assert all(df[c].dtype == np.float64 for c in df.columns[3:])
    assert df["cost_vendor"].tolist() == [600.0, -50.0]  # cost breakdowns may be credits
    assert list(df.index) == [0, 1]


def test_csv_and_dataframe_give_the_same_result(tmp_path):
    frame = good_frame()
    path = tmp_path / "h.csv"
    frame.to_csv(path, index=False)
    pd.testing.assert_frame_equal(read_history(path), read_history(frame))


def test_read_history_rejects_other_types():
    with pytest.raises(TypeError):
        read_history(42)  # type: ignore[arg-type]
