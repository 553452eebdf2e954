"""Fan independent solves out over Dask: many problems, or one problem at many budgets.

Every task is one ordinary :func:`solver.solve.solve` call on a problem file (a plain dict), so
the results are exactly those of a serial loop -- same routes, same verification, same numbers;
only ``seconds`` (wall time) differs. Use it for budget sweeps and frontiers
(:func:`sweep_budgets`, :func:`frontier_table`), scenario grids and bootstrap or posterior
ensembles (:func:`solve_many` on the variant problems): anything that is many independent solves.

Where the work runs (``scheduler``):

- ``None``: a temporary LocalCluster on this machine (loopback only, free ports; 2 worker
  processes of one thread each), closed afterwards;
- ``"tcp://host:port"``: an existing Dask cluster (its workers need budget-solver installed);
- a :class:`DaskPool` (from :func:`connect`) or a ``distributed.Client``: reused, not closed.

Tasks receive problem files as plain dicts (JSON data), never pickled user objects.

Examples
--------
>>> problem = {"version": 1, "budget": 100.0, "cells": [
...     {"category": "a", "segment": "s", "revenue": {"family": "log", "a": 100, "b": 10}},
...     {"category": "b", "segment": "s", "revenue": {"family": "log", "a": 300, "b": 10}}]}
>>> with connect(processes=False, n_workers=1) as pool:  # doctest: +SKIP
...     sols = sweep_budgets(problem, [50, 100, 200], scheduler=pool)
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

from formulations.problem import Problem, read_structured_file
from solver.backends import SolveOptions
from solver.solution import Solution
from solver.solve import ProblemLike, as_problem


class DaskPool:
    """A Dask client and, when it started one, its LocalCluster (closed together)."""

    def __init__(self, client: Any, cluster: Any = None) -> None:
        self.client = client
        self.cluster = cluster

    @property
    def address(self) -> str:
        """The scheduler address (``tcp://127.0.0.1:port`` for a LocalCluster)."""
        return str(self.client.scheduler.address)

    def close(self) -> None:
        self.client.close()
        if self.cluster is not None:
            self.cluster.close()

    def __enter__(self) -> DaskPool:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def connect(scheduler: str | None = None, *, n_workers: int = 2, processes: bool = True) -> DaskPool:
    """Connect to the scheduler at ``scheduler``, or start a LocalCluster on loopback.

    Parameters
    ----------
    scheduler : ``tcp://host:port`` of a running scheduler, or None for a new LocalCluster
    n_workers, processes : size and kind of the LocalCluster (threads of this process when
        ``processes`` is False: quick to start, but solves then share one interpreter)
    """
    from distributed import Client, LocalCluster

    if scheduler:
        return DaskPool(Client(scheduler, set_as_default=False))
    network = {"host": "127.0.0.1"} if processes else {}  # threads talk in-process, no socket at all
    # The scheduler always serves HTTP (health, metrics); without an address it takes the fixed port
    # 8787 on every interface. A free port on loopback instead: no clash, nothing exposed.
    cluster = LocalCluster(n_workers=n_workers, threads_per_worker=1, processes=processes,
                           dashboard_address="127.0.0.1:0", silence_logs=logging.WARNING, **network)
    return DaskPool(Client(cluster, set_as_default=False), cluster)


@contextlib.contextmanager
def _client(scheduler: str | DaskPool | Any | None) -> Iterator[Any]:
    if isinstance(scheduler, DaskPool):
        yield scheduler.client
    elif scheduler is None or isinstance(scheduler, str):
        with connect(scheduler) as pool:
            yield pool.client
    else:  # a distributed.Client
        yield scheduler


def _problem_dict(problem: ProblemLike) -> dict[str, Any]:
    if isinstance(problem, Problem):
        return problem.to_dict()
    if isinstance(problem, (str, Path)):
        return read_structured_file(problem)  # read here: the workers may not see the file
    if isinstance(problem, Mapping):
        return dict(problem)
    raise TypeError(f"expected a Problem, a problem-file dict or a path, got {type(problem).__name__}")


def _solve_task(problem: dict[str, Any], backend: str, gap_tol: float, feas_tol: float,
                time_limit: float) -> Solution:
    from solver.solve import solve

    return solve(problem, backend=backend, options=SolveOptions(gap_tol=gap_tol, feas_tol=feas_tol,
                                                                time_limit=time_limit))


def solve_many(problems: Sequence[ProblemLike], *, scheduler: str | DaskPool | Any | None = None,
               backend: str = "auto", options: SolveOptions | None = None) -> list[Solution]:
    """Solve each problem as one Dask task; the solutions in the order of ``problems``.

    Every problem is validated here first (a malformed one raises ``ProblemError`` before any
    task is sent). Results equal ``[solve(p, backend, options) for p in problems]`` but for
    ``seconds``.
    """
    opts = options or SolveOptions()
    dicts = [_problem_dict(p) for p in problems]
    for d in dicts:
        Problem.from_dict(d)
    if not dicts:
        return []
    with _client(scheduler) as client:
        futures = client.map(_solve_task, dicts, backend=backend, gap_tol=opts.gap_tol, feas_tol=opts.feas_tol,
                             time_limit=opts.time_limit, pure=False)
        return list(client.gather(futures))


def _frontier_task(problem: dict[str, Any], budget: float, base_budget: float, backend: str, gap_tol: float,
                   feas_tol: float, time_limit: float) -> dict[str, Any]:
    from solver.frontier import frontier_row, solve_at

    options = SolveOptions(gap_tol=gap_tol, feas_tol=feas_tol, time_limit=time_limit)
    return frontier_row(*solve_at(Problem.from_dict(problem), budget, options=options, backend=backend), base_budget)


def frontier_table(problem: ProblemLike, *, lo: float = 0.5, hi: float = 1.5, points: int = 25,
                   budgets: Sequence[float] | None = None, scheduler: str | DaskPool | Any | None = None,
                   backend: str = "auto", options: SolveOptions | None = None) -> Any:
    """The budget frontier of :func:`solver.frontier.frontier_table` (same grid, same columns),
    with each budget solved cold as one Dask task.

    Each row equals ``frontier_row(*solve_at(problem, b), problem.budget)`` computed serially (but
    for ``seconds``); the library's own ``frontier_table`` warm-starts the points one after another
    instead, which is faster on one machine and agrees with these rows to the solver's tolerance.
    """
    import pandas as pd

    from solver.frontier import BASE_COLUMNS, budget_grid

    base = as_problem(problem)
    grid = sorted(float(b) for b in budgets) if budgets is not None else budget_grid(base, lo, hi, points)
    opts = options or SolveOptions()
    if not grid:
        return pd.DataFrame(columns=BASE_COLUMNS)
    with _client(scheduler) as client:
        futures = client.map(_frontier_task, [base.to_dict()] * len(grid), grid, base_budget=base.budget,
                             backend=backend, gap_tol=opts.gap_tol, feas_tol=opts.feas_tol,
                             time_limit=opts.time_limit, pure=False)
        frame = pd.DataFrame(client.gather(futures))
    return frame.reindex(columns=BASE_COLUMNS + [c for c in frame.columns if c not in BASE_COLUMNS])


def compare_scenarios(problem: ProblemLike, scenarios: Any = None, *,
                      scheduler: str | DaskPool | Any | None = None, backend: str = "auto",
                      options: SolveOptions | None = None) -> Any:
    """The scenario comparison of :func:`solver.scenarios.compare_scenarios` (same rows, same
    columns) with every scenario's solve as one Dask task (:func:`solve_many`).

    ``scenarios``: a scenarios file (path, read here), a scenarios dict, or None for the built-ins.
    """
    from solver import scenarios as sc

    with _client(scheduler) as client:
        return sc.compare_scenarios(as_problem(problem), scenarios, backend=backend, options=options,
                                    solve_all=lambda problems: solve_many(problems, scheduler=client,
                                                                          backend=backend, options=options))


def sweep_budgets(problem: ProblemLike, budgets: Sequence[float], *, scheduler: str | DaskPool | Any | None = None,
                  backend: str = "auto", options: SolveOptions | None = None) -> list[Solution]:
    """Solve ``problem`` at each budget of ``budgets`` (all else unchanged), fanned out over Dask.

    The building block of a budget frontier: ``[s.objective for s in sweep_budgets(p, budgets)]``
    is optimal revenue as a function of the budget, and ``s.duals.budget`` its slope.
    """
    base = as_problem(problem)
    return solve_many([base.with_budget(float(b)) for b in budgets], scheduler=scheduler, backend=backend,
                      options=options)
