"""``[numerics] device``: run a scenario as one compiled program, or say why not.

``runtime`` (the default) runs on Brian2's runtime device as always. ``standalone`` builds
the run as one ``cpp_standalone`` program (``sim.compiled.program``), runs it
(``sim.compiled.device``: a build directory per model shape, kept, so a warm run compiles
nothing) and replays what it recorded through pcsim's own recorder and readouts
(``sim.compiled.replay``); what it cannot run is refused before anything runs, in one line.
``auto`` is ``standalone`` where the scenario allows it and ``runtime`` elsewhere.

The guard (``sim.guard``) becomes compiled checks, every step, of the same arrays against
``[numerics] rate_limit`` (the runtime checks every few steps); the run then stops at the
first step beyond it. The limit is data the program reads (a one-value ``TimedArray``), not a
constant of its code: runs that differ in it run one program. Ctrl-C stops the program; the
replay keeps what it recorded up to there. Checkpoints (``--resume``) and batched trials are
the runtime device's.
"""

from __future__ import annotations

import warnings
from typing import Any

import numpy as np
from brian2 import TimedArray, ms, second
from brian2.utils.logger import catch_logs

from sim.compiled.shape import shape_key
from sim.compiled.timeline import Timeline
from sim.guard import RunStopped
from sim.trial_sequence import REPORT_PERIOD_S

# Brian2's warnings a compiled run expects: per-trial tables are TimedArrays over the trial's
# running position (dt 1 s, not the clock's); a diverged state is pcsim's to report (guard)
EXPECTED_LOGS = ("timedarray", "invalid_values")
RATE_LIMIT = "pcsim_rate_limit"  # the guard's ceiling, read by the stop checks
BUILD_ATTR = "compiled_build"  # the result's note: the program "built" or "reused"


def stopped_while_built(signal_name: str | None) -> None:
    """A signal that came while the program was built (pcsim's handler took it, or it stopped
    make; the program's own run forwards signals to it, ``sim.compiled.launch``): the run
    stops before its first step."""
    if signal_name:
        raise RunStopped("interrupted", f"interrupted by {signal_name} while the compiled "
                                        "program was built", 0.0)


def run_compiled(simulation: Any, scenario: Any, guard: Any, runs: Any) -> None:
    """Build, run and replay ``simulation`` on the standalone device (``NotCompiled`` before
    anything runs when some part has no compiled form); the guard's and Ctrl-C's stops
    come out as ``RunStopped``, as on the runtime device."""
    from sim.compiled import program as programs
    from sim.compiled.device import standalone
    from sim.compiled.replay import Replay

    programs.not_run([*simulation.objects, *runs.objects])
    dt_s = float(simulation.clock.variables["dt"].get_value()[0])
    timeline = Timeline.of(scenario, dt_s)
    with catch_logs() as logs, standalone(shape_key(scenario)) as program:
        network, monitors, checked = programs.build(simulation, timeline)
        checks = {}
        limit = TimedArray(np.array([scenario.numerics.rate_limit]), dt=1 * second,
                           name=RATE_LIMIT)
        for watched in guard.watched:  # a variable may be watched twice (recorded, mechanism)
            name = f"{watched.population}_{watched.variable}"
            if watched.population in checked and name not in checks:
                group = checked[watched.population]
                group.namespace[RATE_LIMIT] = limit
                program.stop_when(group, f"not (abs({watched.variable}) <= {RATE_LIMIT}(t))",
                                  name)
                checks[name] = watched
        if guard.on_first_step is not None:
            guard.on_first_step()
        try:  # the same report period whether anyone listens or not: it is compiled in
            outcome = program.run(network, timeline.total_steps * dt_s * 1e3 * ms,
                                  report_every_s=REPORT_PERIOD_S,
                                  progress=runs.progress or (lambda fraction: None),
                                  interrupted=lambda: guard.interrupted)
        except Exception:
            stopped_while_built(guard.interrupted)  # Ctrl-C killed the compiler: the reason
            raise
        if outcome.stopped_by is None:
            stopped_while_built(guard.interrupted)
        elif outcome.stopped_by == "interrupted" and not outcome.run_s:  # stopped make
            stopped_while_built(outcome.signal_name or "SIGINT")
        recording = programs.read(monitors, timeline)
    # whether the program built before for this key ran (sim.compiled.known), as it did
    simulation.writer.file.attrs[BUILD_ATTR] = "reused" if outcome.reused else "built"
    for _, name, message in logs:
        if not name.endswith(EXPECTED_LOGS):
            warnings.warn(f"Brian2: {message}", RuntimeWarning, stacklevel=2)
    stop_step = (None if outcome.stopped_by is None
                 else min(timeline.total_steps, round(outcome.t_stop_s / dt_s)))
    replay = Replay(simulation, timeline, recording)
    replay.run(runs, until=stop_step)
    if outcome.stopped_by is None:
        return
    replay.final_state()
    t_ms = stop_step * scenario.dt_ms
    if outcome.stopped_by == "interrupted":
        raise RunStopped("interrupted", f"interrupted by {outcome.signal_name or 'SIGINT'}",
                         t_ms)
    guard.last_good_ms = t_ms - scenario.dt_ms  # every step is checked
    guard._diverged(checks[outcome.stopped_by], t_ms)
