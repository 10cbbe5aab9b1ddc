"""Scenario -> Brian2 network -> trials -> one HDF5 result file."""

from __future__ import annotations

import gc
import json
import sys
import warnings
from collections.abc import Callable
from pathlib import Path

from brian2 import Network, prefs, seed

from circuits.shared_code import SharedCythonCode, compiles_cython
from sim import brian_logging, checkpoint
from sim.compiler_flags import gcc_arguments
from sim.cython_headers import include_flags
from sim.errors import DivergenceError, NumericalWarning, RunInterrupted
from sim.guard import (
    RunGuard,
    RunStopped,
    interrupt_handlers,
    non_finite_message,
    watched_variables,
)
from sim.io.finite import NonFiniteData
from sim.io.target import check_target
from sim.io.writer import ResultWriter, write_array
from sim.progress import TextProgress, text_progress  # noqa: F401 (the engine's progress bar)
from sim.sample_stretch import sample_in_stretches
from sim.scenario import Scenario
from sim.stability import preflight
from sim.trial_sequence import TrialRuns

brian_logging.settle()  # Brian2 made its log files on import: no stray files (docstring there)
Progress = Callable[[float], None]


def configure_brian(target: str | None = None, float_type: str = "float64") -> None:
    """Cython when a compiler is present (code is compiled once, cached; its arrays named by
    role, so equal equations share their code: ``circuits.shared_code``), else NumPy; g++
    without debug information (``sim.compiler_flags``), Python's and the standard headers
    precompiled (``sim.cython_headers``).

    ``float_type`` (the scenario's ``float``) sets the dtype of every Brian2 state variable;
    the coupling follows it (``circuits.coupling``).
    """
    import numpy as np

    prefs.codegen.target = target or SharedCythonCode.class_name
    prefs.codegen.runtime.cython.multiprocess_safe = True
    arguments = gcc_arguments(prefs.codegen.cpp.extra_compile_args_gcc)
    header = include_flags(arguments) if compiles_cython() else []
    prefs.codegen.cpp.extra_compile_args_gcc = [*arguments, *header]
    prefs.core.default_float_dtype = np.dtype(float_type).type
    if float_type == "float32":  # Brian2's after-run check |v| > 1e50 overflows float32: harmless
        warnings.filterwarnings("ignore", "overflow encountered in cast", RuntimeWarning,
                                r"brian2\.groups\.group")


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


def run_scenario(scenario: Scenario, output: Path, progress: Progress | None = None,
                 overwrite: bool = False, keep_partial: bool = False, checked: bool = False,
                 debug: bool = False, resume: bool = False) -> None:
    """Simulate every trial; the file appears at ``output`` only if the run completes.

    Before anything is written the step is checked against its stability bound
    (``sim.stability.preflight``: ScenarioError, or a ``NumericalWarning``). While running,
    ``sim.guard`` stops a diverging run (``DivergenceError``; the file is kept, marked
    ``diverged``) and turns Ctrl-C into ``RunInterrupted`` (the partial file is kept, marked
    ``interrupted``, only with ``keep_partial``). Returns nothing: what the run built is
    garbage when it ends, and collected then. ``checked``: the caller already ran the
    preflight and reported it. ``debug``: Brian2 keeps its log files (``sim.brian_logging``;
    their paths go to stderr). ``resume``: go on from the checkpoint of an interrupted run
    writing ``output`` (``sim.checkpoint``; ResultError when there is none or it does not
    fit).
    """
    for message in [] if checked else preflight(scenario):
        warnings.warn(message, NumericalWarning, stacklevel=2)
    output = Path(output)
    check_target(output, overwrite)
    saved = checkpoint.prepare(scenario, output, resume, overwrite)
    configure_brian(float_type=getattr(scenario, "float_type", "float64"))
    seed(scenario.seed)  # any draw on Brian2's side follows the scenario's seed too
    guard = RunGuard([], scenario.numerics.rate_limit, scenario.dt_ms,
                     scenario.record.every_steps)
    for path in brian_logging.settle(debug):
        print(f"pcsim: Brian2 logs to {path}", file=sys.stderr)
    if not debug:  # the compiler's output went to files: gone before the simulation proper
        guard.on_first_step = brian_logging.clean_compiler_output
    compiled = _choose_device(scenario, saved is not None) == "standalone"
    if compiled and earlier_code_objects():  # garbage of a run not collected (one that
        gc.collect()  # raised, a caller's own network): alive, its code objects keep their
        # names, and the compiled build would number its own anew and recompile them
    gc.freeze()  # the heap as it is now (pcsim's, Brian2's, the caller's) is left out of
    try:  # every collection during the run: Brian2 collects at every Network.run
        _run(scenario, output, progress, overwrite, keep_partial, guard, saved, compiled)
    finally:
        # the run's own garbage (its networks, code objects) while the rest is still frozen:
        # ~1 ms, where a collection over the whole heap takes 0.1-0.3 s; a later compiled
        # build then finds none of its code objects alive (``earlier_code_objects``)
        gc.collect()
        gc.unfreeze()
        if not debug:
            brian_logging.clean_compiler_output()


def earlier_code_objects() -> bool:
    """Whether Brian2 code objects of an earlier network are still alive (uncollected)."""
    from brian2.codegen.codeobject import CodeObject

    return any(reference() is not None for reference in list(CodeObject.__instances__()))


def _choose_device(scenario: Scenario, resuming: bool) -> str:
    from sim.compiled.choice import checked_device

    return checked_device(scenario, resuming)


def interrupted_message(stop: RunStopped, output: Path,
                        checkpoints: checkpoint.Checkpoints | None, kept: bool) -> str:
    """The line an interrupted run ends with: where it stopped, what was kept (``kept``: the
    partial file at ``output``, ``--keep-partial``), and how to go on. Stopped at a trial's end
    by a run with checkpoints, the checkpoint just written holds every trial done."""
    where = f"{stop.message} at t = {stop.t_ms:g} ms"
    if checkpoints is not None and checkpoints.stopped_between:
        if kept:
            return (f"{where}; the trials done are kept in {output} (status interrupted) and "
                    f"in the checkpoint {checkpoints.path}: continue with --resume --overwrite")
        return (f"{where}; the trials done are kept in the checkpoint {checkpoints.path} (no "
                f"result at {output} yet): continue with --resume")
    if kept:
        return f"{where}; kept what was simulated in {output} (status interrupted)"
    return f"{where}; nothing written (--keep-partial keeps what was simulated)"


def _run_compiled(simulation, scenario: Scenario, guard: RunGuard, runs: TrialRuns) -> bool:
    """Run on the standalone device (``sim.compiled.run``); False where ``auto`` finds a
    part without a compiled form (the runtime device runs it)."""
    from sim.compiled.choice import device_refused
    from sim.compiled.context import NotCompiled
    from sim.compiled.program import not_run
    from sim.compiled.run import run_compiled

    try:
        run_compiled(simulation, scenario, guard, runs)
    except NotCompiled as err:
        if scenario.numerics.device == "standalone":
            raise device_refused(scenario, str(err)) from None
        not_run([*simulation.objects, *runs.objects], marked=False)  # the runtime runs them
        return False
    return True


def _run(scenario: Scenario, output: Path, progress: Progress | None, overwrite: bool,
         keep_partial: bool, guard: RunGuard, saved: checkpoint.Saved | None,
         compiled: bool) -> None:
    simulation, runs, finished = None, None, False
    checkpoints = (checkpoint.Checkpoints(scenario, output)
                   if scenario.record.checkpoint_every or saved else None)
    with interrupt_handlers(guard):
        writer = ResultWriter(output)
        try:
            write_metadata(writer, scenario)
            # a resumed run keeps the readouts its checkpoint had (sim.memory decides anew else)
            simulation = scenario.kind.build(scenario, writer,
                                             saved.readouts_off if saved is not None else None)
            guard.watched = [*watched_variables(simulation.objects, scenario.record.variables),
                             *simulation.watched()]
            guard.shown = simulation.shown_name

            def started(name: str) -> None:  # each copy's trial (a batch's spares: its first)
                trials = [scenario.trials[position].name for position in runs.members]
                guard.start(name, trials + trials[:1] * (simulation.copies - len(trials)))

            runs = TrialRuns(simulation, scenario, progress, on_start=started,
                             check_end=lambda: guard.trial_end(simulation.clock_time() * 1e3),
                             on_done=checkpoints.trial_ended if checkpoints else None)
            if compiled:  # the device that ran, in the file (sim.compiled.run)
                writer.file.attrs["device"] = "standalone"
                compiled = _run_compiled(simulation, scenario, guard, runs)
            if not compiled:
                writer.file.attrs["device"] = "runtime"
                writer.file.attrs.pop("compiled_coupling", None)  # a refused build's note
                network = Network(*simulation.objects, guard.operation(simulation.clock),
                                  *runs.objects)
                first = 0
                if checkpoints is not None:  # (a compiled run has none: sim.compiled.run)
                    checkpoints.attach(network, simulation, guard, writer)
                    first = checkpoints.resume(saved) if saved is not None else 0
                simulation.stretch = sample_in_stretches(simulation)
                runs.run(network, first)
            simulation.finish()
            finished = True
            try:
                writer.commit(overwrite=overwrite)
            except NonFiniteData as err:  # computed from the state: F, a readout's column
                raise RunStopped("diverged", non_finite_message(
                    err.found, writer.file, [row["name"] for row in simulation.trial_rows]),
                    scenario.duration_ms) from None
            if checkpoints is not None:
                checkpoints.remove()
        except RunStopped as stop:
            Network._globally_running = False  # the loop was left by an exception
            between = checkpoints is not None and checkpoints.stopped_between
            if stop.reason == "interrupted" and not keep_partial:
                writer.abort()
                raise RunInterrupted(interrupted_message(stop, output, checkpoints, False),
                                     None) from None
            try:
                if finished:  # every trial ran; the commit found what they computed wrong
                    stopped_at = stop.t_ms * 1e-3
                else:  # stopped between two trials: no trial's row to add
                    stopped_at = simulation.stopped(runs.members if runs and not between else [],
                                                    stop.reason, stop.t_ms * 1e-3)
                    simulation.finish()
                writer.file.attrs["failure"] = stop.message
                writer.file.attrs["stopped_at"] = stopped_at
                writer.commit(status=stop.reason, overwrite=overwrite)
            except BaseException:
                writer.abort()
                raise
            if stop.reason == "diverged":
                if checkpoints is not None:
                    checkpoints.remove()  # a resumed run would diverge again
                raise DivergenceError(stop.message, output) from None
            raise RunInterrupted(interrupted_message(stop, output, checkpoints, True),
                                 output) from None
        except BaseException:
            writer.abort()
            raise
    if progress:
        progress(1.0)
