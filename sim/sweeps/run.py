"""Running a sweep: the grid's points that are not finished yet, on local workers or Dask.

1. The grid (``sim.sweeps.grid``), checked before anything runs (a bad key: ``ScenarioError``).
2. The folder: the scenario is copied in as ``scenario.toml`` (workers of a cluster read it
   there), stale locks and orphan temporary files are removed (``sim.sweeps.locks``), and each
   point's state is read from its files; the index is written. A folder that cannot take these
   files is one line (``ResultError``) before anything runs.
3. Points neither done nor diverged are sent to the workers (failed points are tried again).
   Each writes ``point-<key>.h5`` through the ordinary engine. A point that another live
   process runs (another sweep of the same folder) is awaited, not run again, and run here
   only if that process leaves it unfinished (``outcomes``): two identical sweeps started
   together both end reporting every point's true final state (all done, unless some failed or
   diverged), each point run once, by one of them.
4. While points finish, the index is rewritten (at most every ``INDEX_EVERY_S``); at the end
   it is rebuilt from the files, also after Ctrl-C / SIGTERM (the workers are stopped first,
   ``RunInterrupted``; the CLI exits 130 / 143). A sweep killed outright leaves the last index
   written, a little behind the files; the next run rebuilds it.
"""

from __future__ import annotations

import contextlib
import os
import signal
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sim.io.partials import temporary_name
from sim.sweeps.detect import INDEX_NAME
from sim.sweeps.grid import Grid, make_grid
from sim.sweeps.index import PointState, point_status, write_index
from sim.sweeps.locks import SweepHeartbeat, clean_folder
from sim.sweeps.programs import program_plan
from sim.sweeps.progress import SweepProgress

DEFAULT_FOLDER = Path("outputs")
INDEX_EVERY_S = 2.0  # while running, the index is rewritten at most this often
WAIT_S = 0.2  # how often a point another process runs is looked at
SCENARIO_COPY = "scenario.toml"


@dataclass
class SweepRun:
    """What a sweep did: its index, each point's state, and how long things took."""

    index: Path
    states: dict[str, PointState]
    ran: list[str] = field(default_factory=list)  # the keys of the points run by this sweep
    start_s: float = 0.0  # workers (or connecting to the cluster) until ready
    run_s: float = 0.0  # first point sent until the last one back
    interrupted: bool = False
    stopped_by: str = ""  # what interrupted it: "SIGINT" or "SIGTERM"

    def counts(self) -> dict[str, int]:
        out: dict[str, int] = {}
        for state in self.states.values():
            out[state.status] = out.get(state.status, 0) + 1
        return out


def default_folder(grid: Grid) -> Path:
    return DEFAULT_FOLDER / f"sweep-{grid.table.get('name', 'scenario')}"


def place_scenario(grid: Grid, folder: Path) -> None:
    """Copy the scenario file into the sweep folder (replaced atomically when it changed)."""
    text = grid.scenario.read_text("utf-8")
    copy = folder / SCENARIO_COPY
    if not copy.exists() or copy.read_text("utf-8") != text:
        temporary = folder / f".{SCENARIO_COPY}.{os.getpid()}.tmp"
        temporary.write_text(text, encoding="utf-8")
        os.replace(temporary, copy)
    grid.scenario = copy.resolve()  # workers of a cluster run elsewhere


class Terminated(KeyboardInterrupt):
    """SIGTERM stopped the sweep (``terminate_as_interrupt``)."""


@dataclass
class TermSignal:
    """What ``terminate_as_interrupt`` knows of SIGTERM: whether it came (``fired``), and
    whether its ``Terminated`` was lost in a callback (``lost``)."""

    fired: bool = False
    lost: bool = False

    def stopping(self) -> None:
        """The sweep is writing its index: SIGTERM is ignored from now on."""
        self.fired = True

    def raise_if_lost(self) -> None:
        """Raise again a ``Terminated`` that a garbage collector's callback swallowed."""
        if self.lost:
            self.lost = False
            raise Terminated


@contextlib.contextmanager
def terminate_as_interrupt() -> Iterator[TermSignal]:
    """SIGTERM stops the sweep as Ctrl-C does (workers stopped, index written), raising
    ``Terminated``, once: from then on, and once the block calls ``stopping()`` (the sweep is
    writing its index), SIGTERM is ignored, so the index is written (a scheduler that will not
    wait sends SIGKILL). Python does not raise an exception from inside a garbage collector's
    callback (a weakref's, a ``__del__``: h5py's objects have them): it prints it ("Exception
    ignored in", a traceback) and goes on. A ``Terminated`` lost there is kept quiet instead,
    and ``raise_if_lost()`` (the sweep's loop calls it at every outcome and tick, at least
    once a second) raises it again."""
    term = TermSignal()

    def handler(signum, frame):
        if not term.fired:
            term.fired = True
            raise Terminated

    def unraisable(found) -> None:
        if isinstance(found.exc_value, Terminated):
            term.lost = True
        else:
            hook(found)

    hook = sys.unraisablehook
    previous = signal.signal(signal.SIGTERM, handler)
    sys.unraisablehook = unraisable
    try:
        yield term
    finally:
        signal.signal(signal.SIGTERM, previous)
        sys.unraisablehook = hook


def prepare_folder(grid: Grid, folder: Path) -> None:
    """Make the folder, copy the scenario in and remove what gone writers left there; a folder
    that cannot hold the sweep's files is a ``ResultError`` (one line), before anything runs."""
    from sim.errors import ResultError

    try:
        folder.mkdir(parents=True, exist_ok=True)
        place_scenario(grid, folder)  # (writes nothing if the same copy is there)
        clean_folder(folder)
        probe = temporary_name(folder / INDEX_NAME)  # where the index will be written
        probe.touch()
        probe.unlink()
    except OSError as err:
        raise ResultError(f"{folder}: cannot hold the sweep's files here "
                          f"({err.strerror or err}); give a folder you can write with -o") \
            from None


def run_sweep(scenario: str | Path, vary: dict[str, list[Any]] | None = None,
              seeds: int | None = None, jobs: int | None = None, scheduler: str | None = None,
              output: str | Path | None = None, progress: bool = False,
              client: Any = None, overrides: dict[str, Any] | None = None,
              announce: Callable[[str], None] | None = None) -> SweepRun:
    """Run (or finish) a sweep; see ``sim.sweep`` for the arguments; ``announce`` gets the
    compiled programs the points to run need before any runs (``sim.sweeps.programs``).
    Raises ``ScenarioError``
    before anything runs for a bad key, ``ResultError`` for a folder it cannot write,
    ``RunInterrupted`` after Ctrl-C or SIGTERM (the index is written first)."""
    from sim.errors import RunInterrupted, ScenarioError

    if jobs is not None and (isinstance(jobs, bool) or not isinstance(jobs, int) or jobs < 1):
        raise ScenarioError(f"-j {jobs}: expected a positive number of worker processes")
    if scheduler is not None and client is None:
        from sim.sweeps.pool import require_dask

        require_dask()
    since = time.time()  # a point that failed for another sweep after this is not tried again
    grid = make_grid(scenario, vary, seeds, overrides)
    folder = Path(output) if output is not None else default_folder(grid)
    prepare_folder(grid, folder)
    points = grid.points
    states = {p.key: point_status(folder, p.key) for p in points}
    index = write_index(folder, grid, points, states, str(scenario))
    outcome = SweepRun(index, states)
    tasks = {p.key: {"scenario": str(grid.scenario), "folder": str(folder.resolve()),
                     "key": p.key, "overrides": p.overrides, "seed": p.seed,
                     "since": since} for p in points}
    todo = [tasks[p.key] for p in points if states[p.key].status in ("missing", "failed")]
    elsewhere = [tasks[p.key] for p in points if states[p.key].status == "running"]
    if announce is not None and todo:
        line = program_plan(todo).line()
        if line:
            announce(line)
    bar = SweepProgress(len(points)) if progress else None
    cluster = scheduler is not None or client is not None
    heartbeat = SweepHeartbeat(folder) if cluster else contextlib.nullcontext()
    for task in tasks.values() if cluster else []:
        task["alive"] = str(heartbeat.path.resolve())
    pool = None

    def started_pool():
        nonlocal pool
        if pool is None:
            pool = _pool(jobs, scheduler, client, len(todo) or 1)
            pool.warm((todo or elsewhere)[0])  # the workers' first build, before the clock
            outcome.start_s = pool.start_s
        return pool

    with terminate_as_interrupt() as term:
        try:
            with heartbeat:
                if todo or elsewhere:
                    if todo:
                        started_pool()
                    if bar:
                        bar.start(len(points) - len(todo) - len(elsewhere))
                    began = written = time.perf_counter()
                    for result in outcomes(folder, todo, elsewhere, started_pool):
                        term.raise_if_lost()
                        if result:
                            if not result.get("already"):
                                outcome.ran.append(result["key"])
                            states[result["key"]] = (PointState(**result["state"])
                                                     if "state" in result
                                                     else point_status(folder, result["key"]))
                        if bar:
                            bar.add(result.get("status", "")) if result else bar.draw()
                        if time.perf_counter() - written > INDEX_EVERY_S:
                            write_index(folder, grid, points, states, str(scenario))
                            written = time.perf_counter()
                    outcome.run_s = time.perf_counter() - began
                    if bar:
                        bar.end()
        except KeyboardInterrupt as err:
            outcome.interrupted = True
            outcome.stopped_by = "SIGTERM" if isinstance(err, Terminated) else "SIGINT"
        finally:
            term.stopping()
            if pool is not None:
                pool.close()
            if bar:
                bar.end()
            clean_folder(folder)
            outcome.states = {p.key: point_status(folder, p.key) for p in points}
            outcome.index = write_index(folder, grid, points, outcome.states, str(scenario))
    if outcome.interrupted:
        counts = outcome.counts()
        how = "terminated (SIGTERM)" if outcome.stopped_by == "SIGTERM" else "interrupted"
        raise RunInterrupted(f"sweep {how}: {counts.get('done', 0)} of {len(points)} points "
                             f"done, index {outcome.index}; run the same command again to "
                             "finish", None)
    return outcome


def outcomes(folder: Path, todo: list[dict], elsewhere: list[dict],
             started_pool) -> Iterator[dict[str, Any]]:
    """Each point's outcome (``{}``: a tick, nothing new): ``todo`` runs on the workers
    (``started_pool()``); a point another live process runs (``elsewhere``, or found so by a
    worker: its lock taken) is awaited until its lock goes, then it is what that process made
    of it (done, diverged or failed: ``already``), or, if it left nothing (stopped, killed), run
    here. So two sweeps of one folder at once both end with every point's true state, and no
    point is run by both."""
    from sim.sweeps.locks import running
    from sim.sweeps.worker import recorded

    pending, waiting = list(todo), {task["key"]: task for task in elsewhere}
    while pending or waiting:
        if pending:
            for result in started_pool().run(pending):
                if result.get("status") == "running":
                    waiting[result["key"]] = next(t for t in pending
                                                  if t["key"] == result["key"])
                    yield {}
                else:
                    yield result
            pending = []
        for key in [key for key in waiting if not running(folder, key)]:
            result = recorded(folder, key)
            if result["status"] == "missing":
                pending.append(waiting.pop(key))
            elif result["status"] != "running":  # (taken again meanwhile: still waiting)
                waiting.pop(key)
                yield {"key": key, **result, "already": True}
        if waiting and not pending:
            time.sleep(WAIT_S)
            yield {}


def _pool(jobs: int | None, scheduler: str | None, client: Any, count: int):
    from sim.sweeps.pool import DaskPool, LocalPool

    if scheduler is not None or client is not None:
        return DaskPool(scheduler, client)
    return LocalPool(max(1, min(jobs or os.cpu_count() or 1, count)))
