"""Model -> certified solution -> what people read (solve, verification, reports, CLI, service).

>>> from solver import solve
"""

from solver.backends import SolveOptions, backend_names
from solver.solution import CellPlan, Duals, Solution
from solver.solve import solve
from solver.status import NotOptimalError, Status

__all__ = ["solve", "SolveOptions", "Solution", "CellPlan", "Duals", "Status", "NotOptimalError", "backend_names"]
