"""A full queue answers 429; runs queued or running when the server is killed (-9) are not lost."""

from __future__ import annotations

import time
from typing import Any

from instances import random_problem
from service_helpers import Server, new_key, small_problem, wait_all

from solver.service.store import RunStore


def test_queue_full_then_kill9_then_restart_runs_everything(server_factory: Any) -> None:
    db = "recovery.db"
    paused = server_factory(db, workers=0, queue_size=3)
    key = new_key(paused.db_url, "acme")
    with paused.client(key) as c:
        early = [c.post("/v1/solves", json=small_problem(i)).json()["id"] for i in range(3)]
        full = c.post("/v1/solves", json=small_problem(9))
        assert full.status_code == 429 and full.headers["Retry-After"]
        assert "queue is full" in full.json()["detail"]
        assert all(c.get(f"/v1/solves/{i}").json()["status"] == "queued" for i in early)
    paused.kill9()

    # One worker, a short lease: it picks up the three queued runs, then a slow solve.
    first = server_factory(db, workers=1, lease_seconds=2)
    slow_problem = random_problem(1, n_categories=20, n_segments=20, families=("logistic", "pwl"))
    with first.client(key) as c:
        slow = c.post("/v1/solves", json=slow_problem, params={"backend": "highs", "time_limit": 3}).json()["id"]
        late = [c.post("/v1/solves", json=small_problem(10 + i)).json()["id"] for i in range(4)]
        deadline = time.monotonic() + 90
        while c.get(f"/v1/solves/{slow}").json()["status"] != "running":
            assert time.monotonic() < deadline, "the slow solve never started"
            time.sleep(0.05)
    first.kill9()

    second = server_factory(db, workers=2, lease_seconds=2)
    every = early + [slow] + late
    with second.client(key) as c:
        runs = wait_all(c, "/v1/solves", every, timeout=120)
        listed = c.get("/v1/solves", params={"limit": 100}).json()["items"]
    assert {r["id"] for r in listed} == set(every)
    for run in runs.values():
        assert run["status"] == "done" or (run["status"] == "failed" and run["error"]), run
    assert all(runs[i]["status"] == "done" and runs[i]["attempts"] == 1 for i in early)
    assert runs[slow]["status"] == "done" and runs[slow]["attempts"] == 2
    assert runs[slow]["solution"]["status"] in ("optimal", "time_limit")
    assert all(runs[i]["solution"]["status"] == "optimal" for i in early + late)
    # nothing of the killed servers lingers: their solver processes end by themselves
    assert paused.wait_group_gone(30) and first.wait_group_gone(30)


def test_a_clean_stop_queues_running_runs_again(server_factory: Any) -> None:
    db = "graceful.db"
    server: Server = server_factory(db, workers=1)
    key = new_key(server.db_url, "acme")
    slow_problem = random_problem(1, n_categories=20, n_segments=20, families=("logistic", "pwl"))
    with server.client(key) as c:
        slow = c.post("/v1/solves", json=slow_problem, params={"backend": "highs", "time_limit": 20}).json()["id"]
        deadline = time.monotonic() + 60
        while c.get(f"/v1/solves/{slow}").json()["status"] != "running":
            assert time.monotonic() < deadline
            time.sleep(0.05)
    t0 = time.monotonic()
    server.stop()
    assert time.monotonic() - t0 < 15  # the running child is killed, not waited for
    store = RunStore(server.db_url)
    run = store.get_run("acme", slow)
    store.close()
    assert run is not None and run.status == "queued" and run.attempts == 1
