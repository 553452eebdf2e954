"""The durable run store (SQLAlchemy Core): API keys and runs, on a SQLite file or PostgreSQL.

Every state change of a run is one committed statement, so a server killed at any moment loses
nothing: a run is ``queued`` from the moment its submission is answered, ``running`` while a
server holds its *lease* (renewed every few seconds), and ``done`` (with its output) or
``failed`` (with the reason) at the end. A run whose lease has expired -- its server died -- is
queued again by :meth:`RunStore.reap_expired`, or failed with the reason once it has been
started ``max_attempts`` times. Runs are claimed with a conditional ``UPDATE ... WHERE status =
'queued'``, so several servers can share one PostgreSQL store without running a run twice.

Each run keeps its input (the request body as JSON), its options, the product and solver
versions, its timings (epoch seconds), and its output, so any past solve can be reproduced.

SQLite files are opened in WAL mode with ``synchronous=FULL`` and a 30 s busy timeout; a
``postgresql://`` URL is served by psycopg 3.

Examples
--------
>>> store = RunStore("sqlite://")
>>> token = store.create_key("acme")
>>> store.tenant_for(token), store.tenant_for(token + "x")
('acme', None)
>>> run = store.create_run("acme", "solve", {"version": 1}, {"backend": "auto"}, {"numpy": "2"}, "0.1.0")
>>> claimed = store.claim_next("server-1", lease_seconds=30)
>>> claimed.id == run.id, claimed.status, claimed.attempts, claimed.input
(True, 'running', 1, {'version': 1})
>>> store.finish(run.id, "server-1", {"status": "optimal"}), store.get_run("acme", run.id).output
(True, {'status': 'optimal'})
>>> store.get_run("other-tenant", run.id) is None
True
"""

from __future__ import annotations

import json
import time
import uuid
from dataclasses import dataclass
from typing import Any

from sqlalchemy import (
    BigInteger,
    Column,
    Double,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    create_engine,
    event,
    func,
    select,
    update,
)
from sqlalchemy.engine import Engine, RowMapping
from sqlalchemy.pool import StaticPool

from solver.service import auth
from solver.service.config import normalize_db_url

QUEUED, RUNNING, DONE, FAILED = "queued", "running", "done", "failed"
FINAL = frozenset({DONE, FAILED})

metadata = MetaData()

api_keys = Table(
    "api_keys", metadata,
    Column("key_id", String(16), primary_key=True),
    Column("tenant", String(100), nullable=False, index=True),
    Column("secret_hash", String(64), nullable=False),
    Column("created_at", Double, nullable=False),
    Column("revoked_at", Double, nullable=True),
)

runs = Table(
    "runs", metadata,
    Column("seq", BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=True),
    Column("id", String(36), nullable=False, unique=True),
    Column("tenant", String(100), nullable=False),
    Column("kind", String(20), nullable=False),
    Column("status", String(10), nullable=False),
    Column("input", Text, nullable=False),
    Column("options", Text, nullable=False),
    Column("output", Text, nullable=True),
    Column("error", Text, nullable=True),
    Column("attempts", Integer, nullable=False, default=0),
    Column("owner", String(64), nullable=True),
    Column("lease_until", Double, nullable=True),
    Column("product_version", String(64), nullable=False),
    Column("versions", Text, nullable=False),
    Column("created_at", Double, nullable=False),
    Column("started_at", Double, nullable=True),
    Column("finished_at", Double, nullable=True),
    Index("ix_runs_tenant_kind_seq", "tenant", "kind", "seq"),
    Index("ix_runs_status_seq", "status", "seq"),
)

_SUMMARY = [runs.c[n] for n in ("seq", "id", "tenant", "kind", "status", "attempts", "error",
                                "created_at", "started_at", "finished_at")]


@dataclass(frozen=True)
class RunRecord:
    """A run as stored. ``input``, ``output``, ``options`` and ``versions`` are parsed JSON and
    are None when the query did not load them (listings)."""

    id: str
    seq: int
    tenant: str
    kind: str
    status: str
    attempts: int
    error: str | None
    created_at: float
    started_at: float | None
    finished_at: float | None
    options: dict[str, Any] | None = None
    versions: dict[str, Any] | None = None
    product_version: str = ""
    input: Any = None
    output: Any = None

    @property
    def is_final(self) -> bool:
        return self.status in FINAL


def dumps(value: Any) -> str:
    """Compact JSON; ValueError for NaN or infinity (they are not JSON)."""
    return json.dumps(value, allow_nan=False, separators=(",", ":"))


def make_engine(url: str) -> Engine:
    """An engine for ``url``; SQLite gets WAL, synchronous=FULL and a busy timeout."""
    url = normalize_db_url(url)
    if not url.startswith("sqlite"):
        return create_engine(url, pool_pre_ping=True, pool_size=10, max_overflow=20)
    memory = url in ("sqlite://", "sqlite:///:memory:")
    engine = create_engine(url, connect_args={"timeout": 30, "check_same_thread": False},
                           **({"poolclass": StaticPool} if memory else {"pool_size": 10, "max_overflow": 20}))

    @event.listens_for(engine, "connect")
    def _pragmas(dbapi_conn: Any, _record: Any) -> None:
        cur = dbapi_conn.cursor()
        if not memory:
            cur.execute("PRAGMA journal_mode=WAL")
        cur.execute("PRAGMA synchronous=FULL")
        cur.execute("PRAGMA busy_timeout=30000")
        cur.close()

    return engine


class RunStore:
    """Keys and runs in one database (tables are created if missing)."""

    def __init__(self, url: str) -> None:
        self.url = normalize_db_url(url)
        self.engine = make_engine(self.url)
        metadata.create_all(self.engine)

    def close(self) -> None:
        self.engine.dispose()

    # --- keys -------------------------------------------------------------------------------
    def create_key(self, tenant: str) -> str:
        """Store a new key for ``tenant`` (hash only) and return the full key, shown once."""
        key = auth.new_key()
        with self.engine.begin() as conn:
            conn.execute(api_keys.insert().values(key_id=key.key_id, tenant=auth.check_tenant_name(tenant),
                                                  secret_hash=key.secret_hash, created_at=time.time()))
        return key.token

    def revoke_key(self, key_id: str) -> bool:
        """Revoke a key by its id (the 16 hex digits after ``bsk_``); False if there is none."""
        with self.engine.begin() as conn:
            res = conn.execute(update(api_keys).where(api_keys.c.key_id == key_id, api_keys.c.revoked_at.is_(None))
                               .values(revoked_at=time.time()))
        return res.rowcount == 1

    def tenant_for(self, token: str) -> str | None:
        """The tenant of a valid, unrevoked key, else None (constant-time digest comparison)."""
        parsed = auth.parse_key(token)
        if parsed is None:
            auth.matches("-", None)
            return None
        key_id, secret = parsed
        with self.engine.connect() as conn:
            row = conn.execute(select(api_keys.c.tenant, api_keys.c.secret_hash)
                               .where(api_keys.c.key_id == key_id, api_keys.c.revoked_at.is_(None))).first()
        return row.tenant if auth.matches(secret, row.secret_hash if row else None) and row else None

    # --- runs -------------------------------------------------------------------------------
    def create_run(self, tenant: str, kind: str, input: Any, options: dict[str, Any],
                   versions: dict[str, Any], product_version: str) -> RunRecord:
        """Insert a queued run; ValueError if ``input`` is not finite JSON."""
        values = dict(id=str(uuid.uuid4()), tenant=tenant, kind=kind, status=QUEUED, input=dumps(input),
                      options=dumps(options), attempts=0, product_version=product_version,
                      versions=dumps(versions), created_at=time.time())
        with self.engine.begin() as conn:
            conn.execute(runs.insert().values(**values))
        return self._get(runs.c.id == values["id"], full=False)  # type: ignore[return-value]

    def get_run(self, tenant: str, run_id: str, kind: str | None = None, *, with_input: bool = False) -> RunRecord | None:
        """The tenant's run ``run_id`` (of ``kind`` if given) with its output, or None."""
        cond = (runs.c.id == run_id) & (runs.c.tenant == tenant)
        if kind is not None:
            cond &= runs.c.kind == kind
        return self._get(cond, full=True, with_input=with_input)

    def list_runs(self, tenant: str, kind: str, limit: int, before: int | None = None) -> list[RunRecord]:
        """The tenant's runs of ``kind``, newest first, ``limit`` at most, older than seq ``before``."""
        q = select(*_SUMMARY).where(runs.c.tenant == tenant, runs.c.kind == kind)
        if before is not None:
            q = q.where(runs.c.seq < before)
        with self.engine.connect() as conn:
            rows = conn.execute(q.order_by(runs.c.seq.desc()).limit(limit)).mappings().all()
        return [_record(r) for r in rows]

    def count(self, status: str) -> int:
        """How many runs (all tenants) have ``status``."""
        with self.engine.connect() as conn:
            return int(conn.execute(select(func.count()).select_from(runs).where(runs.c.status == status)).scalar_one())

    def claim_next(self, owner: str, lease_seconds: float) -> RunRecord | None:
        """Atomically move the oldest queued run to ``running`` under ``owner``; None if none is queued.

        The returned record has its input loaded and ``attempts`` counts this start.
        """
        for _ in range(4):
            with self.engine.connect() as conn:
                ids = conn.execute(select(runs.c.id).where(runs.c.status == QUEUED)
                                   .order_by(runs.c.seq).limit(8)).scalars().all()
            if not ids:
                return None
            for run_id in ids:
                now = time.time()
                with self.engine.begin() as conn:
                    res = conn.execute(update(runs).where(runs.c.id == run_id, runs.c.status == QUEUED).values(
                        status=RUNNING, owner=owner, lease_until=now + lease_seconds, started_at=now,
                        attempts=runs.c.attempts + 1, error=None))
                if res.rowcount == 1:
                    return self._get(runs.c.id == run_id, full=True, with_input=True)
        return None

    def renew_leases(self, owner: str, lease_seconds: float) -> int:
        """Extend the lease of every run ``owner`` is running; returns how many."""
        with self.engine.begin() as conn:
            res = conn.execute(update(runs).where(runs.c.owner == owner, runs.c.status == RUNNING)
                               .values(lease_until=time.time() + lease_seconds))
        return res.rowcount

    def finish(self, run_id: str, owner: str, output: Any) -> bool:
        """Record the output of a run ``owner`` is running; False if it lost the run meanwhile."""
        return self._end(run_id, owner, DONE, output=dumps(output))

    def fail(self, run_id: str, error: str, owner: str | None = None) -> bool:
        """Mark the run failed with ``error`` (only if ``owner`` still holds it, when given)."""
        return self._end(run_id, owner, FAILED, error=error)

    def release(self, owner: str) -> int:
        """Queue again the runs ``owner`` is running (a server stopping cleanly); returns how many."""
        with self.engine.begin() as conn:
            res = conn.execute(update(runs).where(runs.c.owner == owner, runs.c.status == RUNNING)
                               .values(status=QUEUED, owner=None, lease_until=None))
        return res.rowcount

    def reap_expired(self, max_attempts: int) -> tuple[list[str], list[str]]:
        """Requeue running runs whose lease expired, failing those started ``max_attempts`` times.

        Returns ``(requeued ids, failed ids)``.
        """
        now = time.time()
        with self.engine.connect() as conn:
            rows = conn.execute(select(runs.c.id, runs.c.attempts)
                                .where(runs.c.status == RUNNING, runs.c.lease_until < now)).all()
        requeued, failed = [], []
        for run_id, attempts in rows:
            expired = (runs.c.id == run_id) & (runs.c.status == RUNNING) & (runs.c.lease_until < now)
            with self.engine.begin() as conn:
                if attempts >= max_attempts:
                    reason = (f"interrupted: the server running it stopped {attempts} times (the limit is "
                              f"{max_attempts}); not started again -- resubmit it if it should run")
                    res = conn.execute(update(runs).where(expired).values(
                        status=FAILED, error=reason, owner=None, lease_until=None, finished_at=now))
                    (failed if res.rowcount else []).append(run_id)
                else:
                    res = conn.execute(update(runs).where(expired).values(status=QUEUED, owner=None, lease_until=None))
                    (requeued if res.rowcount else []).append(run_id)
        return requeued, failed

    # --- helpers ----------------------------------------------------------------------------
    def _end(self, run_id: str, owner: str | None, status: str, **values: Any) -> bool:
        cond = (runs.c.id == run_id) & runs.c.status.in_((QUEUED, RUNNING))
        if owner is not None:
            cond &= (runs.c.owner == owner) & (runs.c.status == RUNNING)
        with self.engine.begin() as conn:
            res = conn.execute(update(runs).where(cond).values(status=status, finished_at=time.time(),
                                                               owner=None, lease_until=None, **values))
        return res.rowcount == 1

    def _get(self, cond: Any, *, full: bool, with_input: bool = False) -> RunRecord | None:
        cols = list(_SUMMARY)
        if full:
            cols += [runs.c.options, runs.c.versions, runs.c.product_version, runs.c.output]
        if with_input:
            cols.append(runs.c.input)
        with self.engine.connect() as conn:
            row = conn.execute(select(*cols).where(cond)).mappings().first()
        return None if row is None else _record(row)


def _record(row: RowMapping) -> RunRecord:
    def parsed(name: str) -> Any:
        raw = row.get(name)
        return None if raw is None else json.loads(raw)

    return RunRecord(
        id=row["id"], seq=int(row["seq"]), tenant=row["tenant"], kind=row["kind"], status=row["status"],
        attempts=int(row["attempts"]), error=row["error"], created_at=row["created_at"],
        started_at=row["started_at"], finished_at=row["finished_at"], options=parsed("options"),
        versions=parsed("versions"), product_version=row.get("product_version") or "",
        input=parsed("input"), output=parsed("output"),
    )
