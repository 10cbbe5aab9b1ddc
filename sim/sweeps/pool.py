"""Where a sweep's points run: a pool of local worker processes, or a Dask cluster.

Both take the same tasks (``sim.sweeps.worker.run_point``) and yield each point's outcome as it
arrives. The local pool starts ``jobs`` fresh Python processes (``python -m sim.sweeps.serve``:
a plain subprocess, so a script calling ``sim.sweep`` is not run again in each worker, as
multiprocessing's ``spawn`` would). Each dies with the sweep (``die_with_parent``: SIGKILL from
the kernel when the sweep process dies, even by SIGKILL), runs BLAS on one thread and takes one
point at a time over its own pair of pipes, so the sweep knows which point a worker was running
if it dies. ``close`` stops them: SIGTERM (the engine stops at the next step and writes
nothing), then SIGKILL after a grace period.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Iterator
from multiprocessing.connection import Connection, wait
from pathlib import Path
from typing import Any

from sim.blas import ONE_THREAD
from sim.errors import ScenarioError

GRACE_S = 5.0


class _Worker:
    """One worker process and its two pipes (tasks to it, outcomes from it)."""

    def __init__(self) -> None:
        import sim

        task_read, task_write = os.pipe()
        result_read, result_write = os.pipe()
        root = str(Path(sim.__file__).resolve().parent.parent)  # this pcsim, installed or not
        env = {**os.environ, **ONE_THREAD, "PYTHONPATH": os.pathsep.join(
            p for p in (root, os.environ.get("PYTHONPATH", "")) if p)}
        try:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "sim.sweeps.serve", str(os.getpid()), str(task_read),
                 str(result_write)], pass_fds=(task_read, result_write),
                stdin=subprocess.DEVNULL, env=env)
        finally:
            os.close(task_read)
            os.close(result_write)
        self.tasks = Connection(task_write, readable=False)
        self.connection = Connection(result_read, writable=False)
        self.task: dict | None = None

    @property
    def exitcode(self) -> int | None:
        return self.process.poll()


class LocalPool:
    """``jobs`` worker processes on this machine (``start_s``: how long they took to be ready)."""

    def __init__(self, jobs: int) -> None:
        began = time.perf_counter()
        self.workers = [_Worker() for _ in range(jobs)]
        for worker in self.workers:
            self._await_ready(worker)
        self.start_s = time.perf_counter() - began

    @property
    def pids(self) -> list[int]:
        return [w.process.pid for w in self.workers]

    def warm(self, task: dict[str, Any]) -> None:
        """Every worker runs ``task``'s point for one step (``worker.warm_up``); the time
        joins ``start_s``."""
        began = time.perf_counter()
        for worker in self.workers:
            worker.tasks.send({"warm": task})
        for worker in self.workers:
            self._await_ready(worker)
        self.start_s += time.perf_counter() - began

    def _await_ready(self, worker: _Worker) -> None:
        try:
            worker.connection.recv()
        except (EOFError, OSError):
            worker.process.wait()
            self.close()
            raise RuntimeError(f"a sweep worker exited at start (exit code "
                               f"{worker.exitcode})") from None

    def run(self, tasks: list[dict[str, Any]]) -> Iterator[dict[str, Any]]:
        """Each task's outcome, in the order they finish."""
        queue = list(reversed(tasks))
        idle = list(self.workers)
        busy: dict[Any, _Worker] = {}

        def dispatch() -> None:  # before the caller sees an outcome: no worker waits on it
            while queue and idle:
                worker = idle.pop()
                worker.task = queue.pop()
                worker.tasks.send(worker.task)
                busy[worker.connection] = worker

        while queue or busy:
            dispatch()
            for ready in wait(list(busy), timeout=1.0):
                worker = busy.get(ready)
                if worker is None:
                    continue
                alive, outcome = self._receive(worker)
                if alive and outcome is None:
                    continue  # woken, nothing to read yet
                del busy[worker.connection]
                if alive:
                    idle.append(worker)
                else:  # it died: report its point, start another in its place
                    outcome = {"key": worker.task["key"], "status": "failed", "seconds": 0.0,
                               "error": f"worker process died (exit code "
                                        f"{worker.exitcode})"}
                    self.workers.remove(worker)
                    if queue:
                        replacement = _Worker()
                        self._await_ready(replacement)
                        self.workers.append(replacement)
                        idle.append(replacement)
                worker.task = None
                dispatch()
                yield outcome
            yield {}  # a tick: the caller may refresh its progress line

    @staticmethod
    def _receive(worker: _Worker) -> tuple[bool, dict | None]:
        """(alive, outcome): the worker's result if it sent one, whether it still runs."""
        try:
            if worker.connection.poll():
                return True, worker.connection.recv()[1]
        except (EOFError, OSError):  # its end of the pipe closed: it exited
            worker.process.wait()
            return False, None
        return worker.exitcode is None, None

    def close(self) -> None:
        """Stop every worker: None to the idle, SIGTERM, then SIGKILL after ``GRACE_S``."""
        for worker in self.workers:
            try:
                if worker.task is None:
                    worker.tasks.send(None)
                else:
                    worker.process.terminate()
            except OSError:
                pass
        deadline = time.monotonic() + GRACE_S
        for worker in self.workers:
            try:
                worker.process.wait(max(0.0, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                worker.process.kill()
                worker.process.wait()
            worker.tasks.close()
            worker.connection.close()


def require_dask() -> None:
    """A one-line error naming the extra when dask.distributed is not installed."""
    try:
        import dask.distributed  # noqa: F401
    except ImportError:
        raise ScenarioError("--scheduler needs dask.distributed, an optional extra: "
                            "pip install 'pcsim[cluster]' (in a checkout: "
                            "pip install '.[cluster]')") from None


class DaskPool:
    """The same tasks on a running ``dask.distributed`` scheduler (``address``), or on a
    ``client`` given from Python. Each Dask worker process runs one point at a time."""

    def __init__(self, address: str | None = None, client: Any = None) -> None:
        require_dask()
        from dask.distributed import Client

        began = time.perf_counter()
        self.own = client is None
        if client is None:
            try:
                client = Client(address, timeout="20s")
            except (OSError, TimeoutError, ValueError) as err:
                raise ScenarioError(f"--scheduler {address}: cannot reach the Dask scheduler "
                                    f"({type(err).__name__}: {err})") from None
        self.client = client
        from sim.sweeps.worker import prepare_process

        self.client.run(prepare_process)  # imports and BLAS in every worker, before the clock
        self.start_s = time.perf_counter() - began
        self.futures: list = []

    def warm(self, task: dict[str, Any]) -> None:
        """Every worker runs ``task``'s point for one step (``worker.warm_up``); the time
        joins ``start_s``."""
        from sim.sweeps.worker import warm_up

        began = time.perf_counter()
        self.client.run(warm_up, task)
        self.start_s += time.perf_counter() - began

    def run(self, tasks: list[dict[str, Any]]) -> Iterator[dict[str, Any]]:
        from dask.distributed import as_completed

        from sim.sweeps.worker import run_point

        self.futures = [self.client.submit(run_point, task, key=f"pcsim-point-{task['key']}",
                                           pure=False) for task in tasks]
        keys = {future.key: task["key"] for future, task in zip(self.futures, tasks,
                                                                strict=True)}
        for future in as_completed(self.futures):
            try:
                yield future.result()
            except Exception as err:  # the worker died (KilledWorker) or the task could not run
                from sim.sweeps.worker import one_line

                yield {"key": keys[future.key], "status": "failed", "seconds": 0.0,
                       "error": one_line(err)}

    def close(self) -> None:
        if self.futures:
            self.client.cancel(self.futures)
        if self.own:
            self.client.close()
