"""Number formats shared by every report (Markdown, HTML, Excel labels, CLI lines).

>>> money(1234567.4), money(-1234.5), rate(1.15101), pct(0.1234)
('$1,234,567', '-$1,234', '$1.1510', '12.3%')
"""

from __future__ import annotations


def money(x: float) -> str:
    """``$1,234,567`` style (negative as ``-$1,234``)."""
    return f"-${-x:,.0f}" if x < 0 else f"${x:,.0f}"


def rate(x: float) -> str:
    """A money-per-money rate with four decimals: ``$1.1510``."""
    return f"-${-x:,.4f}" if x < 0 else f"${x:,.4f}"


def pct(x: float, digits: int = 1) -> str:
    """A fraction as a percentage: ``12.3%``."""
    return f"{x:.{digits}%}"


def signed_money(x: float) -> str:
    """``+$1,234`` / ``-$1,234``."""
    return ("+" if x >= 0 else "-") + f"${abs(x):,.0f}"
