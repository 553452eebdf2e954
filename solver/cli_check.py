"""``budget-solver check PROBLEM SOLUTION``: re-check a solution file independently of the solver.

Prints one line per claim (``ok   budget row: ...`` / ``FAIL ...``), or the report as JSON with
``--json``. Exit codes: 0 every claim holds, 4 some claim fails, 1 unreadable or malformed input
(one line naming the file). See ``docs/check.md``.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Optional

import typer

from solver.cli_common import EXIT_BAD_INPUT, EXIT_OK, app, echo_err

#: Exit code when the solution file does not pass every check.
EXIT_CHECK_FAILED = 4


@app.command()
def check(
    problem: Annotated[Path, typer.Argument(help="Problem file (.json, .yaml or .toml).")],
    solution: Annotated[Path, typer.Argument(help="Solution file (solution.json, as optimize writes it).")],
    as_json: Annotated[bool, typer.Option("--json", help="Print the report as JSON.")] = False,
    gap_tol: Annotated[Optional[float], typer.Option(help="Relative gap to require of an optimal plan "
                                                          "(default: the solution's gap_tol, else 1e-8).")] = None,
    feas_tol: Annotated[Optional[float], typer.Option(help="Largest rule violation, a fraction of the budget "
                                                           "(default: the solution's feas_tol, else 1e-9).")] = None,
) -> None:
    """Re-check a solution against its problem with code independent of the solver: the plan against
    every rule, the objective on the exact curves, the bound proved by the duals, infeasibility proofs.
    Exit 0 if every claim holds, 4 if any fails, 1 for unreadable input."""
    from solver.check import CheckInputError, check_solution

    try:
        report = check_solution(problem, solution, gap_tol=gap_tol, feas_tol=feas_tol)
    except CheckInputError as e:
        where = {"problem": f"{problem}: ", "solution": f"{solution}: "}.get(e.source, "")
        echo_err(f"error: {where}{e}")
        raise typer.Exit(EXIT_BAD_INPUT) from None
    except (ValueError, OSError) as e:  # ProblemFileError names the file; OSError: unreadable
        echo_err(f"error: {e}")
        raise typer.Exit(EXIT_BAD_INPUT) from None
    if as_json:
        typer.echo(json.dumps(report.to_dict(), indent=2))
    else:
        typer.echo(report.summary())
        typer.echo(f"{'all' if report.ok else len(report.failures)} of {len(report.claims)} claims "
                   f"{'hold' if report.ok else 'fail'} ({report.status})")
    raise typer.Exit(EXIT_OK if report.ok else EXIT_CHECK_FAILED)
