"""The compiled program as a child process: signals, progress, and the compiled stop check.

pcsim starts the program itself (not through ``device.run``, which only waits for it) so that:

- **Ctrl-C and SIGTERM stop it cleanly.** The program runs in its own process group, so a
  terminal's Ctrl-C reaches pcsim only; pcsim forwards one SIGINT to the program, whose own
  handler (Brian2's ``_int_handler`` in ``main.cpp``) sets ``Network::_globally_stopped``: the
  step in progress finishes, the run ends, and the program writes its results (the monitors up
  to there) and exits 0. A second signal kills the program and raises ``KeyboardInterrupt``
  (not in a sweep's worker, whose sweep escalates itself: ``sim.stop_signals``).
  A SIGINT before the program's network runs kills it (Brian2's handler re-raises it outside a
  run); after its run it is ignored (``IGNORE_SIGINT_AFTER_RUN``) so the results are written
  whole. The program dies with pcsim (``PR_SET_PDEATHSIG``, Linux): the program sets it
  itself when it starts (``DIES_WITH_PARENT_CPP``), so pcsim starts it without a
  ``preexec_fn``, which forces Python to ``fork`` pcsim's whole address space (~30 ms wall,
  ~11 ms CPU for a 500 MB process, measured) where it otherwise uses ``vfork`` (~1 ms); make
  keeps the ``preexec_fn`` (it runs rarely).
- **Progress is read as it comes.** A one-neuron group (``progress_group``) calls the
  compiled ``pcsim_progress`` every ``PROGRESS_EVERY_STEPS`` steps; it prints
  ``pcsim-progress <fraction>`` when ``report_every_s`` of wall time have passed since its last
  line, and pcsim reads the lines from the program's stdout as they come. Not Brian2's own
  ``report=``: its loop reads the CPU clock before every code object of every step, which
  tripled the step of the test network (0.7 to 2.9 us; ``sim.compiled.device``).
- **A compiled check can stop the run** (``stop_function``): a user function that sets the same
  flag as Ctrl-C and writes which check fired, and when, to ``STOPPED_BY_FILE`` in the results
  directory. This relies on Brian2's generated C++ (``Network::_globally_stopped``,
  ``brian::results_dir``; Brian2 2.9), not on a documented API; ``tests/test_compiled_device.py``
  pins it.
"""

from __future__ import annotations

import collections
import contextlib
import ctypes
import functools
import os
import signal
import subprocess
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

from sim.stop_signals import second_signal_stops_at_once

STOP_FUNCTION = "pcsim_stop"
STOPPED_BY_FILE = "pcsim_stopped_by.txt"
PROGRESS_PREFIX = "pcsim-progress "

STOP_CPP = f"""
double {STOP_FUNCTION}(const double hit, const double check, const double t)
{{
    if (hit != 0.0 && !Network::_globally_stopped)
    {{
        Network::_globally_stopped = true;
        std::ofstream out(brian::results_dir + "{STOPPED_BY_FILE}");
        out.precision(17);
        out << (long)check << " " << t << std::endl;
    }}
    return hit;
}}
"""

PARENT_ENVIRONMENT = "PCSIM_PARENT_PID"  # pcsim's pid, for the program's check below
# run before main (a static initialiser in the progress function's support code, which every
# program has): SIGKILL when pcsim dies, and exit now if pcsim died before this ran (the
# program's parent is then another process than the one named in PARENT_ENVIRONMENT)
DIES_WITH_PARENT_CPP = f"""
#ifdef __linux__
extern "C" int prctl(int option, ...);
#endif
const bool pcsim_dies_with_parent = []()
{{
#ifdef __linux__
    prctl(1 /* PR_SET_PDEATHSIG */, SIGKILL);
    const char* parent = std::getenv("{PARENT_ENVIRONMENT}");
    if (parent != nullptr && (long)getppid() != std::atol(parent))
        std::_Exit(1);
#endif
    return true;
}}();
"""

PROGRESS_FUNCTION = "pcsim_progress"
PROGRESS_EVERY_STEPS = 100
PROGRESS_CPP = DIES_WITH_PARENT_CPP + f"""
double {PROGRESS_FUNCTION}(const double fraction, const double period)
{{
    static std::chrono::steady_clock::time_point last = std::chrono::steady_clock::now();
    const std::chrono::steady_clock::time_point now = std::chrono::steady_clock::now();
    if (std::chrono::duration<double>(now - last).count() >= period)
    {{
        last = now;
        std::cout.precision(17);
        std::cout << "{PROGRESS_PREFIX}" << fraction << std::endl;
    }}
    return fraction;
}}
"""

IGNORE_SIGINT_AFTER_RUN = "std::signal(SIGINT, SIG_IGN);"

_PR_SET_PDEATHSIG = 1


@functools.cache
def stop_function():
    """The Brian2 function ``pcsim_stop(hit, check, t)``: C++ only (the standalone device);
    when ``hit`` is non-zero and nothing stopped the run yet, it stops the run at the end of
    this step and writes ``check`` (an index) and ``t`` to ``STOPPED_BY_FILE``. One object per
    process: the code generated with it can be reused (``sim.compiled.warm``)."""
    from brian2 import check_units, implementation, second

    @implementation("cpp", STOP_CPP, headers=['"network.h"', '"objects.h"', "<fstream>"])
    @check_units(hit=1, check=1, t=second, result=1)
    def pcsim_stop(hit, check, t):
        raise NotImplementedError("pcsim_stop exists only on the cpp_standalone device")

    return pcsim_stop


def progress_group(t_start_s: float, duration_s: float, report_every_s: float, clock):
    """A one-neuron group (``pcsim_progress``) that prints the run's completed fraction every
    ``report_every_s`` of wall time, checked every ``PROGRESS_EVERY_STEPS`` steps of
    ``clock`` (the run's: the group itself is on that clock, since the program's loop steps
    at the finest clock of any object; on Brian2's default 0.1 ms clock it made a 0.5 ms run
    loop five times a step)."""
    from brian2 import Clock, NeuronGroup

    group = NeuronGroup(1, "", name="pcsim_progress", clock=clock, namespace={
        PROGRESS_FUNCTION: progress_function(), "pcsim_t_start": t_start_s,
        "pcsim_duration": duration_s, "pcsim_period": report_every_s})
    # its clock named, as Brian2 names it in a new process: a name Brian2 makes up is
    # numbered (``_clock_1``) while an earlier run's clock is alive, which changed the sources
    group.run_regularly(
        f"pcsim_tick = {PROGRESS_FUNCTION}((t / second - pcsim_t_start) / pcsim_duration, "
        "pcsim_period)", clock=Clock(PROGRESS_EVERY_STEPS * clock.dt,
                                     name="pcsim_progress_tick_clock"),
        when="end", name="pcsim_progress_tick")
    return group


@functools.cache
def progress_function():
    """The Brian2 function ``pcsim_progress(fraction, period)`` (C++ only), one per process."""
    from brian2 import check_units, implementation

    @implementation("cpp", PROGRESS_CPP,
                    headers=["<chrono>", "<iostream>", "<csignal>", "<cstdlib>", "<unistd.h>"])
    @check_units(fraction=1, period=1, result=1)
    def pcsim_progress(fraction, period):
        raise NotImplementedError("pcsim_progress exists only on the cpp_standalone device")

    return pcsim_progress


def read_stopped_by(results_dir: Path) -> tuple[int, float] | None:
    """(the check's index, the network time in s of the step where it fired), or None."""
    path = results_dir / STOPPED_BY_FILE
    if not path.exists():
        return None
    index, t_s = path.read_text().split()
    return int(index), float(t_s)


@dataclass
class Launched:
    """How the program ended: ``signal_name`` is the signal pcsim forwarded to it (SIGINT or
    SIGTERM received by pcsim), or None; ``output`` the last lines it printed (no progress)."""

    returncode: int
    signal_name: str | None
    output: list[str]


def run_program(directory: Path, results_dir: Path, env: dict[str, str],
           progress: Callable[[float], None] | None = None) -> Launched:
    """Run ``directory``'s program ``./main``, writing its results to ``results_dir``, until it
    ends; ``progress`` gets each completed fraction it reports. The program itself makes sure
    it dies with pcsim (``DIES_WITH_PARENT_CPP``)."""
    return _run_child(["./main", "--results_dir", os.path.join(str(results_dir), "")],
                      directory, {**env, PARENT_ENVIRONMENT: str(os.getpid())},
                      progress=progress, dies_with_parent=False)


def run_make(directory: Path, command: list[str]) -> Launched:
    """Compile ``directory``'s program with ``command`` (make and its arguments: Brian2's
    ``make_cmd_unix`` and ``extra_make_args_unix``; Brian2 runs it through ``os.system``,
    which ignores SIGINT in pcsim until make ends: a Ctrl-C during a compile was lost). Here
    make runs in its own process group; SIGINT or SIGTERM to pcsim stops it and its compilers
    (``Launched.signal_name``); a second signal kills them and raises ``KeyboardInterrupt``."""
    return _run_child(command, directory, None, group=True)


def _run_child(command: list[str], directory: Path, env: dict[str, str] | None,
               group: bool = False, progress: Callable[[float], None] | None = None,
               dies_with_parent: bool = True) -> Launched:
    """``command`` in ``directory``, in a process group of its own (``dies_with_parent``:
    killed if pcsim dies, set before its ``exec``), with pcsim's signals forwarded
    (``group``: to the whole group, for make's compilers), until it ends; its progress lines
    (``PROGRESS_PREFIX``) go to ``progress``, its last other lines to ``Launched.output``."""
    output: collections.deque[str] = collections.deque(maxlen=40)
    process = subprocess.Popen(command, cwd=directory, env=env, stdout=subprocess.PIPE,
                               stderr=subprocess.STDOUT, text=True, process_group=0,
                               preexec_fn=_die_with_parent() if dies_with_parent else None)
    received: list[str] = []
    try:
        with _forwarding_signals(process, received, group=group):
            assert process.stdout is not None
            for line in process.stdout:
                if line.startswith(PROGRESS_PREFIX):
                    if progress is not None:
                        progress(float(line[len(PROGRESS_PREFIX):]))
                elif line.strip():
                    output.append(line.rstrip())
            returncode = process.wait()
    finally:
        if process.poll() is None:
            _signal(process, signal.SIGKILL, group)
            process.wait()
    return Launched(returncode, received[0] if received else None, list(output))


def _signal(process: subprocess.Popen, signum: int, group: bool) -> None:
    """``signum`` to the child (to its whole process group with ``group``), if it still runs."""
    with contextlib.suppress(ProcessLookupError):
        if group:
            os.killpg(process.pid, signum)
        else:
            process.send_signal(signum)


@contextlib.contextmanager
def _forwarding_signals(process: subprocess.Popen, received: list[str],
                        group: bool = False) -> Iterator[None]:
    """While the program runs, SIGINT and SIGTERM to pcsim stop it cleanly (one SIGINT
    forwarded: to its whole process group with ``group``, as make's compilers are); a second
    signal kills it and raises ``KeyboardInterrupt``."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def handler(signum, frame) -> None:
        if received:
            if not second_signal_stops_at_once():  # a sweep's worker (sim.stop_signals)
                return
            _signal(process, signal.SIGKILL, group)
            raise KeyboardInterrupt
        received.append(signal.Signals(signum).name)
        _signal(process, signal.SIGINT, group)

    previous = {signum: signal.signal(signum, handler)
                for signum in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield
    finally:
        for signum, old in previous.items():
            signal.signal(signum, old)


def _die_with_parent() -> Callable[[], None] | None:
    """What the child runs before ``exec`` to be killed if pcsim dies (Linux ``prctl``; None
    where the C library has no ``prctl``). Looked up here, in the parent: the child only calls."""
    try:
        prctl = ctypes.CDLL(None).prctl
    except (OSError, AttributeError):
        return None
    return lambda: prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)
