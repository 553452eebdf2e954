"""Read and validate the spend/outcome history (the product's input data contract).

The history has one row per period x category x segment:

=================  ========  ==================================================================
column             required  meaning
=================  ========  ==================================================================
``period``         yes       the month: ``YYYY-MM`` or an ISO date ``YYYY-MM-DD[THH:MM[:SS]]``
``category``       yes       budget category (non-empty text; surrounding spaces are removed)
``segment``        yes       customer segment (non-empty text; surrounding spaces are removed)
``spend``          yes       spend in the period, currency units, >= 0
``revenue``        yes       revenue attributed to the cell in the period, currency units, >= 0
``new_customers``  no        customers acquired in the period, >= 0
``emails_sent``    no        emails sent in the period, >= 0
``conversions``    no        conversions in the period, >= 0
``cost_*``         no        spend broken down by cost type (e.g. ``cost_labor``), finite
=================  ========  ==================================================================

Any other column is an error. Validation is strict and vectorized: a missing or unknown column, a
value that is not a number, NaN, infinite, a negative spend / revenue / count, an empty category or
segment, an unparseable period, or two rows for the same (period, category, segment) raise
:class:`HistoryError` naming the CSV line (the header is line 1, the first data row line 2) and the
column. Nothing is silently dropped or clipped; the only rows skipped are records whose fields are
all empty (blank lines), which carry no data and still count for line numbers.

Normalized form (what :func:`read_history` and :func:`validate_history` return): columns in the
order of the table above (cost columns last, in their input order), a fresh ``RangeIndex`` in
input order, ``period`` as a monthly :class:`pandas.Period` (dtype ``period[M]``; an ISO date maps
to its month, so two rows of one cell dated in the same month are duplicates), ``category`` and
``segment`` as strings, every other column ``float64``.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

REQUIRED_COLUMNS: tuple[str, ...] = ("period", "category", "segment", "spend", "revenue")
OPTIONAL_COLUMNS: tuple[str, ...] = ("new_customers", "emails_sent", "conversions")
COST_PREFIX = "cost_"
KEY_COLUMNS: tuple[str, ...] = ("period", "category", "segment")
TEXT_COLUMNS: tuple[str, ...] = ("category", "segment")
NONNEGATIVE_COLUMNS: frozenset[str] = frozenset(
    {"spend", "revenue", "new_customers", "emails_sent", "conversions"}
)

#: Offending rows quoted per problem; the rest are counted.
MAX_ROWS_PER_PROBLEM = 5
_PERIOD_PATTERN = r"\d{4}-\d{2}(-\d{2}([T ]\d{2}:\d{2}(:\d{2}(\.\d+)?)?)?)?"
_NAN_TOKENS = ("nan", "+nan", "-nan")


class HistoryError(ValueError):
    """The history violates the data contract; the message names each line and column.

    ``problems`` holds one text per problem (each already naming its line and column).
    """

    def __init__(self, message: str, problems: tuple[str, ...] = ()) -> None:
        super().__init__(message)
        self.problems = problems


# --------------------------------------------------------------------------------------------
# Public API
# --------------------------------------------------------------------------------------------


def read_history(source: str | os.PathLike[str] | pd.DataFrame) -> pd.DataFrame:
    """Read a history CSV (or take a DataFrame) and return it validated and normalized.

    Parameters
    ----------
    source
        Path of a UTF-8 CSV file with a header row, or a DataFrame with the same columns.
        Spend and revenue are currency units per history period (month).

    Returns
    -------
    pandas.DataFrame
        The normalized history (see the module docstring).

    Raises
    ------
    HistoryError
        If the data break the contract; the message names the CSV line and column
        (for a DataFrame: the row position and the line it would have in a CSV).
    FileNotFoundError
        If ``source`` is a path that does not exist.
    """
    if isinstance(source, pd.DataFrame):
        return validate_history(source)
    if not isinstance(source, (str, os.PathLike)):
        raise TypeError(f"read_history expects a path or a DataFrame, got {type(source).__name__}")
    raw, label = _read_csv_text_table(source)
    lines = np.arange(len(raw), dtype=np.int64) + 2
    blank = _blank_records(raw)
    keep = ~blank.to_numpy()
    return _validate(raw.loc[keep].reset_index(drop=True), _Locator(label, lines[keep], True))


def validate_history(df: pd.DataFrame) -> pd.DataFrame:
    """Validate a history DataFrame and return its normalized form (the input is not modified).

    Row ``i`` (by position) is reported as ``row i (line i + 2)``: the line it has in the CSV that
    ``df.to_csv(index=False)`` writes. Values may be numbers or numeric text; ``period`` may be
    text, datetimes or pandas Periods.

    Raises
    ------
    HistoryError
        If the data break the contract (see the module docstring).
    """
    if not isinstance(df, pd.DataFrame):
        raise TypeError(f"validate_history expects a DataFrame, got {type(df).__name__}")
    return _validate(df.reset_index(drop=True), _Locator("history", np.arange(len(df)) + 2, False))


# --------------------------------------------------------------------------------------------
# Reading
# --------------------------------------------------------------------------------------------


def _read_csv_text_table(path: str | os.PathLike[str]) -> tuple[pd.DataFrame, str]:
    """All fields as text (nothing converted, nothing skipped) plus a label for messages."""
    label = os.path.basename(os.fspath(path)) or os.fspath(path)
    options = dict(dtype=str, keep_default_na=False, encoding="utf-8-sig")
    try:
        header = pd.read_csv(path, header=None, nrows=1, **options)
        raw = pd.read_csv(path, skip_blank_lines=False, **options)
    except pd.errors.EmptyDataError:
        raise HistoryError(f"{label}: the file is empty (expected a header line)") from None
    except (pd.errors.ParserError, UnicodeDecodeError) as exc:
        raise HistoryError(f"{label}: not a readable CSV: {exc}") from None
    names = [str(n) for n in header.iloc[0].tolist()] if len(header) else []
    _check_duplicate_columns(names, label)
    if not isinstance(raw.index, pd.RangeIndex):
        # pandas turns leading extra fields into an index when the first row is too long
        raise HistoryError(
            f"{label}: line 2: the row has more fields than the header ({len(names)} columns)"
        )
    multiline = raw.apply(lambda s: s.str.contains(r"[\r\n]", regex=True, na=False)).any(axis=1)
    if multiline.any():
        first = int(np.argmax(multiline.to_numpy()))
        raise HistoryError(
            f"{label}: line {first + 2}: a quoted field contains a line break; "
            "line breaks inside fields are not supported"
        )
    return raw, label


def _blank_records(raw: pd.DataFrame) -> pd.Series:
    """Records whose fields are all empty or missing (blank lines, or only separators)."""
    if raw.shape[1] == 0:
        return pd.Series(np.ones(len(raw), dtype=bool))
    empty = raw.apply(lambda s: s.isna() | (s.str.strip() == ""))
    return empty.all(axis=1)


def _check_duplicate_columns(names: list[str], source: str) -> None:
    seen = pd.Index(names)
    dup = seen[seen.duplicated()].unique()
    if len(dup):
        listed = ", ".join(repr(n) for n in dup)
        raise HistoryError(f"{source}: line 1 (header): column(s) {listed} appear more than once")


# --------------------------------------------------------------------------------------------
# Validation
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Locator:
    """Turns a row position into the text naming it in messages."""

    source: str
    lines: np.ndarray
    from_csv: bool

    def row(self, pos: int) -> str:
        line = int(self.lines[pos])
        return f"line {line}" if self.from_csv else f"row {pos} (line {line})"


@dataclass
class _Problems:
    """Collects problems; each names the offending rows (up to a cap) and the column."""

    where: _Locator
    #: (row position, insertion order, text); reported sorted by row, then insertion order
    found: list[tuple[int, int, str]] = field(default_factory=list)

    def add(
        self,
        mask: pd.Series | np.ndarray,
        columns: str | tuple[str, ...],
        describe: Callable[[int], str],
    ) -> None:
        """Record one problem for every row where ``mask`` is true (quoting the first few)."""
        positions = np.flatnonzero(np.asarray(mask, dtype=bool))
        if isinstance(columns, str):
            label = f"column {columns!r}"
        else:
            label = "columns " + ", ".join(repr(c) for c in columns)
        for pos in positions[:MAX_ROWS_PER_PROBLEM]:
            text = f"{self.where.row(int(pos))}, {label}: {describe(int(pos))}"
            self.found.append((int(pos), len(self.found), text))
        if positions.size > MAX_ROWS_PER_PROBLEM:
            rest = positions.size - MAX_ROWS_PER_PROBLEM
            last = int(positions[MAX_ROWS_PER_PROBLEM - 1])
            text = f"... and {rest} more row(s) with this problem in {label}"
            self.found.append((last, len(self.found), text))

    def raise_if_any(self) -> None:
        if not self.found:
            return
        texts = tuple(text for _, _, text in sorted(self.found))
        if len(texts) == 1:
            raise HistoryError(f"{self.where.source}: {texts[0]}", texts)
        body = "\n  ".join(texts)
        raise HistoryError(f"{self.where.source}: {len(texts)} problems:\n  {body}", texts)


def _validate(df: pd.DataFrame, where: _Locator) -> pd.DataFrame:
    columns = _check_columns(df, where.source)
    if len(df) == 0:
        raise HistoryError(f"{where.source}: the history is empty (no data rows after the header)")
    problems = _Problems(where)
    out: dict[str, pd.Series] = {"period": _parse_period(df["period"], problems)}
    for name in TEXT_COLUMNS:
        out[name] = _parse_text(df[name], name, problems)
    for name in columns[len(KEY_COLUMNS):]:
        out[name] = _parse_number(df[name], name, problems)
    result = pd.DataFrame(out, columns=list(columns))
    _check_duplicates(result, problems)
    problems.raise_if_any()
    return result


def _check_columns(df: pd.DataFrame, source: str) -> tuple[str, ...]:
    """Canonical column order; raises for missing, unknown or repeated columns."""
    names = list(df.columns)
    _check_duplicate_columns([str(n) for n in names], source)
    missing = [c for c in REQUIRED_COLUMNS if c not in names]
    unknown = [
        n for n in names
        if not (
            n in REQUIRED_COLUMNS
            or n in OPTIONAL_COLUMNS
            or (isinstance(n, str) and n.startswith(COST_PREFIX) and len(n) > len(COST_PREFIX))
        )
    ]
    texts = []
    if missing:
        texts.append("missing required column(s) " + ", ".join(repr(c) for c in missing))
    if unknown:
        texts.append(
            "unknown column(s) " + ", ".join(repr(c) for c in unknown)
            + f"; allowed are {', '.join(REQUIRED_COLUMNS + OPTIONAL_COLUMNS)} and "
            f"{COST_PREFIX}<type> cost breakdowns"
        )
    if texts:
        raise HistoryError(f"{source}: line 1 (header): " + "; ".join(texts))
    optional = [c for c in OPTIONAL_COLUMNS if c in names]
    costs = [n for n in names if n.startswith(COST_PREFIX)]
    return (*REQUIRED_COLUMNS, *optional, *costs)


def _missing(raw: pd.Series) -> pd.Series:
    """Missing values: NA, or text that is empty after stripping spaces."""
    if pd.api.types.is_numeric_dtype(raw.dtype) or isinstance(raw.dtype, (pd.PeriodDtype,)):
        return raw.isna()
    if pd.api.types.is_datetime64_any_dtype(raw.dtype):
        return raw.isna()
    return raw.isna() | (raw.astype("str").str.strip() == "")


def _show(value: object) -> str:
    """A raw value as quoted in messages: text in quotes, anything else as printed."""
    return repr(value) if isinstance(value, str) else str(value)


def _describe_missing(value: object) -> str:
    return "missing value (NaN)" if pd.isna(value) else "missing value (empty)"


def _parse_period(raw: pd.Series, problems: _Problems) -> pd.Series:
    """Monthly periods; ``YYYY-MM`` or ISO dates (text), datetimes or Periods."""
    missing = _missing(raw)
    if isinstance(raw.dtype, pd.PeriodDtype):
        periods = raw.dt.asfreq("M")
        bad = pd.Series(False, index=raw.index)
    else:
        if pd.api.types.is_datetime64_any_dtype(raw.dtype):
            stamps = raw
            bad = pd.Series(False, index=raw.index)
        else:
            text = raw.astype("str").str.strip().where(~missing, "")
            shaped = text.str.fullmatch(_PERIOD_PATTERN)
            stamps = pd.to_datetime(text.where(shaped), format="ISO8601", errors="coerce")
            bad = ~missing & stamps.isna()
        if isinstance(stamps.dtype, pd.DatetimeTZDtype):
            stamps = stamps.dt.tz_localize(None)
        periods = stamps.dt.to_period("M")
    problems.add(missing, "period", lambda i: _describe_missing(raw.iloc[i]))
    problems.add(
        bad, "period",
        lambda i: f"cannot read period {_show(raw.iloc[i])}; expected a month YYYY-MM or an "
        "ISO date YYYY-MM-DD",
    )
    return periods


def _parse_text(raw: pd.Series, name: str, problems: _Problems) -> pd.Series:
    text = raw.astype("str").str.strip()
    problems.add(
        _missing(raw), name, lambda i: f"empty {name}" + (" (NaN)" if pd.isna(raw.iloc[i]) else "")
    )
    return text


def _parse_number(raw: pd.Series, name: str, problems: _Problems) -> pd.Series:
    """Float64 values; flags missing, non-numeric, NaN, infinite and (where required) negative."""
    if pd.api.types.is_bool_dtype(raw.dtype):
        problems.add(np.ones(len(raw), bool), name, lambda i: f"not a number: {_show(raw.iloc[i])}")
        return raw.astype("float64")
    missing = _missing(raw)
    if pd.api.types.is_numeric_dtype(raw.dtype):
        values = raw.astype("float64")
        nan_value = pd.Series(False, index=raw.index)
    else:
        values = pd.to_numeric(raw.where(~missing), errors="coerce").astype("float64")
        nan_value = raw.astype("str").str.strip().str.lower().isin(_NAN_TOKENS)
    not_number = values.isna() & ~missing & ~nan_value
    infinite = np.isinf(values)
    problems.add(missing, name, lambda i: _describe_missing(raw.iloc[i]))
    problems.add(nan_value, name, lambda i: "NaN value")
    problems.add(not_number, name, lambda i: f"not a number: {_show(raw.iloc[i])}")
    problems.add(infinite, name, lambda i: f"infinite value {values.iloc[i]:g}")
    if name in NONNEGATIVE_COLUMNS:
        problems.add(
            values < 0, name, lambda i: f"negative value {values.iloc[i]:g} (must be >= 0)"
        )
    return values


def _check_duplicates(result: pd.DataFrame, problems: _Problems) -> None:
    """Two rows for one (period, category, segment): names both lines."""
    keys = list(KEY_COLUMNS)
    named = (result["category"] != "") & (result["segment"] != "")
    usable = result[keys].notna().all(axis=1) & named
    sub = result.loc[usable, keys].assign(_pos=np.flatnonzero(usable.to_numpy()))
    later = sub.duplicated(keys, keep="first")
    if not later.any():
        return
    first_pos = sub.groupby(keys, sort=False)["_pos"].transform("first")
    mask = np.zeros(len(result), dtype=bool)
    mask[sub.loc[later, "_pos"].to_numpy()] = True
    first_of = dict(zip(sub.loc[later, "_pos"], first_pos[later]))
    where = problems.where

    def describe(pos: int) -> str:
        row = result.iloc[pos]
        return (
            f"duplicate of {where.row(int(first_of[pos]))}: both are period {row['period']}, "
            f"category {row['category']!r}, segment {row['segment']!r}"
        )

    problems.add(mask, KEY_COLUMNS, describe)
