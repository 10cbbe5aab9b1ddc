"""What every model family's running network shares: its clock, the recorder and trial table.

A model family (``sim.hierarchical``, ``sim.discrete``) subclasses ``Simulation``, registers
its streams on ``writer`` (``ResultWriter.stream``) and adds its Brian2 objects to
``objects``. The recorder samples every stream once each ``record.every_steps`` steps, in the
in-step slot ``record_order`` (``circuits.schedule``); the time axis is the first stream.
"""

from __future__ import annotations

from typing import ClassVar

import numpy as np
from brian2 import Clock, NetworkOperation, ms

from circuits import schedule
from sim.io.writer import ResultWriter, write_array
from sim.scenario import Scenario, Trial


class Simulation:
    """The shared part of one run: clock, recorder, per-trial rows (written to ``trials/``)."""

    trial_units: ClassVar[dict[str, str]] = {
        "t_start": "s", "t_stop": "s", "final_free_energy": "nat"}

    def __init__(self, scenario: Scenario, writer: ResultWriter, record_order: int) -> None:
        self.scenario, self.writer = scenario, writer
        self.clock = Clock(scenario.dt_ms * ms, name="pcsim_clock")
        self.record_operation = NetworkOperation(
            self._record, when=schedule.SLOT, order=record_order, clock=self.clock,
            name="recorder")
        self.countdown = 1
        self.now = 0.0
        writer.stream("time", None, lambda: self.now, units="s")
        self.trial_rows: list[dict] = []
        self.t_start = 0.0

    def clock_time(self) -> float:
        """The network's time now, in seconds."""
        return float(self.clock.variables["t"].get_value()[0])

    def _record(self) -> None:
        self.countdown -= 1
        if self.countdown:
            return
        self.countdown = self.scenario.record.every_steps
        self.now = self.clock_time()
        self.before_sample()
        for streamed in self.writer.streams:
            streamed.sample()

    def before_sample(self) -> None:
        """Work a family does once per recorded sample, before its streams read the state."""

    def start_trial(self, trial: Trial) -> None:
        self.trial = trial
        self.t_start = self.clock_time()

    def trial_row(self, trial: Trial) -> dict:
        """The columns every family's trial table has; a family adds its own."""
        return {"index": trial.index, "name": trial.name, "t_start": self.t_start,
                "t_stop": self.clock_time()}

    def write_trials(self, **attrs) -> None:
        """``trials/<column>``, one row per trial run; ``attrs`` go on 2-D columns."""
        table = self.writer.file.require_group("trials")
        for key in self.trial_rows[0] if self.trial_rows else ():  # none: diverged at once
            column = np.array([row[key] for row in self.trial_rows])
            extra = attrs if column.ndim == 2 else {}
            write_array(table, key, column, units=self.trial_units.get(key, "1"), **extra)
