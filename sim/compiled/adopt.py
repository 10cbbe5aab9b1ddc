"""The compiled program's environment, and its results adopted by Brian2 as if Brian2 had
run it (``sim.compiled.device`` runs the program itself: ``sim.compiled.launch``)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any


def program_environment(device: Any) -> dict[str, str]:
    """The program's environment, as ``device.run`` would set it, its BLAS on one thread
    (``circuits.coupling_compiled`` links OpenBLAS, which reads ``OPENBLAS_NUM_THREADS`` as
    it loads; the program runs one step at a time)."""
    from brian2 import prefs

    from sim.blas import ONE_THREAD

    return {**os.environ, **prefs["devices.cpp_standalone.run_environment_variables"],
            **device.run_environment_variables, **ONE_THREAD}


def adopt_results(device: Any, directory: Path, results_directory: str) -> None:
    """Let Brian2 read the monitors from ``results_directory`` as if ``device.run`` had run the
    program: ``device.run`` with a no-op command does its bookkeeping (the results directory,
    clock caches, ``has_been_run``, the check for NaN states) and runs nothing."""
    from brian2 import prefs

    command = prefs["devices.cpp_standalone.run_cmd_unix"]
    # device.run sets the program's environment variables (LD_BIND_NOW) in this process's
    # environment: those it changes are put back after
    saved = {name: os.environ.get(name) for name, value in program_environment(device).items()
             if os.environ.get(name) != value}
    prefs["devices.cpp_standalone.run_cmd_unix"] = "true"
    try:
        device.run(directory=str(directory), results_directory=results_directory,
                   with_output=False)
    finally:
        prefs["devices.cpp_standalone.run_cmd_unix"] = command
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value
