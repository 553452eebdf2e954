"""Fixtures of the service tests (helpers in service_helpers.py, importable from the test modules)."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))

from service_helpers import Server


@pytest.fixture(scope="module")
def workdir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("service")


@pytest.fixture(scope="module")
def server_factory(workdir: Path) -> Iterator[Any]:
    """Start servers on demand; all are stopped at the end of the module."""
    started: list[Server] = []

    def start(db_name: str = "runs.db", *, db_url: str | None = None, **settings: Any) -> Server:
        server = Server(db_url or f"sqlite:///{workdir / db_name}", workdir / f"server-{len(started)}.log", **settings)
        started.append(server)
        return server

    yield start
    for s in started:
        s.stop()
