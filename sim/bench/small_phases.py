r"""Where a warm ``sim.run`` of the small-model row's hierarchy spends its time, phase by phase.

    python -m sim.bench.small_phases [--device standalone] [--repeats 5] [--trials 8]
                                     [--trial-ms 100]

Runs the "small models" row's 64-16-4 hierarchy (``sim.bench.small_models.hierarchy_table``)
through ``sim.run`` once to warm the process (Brian2's caches, the standalone build), then
``--repeats`` times with timers around the functions each phase is made of (``PHASES``: the
function's own time, without that of another phase called inside it: exclusive times, which add
up to the run). Prints the median of each phase over the repeats and the whole run's median
(the timers add ~1 us a call). ``--trial-ms 2`` (a few steps a trial) gives a run's fixed
cost: what a run of this shape costs whatever its length. A measuring tool, not part of a
run: it wraps the functions for its own process only.
"""

from __future__ import annotations

import argparse
import functools
import gc
import importlib
import os
import resource
import tempfile
import time
from collections import defaultdict
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np

# (module, attribute path, phase): the phase's time is the wrapped call's own
PHASES = [
    ("sim.preflight", "preflight_run", "scenario: parse, preflight"),
    ("sim.families.hierarchical", "HierarchicalKind.build", "runtime network build"),
    ("sim.compiled.program", "probe", "trial-start probe"),
    ("sim.compiled.program", "build", "program's network (clones, compiled forms, monitors)"),
    ("sim.compiled.known", "program_key", "warm build: the program's key"),
    ("sim.compiled.known", "data_files", "warm build: the data files found"),
    ("sim.compiled.known", "known_data", "warm build: the key and files checked"),
    ("sim.compiled.stand_in", "stand_in_for_run", "warm build: Brian2's run bookkeeping"),
    ("sim.compiled.warm", "write_if_changed", "data files written where they changed"),
    ("brian2.core.network", "Network.run", "Brian2 code generation (Network.run)"),
    ("brian2.devices.cpp_standalone.device", "CPPStandaloneDevice.build",
     "device.build: sources, data files"),
    ("sim.compiled.warm", "make_needed", "make check"),
    ("sim.compiled.launch", "run_program", "the program: start, loop, write results"),
    ("sim.compiled.adopt", "adopt_results", "results adopted (device.run bookkeeping)"),
    ("sim.compiled.program", "read", "monitors read"),
    ("brian2.devices.cpp_standalone.device", "CPPStandaloneDevice.reinit",
     "device reset after the block"),
    ("sim.compiled.replay", "Replay.rows_ahead", "F and streams at the samples"),
    ("sim.compiled.replay", "Replay.free_energy_at_end", "F at trials' ends"),
    ("sim.compiled.replay", "Replay.run", "replay: trial starts, ends (rest)"),
    ("sim.io.writer", "StreamedDataset.extend", "HDF5: streamed rows"),
    ("sim.io.writer", "ResultWriter.commit", "HDF5: commit"),
    ("sim.engine", "_run", "engine (rest)"),
    ("sim", "load", "the result loaded (sim.run's return)"),
]


def cpu_time() -> float:
    """CPU seconds of this process and of the children it waited for (the program, make)."""
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    return time.process_time() + children.ru_utime + children.ru_stime


class Timers:
    """Exclusive time per phase, wall and CPU (``cpu_time``): a phase's clocks stop while
    another phase runs inside it. On a loaded machine the CPU column is the steadier one."""

    def __init__(self) -> None:
        self.spent: dict[str, np.ndarray] = defaultdict(lambda: np.zeros(2))
        self.stack: list[list] = []  # [phase, started (wall, CPU), time of phases inside]

    def wrap(self, function, phase: str):
        @functools.wraps(function)
        def timed(*args, **kwargs):
            self.stack.append([phase, np.array([time.perf_counter(), cpu_time()]),
                               np.zeros(2)])
            try:
                return function(*args, **kwargs)
            finally:
                name, began, inner = self.stack.pop()
                took = np.array([time.perf_counter(), cpu_time()]) - began
                self.spent[name] += took - inner
                if self.stack:
                    self.stack[-1][2] += took

        return timed


@contextmanager
def timed_phases(timers: Timers) -> Iterator[None]:
    """``PHASES`` wrapped by ``timers`` while the block runs; put back after."""
    undo = []
    for module_name, path, phase in PHASES:
        owner = importlib.import_module(module_name)
        *parents, name = path.split(".")
        for part in parents:
            owner = getattr(owner, part)
        original = owner.__dict__[name] if isinstance(owner, type) else getattr(owner, name)
        setattr(owner, name, timers.wrap(original, phase))
        undo.append((owner, name, original))
    try:
        yield
    finally:
        for owner, name, original in reversed(undo):
            setattr(owner, name, original)


def measure(device: str, repeats: int, trials: int, trial_ms: float = 100.0
            ) -> tuple[dict[str, list[np.ndarray]], list[np.ndarray]]:
    """Every phase's exclusive seconds (wall, CPU) per repeat, and the whole runs'."""
    import sim
    from sim.bench.small_models import hierarchy_table
    from sim.scenario_writer import write_scenario

    work = Path(tempfile.mkdtemp(prefix="pcsim-phases-"))
    scenario = write_scenario(work / "small_hierarchy.toml", hierarchy_table(trials, trial_ms))
    output, overrides = work / "result.h5", {"numerics.device": device}
    sim.run(scenario, output=output, overwrite=True, overrides=overrides)  # warm
    phases: dict[str, list[np.ndarray]] = defaultdict(list)
    whole = []
    for _ in range(repeats):
        timers = Timers()
        gc.collect()
        with timed_phases(timers):
            began = np.array([time.perf_counter(), cpu_time()])
            sim.run(scenario, output=output, overwrite=True, overrides=overrides)
            whole.append(np.array([time.perf_counter(), cpu_time()]) - began)
        for _, _, phase in PHASES:
            phases[phase].append(timers.spent[phase])
    return phases, whole


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--device", default="standalone")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--trials", type=int, default=8, help="a multiple of 4")
    parser.add_argument("--trial-ms", type=float, default=100.0)
    options = parser.parse_args(argv)
    phases, whole = measure(options.device, options.repeats, options.trials,
                            options.trial_ms)
    total = np.median(whole, axis=0) * 1e3
    print(f"sim.run of the 64-16-4 hierarchy ({options.trials} trials of {options.trial_ms:g} "
          f"ms) on {options.device}, warm, median of "
          f"{options.repeats} (ms): wall {total[0]:.0f}, CPU {total[1]:.0f}; load "
          f"{os.getloadavg()[0]:.1f}")
    print(f"  {'wall':>7} {'CPU':>7}")
    accounted = np.zeros(2)
    for phase, seconds in phases.items():
        median = np.median(seconds, axis=0) * 1e3
        accounted += median
        print(f"  {median[0]:7.1f} {median[1]:7.1f}  {phase}")
    rest = total - accounted
    print(f"  {rest[0]:7.1f} {rest[1]:7.1f}  outside these (sim.run's own, the timers)")


if __name__ == "__main__":
    main()
