"""A compiled run's recorded state, fed through pcsim's Python trial by trial.

For each trial in running order, as ``sim.trial_sequence`` does on the runtime device: the
trial starts (``Simulation.start``: lanes, readouts, the trial's Python state); at each of its
samples the runtime arrays are given the recorded state and the network time of that step, and
the recorder takes the sample (``Simulation.sample``: F, the streams); at its end the arrays
hold the trial's final state, the readouts' compiled forms hand over what they recorded
(``Readout.replayed``), the guard checks the state (``check_end``) and the trial's row is
written (``Simulation.end``). The result file is thus written by the runtime's own code. What
compiled forms keep outside the populations (learned weights: ``CompiledContext.kept``) is put
back where pcsim's Python reads it together with the populations' state, at every sample and
trial end.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from sim.compiled.program import Recording, runtime_groups
from sim.compiled.timeline import Timeline


class Replay:
    def __init__(self, simulation: Any, timeline: Timeline, recording: Recording) -> None:
        self.simulation, self.timeline, self.recording = simulation, timeline, recording
        self.arrays = {group.name: {var: group.variables[var].get_value()
                                    for var in recording.samples[group.name]}
                       for group in runtime_groups(simulation)}
        clock = simulation.clock
        self.timestep = clock.variables["timestep"].get_value()
        self.t = clock.variables["t"].get_value()
        self.sample_steps = timeline.sample_steps[:len(next(iter(
            next(iter(recording.samples.values())).values())))]

    def at_step(self, step: int) -> None:
        """The runtime clock at ``step``, as Brian2's clock would hold it."""
        self.timestep[0] = step
        self.t[0] = self.timeline.time(step)

    def restore(self, source: dict[str, dict[str, np.ndarray]], row: int) -> None:
        for name, variables in self.arrays.items():
            recorded = source[name]
            for var, values in variables.items():
                values[...] = recorded[var][row]
        for name, put in self.simulation.compiled_kept.items():
            put({var: values[row] for var, values in source[name].items()})

    def samples(self, first: int, last: int) -> None:
        """Samples ``first`` to ``last`` (one trial's): at once where the streams allow
        (``Simulation.samples_at_once``), else one by one through ``Simulation.sample``."""
        if last <= first:
            return
        simulation = self.simulation
        block = {name: {var: values[first:last] for var, values in variables.items()}
                 for name, variables in self.recording.samples.items()}
        times = self.timeline.time(self.sample_steps[first:last])
        rows = simulation.samples_at_once(block, times)
        if rows is None:
            for sample in range(first, last):
                self.restore(self.recording.samples, sample)
                self.at_step(int(self.sample_steps[sample]))
                simulation.sample()
            return
        for streamed, stream in simulation.recorded:
            streamed.extend(rows[stream.path])
        self.restore(self.recording.samples, last - 1)
        self.at_step(int(self.sample_steps[last - 1]))
        simulation.show_state()  # the arrays as the last sample's streams read them
        simulation.now = float(times[-1])

    def final_state(self) -> None:
        """The runtime arrays hold the state where the program stopped."""
        for name, variables in self.arrays.items():
            for var, values in variables.items():
                values[...] = self.recording.finals[name][var]
        for name, put in self.simulation.compiled_kept.items():
            put(self.recording.finals[name])

    def run(self, runs: Any, until: int | None = None) -> None:
        """Every trial through ``runs`` (``sim.trial_sequence.TrialRuns``: its start, guard
        check, row and progress), up to step ``until`` (a stopped run: the trial running
        then is started and sampled, not ended)."""
        simulation, timeline = self.simulation, self.timeline
        until = timeline.total_steps if until is None else until
        readouts = [(readout, simulation.scenario.readouts.get(readout.name))
                    for readout in simulation.readouts if simulation.stepping.get(readout.name)]
        sample = 0
        for position in range(timeline.trials):
            first, end = int(timeline.first_steps[position]), timeline.end_step(position)
            if first >= until and position:
                return
            self.at_step(first)
            runs.start_members([position])
            last = int(np.searchsorted(self.sample_steps, min(end, until)))
            self.samples(sample, last)
            sample = last
            if end > until:
                return
            self.restore(self.recording.boundaries, position)
            self.at_step(end)
            for readout, settings in readouts:
                state = self.recording.boundaries[simulation.compiled_readouts[readout.name]]
                readout.replayed(simulation, settings,
                                 {var: values[position] for var, values in state.items()},
                                 position)
            runs.end_members()
