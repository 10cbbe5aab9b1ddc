"""What every model family's running network shares: its clock, the one recorder, the trial
table and the mechanisms the scenario switched on.

A model family (``sim.families.*``) subclasses ``Simulation``: it builds its core populations,
asks ``pieces(population)`` for the mechanisms' equation pieces while doing so, then calls
``build_mechanisms(context)`` and ``record(streams)`` with the streams it declares
(``circuits.mechanism.Stream``). The recorder samples every recorded stream once each
``record.every_steps`` steps, in the in-step slot ``record_order`` (``circuits.schedule``); the
time axis is the first stream. At the end of each trial the registered readouts
(``sim.readouts``) give the trial's row of the per-trial table.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from typing import Any

import numpy as np
from brian2 import Clock, NetworkOperation, ms

from circuits import schedule
from circuits.mechanism import BuildContext, Piece, Population, Stream
from circuits.naming import shown
from circuits.precision import CONFIGURED, LOG_PRECISION
from sim import learning, memory, registry
from sim.batch import Batch
from sim.guard import Watched
from sim.io.finite import NAN_MEANS
from sim.io.snapshots import SnapshotWriter, is_due
from sim.io.writer import ResultWriter, write_array, write_matrix
from sim.protocol import learned_parameters
from sim.sample_stretch import SampleStretch
from sim.scenario import Scenario, Trial

TRIAL_UNITS = {"t_start": "s", "t_stop": "s"}


class Simulation:
    """The shared part of one run: clock, recorder, mechanisms, per-trial rows (``trials/``)."""

    # the levels' names by index, where the family names Brian2 objects by a level's index
    level_names: Sequence[str] = ()
    # F of the trial end now, where a compiled run's replay computed every trial end's at once
    free_energy_at_end: float | None = None

    def __init__(self, scenario: Scenario, writer: ResultWriter, record_order: int,
                 readouts_off: dict[str, str] | None = None) -> None:
        self.scenario, self.writer = scenario, writer
        self.clock = Clock(scenario.dt_ms * ms, name="pcsim_clock")
        self.record_operation = NetworkOperation(
            self._record, when=schedule.SLOT, order=record_order, clock=self.clock,
            name="recorder")
        self.countdown = 1
        self.now = 0.0
        batched = scenario.protocol is not None and scenario.protocol.batch > 1
        self.batch = Batch(scenario) if batched else None
        self.copies = self.batch.copies if self.batch else 1  # of every population
        self.mechanisms = [(registry.mechanism(name), settings)
                           for name, settings in scenario.model.mechanisms.items()]
        # the readouts whose reference is too large for the memory limit: decided here, or
        # by the run a checkpoint was taken of (``readouts_off``: a resumed run keeps them off)
        off = memory.switched_off(scenario) if readouts_off is None else readouts_off
        self.readouts_off = dict(off)
        if off:
            writer.file.attrs["readouts_off"] = "\n".join(f"{name}: {why}"
                                                           for name, why in off.items())
        self.readouts = [readout for readout in registry.readouts(scenario.kind.name)
                         if readout.enabled(scenario) and readout.name not in off]
        self.readout_state: dict[str, Any] = {}  # what a readout keeps during the run
        # the Brian2 objects each mechanism and readout steps with (``sim.compiled`` gives
        # those that have any their compiled form)
        self.stepping: dict[str, list] = {}
        self.context: BuildContext | None = None
        self.trial_rows: list[dict] = []
        self.t_start = 0.0
        self.learned = learned_parameters(scenario.model)
        self.phased = learning.phased_parameters(self.learned, scenario.trials)
        self.snapshots = (SnapshotWriter(writer.file.require_group("snapshots"))
                          if scenario.record.snapshots_every else None)
        self.recorded: list[tuple[Any, Stream]] = []  # (its dataset, the stream)
        # F a stretch of samples at a time (set by the engine: ``sim.sample_stretch``)
        self.stretch: SampleStretch | None = None
        self.record([Stream("time", None, lambda: self.now, units="s",
                            rows=self.batch.sample_times if self.batch else None,
                            state=("", "t"))])

    # building ----------------------------------------------------------------------------------
    def pieces(self, population: Population) -> list[tuple[str, Piece]]:
        """The equation pieces the switched-on mechanisms add to ``population``. When some
        add a log contribution to an error population's precision, they are asked again
        knowing that its configured part is ``precision_configured`` (``circuits.precision``).
        """
        found = []
        switches: list[str] = []  # phases (sim.learning): flows scaled by learning_<parameter>
        for mechanism, settings in self.mechanisms:
            piece = mechanism.pieces(settings, population)
            if piece is not None:
                if mechanism.learns in self.phased and piece.integrates:
                    piece = learning.switched(piece, mechanism.learns)
                    switches.append(mechanism.learns)
                found.append((mechanism.name, piece))
        if (population.configured_precision != CONFIGURED
                and any(LOG_PRECISION in piece.terms for _, piece in found)):
            return self.pieces(replace(population, configured_precision=CONFIGURED))
        if switches:
            found.append(("phases", learning.declaration(list(dict.fromkeys(switches)))))
        return found

    def changed_at_run_time(self, what: str) -> bool:
        """Whether a switched-on mechanism changes ``what`` (``weights``, ``precision``)."""
        return bool(self.contributors(what))

    def contributors(self, what: str) -> list[str]:
        """The switched-on mechanisms that change ``what``, by name."""
        return [mechanism.name for mechanism, _ in self.mechanisms if what in mechanism.changes]

    def build_mechanisms(self, context: BuildContext) -> list:
        """The mechanisms' Brian2 objects, once the family's populations exist; their streams
        are recorded after the family's."""
        self.context = context
        objects = []
        for mechanism, settings in self.mechanisms:
            built = mechanism.build(settings, context)
            self.stepping[mechanism.name] = built
            objects += built
        return objects

    def shown_name(self, name: str) -> str:
        """The name users see for the Brian2 object ``name`` (``circuits.naming.shown``)."""
        return shown(name, self.level_names)

    def watched(self) -> list[Watched]:
        """What the mechanisms change outside the populations, for the runtime guard."""
        return [Watched(*item) for mechanism, settings in self.mechanisms
                for item in mechanism.watch(settings, self.context)]

    def mechanism_streams(self) -> list[Stream]:
        return [stream for mechanism, settings in self.mechanisms
                for stream in mechanism.streams(settings, self.context)]

    # recording ---------------------------------------------------------------------------------
    def record(self, streams: Sequence[Stream]) -> None:
        """Record those of ``streams`` that ``[record] variables`` switches on."""
        chosen = self.scenario.record.variables
        cache = self.batch.chunk_cache if self.batch else 0
        for stream in streams:
            if stream.variable is None or stream.variable in chosen:
                self.recorded.append((self.writer.stream(
                    stream.path, stream.width, stream.read, units=stream.units,
                    chunk_cache=cache, rows=stream.rows, **stream.dataset_attrs()), stream))

    def clock_time(self) -> float:
        """The network's time now, in seconds."""
        return float(self.clock.variables["t"].get_value()[0])

    def _record(self) -> None:
        if self.batch is not None:
            self.batch.record(self)
            return
        self.countdown -= 1
        if self.countdown:
            return
        self.countdown = self.scenario.record.every_steps
        self.sample()

    def sample(self) -> None:
        """One recorded sample of the state now (a compiled run's replay calls it too)."""
        self.now = self.clock_time()
        if self.stretch is None:
            self.before_sample()
            for streamed in self.writer.streams:
                streamed.sample()
            return
        self.show_state()
        self.stretch.take()
        for streamed in self.stretch.in_place:
            streamed.sample()

    def samples_at_once(self, recorded: dict[str, dict[str, np.ndarray]],
                        times: np.ndarray) -> dict[str, np.ndarray] | None:
        """A compiled run's samples of one trial at once, by stream path: ``recorded`` the
        state of each sample (population -> variable -> (samples, units)), ``times`` their
        network times (s). None where some stream needs the per-sample path (``sample``)."""
        found = self.family_samples(
            [stream.path for _, stream in self.recorded if stream.state is None], recorded)
        if found is None:
            return None
        rows = {}
        for _, stream in self.recorded:
            if stream.path in found:
                rows[stream.path] = found[stream.path]
            elif stream.state == ("", "t"):
                rows[stream.path] = times
            else:
                population, variable = stream.state
                rows[stream.path] = recorded[population][variable]
        return rows

    def family_samples(self, paths: list[str], recorded: dict) -> dict[str, np.ndarray] | None:
        """The streams at ``paths``, which the family computes from the state (F), for all
        samples of ``recorded`` at once, by path, and the rows of any stream whose recorded
        state the family shows otherwise (``show_state``); None (and nothing done: the
        samples then go one by one) where it cannot compute every one of them this way."""
        return None if paths else {}

    def show_state(self) -> None:
        """What the family writes into the state arrays from its own state before the
        streams read them (a compiled run's replay calls it after putting back a recorded
        state)."""

    def before_sample(self) -> None:
        """Work a family does once per recorded sample, before its streams read the state."""

    def before_samples(self, copies: list[int], samples: list[int]) -> None:
        """``before_sample`` for the ``copies`` of a batched run sampled now, whose sample
        indices in the file are ``samples`` (a family that runs batched)."""
        raise NotImplementedError

    # trials ------------------------------------------------------------------------------------
    def runs(self) -> list[list[int]]:
        """The running positions of the trials run together: one at a time, or the batches
        of a batched run (``sim.batch``)."""
        if self.batch is not None:
            return self.batch.batches
        return [[position] for position in range(len(self.scenario.trials))]

    def start(self, members: list[int]) -> None:
        if self.batch is not None:
            self.batch.start(self, members)
        else:
            self.start_trial(self.scenario.trials[members[0]])

    def end(self, members: list[int]) -> None:
        self.end_stretch()
        if self.batch is not None:
            self.batch.end(self, members)
        else:
            self.end_trial(self.scenario.trials[members[0]])

    def stopped(self, members: list[int], reason: str, t_s: float) -> float:
        """The run stopped in ``members`` at network time ``t_s``: an interrupted serial trial
        gets its row. Returns where the file's samples end (s): ``t_s``, or for a batched run
        the start of the first trial not done (it keeps those before, ``Batch.finish``)."""
        self.end_stretch()
        if self.batch is not None:
            return self.batch.stopped_at()
        if reason == "interrupted" and members:  # none: stopped between two trials
            self.end_trial(self.scenario.trials[members[0]])
        return t_s

    def start_lanes(self, trials: list[Trial]) -> None:
        """Start ``trials[b]`` in copy b of the network (a family that runs batched)."""
        raise NotImplementedError

    def use_lane(self, copy: int) -> None:
        """Make copy ``copy`` the one the streams and the readouts read (batched runs)."""
        raise NotImplementedError

    def readout_objects(self) -> list:
        """The Brian2 objects the switched-on readouts watch the run with."""
        for readout in self.readouts:
            self.stepping[readout.name] = readout.objects(
                self, self.scenario.readouts.get(readout.name))
        return [obj for readout in self.readouts for obj in self.stepping[readout.name]]

    def mechanism_energy(self) -> float:
        """The mechanisms' own terms of the free energy now (nat)."""
        return sum(mechanism.energy(settings, self.context)
                   for mechanism, settings in self.mechanisms)

    def mechanism_curvature(self) -> dict[int, np.ndarray]:
        """The diagonal the mechanisms' energies add to F's Hessian now, by belief level."""
        total: dict[int, np.ndarray] = {}
        for mechanism, settings in self.mechanisms:
            for level, diagonal in mechanism.curvature(settings, self.context).items():
                total[level] = total.get(level, 0.0) + np.asarray(diagonal, dtype=float)
        return total

    def start_trial(self, trial: Trial) -> None:
        self.trial = trial
        self.t_start = self.clock_time()
        for mechanism, settings in self.mechanisms:
            mechanism.start_trial(settings, self.context, trial.reset)
        self._switch_learning(trial)

    def learns(self, trial: Trial, parameter: str) -> bool:
        """Whether ``trial`` learns ``parameter`` (its ``learn`` field; default: yes)."""
        return trial.learn is None or parameter in trial.learn

    def _switch_learning(self, trial: Trial) -> None:
        """Phases: each learned parameter's switch (``learning_<parameter>`` of the groups
        that have it) and each learning mechanism's own updates, on or off for this trial."""
        for parameter in self.phased:
            name = learning.switch(parameter)
            value = 1.0 if self.learns(trial, parameter) else 0.0
            for obj in self.objects:
                variables = getattr(obj, "variables", None)
                if variables is not None and name in variables:
                    variables[name].set_value(value)
        for mechanism, settings in self.mechanisms:
            if mechanism.learns:
                mechanism.learning(settings, self.context,
                                   self.learns(trial, mechanism.learns))

    def end_trial(self, trial: Trial) -> None:
        """The trial's row (``trial_row``); then a snapshot of the learned parameters when one
        is due (``[record] snapshots_every``)."""
        self.trial_rows.append(self.trial_row(trial, self.t_start, self.clock_time()))
        position = len(self.trial_rows) - 1
        if self.snapshots is not None and is_due(position, len(self.scenario.trials),
                                                 self.scenario.record.snapshots_every):
            values: dict = {}
            for mechanism, settings in self.mechanisms:
                values.update(mechanism.snapshot(settings, self.context))
            self.snapshots.add(position, values)

    # the compiled device (``sim.compiled``) ---------------------------------------------------
    def compiled_objects(self, context: Any) -> list:
        """Every per-step piece of the run that is Python here, as Brian2 objects without
        Python (``sim.compiled.context.NotCompiled`` if one has none)."""
        from sim.compiled.context import NotCompiled

        raise NotCompiled(f"the {self.scenario.kind.name} family has no compiled form yet")

    def compiled_replaced(self) -> list:
        """The runtime objects ``compiled_objects`` stands for (the recorder's work is the
        compiled run's monitors and replay)."""
        return [self.record_operation]

    # checkpoints (``sim.checkpoint``) --------------------------------------------------------
    def end_stretch(self) -> None:
        """The rows of the samples F's stretch holds, written (``sim.sample_stretch``)."""
        if self.stretch is not None:
            self.stretch.flush()

    def checkpoint(self) -> dict[str, Any]:
        """What the remaining trials depend on beyond Brian2's state, at a trial boundary, as
        plain data: the trial rows so far, the recorder's cadence, what the mechanisms and
        readouts keep (their ``checkpoint``) and the family's own (``family_checkpoint``)."""
        self.end_stretch()
        return {"trial_rows": self.trial_rows, "countdown": self.countdown, "now": self.now,
                "mechanisms": {mechanism.name: mechanism.checkpoint(settings, self.context)
                               for mechanism, settings in self.mechanisms},
                "readouts": {readout.name: readout.checkpoint(self) for readout in self.readouts},
                "family": self.family_checkpoint()}

    def resume(self, kept: dict[str, Any]) -> None:
        """Put back what ``checkpoint`` gave, into this run built afresh."""
        self.trial_rows = list(kept["trial_rows"])
        self.countdown, self.now = kept["countdown"], kept["now"]
        for mechanism, settings in self.mechanisms:
            mechanism.resume(settings, self.context, kept["mechanisms"][mechanism.name])
        for readout in self.readouts:
            readout.resume(self, kept["readouts"][readout.name])
        self.family_resume(kept["family"])

    def family_checkpoint(self) -> dict[str, Any]:
        """What the family keeps across trials outside Brian2's state."""
        return {}

    def family_resume(self, kept: dict[str, Any]) -> None:
        """Put back what ``family_checkpoint`` gave."""

    def trial_row(self, trial: Trial, t_start: float, t_stop: float) -> dict[str, Any]:
        """The trial's row: index, name, start and stop (s), then every readout's columns."""
        row = {"index": trial.index, "name": trial.name, "t_start": t_start, "t_stop": t_stop}
        for readout in self.readouts:
            row.update(readout.row(self, trial))
        return row

    def free_energy_now(self) -> float:
        """F of the current state (nat); a family provides it for the readouts."""
        raise NotImplementedError

    def free_energies(self, recorded: dict[str, dict[str, np.ndarray]]) -> np.ndarray | None:
        """``free_energy_now`` of each of several recorded states at once (population ->
        variable -> (states, units)); None where the family cannot."""
        return None

    def final_beliefs(self) -> dict[str, Any]:
        """The belief columns of the trial table, from the current state."""
        raise NotImplementedError

    def finish(self, **trial_attrs: Any) -> None:
        """Write the trial table (``trial_attrs`` go on its 2-D columns) and what the
        mechanisms leave at the end of the run."""
        self.end_stretch()
        if self.batch is not None:
            self.batch.finish(self)
        table = self.writer.file.require_group("trials")
        units = dict(TRIAL_UNITS)
        for readout in self.readouts:
            units.update(readout.column_units(self))
        for key in self.trial_rows[0] if self.trial_rows else ():  # none: diverged at once
            column = np.array([row[key] for row in self.trial_rows])
            extra = dict(trial_attrs) if column.ndim == 2 else {}
            unit = units.get(key, units.get(key.partition("/")[0], "1"))  # or its group's
            meaning = next(filter(None, (readout.nan_meaning(key, self.scenario.kind.name)
                                         for readout in self.readouts)), None)
            if meaning:
                extra[NAN_MEANS] = meaning  # sim.io.finite
            write_array(table, key, column, units=unit, **extra)
        for mechanism, settings in self.mechanisms:
            for path, value in mechanism.outputs(settings, self.context).items():
                group, _, name = path.rpartition("/")
                write_matrix(self.writer.file.require_group(group or "/"), name, value)
        for readout in self.readouts:
            readout.finish(self, self.scenario.readouts.get(readout.name))
