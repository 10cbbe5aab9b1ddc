"""The running discrete network: the belief, error and pool populations of
``circuits.discrete``, the delivery of observations and the streamed recording of Q, eps, F and
the surprise (HDF5 layout: docs/discrete.md)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import numpy as np
from brian2 import NetworkOperation

from circuits import schedule
from circuits.discrete import CategoricalCircuit, sensory_message
from sim.families.discrete.model import DiscreteModel, DiscreteTrial, Observation
from sim.io.writer import ResultWriter, write_array
from sim.reference import categorical
from sim.scenario import Scenario, Trial
from sim.simulation import Simulation


@dataclass
class Pending:
    step: int
    message: np.ndarray  # ln Ã[o, k] under this trial's precision
    observation: Observation


class DiscreteSimulation(Simulation):
    """The Brian2 objects of one run, the observation schedule and the per-trial results."""

    trial_units: ClassVar[dict[str, str]] = {**Simulation.trial_units, "surprise": "nat"}

    def __init__(self, scenario: Scenario, writer: ResultWriter) -> None:
        super().__init__(scenario, writer, schedule.DISCRETE_RECORD)
        model: DiscreteModel = scenario.model
        self.model = model
        self.circuit = CategoricalCircuit(np.log(model.prior), model.tau_belief_ms, self.clock,
                                          scenario.method)
        self.log_likelihoods = [np.log(m.likelihood) for m in model.modalities]
        self.observe_operation = NetworkOperation(
            self._observe, when=schedule.SLOT, order=schedule.STIMULUS, clock=self.clock,
            name="observations")
        self.objects = [*self.circuit.objects, self.observe_operation, self.record_operation]
        self.evidence: list[categorical.Observation] = []  # since the last reset, for Bayes
        self.surprise = 0.0
        self.delivered: list[tuple[float, int, Observation, float]] = []
        self._setup_recording()

    # recording ---------------------------------------------------------------------------------
    def _setup_recording(self) -> None:
        variables = set(self.scenario.record.variables)
        writer, model, circuit = self.writer, self.model, self.circuit
        names = np.array(model.causes, dtype=object)
        causes = writer.file.require_group("causes")
        causes.attrs["names"] = names
        write_array(causes, "prior", model.prior, names=names)
        if "belief" in variables:
            writer.stream("causes/belief", len(names), lambda: circuit.belief, names=names)
        if "error" in variables:
            writer.stream("causes/error", len(names), lambda: circuit.error, units="nat",
                          names=names)
        if "free_energy" in variables:
            writer.stream("free_energy", None, lambda: circuit.free_energy, units="nat",
                          approximation="exact (categorical)")
        if "surprise" in variables:
            writer.stream("surprise", None, lambda: self.surprise, units="nat")
        for modality in model.modalities:
            group = writer.file.require_group(f"modalities/{modality.name}")
            group.attrs["outcomes"] = np.array(modality.outcomes, dtype=object)
            group.attrs["precision"] = modality.precision
            write_array(group, "likelihood", modality.likelihood, causes=names,
                        outcomes=np.array(modality.outcomes, dtype=object))

    def before_sample(self) -> None:
        self.circuit.readout()

    # observations ------------------------------------------------------------------------------
    def _observe(self) -> None:
        self.until_next -= 1
        if self.until_next:
            return
        step = self.pending[self.next_index].step
        sensory = self.circuit.sensory
        while self.next_index < len(self.pending) and self.pending[self.next_index].step == step:
            item = self.pending[self.next_index]
            sensory += item.message
            obs = item.observation
            gamma = float(self.trial.settings.precision[obs.modality])
            outcome = obs.category if obs.category is not None else obs.outcome
            self.evidence.append((self.model.modalities[obs.modality].likelihood, gamma, outcome))
            self.delivered.append((self.clock_time(), self.trial.index, obs, gamma))
            self.next_index += 1
        self.surprise = categorical.surprise(self.circuit.log_prior + sensory)
        if self.next_index < len(self.pending):
            self.until_next = self.pending[self.next_index].step - step
        else:
            self.observe_operation.active = False

    # trials ------------------------------------------------------------------------------------
    def start_trial(self, trial: Trial) -> None:
        settings: DiscreteTrial = trial.settings
        if trial.reset:
            self.circuit.reset()
            self.evidence = []
            self.surprise = 0.0
        super().start_trial(trial)
        last = self.scenario.steps(trial.duration_ms) - 1
        self.pending = [
            Pending(min(round(obs.time_ms / self.scenario.dt_ms), last),
                    sensory_message(self.log_likelihoods[obs.modality], obs.outcome,
                                    settings.precision[obs.modality]),
                    obs)
            for obs in settings.observations
        ]
        self.next_index = 0
        self.until_next = self.pending[0].step + 1 if self.pending else 0
        self.observe_operation.active = bool(self.pending)

    def end_trial(self, trial: Trial) -> None:
        self.circuit.readout()  # Q, eps and F of the final state
        exact, surprise = categorical.bayes(self.model.prior, self.evidence)
        row = {
            **self.trial_row(trial),
            "final_free_energy": self.circuit.free_energy,
            "surprise": surprise,
            "final_belief": self.circuit.belief.copy(),
            "exact_posterior": exact,
        }
        for modality, gamma in zip(self.model.modalities, trial.settings.precision,
                                   strict=True):
            row[f"precision/{modality.name}"] = float(gamma)
        self.trial_rows.append(row)

    def finish(self) -> None:
        file = self.writer.file
        self.write_trials(names=np.array(self.model.causes, dtype=object))
        for index, modality in enumerate(self.model.modalities):
            rows = [item for item in self.delivered if item[2].modality == index]
            group = file.require_group(f"observations/{modality.name}")
            group.attrs["outcomes"] = np.array(modality.outcomes, dtype=object)
            outcomes = np.array([obs.outcome for _, _, obs, _ in rows]).reshape(
                len(rows), len(modality.outcomes))
            write_array(group, "time", np.array([t for t, _, _, _ in rows], dtype=float),
                        units="s")
            write_array(group, "trial", np.array([i for _, i, _, _ in rows], dtype=np.int64))
            write_array(group, "outcome", outcomes)
            write_array(group, "precision", np.array([g for _, _, _, g in rows], dtype=float))
