"""The status vocabulary of a solution (the solution file's ``status``)."""

from __future__ import annotations

from enum import StrEnum


class Status(StrEnum):
    """What the returned solution is.

    - ``optimal``: the plan meets every rule on the exact curves (to ``feas_tol`` of the budget)
      and the Lagrangian bound at the reported duals is within ``gap_tol`` of its objective.
    - ``infeasible``: no plan meets the rules; ``message`` names the rules that conflict.
    - ``time_limit``: the solve stopped at its time or iteration limit before proving
      optimality; the best verified plan is returned if there is one, with its proven gap.
    - ``error``: the backend failed, or its plan did not pass verification; ``message`` says
      why. Never returned with a plan presented as optimal.
    """

    OPTIMAL = "optimal"
    INFEASIBLE = "infeasible"
    TIME_LIMIT = "time_limit"
    ERROR = "error"


class NotOptimalError(RuntimeError):
    """Raised by :meth:`solver.solution.Solution.raise_for_status` for a non-optimal solution."""
