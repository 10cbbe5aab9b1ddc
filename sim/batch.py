"""Batched trials: independent trials run as B copies of one network (``[protocol] batch``).

When every trial starts from the same state (beliefs reset) and nothing changes the network
between trials (no learning, no mechanism that is not ``batch_safe``), the trials are
independent: trial k's numbers do not depend on which trials ran before it. Up to B of them
then run at once, each in its own copy of the populations (copy b is row b of the (B, n) view
of every state array), and the coupling's products become matrix-matrix products
(``circuits.coupling``). The file is the serial run's: each trial's samples sit where the
serial run puts them (its first sample is the serial run's sample at its start step, with the
serial run's time), the trial table has the same rows in running order, and F's Laplace term is
computed at the same samples; the root attribute ``batched`` (B) says how it ran.

- ``check`` refuses, as a one-line ``ScenarioError``, a scenario whose trials are not
  independent, naming the setting that makes them so.
- ``plan``: which trials run together. A batch holds trials of one duration (as many steps),
  taken in running order, up to B; batches run in the order of their first trial. Copies left
  over in the last batches of a duration run a copy of that batch's first trial, unrecorded.
- ``Batch``: the run of a batched scenario (the engine asks the simulation for it): it starts
  each batch's trials in the family's lanes, samples every copy on the serial run's cadence
  into buffers of its own and writes them at their places in the streamed datasets, and keeps
  the trial rows in running order.

The noise of trial k comes from its own stream ``[seed, 2, k]`` in both runs, drawn in the same
blocks, so a batched run draws the same numbers.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from sim import registry
from sim.io.writer import BUFFER_BYTES as WRITER_BUFFER_BYTES

BUFFER_BYTES = 1 << 30  # samples a batch keeps before writing, over all copies and streams
# A batch writes its trials' samples at their serial places, whose edges cut the streams' HDF5
# chunks (a band of tiles, ``sim.io.writer.BUFFER_BYTES``): with no chunk cache HDF5 reads,
# patches and writes each cut chunk back. Two bands per stream keep them until the rest
# arrives (64 trials of 20 ms at 1000-500-100, every variable every step, batch 16: the
# writes took 2.16 s without, 0.56 s with, of a 4.5 s run).
CHUNK_CACHE = 2 * WRITER_BUFFER_BYTES


def refusal(scenario: Any) -> str | None:
    """Why the scenario's trials cannot run batched (the setting that couples them), or None."""
    if scenario.kind.name != "hierarchical":
        return (f"the {scenario.kind.name} family runs its trials one after another; "
                "expected batch = 1 (batched trials are for the hierarchical family)")
    for name in scenario.model.mechanisms:
        mechanism = registry.mechanism(name)
        if not getattr(mechanism, "batch_safe", False):
            return (f"[model.{mechanism.section}] switches on {name}, which changes the "
                    "network while it runs, so trials are not independent; expected batch = 1, "
                    f"or {name} off")
    if getattr(scenario.model, "neurons", "rate") == "spiking":
        return "spiking neurons run one copy of the network; expected batch = 1"
    if scenario.model.coupling == "synapses":
        return ("model.coupling = 'synapses' runs one copy of the network; expected batch = 1, "
                "or coupling 'dense', 'sparse' or 'auto'")
    for trial in scenario.trials[1:]:
        if not trial.reset:
            return (f"trial {trial.name!r} has reset = 'none' (it starts where the trial before "
                    "it ended), so trials are not independent; expected reset = 'beliefs' "
                    "(e.g. [protocol] reset = 'beliefs') or batch = 1")
    for readout in registry.readouts(scenario.kind.name):
        if readout.enabled(scenario) and not getattr(readout, "batch_safe", False):
            return (f"[readouts.{readout.name}] watches the run step by step, which a batched "
                    "run does not do per trial; expected batch = 1")
    return None


def check(scenario: Any, source: Any) -> None:
    """Refuse ``[protocol] batch`` > 1 where the trials are not independent (ScenarioError)."""
    if scenario.protocol is None or scenario.protocol.batch == 1:
        return
    reason = refusal(scenario)
    if reason is not None:
        raise source.error("protocol.batch", reason)


def plan(steps: list[int], batch: int) -> list[list[int]]:
    """The running positions of the trials each batch runs, given each trial's steps: trials
    of equal steps in running order, up to ``batch`` each, in the order of their first trial."""
    open_batches: dict[int, list[int]] = {}
    batches: list[list[int]] = []
    for position, count in enumerate(steps):
        members = open_batches.setdefault(count, [])
        members.append(position)
        if len(members) == batch:
            batches.append(open_batches.pop(count))
    batches.extend(open_batches.values())
    return sorted(batches, key=lambda members: members[0])


class Batch:
    """A batched run: the plan, the copies' recording, and the trial rows in running order.

    The samples of a batch sit in one buffer per stream, copy after copy in running order,
    each copy's rows where its trial's samples go (``offsets``): trials that are neighbours in
    the file are neighbours in the buffer and go out in one write. A step's sampled copies are
    read at once (``Stream.rows``) into their rows.
    """

    def __init__(self, scenario: Any) -> None:
        self.scenario = scenario
        self.trials = scenario.trials
        self.every = scenario.record.every_steps
        steps = [scenario.steps(trial.duration_ms) for trial in self.trials]
        self.first_step = np.concatenate([[0], np.cumsum(steps, dtype=np.int64)])
        self.batches = plan(steps, scenario.protocol.batch)
        self.copies = max(len(members) for members in self.batches)
        self.chunk_cache = CHUNK_CACHE  # bytes per stream (``sim.io.writer.StreamedDataset``)
        self.rows: dict[int, dict] = {}
        self.datasets: list[Any] | None = None
        self.streams: list[Any] = []  # the writer's (``sim.io.writer.StreamedDataset``)
        self.buffers: list[np.ndarray] = []  # per stream, kept from batch to batch
        self.by_phase: dict[int, np.ndarray] = {}
        self.step = 0  # of the batch's trials, counted by ``record``
        self.positions = np.zeros(0, dtype=np.int64)  # the trials' running positions, by copy

    def time_s(self, step: Any) -> Any:
        """The serial run's time (s) at its step ``step`` (or steps): the network's dt times it."""
        return np.int64(step) * self.dt

    def first_sample(self, position: int) -> int:
        """The serial run's sample index at the start of the trial at ``position``."""
        return int(-(-self.first_step[position] // self.every))

    def sample_times(self, copies: np.ndarray) -> np.ndarray:
        """The time stream of the ``copies`` sampled now (``Stream.rows``; ``record`` counted
        this step already)."""
        return self.time_s(self.first_step[self.positions[copies]] + self.step - 1)

    # the engine's part -------------------------------------------------------------------------
    def start(self, simulation: Any, members: list[int]) -> None:
        """Put the batch's trials in the copies (the left-over copies repeat the first)."""
        if self.datasets is None:
            self._open(simulation.writer.streams)
            self.dt = simulation.clock.variables["dt"].get_value()[0]
        trials = [self.trials[position] for position in members]
        simulation.start_lanes(trials + [trials[0]] * (self.copies - len(trials)))
        self.step = 0
        positions = self.positions = np.array(members, dtype=np.int64)
        steps = int(self.first_step[members[0] + 1] - self.first_step[members[0]])
        row_bytes = sum(d.dtype.itemsize * int(np.prod(d.shape[1:])) for d in self.datasets)
        budget = max(1, BUFFER_BYTES // max(1, row_bytes * len(members)))
        phases = -self.first_step[positions] % self.every
        counts = np.maximum(0, -(-(steps - phases) // self.every))
        self.whole = counts <= budget  # a copy's rows hold its whole trial
        self.rows_of = np.maximum(1, np.minimum(counts, budget))
        self.offsets = np.concatenate([[0], np.cumsum(self.rows_of)])
        self.next_row = np.array([self.first_sample(p) for p in members], dtype=np.int64)
        self.filled = np.zeros(len(members), dtype=np.int64)
        self.by_phase = {int(phase): np.flatnonzero(phases == phase)
                         for phase in np.unique(phases)}
        total = int(self.offsets[-1])
        for index, dataset in enumerate(self.datasets):
            if len(self.buffers) <= index or len(self.buffers[index]) < total:
                self.buffers[index:index + 1] = [np.empty((total, *dataset.shape[1:]),
                                                          dtype=dataset.dtype)]

    def record(self, simulation: Any) -> None:
        """Every step: sample the copies whose serial step is a recorded one."""
        step, self.step = self.step, self.step + 1
        copies = self.by_phase.get(step % self.every)
        if copies is None:
            return
        simulation.before_samples(copies.tolist(), (self.next_row + self.filled)[copies].tolist())
        slots = self.offsets[copies] + self.filled[copies]
        for streamed, buffer in zip(simulation.writer.streams, self.buffers, strict=True):
            buffer[slots] = self._read(simulation, streamed, copies)
        self.filled[copies] += 1
        full = copies[(self.filled[copies] == self.rows_of[copies]) & ~self.whole[copies]]
        if len(full):
            self._write(full)  # else at the batch's end, with its neighbours

    @staticmethod
    def _read(simulation: Any, streamed: Any, copies: np.ndarray) -> Any:
        """The stream's values in the ``copies``: at once, or copy by copy through the lanes."""
        if streamed.rows is not None:
            return streamed.rows(copies)
        values = []
        for copy in copies:
            simulation.use_lane(int(copy))
            values.append(streamed.read())
        return values

    def end(self, simulation: Any, members: list[int]) -> None:
        """The batch's trials are done: their samples written, their rows kept."""
        self._write(np.arange(len(members)))
        for copy, position in enumerate(members):
            simulation.use_lane(copy)
            start, stop = (float(self.time_s(self.first_step[p])) for p in (position, position + 1))
            self.rows[position] = simulation.trial_row(self.trials[position], start, stop)

    def done(self) -> int:
        """How many trials, in running order, are done before the first one that is not."""
        done = 0
        while done in self.rows:
            done += 1
        return done

    def stopped_at(self) -> float:
        """Where the file of a stopped run ends (s): the start of the first trial not done."""
        return float(self.time_s(self.first_step[self.done()]))

    def finish(self, simulation: Any) -> None:
        """The trial rows of the trials done, in running order, up to the first one not done
        (a stopped run); the datasets end at that trial's first sample."""
        done = self.done()
        simulation.trial_rows = [self.rows[position] for position in range(done)]
        for dataset in self.datasets or ():
            dataset.resize(self.first_sample(done) if done < len(self.trials)
                           else dataset.shape[0], axis=0)
        simulation.writer.file.attrs["batched"] = self.copies

    # the datasets --------------------------------------------------------------------------------
    def _open(self, streams: list[Any]) -> None:
        total = self.first_sample(len(self.trials))
        self.streams = streams
        self.datasets = [streamed.dataset for streamed in streams]
        for dataset in self.datasets:
            dataset.resize(total, axis=0)

    def _write(self, copies: np.ndarray) -> None:
        """Write what the ``copies`` buffered, at their places: a copy whose rows are full
        joins the next one's write where their places in the file meet."""
        copies = [int(c) for c in copies if self.filled[c]]
        while copies:
            run = [copies.pop(0)]
            while (copies and copies[0] == run[-1] + 1
                   and self.filled[run[-1]] == self.rows_of[run[-1]]
                   and self.next_row[copies[0]] == self.next_row[run[-1]] + self.filled[run[-1]]):
                run.append(copies.pop(0))
            first, last = run[0], run[-1]
            start, stop = self.next_row[first], self.next_row[last] + self.filled[last]
            rows = slice(self.offsets[first], self.offsets[last] + self.filled[last])
            for streamed, buffer in zip(self.streams, self.buffers, strict=True):
                streamed.dataset[start:stop] = buffer[rows]
                streamed.check(buffer[rows], start)
            self.next_row[run] += self.filled[run]
            self.filled[run] = 0
