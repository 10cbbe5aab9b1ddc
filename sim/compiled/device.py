"""Building and running one Brian2 network on the ``cpp_standalone`` device from inside pcsim.

    with standalone("posner-5units") as program:          # Brian2 now builds C++ code
        group = NeuronGroup(..., name="beliefs")            # name every object: see below
        monitor = StateMonitor(group, "mu", record=True, name="samples")
        program.stop_when(group, "not (abs(mu) <= 1e6)", "rate_limit")
        outcome = program.run(Network(group, monitor, name="posner"), duration)
        mu = monitor.mu[:]                                  # read inside the block
    # here Brian2 is back on the runtime device, with its preferences as they were

- **A cache directory per model shape.** ``key`` names the shape; the program is built in
  ``<cache root>/<key>`` (``$PCSIM_STANDALONE_CACHE``, else ``$XDG_CACHE_HOME/pcsim/standalone``
  or ``~/.cache/pcsim/standalone``) and kept there, so a later build of the same network, in
  this process or another, compiles nothing: Brian2 rewrites only the sources whose text
  changed, and ``make`` recompiles only those. The generated sources name Brian2's objects, so
  every object needs an explicit ``name`` (automatic names such as ``neurongroup_1`` depend on
  which objects are alive: ``Program.run`` warns when Brian2 had to number one). Values set
  from Python are data files read when the program starts (initial values, single ones too
  (``sim.compiled.values``), and ``TimedArray`` contents: changing them compiles nothing);
  sizes, dt and durations are in the code. The key says where to build, never what runs:
  before make, each object whose source's text is not the one it was compiled from is removed
  (``sim.compiled.project``), so networks of different code may share a key (scenarios of
  one shape do, ``sim.compiled.shape``) and each recompiles only what differs.
- **Deterministic ``main.cpp``.** Brian2 initialises the clocks in the order of a Python set,
  which changes between processes (and between builds in one), so a warm build recompiled
  ``main.o`` (~1 s here). ``_sort_single_value_writes`` sorts these independent writes.
- **make is limited** to the cores this process may use (``-j<cores>``; Brian2's default is an
  unlimited ``make -j``, which once spawned ~1,400 compilers), and there is no OpenMP (thread
  synchronisation every step costs a small model 50x). Both preferences are restored on exit.
- **Concurrency.** Build and program run hold an exclusive ``fcntl`` lock on the directory
  (``pcsim.lock``): two processes with the same key take turns; each run writes its results to
  its own ``results-<pid>-<n>`` directory (in memory when they are small:
  ``sim.compiled.results``), which the caller reads (the monitors) until the block ends; then
  it is removed (and those of dead processes by the next build).
- **How a run ended** (``Outcome``): ran to the end, ``"interrupted"`` (SIGINT or SIGTERM to
  pcsim: ``sim.compiled.launch``), or stopped by a compiled check (``Program.stop_when``) at the
  first step where it held. Brian2 skips network operations on this device without a word:
  ``assert_no_network_operations`` refuses them.

Measured (``tests/test_compiled_device.py``'s ODE network: 3 neurons, 4 clocks, 5 code
objects; 2 cores, gcc 12.2, Brian2 2.9.0, the machine loaded 2-3x by other test runs, so
timings vary): ``Program.run`` of 300 steps, building 11 object files in a new directory:
4-12 s (build); the same network again in the same process: 0.03-0.04 s, nothing compiled (the
whole ``run`` call 0.07-0.08 s); in a new process: 0.45-0.55 s, nothing compiled (Python's
first code generation; ``run`` 0.5-0.6 s). Without sorting ``main.cpp``'s clock writes, a warm
build recompiled ``main.o`` (1 file, +0.7-1.7 s) in most processes, the same one included. A
new duration recompiles ``main.o`` and the progress ticker (2 files, 1.2-2.7 s). The program:
0.02-0.05 s of start and results for 300 steps; its loop 0.71-0.76 us a step over 1,000,000
steps, with or without progress lines (Brian2's ``report=``: 2.9 us).
"""

from __future__ import annotations

import contextlib
import gc
import itertools
import math
import os
import re
import shlex
import shutil
import time
import warnings
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

from sim.compiled import adopt, headers, known, launch, project, results, stand_in, warm
from sim.compiled.bookkeeping import make_command
from sim.compiled.shape import default_cache_root
from sim.errors import DeviceUnsupportedError
from sim.file_lock import locked

LOCK_FILE = "pcsim.lock"
_KEY = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*")
_NUMBERED = re.compile(r"_codeobject_\d+$")
_runs = itertools.count()


@dataclass
class Outcome:
    """How a program run ended. ``completed``: the fraction of the run done (Brian2's
    ``last_run_info.txt`` has it rounded); ``stopped_by``: None (ran to the end),
    ``"interrupted"`` (a signal to pcsim: ``signal_name`` says which) or the name of the
    ``stop_when`` check that fired; ``t_stop_s``: the network time of the step where that
    check fired, else the time the run reached; ``build_s``: Python's code generation and
    ``make``; ``run_s``: the program (wall, with its start and the writing of results),
    ``loop_s`` its simulation loop (as the program measured it: CPU time); ``compiled_files``:
    object files (re)compiled by this build; ``reused``: the program built before from the
    same key ran with this run's data files, nothing generated (``sim.compiled.known``)."""

    completed: float
    stopped_by: str | None
    t_stop_s: float
    build_s: float
    run_s: float
    compiled_files: int
    loop_s: float = 0.0
    signal_name: str | None = None
    reused: bool = False


def make_jobs() -> int:
    """How many compilers ``make`` may run at once: the cores this process may use."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1


def finest_clock(network):
    """The clock with the smallest step among the network's objects (the run's clock)."""
    clocks = [obj.clock for obj in network.sorted_objects if getattr(obj, "clock", None)]
    return min(clocks, key=lambda clock: float(clock.dt_))


def assert_no_network_operations(network, objects: list | None = None) -> None:
    """Refuse a network with Python network operations: the standalone device would skip
    them (no call, no warning), so the run would silently differ. ``objects``:
    ``known.all_objects(network.objects)``, if known."""
    from brian2 import NetworkOperation

    found = [obj.name for obj in objects or known.all_objects(network.objects)
             if isinstance(obj, NetworkOperation)]
    if found:
        raise DeviceUnsupportedError(
            f"the compiled (cpp_standalone) device cannot run Python network operations, and "
            f"this network has {len(found)}: {', '.join(sorted(found))}; use the runtime device")


class Program:
    """One network's compiled program in ``directory``; made by ``standalone``."""

    def __init__(self, directory: Path, header: Sequence[str] = ()) -> None:
        self.directory = directory
        self.header = list(header)  # the precompiled header's flags (sim.compiled.headers)
        self.results_dir: Path | None = None
        self._checks: list[str] = []
        self.reused = False

    def stop_when(self, group, condition: str, name: str, when: str = "start",
                  order: int = 0) -> None:
        """Stop the run at the end of the first step where ``condition`` (Brian2 code over
        ``group``'s variables) holds for any neuron: a ``run_regularly`` every step (at
        ``when``, ``order``) calls the compiled ``pcsim_stop``; ``run`` then reports ``name``.
        For a limit write ``not (abs(v) <= limit)``: true for NaN too."""
        if not name.isidentifier():
            raise ValueError(f"a stop check's name must be an identifier, not {name!r}")
        self._checks.append(name)
        group.run_regularly(
            f"pcsim_hit = {launch.STOP_FUNCTION}(int({condition}), "
            f"{len(self._checks) - 1}, t)",
            when=when, order=order, name=f"{group.name}_stop_{name}")

    def run(self, network, duration, report_every_s: float | None = None,
            progress: Callable[[float], None] | None = None,
            namespace: dict | None = None,
            interrupted: Callable[[], str | None] = lambda: None) -> Outcome:
        """Record ``network.run(duration)``, build the program (compiling what changed), run
        it; the monitors can then be read until the ``standalone`` block ends. ``progress``
        gets the completed fraction: 0 first, the final fraction last, and with
        ``report_every_s`` (wall seconds; a constant of a compiled code object) a line from the
        program at that interval in between (``launch.progress_group``).

        ``namespace``: Brian2's run namespace; by default an empty one, as in pcsim's runs
        (groups carry their own). Brian2's implicit namespace, the caller's locals, would keep
        the caller's objects alive (the frame's ``f_locals`` snapshot), and with them their
        names, which a later block's objects then could not have.

        ``interrupted``: the name of a signal pcsim took before make or the program started
        (its handler only notes it), else None; asked before each, so a Ctrl-C while Brian2
        generates the code stops the run there, not after a whole build and run."""
        from brian2 import device, prefs

        if self.results_dir is not None:
            raise RuntimeError("a standalone block runs one network once")
        objects = known.all_objects(network.objects)
        assert_no_network_operations(network, objects)
        start = time.perf_counter()
        device.insert_code("after_network_run", launch.IGNORE_SIGINT_AFTER_RUN)
        t_start_s, duration_s = float(network.t_), float(duration)
        # always there (it costs nothing measurable): adding it changes objects.h, which
        # every source includes, so switching it on or off would recompile everything
        ticker = launch.progress_group(t_start_s, duration_s, report_every_s or math.inf,
                                       finest_clock(network))
        network.add(ticker)
        objects = sorted([*objects, *known.all_objects([ticker])], key=lambda obj: obj.name)
        # a run namespace's values may be compiled in, and the key does not describe it
        key = None if namespace else known.program_key(network, t_start_s, duration_s,
                                                       objects)
        name = f"results-{os.getpid()}-{next(_runs)}"
        self.results_dir = self.directory / name
        make = prefs.devices.cpp_standalone.make_cmd_unix
        command = make_command(  # objects.cpp at -O0 (sim.compiled.bookkeeping)
            self.directory,
            [*shlex.split(make), *prefs.devices.cpp_standalone.extra_make_args_unix])
        with locked(self.directory / LOCK_FILE):
            results.remove_dead(self.directory)
            data = known.known_data(self.directory, key, command,
                                    lambda: known.data_files(device, objects))
            reused = self.reused = data is not None
            if reused:  # the program built here from this key: its data files only
                stand_in.stand_in_for_run(network, duration_s, self.directory)
                network.remove(ticker)
                warm.write_data(self.directory, data)
                build_s, compiled = time.perf_counter() - start, 0
            else:
                build_s, compiled, stopped = self._build(network, duration, namespace, ticker,
                                                         key, command, start, interrupted)
                if stopped is not None:
                    return Outcome(0.0, "interrupted", t_start_s, build_s, 0.0, 0,
                                   signal_name=stopped)
            self.results_dir = results.results_folder(  # in memory when small
                self.directory, name, results.expected_bytes(network, duration_s, device))
            if signal_name := interrupted():
                return Outcome(0.0, "interrupted", t_start_s, build_s, 0.0, compiled,
                               signal_name=signal_name, reused=reused)
            self.results_dir.mkdir(exist_ok=True)
            if progress is not None:
                progress(0.0)
            start = time.perf_counter()
            launched = launch.run_program(self.directory, self.results_dir,
                                          adopt.program_environment(device), progress)
            run_s = time.perf_counter() - start
        if launched.returncode != 0:
            if launched.signal_name is not None:  # a signal before or while it started
                raise KeyboardInterrupt
            raise RuntimeError(f"the compiled program in {self.directory} failed (exit "
                               f"{launched.returncode}):\n" + "\n".join(launched.output))
        results.check_written(self.results_dir)
        adopt.adopt_results(device, self.directory,
                            os.path.relpath(self.results_dir, self.directory))
        loop_s = float((self.results_dir / "last_run_info.txt").read_text().split()[0])
        # the time the run reached, as Brian2's program sets it (the earliest clock); its
        # completed fraction in last_run_info.txt is the same, rounded to 6 digits
        reached_s = min(float(clock.variables["t"].get_value().item())
                        for clock in {obj.clock for obj in network.sorted_objects})
        completed = (reached_s - t_start_s) / duration_s if duration_s > 0 else 1.0
        if progress is not None:
            progress(completed)
        fired = launch.read_stopped_by(self.results_dir)
        if fired is not None:
            stopped_by, t_stop_s = self._checks[fired[0]], fired[1]
        else:
            stopped_by = None if launched.signal_name is None else "interrupted"
            t_stop_s = reached_s
        return Outcome(completed, stopped_by, t_stop_s, build_s, run_s, compiled, loop_s,
                       launched.signal_name, reused)

    def _build(self, network, duration, namespace: dict | None, ticker, key: str | None,
               command: list[str], start: float, interrupted: Callable[[], str | None]
               ) -> tuple[float, int, str | None]:
        """Generate the program's code (``network.run``), write the project, compile what
        changed; (build seconds, object files compiled, the signal that stopped it or
        None). Under the directory's lock."""
        from brian2 import device, prefs

        network.run(duration, namespace={} if namespace is None else namespace)
        network.remove(ticker)
        _warn_numbered_names(device.code_objects)
        _sort_single_value_writes(device.main_queue)
        known.forget(self.directory)
        name = os.path.relpath(self.results_dir, self.directory)
        before = _object_files(self.directory)
        # Brian2 writes the sources and the makefile; make runs here (launch.run_make),
        # where a signal stops it (under Brian2's os.system it was ignored)
        make = prefs.devices.cpp_standalone.make_cmd_unix
        prefs.devices.cpp_standalone.make_cmd_unix = "true"
        try:
            device.build(directory=str(self.directory), results_directory=name,
                         compile=True, run=False, with_output=False)
        finally:
            prefs.devices.cpp_standalone.make_cmd_unix = make
        written = project.digests(self.directory, device.writer)
        project.drop_stale_objects(self.directory, written)
        if signal_name := interrupted():
            return time.perf_counter() - start, 0, signal_name
        if warm.make_needed(self.directory, command):  # else make would find nothing to do
            warm.forget_made(self.directory)
            stopped = headers.precompile(self.directory, self.header, command,
                                         launch.run_make)
            if stopped is not None:
                return time.perf_counter() - start, 0, stopped
            made = launch.run_make(self.directory, command)
            if made.returncode != 0 and made.signal_name is None and headers.forget(
                    self.header):  # once more, the standard headers read as text
                made = launch.run_make(self.directory, command)
            if made.signal_name is not None:
                return time.perf_counter() - start, 0, made.signal_name
            if made.returncode != 0:
                raise RuntimeError(f"compiling the program in {self.directory} failed "
                                   f"(make exit {made.returncode}):\n"
                                   + "\n".join(made.output))
            project.record(self.directory, written)
            warm.made(self.directory, command)
        known.remember(self.directory, key, device.static_arrays)
        compiled = sum(1 for path, mtime in _object_files(self.directory).items()
                       if before.get(path) != mtime)
        return time.perf_counter() - start, compiled, None

    def remove_results(self) -> None:
        """Remove this run's results directory (the monitors cannot be read any more)."""
        if self.results_dir is not None:
            shutil.rmtree(self.results_dir, ignore_errors=True)


@contextlib.contextmanager
def standalone(key: str, cache_root: Path | None = None) -> Iterator[Program]:
    """Switch Brian2 to ``cpp_standalone`` (``build_on_run=False``) for building one network
    in ``<cache_root>/<key>``; on exit, normal or not, remove the run's results, switch back to
    the device in use before (``device.reinit()``, ``reset_device()``) and restore the
    preferences, so later runs in the process are unaffected."""
    from brian2 import prefs, set_device
    from brian2.core.functions import DEFAULT_FUNCTIONS
    from brian2.devices.cpp_standalone.device import CPPStandaloneDevice
    from brian2.devices.device import get_device, reset_device

    from sim.compiled.clocks import same_ticks_as_runtime
    from sim.compiled.values import values_as_data
    from sim.compiler_flags import gcc_arguments

    if not _KEY.fullmatch(key):
        raise ValueError(f"a standalone key names a directory: letters, digits, '.', '_', "
                         f"'-', not {key!r}")
    if isinstance(get_device(), CPPStandaloneDevice):
        raise RuntimeError("standalone blocks do not nest")
    directory = (cache_root or default_cache_root()) / key
    directory.mkdir(parents=True, exist_ok=True)
    gc.collect()  # earlier networks' objects hold their names until collected
    # the same flags in every process, configure_brian's or not (sim.compiler_flags), and the
    # standard headers precompiled in a folder of the cache for them (sim.compiled.headers)
    compile_args = gcc_arguments(prefs["codegen.cpp.extra_compile_args_gcc"])  # a new list
    header = headers.include_flags(directory.parent, compile_args)
    settings = {"devices.cpp_standalone.extra_make_args_unix": [f"-j{make_jobs()}"],
                "devices.cpp_standalone.openmp_threads": 0,
                "codegen.cpp.extra_compile_args_gcc": [*compile_args, *header]}
    saved = {name: prefs[name] for name in settings}
    set_device("cpp_standalone", directory=str(directory), build_on_run=False)
    compiled_device = get_device()
    same_ticks_as_runtime(compiled_device)  # the monitors' clocks (sim.compiled.clocks)
    values_as_data(compiled_device)  # a new value compiles nothing (sim.compiled.values)
    warm.skip_repeated_work(compiled_device)  # what a warm build repeats (sim.compiled.warm)
    program = Program(directory, header)
    try:
        for name, value in settings.items():
            prefs[name] = value
        DEFAULT_FUNCTIONS[launch.STOP_FUNCTION] = launch.stop_function()
        yield program
    finally:
        program.remove_results()
        DEFAULT_FUNCTIONS.pop(launch.STOP_FUNCTION, None)
        compiled_device.reinit()
        reset_device()
        for name, value in saved.items():
            prefs[name] = value


def _warn_numbered_names(code_objects: dict) -> None:
    """Brian2 numbers a code object's name (``beliefs_codeobject_1``) when an object of an
    earlier network with that name is still alive; the sources then differ from the cached
    ones and everything recompiles."""
    numbered = sorted(name for name in code_objects if _NUMBERED.search(name))
    if numbered:
        warnings.warn(f"objects of an earlier network are still alive, so Brian2 renamed "
                      f"{', '.join(numbered)}: the cached program is recompiled (drop the "
                      "references to earlier networks before a standalone block)", stacklevel=3)


def _object_files(directory: Path) -> dict[Path, int]:
    return {path: path.stat().st_mtime_ns for path in directory.rglob("*.o")}


def _sort_single_value_writes(main_queue: list) -> None:
    """Sort each run of consecutive single-value writes (``array[i] = value;`` in ``main.cpp``)
    by array and index. Brian2 queues the clocks' ``t`` and ``timestep`` resets in the order of
    a Python set, which differs between processes; the writes are independent constants, and
    a stable sort keeps the order of writes to the same element."""
    start = 0
    while start < len(main_queue):
        end = start
        while end < len(main_queue) and main_queue[end][0] == "set_by_single_value":
            end += 1
        if end - start > 1:
            main_queue[start:end] = sorted(main_queue[start:end], key=lambda item: item[1][:2])
        start = end + 1
