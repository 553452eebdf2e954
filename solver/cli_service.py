"""``budget-solver serve``, ``keys`` and ``sweep``: the HTTP service and distributed sweeps."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path
from typing import Annotated, Any, Optional

import typer

from formulations.problem import Problem
from solver.backends import SolveOptions, backend_names
from solver.cli_common import EXIT_NOT_OPTIMAL, EXIT_OK, app, echo_err


@app.command()
def serve(
    host: Annotated[str, typer.Option(help="Address to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port to listen on.")] = 8000,
    db: Annotated[Optional[str], typer.Option(help="Run store URL: sqlite:///runs.db (default) or postgresql://... "
                                                   "[env BUDGET_SOLVER_DB].")] = None,
    workers: Annotated[Optional[int], typer.Option(help="Solves at once (0: store runs, run none).")] = None,
    queue_size: Annotated[Optional[int], typer.Option(help="Queued runs before new ones get 429.")] = None,
    time_limit: Annotated[Optional[float], typer.Option(help="Default seconds per solve route.")] = None,
    scheduler: Annotated[Optional[str], typer.Option(help="Dask scheduler (tcp://host:port) for sweeps; "
                                                          "default: a LocalCluster.")] = None,
    log_level: Annotated[str, typer.Option(help="debug, info, warning or error.")] = "info",
) -> None:
    """Run the HTTP service (API docs at /docs; see docs/http-api.md). Other limits: BUDGET_SOLVER_* variables."""
    from solver.service.config import ServiceConfig
    from solver.service.server import serve as run_server

    config = ServiceConfig.from_env(db_url=db, workers=workers, queue_size=queue_size, time_limit=time_limit,
                                    scheduler=scheduler)
    echo_err(f"budget-solver service on http://{host}:{port} (docs: /docs), run store {config.db_url.split('@')[-1]}")
    run_server(config, host, port, log_level)


@contextlib.contextmanager
def _run_store(db: Optional[str]) -> Iterator[Any]:
    """The run store at ``db`` (or BUDGET_SOLVER_DB, or the default), closed afterwards."""
    from solver.service.config import ServiceConfig
    from solver.service.store import RunStore

    store = RunStore(ServiceConfig.from_env(db_url=db).db_url)
    try:
        yield store
    finally:
        store.close()


keys_app = typer.Typer(help="API keys of the HTTP service (only their hashes are stored).", no_args_is_help=True)
app.add_typer(keys_app, name="keys")


@keys_app.command("create")
def keys_create(
    tenant: Annotated[str, typer.Option(help="Tenant the key acts for (letters, digits, '.', '_', '-').")],
    db: Annotated[Optional[str], typer.Option(help="Run store URL [env BUDGET_SOLVER_DB].")] = None,
) -> None:
    """Create an API key for TENANT and print it (the last word of the output; shown only once)."""
    with _run_store(db) as store:
        token = store.create_key(tenant)
    typer.echo(f"API key for tenant {tenant} (shown once; only its hash is stored): {token}")


@keys_app.command("revoke")
def keys_revoke(
    key_id: Annotated[str, typer.Argument(help="The 16 hex digits after 'bsk_' in the key.")],
    db: Annotated[Optional[str], typer.Option(help="Run store URL [env BUDGET_SOLVER_DB].")] = None,
) -> None:
    """Revoke an API key: requests with it answer 401 from now on."""
    with _run_store(db) as store:
        revoked = store.revoke_key(key_id)
    if not revoked:
        raise ValueError(f"key id {key_id!r}: no such active key")
    typer.echo(f"revoked key {key_id}")


@app.command()
def sweep(
    problem: Annotated[Path, typer.Argument(help="Problem file (.json, .yaml or .toml).")],
    budgets: Annotated[Optional[str], typer.Option(help="Comma-separated budgets, e.g. 400000,600000,800000; "
                                                        "default: the frontier grid (--lo, --hi, --points).")] = None,
    lo: Annotated[float, typer.Option(help="Lowest budget of the grid, as a fraction of the problem's.")] = 0.5,
    hi: Annotated[float, typer.Option(help="Highest budget of the grid, as a fraction of the problem's.")] = 1.5,
    points: Annotated[int, typer.Option(help="Budgets in the grid (the problem's own budget included).")] = 25,
    out: Annotated[Path, typer.Option("--out", "-o", help="CSV: the frontier table, one row per budget.")] = Path("sweep.csv"),
    scheduler: Annotated[Optional[str], typer.Option(help="Dask scheduler tcp://host:port; default: a LocalCluster.")] = None,
    backend: Annotated[str, typer.Option(help=f"'auto' or one of: {', '.join(backend_names())}.")] = "auto",
    time_limit: Annotated[float, typer.Option(help="Seconds for the whole solve (each route gets what is left).")] = 60.0,
) -> None:
    """The budget frontier with one Dask task per budget (the columns of `report`'s frontier table)."""
    from solver.distributed import frontier_table

    try:
        values = None if budgets is None else [float(b) for b in budgets.split(",") if b.strip()]
    except ValueError:
        raise ValueError(f"--budgets: expected comma-separated numbers, got {budgets!r}") from None
    if values is not None and (not values or min(values) <= 0):
        raise ValueError(f"--budgets: expected one or more budgets > 0, got {budgets!r}")
    table = frontier_table(Problem.read(problem), lo=lo, hi=hi, points=points, budgets=values, scheduler=scheduler,
                           backend=backend, options=SolveOptions(time_limit=time_limit))
    out.parent.mkdir(parents=True, exist_ok=True)
    table.to_csv(out, index=False)
    typer.echo(table[["budget", "status", "objective", "marginal_revenue", "binding"]].to_string(index=False))
    typer.echo(f"wrote {out}")
    raise typer.Exit(EXIT_OK if (table["status"] == "optimal").all() else EXIT_NOT_OPTIMAL)
