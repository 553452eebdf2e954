"""Run the service under uvicorn (what ``budget-solver serve`` calls)."""

from __future__ import annotations

import logging

from solver.service.config import ServiceConfig


def serve(config: ServiceConfig, host: str = "127.0.0.1", port: int = 8000, log_level: str = "info") -> None:
    """Serve the API on ``host:port`` until SIGINT / SIGTERM.

    One uvicorn process: HTTP handling is asynchronous and the solves run in the worker's child
    processes (``config.workers`` at once), so more server processes would add nothing but
    competition for the same cores. On a clean stop, running solves are killed and queued again
    for the next start; after a ``kill -9`` the next start recovers them once their lease expires.
    """
    import uvicorn

    from solver.service.app import create_app

    logging.basicConfig(level=log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    uvicorn.run(create_app(config), host=host, port=port, log_level=log_level, timeout_graceful_shutdown=15,
                access_log=log_level == "debug")
