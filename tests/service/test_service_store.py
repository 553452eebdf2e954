"""The run store on SQLite and on a real PostgreSQL server (started here when it is installed),
and the service end to end on PostgreSQL."""

from __future__ import annotations

import glob
import itertools
import os
import pwd
import shutil
import subprocess
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from service_helpers import free_port, new_key, small_problem, wait_all

from solver.service import auth
from solver.service.config import ServiceConfig
from solver.service.store import RunStore

_db_counter = itertools.count()


def _pg_binary(name: str) -> str | None:
    found = shutil.which(name)
    if found:
        return found
    candidates = sorted(glob.glob(f"/usr/lib/postgresql/*/bin/{name}"), key=lambda p: int(p.split("/")[4]))
    return candidates[-1] if candidates else None


@pytest.fixture(scope="module")
def postgres() -> Iterator[str]:
    """A throwaway PostgreSQL server on 127.0.0.1 (initdb + pg_ctl); yields its admin URL.

    Skipped when PostgreSQL is not installed -- except in CI (CI=true), where that is a failure:
    .ci/run installs it.
    """
    initdb, pg_ctl = _pg_binary("initdb"), _pg_binary("pg_ctl")
    if not (initdb and pg_ctl):
        if os.environ.get("CI", "").lower() in ("1", "true", "yes"):
            pytest.fail("PostgreSQL (initdb, pg_ctl) is not installed in CI; .ci/run should have installed it")
        pytest.skip("PostgreSQL is not installed (apt-get install postgresql); these tests need initdb and pg_ctl")
    base = Path(tempfile.mkdtemp(prefix="budget-solver-pg-"))
    prefix: list[str] = []
    if os.geteuid() == 0:  # initdb refuses to run as root: run the server as the postgres user
        try:
            user = pwd.getpwnam("postgres")
        except KeyError:
            pytest.fail("running as root but there is no 'postgres' user to run the server as")
        os.chown(base, user.pw_uid, user.pw_gid)
        prefix = ["runuser", "-u", "postgres", "--"]
    port = free_port()
    data, log = base / "data", base / "server.log"
    subprocess.run([*prefix, initdb, "-D", str(data), "-A", "trust", "-U", "postgres", "-E", "UTF8", "--no-sync"],
                   check=True, capture_output=True)
    started = subprocess.run([*prefix, pg_ctl, "-D", str(data), "-l", str(log), "-w", "-t", "60", "-o",
                              f"-p {port} -h 127.0.0.1 -k {base} -F -c max_connections=200", "start"],
                             capture_output=True, text=True, check=False)
    if started.returncode != 0:
        pytest.fail(f"pg_ctl start failed: {started.stdout}{started.stderr}\n{log.read_text() if log.exists() else ''}")
    try:
        yield f"postgresql://postgres@127.0.0.1:{port}/postgres"
    finally:
        subprocess.run([*prefix, pg_ctl, "-D", str(data), "-m", "immediate", "stop"], capture_output=True, check=False)
        shutil.rmtree(base, ignore_errors=True)


def _fresh_postgres_db(admin_url: str) -> str:
    import psycopg

    name = f"runs_{os.getpid()}_{next(_db_counter)}"
    with psycopg.connect(admin_url, autocommit=True) as conn:
        conn.execute(f"CREATE DATABASE {name}")
    return admin_url.rsplit("/", 1)[0] + "/" + name


@pytest.fixture(params=["sqlite", "postgresql"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[RunStore]:
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path / 'runs.db'}"
    else:
        url = _fresh_postgres_db(request.getfixturevalue("postgres"))
    s = RunStore(url)
    yield s
    s.close()


def _submit(store: RunStore, tenant: str = "acme", n: int = 1) -> list[str]:
    return [store.create_run(tenant, "solve", small_problem(i), {"backend": "auto"}, {"numpy": "x"}, "0.1").id
            for i in range(n)]


def test_keys_are_stored_hashed_and_checked(store: RunStore) -> None:
    token = store.create_key("acme")
    key_id, secret = auth.parse_key(token) or ("", "")
    assert store.tenant_for(token) == "acme"
    assert store.tenant_for(f"bsk_{key_id}_{'x' * 43}") is None and store.tenant_for("garbage") is None
    with store.engine.connect() as conn:
        row = conn.exec_driver_sql("SELECT key_id, tenant, secret_hash FROM api_keys").one()
    assert row[2] == auth.hash_secret(secret) and secret not in "".join(map(str, row))
    assert store.revoke_key(key_id) and store.tenant_for(token) is None and not store.revoke_key(key_id)
    with pytest.raises(ValueError, match="tenant"):
        store.create_key("no spaces please")


def test_runs_keep_input_options_versions_and_are_isolated(store: RunStore) -> None:
    (run_id,) = _submit(store)
    run = store.get_run("acme", run_id, with_input=True)
    assert run is not None and run.status == "queued" and run.input == small_problem(0)
    assert run.options == {"backend": "auto"} and run.versions == {"numpy": "x"} and run.product_version == "0.1"
    assert store.get_run("globex", run_id) is None and store.get_run("acme", run_id, "fit") is None
    with pytest.raises(ValueError):
        store.create_run("acme", "solve", {"budget": float("nan")}, {}, {}, "0.1")


def test_each_queued_run_is_claimed_exactly_once_by_concurrent_dispatchers(store: RunStore) -> None:
    ids = _submit(store, n=30)
    claimed: list[str] = []
    lock = threading.Lock()

    def dispatcher(k: int) -> None:
        while (run := store.claim_next(f"server-{k}", lease_seconds=30)) is not None:
            assert store.finish(run.id, f"server-{k}", {"ok": k})
            with lock:
                claimed.append(run.id)

    threads = [threading.Thread(target=dispatcher, args=(k,)) for k in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(claimed) == sorted(ids)
    assert store.count("done") == 30 and store.count("queued") == 0


def test_expired_leases_are_requeued_then_failed_with_the_reason(store: RunStore) -> None:
    (run_id,) = _submit(store)
    for attempt in (1, 2):
        run = store.claim_next("dead-server", lease_seconds=0.05)
        assert run is not None and run.attempts == attempt
        time.sleep(0.1)
        assert store.reap_expired(max_attempts=3) == ([run_id], [])
    run = store.claim_next("dead-server", lease_seconds=0.05)
    assert run is not None and run.attempts == 3
    assert not store.finish(run_id, "another-server", {})  # only the owner may finish it
    time.sleep(0.1)
    assert store.reap_expired(max_attempts=3) == ([], [run_id])
    failed = store.get_run("acme", run_id)
    assert failed is not None and failed.status == "failed" and "interrupted" in (failed.error or "")
    assert not store.finish(run_id, "dead-server", {})  # a late answer does not resurrect it
    (other,) = _submit(store)
    assert store.claim_next("live", lease_seconds=30) is not None
    assert store.renew_leases("live", 30) == 1 and store.reap_expired(2) == ([], [])
    assert store.release("live") == 1 and store.get_run("acme", other).status == "queued"  # type: ignore[union-attr]


def test_listing_is_newest_first_with_keyset_pages(store: RunStore) -> None:
    ids = _submit(store, n=5)
    _submit(store, tenant="globex", n=2)
    first = store.list_runs("acme", "solve", 3)
    rest = store.list_runs("acme", "solve", 3, before=first[-1].seq)
    assert [r.id for r in first + rest] == ids[::-1]
    assert first[0].input is None and first[0].output is None  # listings load no payloads


def test_the_service_runs_on_postgresql(postgres: str, server_factory: Any) -> None:
    url = _fresh_postgres_db(postgres)
    server = server_factory(db_url=url, workers=2)
    key = new_key(url, "acme")
    with server.client(key) as c:
        ids = [c.post("/v1/solves", json=small_problem(i)).json()["id"] for i in range(4)]
        runs = wait_all(c, "/v1/solves", ids, timeout=120)
    assert all(r["status"] == "done" and r["solution"]["status"] == "optimal" for r in runs.values())
    with server.client(new_key(url, "globex")) as c:
        assert c.get(f"/v1/solves/{ids[0]}").status_code == 404


def test_config_reads_the_environment_and_refuses_nonsense() -> None:
    cfg = ServiceConfig.from_env({"BUDGET_SOLVER_DB": "postgres://u@h/db", "BUDGET_SOLVER_WORKERS": "0",
                                  "BUDGET_SOLVER_TIME_LIMIT": "2.5"}, queue_size=4)
    assert (cfg.db_url, cfg.workers, cfg.time_limit, cfg.queue_size) == ("postgresql+psycopg://u@h/db", 0, 2.5, 4)
    assert cfg.hard_limit(2.5) == 5.0 + cfg.kill_grace
    with pytest.raises(ValueError, match="queue_size"):
        ServiceConfig(queue_size=0)
    with pytest.raises(ValueError, match="BUDGET_SOLVER_TIME_LIMIT"):
        ServiceConfig.from_env({"BUDGET_SOLVER_TIME_LIMIT": "soon"})
