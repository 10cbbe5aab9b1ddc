"""Timing the report side: ``pcsim plot`` and ``pcsim show`` on a finished result.

Each command runs in a fresh process, as a user runs it, against a fresh Python that only
imports what the command cannot do without (``python -c "import h5py, numpy"``, plus
``matplotlib.pyplot`` for plot). Start-up is most of what these commands cost, so the
difference to that baseline is what pcsim adds: its own imports (Brian2 alone would be ~1 s),
reading the file and, for plot, drawing and writing the figure. After one untimed run of each
(disk caches, matplotlib's font cache, and pcsim's compiled bytecode: see ``with_bytecode``),
repeats alternate command and baseline; the best of each counts.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

from sim.bench.cases import REPORT_SCENARIO, CommandCase
from sim.bench.records import CommandRecord

REPEATS = 9
QUICK_REPEATS = 5


def report_result(folder: Path) -> Path:
    """The bundled report scenario's result, run once (untimed) through the public engine."""
    from sim.engine import run_scenario
    from sim.scenario import load_scenario

    folder.mkdir(parents=True, exist_ok=True)
    output = folder / f"{Path(REPORT_SCENARIO).name}.h5"
    run_scenario(load_scenario(REPORT_SCENARIO), output)
    return output


def pcsim_command() -> list[str]:
    """``pcsim`` as installed beside this Python, or the same entry point through ``-c``."""
    script = Path(sys.executable).with_name("pcsim")
    if script.is_file():
        return [str(script)]
    return [sys.executable, "-c", "import sys; from sim.cli import main; sys.exit(main())"]


def with_bytecode() -> dict[str, str]:
    """This environment, with Python allowed to write its bytecode cache (``__pycache__``).

    The baseline's h5py and NumPy load compiled bytecode, as an installed pcsim does (pip
    compiles a package's modules when it installs them). A checkout run where
    ``PYTHONDONTWRITEBYTECODE`` is set (this project's machines set it) would compile pcsim's
    modules from their source at every timed run, which no user's pcsim does; the untimed
    run writes their bytecode, which the timed runs then read."""
    return {key: value for key, value in os.environ.items()
            if key != "PYTHONDONTWRITEBYTECODE"}


def wall_time(command: list[str], folder: Path,
              environment: dict[str, str] | None = None) -> tuple[float, str]:
    """Seconds from start to exit of ``command``, and why it failed ("" if it did not)."""
    began = time.perf_counter()
    done = subprocess.run(command, cwd=folder, capture_output=True, text=True, timeout=600,
                          env=environment)
    seconds = time.perf_counter() - began
    if not done.returncode:
        return seconds, ""
    last = (done.stderr.strip().splitlines() or ["no message"])[-1]
    return seconds, f"failed (exit {done.returncode}): {last}"


def measure_commands(cases: list[CommandCase], result: Path, repeats: int) -> list[CommandRecord]:
    folder = result.parent
    pcsim = pcsim_command()
    runs = []
    for case in cases:
        arguments = [part.replace("{result}", result.name) for part in case.arguments]
        record = CommandRecord(case.name, " ".join(["pcsim", *arguments]),
                               f'python -c "import {case.baseline}"', case.target_s)
        runs.append((record, [*pcsim, *arguments],
                     [sys.executable, "-c", f"import {case.baseline}"]))
    for record, command, baseline in runs:  # untimed: caches
        record.note = (wall_time(command, folder, with_bytecode())[1]
                       or wall_time(baseline, folder)[1])
    for repeat in range(repeats):
        for record, command, baseline in runs:
            if record.note:
                continue
            pairs = [(command, record.runs_s), (baseline, record.baseline_runs_s)]
            for run, times in pairs[::-1] if repeat % 2 else pairs:
                seconds, record.note = wall_time(run, folder)
                if record.note:
                    break
                times.append(seconds)
    for record, _, _ in runs:
        if not record.note:
            record.seconds, record.baseline_s = min(record.runs_s), min(record.baseline_runs_s)
    return [record for record, _, _ in runs]
