"""What each kind of run accepts and does: checks at submission, execution in a worker.

A run has a *kind* (``solve``, ``fit``, ``sweep``), an *input* (the request body, stored as
submitted) and *options* (from the query string, with the service's defaults filled in). The
``check_*`` functions run when a request arrives and raise :class:`BadInput` -- answered 422 --
with the message the CLI would print for the same input (the problem file's and plan file's own
validation; never a second, diverging validator). :func:`execute` runs a checked run and returns
JSON-ready output; it only calls :func:`solver.solve.solve`, :func:`solver.planning.fit_problem`
and :func:`solver.distributed.sweep_budgets`. Nothing from a request is unpickled or evaluated:
inputs are JSON and CSV text, parsed as data.

Extension point: a new kind is a ``check_<kind>`` function, an entry in :data:`EXECUTORS`
(``isolated=True`` to run it in a child process with a hard deadline) and one ``_add_kind`` call
in :mod:`solver.service.app`; the frontier, scenarios and report kinds
(:mod:`solver.service.analyses`) are built that way.

Examples
--------
>>> from solver.service.config import ServiceConfig
>>> cfg = ServiceConfig(max_cells=1)
>>> check_solve({"version": 1, "budget": 1, "cells": [{}, {}]}, {}, cfg)
Traceback (most recent call last):
...
solver.service.jobs.BadInput: cells: 2 cells exceed this service's limit of 1
>>> sanitize({"a": float("inf"), "b": [1.0, float("nan")]})
{'a': None, 'b': [1.0, None]}
"""

from __future__ import annotations

import importlib
import importlib.metadata
import math
import platform
import tempfile
import tomllib
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

from formulations.errors import ProblemError
from formulations.problem import Problem, number
from solver.backends import SolveOptions, backend_names
from solver.service.config import ServiceConfig
from solver.solution import Solution
from solver.status import Status

SOLVE, FIT, SWEEP = "solve", "fit", "sweep"
DEFAULT_GAP_TOL = SolveOptions().gap_tol
_VERSIONED = ("numpy", "scipy", "pandas", "highspy", "clarabel", "cvxpy-base", "pyomo")


class BadInput(ValueError):
    """The request cannot be run as given; the message names the field (answered 422)."""


@dataclass(frozen=True)
class Submission:
    """A checked request: what will be stored and run."""

    kind: str
    input: Any
    options: dict[str, Any]


# --- checks (request time) -------------------------------------------------------------------
def check_options(options: Mapping[str, Any], config: ServiceConfig) -> dict[str, Any]:
    """Solve options with defaults: ``backend``, ``time_limit`` (s per route), ``gap_tol``."""
    backend = options.get("backend") or "auto"
    if backend != "auto" and backend not in backend_names():
        raise BadInput(f"backend: unknown backend {backend!r}; choose 'auto' or one of {backend_names()}")
    time_limit = options.get("time_limit")
    time_limit = config.time_limit if time_limit is None else float(time_limit)
    if not 0 < time_limit <= config.max_time_limit:
        raise BadInput(f"time_limit: must be > 0 and <= {config.max_time_limit:g} s (this service's limit), "
                       f"got {time_limit:g}")
    gap_tol = options.get("gap_tol")
    gap_tol = DEFAULT_GAP_TOL if gap_tol is None else float(gap_tol)
    if not 0 < gap_tol <= 0.1:
        raise BadInput(f"gap_tol: must be > 0 and <= 0.1, got {gap_tol:g}")
    return {"backend": backend, "time_limit": time_limit, "gap_tol": gap_tol}


def check_problem(body: Any, config: ServiceConfig, where: str = "") -> Problem:
    """Validate a problem file (dict) exactly as ``budget-solver validate`` does, plus the cell limit."""
    if isinstance(body, Mapping) and isinstance(body.get("cells"), list) and len(body["cells"]) > config.max_cells:
        raise BadInput(f"{where}cells: {len(body['cells'])} cells exceed this service's limit of {config.max_cells}")
    if not isinstance(body, Mapping):
        raise BadInput(f"{where or 'problem'}: expected a JSON object (a problem file), got {type(body).__name__}")
    try:
        return Problem.from_dict(body)
    except ProblemError as e:
        raise BadInput(f"{where}{e}" if where else str(e)) from None


def check_solve(body: Any, options: Mapping[str, Any], config: ServiceConfig) -> Submission:
    """A solve request: the body is a problem file."""
    check_problem(body, config)
    return Submission(SOLVE, body, check_options(options, config))


def check_sweep(body: Any, options: Mapping[str, Any], config: ServiceConfig) -> Submission:
    """A sweep request: ``{"problem": <problem file>, "budgets": [b1, b2, ...]}``."""
    _check_keys(body, {"problem", "budgets"}, "sweep request")
    budgets = body["budgets"]
    if not isinstance(budgets, list) or not budgets:
        raise BadInput("budgets: expected a non-empty list of budgets")
    if len(budgets) > config.max_sweep_points:
        raise BadInput(f"budgets: {len(budgets)} budgets exceed this service's limit of {config.max_sweep_points}")
    try:
        for i, b in enumerate(budgets):
            number(b, f"budgets[{i}]", minimum=0.0, strict=True)
    except ProblemError as e:
        raise BadInput(str(e)) from None
    check_problem(body["problem"], config, "problem.")
    return Submission(SWEEP, dict(body), check_options(options, config))


def check_fit(body: Any, config: ServiceConfig) -> Submission:
    """A fit request: ``{"history": <CSV text or list of row objects>, "plan": <plan file>}``.

    The history and the plan are validated now (messages as the CLI's, the CSV named
    ``history.csv``); the fit itself runs in a worker.
    """
    from solver.planning import validate_plan

    _check_keys(body, {"history", "plan"}, "fit request")
    if not isinstance(body["plan"], Mapping):
        raise BadInput(f"plan: expected a JSON object (a plan file), got {type(body['plan']).__name__}")
    try:
        validate_plan(body["plan"])
        frame = _history_frame(body["history"], config)
    except ValueError as e:
        raise BadInput(str(e)) from None
    cells = len(frame.groupby(["category", "segment"]))
    if cells > config.max_cells:
        raise BadInput(f"history: {cells} cells exceed this service's limit of {config.max_cells}")
    return Submission(FIT, dict(body), {})


def check_finite(value: Any, where: str = "request body") -> None:
    """BadInput naming the first NaN or infinite number in ``value`` (JSON has neither, so such a
    request cannot be stored or reproduced); called after the kind's own checks, whose messages
    name the field in the CLI's words where they apply.

    >>> check_finite({"targets": {"revenue": float("nan")}})
    Traceback (most recent call last):
    ...
    solver.service.jobs.BadInput: targets.revenue: must be a finite number, got nan
    """
    if isinstance(value, float) and not math.isfinite(value):
        raise BadInput(f"{where}: must be a finite number, got {value}")
    prefix = "" if where == "request body" else where + "."
    if isinstance(value, Mapping):
        for k, v in value.items():
            check_finite(v, f"{prefix}{k}")
    elif isinstance(value, list):
        for i, v in enumerate(value):
            check_finite(v, f"{where}[{i}]" if prefix else f"[{i}]")


def _check_keys(body: Any, keys: set[str], what: str) -> None:
    if not isinstance(body, Mapping):
        raise BadInput(f"{what}: expected a JSON object with keys {sorted(keys)}, got {type(body).__name__}")
    unknown = sorted(set(body) - keys)
    if unknown:
        raise BadInput(f"{what}: unknown key {unknown[0]!r} (expected {sorted(keys)})")
    missing = sorted(keys - set(body))
    if missing:
        raise BadInput(f"{what}: missing key {missing[0]!r}")


def _history_frame(history: Any, config: ServiceConfig) -> Any:
    """The validated history from CSV text (read as the file ``history.csv``) or row objects."""
    import pandas as pd

    from forecasting.history import read_history

    if isinstance(history, str):
        if history.count("\n") > config.max_history_rows + 1:
            raise BadInput(f"history: more than {config.max_history_rows} rows (this service's limit)")
        with tempfile.TemporaryDirectory() as tmp:
            path = Path(tmp) / "history.csv"
            path.write_text(history, encoding="utf-8")
            return read_history(path)
    if isinstance(history, list) and all(isinstance(r, Mapping) for r in history):
        if len(history) > config.max_history_rows:
            raise BadInput(f"history: {len(history)} rows exceed this service's limit of {config.max_history_rows}")
        if not history:
            raise BadInput("history: expected at least one row")
        return read_history(pd.DataFrame.from_records(history))
    raise BadInput("history: expected CSV text (with a header line) or a list of row objects")


# --- execution (worker time) -----------------------------------------------------------------
def run_solve(input: Any, options: Mapping[str, Any]) -> dict[str, Any]:
    """Solve the problem file; the solution file (non-finite numbers as null)."""
    from solver.solve import solve

    solution = solve(input, backend=options["backend"], options=_solve_options(options))
    return sanitize(solution.to_dict())


def run_fit(input: Any, options: Mapping[str, Any]) -> dict[str, Any]:
    """Fit the history and build the problem file: ``{"problem": ..., "fit_report": [...]}``."""
    from solver.planning import fit_problem

    history = _history_frame(input["history"], ServiceConfig(max_history_rows=10**9))
    problem, fit = fit_problem(history, input["plan"])
    return sanitize({"problem": problem.to_dict(), "fit_report": fit.table().to_dict(orient="records")})


def run_sweep(input: Any, options: Mapping[str, Any], scheduler: Any = None) -> dict[str, Any]:
    """Solve the problem at every budget (fanned out over Dask): ``{"budgets", "solutions"}``."""
    from solver.distributed import sweep_budgets

    solutions = sweep_budgets(input["problem"], input["budgets"], scheduler=scheduler,
                              backend=options["backend"], options=_solve_options(options))
    return {"budgets": [float(b) for b in input["budgets"]], "solutions": [sanitize(s.to_dict()) for s in solutions]}


#: kind -> ("module:function" executing it, runs isolated in a child process with a hard deadline)
EXECUTORS: dict[str, tuple[str, bool]] = {
    SOLVE: ("solver.service.jobs:run_solve", True),
    FIT: ("solver.service.jobs:run_fit", True),
    SWEEP: ("solver.service.jobs:run_sweep", False),
    "frontier": ("solver.service.analyses:run_frontier", True),
    "scenarios": ("solver.service.analyses:run_scenarios", True),
    "report": ("solver.service.analyses:run_report", True),
}


def executor(kind: str) -> Callable[..., Any]:
    """The function that executes runs of ``kind`` (imported on first use)."""
    module, _, name = EXECUTORS[kind][0].partition(":")
    return getattr(importlib.import_module(module), name)  # type: ignore[no-any-return]


def execute(kind: str, input: Any, options: Mapping[str, Any]) -> Any:
    """Run an isolated kind (called in the child process)."""
    return executor(kind)(input, options)


def out_of_time(kind: str, input: Any, options: Mapping[str, Any], seconds: float) -> dict[str, Any] | None:
    """The output of a solve killed at its hard deadline: a ``time_limit`` solution without a plan
    (None for other kinds, which then fail with the reason)."""
    if kind != SOLVE:
        return None
    message = (f"time_limit: stopped after {seconds:.1f} s, the hard limit for time_limit="
               f"{options['time_limit']:g} s per route; no verified plan was found in time")
    return sanitize(Solution(status=Status.TIME_LIMIT, message=message, name=str(input.get("name", "")),
                             objective_kind=str(input.get("objective", "revenue")),
                             budget=float(input["budget"])).to_dict())


def _solve_options(options: Mapping[str, Any]) -> SolveOptions:
    return SolveOptions(gap_tol=float(options["gap_tol"]), time_limit=float(options["time_limit"]))


def sanitize(value: Any) -> Any:
    """JSON-safe copy: non-finite floats become None (JSON has no NaN or infinity)."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, Mapping):
        return {str(k): sanitize(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [sanitize(v) for v in value]
    if hasattr(value, "item") and callable(value.item):  # numpy scalars
        return sanitize(value.item())
    return value


# --- versions --------------------------------------------------------------------------------
@cache
def product_version() -> str:
    """The installed budget-solver version (from pyproject.toml when run from a checkout)."""
    try:
        return importlib.metadata.version("budget-solver")
    except importlib.metadata.PackageNotFoundError:
        pyproject = Path(__file__).resolve().parents[2] / "pyproject.toml"
        try:
            return str(tomllib.loads(pyproject.read_text())["project"]["version"]) + "+checkout"
        except (OSError, KeyError, tomllib.TOMLDecodeError):
            return "unknown"


@cache
def solver_versions() -> dict[str, str]:
    """Versions of Python and the numerical packages a solve depends on."""
    out = {"python": platform.python_version()}
    for name in _VERSIONED:
        try:
            out[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            out[name] = "not installed"
    return out

