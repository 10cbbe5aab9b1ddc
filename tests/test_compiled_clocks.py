"""``sim.compiled.clocks``: a monitor on a clock of its own (a multiple of the network's dt)
ticks with the network at every one of its steps, also far into a run (Brian2's standalone
template took clocks as simultaneous only within 1e-14 s: past ~32 s of network time a monitor
then ticked one step late at some of its steps)."""

from __future__ import annotations

import numpy as np

from sim.compiled.device import standalone


def test_a_trial_end_monitor_sees_every_trial_end_in_a_100_s_run(tmp_path):
    from brian2 import Clock, Network, NeuronGroup, StateMonitor, ms, second

    with standalone("clocks", tmp_path) as program:
        clock = Clock(0.5 * ms, name="clocks_network")
        steps = NeuronGroup(1, "count : 1", clock=clock, name="clocks_steps")
        steps.run_regularly("count += 1", when="groups", name="clocks_count")
        ends = StateMonitor(steps, "count", record=True, dt=200 * clock.dt, when="start",
                            name="clocks_ends")  # learning/variance's trials: 200 steps each
        outcome = program.run(Network(steps, ends, name="clocks"), 100 * second)
        counted = np.asarray(ends.count[0])
    assert outcome.stopped_by is None
    assert np.array_equal(counted, 200.0 * np.arange(1000))  # the steps before each tick
    source = (tmp_path / "clocks" / "network.cpp").read_text()
    start = source.index("while(clock")
    loop = source[start:source.index("Network::_globally_running = false", start)]
    # the CPU time is read where a report is due, not after every step (sim.compiled.clocks)
    assert loop.count("std::clock()") == 1 and "if (report_func)" in loop
    assert "elapsed_realtime = (double)(std::clock() - start)" in source.split(loop)[1]
    # nothing on Brian2's default 0.1 ms clock: the loop steps at the network's 0.5 ms
    assert "add(&defaultclock" not in (tmp_path / "clocks" / "main.cpp").read_text()
