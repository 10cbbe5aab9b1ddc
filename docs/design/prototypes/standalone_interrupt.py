"""Ctrl-C and progress on the ``cpp_standalone`` device: what the program and Python do.

A trivial one-neuron network (recorded every 1 ms) runs 20,000,000 steps as one compiled program
with ``report="text"``; a SIGINT goes to the whole process group (as a terminal's Ctrl-C does)
1 s after the program starts. Twice: with Python's default SIGINT handling, and with Python
ignoring SIGINT while the program runs. Prints what Python saw, the program's reported completed
fraction and how many samples the monitor holds.

    python docs/design/prototypes/standalone_interrupt.py
"""
from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

STEPS = 20_000_000


def child(directory: str, ignore: bool) -> None:
    from brian2 import (
        NeuronGroup,
        StateMonitor,
        defaultclock,
        device,
        ms,
        prefs,
        run,
        set_device,
    )

    set_device("cpp_standalone", directory=directory, build_on_run=False)
    prefs.devices.cpp_standalone.extra_make_args_unix = ["-j2"]
    defaultclock.dt = 0.1 * ms
    group = NeuronGroup(1, "dv/dt = (1 - v) / (10*ms) : 1", method="euler")
    monitor = StateMonitor(group, "v", record=0, dt=1 * ms)
    run(STEPS * defaultclock.dt, report="text", report_period=0.5 * defaultclock.dt * 1e4)
    device.build(directory=directory, compile=True, run=False, with_output=False)
    print("built", flush=True)
    previous = signal.signal(signal.SIGINT, signal.SIG_IGN) if ignore else None
    start = time.perf_counter()
    try:
        device.run(directory=directory, with_output=True)
        outcome = "device.run returned"
    except KeyboardInterrupt:
        outcome = "KeyboardInterrupt in Python"
    except RuntimeError as err:
        outcome = f"RuntimeError: {err}"
    finally:
        if ignore:
            signal.signal(signal.SIGINT, previous)
    wall = time.perf_counter() - start
    info = Path(directory, "results", "last_run_info.txt")
    fraction = info.read_text().split()[1] if info.exists() else "no last_run_info.txt"
    try:
        samples = len(monitor.t)
    except Exception as err:  # what reading back gives is part of the measurement
        samples = f"unreadable ({type(err).__name__})"
    print(f"  {outcome} after {wall:.2f} s; completed fraction {fraction}; monitor samples "
          f"{samples} of {STEPS // 10}", flush=True)


def main() -> None:
    for ignore in (False, True):
        directory = tempfile.mkdtemp(prefix="standalone-interrupt-")
        print(f"Python {'ignores' if ignore else 'handles'} SIGINT during device.run:")
        process = subprocess.Popen(
            [sys.executable, __file__, "child", directory, str(int(ignore))],
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, start_new_session=True)
        assert process.stdout is not None
        for line in process.stdout:
            if line.startswith("built"):
                break
        time.sleep(1.0)
        os.killpg(process.pid, signal.SIGINT)
        rest = process.stdout.read()
        code = process.wait()
        lines = [line for line in rest.splitlines() if line.strip()]
        progress = [line for line in lines if "%" in line]
        print(f"  progress lines printed by the program: {len(progress)}"
              f"{' (last: ' + progress[-1].strip() + ')' if progress else ''}")
        for line in lines:
            if line.startswith("  "):
                print(line)
        print(f"  Python process exit code {code}")
        shutil.rmtree(directory, ignore_errors=True)


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "child":
        child(sys.argv[2], sys.argv[3] == "1")
    else:
        main()
