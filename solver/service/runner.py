"""Run jobs in child processes that can be killed: a small pool of reusable solver processes.

Solves are CPU-bound (numpy, HiGHS, Clarabel) and some routes cannot stop themselves, so isolated
jobs run in child processes forked from a *forkserver* that has already imported the solver
stack. Each child serves one job at a time and is reused for the next (no fork or import per
job); it is replaced after :data:`JOBS_PER_CHILD` jobs, when it crashes, or when it is killed.
That gives

- true parallelism (one process per worker slot, no GIL shared with the HTTP server);
- a hard deadline: a child still running a job at ``hard_seconds`` is killed and replaced (and it
  arms its own ``SIGALRM`` per job, so an orphan outliving a killed server ends by itself; an
  idle child exits when its pipe from the server closes);
- isolation: a crash of a native library fails the run with the reason, not the server.

Parent and child exchange JSON bytes over pipes (``send_bytes``/``recv_bytes``): nothing from a
request is pickled or unpickled.
"""

from __future__ import annotations

import json
import multiprocessing as mp
import signal
import sys
import threading
import warnings
from dataclasses import dataclass
from multiprocessing.connection import Connection
from typing import Any

from solver.service.store import dumps

#: Imported once by the forkserver, so each forked job starts warm (this module first: it holds
#: the children's entry point, which each child would otherwise import again).
PRELOAD = ["solver.service.runner", "solver.service.jobs", "solver.service.analyses", "solver.solve",
           "solver.planning", "forecasting.fit", "formulations.conic", "formulations.cuts", "cvxpy", "clarabel",
           "highspy", "pandas"]


class JobFailed(RuntimeError):
    """The job ran and reported an error (e.g. a plan naming a category the history lacks)."""


class JobCrashed(RuntimeError):
    """The child process died without answering."""


class JobKilled(RuntimeError):
    """The job was still running at its hard deadline and was killed."""

    def __init__(self, seconds: float) -> None:
        super().__init__(f"killed after {seconds:.1f} s (hard deadline)")
        self.seconds = seconds


# Each child re-runs the server's main module as ``__mp_main__`` (see _main_module); that module
# (solver.cli) is already imported by then, which runpy reports on stderr. Harmless: silenced in the
# children, which inherit this filter from the forkserver that preloads this module.
warnings.filterwarnings("ignore", message=r".*found in sys\.modules after import of package", category=RuntimeWarning)

#: Jobs a child serves before it is replaced (bounds what caches or leaks can accumulate).
JOBS_PER_CHILD = 200


@dataclass
class _Child:
    proc: Any
    to_child: Connection
    from_child: Connection
    jobs: int = 0

    def discard(self) -> None:
        """Close the pipes (an idle child then exits) and kill it if it is still running."""
        for conn in (self.to_child, self.from_child):
            conn.close()
        if self.proc.is_alive():
            self.proc.kill()
        self.proc.join(timeout=10)


class ProcessRunner:
    """Runs jobs in reusable child processes; safe to call from several threads at once
    (one child per concurrent call)."""

    def __init__(self) -> None:
        self._ctx = mp.get_context("forkserver")
        self._ctx.set_forkserver_preload(PRELOAD + _main_module())
        self._lock = threading.Lock()
        self._idle: list[_Child] = []
        self._busy: set[int] = set()
        self._children: dict[int, _Child] = {}
        self._closed = False

    def warm(self, children: int = 1) -> None:
        """Start the forkserver (it imports :data:`PRELOAD`: seconds) and ``children`` idle children now."""
        started = [self._spawn() for _ in range(max(1, children))]
        with self._lock:
            self._idle.extend(started)

    def _spawn(self) -> _Child:
        from_child, child_out = self._ctx.Pipe(duplex=False)
        child_in, to_child = self._ctx.Pipe(duplex=False)
        proc = self._ctx.Process(target=_child_main, args=(child_in, child_out), daemon=True)
        proc.start()
        child_in.close()
        child_out.close()
        child = _Child(proc, to_child, from_child)
        with self._lock:
            self._children[id(child)] = child
        return child

    def _checkout(self) -> _Child:
        with self._lock:
            if self._closed:
                raise JobCrashed("the service is stopping")
            child = self._idle.pop() if self._idle else None
            if child is not None and not child.proc.is_alive():  # died while idle: replace it
                self._children.pop(id(child), None)
                child.discard()
                child = None
        child = child or self._spawn()
        with self._lock:
            self._busy.add(id(child))
        return child

    def _retire(self, child: _Child, reuse: bool) -> None:
        with self._lock:
            self._busy.discard(id(child))
            keep = reuse and not self._closed and child.jobs < JOBS_PER_CHILD
            if keep:
                self._idle.append(child)
            else:
                self._children.pop(id(child), None)
        if not keep:
            child.discard()

    def run(self, kind: str, input: Any, options: dict[str, Any], hard_seconds: float) -> Any:
        """Execute ``jobs.execute(kind, input, options)`` in a child and return its output.

        Raises
        ------
        JobFailed
            The job raised (its message, e.g. a ``ProblemError`` found only at fit time).
        JobKilled
            Still running after ``hard_seconds``; the child was killed (and will be replaced).
        JobCrashed
            The child died without an answer (its exit code is in the message), or the runner is closed.
        """
        payload = dumps({"kind": kind, "input": input, "options": options, "hard_seconds": hard_seconds}).encode()
        child = self._checkout()
        reuse = False
        try:
            try:
                child.to_child.send_bytes(payload)
            except (BrokenPipeError, OSError):
                pass  # the child is gone; reported below
            if not child.from_child.poll(hard_seconds):
                raise JobKilled(hard_seconds)
            try:
                answer = json.loads(child.from_child.recv_bytes())
            except (EOFError, OSError):
                child.proc.join(timeout=5)
                raise JobCrashed(f"the solver process died without an answer (exit code {child.proc.exitcode})") from None
            child.jobs += 1
            reuse = True
        finally:
            self._retire(child, reuse)
        if not answer["ok"]:
            raise JobFailed(answer["error"])
        return answer["output"]

    def close(self) -> None:
        """Kill every child; later :meth:`run` calls fail with :class:`JobCrashed`."""
        with self._lock:
            self._closed = True
            children = list(self._children.values())
            self._children.clear()
            self._idle.clear()
        for child in children:
            if child.proc.is_alive():
                child.proc.kill()


def _main_module() -> list[str]:
    """Modules the forkserver must import so that forked children re-run ``__main__`` cheaply.

    Python's forkserver children re-run the parent's main module (as ``__mp_main__``); if its
    imports are not already loaded, every job pays for them. The server's main module is the CLI
    (``budget-solver`` or ``python -m solver.cli``), or whatever module ``python -m`` ran.
    """
    main = sys.modules.get("__main__")
    name = getattr(getattr(main, "__spec__", None), "name", None)
    extra = ["solver.cli"]
    if name and name not in extra and not name.endswith("__main__"):
        extra.append(name)
    return extra


def _child_main(conn_in: Connection, conn_out: Connection) -> None:
    """Child: serve jobs until the pipe closes; answer ``{"ok": true, "output"}`` or ``{"ok": false, "error"}``."""
    from solver.service import jobs

    while True:
        try:
            msg = json.loads(conn_in.recv_bytes())
        except (EOFError, OSError):
            return  # the server is gone or retired this child
        signal.setitimer(signal.ITIMER_REAL, float(msg["hard_seconds"]) + 5.0)  # SIGALRM ends the process
        try:
            data = dumps({"ok": True, "output": jobs.execute(msg["kind"], msg["input"], msg["options"])})
        except ValueError as e:  # ProblemError, PlanError, HistoryError, FitError: the input's fault
            data = dumps({"ok": False, "error": str(e)})
        except Exception as e:  # noqa: BLE001 - reported as the run's failure reason
            data = dumps({"ok": False, "error": f"internal error ({type(e).__name__}): {e}"})
        signal.setitimer(signal.ITIMER_REAL, 0)
        try:
            conn_out.send_bytes(data.encode())
        except (BrokenPipeError, OSError):
            return
