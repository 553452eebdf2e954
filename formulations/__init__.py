"""Fitted curves + rules -> one backend-neutral model -> one formulation per backend.

Imports only the curve layer (``forecasting.curves``); never ``solver``.
"""

from formulations.errors import ProblemError, ProblemFileError
from formulations.model import ArrayModel, compile_problem
from formulations.cells import Cell, CellTable
from formulations.problem import BudgetMode, Objective, Problem, SegmentRule, ShareRule

__all__ = [
    "ArrayModel", "BudgetMode", "Cell", "CellTable", "Objective", "Problem", "ProblemError", "ProblemFileError",
    "SegmentRule", "ShareRule", "compile_problem",
]
