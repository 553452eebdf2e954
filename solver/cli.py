"""The ``budget-solver`` command line: parse, call, format. No optimization logic lives here.

Core commands live here; ``solver.cli_reports`` and ``solver.cli_service`` add theirs to the same app.

Exit codes: 0 optimal (or success), 1 bad input (the message names the file, row or key),
2 infeasible, 3 not proven optimal (time limit or solver error), 70 unexpected internal error.
"""

from __future__ import annotations

import sys
from importlib import resources
from pathlib import Path
from typing import Annotated, Optional

import typer

from formulations.problem import Problem
from solver import cli_reports, cli_service  # noqa: F401 - they register their commands on app
from solver import cli_check  # noqa: F401 - registers `check` on app
from solver.backends import SolveOptions, backend_names
from solver.cli_common import EXIT_BAD_INPUT, EXIT_INTERNAL, EXIT_OK, app, echo_err, report_solution
from solver.cli_reports import write_full_report


@app.command()
def optimize(
    problem: Annotated[Path, typer.Argument(help="Problem file (.json, .yaml or .toml).")],
    out: Annotated[Path, typer.Option("--out", "-o", help="Directory for solution.json, allocation.csv, summary.md.")] = Path("out"),
    backend: Annotated[str, typer.Option(help=f"'auto' or one of: {', '.join(backend_names())}.")] = "auto",
    gap_tol: Annotated[float, typer.Option(help="Relative optimality gap to prove.")] = 1e-8,
    time_limit: Annotated[float, typer.Option(help="Seconds for the whole solve (each route gets what is left).")] = 60.0,
    cvar_alpha: Annotated[Optional[float], typer.Option(
        "--cvar-alpha", help="Risk-aware: maximize the mean objective of the worst ALPHA fraction (0 < ALPHA "
                             "<= 1) of the curves' posterior samples (CVaR) instead of the mean.")] = None,
) -> None:
    """Solve a problem file to a certified optimum and write the solution and a summary."""
    from solver.risk import solve_cvar
    from solver.solve import solve

    p = Problem.read(problem)
    options = SolveOptions(gap_tol=gap_tol, time_limit=time_limit)
    if cvar_alpha is None:
        solution = solve(p, backend=backend, options=options)
    else:
        solution = solve_cvar(p, cvar_alpha, options=options)
    raise typer.Exit(report_solution(solution, p, out))


@app.command()
def fit(
    history: Annotated[Path, typer.Argument(help="History CSV: period, category, segment, spend, revenue[, new_customers].")],
    plan: Annotated[Path, typer.Option(help="Plan file: the problem keys except cells, plus periods.")],
    out: Annotated[Path, typer.Option("--out", "-o", help="Problem file to write (JSON).")] = Path("problem.json"),
    fit_report: Annotated[Optional[Path], typer.Option(help="Also write the per-cell fit diagnostics (CSV).")] = None,
    combine: Annotated[str, typer.Option(help="'average': families weighted by held-out error (a concave pwl "
                                              "curve); 'select': the single best family.")] = "average",
    nonparametric: Annotated[str, typer.Option(help="Comma-separated nonparametric routes to try where they beat the "
                                                    "families on held-out error: isotonic, lightgbm.")] = "",
    carryover: Annotated[str, typer.Option(help="Geometric carry-over of spend in [0, 1), or 'auto' (chosen by "
                                                "held-out error).")] = "0",
    bootstrap: Annotated[int, typer.Option(help="Block-bootstrap resamples per curve: with --combine select, "
                                                "written as posterior-sample curves (for optimize --cvar-alpha); "
                                                "with average, the curve is their mean. 0: the point fit.",
                                                min=0)] = 0,
    seed: Annotated[int, typer.Option(help="Random seed (bootstrap, LightGBM).")] = 0,
) -> None:
    """Fit a response curve per category x segment from the history and write a problem file."""
    from solver.planning import fit_problem

    try:
        carry: float | str = carryover if carryover == "auto" else float(carryover)
    except ValueError:
        raise ValueError(f"--carryover: expected a number in [0, 1) or 'auto', got {carryover!r}") from None
    routes = tuple(r.strip() for r in nonparametric.split(",") if r.strip())
    typer.echo(f"fitting response curves from {history} ...", err=True)
    problem, fitted = fit_problem(history, plan, combine=combine, nonparametric=routes, carryover=carry,
                                  bootstrap=bootstrap, seed=seed)
    out.parent.mkdir(parents=True, exist_ok=True)
    problem.write(out)
    if fit_report is not None:
        fitted.table().to_csv(fit_report, index=False)
    typer.echo(f"fitted {len(fitted)} cells in {fitted.seconds:.1f} s; wrote {out}"
               + (f" and {fit_report}" if fit_report else ""))


@app.command()
def demo(
    out: Annotated[Path, typer.Option("--out", "-o", help="Directory for every output of the demo.")] = Path("demo-output"),
) -> None:
    """The quarterly solve on the bundled sample data: fit -> problem.json -> solve -> report."""
    from solver.planning import fit_problem
    from solver.solve import solve

    data = resources.files("solver") / "sample_data"
    history, plan = Path(str(data / "email_history.csv")), Path(str(data / "plan.json"))
    out.mkdir(parents=True, exist_ok=True)
    typer.echo(f"1/3 fitting curves from {history.name} (36 months x 30 cells) ...")
    problem, fitted = fit_problem(history, plan)
    problem.write(out / "problem.json")
    fitted.table().to_csv(out / "fit_report.csv", index=False)
    typer.echo(f"    fitted {len(fitted)} cells in {fitted.seconds:.1f} s -> {out / 'problem.json'}")
    typer.echo(f"2/3 solving '{problem.name}' ...")
    solution = solve(problem)
    typer.echo("3/3 writing the report ...")
    code = report_solution(solution, problem, out)
    if solution.is_optimal:
        raise typer.Exit(write_full_report(problem, solution, out, None, {}, 25, (0.5, 1.5), True, "auto", None, code,
                                           fitted))
    raise typer.Exit(code)


@app.command()
def validate(problem: Annotated[Path, typer.Argument(help="Problem file to check.")]) -> None:
    """Check a problem file without solving it."""
    p = Problem.read(problem)
    typer.echo(f"ok: {len(p.cells)} cells, {len(p.categories)} categories, {len(p.segment_names)} segments, "
               f"budget {p.budget:,.2f} ({p.budget_mode.value}), {len(p.category_shares)} share rules, "
               f"{sum(1 for r in p.segments.values() if r.min_clv_cac_ratio)} CLV/CAC rules")


def main(argv: list[str] | None = None) -> int:
    """Console entry point: one readable line on error, never a traceback."""
    try:
        code = app(args=argv, standalone_mode=False)
    except typer.Exit as e:
        return int(e.exit_code or 0)
    except typer.TyperException as e:  # usage errors: show the parser's own message
        show = getattr(e, "show", None)
        if callable(show):
            show()
        else:
            echo_err(f"error: {e}")
        return EXIT_BAD_INPUT
    except typer.Abort:
        echo_err("aborted")
        return 130
    except (ValueError, OSError) as e:  # ProblemError, HistoryError, FitError, PlanError, files
        echo_err(f"error: {e}")
        return EXIT_BAD_INPUT
    except Exception as e:  # noqa: BLE001 - last line of defence for a CLI
        echo_err(f"internal error ({type(e).__name__}): {e} -- please report it with the input files")
        return EXIT_INTERNAL
    return int(code) if isinstance(code, int) else EXIT_OK


if __name__ == "__main__":
    sys.exit(main())
