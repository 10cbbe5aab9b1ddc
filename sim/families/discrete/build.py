"""The running discrete network: the belief, error and pool populations of
``circuits.discrete``, the delivery of observations and the streamed recording of Q, eps, F and
the surprise (HDF5 layout: docs/discrete.md)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
from brian2 import NetworkOperation

from circuits import schedule
from circuits.discrete import CategoricalCircuit, sensory_message
from circuits.mechanism import BuildContext, Stream
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
        mechanism_objects = self.build_mechanisms(BuildContext(
            scenario, model, self.clock, [self.circuit.beliefs], [self.circuit.errors], None))
        self.objects = [*self.circuit.objects, *mechanism_objects, self.observe_operation,
                        self.record_operation]
        self.evidence: list[categorical.Observation] = []  # since the last reset, for Bayes
        self.surprise = 0.0
        self.delivered: list[tuple[float, int, Observation, float]] = []
        self._describe_model()
        self.record([*self.streams(), *self.mechanism_streams()])

    # recording ---------------------------------------------------------------------------------
    def streams(self) -> list[Stream]:
        """What the family can record: Q and eps over causes, F and the surprise."""
        circuit = self.circuit
        names = {"names": np.array(self.model.causes, dtype=object)}
        return [
            Stream("causes/belief", len(self.model.causes), lambda: circuit.belief,
                   variable="belief", attrs=names),
            Stream("causes/error", len(self.model.causes), lambda: circuit.error, units="nat",
                   variable="error", attrs=names),
            Stream("free_energy", None, lambda: circuit.free_energy, units="nat",
                   variable="free_energy", attrs={"approximation": "exact (categorical)"}),
            Stream("surprise", None, lambda: self.surprise, units="nat", variable="surprise"),
        ]

    def _describe_model(self) -> None:
        """The causes (names, prior) and each modality (outcomes, precision, likelihood)."""
        writer, model = self.writer, self.model
        names = np.array(model.causes, dtype=object)
        causes = writer.file.require_group("causes")
        causes.attrs["names"] = names
        write_array(causes, "prior", model.prior, names=names)
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

    # for the readouts ---------------------------------------------------------------------------
    def free_energy_now(self) -> float:
        self.circuit.readout()  # Q, eps and F of the current state
        return self.circuit.free_energy

    def final_beliefs(self) -> dict[str, Any]:
        self.circuit.readout()
        return {"final_belief": self.circuit.belief.copy()}

    def finish(self) -> None:
        file = self.writer.file
        super().finish(names=np.array(self.model.causes, dtype=object))
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
