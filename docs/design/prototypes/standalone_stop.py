"""Divergence on the ``cpp_standalone`` device: can compiled code stop the run itself?

A one-neuron network grows without bound (``dv/dt = v / (10 ms)``, v(0) = 1) over a 100 s run
(1,000,000 steps of 0.1 ms). Each step a ``run_regularly`` calls ``stop_if``, a user function
with a C++ implementation that sets ``Network::_globally_stopped`` (the flag Brian2's own SIGINT
handler sets) when ``not (abs(v) <= limit)`` (true for NaN too). Prints when the run stopped,
the completed fraction, and v there; then the same without the stop, for its run time.

    python docs/design/prototypes/standalone_stop.py
"""
from __future__ import annotations

import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

LIMIT = 1e6
STEPS = 1_000_000

STOP_CPP = """
double stop_if(const double bad)
{
    if (bad != 0.0)
        Network::_globally_stopped = true;
    return bad;
}
"""


def child(directory: str, stop: bool) -> None:
    from brian2 import (
        NeuronGroup,
        StateMonitor,
        check_units,
        defaultclock,
        device,
        implementation,
        ms,
        prefs,
        run,
        set_device,
    )

    set_device("cpp_standalone", directory=directory, build_on_run=False)
    prefs.devices.cpp_standalone.extra_make_args_unix = ["-j2"]
    defaultclock.dt = 0.1 * ms

    @implementation("cpp", STOP_CPP, headers=['"network.h"'])
    @check_units(bad=1, result=1)
    def stop_if(bad):
        return bad

    group = NeuronGroup(1, "dv/dt = v / (10*ms) : 1\nbad : 1", method="euler",
                        namespace={"stop_if": stop_if, "limit": LIMIT})
    group.v = 1.0
    if stop:
        group.run_regularly("bad = stop_if(int(not (abs(v) <= limit)))", when="end")
    monitor = StateMonitor(group, "v", record=0, dt=1 * ms)
    run(STEPS * defaultclock.dt)
    device.build(directory=directory, compile=True, run=False, with_output=False)
    start = time.perf_counter()
    device.run(directory=directory, with_output=False)
    wall = time.perf_counter() - start
    fraction = float(Path(directory, "results", "last_run_info.txt").read_text().split()[1])
    print(f"  {'with' if stop else 'without'} the compiled stop: program {wall:.3f} s, "
          f"completed fraction {fraction:.6f} (step {round(fraction * STEPS)}), "
          f"last sample t = {float(monitor.t[-1] / ms):.1f} ms, v = {float(monitor.v[0][-1]):.4g}, "
          f"v at the end = {float(group.v[0]):.4g}", flush=True)


def main() -> None:
    for stop in (True, False):
        directory = tempfile.mkdtemp(prefix="standalone-stop-")
        try:
            subprocess.run([sys.executable, __file__, "child", directory, str(int(stop))],
                           check=True)
        finally:
            shutil.rmtree(directory, ignore_errors=True)


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "child":
        child(sys.argv[2], sys.argv[3] == "1")
    else:
        main()
