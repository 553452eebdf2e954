"""Helpers of the service tests: a real server on loopback (start, wait until healthy, stop, kill -9)."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx
from instances import random_problem

from solver.service.store import RunStore

ROOT = Path(__file__).resolve().parents[2]
STARTUP_SECONDS = 120.0


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Server:
    """``budget-solver serve`` in a subprocess on 127.0.0.1 (settings as BUDGET_SOLVER_* variables)."""

    def __init__(self, db_url: str, log_path: Path, **settings: Any) -> None:
        self.db_url = db_url
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log_path = log_path
        env = {k: v for k, v in os.environ.items() if not k.startswith("BUDGET_SOLVER_")}
        env["PYTHONPATH"] = os.pathsep.join([str(ROOT), env.get("PYTHONPATH", "")]).rstrip(os.pathsep)
        env |= {"BUDGET_SOLVER_" + k.upper(): str(v) for k, v in settings.items()}
        self._log = open(log_path, "ab")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "solver.cli", "serve", "--host", "127.0.0.1", "--port", str(self.port),
             "--db", db_url, "--log-level", "warning"],
            cwd=str(ROOT), env=env, stdout=self._log, stderr=subprocess.STDOUT, start_new_session=True)
        self._wait_healthy()

    def _wait_healthy(self) -> None:
        deadline = time.monotonic() + STARTUP_SECONDS
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"server exited with {self.proc.returncode}:\n{self.log()}")
            try:
                if httpx.get(self.url + "/healthz", timeout=2).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.2)
        self.kill9()
        raise RuntimeError(f"server not healthy after {STARTUP_SECONDS} s:\n{self.log()}")

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")[-5000:]

    def client(self, key: str | None = None, timeout: float = 60.0) -> httpx.Client:
        headers = {"Authorization": f"Bearer {key}"} if key else {}
        return httpx.Client(base_url=self.url, headers=headers, timeout=timeout)

    def stop(self) -> None:
        """SIGTERM (graceful: running solves are queued again), then SIGKILL if it lingers; then
        make sure nothing it started outlives it (its process group, after a grace period)."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.kill9()
        if not self.wait_group_gone(30):
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.proc.pid, signal.SIGKILL)
        self._log.close()

    def kill9(self) -> None:
        """kill -9 the server process (only it: its children notice on their own)."""
        if self.proc.poll() is None:
            os.kill(self.proc.pid, signal.SIGKILL)
            self.proc.wait(30)

    def wait_group_gone(self, seconds: float) -> bool:
        """Whether every process of the server's process group (the server, its forkserver, solver
        and Dask processes) has ended within ``seconds``. True where /proc is missing (not Linux)."""
        deadline = time.monotonic() + seconds
        while group_members(self.proc.pid):
            if time.monotonic() > deadline:
                return False
            time.sleep(0.2)
        return True


def group_members(pgid: int) -> list[int]:
    """Live (not zombie) processes in process group ``pgid``, from /proc (empty if unavailable)."""
    members = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue  # ended meanwhile
        if fields[0] != "Z" and int(fields[2]) == pgid:
            members.append(int(stat.parent.name))
    return members


def new_key(db_url: str, tenant: str) -> str:
    store = RunStore(db_url)
    try:
        return store.create_key(tenant)
    finally:
        store.close()


def small_problem(seed: int) -> dict[str, Any]:
    """A 6-cell problem of smooth curves with budget and bounds only (milliseconds to solve)."""
    return random_problem(seed, n_categories=2, n_segments=3, shares=False, clv=False,
                          families=("log", "exp_saturation", "power", "michaelis_menten"))


def wait_all(client: httpx.Client, collection: str, ids: list[str], timeout: float) -> dict[str, dict[str, Any]]:
    """Long-poll every run until it ends (or the timeout passes); id -> run."""
    deadline = time.monotonic() + timeout
    out: dict[str, dict[str, Any]] = {}
    for run_id in ids:
        while True:
            left = deadline - time.monotonic()
            run = client.get(f"{collection}/{run_id}", params={"wait": max(0.0, min(20.0, left))}).json()
            if run["status"] in ("done", "failed") or left <= 0:
                out[run_id] = run
                break
    return out
