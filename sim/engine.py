"""Scenario -> Brian2 network -> trials -> one HDF5 result file."""

from __future__ import annotations

import datetime
import json
import sys
import time
from collections.abc import Callable
from pathlib import Path

from brian2 import Network, ms, prefs

from sim.results import ResultWriter, write_array
from sim.scenario import Scenario

DEFAULT_OUTPUT_DIR = Path("outputs")
Progress = Callable[[float], None]


def configure_brian(target: str | None = None) -> None:
    """Cython when a compiler is present (code is compiled once, cached), else NumPy."""
    prefs.codegen.target = target or "cython"
    prefs.codegen.runtime.cython.multiprocess_safe = True


def default_output(scenario: Scenario) -> Path:
    stamp = datetime.datetime.now().strftime("%Y%m%d-%H%M%S-%f")
    return DEFAULT_OUTPUT_DIR / f"{scenario.name}-seed{scenario.seed}-{stamp}.h5"


def text_progress(stream=sys.stderr, width: int = 30) -> Progress:
    """A one-line progress bar on a terminal (silent when not a terminal)."""
    started = time.perf_counter()
    interactive = stream.isatty()

    def report(fraction: float) -> None:
        if not interactive:
            return
        filled = int(width * fraction)
        elapsed = time.perf_counter() - started
        stream.write(f"\r[{'#' * filled}{'.' * (width - filled)}] {100 * fraction:5.1f}% "
                     f"{elapsed:6.1f} s")
        if fraction >= 1.0:
            stream.write("\n")
        stream.flush()

    return report


def write_metadata(writer: ResultWriter, scenario: Scenario) -> None:
    attrs = writer.file.attrs
    attrs["scenario_name"] = scenario.name
    attrs["model_kind"] = scenario.kind.name
    attrs["seed"] = scenario.seed
    attrs["dt"] = scenario.dt_ms * 1e-3
    attrs["dt_units"] = "s"
    attrs["method"] = scenario.method
    attrs["duration"] = scenario.duration_ms * 1e-3
    group = writer.file.require_group("scenario")
    group.attrs["path"] = scenario.path
    group.attrs["description"] = scenario.description
    write_array(group, "source", scenario.source_text, units="")
    write_array(group, "parameters", json.dumps(scenario.resolved()), units="",
                format="JSON")


def run_scenario(scenario: Scenario, output: Path, progress: Progress | None = None):
    """Simulate every trial; the file appears at ``output`` only if the run completes.

    Returns the model family's simulation object (for summaries).
    """
    configure_brian()
    writer = ResultWriter(output)
    try:
        write_metadata(writer, scenario)
        simulation = scenario.kind.build(scenario, writer)
        network = Network(*simulation.objects)
        total, done = scenario.duration_ms, 0.0
        for trial in scenario.trials:
            simulation.start_trial(trial)

            def report(elapsed, completed, start, duration, before=done):
                if progress:
                    progress((before + float(completed) * float(duration / ms)) / total)

            network.run(trial.duration_ms * ms, namespace={}, report=report,
                        report_period=0.5 * 1000 * ms)
            simulation.end_trial(trial)
            done += trial.duration_ms
        simulation.finish()
        writer.commit()
    except BaseException:
        writer.abort()
        raise
    if progress:
        progress(1.0)
    return simulation
