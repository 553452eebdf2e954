"""What every ``budget-solver`` command shares: the Typer app, exit codes, and writing a solution.

Exit codes: 0 optimal (or success), 1 bad input (the message names the file, row or key),
2 infeasible, 3 not proven optimal (time limit or solver error), 70 unexpected internal error.
"""

from __future__ import annotations

from pathlib import Path

import typer

from formulations.problem import Problem
from solver.solution import Solution
from solver.status import Status

EXIT_OK, EXIT_BAD_INPUT, EXIT_INFEASIBLE, EXIT_NOT_OPTIMAL, EXIT_INTERNAL = 0, 1, 2, 3, 70

app = typer.Typer(
    help="Certified budget allocation for email marketing: fit response curves, solve, report.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)


def echo_err(message: str) -> None:
    """One line on stderr."""
    typer.echo(message, err=True)


def exit_code(solution: Solution) -> int:
    """The process exit code for a solve's status."""
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


def report_solution(solution: Solution, problem: Problem, out: Path) -> int:
    """Write the solution files, print the headline and the rule readings; return the exit code."""
    from solver.summary import money, rule_readings

    written = write_outputs(solution, problem, out)
    if solution.is_optimal:
        typer.echo(f"optimal: {solution.objective_kind} {money(solution.objective or 0)} "
                   f"(proven bound {money(solution.upper_bound or 0)}, {solution.backend}, {solution.seconds:.2f} s)")
        for line in rule_readings(solution, problem):
            typer.echo(f"  {line}")
    else:
        prefix = f"{solution.status.value}: "
        echo_err(solution.message if solution.message.startswith(prefix) else prefix + solution.message)
    typer.echo("wrote " + ", ".join(str(p) for p in written))
    return exit_code(solution)


