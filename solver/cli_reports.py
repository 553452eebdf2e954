"""``budget-solver report``, ``frontier`` and ``scenarios``: reports from the same model."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any, Optional

import typer

from formulations.problem import Problem
from solver.backends import SolveOptions, backend_names
from solver.cli_common import EXIT_BAD_INPUT, EXIT_NOT_OPTIMAL, EXIT_OK, app, echo_err, report_solution
from solver.solution import Solution

def write_full_report(problem: Problem, solution: Solution, out: Path, scenarios: Optional[Path],
                       targets: dict[str, float], points: int, span: tuple[float, float], check: bool,
                       backend: str, options: Optional[SolveOptions], code: int, fit: Any = None) -> int:
    """Build and write report.html/.xlsx/.json (``fit``: the curves' FitResult, for the fit report)."""
    from solver.report import build_report, write_report

    try:
        import openpyxl  # noqa: F401
        import plotly  # noqa: F401
    except ModuleNotFoundError as e:
        echo_err(f"error: the report needs {e.name}: pip install 'budget-solver[report]'")
        return EXIT_BAD_INPUT
    report = build_report(problem, solution, scenarios=scenarios, frontier_points=points, frontier_range=span,
                          check=check, targets=targets, options=options, backend=backend,
                          progress=lambda stage: typer.echo(f"    report: {stage} ...", err=True), fit=fit)
    typer.echo("wrote " + ", ".join(str(p) for p in write_report(report, out))
               + f" ({sum(report.seconds.values()):.1f} s)")
    return code


@app.command()
def report(
    problem: Annotated[Path, typer.Argument(help="Problem file (.json, .yaml or .toml).")],
    out: Annotated[Path, typer.Option("--out", "-o", help="Directory for report.html/.xlsx/.json and the solution.")] = Path("report"),
    scenarios: Annotated[Optional[Path], typer.Option(help="Scenarios file (docs/scenarios.md); default: the built-ins.")] = None,
    points: Annotated[int, typer.Option(help="Budget frontier points.")] = 25,
    low: Annotated[float, typer.Option(help="Frontier start, as a fraction of the budget.")] = 0.5,
    high: Annotated[float, typer.Option(help="Frontier end, as a fraction of the budget.")] = 1.5,
    checks: Annotated[bool, typer.Option(help="Re-solve each binding rule (exact costs, dual checks).")] = True,
    revenue_target: Annotated[Optional[float], typer.Option(help="Also find the least budget reaching this revenue.")] = None,
    customers_target: Annotated[Optional[float], typer.Option(help="Also find the least budget reaching this many new customers.")] = None,
    marginal_target: Annotated[Optional[float], typer.Option(help="Also find the largest budget whose next dollar earns at least this.")] = None,
    roi_floor: Annotated[Optional[float], typer.Option(help="Also find the most revenue with revenue >= this x spend.")] = None,
    backend: Annotated[str, typer.Option(help=f"'auto' or one of: {', '.join(backend_names())}.")] = "auto",
    time_limit: Annotated[float, typer.Option(help="Seconds for the whole solve (each route gets what is left).")] = 60.0,
) -> None:
    """Solve, then write the full report (sensitivity, frontier, targets, scenarios, recommendations)."""
    from solver.solve import solve

    p = Problem.read(problem)
    options = SolveOptions(time_limit=time_limit)
    solution = solve(p, backend=backend, options=options)
    code = report_solution(solution, p, out)
    targets = {k: v for k, v in (("revenue", revenue_target), ("new_customers", customers_target),
                                 ("marginal_return", marginal_target), ("roi_floor", roi_floor)) if v is not None}
    raise typer.Exit(write_full_report(p, solution, out, scenarios, targets, points, (low, high), checks, backend,
                                        options, code))


@app.command()
def frontier(
    problem: Annotated[Path, typer.Argument(help="Problem file (.json, .yaml or .toml).")],
    out: Annotated[Path, typer.Option("--out", "-o", help="CSV: one row per budget.")] = Path("frontier.csv"),
    points: Annotated[int, typer.Option(help="Number of budgets.")] = 25,
    low: Annotated[float, typer.Option(help="First budget, as a fraction of the problem's.")] = 0.5,
    high: Annotated[float, typer.Option(help="Last budget, as a fraction of the problem's.")] = 1.5,
    backend: Annotated[str, typer.Option(help=f"'auto' or one of: {', '.join(backend_names())}.")] = "auto",
    time_limit: Annotated[float, typer.Option(help="Seconds for the whole solve (each route gets what is left).")] = 60.0,
) -> None:
    """Optimal revenue, profit, new customers and CAC per segment across budgets, and the budget
    at which the next dollar earns $1 (exit 3 if a point was neither optimal nor infeasible)."""
    from solver.formatting import money, rate
    from solver.frontier import frontier_table, marginal_bracket
    from solver.targets import profit_maximizing_budget

    p = Problem.read(problem)
    options = SolveOptions(time_limit=time_limit)
    table = frontier_table(p, lo=low, hi=high, points=points, options=options, backend=backend)
    out.parent.mkdir(parents=True, exist_ok=True)
    table.to_csv(out, index=False)
    for row in table.itertuples():
        shown = f"{money(row.revenue)}  next dollar {rate(row.marginal_revenue)}" if row.status == "optimal" else row.message
        typer.echo(f"{money(row.budget):>14}  {row.status:<10} {shown}")
    best = profit_maximizing_budget(p, start=marginal_bracket(table, 1.0), options=options, backend=backend)
    if best.status == "found":
        typer.echo(f"the next dollar earns $1 of revenue at a budget of {money(best.budget)}")
    typer.echo(f"wrote {out}")
    raise typer.Exit(EXIT_OK if table["status"].isin(["optimal", "infeasible"]).all() else EXIT_NOT_OPTIMAL)


@app.command("scenarios")
def scenarios_command(
    problem: Annotated[Path, typer.Argument(help="Problem file (.json, .yaml or .toml).")],
    scenarios: Annotated[Optional[Path], typer.Option(help="Scenarios file (docs/scenarios.md); default: the built-ins.")] = None,
    out: Annotated[Path, typer.Option("--out", "-o", help="CSV: the comparison table.")] = Path("scenarios.csv"),
    backend: Annotated[str, typer.Option(help=f"'auto' or one of: {', '.join(backend_names())}.")] = "auto",
    time_limit: Annotated[float, typer.Option(help="Seconds for the whole solve (each route gets what is left).")] = 60.0,
    dask: Annotated[bool, typer.Option("--dask", help="Fan the scenarios' solves out over Dask (a LocalCluster "
                                                      "unless --scheduler is given).")] = False,
    scheduler: Annotated[Optional[str], typer.Option(help="Dask scheduler tcp://host:port (implies --dask).")] = None,
) -> None:
    """Evaluate named scenarios (plan, status quo, budget-guide mixes, your own) and compare them.
    Infeasible scenarios are rows of the table, not errors (exit 0)."""
    from solver.formatting import money

    options = SolveOptions(time_limit=time_limit)
    if dask or scheduler:
        from solver.distributed import compare_scenarios as fan_out

        table = fan_out(Problem.read(problem), scenarios, scheduler=scheduler, options=options, backend=backend)
    else:
        from solver.scenarios import compare_scenarios

        table = compare_scenarios(Problem.read(problem), scenarios, options=options, backend=backend)
    out.parent.mkdir(parents=True, exist_ok=True)
    table.to_csv(out, index=False)
    for row in table.itertuples():
        shown = money(row.revenue) if row.revenue == row.revenue else row.message
        typer.echo(f"{row.scenario:<36} {row.status:<10} {shown}")
    typer.echo(f"wrote {out}")


