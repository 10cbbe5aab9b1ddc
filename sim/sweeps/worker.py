"""Running one point of a sweep, in a worker process (local pool or Dask worker).

``run_point(task)`` holds the point's lock (``sim.sweeps.locks``), runs the scenario through
the ordinary engine (the result file appears only complete, ``sim.io.writer``) and returns what
happened: ``done``, ``diverged`` (the engine kept the file, marked so), ``failed`` with a
one-line error (written beside the points as ``point-<key>.failed``), ``running`` (another live
writer holds the lock) or ``interrupted``. A failure never raises: the other points go on.
"""

from __future__ import annotations

import contextlib
import ctypes
import json
import os
import signal
import sys
import threading
import time
from pathlib import Path
from typing import Any

from sim import temp_folder
from sim.io.partials import temporary_name
from sim.sweeps.locks import PointLock

PR_SET_PDEATHSIG = 1
_RUN_LOCK = threading.Lock()  # Brian2 runs one network per process at a time
_prepared = False


def die_with_parent(parent_pid: int) -> None:
    """Linux: the kernel sends SIGKILL to this process when its parent dies (PR_SET_PDEATHSIG),
    so a sweep killed with SIGKILL leaves no worker still writing. If the parent is already gone
    (it died before this ran), exit now."""
    if sys.platform.startswith("linux"):
        with contextlib.suppress(OSError, AttributeError):
            libc = ctypes.CDLL(None, use_errno=True)
            libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
    if os.getppid() != parent_pid:
        os._exit(1)


@temp_folder.inside()  # a Dask worker's (a local one has entered its own: sim.sweeps.serve)
def prepare_process() -> None:
    """Once per worker process: BLAS on one thread (the workers share the cores), and the engine
    imported (Brian2), so that a sweep's clock does not count imports."""
    global _prepared
    if _prepared:
        return
    from sim.blas import set_blas_threads

    set_blas_threads(1)
    import sim.engine  # noqa: F401
    _prepared = True


@temp_folder.inside()
def warm_up(task: dict[str, Any]) -> None:
    """Once per worker, before the sweep's clock starts: the sweep's first point run for one
    step into a temporary folder and thrown away. A process's first run pays for Brian2's first
    build (its compiled code loaded, the engine's modules and caches warmed: 0.26 s of a 0.6 s
    point, measured), which is the worker's start-up, not a point's. Whatever goes wrong here
    is left to the point itself to report. The folder lies in the worker's own temporary folder
    (``sim.temp_folder``): a worker killed here leaves nothing a later pcsim does not remove."""
    import dataclasses
    import tempfile

    import numpy as np

    from sim.engine import run_scenario
    from sim.scenario import load_scenario

    prepare_process()
    try:
        with (np.errstate(all="ignore"), _quiet_warnings(),
              tempfile.TemporaryDirectory(prefix="pcsim-warm-") as folder):
            scenario = load_scenario(task["scenario"], overrides=task["overrides"],
                                     seed=task["seed"])
            scenario.trials = [dataclasses.replace(scenario.trials[0],
                                                   duration_ms=scenario.dt_ms)]
            scenario.readouts.pop("rate_reference", None)  # its twin would run whole
            run_scenario(scenario, Path(folder) / "warm.h5")
    except Exception:  # the point itself reports what is wrong with it
        pass


def failed_path(folder: Path, key: str) -> Path:
    return folder / f"point-{key}.failed"


def write_failure(path: Path, message: str) -> None:
    """The failure's one-line message, replaced atomically (a reader sees all of it or none)."""
    temporary = temporary_name(path)
    temporary.write_text(json.dumps({"error": message}) + "\n", encoding="utf-8")
    os.replace(temporary, path)


def one_line(err: BaseException) -> str:
    text = str(err).strip().splitlines()
    first = text[0] if text else ""
    return first if isinstance(err, ValueError) and first else f"{type(err).__name__}: {first}"


@temp_folder.inside()
def run_point(task: dict[str, Any]) -> dict[str, Any]:
    """Run one point: ``task`` holds ``scenario`` (path), ``folder``, ``key``, ``overrides``
    (dotted key -> value), ``seed`` and ``since`` (when the sweep started). Returns ``{"key",
    "status", "error", "seconds"}``, for a point that wrote its file ``state``: what the index
    records of it (its summary read by the worker, so that the sweep's process reads no point
    file while points run), and ``already``: the point was not run here, another process had
    finished it (or it failed for another sweep since ``since``)."""
    prepare_process()
    with _RUN_LOCK:
        return _run_point(task)


def _run_point(task: dict[str, Any]) -> dict[str, Any]:
    import numpy as np

    from sim.checkpoint import checkpoint_path
    from sim.engine import run_scenario
    from sim.errors import DivergenceError, ResultError, RunInterrupted, ScenarioError
    from sim.readouts.rate_reference import kept_in
    from sim.scenario import load_scenario

    folder, key = Path(task["folder"]), task["key"]
    target = folder / f"point-{key}.h5"
    failure = failed_path(folder, key)
    began = time.perf_counter()
    out = {"key": key, "status": "done", "error": "", "seconds": 0.0, "pid": os.getpid()}
    with PointLock(folder, key) as lock:
        if not lock.acquired:
            return {**out, "status": "running"}
        if target.exists() or (failure.exists() and  # another process did it meanwhile
                               failure.stat().st_mtime >= task.get("since", float("inf"))):
            return {**out, **recorded(folder, key), "already": True}
        try:
            # kept_in: points with the same rate twin share its run (sim.readouts.rate_reference)
            with np.errstate(all="ignore"), _quiet_warnings(), kept_in(folder):
                scenario = load_scenario(task["scenario"], overrides=task["overrides"],
                                         seed=task["seed"])
                run_scenario(scenario, target, progress=watch_sweep(task.get("alive")),
                             resume=checkpoint_path(target).exists())  # a killed point's
        except DivergenceError as err:
            out.update(status="diverged", error=one_line(err))
        except (RunInterrupted, KeyboardInterrupt):
            return {**out, "status": "interrupted"}
        except (ScenarioError, ResultError) as err:
            out.update(status="failed", error=one_line(err).replace("(--set ", "(--vary "))
        except Exception as err:  # a failed point must not stop the others
            out.update(status="failed", error=one_line(err))
        if out["status"] == "failed":
            write_failure(failure, out["error"])
        else:
            failure.unlink(missing_ok=True)
    out["seconds"] = time.perf_counter() - began
    if out["status"] in ("done", "diverged"):  # read here, in parallel, not by the sweep
        out["state"] = recorded(folder, key)["state"]
    return out


def recorded(folder: Path, key: str) -> dict[str, Any]:
    """What the folder records of a point (``sim.sweeps.index.point_status``), as an outcome's
    ``status``, ``error`` and ``state``."""
    from sim.sweeps.index import point_status

    state = point_status(folder, key)
    return {"status": state.status, "error": state.error,
            "state": {"status": state.status, "error": state.error, "summary": state.summary}}


def watch_sweep(alive: str | None):
    """The engine's progress callback (every 0.5 s of wall time): stop the run, writing
    nothing, when the sweep that sent the point is gone (``sim.sweeps.locks.abandoned``)."""
    if alive is None:
        return None
    from sim.guard import RunStopped
    from sim.sweeps.locks import abandoned

    def check(fraction: float) -> None:
        if fraction < 1.0 and abandoned(alive):
            raise RunStopped("interrupted", "the sweep that sent this point is gone", 0.0)

    return check


@contextlib.contextmanager
def _quiet_warnings():
    """A point's warnings (e.g. a step near its stability bound) are not printed by every
    worker; the result file and the index keep what matters."""
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        yield
