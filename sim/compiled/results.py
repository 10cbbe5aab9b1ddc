"""Where a compiled program writes its results: in memory when they are small.

Brian2's program writes every array of its network to a results directory when its run ends
(the monitors and every state variable: 154 files, 17 MB for the small-model row's 64-16-4
hierarchy), and pcsim reads the monitors from there and removes the directory when the
``standalone`` block ends. In the build directory, on this machine's disk (ext4, other work
running), creating those files took the program 20-130 ms of system time a run (``strace``:
``openat`` 0.1-0.5 ms a file), more than its simulation loop (43 ms); in a tmpfs folder
(``/dev/shm``) 3-7 ms. So a run whose results are expected to be small
(``expected_bytes``: at most ``IN_MEMORY_LIMIT`` and a quarter of the tmpfs's free space)
writes them to ``<MEMORY>/pcsim-results-<pid>-<n>``; others, and every run where there is no
such folder (not Linux), write them to ``<build directory>/results-<pid>-<n>`` as before.
Either way the folder is the run's own and removed when its block ends, and the next build
removes those of processes that no longer exist (``remove_dead``).
"""

from __future__ import annotations

import os
import re
import shutil
from pathlib import Path

import numpy as np

MEMORY = Path("/dev/shm")  # a tmpfs on Linux
IN_MEMORY_LIMIT = 256 << 20  # bytes: larger results go to the build directory
PREFIX = "pcsim-"  # a results folder in memory: PREFIX + the name it has in a build directory
_RESULTS = re.compile(r"results-(\d+)-\d+")


def expected_bytes(network, duration_s: float, device) -> int | None:
    """About what the program will write: its state monitors' samples (each recorded unit and
    variable, and t, at every tick of the monitor's clock over ``duration_s``), every array
    of fixed size, and four times the data files it reads (synapses made from them, and their
    variables); None where a monitor's size is not known ahead (spikes, events, rates)."""
    from brian2 import PopulationRateMonitor, StateMonitor
    from brian2.monitors.spikemonitor import EventMonitor

    total = 0
    for obj in network.objects:
        if isinstance(obj, StateMonitor):
            ticks = int(duration_s / float(obj.clock.dt_)) + 1
            total += 8 * ticks * (1 + len(obj.record) * len(obj.record_variables))
        elif isinstance(obj, EventMonitor | PopulationRateMonitor):
            return None
    total += sum(int(np.prod(var.size)) * np.dtype(var.dtype).itemsize for var in device.arrays)
    return total + 4 * sum(values.nbytes for values in device.static_arrays.values())


def results_folder(directory: Path, name: str, expected: int | None) -> Path:
    """The run's results folder (module doc): in memory where ``expected`` bytes fit, else
    ``directory / name``."""
    if expected is not None and expected <= IN_MEMORY_LIMIT and MEMORY.is_dir():
        try:
            usage = os.statvfs(MEMORY)
        except OSError:
            return directory / name
        if expected <= usage.f_bavail * usage.f_frsize // 4 and os.access(MEMORY, os.W_OK):
            folder = MEMORY / f"{PREFIX}{name}"
            try:  # its own, new: never one left by an earlier process of this pid, or another
                folder.mkdir(mode=0o700)  # user's (the program could not write there, and
                return folder  # would exit 0 with the old files in place)
            except OSError:
                pass
    return directory / name


def check_written(folder: Path) -> None:
    """Refuse results written to a tmpfs that filled up (Brian2's program does not check its
    writes and exits 0: a file could be cut short)."""
    if folder.parent == MEMORY and os.statvfs(MEMORY).f_bavail == 0:
        raise RuntimeError(f"{MEMORY} filled up while the compiled program wrote its results "
                           f"to {folder}; free space there and run again")


def remove_dead(directory: Path) -> None:
    """Remove the results folders of processes that no longer exist: in ``directory`` (a build
    directory) and in memory."""
    found = list(directory.glob("results-*"))
    if MEMORY.is_dir():
        found += list(MEMORY.glob(f"{PREFIX}results-*"))
    for path in found:
        match = _RESULTS.fullmatch(path.name.removeprefix(PREFIX))
        if match and not _alive(int(match.group(1))):
            shutil.rmtree(path, ignore_errors=True)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's process
        return True
    return True
