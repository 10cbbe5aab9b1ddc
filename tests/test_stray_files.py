"""Issue 22.6: a pcsim process killed outright leaves no stray files.

Its temporary files (Brian2's log and script copy, the compiler's redirected output and flag
tests, gcc's ``cc*`` files, a sweep's warm-up folder) live in the folder it owns,
``$TMPDIR/pcsim-HOST-PID/`` (``sim.temp_folder``); the next pcsim process removes the folders of
gone processes, and a run removes the temporary result files of gone runs in its output folder
(``sim.io.partials``). Each kill is a SIGKILL to the whole process group (as a batch scheduler
kills a job: the compiler and the sweep's workers too), at a moment told by a marker: a file
appearing in the temp folder, or a line on stderr.
"""

from __future__ import annotations

import fnmatch
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from sim import temp_folder
from sim.io.partials import HOST
from sim.scenario_writer import write_scenario

MID_RUN_S = 0.5  # from the first step to well into the run


def linear(steps: int) -> dict:
    """One cause seen through one weight; ``steps`` of 0.1 ms in one trial."""
    levels = [{"name": "x", "size": 1, "precision": 1.0},
              {"name": "v", "size": 1, "weights": 1.0}]
    return {"name": "linear", "dt_ms": 0.1,
            "model": {"errors": "relaxing", "tau_belief_ms": 5.0, "tau_error_ms": 0.5,
                      "levels": levels, "prior": {"mean": 0.0, "precision": 1.0}},
            "protocol": {"trials": [{"duration_ms": 0.1 * steps,
                                     "stimulus": {"kind": "constant", "value": 1.0}}]}}


class Pcsim:
    """``python -m sim.cli ARGS`` in its own process group, with ``TMPDIR`` set; stderr is
    collected as it comes."""

    def __init__(self, temp: Path, *args: str, **env: str) -> None:
        self.process = subprocess.Popen(
            [sys.executable, "-m", "sim.cli", *args], stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE, text=True, start_new_session=True,
            env={**os.environ, "TMPDIR": str(temp), **env})
        self.err: list[str] = []
        self.reader = threading.Thread(target=lambda: self.err.extend(self.process.stderr),
                                       daemon=True)
        self.reader.start()

    def said(self, text: str) -> Callable[[], bool]:
        return lambda: any(text in line for line in self.err)

    def wait_for(self, ready: Callable[[], bool], timeout: float = 90.0) -> None:
        deadline = time.monotonic() + timeout
        while not ready():
            assert self.process.poll() is None, f"ended first: {''.join(self.err)}"
            assert time.monotonic() < deadline, "the moment never came"
            time.sleep(0.002)

    def kill_when(self, ready: Callable[[], bool]) -> None:
        """SIGKILL to the process group as soon as ``ready()``."""
        self.wait_for(ready)
        os.killpg(self.process.pid, signal.SIGKILL)
        self.process.wait(timeout=30)
        self.reader.join(timeout=30)


def left(temp: Path) -> list[str]:
    """Everything under ``temp`` (paths relative to it); files vanishing meanwhile are skipped."""
    found = []
    for folder, names, files in os.walk(temp):
        found += [os.path.relpath(os.path.join(folder, n), temp) for n in names + files]
    return sorted(found)


def loose(temp: Path) -> list[str]:
    """Entries of the temp folder that are not a pcsim process's own folder."""
    return sorted(path.name for path in temp.iterdir() if not temp_folder.FOLDER.match(path.name))


@pytest.fixture
def temp(tmp_path: Path) -> Path:
    folder = tmp_path / "tmp"
    folder.mkdir()
    return folder


def kill_at_moments(tmp_path: Path, temp: Path) -> dict[str, tuple[list[str], list[str]]]:
    """Start pcsim commands and kill each at its moment (during Brian2's import, just after
    start-up, during the compiler flag tests every run's build makes, while compiling code not in
    Brian2's cache, in the middle of a run, during a sweep's warm-up); per moment, what it added
    to the temp folder, and what in the temp folder is loose (not in a pcsim process's own
    folder). Results go to ``tmp_path/out``."""
    out = tmp_path / "out"
    long = write_scenario(tmp_path / "long.toml", linear(10**7))
    empty_cache = {"CYTHON_CACHE_DIR": str(tmp_path / "cython")}  # Brian2 compiles everything
    run = ("run", "--no-plot", "-o")
    moments = {  # the command, and when to kill it: a file (pattern) or line on stderr
        "import": ((*run, str(out / "a.h5"), str(long)), "brian_debug_*"),
        "start-up": ((*run, str(out / "b.h5"), str(long)), "pcsim: running"),
        "flag tests": ((*run, str(out / "c.h5"), str(long)), "brian_flag_test_*"),
        "compilation": ((*run, str(out / "d.h5"), str(long)), "cc*"),
        "mid-run": ((*run, str(out / "e.h5"), str(long)), "brian_stdout_*"),
        "warm-up": (("sweep", str(long), "--vary", "model.tau_belief_ms=4,5", "-j", "1", "-o",
                     str(out / "sweep")), "pcsim-warm-*"),
    }
    leftovers = {}
    for moment, (args, marker) in moments.items():
        before = set(left(temp))

        def new(pattern: str, before=before) -> bool:
            return any(fnmatch.fnmatch(os.path.basename(path), pattern)
                       for path in set(left(temp)) - before)

        pcsim = Pcsim(temp, *args, **(empty_cache if moment == "compilation" else {}))
        if moment == "start-up":
            pcsim.kill_when(pcsim.said(marker))
        elif moment == "compilation":  # gcc's files, not in a flag test (every run makes them)
            pcsim.kill_when(lambda: new("cc*") and not new("brian_flag_test_*"))
        elif moment == "mid-run":  # the compiler's output goes at the first step
            pcsim.wait_for(lambda marker=marker: new(marker))
            pcsim.wait_for(lambda marker=marker: not new(marker))
            time.sleep(MID_RUN_S)
            pcsim.kill_when(lambda: True)
        else:
            pcsim.kill_when(lambda marker=marker: new(marker))
        leftovers[moment] = (sorted(set(left(temp)) - before), loose(temp))
    return leftovers


def test_sigkill_at_any_moment_leaves_nothing_after_the_next_run(tmp_path, temp):
    """Whatever each kill left lies in the killed process's own folder (nothing loose in the
    temp folder); one later run leaves the temp folder empty, and the output folder with its
    own result only (and the killed sweep's folder)."""
    leftovers = kill_at_moments(tmp_path, temp)
    for moment, (_, outside) in leftovers.items():
        assert outside == [], (moment, leftovers[moment])
    out = tmp_path / "out"
    later = subprocess.run([sys.executable, "-m", "sim.cli", "run", str(tmp_path / "long.toml"),
                            "--set", "protocol.trials.0.duration_ms=1", "--no-plot", "-o",
                            str(out / "later.h5")], capture_output=True, text=True,
                           env={**os.environ, "TMPDIR": str(temp)}, timeout=120)
    assert later.returncode == 0, later.stderr
    assert left(temp) == []
    assert sorted(p.name for p in out.iterdir()) == ["later.h5", "sweep"]


def test_a_live_process_folder_is_kept_and_a_reused_pid_is_not(temp):
    """The later process removes a folder only when its owner is gone: a live pcsim's stays,
    one whose pid now belongs to another process (a different start time) goes, and one
    without its owner file goes only if no process has that pid."""
    import json

    from sim.processes import start_ticks

    def make(pid: int, owner: dict | None) -> Path:
        path = temp / f"pcsim-{HOST}-{pid}"
        path.mkdir()
        (path / "brian_stdout_x.log").write_text("")
        if owner is not None:
            (path / "owner.json").write_text(json.dumps({"host": HOST, "pid": pid, **owner}))
        return path

    gone = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                          capture_output=True, text=True).stdout.strip()
    live = make(os.getpid(), {"start_ticks": start_ticks(os.getpid())})
    # a live process of its own (not pid 1: the test's parent may be pid 1 after a reparent)
    other = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        reused = make(other.pid, {"start_ticks": start_ticks(other.pid) + 1})
        being_made = make(1, None)  # pid 1 exists: maybe its owner file is being written
        dead_unowned = make(int(gone), None)
        other_host = temp / f"pcsim-elsewhere-{gone}"
        other_host.mkdir()
        temp_folder.remove_stale(temp)
    finally:
        other.kill()
        other.wait()
    assert live.exists() and being_made.exists() and other_host.exists()
    assert not reused.exists() and not dead_unowned.exists()


def test_library_calls_give_the_temp_folder_back(tmp_path, temp):
    """sim.run in a user's script: Brian2's and the compiler's files go to the process's own
    folder during the call only; afterwards the script's tempfile and TMPDIR are its own again,
    and nothing is left in the temp folder, even while the script goes on."""
    scenario = write_scenario(tmp_path / "short.toml", linear(10))
    script = f"""
import os, tempfile, sim
before = tempfile.gettempdir(), os.environ["TMPDIR"]
sim.run({str(scenario)!r}, output={str(tmp_path / "r.h5")!r})
assert (tempfile.gettempdir(), os.environ["TMPDIR"]) == before, tempfile.gettempdir()
print(sorted(os.listdir(before[0])))
"""
    ran = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                         env={**os.environ, "TMPDIR": str(temp)}, timeout=300)
    assert ran.returncode == 0, ran.stderr
    assert ran.stdout.strip() == "[]"
    assert left(temp) == []
