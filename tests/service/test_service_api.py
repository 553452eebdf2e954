"""The HTTP service end to end, on a real uvicorn server on 127.0.0.1 with a temporary SQLite store."""

from __future__ import annotations

import json
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import pytest
from instances import random_problem
from service_helpers import Server, new_key, small_problem, wait_all
from sqlalchemy import create_engine, text

from forecasting.synthetic import generate_history
from solver import solve
from solver.cli import main
from solver.client import AuthError, InvalidInput, NotFound, SolverClient
from solver.planning import fit_problem


@pytest.fixture(scope="module")
def api(server_factory: Any) -> Server:
    return server_factory(workers=2, queue_size=200, max_body_bytes=1_048_576, max_cells=500,
                          time_limit=20, max_time_limit=30, kill_grace=0, dask_workers=1)


@pytest.fixture(scope="module")
def keys(api: Server) -> dict[str, str]:
    return {t: new_key(api.db_url, t) for t in ("acme", "globex", "pages", "load", "client")}


def _strip(solution: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in solution.items() if k != "seconds"}


def _cli_message(tmp_path: Path, body: Any, capsys: pytest.CaptureFixture[str]) -> str:
    path = tmp_path / "bad.json"
    path.write_text(json.dumps(body))
    capsys.readouterr()
    assert main(["validate", str(path)]) == 1
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: ")
    return err.removeprefix("error: ")


def test_health_docs_and_openapi(api: Server) -> None:
    health = httpx.get(api.url + "/healthz").json()
    assert health["status"] == "ok" and health["workers"] == 2
    spec = httpx.get(api.url + "/openapi.json").json()
    assert {"/v1/solves", "/v1/solves/{run_id}", "/v1/fits", "/v1/sweeps", "/healthz"} <= set(spec["paths"])
    assert spec["components"]["securitySchemes"]["HTTPBearer"]["scheme"] == "bearer"
    assert httpx.get(api.url + "/docs").status_code == 200


def test_no_key_or_a_wrong_key_is_401(api: Server, keys: dict[str, str]) -> None:
    for headers in ({}, {"Authorization": "Bearer nope"}, {"Authorization": keys["acme"]},
                    {"Authorization": "Bearer " + keys["acme"][:-1] + ("A" if keys["acme"][-1] != "A" else "B")}):
        r = httpx.get(api.url + "/v1/solves", headers=headers)
        assert r.status_code == 401, headers
        assert r.headers["WWW-Authenticate"] == "Bearer" and r.json()["detail"]
    r = httpx.post(api.url + "/v1/solves", json=small_problem(0))
    assert r.status_code == 401


def test_keys_create_prints_the_key_last_and_stores_only_its_hash(
        api: Server, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["keys", "create", "--tenant", "initech", "--db", api.db_url]) == 0
    key = capsys.readouterr().out.split()[-1]
    with api.client(key) as c:
        assert c.get("/v1/solves").status_code == 200
    engine = create_engine(api.db_url)
    with engine.connect() as conn:
        rows = [tuple(map(str, r)) for r in conn.execute(text("SELECT * FROM api_keys"))]
    engine.dispose()
    assert rows and not any(key in v or key.split("_")[-1] in v for row in rows for v in row)
    assert main(["keys", "revoke", key.split("_")[1], "--db", api.db_url]) == 0
    with api.client(key) as c:
        assert c.get("/v1/solves").status_code == 401
    assert main(["keys", "create", "--tenant", "bad name!", "--db", api.db_url]) == 1


def test_a_solve_matches_the_in_process_solve_and_can_be_reproduced(api: Server, keys: dict[str, str]) -> None:
    problem = random_problem(1)
    with api.client(keys["acme"]) as c:
        r = c.post("/v1/solves", json=problem)
        assert r.status_code == 202 and r.json()["status"] == "queued"
        run_id = r.json()["id"]
        assert r.headers["Location"] == f"/v1/solves/{run_id}"
        run = c.get(f"/v1/solves/{run_id}", params={"wait": 60}).json()
        stored_input = c.get(f"/v1/solves/{run_id}/input").json()
    assert run["status"] == "done" and run["error"] is None and run["attempts"] == 1
    assert run["created_at"] <= run["started_at"] <= run["finished_at"]
    assert run["options"] == {"backend": "auto", "time_limit": 20.0, "gap_tol": 1e-8}
    assert {"python", "numpy", "highspy", "clarabel"} <= set(run["versions"]) and run["product_version"]
    assert stored_input == problem
    expected = solve(stored_input).to_dict()
    assert _strip(run["solution"]) == _strip(expected)
    assert run["solution"]["status"] == "optimal"


def test_another_tenants_run_is_404(api: Server, keys: dict[str, str]) -> None:
    with api.client(keys["acme"]) as acme, api.client(keys["globex"]) as globex:
        run_id = acme.post("/v1/solves", json=small_problem(2)).json()["id"]
        for path in (f"/v1/solves/{run_id}", f"/v1/solves/{run_id}/input", f"/v1/fits/{run_id}"):
            r = globex.get(path)
            assert r.status_code == 404 and run_id in r.json()["detail"]
        assert run_id not in [item["id"] for item in globex.get("/v1/solves", params={"limit": 100}).json()["items"]]
        assert acme.get(f"/v1/solves/{run_id}").status_code == 200
        assert acme.get(f"/v1/fits/{run_id}").status_code == 404  # a solve is not a fit
        assert acme.get("/v1/solves/no-such-run").status_code == 404


@pytest.mark.parametrize("breakage", ["family", "budget", "cells", "unknown_key", "s_shaped", "clv_without_acq",
                                      "share_category", "version"])
def test_invalid_problems_get_422_with_the_cli_message(api: Server, keys: dict[str, str], breakage: str,
                                                        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    body = random_problem(4)
    if breakage == "family":
        body["cells"][3]["revenue"]["family"] = "quadratic"
    elif breakage == "budget":
        body["budget"] = -5
    elif breakage == "cells":
        body["cells"] = []
    elif breakage == "unknown_key":
        body["colour"] = "blue"
    elif breakage == "s_shaped":
        body["cells"][1]["revenue"] = {"family": "hill", "beta": 10.0, "kappa": 1.0, "slope": 2.5, "scale": 1000.0}
    elif breakage == "clv_without_acq":
        del body["cells"][0]["acquisitions"]
    elif breakage == "share_category":
        body["category_shares"]["nope"] = {"min": 0.1, "max": 0.2}
    elif breakage == "version":
        body["version"] = 2
    with api.client(keys["acme"]) as c:
        r = c.post("/v1/solves", json=body)
    assert r.status_code == 422
    assert r.json()["detail"] == _cli_message(tmp_path, body, capsys)


def test_malformed_bodies_options_and_limits(api: Server, keys: dict[str, str]) -> None:
    with api.client(keys["acme"]) as c:
        r = c.post("/v1/solves", content=b"{not json", headers={"content-type": "application/json"})
        assert r.status_code == 422 and r.json()["detail"].startswith("request body: not valid JSON")
        r = c.post("/v1/solves", json=[1, 2])
        assert r.status_code == 422 and "expected a JSON object" in r.json()["detail"]
        r = c.post("/v1/solves", content=b'{"version": 1, "budget": NaN, "cells": []}')
        assert r.status_code == 422 and r.json()["detail"].startswith("budget: must be a finite number")
        r = c.post("/v1/solves", json=small_problem(0), params={"time_limit": 31})
        assert r.status_code == 422 and r.json()["detail"].startswith("time_limit: must be > 0 and <= 30 s")
        r = c.post("/v1/solves", json=small_problem(0), params={"backend": "simplex"})
        assert r.status_code == 422 and r.json()["detail"].startswith("backend: unknown backend 'simplex'")
        r = c.post("/v1/solves", json=small_problem(0), params={"time_limt": 5})
        assert r.status_code == 422 and r.json()["detail"].startswith("query.time_limt: unknown query parameter")
        r = c.post("/v1/solves", json=small_problem(0), params={"gap_tol": 2})
        assert r.status_code == 422 and r.json()["detail"].startswith("query.gap_tol:")
        too_many = random_problem(0, n_categories=3, n_segments=167, shares=False, clv=False)
        r = c.post("/v1/solves", json=too_many)
        assert r.status_code == 422 and r.json()["detail"] == "cells: 501 cells exceed this service's limit of 500"
        r = c.post("/v1/solves", content=b" " * 1_500_000, headers={"content-type": "application/json"})
        assert r.status_code == 413 and "limit is 1048576 bytes" in r.json()["detail"]
        nan_target = json.dumps({"problem": small_problem(0), "targets": {"revenue": float("nan")}}).encode()
        r = c.post("/v1/reports", content=nan_target)  # JSON has no NaN: refused by path, never stored
        assert r.status_code == 422 and r.json()["detail"] == "targets.revenue: must be a finite number, got nan"
        r = c.get("/v1/solves", params={"cursor": "abc"})
        assert r.status_code == 422 and r.json()["detail"].startswith("query.cursor:")


def test_pagination_walks_every_run_once_newest_first(api: Server, keys: dict[str, str]) -> None:
    with api.client(keys["pages"]) as c:
        ids = [c.post("/v1/solves", json=small_problem(i)).json()["id"] for i in range(5)]
        seen, cursor, sizes = [], None, []
        while True:
            page = c.get("/v1/solves", params={"limit": 2} | ({"cursor": cursor} if cursor else {})).json()
            seen += [item["id"] for item in page["items"]]
            sizes.append(len(page["items"]))
            cursor = page["next_cursor"]
            if cursor is None:
                break
    assert sizes == [2, 2, 1] and seen == ids[::-1]


def test_time_limit_answers_time_limit_and_a_hard_stop(api: Server, keys: dict[str, str]) -> None:
    slow = random_problem(1, n_categories=20, n_segments=20, families=("logistic", "log"))
    with api.client(keys["acme"]) as c:
        soft = c.post("/v1/solves", json=slow, params={"time_limit": 0.5, "backend": "highs"}).json()["id"]
        hard = c.post("/v1/solves", json=random_problem(3, n_categories=10, n_segments=20),
                      params={"time_limit": 0.001, "backend": "clarabel"}).json()["id"]
        t0 = time.monotonic()
        runs = wait_all(c, "/v1/solves", [soft, hard], timeout=60)
    assert time.monotonic() - t0 < 30
    for run in runs.values():
        assert run["status"] == "done" and run["solution"]["status"] == "time_limit", run
        assert run["solution"]["message"]
    assert "hard limit" in runs[hard]["solution"]["message"] and runs[hard]["solution"]["allocation"] == []


def test_fit_returns_the_same_problem_as_the_cli_path(api: Server, keys: dict[str, str], tmp_path: Path) -> None:
    history, _ = generate_history(seed=3, months=24, noise=0.05)
    history = history[history["category"].isin(["technology", "advertising"])]
    csv_path = tmp_path / "history.csv"
    history.to_csv(csv_path, index=False)
    plan = {"version": 1, "name": "fit plan", "budget": 150_000, "periods": 3,
            "category_shares": {"technology": {"min": 0.2, "max": 0.8}}}
    expected, _ = fit_problem(csv_path, plan)
    with api.client(keys["acme"]) as c:
        run_id = c.post("/v1/fits", json={"history": csv_path.read_text(), "plan": plan}).json()["id"]
        wrong_plan = c.post("/v1/fits", json={"history": csv_path.read_text(),
                                              "plan": plan | {"segments": {"martians": {"clv": 5.0}}}}).json()["id"]
        bad = c.post("/v1/fits", json={"history": "period,category,segment,spend,revenue\n2024-01,a,s,-1,5\n",
                                       "plan": plan})
        assert bad.status_code == 422 and bad.json()["detail"].startswith("history.csv")
        bad = c.post("/v1/fits", json={"history": csv_path.read_text(), "plan": {"version": 1, "budget": 5}})
        assert bad.status_code == 422 and "periods" in bad.json()["detail"]
        runs = wait_all(c, "/v1/fits", [run_id, wrong_plan], timeout=120)
    assert runs[run_id]["status"] == "done", runs[run_id]
    assert runs[run_id]["problem"] == json.loads(json.dumps(expected.to_dict()))
    assert len(runs[run_id]["fit_report"]) == len(expected.cells)
    assert runs[wrong_plan]["status"] == "failed" and "martians" in runs[wrong_plan]["error"]


def test_a_sweep_fans_out_and_equals_serial_solves(api: Server, keys: dict[str, str]) -> None:
    problem, budgets = random_problem(5), [6e5, 1e6, 1.4e6]
    with api.client(keys["acme"]) as c:
        run_id = c.post("/v1/sweeps", json={"problem": problem, "budgets": budgets}).json()["id"]
        run = wait_all(c, "/v1/sweeps", [run_id], timeout=180)[run_id]
    assert run["status"] == "done", run
    assert run["budgets"] == budgets
    serial = [solve({**problem, "budget": b}).to_dict() for b in budgets]
    assert [_strip(s) for s in run["solutions"]] == [_strip(json.loads(json.dumps(s))) for s in serial]


def test_fifty_concurrent_clients_lose_nothing(api: Server, keys: dict[str, str]) -> None:
    errors: list[str] = []
    lock = threading.Lock()

    def one_client(i: int) -> str | None:
        try:
            with api.client(keys["load"], timeout=120) as c:
                r = c.post("/v1/solves", json=small_problem(100 + i))
                assert r.status_code == 202, r.text
                run = wait_all(c, "/v1/solves", [r.json()["id"]], timeout=150)[r.json()["id"]]
                assert run["status"] == "done" and run["solution"]["status"] == "optimal", run
                return str(run["id"])
        except Exception as e:  # noqa: BLE001 - collected and reported below
            with lock:
                errors.append(f"client {i}: {type(e).__name__}: {e}")
            return None

    with ThreadPoolExecutor(max_workers=50) as pool:
        ids = list(pool.map(one_client, range(50)))
    assert not errors, errors[:5]
    with api.client(keys["load"]) as c:
        listed = c.get("/v1/solves", params={"limit": 100}).json()
    assert len(listed["items"]) == 50 and listed["next_cursor"] is None
    assert {item["id"] for item in listed["items"]} == set(ids)
    assert all(item["status"] == "done" for item in listed["items"])


def test_python_client(api: Server, keys: dict[str, str]) -> None:
    with SolverClient(api.url, keys["client"]) as client:
        assert client.health()["status"] == "ok"
        solution = client.solve(small_problem(7))
        assert solution["status"] == "optimal"
        run_id = client.submit(small_problem(8), time_limit=5)
        assert client.wait(run_id, timeout=60)["solution"]["status"] == "optimal"
        assert client.input(run_id) == small_problem(8)
        assert [r["id"] for r in client.runs(limit=1)] == [run_id, *[r["id"] for r in list(client.runs())[1:]]]
        assert len(list(client.runs(limit=1))) == 2
        with pytest.raises(InvalidInput, match=r"^422: budget: must be a finite number > 0"):
            client.submit({"version": 1, "budget": 0, "cells": []})
        with pytest.raises(NotFound):
            client.get("nope")
    with SolverClient(api.url, "bsk_wrong") as client, pytest.raises(AuthError):
        client.submit(small_problem(0))


def test_frontier_scenarios_and_report_runs_match_the_library(api: Server, keys: dict[str, str]) -> None:
    from formulations.problem import Problem
    from solver.frontier import frontier_table
    from solver.report import build_report, records, report_dict
    from solver.scenarios import compare_scenarios

    problem = small_problem(3)
    p = Problem.from_dict(problem)
    with SolverClient(api.url, keys["client"]) as client:
        frontier = client.frontier(problem, points=3, timeout=120)
        scenarios = client.run("scenarios", {"problem": problem}, timeout=120)["scenarios"]
        report = client.run("report", {"problem": problem, "frontier_points": 3, "check": False}, timeout=120)["report"]
        with pytest.raises(InvalidInput, match="points: expected an integer"):
            client.frontier(problem, points=0)
        with pytest.raises(InvalidInput, match=r"^422: problem\.budget: must be a finite number > 0"):
            client.frontier({**problem, "budget": 0})
    drop = lambda rows: [{k: v for k, v in r.items() if k != "seconds"} for r in rows]
    assert drop(frontier) == drop(json.loads(json.dumps(records(frontier_table(p, points=3)))))
    assert scenarios == json.loads(json.dumps(records(compare_scenarios(p))))
    expected = report_dict(build_report(p, frontier_points=3, check=False))
    assert report["headline"] == expected["headline"] and set(report) == set(expected)
