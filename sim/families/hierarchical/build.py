"""The running hierarchical network: belief and error populations (``circuits.belief``,
``circuits.error``), their coupling (``circuits.coupling``), the stimulus and the streamed
recording of beliefs, errors, precisions and free energy."""

from __future__ import annotations

import numpy as np
from brian2 import NetworkOperation

from circuits import schedule
from circuits.belief import belief_population
from circuits.coupling import build_coupling
from circuits.error import error_population
from sim.families.hierarchical.free_energy import free_energy
from sim.families.hierarchical.model import HierarchicalModel
from sim.families.hierarchical.parse import TrialSettings
from sim.io.writer import ResultWriter, write_matrix
from sim.scenario import Scenario, Trial
from sim.simulation import Simulation

STIMULUS_BLOCK = 1024
STIMULUS_BLOCK_BYTES = 1 << 20


class HierarchicalSimulation(Simulation):
    """The Brian2 objects of one run, plus what happens at trial boundaries."""

    def __init__(self, scenario: Scenario, writer: ResultWriter) -> None:
        super().__init__(scenario, writer, schedule.record_order(scenario.model.errors))
        model: HierarchicalModel = scenario.model
        self.model = model
        self.initial_beliefs = model.top_down_beliefs()
        self.beliefs = [
            belief_population(level.name, initial, model.tau_belief_ms, self.clock,
                              scenario.method)
            for level, initial in zip(model.belief_levels, self.initial_beliefs, strict=True)
        ]
        self.errors = [
            error_population(level.name, level.precision, model.errors, model.tau_error_ms,
                             self.clock, scenario.method, model.learning.tau_precision_ms)
            for level in model.levels
        ]
        self.errors[-1].prediction = model.prior_mean
        self.coupling = build_coupling(
            model.coupling, [level.generative for level in model.belief_levels], self.beliefs,
            self.errors, self.clock, model.learning.tau_weights_ms,
        )
        self.stimulus_operation = NetworkOperation(
            self._deliver_stimulus, when=schedule.SLOT, order=schedule.STIMULUS,
            clock=self.clock, name="stimulus")
        self.objects = [*self.beliefs, *self.errors, *self.coupling.objects,
                        self.stimulus_operation, self.record_operation]
        self.sensory = self.errors[0].variables["signal"].get_value()
        self.precisions = [group.variables["precision"].get_value() for group in self.errors]
        self._setup_recording()
        self.overridden: set[str] = set()

    # recording -------------------------------------------------------------------------------
    def _setup_recording(self) -> None:
        variables = set(self.scenario.record.variables)
        writer, model = self.writer, self.model
        initial_weights = [None, *self.coupling.weights(copy=False)]
        for index, (level, errors) in enumerate(zip(model.levels, self.errors, strict=True)):
            group = writer.file.require_group(f"levels/{level.name}")
            group.attrs["index"] = index
            group.attrs["size"] = level.size
            group.attrs["role"] = ("input" if index == 0 else
                                   "top" if index == len(model.levels) - 1 else "hidden")
            if index == 0:
                writer.stream(f"levels/{level.name}/input", level.size, lambda: self.sensory)
            elif "belief" in variables:
                state = self.beliefs[index - 1].variables["belief"].get_value()
                writer.stream(f"levels/{level.name}/belief", level.size, lambda s=state: s)
            if "error" in variables:
                state = errors.variables["error"].get_value()
                writer.stream(f"levels/{level.name}/error", level.size, lambda s=state: s)
            if "precision" in variables:
                state = errors.variables["precision"].get_value()
                writer.stream(f"levels/{level.name}/precision", level.size, lambda s=state: s)
            if level.generative is not None:
                write_matrix(group, "weights_initial", initial_weights[index])
        if "free_energy" in variables:
            self.latest_free_energy = None
            writer.stream("free_energy", None, lambda: self._free_energy().total, units="nat",
                          approximation="Laplace")
            writer.stream("energy", None, lambda: self.latest_free_energy.energy, units="nat")

    def _free_energy(self):
        beliefs = [group.variables["belief"].get_value() for group in self.beliefs]
        self.latest_free_energy = free_energy(self.model, self.sensory, beliefs, self.precisions)
        return self.latest_free_energy

    # stimulus --------------------------------------------------------------------------------
    def _deliver_stimulus(self) -> None:
        if self.block_row == len(self.block):
            self._next_block()
        self.sensory[:] = self.block[self.block_row]
        self.block_row += 1

    def _next_block(self) -> None:
        stimulus = self.trial.settings.stimulus
        start = self.steps_done
        rows = max(1, min(STIMULUS_BLOCK, STIMULUS_BLOCK_BYTES // (8 * len(self.sensory))))
        count = min(rows, self.trial_steps - start) or 1
        t_ms = (start + np.arange(count)) * self.scenario.dt_ms
        block = stimulus.at(t_ms)
        if np.any(stimulus.noise_std):
            block = block + stimulus.noise_std * self.noise.standard_normal(block.shape)
        self.block, self.block_row = block, 0
        self.steps_done += count

    # trials ----------------------------------------------------------------------------------
    def start_trial(self, trial: Trial) -> None:
        settings: TrialSettings = trial.settings
        if trial.reset:
            for group, initial in zip(self.beliefs, self.initial_beliefs, strict=True):
                group.belief = initial
            for group in self.errors:
                group.error = 0.0
        for index, level in enumerate(self.model.levels):
            if level.name in settings.precision:
                self.precisions[index][:] = settings.precision[level.name]
            elif level.name in self.overridden:
                self.precisions[index][:] = level.precision
        self.overridden = set(settings.precision)
        prior = settings.prior_mean if settings.prior_mean is not None else self.model.prior_mean
        self.errors[-1].prediction = prior
        super().start_trial(trial)
        self.trial_steps = self.scenario.steps(trial.duration_ms)
        self.noise = np.random.default_rng([self.scenario.seed, 2, trial.index])
        self.steps_done = 0
        self._next_block()
        self.sensory[:] = self.block[0]
        self.stimulus_operation.active = not settings.stimulus.is_constant

    def end_trial(self, trial: Trial) -> None:
        row = {**self.trial_row(trial), "final_free_energy": self._free_energy().total}
        for group, level in zip(self.beliefs, self.model.belief_levels, strict=True):
            row[f"final_belief/{level.name}"] = np.array(group.belief[:])
        self.trial_rows.append(row)

    def finish(self) -> None:
        file = self.writer.file
        self.write_trials()
        if self.model.learning.tau_weights_ms is not None:
            for level, weights in zip(self.model.belief_levels, self.coupling.weights(),
                                      strict=True):
                write_matrix(file[f"levels/{level.name}"], "weights_final", weights)
