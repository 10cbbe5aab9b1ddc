"""Clocks of different dt that tick together, in a compiled program as on the runtime device.

A compiled run records with monitors on clocks of their own (``sim.compiled.program``: every
recorded sample, every trial boundary), whose dt is a multiple of the network's. Each step
Brian2 runs the clocks whose time is the smallest. Its runtime device takes two clocks as
simultaneous when their times differ by less than 1e-4 of the smaller dt
(``Clock.epsilon_dt``); its ``cpp_standalone`` template (``network.cpp``, Brian2 2.9) by at
most 1e-14 seconds, absolute. Their times are computed as ``timestep * dt`` each, so they differ
by a few units in the last place, and past ~32 s of network time (1e-14 is then below one
unit) a monitor can tick alone one step after the network: measured, a 100 ms monitor over a
0.5 ms clock recorded the step after 56 of 1,000 trial ends in 100 s (learning/variance).
``same_ticks_as_runtime`` puts the runtime's rule into the program's ``network.cpp``.

The same template reads the process's CPU time (``std::clock()``, a system call) after every
step, for a maximum run time pcsim never sets: measured, 180,000 calls took 0.1 s of
attention/posner's 0.24 s program (user 0.13 s, system 0.10 s). Without a maximum run time
the time is read once, after the loop (what Brian2 reports as the run's time), as Brian2 itself
does from its pull request #1718 on (a release after 2.9, which needs a newer Python than
pcsim's 3.11).
"""

from __future__ import annotations

from typing import Any

ABSOLUTE_TEST = "if(s==t || fabs(s-t)<=Clock_epsilon)"
# Brian2's runtime rule (``Network._nextclocks``): |s - t| / min(dt) < Clock.epsilon_dt
RELATIVE_TEST = ("if(s==t || fabs(s-t) < 1e-4 * (minclock->dt[0] < clock->dt[0] ? "
                 "minclock->dt[0] : clock->dt[0]))")
STEP_CLOCK = ("        current = std::clock();\n"
              "        elapsed_realtime = (double)(current - start)/(1 * CLOCKS_PER_SEC);\n")
LOOP_END = "    Network::_globally_running = false;\n"
RUN_CLOCK = LOOP_END + "    elapsed_realtime = (double)(std::clock() - start)/CLOCKS_PER_SEC;\n"


def same_ticks_as_runtime(device: Any) -> None:
    """Make ``device`` (a ``CPPStandaloneDevice``) write ``network.cpp`` with the runtime's
    test for simultaneous clocks (a ``RuntimeError`` if Brian2's template no longer has the
    test this replaces). Brian2 keeps one device for every standalone block of a process:
    done once."""
    generate = device.generate_network_source
    if getattr(generate, "same_ticks_as_runtime", False):
        return

    def generate_network_source(writer: Any, compiler: Any) -> None:
        write = writer.write

        def patched(filename: str, contents: Any) -> None:
            if filename == "network.cpp":
                if ABSOLUTE_TEST not in contents:
                    raise RuntimeError("Brian2's network.cpp template changed: "
                                       "sim.compiled.clocks cannot align the monitors' clocks")
                contents = contents.replace(ABSOLUTE_TEST, RELATIVE_TEST)
                contents = without_step_clock(contents)
            write(filename, contents)

        writer.write = patched
        try:
            generate(writer, compiler)
        finally:
            del writer.write

    generate_network_source.same_ticks_as_runtime = True
    device.generate_network_source = generate_network_source


def without_step_clock(source: str) -> str:
    """``network.cpp`` reading the CPU time once after the loop instead of after every step,
    where no maximum run time needs it (unchanged where the template differs)."""
    if "elapsed_realtime>" in source or source.count(STEP_CLOCK) != 1 or \
            source.count(LOOP_END) != 1:
        return source
    return source.replace(STEP_CLOCK, "").replace(LOOP_END, RUN_CLOCK)
