"""The bounded job queue and its executors: dispatcher threads, leases, recovery, notifications.

The queue *is* the run store: a submission inserts a ``queued`` run (answered 429 when
``queue_size`` runs are already queued), and each of ``workers`` dispatcher threads claims the
oldest queued run, runs it, and records the output or the failure. Solves and fits run in child
processes (:class:`~solver.service.runner.ProcessRunner`); sweeps fan out over Dask from the
dispatcher thread. Nothing runs on the event loop.

A keeper thread renews the leases of this server's running runs every ``lease_seconds / 3`` and
requeues (or fails, after ``max_attempts`` starts) runs whose lease has expired -- runs whose
server was killed. The same happens once at start-up, so after a ``kill -9`` and a restart every
run that was queued or running runs again or is failed with the reason.
"""

from __future__ import annotations

import asyncio
import logging
import os
import socket
import threading
import uuid
from collections import defaultdict
from typing import Any

from solver.service import jobs
from solver.service.config import ServiceConfig
from solver.service.runner import JobCrashed, JobFailed, JobKilled, ProcessRunner
from solver.service.store import QUEUED, RunRecord, RunStore

log = logging.getLogger("solver.service")
_POLL_SECONDS = 1.0


class QueueFull(RuntimeError):
    """``queue_size`` runs are already queued (answered 429)."""


class Worker:
    """Owns the dispatcher threads of one server process (``owner`` names it in the store)."""

    def __init__(self, store: RunStore, config: ServiceConfig, runner: ProcessRunner | None = None) -> None:
        self.store = store
        self.config = config
        self.runner = runner or ProcessRunner()
        self.owner = f"{socket.gethostname()[:30]}:{os.getpid()}:{uuid.uuid4().hex[:8]}"
        self._stop = threading.Event()
        self._wake = threading.Condition()
        self._submit_lock = threading.Lock()
        self._threads: list[threading.Thread] = []
        self._waiters: dict[str, list[tuple[asyncio.AbstractEventLoop, asyncio.Event]]] = defaultdict(list)
        self._waiters_lock = threading.Lock()
        self._dask: Any = None
        self._dask_lock = threading.Lock()

    # --- life cycle -----------------------------------------------------------------------------
    def start(self) -> None:
        """Recover runs left by a dead server, warm the forkserver and start the threads."""
        requeued, failed = self.store.reap_expired(self.config.max_attempts)
        if requeued or failed:
            log.warning("recovered runs of a stopped server: %d queued again, %d failed", len(requeued), len(failed))
        if self.config.workers:
            self.runner.warm(self.config.workers)
        for i in range(self.config.workers):
            self._spawn(self._dispatch_loop, f"solver-dispatch-{i}")
        self._spawn(self._keeper_loop, "solver-keeper")

    def stop(self, timeout: float = 10.0) -> None:
        """Stop claiming runs, kill running children and queue their runs again for the next start."""
        self._stop.set()
        self.runner.close()
        with self._wake:
            self._wake.notify_all()
        for t in self._threads:
            t.join(timeout)
        released = self.store.release(self.owner)
        if released:
            log.info("queued %d interrupted runs again", released)
        with self._dask_lock:
            if self._dask is not None:
                self._dask.close()
                self._dask = None

    def _spawn(self, target: Any, name: str) -> None:
        t = threading.Thread(target=target, name=name, daemon=True)
        t.start()
        self._threads.append(t)

    # --- submissions and waiting ----------------------------------------------------------------
    def submit(self, tenant: str, sub: jobs.Submission) -> RunRecord:
        """Store a queued run and wake a dispatcher; QueueFull if the queue is full."""
        with self._submit_lock:
            if self.store.count(QUEUED) >= self.config.queue_size:
                raise QueueFull(f"the queue is full ({self.config.queue_size} runs waiting); retry later")
            record = self.store.create_run(tenant, sub.kind, sub.input, sub.options, jobs.solver_versions(),
                                           jobs.product_version())
        with self._wake:
            self._wake.notify()
        return record

    async def wait(self, tenant: str, run_id: str, kind: str, timeout: float) -> RunRecord | None:
        """The run once it is done or failed, or as it is after ``timeout`` seconds (None if unknown)."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while True:
            event = asyncio.Event()
            with self._waiters_lock:
                self._waiters[run_id].append((loop, event))
            try:
                record = await asyncio.to_thread(self.store.get_run, tenant, run_id, kind)
                remaining = deadline - loop.time()
                if record is None or record.is_final or remaining <= 0:
                    return record
                try:  # woken by this server's dispatcher; polled for runs other servers run
                    await asyncio.wait_for(event.wait(), min(remaining, _POLL_SECONDS))
                except TimeoutError:
                    pass
            finally:
                with self._waiters_lock:
                    entries = self._waiters.get(run_id, [])
                    if (loop, event) in entries:
                        entries.remove((loop, event))
                    if not entries:
                        self._waiters.pop(run_id, None)

    def _notify(self, run_id: str) -> None:
        with self._waiters_lock:
            entries = list(self._waiters.get(run_id, []))
        for loop, event in entries:
            try:
                loop.call_soon_threadsafe(event.set)
            except RuntimeError:  # that loop is closed
                pass

    # --- threads --------------------------------------------------------------------------------
    def _dispatch_loop(self) -> None:
        while not self._stop.is_set():
            try:
                record = self.store.claim_next(self.owner, self.config.lease_seconds)
            except Exception:  # the store may be briefly unreachable: keep serving
                log.exception("claiming a run failed")
                record = None
            if record is None:
                with self._wake:
                    self._wake.wait(_POLL_SECONDS)
                continue
            self._execute(record)

    def _execute(self, record: RunRecord) -> None:
        _, isolated = jobs.EXECUTORS[record.kind]
        options = record.options or {}
        try:
            if isolated:  # a solve is bounded by its time limit; other kinds run many solves
                limit = options["time_limit"] if record.kind == jobs.SOLVE else self.config.max_time_limit
                output = self.runner.run(record.kind, record.input, options, self.config.hard_limit(limit))
            else:
                output = jobs.run_sweep(record.input, options, scheduler=self._dask_client())
            self.store.finish(record.id, self.owner, output)
        except JobKilled as e:
            output = jobs.out_of_time(record.kind, record.input, options, e.seconds)
            if output is not None:
                self.store.finish(record.id, self.owner, output)
            else:
                self.store.fail(record.id, f"{record.kind} {e}", self.owner)
        except JobFailed as e:
            self.store.fail(record.id, str(e), self.owner)
        except JobCrashed as e:
            if not self._stop.is_set():  # when stopping, release() queues the run again
                self.store.fail(record.id, str(e), self.owner)
        except ValueError as e:  # a sweep's input error found by solve()
            self.store.fail(record.id, str(e), self.owner)
        except Exception as e:  # the run fails with the reason; the server goes on
            log.exception("run %s failed", record.id)
            if not self._stop.is_set():
                self.store.fail(record.id, f"internal error ({type(e).__name__}): {e}", self.owner)
        finally:
            self._notify(record.id)

    def _keeper_loop(self) -> None:
        interval = max(0.2, self.config.lease_seconds / 3)
        while not self._stop.wait(interval):
            try:
                self.store.renew_leases(self.owner, self.config.lease_seconds)
                requeued, failed = self.store.reap_expired(self.config.max_attempts)
            except Exception:  # retried at the next interval
                log.exception("lease renewal failed")
                continue
            for run_id in failed:
                self._notify(run_id)
            if requeued:
                with self._wake:
                    self._wake.notify_all()

    def _dask_client(self) -> Any:
        from solver.distributed import connect

        with self._dask_lock:
            if self._dask is None:
                self._dask = connect(self.config.scheduler, n_workers=self.config.dask_workers)
            return self._dask
