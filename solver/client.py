"""A small Python client for the budget-solver HTTP service (on httpx).

Examples
--------
>>> from solver.client import SolverClient
>>> with SolverClient("http://127.0.0.1:8000", api_key) as client:  # doctest: +SKIP
...     solution = client.solve("work/problem.json", time_limit=30)   # submit, wait, return the solution file
...     print(solution["status"], solution["objective"])
...     run_id = client.submit(problem_dict)                          # or step by step
...     run = client.wait(run_id)                                     # {"status": "done", "solution": {...}, ...}
...     problem = client.fit("history.csv", "plan.json")              # history + plan -> problem file
...     sweep = client.sweep(problem, [400_000, 600_000, 800_000])    # one solution file per budget

Errors from the service raise :class:`ServiceError` (with ``status_code`` and the service's
``detail``); subclasses name the common ones: :class:`AuthError` (401), :class:`NotFound` (404),
:class:`InvalidInput` (422, the CLI's message), :class:`QueueFull` (429), :class:`RunFailed`.
"""

from __future__ import annotations

import time
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import httpx

from formulations.problem import Problem, read_structured_file


class ServiceError(RuntimeError):
    """The service answered an error; ``detail`` is its one-line explanation."""

    def __init__(self, status_code: int, detail: str) -> None:
        super().__init__(f"{status_code}: {detail}")
        self.status_code = status_code
        self.detail = detail


class AuthError(ServiceError):
    """401: no API key, or not a valid one."""


class NotFound(ServiceError):
    """404: no such run for this API key."""


class InvalidInput(ServiceError):
    """422: the input is invalid; ``detail`` is the message the CLI prints for it."""


class QueueFull(ServiceError):
    """429: the service's queue is full; retry after ``retry_after`` seconds."""

    def __init__(self, status_code: int, detail: str, retry_after: float = 5.0) -> None:
        super().__init__(status_code, detail)
        self.retry_after = retry_after


class RunFailed(ServiceError):
    """The run ended ``failed``; ``detail`` is the reason and ``run`` the whole run."""

    def __init__(self, run: Mapping[str, Any]) -> None:
        super().__init__(200, str(run.get("error")))
        self.run = dict(run)


_ERRORS: dict[int, type[ServiceError]] = {401: AuthError, 404: NotFound, 422: InvalidInput}
_COLLECTIONS = {"solve": "/v1/solves", "fit": "/v1/fits", "sweep": "/v1/sweeps", "frontier": "/v1/frontiers",
                "scenarios": "/v1/scenarios", "report": "/v1/reports"}


def _problem_dict(problem: Problem | Mapping[str, Any] | str | Path) -> dict[str, Any]:
    if isinstance(problem, Problem):
        return problem.to_dict()
    if isinstance(problem, (str, Path)):
        return read_structured_file(problem)
    return dict(problem)


class SolverClient:
    """Talks to one service with one API key.

    Parameters
    ----------
    base_url : e.g. ``http://127.0.0.1:8000``
    api_key : a key from ``budget-solver keys create``
    timeout : seconds per HTTP request
    transport : an httpx transport (tests: ``httpx.ASGITransport``); default: the network
    """

    def __init__(self, base_url: str, api_key: str, *, timeout: float = 30.0,
                 transport: httpx.BaseTransport | None = None) -> None:
        self._http = httpx.Client(base_url=base_url.rstrip("/"), timeout=timeout, transport=transport,
                                  headers={"Authorization": f"Bearer {api_key}"})

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> SolverClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # --- raw calls ------------------------------------------------------------------------------
    def _request(self, method: str, url: str, **kwargs: Any) -> Any:
        response = self._http.request(method, url, **kwargs)
        if response.status_code >= 400:
            try:
                detail = str(response.json().get("detail"))
            except ValueError:
                detail = response.text
            if response.status_code == 429:
                raise QueueFull(429, detail, float(response.headers.get("Retry-After", 5)))
            raise _ERRORS.get(response.status_code, ServiceError)(response.status_code, detail)
        return response.json()

    def health(self) -> dict[str, Any]:
        """``GET /healthz``."""
        return dict(self._request("GET", "/healthz"))

    def submit(self, problem: Problem | Mapping[str, Any] | str | Path, *, backend: str | None = None,
               time_limit: float | None = None, gap_tol: float | None = None) -> str:
        """Queue a solve; returns the run id (``POST /v1/solves``)."""
        params = {k: v for k, v in (("backend", backend), ("time_limit", time_limit), ("gap_tol", gap_tol))
                  if v is not None}
        return str(self._request("POST", "/v1/solves", json=_problem_dict(problem), params=params)["id"])

    def get(self, run_id: str, *, kind: str = "solve", wait: float = 0.0) -> dict[str, Any]:
        """The run (``GET /v1/<kind>s/{id}``), waiting up to ``wait`` seconds for it to end."""
        return dict(self._request("GET", f"{_COLLECTIONS[kind]}/{run_id}", params={"wait": wait} if wait else None,
                                  timeout=self._http.timeout.read + wait if self._http.timeout.read else None))

    def wait(self, run_id: str, *, kind: str = "solve", timeout: float | None = None) -> dict[str, Any]:
        """Long-poll until the run is done or failed (``timeout`` seconds at most: TimeoutError)."""
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            left = 30.0 if deadline is None else min(30.0, deadline - time.monotonic())
            if left <= 0:
                raise TimeoutError(f"run {run_id} has not ended within {timeout} s")
            run = self.get(run_id, kind=kind, wait=left)
            if run["status"] in ("done", "failed"):
                return run

    def runs(self, *, kind: str = "solve", limit: int = 20) -> Iterator[dict[str, Any]]:
        """Every run of ``kind`` of this API key, newest first (pages fetched as needed)."""
        cursor: str | None = None
        while True:
            params: dict[str, Any] = {"limit": limit} | ({"cursor": cursor} if cursor else {})
            page = self._request("GET", _COLLECTIONS[kind], params=params)
            yield from page["items"]
            cursor = page["next_cursor"]
            if not cursor:
                return

    def input(self, run_id: str, *, kind: str = "solve") -> dict[str, Any]:
        """The run's input as submitted (to reproduce it)."""
        return dict(self._request("GET", f"{_COLLECTIONS[kind]}/{run_id}/input"))

    # --- one call per task ----------------------------------------------------------------------
    def solve(self, problem: Problem | Mapping[str, Any] | str | Path, *, backend: str | None = None,
              time_limit: float | None = None, gap_tol: float | None = None,
              timeout: float | None = None) -> dict[str, Any]:
        """Submit, wait, and return the solution file (its ``status`` may be other than optimal).

        Raises :class:`RunFailed` if the run failed (e.g. the server stopped it too often).
        """
        run = self.wait(self.submit(problem, backend=backend, time_limit=time_limit, gap_tol=gap_tol), timeout=timeout)
        if run["status"] == "failed":
            raise RunFailed(run)
        return dict(run["solution"])

    def fit(self, history: str | Path | list[Mapping[str, Any]], plan: Mapping[str, Any] | str | Path, *,
            timeout: float | None = None) -> dict[str, Any]:
        """Fit curves from a history (CSV path, CSV text or row dicts) and a plan; the problem file."""
        if isinstance(history, Path) or (isinstance(history, str) and "\n" not in history):
            history = Path(history).read_text(encoding="utf-8")
        body = {"history": history, "plan": plan if isinstance(plan, Mapping) else read_structured_file(plan)}
        run = self.wait(str(self._request("POST", "/v1/fits", json=body)["id"]), kind="fit", timeout=timeout)
        if run["status"] == "failed":
            raise RunFailed(run)
        return dict(run["problem"])

    def run(self, kind: str, body: Mapping[str, Any], *, timeout: float | None = None,
            **options: Any) -> dict[str, Any]:
        """Submit a run of any kind (``frontier``, ``scenarios``, ``report``, ...) and wait for it.

        ``options`` are the query parameters (``backend``, ``time_limit``, ``gap_tol``). Returns the
        whole run (its result under the kind's key, e.g. ``run["frontier"]``); RunFailed if it failed.
        """
        params = {k: v for k, v in options.items() if v is not None}
        run = self.wait(str(self._request("POST", _COLLECTIONS[kind], json=dict(body), params=params)["id"]),
                        kind=kind, timeout=timeout)
        if run["status"] == "failed":
            raise RunFailed(run)
        return run

    def frontier(self, problem: Problem | Mapping[str, Any] | str | Path, *, budgets: list[float] | None = None,
                 points: int | None = None, timeout: float | None = None, **options: Any) -> list[dict[str, Any]]:
        """The budget frontier: one row per budget (``budgets``, or ``points`` from 50 % to 150 %)."""
        body: dict[str, Any] = {"problem": _problem_dict(problem)}
        body |= {k: v for k, v in (("budgets", budgets), ("points", points)) if v is not None}
        return list(self.run("frontier", body, timeout=timeout, **options)["frontier"])

    def sweep(self, problem: Problem | Mapping[str, Any] | str | Path, budgets: list[float], *,
              backend: str | None = None, time_limit: float | None = None,
              timeout: float | None = None) -> list[dict[str, Any]]:
        """Solve the problem at each budget on the service's Dask cluster; one solution file per budget."""
        params = {k: v for k, v in (("backend", backend), ("time_limit", time_limit)) if v is not None}
        body = {"problem": _problem_dict(problem), "budgets": list(budgets)}
        run = self.wait(str(self._request("POST", "/v1/sweeps", json=body, params=params)["id"]), kind="sweep",
                        timeout=timeout)
        if run["status"] == "failed":
            raise RunFailed(run)
        return list(run["solutions"])
