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

The streams' rows of all samples are taken at once where the family can
(``Simulation.samples_at_once``: F and what the family computes from the recorded state alone),
before the trials are replayed, in blocks of ``BLOCK_SAMPLES``; each trial then takes its
slice (learning/variance: one call instead of 1000). The runtime arrays are then given no
sample's state, and the program recorded at samples only what that call reads
(``sim.compiled.reads``). F at every trial's end (``final_state``'s column) is computed at
once the same way, from the state recorded at the trial boundaries
(``Simulation.free_energies``).

Each trial's start runs here as on the runtime device, on the state the program's start found;
what it writes is checked against what the program played back
(``sim.compiled.trial_starts``: ``StartsSeen``).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from sim.compiled.program import Recording, runtime_groups
from sim.compiled.timeline import Timeline
from sim.compiled.trial_starts import StartsSeen
from sim.errors import ScenarioError

BLOCK_SAMPLES = 8192  # samples whose rows are computed at once (the arrays F needs per sample)


class Replay:
    def __init__(self, simulation: Any, timeline: Timeline, recording: Recording) -> None:
        self.simulation, self.timeline, self.recording = simulation, timeline, recording
        self.arrays = {group.name: {var: group.variables[var].get_value()
                                    for var in recording.boundaries[group.name]}
                       for group in runtime_groups(simulation)}
        clock = simulation.clock
        self.timestep = clock.variables["timestep"].get_value()
        self.t = clock.variables["t"].get_value()
        self.sample_steps = timeline.sample_steps[:recording.taken]
        self.rows: dict[str, np.ndarray] | None = None  # every stream's rows (rows_ahead)

    def at_step(self, step: int) -> None:
        """The runtime clock at ``step``, as Brian2's clock would hold it."""
        self.timestep[0] = step
        self.t[0] = self.timeline.time(step)

    def restore(self, source: dict[str, dict[str, np.ndarray]], row: int) -> None:
        """The runtime arrays (and the kept state) given what ``source`` recorded at
        ``row``."""
        for name, variables in self.arrays.items():
            recorded = source[name]
            for var, values in variables.items():
                values[...] = recorded[var][row]
        for name, put in self.simulation.compiled_kept.items():
            put({var: values[row] for var, values in source[name].items()})

    def block(self, first: int, last: int) -> dict[str, dict[str, np.ndarray]]:
        return {name: {var: values[first:last] for var, values in variables.items()}
                for name, variables in self.recording.samples.items()}

    def rows_ahead(self, count: int) -> dict[str, np.ndarray] | None:
        """Every stream's rows for samples 0 to ``count`` at once, in blocks
        (``Simulation.samples_at_once``: what it computes depends on the recorded state
        alone); None where some stream needs the samples one by one."""
        parts = []
        for first in range(0, count, BLOCK_SAMPLES):
            last = min(count, first + BLOCK_SAMPLES)
            rows = self.simulation.samples_at_once(
                self.block(first, last), self.timeline.time(self.sample_steps[first:last]))
            if rows is None:
                return None
            parts.append(rows)
        if not parts:
            return None
        if len(parts) == 1:  # one block (up to BLOCK_SAMPLES samples): its rows, not a copy
            return {path: np.asarray(rows) for path, rows in parts[0].items()}
        return {path: np.concatenate([np.asarray(rows[path]) for rows in parts])
                for path in parts[0]}

    def samples(self, first: int, last: int) -> None:
        """Samples ``first`` to ``last`` (one trial's): their slice of the rows taken ahead
        (``rows_ahead``), else, where the streams refused to be taken at once, one by one
        through ``Simulation.sample``."""
        if last <= first:
            return
        simulation = self.simulation
        if self.rows is None:  # asking again per trial would get the same refusal
            for sample in range(first, last):
                self.restore(self.recording.samples, sample)
                self.at_step(int(self.sample_steps[sample]))
                simulation.sample()
            return
        rows = {path: values[first:last] for path, values in self.rows.items()}
        for streamed, stream in simulation.recorded:
            streamed.extend(rows[stream.path])
        self.at_step(int(self.sample_steps[last - 1]))  # the arrays: the trial's end comes next
        simulation.now = float(self.timeline.time(self.sample_steps[last - 1 : last])[0])

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
        then is started and sampled, not ended); refused (``ScenarioError``, nothing
        written) where a start wrote other values than the program played back
        (``StartsSeen``)."""
        seen = StartsSeen(self.simulation.compiled_starts, self.arrays)
        started = self.trials(runs, seen, self.timeline.total_steps if until is None else until)
        differs = seen.differs(started)
        if differs is not None:
            scenario, (position, group, variable) = self.simulation.scenario, differs
            raise ScenarioError(
                f"{scenario.path}: numerics.device: the compiled run played back another start "
                f"of trial {scenario.trials[position].name!r} than pcsim's: it writes "
                f"{self.simulation.shown_name(group)}.{variable} from the state it finds; "
                "expected device = \"runtime\"")

    def free_energy_at_end(self, position: int) -> float | None:
        """F at trial ``position``'s end, computed with the ``BLOCK_SAMPLES`` trials from its
        block's first at once, from the states recorded at the trials' ends; None where the
        family computes it only per state (``free_energies``)."""
        block = position // BLOCK_SAMPLES
        if self.ends[0] != block:
            first = block * BLOCK_SAMPLES
            last = min(first + BLOCK_SAMPLES, self.ended)
            self.ends = (block, self.simulation.free_energies({
                name: {var: values[first:last] for var, values in variables.items()}
                for name, variables in self.recording.boundaries.items()}))
        found = self.ends[1]
        return None if found is None else float(found[position % BLOCK_SAMPLES])

    def trials(self, runs: Any, seen: StartsSeen, until: int) -> int:
        """``run``'s trials; the number started."""
        simulation, timeline = self.simulation, self.timeline
        readouts = [(readout, simulation.scenario.readouts.get(readout.name))
                    for readout in simulation.readouts if simulation.stepping.get(readout.name)]
        self.rows = self.rows_ahead(int(np.searchsorted(self.sample_steps, until)))
        self.ended = sum(timeline.end_step(position) <= until  # trials whose end is recorded
                         for position in range(timeline.trials))
        self.ends = (-1, None)  # F of trials' ends, a block at once (``free_energy_at_end``)
        sample = 0
        for position in range(timeline.trials):
            first, end = int(timeline.first_steps[position]), timeline.end_step(position)
            if first >= until and position:
                return position
            self.at_step(first)
            seen.before(position)
            runs.start_members([position])
            seen.after(position)
            last = int(np.searchsorted(self.sample_steps, min(end, until)))
            self.samples(sample, last)
            sample = last
            if end > until:
                return position + 1
            self.restore(self.recording.boundaries, position)
            self.at_step(end)
            for readout, settings in readouts:
                state = self.recording.boundaries[simulation.compiled_readouts[readout.name]]
                readout.replayed(simulation, settings,
                                 {var: values[position] for var, values in state.items()},
                                 position)
            simulation.free_energy_at_end = self.free_energy_at_end(position)
            runs.end_members()
            simulation.free_energy_at_end = None
        return timeline.trials
