"""Settings and limits of the service, from arguments or ``BUDGET_SOLVER_*`` environment variables.

Every field of :class:`ServiceConfig` can be set by the environment variable
``BUDGET_SOLVER_<FIELD NAME IN UPPER CASE>`` (``BUDGET_SOLVER_DB`` for ``db_url``); explicit
arguments win over the environment, which wins over the defaults.

Examples
--------
>>> cfg = ServiceConfig.from_env({"BUDGET_SOLVER_DB": "sqlite:///x.db", "BUDGET_SOLVER_QUEUE_SIZE": "7"})
>>> cfg.db_url, cfg.queue_size
('sqlite:///x.db', 7)
>>> ServiceConfig.from_env({}, workers=0).workers
0
>>> ServiceConfig.from_env({"BUDGET_SOLVER_QUEUE_SIZE": "many"})
Traceback (most recent call last):
...
ValueError: BUDGET_SOLVER_QUEUE_SIZE: expected an integer, got 'many'
>>> normalize_db_url("postgresql://u@127.0.0.1:5432/runs")
'postgresql+psycopg://u@127.0.0.1:5432/runs'
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, fields, replace
from typing import Any

DEFAULT_DB_URL = "sqlite:///runs.db"
ENV_PREFIX = "BUDGET_SOLVER_"
_ENV_NAMES = {"db_url": "BUDGET_SOLVER_DB"}


def _default_workers() -> int:
    return max(1, min(os.cpu_count() or 1, 4))


@dataclass(frozen=True)
class ServiceConfig:
    """What the service accepts and how it runs.

    Attributes
    ----------
    db_url : SQLAlchemy URL of the run store (``sqlite:///runs.db``, ``postgresql://...``).
    workers : solves run at once (one child process each); 0 stores runs without running them.
    queue_size : queued runs (all tenants) beyond which a new submission answers 429.
    max_body_bytes : largest request body (413 beyond).
    max_cells : most cells in a problem, fitted history or sweep (422 beyond).
    max_history_rows : most rows in a fit's history (422 beyond).
    max_sweep_points : most budgets in one sweep (422 beyond).
    time_limit : default seconds per solve route when the request gives none.
    max_time_limit : largest ``time_limit`` a request may ask for (422 beyond).
    kill_grace : a solve still running ``2 * time_limit + kill_grace`` seconds after it started is
        killed and answered ``time_limit`` without a plan (routes that cannot stop by themselves).
    lease_seconds : a running run whose server has not renewed its lease for this long (the
        server died) is queued again, or failed once it has been tried ``max_attempts`` times.
    max_attempts : how many times a run is started before it is failed with the reason.
    scheduler : Dask scheduler address (``tcp://host:port``) for sweeps; None starts a LocalCluster.
    dask_workers : worker processes of that LocalCluster.
    """

    db_url: str = DEFAULT_DB_URL
    workers: int = _default_workers()
    queue_size: int = 100
    max_body_bytes: int = 8 * 1024 * 1024
    max_cells: int = 5000
    max_history_rows: int = 200_000
    max_sweep_points: int = 200
    time_limit: float = 60.0
    max_time_limit: float = 600.0
    kill_grace: float = 10.0
    lease_seconds: float = 30.0
    max_attempts: int = 3
    scheduler: str | None = None
    dask_workers: int = 2

    def __post_init__(self) -> None:
        for name in ("queue_size", "max_body_bytes", "max_cells", "max_history_rows", "max_sweep_points",
                     "max_attempts", "dask_workers"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name}: must be at least 1, got {getattr(self, name)}")
        if self.workers < 0:
            raise ValueError(f"workers: must be >= 0, got {self.workers}")
        for name in ("time_limit", "max_time_limit", "lease_seconds"):
            if not getattr(self, name) > 0:
                raise ValueError(f"{name}: must be > 0, got {getattr(self, name)}")
        if self.kill_grace < 0:
            raise ValueError(f"kill_grace: must be >= 0, got {self.kill_grace}")
        object.__setattr__(self, "db_url", normalize_db_url(self.db_url))

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None, **overrides: Any) -> ServiceConfig:
        """Defaults, then ``BUDGET_SOLVER_*`` variables of ``env`` (default ``os.environ``), then
        the ``overrides`` that are not None. Raises ValueError naming a malformed variable."""
        env = os.environ if env is None else env
        values: dict[str, Any] = {}
        for f in fields(cls):
            name = _ENV_NAMES.get(f.name, ENV_PREFIX + f.name.upper())
            raw = env.get(name)
            if raw is None or raw == "":
                continue
            values[f.name] = _parse(raw, f.type, name)
        values |= {k: v for k, v in overrides.items() if v is not None}
        return cls(**values)

    def with_(self, **changes: Any) -> ServiceConfig:
        """A copy with some fields changed (validated again)."""
        return replace(self, **changes)

    def hard_limit(self, time_limit: float) -> float:
        """Seconds after which a solve asked to stop at ``time_limit`` per route is killed."""
        return 2.0 * time_limit + self.kill_grace


def normalize_db_url(url: str) -> str:
    """Use the psycopg (v3) driver for plain ``postgresql://`` / ``postgres://`` URLs."""
    for prefix in ("postgresql://", "postgres://"):
        if url.startswith(prefix):
            return "postgresql+psycopg://" + url[len(prefix):]
    return url


def _parse(raw: str, kind: Any, name: str) -> Any:
    kind = str(kind)
    try:
        if kind.startswith("int"):
            return int(raw)
        if kind.startswith("float"):
            return float(raw)
    except ValueError:
        what = "an integer" if kind.startswith("int") else "a number"
        raise ValueError(f"{name}: expected {what}, got {raw!r}") from None
    return raw
