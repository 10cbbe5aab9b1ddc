"""The belief over a discrete model's causes, as the family builds and reads it: one categorical
circuit (``circuits.discrete``) for one factor, or one per factor coupled by their messages
(``circuits.mean_field``) for several. Both give the same face to the family: the objects to
run, where observations go (``add``), and a ``readout`` of Q, eps and F for recording."""

from __future__ import annotations

import numpy as np
from brian2 import Clock

from circuits.discrete import CategoricalCircuit, softmax
from circuits.mean_field import MeanFieldCoupling, expected_evidence, log_softmax, message
from sim.families.discrete.model import DiscreteModel
from sim.reference.categorical import joint_log_prior


class SingleCause:
    """One factor: the circuit's ``sensory`` input is the evidence itself."""

    def __init__(self, model: DiscreteModel, clock: Clock, method: str) -> None:
        self.circuit = CategoricalCircuit(np.log(model.prior), model.tau_belief_ms, clock,
                                          method)
        self.circuits = [self.circuit]
        self.objects = list(self.circuit.objects)

    @property
    def beliefs(self) -> list[np.ndarray]:
        return [self.circuit.belief]

    @property
    def errors(self) -> list[np.ndarray]:
        return [self.circuit.error]

    @property
    def free_energy(self) -> float:
        return self.circuit.free_energy

    def reset(self) -> None:
        self.circuit.reset()

    def add(self, evidence: np.ndarray) -> None:
        self.circuit.sensory += evidence

    def log_joint(self) -> np.ndarray:
        """ln p(o, s) of the evidence so far, over the causes."""
        return self.circuit.log_prior + self.circuit.sensory

    def readout(self) -> None:
        self.circuit.readout()

    def q_of(self, log_beliefs: list[np.ndarray]) -> np.ndarray:
        """Q of the circuit's log-beliefs v (``[v]``: a vector, or a row per step), as
        ``readout`` computes it (bit for bit): what a readout watching Q reads
        (``sim.readouts.decision``)."""
        q = np.empty_like(log_beliefs[0])
        softmax(log_beliefs[0], q)
        return q


class MeanField:
    """Several factors: the evidence tensor L over the joint causes, and a circuit per factor
    whose ``sensory`` input is its message E_{Q_-f}[L] (``circuits.mean_field``)."""

    def __init__(self, model: DiscreteModel, clock: Clock, method: str) -> None:
        self.circuits = [
            CategoricalCircuit(np.log(factor.prior), model.tau_belief_ms, clock, method,
                               turn=turn)
            for turn, factor in enumerate(model.factors)]
        self.log_priors = [circuit.log_prior for circuit in self.circuits]
        self.joint_log_prior = joint_log_prior(factor.prior for factor in model.factors)
        self.evidence = np.zeros(model.joint_shape, dtype=self.circuits[0].sensory.dtype)
        self.coupling = MeanFieldCoupling(self.circuits, self.evidence, clock)
        self.objects = [obj for circuit in self.circuits for obj in circuit.objects]
        self.objects += self.coupling.objects
        self.beliefs = [np.empty(len(c.v)) for c in self.circuits]
        self.errors = [np.empty(len(c.v)) for c in self.circuits]
        self.free_energy = 0.0
        self.readout()

    def reset(self) -> None:
        for circuit in self.circuits:
            circuit.reset()
        self.evidence[:] = 0.0
        self.readout()

    def add(self, evidence: np.ndarray) -> None:
        self.evidence += evidence

    def log_joint(self) -> np.ndarray:
        """ln p(o, s) of the evidence so far, over the joint causes."""
        return self.joint_log_prior + self.evidence

    def q_of(self, log_beliefs: list[np.ndarray]) -> np.ndarray:
        """Q_f of each factor's log-beliefs v_f (each a vector, or a row per step), side by
        side over the last axis, as ``readout`` computes them (bit for bit), without the
        errors and F: what a readout watching Q reads (``sim.readouts.decision``)."""
        return np.concatenate([np.exp(log_softmax(v)) for v in log_beliefs], axis=-1)

    def readout(self) -> None:
        """Q_f, eps_f = ln D_f + E_{Q_-f}[L] - ln Q_f, and
        F = sum_f Q_f . (ln Q_f - ln D_f) - E_Q[L], all from the log-beliefs now."""
        log_beliefs = [log_softmax(circuit.v) for circuit in self.circuits]
        beliefs = [np.exp(log_belief) for log_belief in log_beliefs]
        free_energy = -expected_evidence(self.evidence, beliefs)
        for f, (belief, log_belief, log_prior) in enumerate(
                zip(beliefs, log_beliefs, self.log_priors, strict=True)):
            self.beliefs[f][:] = belief
            self.errors[f][:] = log_prior + message(self.evidence, beliefs, f) - log_belief
            free_energy += float(belief @ (log_belief - log_prior))
        self.free_energy = free_energy
