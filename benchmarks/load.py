"""Load test of the HTTP service on loopback: N concurrent clients fire a bounded number of solves.

Starts ``budget-solver serve`` on 127.0.0.1 (a free port, a temporary SQLite store, ``--workers``
solver processes), creates an API key, then ``--clients`` threads each submit small problems and
long-poll until their run ends, until ``--runs`` solves have been sent or ``--seconds`` have passed.
Prints one table: throughput (runs per second), submit latency (POST answered) and end-to-end
latency (POST to the solution) at p50 and p99, the solver's own time per solve, errors and 429s.

    python benchmarks/load.py                                  # 20 clients, 200 runs, 6-cell problems
    python benchmarks/load.py --clients 50 --runs 500 --cells 30 --workers 2

Traffic goes only to the server it starts on 127.0.0.1; every loop is bounded in count and time.
"""

from __future__ import annotations

import argparse
import os
import platform
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from solver.service.store import RunStore


def problem(seed: int, cells: int) -> dict[str, Any]:
    """A problem of ``cells`` log / saturation cells over 3 categories, budget and cell caps only."""
    rng = np.random.default_rng(seed)
    budget = 1e6
    spend = budget / cells
    out = []
    for i in range(cells):
        family = ("log", "exp_saturation")[i % 2]
        a, b = float(spend * rng.uniform(2, 5)), float(spend * rng.uniform(0.5, 2))
        out.append({"category": f"cat{i % 3}", "segment": f"seg{i // 3}",
                    "revenue": {"family": family, "a": a, "b": b}, "max_spend": 3 * spend})
    return {"version": 1, "name": f"load-{seed}", "budget": budget, "cells": out}


def machine() -> str:
    """CPU model, cores and memory of this machine (Linux; what is known elsewhere)."""
    model = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    try:
        memory = f", {os.sysconf('SC_PAGE_SIZE') * os.sysconf('SC_PHYS_PAGES') / 2**30:.1f} GiB"
    except (ValueError, OSError, AttributeError):
        memory = ""
    return f"{model}, {os.cpu_count()} cores{memory}, Python {platform.python_version()}"


def percentile(values: list[float], q: float) -> float:
    return float(np.percentile(values, q)) if values else float("nan")


def start_server(port: int, db_url: str, workers: int, queue_size: int) -> subprocess.Popen[bytes]:
    env = dict(os.environ, PYTHONPATH=str(ROOT), BUDGET_SOLVER_QUEUE_SIZE=str(queue_size))
    proc = subprocess.Popen([sys.executable, "-m", "solver.cli", "serve", "--host", "127.0.0.1", "--port", str(port),
                             "--db", db_url, "--workers", str(workers), "--log-level", "warning"],
                            cwd=str(ROOT), env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"the server exited with {proc.returncode}")
        try:
            if httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=2).status_code == 200:
                return proc
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    proc.kill()
    raise SystemExit("the server did not become healthy within 120 s")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--clients", type=int, default=20)
    ap.add_argument("--runs", type=int, default=200, help="solves to send in all (upper bound)")
    ap.add_argument("--seconds", type=float, default=300.0, help="stop sending after this long")
    ap.add_argument("--cells", type=int, default=6)
    ap.add_argument("--workers", type=int, default=os.cpu_count() or 1)
    ap.add_argument("--queue-size", type=int, default=1000)
    args = ap.parse_args()

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    tmp = tempfile.mkdtemp(prefix="budget-solver-load-")
    db_url = f"sqlite:///{tmp}/runs.db"
    store = RunStore(db_url)
    key = store.create_key("load")
    store.close()
    try:
        proc = start_server(port, db_url, args.workers, args.queue_size)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    base = f"http://127.0.0.1:{port}"
    lock = threading.Lock()
    next_index = iter(range(args.runs))
    submit_s: list[float] = []
    total_s: list[float] = []
    solve_s: list[float] = []
    errors: list[str] = []
    throttled = 0
    stop_at = time.monotonic() + args.seconds

    def one_run(http: httpx.Client, i: int) -> None:
        """Submit run ``i`` and long-poll it to its end; record latencies or the error."""
        nonlocal throttled
        t0 = time.perf_counter()
        r = http.post("/v1/solves", json=problem(i, args.cells))
        t1 = time.perf_counter()
        if r.status_code == 429:
            with lock:
                throttled += 1
            time.sleep(float(r.headers.get("Retry-After", 1)))
            return
        if r.status_code != 202:
            raise RuntimeError(f"POST {r.status_code}: {r.text[:200]}")
        run_id = r.json()["id"]
        for _ in range(20):  # bounded: 20 long-polls of at most 30 s
            run = http.get(f"/v1/solves/{run_id}", params={"wait": 30}).json()
            if run["status"] in ("done", "failed"):
                break
        t2 = time.perf_counter()
        if run["status"] != "done" or run["solution"]["status"] != "optimal":
            raise RuntimeError(f"run {run_id}: {run['status']} {run.get('error') or (run.get('solution') or {}).get('status')}")
        with lock:
            submit_s.append(t1 - t0)
            total_s.append(t2 - t0)
            solve_s.append(run["solution"]["seconds"])

    def client() -> None:
        with httpx.Client(base_url=base, headers={"Authorization": f"Bearer {key}"}, timeout=120) as http:
            while time.monotonic() < stop_at:
                with lock:
                    i = next(next_index, None)
                if i is None:
                    return
                try:
                    one_run(http, i)
                except Exception as e:  # noqa: BLE001 - counted and shown in the report
                    with lock:
                        errors.append(f"{type(e).__name__}: {e}")

    started = time.perf_counter()
    try:
        with ThreadPoolExecutor(args.clients) as pool:
            for _ in range(args.clients):
                pool.submit(client)
        wall = time.perf_counter() - started
    finally:
        proc.terminate()
        proc.wait(30)
        shutil.rmtree(tmp, ignore_errors=True)
    done = len(total_s)
    print(f"{machine()}\nclients {args.clients}, server workers {args.workers}, {args.cells}-cell problems, "
          f"SQLite store\n")
    print("| runs ok | errors | 429s | wall s | runs/s | submit p50 ms | submit p99 ms | end-to-end p50 s "
          "| end-to-end p99 s | solve p50 ms |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    print(f"| {done} | {len(errors)} | {throttled} | {wall:.1f} | {done / wall:.1f} | "
          f"{1000 * percentile(submit_s, 50):.1f} | {1000 * percentile(submit_s, 99):.1f} | "
          f"{percentile(total_s, 50):.2f} | {percentile(total_s, 99):.2f} | "
          f"{1000 * statistics.median(solve_s) if solve_s else float('nan'):.1f} |")
    for e in errors[:5]:
        print("error:", e)


if __name__ == "__main__":
    main()
