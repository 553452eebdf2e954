"""The FastAPI application: versioned routes over the worker and the run store.

Routes (all under ``/v1`` need ``Authorization: Bearer <key>``; see docs/http-api.md):

===========================  ===================================================================
``POST /v1/solves``          body: a problem file; query: backend, time_limit, gap_tol -> 202 {id, status}
``GET  /v1/solves/{id}``     the run (``solution`` = the solution file when done); ``?wait=s`` long-polls
``GET  /v1/solves``          the caller's solve runs, newest first (``limit``, ``cursor``)
``GET  /v1/solves/{id}/input``  the problem file as submitted (to reproduce the solve)
``POST /v1/fits``            body: {history, plan} -> 202; when done: the problem file + fit report
``POST /v1/sweeps``          body: {problem, budgets} -> 202; when done: one solution per budget (Dask)
``POST /v1/frontiers``       body: {problem, budgets | lo, hi, points} -> 202; when done: the frontier table
``POST /v1/scenarios``       body: {problem, scenarios?} -> 202; when done: the scenario comparison table
``POST /v1/reports``         body: {problem, scenarios?, frontier_points?, check?, targets?} -> 202; the JSON report
``GET  /healthz``            liveness and queue length (no key needed)
===========================  ===================================================================

Every kind has the same ``GET`` routes as solves. Errors answer ``{"detail": "..."}``:
401 (no or wrong key), 404 (unknown id, or another tenant's), 413 (body too large), 422 (invalid
input, with the CLI's message), 429 (queue full). Handlers only parse, check and enqueue; the
work happens in :mod:`solver.service.worker`.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Annotated, Any

from fastapi import Depends, FastAPI, HTTPException, Path, Query, Request, Response
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from starlette.exceptions import HTTPException as StarletteHTTPException

from solver.service import analyses, jobs, schemas
from solver.service.config import ServiceConfig
from solver.service.limits import BodySizeLimit
from solver.service.store import RunStore
from solver.service.worker import QueueFull, Worker

log = logging.getLogger("solver.service")
_bearer = HTTPBearer(auto_error=False, description="An API key from `budget-solver keys create --tenant NAME`.")
_ERR = {"model": schemas.ErrorOut}
_SUBMIT_RESPONSES: dict[int | str, Any] = {401: _ERR, 413: _ERR, 422: _ERR, 429: _ERR}
_READ_RESPONSES: dict[int | str, Any] = {401: _ERR, 404: _ERR, 422: _ERR}
_LIST_RESPONSES: dict[int | str, Any] = {401: _ERR, 422: _ERR}
RunId = Annotated[str, Path(max_length=64, description="The id answered by the submission.")]


def create_app(config: ServiceConfig | None = None) -> FastAPI:
    """The service as an ASGI app; the store and workers start with the app's lifespan."""
    config = config or ServiceConfig.from_env()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        store = RunStore(config.db_url)
        worker = Worker(store, config)
        await asyncio.to_thread(worker.start)
        app.state.store, app.state.worker = store, worker
        try:
            yield
        finally:
            await asyncio.to_thread(worker.stop)
            store.close()

    app = FastAPI(title="budget-solver", version=jobs.product_version(), lifespan=lifespan,
                  description="Certified budget allocation as a service: submit problem files, fits and budget "
                              "sweeps; poll the runs. See docs/http-api.md.")
    app.state.config = config
    app.add_middleware(BodySizeLimit, max_bytes=config.max_body_bytes)
    _add_error_handlers(app)
    _add_health(app)
    _add_kind(app, jobs.SOLVE, "/v1/solves", schemas.SolveRun, schemas.PROBLEM_SCHEMA, _solve_check(config),
              "Submit a problem file to solve.")
    _add_kind(app, jobs.FIT, "/v1/fits", schemas.FitRun, schemas.FIT_REQUEST_SCHEMA,
              lambda body, q: jobs.check_fit(body, config), "Fit response curves: history + plan -> problem file.",
              solve_options=False)
    _add_kind(app, jobs.SWEEP, "/v1/sweeps", schemas.SweepRun, schemas.SWEEP_REQUEST_SCHEMA,
              lambda body, q: jobs.check_sweep(body, q, config),
              "Solve one problem at several budgets (fanned out over Dask).")
    _add_kind(app, analyses.FRONTIER, "/v1/frontiers", schemas.FrontierRun, schemas.FRONTIER_REQUEST_SCHEMA,
              lambda body, q: analyses.check_frontier(body, q, config), "The budget frontier of a problem.")
    _add_kind(app, analyses.SCENARIOS, "/v1/scenarios", schemas.ScenariosRun, schemas.SCENARIOS_REQUEST_SCHEMA,
              lambda body, q: analyses.check_scenarios(body, q, config), "Compare named scenarios of a problem.")
    _add_kind(app, analyses.REPORT, "/v1/reports", schemas.ReportRun, schemas.REPORT_REQUEST_SCHEMA,
              lambda body, q: analyses.check_report(body, q, config), "The full report of a problem (JSON).")
    return app


def tenant_of(request: Request, creds: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)]) -> str:
    """The tenant of the request's API key; 401 without a valid one."""
    if creds is None:
        raise HTTPException(401, "missing API key: send the header 'Authorization: Bearer <key>'",
                            headers={"WWW-Authenticate": "Bearer"})
    tenant = request.app.state.store.tenant_for(creds.credentials)
    if tenant is None:
        raise HTTPException(401, "invalid API key", headers={"WWW-Authenticate": "Bearer"})
    return str(tenant)


Tenant = Annotated[str, Depends(tenant_of)]


def parse_json(raw: bytes) -> Any:
    """Parse a request body as JSON data (never evaluated); BadInput if it is not JSON.

    Integers too long for a float become infinity, which the validators then refuse by name.
    """
    try:
        return json.loads(raw, parse_int=lambda s: int(s) if len(s) <= 300 else float(s))
    except RecursionError:
        raise jobs.BadInput("request body: JSON nested too deeply") from None
    except (ValueError, UnicodeDecodeError) as e:
        raise jobs.BadInput(f"request body: not valid JSON ({e})") from None


def _known_query(request: Request, names: tuple[str, ...]) -> None:
    """422 for a query parameter the route does not take (a typo must not be silently ignored)."""
    for name in request.query_params:
        if name not in names:
            expected = f"expected one of {list(names)}" if names else "this route takes none"
            raise jobs.BadInput(f"query.{name}: unknown query parameter ({expected})")


def _solve_check(config: ServiceConfig) -> Callable[[Any, dict[str, Any]], jobs.Submission]:
    return lambda body, query: jobs.check_solve(body, query, config)


def _add_kind(app: FastAPI, kind: str, path: str, model: type, body_schema: dict[str, Any],
              check: Callable[[Any, dict[str, Any]], jobs.Submission], summary: str, *,
              solve_options: bool = True) -> None:
    """Register ``POST path``, ``GET path/{id}``, ``GET path/{id}/input`` and ``GET path`` for a kind."""
    noun = path.rsplit("/", 1)[-1]

    async def submit(request: Request, response: Response, tenant: Tenant, backend: str | None,
                     time_limit: float | None, gap_tol: float | None) -> schemas.RunCreated:
        _known_query(request, ("backend", "time_limit", "gap_tol") if solve_options else ())
        body = parse_json(await request.body())
        query = {"backend": backend, "time_limit": time_limit, "gap_tol": gap_tol} if solve_options else {}
        sub = await asyncio.to_thread(check, body, query)
        jobs.check_finite(sub.input)
        record = await asyncio.to_thread(request.app.state.worker.submit, tenant, sub)
        response.headers["Location"] = f"{path}/{record.id}"
        return schemas.RunCreated(id=record.id, status=record.status)

    if solve_options:
        async def create(request: Request, response: Response, tenant: Tenant,
                         backend: Annotated[str | None, Query(max_length=32, description="'auto' or a backend name.")] = None,
                         time_limit: Annotated[float | None, Query(gt=0, description="Seconds for the whole solve (each route gets what is left).")] = None,
                         gap_tol: Annotated[float | None, Query(gt=0, le=0.1, description="Relative gap to prove.")] = None,
                         ) -> schemas.RunCreated:
            return await submit(request, response, tenant, backend, time_limit, gap_tol)
    else:
        async def create(request: Request, response: Response, tenant: Tenant) -> schemas.RunCreated:  # type: ignore[misc]
            return await submit(request, response, tenant, None, None, None)

    async def get_one(request: Request, tenant: Tenant, run_id: RunId,
                      wait: Annotated[float, Query(ge=0, le=60, description="Seconds to wait for the run to end.")] = 0,
                      ) -> Any:
        _known_query(request, ("wait",))
        worker: Worker = request.app.state.worker
        if wait > 0:
            record = await worker.wait(tenant, run_id, kind, wait)
        else:
            record = await asyncio.to_thread(worker.store.get_run, tenant, run_id, kind)
        if record is None:
            raise HTTPException(404, f"no {kind} run {run_id!r} for this API key")
        return schemas.run_out(record)

    async def get_input(request: Request, tenant: Tenant, run_id: RunId) -> Any:
        _known_query(request, ())
        record = await asyncio.to_thread(request.app.state.store.get_run, tenant, run_id, kind, with_input=True)
        if record is None:
            raise HTTPException(404, f"no {kind} run {run_id!r} for this API key")
        return record.input

    async def list_runs(request: Request, tenant: Tenant,
                        limit: Annotated[int, Query(ge=1, le=100)] = 20,
                        cursor: Annotated[str | None, Query(pattern=r"^[0-9]{1,18}$", description="From the previous page.")] = None,
                        ) -> schemas.RunPage:
        _known_query(request, ("limit", "cursor"))
        before = None if cursor is None else int(cursor)
        records = await asyncio.to_thread(request.app.state.store.list_runs, tenant, kind, limit + 1, before)
        more = len(records) > limit
        records = records[:limit]
        return schemas.RunPage(items=[schemas.summary(r) for r in records],
                               next_cursor=str(records[-1].seq) if more else None)

    tag = [noun]
    app.post(path, status_code=202, response_model=schemas.RunCreated, responses=_SUBMIT_RESPONSES, tags=tag,
             summary=summary, openapi_extra=schemas.request_body(body_schema), operation_id=f"create_{kind}")(create)
    app.get(path + "/{run_id}", response_model=model, responses=_READ_RESPONSES, tags=tag,
            summary=f"A {kind} run: status, timings, versions and, when done, its result.",
            operation_id=f"get_{kind}")(get_one)
    app.get(path + "/{run_id}/input", response_model=dict[str, Any], responses=_READ_RESPONSES, tags=tag,
            summary=f"The input of a {kind} run exactly as submitted.", operation_id=f"get_{kind}_input")(get_input)
    app.get(path, response_model=schemas.RunPage, responses=_LIST_RESPONSES, tags=tag,
            summary=f"The caller's {kind} runs, newest first.", operation_id=f"list_{noun}")(list_runs)


def _add_health(app: FastAPI) -> None:
    @app.get("/healthz", response_model=schemas.Health, responses={503: _ERR}, tags=["service"])
    async def healthz(request: Request) -> Any:
        """Liveness: the run store answers; how many runs are queued."""
        try:
            queued = await asyncio.to_thread(request.app.state.store.count, "queued")
        except Exception as e:  # noqa: BLE001 - reported as unavailable
            raise HTTPException(503, f"run store unavailable: {type(e).__name__}") from None
        return schemas.Health(status="ok", version=jobs.product_version(), queued=queued,
                              workers=request.app.state.config.workers)


def _add_error_handlers(app: FastAPI) -> None:
    def error(status: int, detail: str, headers: dict[str, str] | None = None) -> JSONResponse:
        return JSONResponse({"detail": detail}, status_code=status, headers=headers)

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        return error(exc.status_code, str(exc.detail), getattr(exc, "headers", None))

    @app.exception_handler(RequestValidationError)
    async def invalid_request(request: Request, exc: RequestValidationError) -> JSONResponse:
        parts = [".".join(str(x) for x in e.get("loc", ()) if x != "body") + f": {e.get('msg', 'invalid')}"
                 for e in exc.errors()]
        return error(422, "; ".join(parts) or "invalid request")

    @app.exception_handler(jobs.BadInput)
    async def bad_input(request: Request, exc: jobs.BadInput) -> JSONResponse:
        return error(422, str(exc))

    @app.exception_handler(QueueFull)
    async def queue_full(request: Request, exc: QueueFull) -> JSONResponse:
        return error(429, str(exc), {"Retry-After": "5"})

    @app.exception_handler(Exception)
    async def internal(request: Request, exc: Exception) -> JSONResponse:
        log.exception("unhandled error on %s %s", request.method, request.url.path)
        # Starlette re-raises after this answer and uvicorn then drops the connection: say so, so
        # that clients do not send their next request on it.
        return error(500, f"internal error ({type(exc).__name__}); the service log has the details",
                     {"Connection": "close"})
