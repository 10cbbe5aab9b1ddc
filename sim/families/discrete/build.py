"""The running discrete network: the belief, error and pool populations of
``circuits.discrete``, the delivery of observations and the streamed recording of Q, eps, F and
the surprise (HDF5 layout: docs/discrete.md)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
from brian2 import NetworkOperation

from circuits import schedule
from circuits.discrete import sensory_message
from circuits.mechanism import BuildContext, Stream
from circuits.variables import (
    FREE_ENERGY,
    LOG_ERROR,
    OBSERVATION,
    POSTERIOR,
    SURPRISE,
    declaration_attrs,
)
from sim.families.discrete.beliefs import MeanField, SingleCause
from sim.families.discrete.model import DiscreteModel, DiscreteTrial, Observation
from sim.guard import FreeEnergyMonitor
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

    def __init__(self, scenario: Scenario, writer: ResultWriter,
                 readouts_off: dict[str, str] | None = None) -> None:
        super().__init__(scenario, writer, schedule.DISCRETE_RECORD, readouts_off)
        model: DiscreteModel = scenario.model
        self.model = model
        self.level_names = [factor.name for factor in model.factors]  # Brian2 names: by index
        self.state = (MeanField if model.mean_field else SingleCause)(
            model, self.clock, scenario.method)
        self.log_likelihoods = [np.log(m.likelihood) for m in model.modalities]
        self.observe_operation = NetworkOperation(
            self._observe, when=schedule.SLOT, order=schedule.STIMULUS, clock=self.clock,
            name="observations")
        circuits = self.state.circuits
        mechanism_objects = self.build_mechanisms(BuildContext(
            scenario, model, self.clock, [c.beliefs for c in circuits],
            [c.errors for c in circuits], None))
        self.objects = [*self.state.objects, *mechanism_objects, self.observe_operation,
                        self.record_operation, *self.readout_objects()]
        self.evidence: list[categorical.Observation] = []  # since the last reset, for Bayes
        self.surprise = 0.0
        self.prior_precision: float | None = None  # beta of the log_prior in the circuit
        self.delivered: list[tuple[float, int, Observation, float]] = []
        self.monitor = FreeEnergyMonitor()
        self._describe_model()
        self.record([*self.streams(), *self.mechanism_streams()])

    # recording ---------------------------------------------------------------------------------
    def streams(self) -> list[Stream]:
        """What the family can record: Q and eps over each factor's causes, F and the surprise.
        One factor records under ``causes/``, several under ``factors/<name>/``."""
        state, found = self.state, []
        for f, factor in enumerate(self.model.factors):
            where = f"factors/{factor.name}" if self.model.mean_field else "causes"
            names = {"names": np.array(factor.causes, dtype=object)}
            found.append(Stream(f"{where}/belief", len(factor.causes),
                                lambda f=f: state.beliefs[f], variable="belief", attrs=names,
                                declares=POSTERIOR))
            found.append(Stream(f"{where}/error", len(factor.causes),
                                lambda f=f: state.errors[f], units="nat", variable="error",
                                attrs=names, declares=LOG_ERROR))
        approximation = "mean-field (exact F of Q)" if self.model.mean_field else \
            "exact (categorical)"
        found.append(Stream("free_energy", None, lambda: state.free_energy, units="nat",
                            variable="free_energy", attrs={"approximation": approximation},
                            declares=FREE_ENERGY))
        found.append(Stream("surprise", None, lambda: self.surprise, units="nat",
                            variable="surprise", declares=SURPRISE))
        return found

    def _describe_model(self) -> None:
        """The causes (names, prior) of each factor and each modality (outcomes, precision,
        likelihood)."""
        writer, model = self.writer, self.model
        for factor in model.factors:
            names = np.array(factor.causes, dtype=object)
            group = writer.file.require_group(f"factors/{factor.name}" if model.mean_field
                                              else "causes")
            group.attrs["names"] = names
            write_array(group, "prior", factor.prior, names=names)
        for modality in model.modalities:
            group = writer.file.require_group(f"modalities/{modality.name}")
            group.attrs["outcomes"] = np.array(modality.outcomes, dtype=object)
            group.attrs["precision"] = modality.precision
            if model.mean_field:
                group.attrs["factors"] = np.array([f.name for f in model.factors], dtype=object)
                write_array(group, "likelihood", modality.likelihood,
                            outcomes=np.array(modality.outcomes, dtype=object))
            else:
                write_array(group, "likelihood", modality.likelihood,
                            causes=np.array(model.causes, dtype=object),
                            outcomes=np.array(modality.outcomes, dtype=object))

    def before_sample(self) -> None:
        self.state.readout()
        self.monitor.sample(self.clock_time(), self.state.free_energy)

    # observations ------------------------------------------------------------------------------
    def _observe(self) -> None:
        self.until_next -= 1
        if self.until_next:
            return
        step = self.pending[self.next_index].step
        while self.next_index < len(self.pending) and self.pending[self.next_index].step == step:
            item = self.pending[self.next_index]
            self.state.add(item.message)
            obs = item.observation
            gamma = self.trial.settings.gamma(obs.modality, obs.time_ms)
            outcome = obs.category if obs.category is not None else obs.outcome
            self.evidence.append((self.model.modalities[obs.modality].likelihood, gamma, outcome))
            self.delivered.append((self.clock_time(), self.trial.index, obs, gamma))
            self.next_index += 1
        self.surprise = categorical.surprise(self.state.log_joint())
        self.monitor.evidence_changed()
        if self.next_index < len(self.pending):
            self.until_next = self.pending[self.next_index].step - step
        else:
            self.until_next = -1  # none left in this trial (counting down, never 0 again)

    # trials ------------------------------------------------------------------------------------
    def start_trial(self, trial: Trial) -> None:
        settings: DiscreteTrial = trial.settings
        self._put_prior_in_force(settings)
        if trial.reset:
            self.state.reset()
            self.evidence = []
            self.surprise = 0.0
            self.monitor.evidence_changed()
        super().start_trial(trial)
        last = self.scenario.steps(trial.duration_ms) - 1
        self.pending = [
            Pending(min(round(obs.time_ms / self.scenario.dt_ms), last),
                    sensory_message(self.log_likelihoods[obs.modality], obs.outcome,
                                    settings.gamma(obs.modality, obs.time_ms)),
                    obs)
            for obs in settings.observations
        ]
        self.next_index = 0
        self.until_next = self.pending[0].step + 1 if self.pending else -1

    def _put_prior_in_force(self, settings: DiscreteTrial) -> None:
        """The circuit's ``log_prior`` (Brian2 ``(constant)`` state) becomes ln D^beta
        (renormalised) of this trial's ``prior_precision`` beta, and goes back to ln D in the
        first trial that sets none. Runs before a reset, which puts v = ln D in force; a trial
        without a reset keeps its beliefs and evidence under the new prior. Untouched while no
        trial sets a prior precision, so those runs keep every number."""
        if settings.prior_precision == self.prior_precision:
            return
        self.state.circuit.log_prior[:] = self.model.log_prior_in_force(settings)
        self.prior_precision = settings.prior_precision

    # checkpoints (sim.checkpoint) ----------------------------------------------------------------
    def family_checkpoint(self) -> dict[str, Any]:
        """The evidence since the last reset (for Bayes, and a mean-field run's tensor L),
        the surprise, the prior in force, the observations delivered (each by its trial's
        index and its place among the trial's observations) and the free-energy monitor's
        counts."""
        trials = {trial.index: trial for trial in self.scenario.trials}

        def place(index: int, observation: Observation) -> int:
            listed = trials[index].settings.observations
            return next(k for k, known in enumerate(listed) if known is observation)

        return {"evidence": self.evidence, "surprise": self.surprise,
                "prior_precision": self.prior_precision,
                "delivered": [(t, index, place(index, obs), gamma)
                              for t, index, obs, gamma in self.delivered],
                "monitor": dict(vars(self.monitor)),
                "joint_evidence": getattr(self.state, "evidence", None)}

    def family_resume(self, kept: dict[str, Any]) -> None:
        trials = {trial.index: trial for trial in self.scenario.trials}
        self.evidence = list(kept["evidence"])
        self.surprise, self.prior_precision = kept["surprise"], kept["prior_precision"]
        self.delivered = [(t, index, trials[index].settings.observations[k], gamma)
                          for t, index, k, gamma in kept["delivered"]]
        vars(self.monitor).update(kept["monitor"])
        if kept["joint_evidence"] is not None:  # in place: the coupling shares it
            self.state.evidence[...] = kept["joint_evidence"]

    # for the readouts ---------------------------------------------------------------------------
    def free_energy_now(self) -> float:
        self.state.readout()  # Q, eps and F of the current state
        return self.state.free_energy

    def final_beliefs(self) -> dict[str, Any]:
        self.state.readout()
        if not self.model.mean_field:
            return {"final_belief": self.state.beliefs[0].copy()}
        return {f"final_belief/{factor.name}": belief.copy()
                for factor, belief in zip(self.model.factors, self.state.beliefs, strict=True)}

    def finish(self) -> None:
        file = self.writer.file
        names = {} if self.model.mean_field else {"names": np.array(self.model.causes,
                                                                    dtype=object)}
        super().finish(**names)
        self.monitor.report(file)
        for index, modality in enumerate(self.model.modalities):
            rows = [item for item in self.delivered if item[2].modality == index]
            group = file.require_group(f"observations/{modality.name}")
            group.attrs["outcomes"] = np.array(modality.outcomes, dtype=object)
            outcomes = np.array([obs.outcome for _, _, obs, _ in rows]).reshape(
                len(rows), len(modality.outcomes))
            write_array(group, "time", np.array([t for t, _, _, _ in rows], dtype=float),
                        units="s")
            write_array(group, "trial", np.array([i for _, i, _, _ in rows], dtype=np.int64))
            write_array(group, "outcome", outcomes, **declaration_attrs(OBSERVATION))
            write_array(group, "precision", np.array([g for _, _, _, g in rows], dtype=float))
