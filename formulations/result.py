"""What a solve route hands back: a plan in scaled units, multipliers and why it stopped.

Routes (:mod:`formulations.cuts`, :mod:`formulations.conic`, :mod:`formulations.pyomo_model`,
:mod:`formulations.waterfill`) return a :class:`RouteResult`; the solver layer verifies it on
the exact curves and turns it into a user-facing solution. Solver indices never leave a route.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

import numpy as np
from numpy.typing import NDArray

from formulations.lagrangian import Multipliers


class RouteStatus(StrEnum):
    """Why a route stopped.

    - ``converged``: the route believes ``y`` is optimal to its tolerance (to be verified).
    - ``infeasible``: the route proved no plan satisfies the rules (``message`` says which).
    - ``iteration_limit`` / ``time_limit``: stopped early; ``y`` is the best plan found, if any.
    - ``error``: the backend failed (numerical trouble, unsupported input); ``message`` says what.
    """

    CONVERGED = "converged"
    INFEASIBLE = "infeasible"
    ITERATION_LIMIT = "iteration_limit"
    TIME_LIMIT = "time_limit"
    ERROR = "error"


@dataclass(frozen=True)
class RouteResult:
    """A route's answer in the scaled units of :class:`~formulations.model.ArrayModel`.

    ``y``: spends (shape (n,)) or None; ``multipliers``: duals that certify the bound, or None;
    ``iterations``: LP re-solves or interior-point iterations; ``backend``: route name.
    """

    status: RouteStatus
    backend: str
    y: NDArray[np.float64] | None = None
    multipliers: Multipliers | None = None
    iterations: int = 0
    message: str = ""
