"""The HTTP service: solves, fits and sweeps as durable, per-tenant runs behind an API.

One concern per module, edges thin (the optimization lives in :func:`solver.solve` and
:func:`solver.planning.fit_problem`; the service only queues, isolates, stores and serves):

- :mod:`~solver.service.config`: limits and settings (:class:`ServiceConfig`, from the environment);
- :mod:`~solver.service.auth`: API keys (random, shown once, stored as a SHA-256 hash);
- :mod:`~solver.service.store`: the SQLAlchemy run store (SQLite WAL file or PostgreSQL);
- :mod:`~solver.service.jobs`: what each kind of run checks and executes (JSON in, JSON out);
- :mod:`~solver.service.runner`: one forked child process per solve, with a hard deadline;
- :mod:`~solver.service.worker`: the bounded queue, dispatcher threads, leases and recovery;
- :mod:`~solver.service.schemas`: the HTTP edge's models (Pydantic) and the problem JSON schema;
- :mod:`~solver.service.app`: the FastAPI application and its routes;
- :mod:`~solver.service.limits`: request-size limit (ASGI middleware).

Importing this package imports none of the web stack; ``create_app`` does.
"""

from __future__ import annotations

from solver.service.config import ServiceConfig

__all__ = ["ServiceConfig"]
