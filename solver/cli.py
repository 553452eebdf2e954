"""The ``budget-solver`` command line: parse, call, format. No optimization logic lives here.

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
from solver.backends import SolveOptions, backend_names
from solver.solution import Solution
from solver.status import Status

EXIT_OK, EXIT_BAD_INPUT, EXIT_INFEASIBLE, EXIT_NOT_OPTIMAL, EXIT_INTERNAL = 0, 1, 2, 3, 70

app = typer.Typer(
    help="Certified budget allocation for email marketing: fit response curves, solve, report.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)


def _echo(message: str) -> None:
    typer.echo(message, err=True)


def _exit_code(solution: Solution) -> int:
    return {Status.OPTIMAL: EXIT_OK, Status.INFEASIBLE: EXIT_INFEASIBLE}.get(solution.status, EXIT_NOT_OPTIMAL)


def write_outputs(solution: Solution, problem: Problem, out: Path) -> list[Path]:
    """Write solution.json, allocation.csv (when there is a plan) and summary.md into ``out``."""
    from solver.summary import render_summary

    out.mkdir(parents=True, exist_ok=True)
    written = [out / "solution.json"]
    solution.write(written[0])
    if solution.allocation:
        solution.allocation_frame().to_csv(out / "allocation.csv", index=False)
        written.append(out / "allocation.csv")
    (out / "summary.md").write_text(render_summary(solution, problem))
    written.append(out / "summary.md")
    return written


def _report(solution: Solution, problem: Problem, out: Path) -> int:
    from solver.summary import money, rule_readings

    written = write_outputs(solution, problem, out)
    if solution.is_optimal:
        typer.echo(f"optimal: {solution.objective_kind} {money(solution.objective or 0)} "
                   f"(proven bound {money(solution.upper_bound or 0)}, {solution.backend}, {solution.seconds:.2f} s)")
        for line in rule_readings(solution, problem):
            typer.echo(f"  {line}")
    else:
        _echo(f"{solution.status.value}: {solution.message}")
    typer.echo("wrote " + ", ".join(str(p) for p in written))
    return _exit_code(solution)


@app.command()
def optimize(
    problem: Annotated[Path, typer.Argument(help="Problem file (.json, .yaml or .toml).")],
    out: Annotated[Path, typer.Option("--out", "-o", help="Directory for solution.json, allocation.csv, summary.md.")] = Path("out"),
    backend: Annotated[str, typer.Option(help=f"'auto' or one of: {', '.join(backend_names())}.")] = "auto",
    gap_tol: Annotated[float, typer.Option(help="Relative optimality gap to prove.")] = 1e-8,
    time_limit: Annotated[float, typer.Option(help="Seconds per solve route.")] = 60.0,
) -> None:
    """Solve a problem file to a certified optimum and write the solution and a summary."""
    from solver.solve import solve

    p = Problem.read(problem)
    solution = solve(p, backend=backend, options=SolveOptions(gap_tol=gap_tol, time_limit=time_limit))
    raise typer.Exit(_report(solution, p, out))


@app.command()
def fit(
    history: Annotated[Path, typer.Argument(help="History CSV: period, category, segment, spend, revenue[, new_customers].")],
    plan: Annotated[Path, typer.Option(help="Plan file: the problem keys except cells, plus periods.")],
    out: Annotated[Path, typer.Option("--out", "-o", help="Problem file to write (JSON).")] = Path("problem.json"),
    fit_report: Annotated[Optional[Path], typer.Option(help="Also write the per-cell fit diagnostics (CSV).")] = None,
) -> None:
    """Fit a response curve per category x segment from the history and write a problem file."""
    from solver.planning import fit_problem

    typer.echo(f"fitting response curves from {history} ...", err=True)
    problem, fitted = fit_problem(history, plan)
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
    raise typer.Exit(_report(solution, problem, out))


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
            _echo(f"error: {e}")
        return EXIT_BAD_INPUT
    except typer.Abort:
        _echo("aborted")
        return 130
    except (ValueError, OSError) as e:  # ProblemError, HistoryError, FitError, PlanError, files
        _echo(f"error: {e}")
        return EXIT_BAD_INPUT
    except Exception as e:  # noqa: BLE001 - last line of defence for a CLI
        _echo(f"internal error ({type(e).__name__}): {e} -- please report it with the input files")
        return EXIT_INTERNAL
    return int(code) if isinstance(code, int) else EXIT_OK


if __name__ == "__main__":
    sys.exit(main())
