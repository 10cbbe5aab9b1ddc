"""The compiled (``cpp_standalone``) device machinery, ``sim.compiled.device``, on small
hand-written Brian2 networks: results equal the runtime device's, Brian2 is back on the runtime
device afterwards, a warm build compiles nothing (also in a new process), make runs with a job
limit, two processes share a cache directory safely, compiled checks stop a diverging run at
the right step (NaN too), Ctrl-C stops the program cleanly, progress is reported, and network
operations are refused.

The networks are built by the functions below, also run as child processes
(``python tests/test_compiled_device.py MODE CACHE_ROOT ...``, printing JSON).
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from brian2 import (
    Network,
    NetworkOperation,
    NeuronGroup,
    StateMonitor,
    TimedArray,
    defaultclock,
    ms,
    prefs,
)
from brian2.devices.device import get_device, runtime_device

from sim.compiled import bookkeeping, headers, results
from sim.compiled.device import Outcome, assert_no_network_operations, make_jobs, standalone
from sim.errors import DeviceUnsupportedError

DT_S = 1e-4
ROOT = Path(__file__).resolve().parents[1]
MAKE_PREF = "devices.cpp_standalone.extra_make_args_unix"
# one worker runs the module (pytest-xdist, --dist loadgroup): the session's cache_root is
# a worker's own, so tests of one network on two workers built it twice (ode, diverge, decay)
pytestmark = pytest.mark.xdist_group("compiled_device")


@pytest.fixture(scope="session")
def cache_root(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("standalone-cache")


@pytest.fixture(scope="session")
def ode_cold(cache_root) -> tuple[Outcome, np.ndarray, np.ndarray, bool]:
    """The ODE network's first (cold) build and run, 30 ms: the outcome, the recorded v, w and
    slow (variable, neuron, sample), the sample times, and whether the environment variables
    were the same after the block as before."""
    environment = dict(os.environ)
    with standalone("ode", cache_root) as program:
        network, monitor = ode_network()
        outcome = program.run(network, 30 * ms)
        recorded = np.stack([np.asarray(monitor.v), np.asarray(monitor.w),
                             np.asarray(monitor.slow)])
        times = np.asarray(monitor.t_)
    return outcome, recorded, times, dict(os.environ) == environment


def ode_network() -> tuple[Network, StateMonitor]:
    """3 neurons, an ODE driven by a ``run_regularly``, four clocks; every object named (the
    warm cache depends on it)."""
    defaultclock.dt = DT_S * 1e3 * ms
    group = NeuronGroup(3, "dv/dt = (-v + w) / tau : 1\nw : 1\nslow : 1\ntau : second "
                        "(constant)", method="euler", namespace={"period": 7 * ms}, name="ode")
    group.v = [1.0, 2.0, 3.0]
    group.tau = [5, 10, 20] * ms
    group.run_regularly("w = sin(2 * pi * t / period)", name="ode_drive")
    group.run_regularly("slow = v", dt=0.5 * ms, when="start", name="ode_slow")
    monitor = StateMonitor(group, ["v", "w", "slow"], record=True, name="ode_samples")
    coarse = StateMonitor(group, "v", record=[0], dt=2 * ms, name="ode_coarse")
    return Network(group, monitor, coarse, name="ode_network"), monitor


def decay_network(scale: float, steps: int) -> tuple[Network, StateMonitor, np.ndarray]:
    """dv/dt = -v / tau from v0 = scale * [1, 2, 3], recorded every 10 steps; and the same by
    Euler in NumPy."""
    defaultclock.dt = DT_S * 1e3 * ms
    group = NeuronGroup(3, "dv/dt = -v / tau : 1\ntau : second (constant)", method="euler",
                        name="decay")
    v0, tau_s = scale * np.array([1.0, 2.0, 3.0]), np.array([0.05, 0.1, 0.2])
    group.v, group.tau = v0, tau_s * 1e3 * ms
    monitor = StateMonitor(group, "v", record=True, dt=10 * DT_S * 1e3 * ms, name="decay_samples")
    expected = v0[:, None] * (1 - DT_S / tau_s[:, None]) ** np.arange(0, steps, 10)[None, :]
    return Network(group, monitor, name="decay_network"), monitor, expected


def child(mode: str, cache_root: Path, *args: str) -> None:
    """A process of its own: ``warm`` builds the ODE network; ``concurrent SCALE GO`` waits for
    the file GO, then runs the decay network; ``interrupt`` runs the decay network for long,
    printing progress; ``quiet`` too, printing nothing."""
    if mode == "warm":
        with standalone("ode", cache_root) as program:
            network, _ = ode_network()
            outcome = program.run(network, 30 * ms)
        print(json.dumps(vars(outcome)))
    elif mode == "concurrent":
        steps = 20_000
        with standalone("decay", cache_root) as program:
            network, monitor, expected = decay_network(float(args[0]), steps)
            print("ready", flush=True)
            while not Path(args[1]).exists():
                time.sleep(0.01)
            outcome = program.run(network, steps * DT_S * 1e3 * ms)
            error = float(np.max(np.abs(np.asarray(monitor.v) - expected)))
            print(json.dumps({**vars(outcome), "error": error}), flush=True)
    elif mode == "quiet":  # as interrupt, printing nothing
        with standalone("decay", cache_root) as program:
            network, _, _ = decay_network(1.0, 10)
            program.run(network, 40_000_000 * DT_S * 1e3 * ms)
    elif mode == "interrupt":
        steps = 40_000_000  # ~10-20 s if not interrupted
        with standalone("decay", cache_root) as program:
            network, monitor, _ = decay_network(1.0, 10)
            outcome = program.run(network, steps * DT_S * 1e3 * ms, report_every_s=0.05,
                                  progress=lambda f: print(f"progress {f!r}", flush=True))
            last_sample_s = float(np.asarray(monitor.t_)[-1])
        print(json.dumps({**vars(outcome), "last_sample_s": last_sample_s}), flush=True)


def run_child(*args: str) -> subprocess.Popen:
    """A child in a session of its own (a signal to its group reaches nothing else)."""
    return subprocess.Popen([sys.executable, __file__, *args], stdout=subprocess.PIPE,
                            text=True, env={**os.environ, "PYTHONPATH": str(ROOT)},
                            start_new_session=True)


def finish(process: subprocess.Popen, timeout_s: float) -> str:
    """The child's remaining output once it ends (killed, with its group, after ``timeout_s``)."""
    try:
        return process.communicate(timeout=timeout_s)[0]
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        process.communicate()
        raise


def last_json(output: str) -> dict:
    return json.loads(output.strip().splitlines()[-1])


def runtime_reference(duration) -> np.ndarray:
    """The ODE network on the runtime device (NumPy target: nothing to compile)."""
    target = prefs["codegen.target"]
    prefs["codegen.target"] = "numpy"
    try:
        network, monitor = ode_network()
        network.run(duration)
        return np.stack([np.asarray(monitor.v), np.asarray(monitor.w), np.asarray(monitor.slow)])
    finally:
        prefs["codegen.target"] = target


def test_results_equal_the_runtime_device_and_runtime_runs_afterwards(ode_cold):
    outcome, compiled, times, same_environment = ode_cold
    assert (outcome.completed, outcome.stopped_by) == (1.0, None) and same_environment
    assert outcome.t_stop_s == pytest.approx(0.03, abs=1e-12)
    assert get_device() is runtime_device
    reference = runtime_reference(30 * ms)  # a runtime network after the block
    np.testing.assert_allclose(times, np.arange(300) * DT_S, rtol=0, atol=1e-12)
    assert compiled.shape == reference.shape == (3, 3, 300)
    np.testing.assert_allclose(compiled, reference, rtol=0, atol=1e-12)
    assert np.max(np.abs(reference[0, :, -1] - reference[0, :, 0])) > 0.5  # it moved


def test_make_has_a_job_limit_and_no_openmp(cache_root, ode_cold, tmp_path):
    """make is called through a recording wrapper: its arguments hold -j<cores>, never a bare
    -j; the makefile has no OpenMP; the preferences are back afterwards."""
    record = tmp_path / "make-args.txt"
    wrapper = tmp_path / "make"
    wrapper.write_text(f'#!/bin/sh\necho "$@" >> {record}\nexec make "$@"\n')
    wrapper.chmod(0o755)
    saved = {name: prefs[name] for name in (MAKE_PREF, "devices.cpp_standalone.make_cmd_unix",
                                            "devices.cpp_standalone.openmp_threads")}
    prefs["devices.cpp_standalone.make_cmd_unix"] = str(wrapper)
    prefs["devices.cpp_standalone.openmp_threads"] = 2  # the block must switch it off
    try:
        with standalone("ode", cache_root) as program:
            network, _ = ode_network()
            program.run(network, 30 * ms)
            makefile = (program.directory / "makefile").read_text()
        assert {name: prefs[name] for name in saved} == {  # as at the block's start
            **saved, "devices.cpp_standalone.make_cmd_unix": str(wrapper),
            "devices.cpp_standalone.openmp_threads": 2}
    finally:
        for name, value in saved.items():
            prefs[name] = value
    # the build's make; a make that precompiles the standard headers (sim.compiled.headers)
    # runs one compiler
    builds = [line.split() for line in record.read_text().splitlines()
              if headers.MAKEFILE not in line]
    assert builds == [[f"-j{len(os.sched_getaffinity(0))}", "-f", "makefile", "-f",
                       bookkeeping.RULES_FILE]]  # objects.cpp's rule (sim.compiled.bookkeeping)
    assert make_jobs() == len(os.sched_getaffinity(0))
    assert "openmp" not in makefile.lower()


def test_a_warm_build_compiles_nothing_in_this_process_or_a_new_one(cache_root, ode_cold):
    cold = ode_cold[0]
    with standalone("ode", cache_root) as program:
        network, monitor = ode_network()
        warm = program.run(network, 30 * ms)
    del network, monitor  # alive, they would keep their names: everything would recompile
    assert cold.compiled_files >= 5 and warm.compiled_files == 0
    assert warm.build_s < cold.build_s / 2
    # a new process: the clocks' initialisation in main.cpp must come out in the same order
    process = run_child("warm", str(cache_root))
    output = finish(process, 120)
    assert process.returncode == 0
    assert last_json(output)["compiled_files"] == 0


def test_two_processes_with_the_same_key_do_not_mix(cache_root, tmp_path):
    """Different initial values (data files and constants of the same build directory), started
    together: each gets its own exact result."""
    go = tmp_path / "go"
    processes = [run_child("concurrent", str(cache_root), str(scale), str(go))
                 for scale in (1.0, 2.0)]
    for process in processes:
        assert process.stdout.readline().strip() == "ready"
    go.touch()
    outcomes = []
    for process in processes:
        output = finish(process, 180)
        assert process.returncode == 0
        outcomes.append(last_json(output))
    for outcome in outcomes:
        assert outcome["completed"] == 1.0 and outcome["error"] < 1e-12
    assert not list((cache_root / "decay").glob("results-*"))  # each removed its own


def test_results_of_dead_processes_are_removed(cache_root, ode_cold):
    """A process killed while its monitors were being read leaves its results directory; the
    next build removes it, and not a living process's."""
    dead = cache_root / "ode" / f"results-{_ended_pid()}-0"
    alive = cache_root / "ode" / f"results-{os.getppid()}-0"
    for folder in (dead, alive):
        folder.mkdir()
        (folder / "_dynamic_array_ode_samples_t").write_bytes(b"")
    with standalone("ode", cache_root) as program:
        network, monitor = ode_network()
        program.run(network, 30 * ms)
    del network, monitor
    assert not dead.exists() and alive.exists()
    shutil.rmtree(alive)


def test_small_results_are_written_in_memory_and_equal_those_on_disk(cache_root, ode_cold,
                                                                     monkeypatch):
    """A run whose results are small writes them to a folder of its own in memory (tmpfs),
    gone when its block ends; the next build removes such a folder of a dead process and keeps
    a living one's; with the limit at 0 the same run writes to the build directory, and the
    monitors read the same values from either."""
    if not results.MEMORY.is_dir():
        pytest.skip(f"no {results.MEMORY} here")
    dead = results.MEMORY / f"{results.PREFIX}results-{_ended_pid()}-0"
    alive = results.MEMORY / f"{results.PREFIX}results-{os.getppid()}-0"
    for folder in (dead, alive):
        folder.mkdir()
    recorded, folders = [], []
    for limit in (results.IN_MEMORY_LIMIT, 0):
        monkeypatch.setattr(results, "IN_MEMORY_LIMIT", limit)
        with standalone("ode", cache_root) as program:
            network, monitor = ode_network()
            assert program.run(network, 30 * ms).compiled_files == 0
            assert (program.results_dir / "last_run_info.txt").is_file()
            folders.append(program.results_dir)
            recorded.append(np.stack([np.asarray(monitor.v), np.asarray(monitor.w)]))
        del network, monitor
    assert folders[0].parent == results.MEMORY and folders[1].parent == cache_root / "ode"
    assert not folders[0].exists() and not folders[1].exists()
    assert not dead.exists() and alive.exists()
    shutil.rmtree(alive)
    assert np.array_equal(recorded[0], recorded[1])
    assert np.array_equal(recorded[0], ode_cold[1][:2])


def _ended_pid() -> int:
    """The process id of a process that has ended."""
    process = subprocess.Popen(["true"])
    process.wait()
    return process.pid


@pytest.mark.parametrize("nan_at_step", [None, 50])
def test_a_compiled_check_stops_at_the_first_bad_step(cache_root, nan_at_step):
    """dv/dt = v / (10 ms) from v = 1 crosses 1e6 at the step an Euler loop finds; an input
    that turns NaN stops the run at its step through the other check (NaN fails abs(x) <= L)."""
    steps, limit = 10_000, 1e6
    values = np.zeros(steps)
    if nan_at_step is not None:
        values[nan_at_step:] = np.nan
    with standalone("diverge", cache_root) as program:
        defaultclock.dt = DT_S * 1e3 * ms
        drive = TimedArray(values, dt=DT_S * 1e3 * ms, name="diverge_input")
        group = NeuronGroup(1, "dv/dt = v / (10 * ms) : 1\nx : 1", method="euler",
                            namespace={"drive": drive}, name="diverge")
        group.v = 1.0
        group.run_regularly("x = drive(t)", when="start", order=-1, name="diverge_drive")
        program.stop_when(group, f"not (abs(v) <= {limit})", "rate_limit")
        program.stop_when(group, "not (abs(x) <= 1)", "input_check")
        monitor = StateMonitor(group, "v", record=0, name="diverge_samples")
        outcome = program.run(Network(group, monitor, name="diverge_network"),
                              steps * DT_S * 1e3 * ms)
        recorded_v, recorded_t = np.asarray(monitor.v)[0], np.asarray(monitor.t_)
    crossing = math.ceil(math.log(limit) / math.log1p(DT_S / 0.01))  # Euler: (1 + dt/tau)^n
    assert crossing == 1389
    fired, step = ("rate_limit", crossing) if nan_at_step is None else ("input_check",
                                                                          nan_at_step)
    assert outcome.stopped_by == fired
    assert outcome.t_stop_s == pytest.approx(step * DT_S, abs=0.5 * DT_S)
    assert outcome.completed == pytest.approx((step + 1) / steps, abs=1e-6)
    assert recorded_t[-1] == pytest.approx(step * DT_S, abs=0.5 * DT_S)
    assert abs(recorded_v[-2]) <= limit and (abs(recorded_v[-1]) > limit) == (fired ==
                                                                              "rate_limit")


@pytest.mark.parametrize(("signum", "to_group"), [(signal.SIGINT, False),
                                                  (signal.SIGINT, True),
                                                  (signal.SIGTERM, False)])
def test_ctrl_c_stops_the_program_and_progress_is_reported(cache_root, signum, to_group):
    """A signal to the Python process while the program runs (SIGINT or SIGTERM, or SIGINT to
    its whole process group, as a terminal's Ctrl-C): the program stops, writes its monitors up
    to there, and the outcome says "interrupted"; before that, progress lines arrived, rising
    from 0."""
    process = run_child("interrupt", str(cache_root))
    fractions = []
    for line in process.stdout:
        fractions.append(float(line.split()[1]))
        if fractions[-1] > 0:
            break
    sent = time.perf_counter()
    if to_group:
        os.killpg(process.pid, signum)
    else:
        process.send_signal(signum)
    output = finish(process, 60)
    stopped_s = time.perf_counter() - sent
    assert process.returncode == 0
    lines = output.strip().splitlines()
    fractions += [float(line.split()[1]) for line in lines[:-1]]
    outcome = json.loads(lines[-1])
    assert outcome["stopped_by"] == "interrupted" and outcome["signal_name"] == signum.name
    assert 0 < outcome["completed"] < 1 and stopped_s < 5
    assert fractions[0] == 0.0 and fractions == sorted(fractions)
    assert fractions[-1] == pytest.approx(outcome["completed"], abs=1e-6)
    duration_s = 40_000_000 * DT_S
    assert outcome["t_stop_s"] == pytest.approx(outcome["completed"] * duration_s, rel=1e-5)
    # the monitor samples every 10 steps: its last sample within the 10 steps before the stop
    # (compared in steps: 10.05 s - 10 dt is 10.049000000000001 in floating point)
    stop_step, last_step = (round(outcome[key] / DT_S) for key in ("t_stop_s", "last_sample_s"))
    assert stop_step - 10 <= last_step < stop_step


def test_the_program_dies_with_pcsim(cache_root):
    """pcsim killed (SIGKILL: no handler runs) while its program runs, printing nothing (a
    line to the dead pcsim's pipe would kill it anyway): the program, in a process group of
    its own, is killed too (it set PR_SET_PDEATHSIG when it started)."""
    process = run_child("quiet", str(cache_root))
    children = Path(f"/proc/{process.pid}/task/{process.pid}/children")
    program, deadline = None, time.perf_counter() + 120  # a cold build first
    while program is None and time.perf_counter() < deadline and process.poll() is None:
        if not children.exists():
            process.kill()
            pytest.skip("no /proc/<pid>/task/<pid>/children here")
        for pid in children.read_text().split():
            with contextlib.suppress(FileNotFoundError, ProcessLookupError):  # ended meanwhile
                if Path(f"/proc/{pid}/cmdline").read_bytes().startswith(b"./main\0"):
                    program = int(pid)
        time.sleep(0.02)
    assert program is not None
    time.sleep(0.2)  # past its start
    process.kill()
    process.wait()
    deadline = time.perf_counter() + 2  # the program alone would run for 10 s or more
    while time.perf_counter() < deadline and _running(program):
        time.sleep(0.02)
    try:
        assert not _running(program)
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.kill(program, signal.SIGKILL)


def _running(pid: int) -> bool:
    """Whether process ``pid`` exists and is not a zombie (Linux ``/proc``)."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except (FileNotFoundError, ProcessLookupError):
        return False


def test_progress_reports_start_and_end(cache_root, ode_cold):
    fractions = []
    with standalone("ode", cache_root) as program:
        network, _ = ode_network()
        outcome = program.run(network, 30 * ms, report_every_s=0.5, progress=fractions.append)
    assert outcome.completed == 1.0
    assert fractions[0] == 0.0 and fractions[-1] == 1.0 and fractions == sorted(fractions)


def test_network_operations_are_refused(cache_root):
    with standalone("refused", cache_root) as program:
        group = NeuronGroup(1, "v : 1", name="refused")
        operation = NetworkOperation(lambda: None, name="python_readout")
        with pytest.raises(DeviceUnsupportedError, match="python_readout"):
            program.run(Network(group, operation, name="refused_network"), 1 * ms)
    assert get_device() is runtime_device
    with pytest.raises(DeviceUnsupportedError, match="1: python_readout"):
        assert_no_network_operations(Network(operation))


if __name__ == "__main__":
    child(sys.argv[1], Path(sys.argv[2]), *sys.argv[3:])
