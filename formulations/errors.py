"""Errors raised for problems that cannot be modelled as given.

Every message says where the bad value is (a JSON path such as ``cells[3].max_spend`` or a rule
such as ``category_shares.technology``), what is wrong with it, and, where useful, what to do.
All subclass :class:`ValueError`, so ``except ValueError`` keeps working for callers that do not
care about the distinction.

Infeasibility is *not* an error: a well-formed problem whose rules conflict solves to a solution
with status ``infeasible`` and a message naming the conflicting rules.
"""

from __future__ import annotations


class ProblemError(ValueError):
    """A problem file or in-memory problem is malformed (bad key, value, range or reference)."""


class ProblemFileError(ProblemError):
    """The problem file cannot be read or parsed (missing file, bad JSON/YAML/TOML syntax)."""
