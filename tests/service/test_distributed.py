"""Dask fan-out: results identical to a serial loop, on an in-process cluster and over TCP."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
from instances import random_problem

from formulations.errors import ProblemError
from formulations.problem import Problem
from solver import SolveOptions, solve
from solver.cli import main
from solver.distributed import (
    DaskPool,
    connect,
    frontier_table,
    solve_many,
    sweep_budgets,
)
from solver.frontier import frontier_row, solve_at


def _same(a: Any, b: Any) -> bool:
    strip = lambda d: {k: v for k, v in d.items() if k != "seconds"}
    return strip(a.to_dict()) == strip(b.to_dict())


@pytest.fixture(scope="module")
def pool() -> Iterator[DaskPool]:
    with connect(processes=False, n_workers=2) as p:
        yield p


def test_solve_many_equals_the_serial_loop(pool: DaskPool) -> None:
    problems: list[Any] = [random_problem(s) for s in range(3)]
    problems.append(Problem.from_dict(random_problem(3, samples=4)))
    options = SolveOptions(time_limit=30)
    fanned = solve_many(problems, scheduler=pool, options=options)
    serial = [solve(p, options=options) for p in problems]
    assert len(fanned) == 4 and all(_same(a, b) for a, b in zip(fanned, serial))
    assert all(s.is_optimal for s in fanned)
    assert solve_many([], scheduler=pool) == []


def test_a_budget_sweep_equals_serial_solves_in_order(pool: DaskPool, tmp_path: Path) -> None:
    problem = random_problem(6)
    path = tmp_path / "p.json"
    path.write_text(json.dumps(problem))
    budgets = [4e5, 8e5, 1.2e6, 1.6e6]
    swept = sweep_budgets(path, budgets, scheduler=pool, backend="highs")
    serial = [solve(Problem.from_dict(problem).with_budget(b), backend="highs") for b in budgets]
    assert [s.budget for s in swept] == budgets
    assert all(_same(a, b) for a, b in zip(swept, serial))
    objectives = [s.objective for s in swept]
    assert objectives == sorted(objectives)  # more budget never earns less


def test_a_frontier_on_dask_equals_the_serial_frontier_rows(pool: DaskPool) -> None:
    problem = Problem.from_dict(random_problem(8))
    fanned = frontier_table(problem, points=5, scheduler=pool)
    serial = [frontier_row(*solve_at(problem, b), problem.budget) for b in fanned["budget"]]
    assert len(fanned) == 5 and problem.budget in fanned["budget"].tolist()
    rows = fanned.drop(columns="seconds").to_dict("records")
    for got, want in zip(rows, serial):
        want.pop("seconds")
        assert set(want) <= set(got)
        assert all(got[k] == v or (pd.isna(v) and pd.isna(got[k])) for k, v in want.items()), (got, want)
    assert list(fanned.columns[:16]) == list(frontier_table(problem, budgets=[], scheduler=pool).columns)


def test_a_bad_problem_is_refused_before_any_task_is_sent(pool: DaskPool) -> None:
    bad = random_problem(0)
    bad["budget"] = -1
    with pytest.raises(ProblemError, match="^budget: must be a finite number > 0"):
        solve_many([random_problem(1), bad], scheduler=pool)


def test_a_scheduler_address_over_tcp_and_the_cli(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from distributed import LocalCluster

    problem = random_problem(7)
    with LocalCluster(n_workers=1, threads_per_worker=1, processes=False, protocol="tcp://", host="127.0.0.1",
                      dashboard_address="127.0.0.1:0") as cluster:
        address = cluster.scheduler_address
        assert address.startswith("tcp://127.0.0.1:")
        swept = sweep_budgets(problem, [5e5, 1e6], scheduler=address)
        assert all(_same(a, solve({**problem, "budget": b})) for a, b in zip(swept, [5e5, 1e6]))
        path = tmp_path / "p.json"
        path.write_text(json.dumps(problem))
        capsys.readouterr()
        assert main(["sweep", str(path), "--budgets", "500000,1000000", "--scheduler", address,
                     "--out", str(tmp_path / "sweep.csv")]) == 0
    table = pd.read_csv(tmp_path / "sweep.csv")
    assert table["budget"].tolist() == [5e5, 1e6] and (table["status"] == "optimal").all()
    assert table.columns[:4].tolist() == ["budget", "factor", "status", "objective"]
    assert main(["sweep", str(path), "--budgets", "5e5,lots"]) == 1
    assert main(["sweep", str(path), "--points", "1"]) == 1


def test_the_service_sweeps_on_the_cluster_given_by_scheduler(server_factory: Any) -> None:
    from distributed import LocalCluster
    from service_helpers import new_key, wait_all

    problem, budgets = random_problem(9), [5e5, 9e5]
    with LocalCluster(n_workers=1, threads_per_worker=1, processes=False, protocol="tcp://", host="127.0.0.1",
                      dashboard_address="127.0.0.1:0") as cluster:
        server = server_factory("scheduler.db", workers=1, scheduler=cluster.scheduler_address)
        with server.client(new_key(server.db_url, "acme")) as c:
            run_id = c.post("/v1/sweeps", json={"problem": problem, "budgets": budgets}).json()["id"]
            run = wait_all(c, "/v1/sweeps", [run_id], timeout=120)[run_id]
        prefixes = set(cluster.scheduler.task_prefixes)  # what ran on this cluster
        server.stop()
    assert run["status"] == "done", run
    assert "solve_task" in prefixes, prefixes  # key prefix of solver.distributed._solve_task
    assert all(_same_dict(a, solve({**problem, "budget": b})) for a, b in zip(run["solutions"], budgets))


def _same_dict(got: dict[str, Any], want: Any) -> bool:
    strip = lambda d: {k: v for k, v in d.items() if k != "seconds"}
    return strip(got) == strip(json.loads(json.dumps(want.to_dict())))


def test_scenarios_fanned_out_equal_the_serial_table(pool: DaskPool, tmp_path: Path) -> None:
    from solver.distributed import compare_scenarios as fan_out
    from solver.scenarios import compare_scenarios

    problem = Path(__file__).resolve().parents[1] / "reports" / "sample_problem.json"
    spec = {"version": 1, "include": ["plan", "status_quo", "budget_guide"],
            "scenarios": [{"name": "lean", "budget_factor": 0.8}]}
    fanned = fan_out(problem, spec, scheduler=pool).drop(columns=["message"])
    serial = compare_scenarios(Problem.read(problem), spec).drop(columns=["message"])
    assert len(fanned) > 8 and list(fanned["scenario"]) == list(serial["scenario"])
    pd.testing.assert_frame_equal(fanned, serial)
    out, spec_file = tmp_path / "s.csv", tmp_path / "scenarios.json"
    spec_file.write_text(json.dumps(spec))
    assert main(["scenarios", str(problem), "--scenarios", str(spec_file), "--out", str(out), "--dask"]) == 0
    assert list(pd.read_csv(out)["scenario"]) == list(serial["scenario"])
