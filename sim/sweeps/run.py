"""Running a sweep: the grid's points that are not finished yet, on local workers or Dask.

1. The grid (``sim.sweeps.grid``), checked before anything runs (a bad key: ``ScenarioError``).
2. The folder: the scenario is copied in as ``scenario.toml`` (workers of a cluster read it
   there), stale locks and orphan temporary files are removed (``sim.sweeps.locks``), and each
   point's state is read from its files; the index is written.
3. Points neither done nor diverged nor running elsewhere are sent to the workers (failed
   points are tried again). Each writes ``point-<key>.h5`` through the ordinary engine.
4. While points finish, the index is rewritten (at most every ``INDEX_EVERY_S``); at the end
   it is rebuilt from the files, also after Ctrl-C / SIGTERM (the workers are stopped first,
   ``RunInterrupted``). A sweep killed outright leaves the last index written, a little behind
   the files; the next run rebuilds it.
"""

from __future__ import annotations

import contextlib
import os
import signal
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sim.sweeps.grid import Grid, make_grid
from sim.sweeps.index import PointState, point_status, write_index
from sim.sweeps.locks import SweepHeartbeat, clean_folder
from sim.sweeps.progress import SweepProgress

DEFAULT_FOLDER = Path("outputs")
INDEX_EVERY_S = 2.0  # while running, the index is rewritten at most this often
SCENARIO_COPY = "scenario.toml"


@dataclass
class SweepRun:
    """What a sweep did: its index, each point's state, and how long things took."""

    index: Path
    states: dict[str, PointState]
    ran: list[str] = field(default_factory=list)  # the keys of the points run this time
    start_s: float = 0.0  # workers (or connecting to the cluster) until ready
    run_s: float = 0.0  # first point sent until the last one back
    interrupted: bool = False

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


@contextlib.contextmanager
def terminate_as_interrupt():
    """SIGTERM stops the sweep as Ctrl-C does (workers stopped, index written)."""
    def handler(signum, frame):
        raise KeyboardInterrupt

    previous = signal.signal(signal.SIGTERM, handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def run_sweep(scenario: str | Path, vary: dict[str, list[Any]] | None = None,
              seeds: int | None = None, jobs: int | None = None, scheduler: str | None = None,
              output: str | Path | None = None, progress: bool = False,
              client: Any = None) -> SweepRun:
    """Run (or finish) a sweep; see ``sim.sweep`` for the arguments. Raises ``ScenarioError``
    before anything runs for a bad key, ``RunInterrupted`` after Ctrl-C or SIGTERM (the index
    is written first)."""
    from sim.errors import ResultError, RunInterrupted, ScenarioError

    if jobs is not None and (isinstance(jobs, bool) or not isinstance(jobs, int) or jobs < 1):
        raise ScenarioError(f"-j {jobs}: expected a positive number of worker processes")
    if scheduler is not None and client is None:
        from sim.sweeps.pool import require_dask

        require_dask()
    grid = make_grid(scenario, vary, seeds)
    folder = Path(output) if output is not None else default_folder(grid)
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise ResultError(f"{folder}: cannot hold the sweep's files here "
                          f"({err.strerror or err}); give a folder with -o") from None
    place_scenario(grid, folder)
    clean_folder(folder)
    points = grid.points
    states = {p.key: point_status(folder, p.key) for p in points}
    index = write_index(folder, grid, points, states, str(scenario))
    todo = [p for p in points if states[p.key].status in ("missing", "failed")]
    outcome = SweepRun(index, states)
    bar = SweepProgress(len(points)) if progress else None
    tasks = [{"scenario": str(grid.scenario), "folder": str(folder.resolve()), "key": p.key,
              "overrides": p.overrides, "seed": p.seed} for p in todo]
    cluster = scheduler is not None or client is not None
    heartbeat = SweepHeartbeat(folder) if cluster else contextlib.nullcontext()
    for task in tasks if cluster else []:
        task["alive"] = str(heartbeat.path.resolve())
    pool = None
    try:
        with terminate_as_interrupt(), heartbeat:
            if tasks:
                pool = _pool(jobs, scheduler, client, len(tasks))
                pool.warm(tasks[0])  # the workers' first build, before the clock
                outcome.start_s = pool.start_s
                if bar:
                    bar.start(len(points) - len(todo))
                began = written = time.perf_counter()
                for result in pool.run(tasks):
                    if result and result.get("status") != "running":
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
    except KeyboardInterrupt:
        outcome.interrupted = True
    finally:
        if pool is not None:
            pool.close()
        if bar:
            bar.end()
        clean_folder(folder)
        outcome.states = {p.key: point_status(folder, p.key) for p in points}
        outcome.index = write_index(folder, grid, points, outcome.states, str(scenario))
    if outcome.interrupted:
        counts = outcome.counts()
        raise RunInterrupted(f"sweep interrupted: {counts.get('done', 0)} of {len(points)} "
                             f"points done, index {outcome.index}; run the same command again "
                             "to finish", None)
    return outcome


def _pool(jobs: int | None, scheduler: str | None, client: Any, count: int):
    from sim.sweeps.pool import DaskPool, LocalPool

    if scheduler is not None or client is not None:
        return DaskPool(scheduler, client)
    return LocalPool(max(1, min(jobs or os.cpu_count() or 1, count)))
