"""The discrete model: one or more hidden factors (named causes, prior D each), modalities with
likelihoods A over the joint cause and precisions gamma; a trial's observations and precisions.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from sim.timeline import Schedule

MAX_JOINT_STATES = 10**5  # joint causes of a several-factor model, by default (exact Bayes)


@dataclass
class Factor:
    """One hidden factor: its causes' names and its prior D."""

    name: str
    causes: list[str]
    prior: np.ndarray


@dataclass
class Modality:
    name: str
    outcomes: list[str]
    likelihood: np.ndarray  # A: outcomes x K_1 x ... x K_F, sums to 1 over outcomes
    precision: float  # gamma, the default for every trial


@dataclass
class DiscreteModel:
    """One factor (``causes``, ``prior``: the single-cause model) or several (``factors``,
    believed in by a mean-field Q, ``circuits.mean_field``)."""

    factors: list[Factor]
    modalities: list[Modality]
    tau_belief_ms: float
    max_joint_states: int = MAX_JOINT_STATES
    mechanisms: dict[str, Any] = field(default_factory=dict)  # by name (``sim.registry``)

    @property
    def mean_field(self) -> bool:
        return len(self.factors) > 1

    @property
    def causes(self) -> list[str]:
        """The causes of a single-factor model."""
        return self.factors[0].causes

    @property
    def prior(self) -> np.ndarray:
        """D of a single-factor model."""
        return self.factors[0].prior

    def log_prior_in_force(self, trial: DiscreteTrial | None = None) -> np.ndarray:
        r"""ln D in force in a trial: the model's D, tempered by the trial's prior precision
        beta when it sets one,

        .. math:: \ln \tilde D_k = \beta \ln D_k - \ln \sum_j D_j^\beta

        (beta > 1 sharpens the prior towards its most probable cause, beta < 1 flattens it
        towards uniform). Computed in the log domain, so a large beta leaves a very negative
        but finite log-prior rather than ln 0. No ``prior_precision``: ln D itself, bit for
        bit. One factor only."""
        if trial is None or trial.prior_precision is None:
            return np.log(self.prior)
        scaled = trial.prior_precision * np.log(self.prior)
        top = float(np.max(scaled))
        return scaled - (top + float(np.log(np.sum(np.exp(scaled - top)))))

    @property
    def joint_shape(self) -> tuple[int, ...]:
        return tuple(len(factor.causes) for factor in self.factors)

    def modality(self, name: str) -> int:
        return [m.name for m in self.modalities].index(name)


@dataclass(frozen=True)
class Observation:
    time_ms: float
    modality: int
    outcome: np.ndarray  # a probability vector over the modality's outcomes
    category: int | None  # the outcome index, when the observation is one category

    def describe(self, model: DiscreteModel) -> dict:
        modality = model.modalities[self.modality]
        value = (modality.outcomes[self.category] if self.category is not None
                 else self.outcome.tolist())
        return {"time_ms": self.time_ms, modality.name: value}


@dataclass
class DiscreteTrial:
    observations: list[Observation]
    precision: np.ndarray  # gamma per modality at the trial's start
    model: DiscreteModel = field(repr=False)
    prior_precision: float | None = None  # beta: the prior D^beta (renormalised); None: D
    precision_schedule: dict[int, Schedule] = field(default_factory=dict)  # by modality

    def gamma(self, modality: int, t_ms: float) -> float:
        """The precision in force for an observation of ``modality`` at ``t_ms``."""
        if modality in self.precision_schedule:
            return float(self.precision_schedule[modality].at(t_ms)[0])
        return float(self.precision[modality])

    def describe(self) -> dict:
        out: dict = {
            "precision": {m.name: (self.precision_schedule[i].describe()
                                   if i in self.precision_schedule else float(g))
                          for i, (m, g) in enumerate(zip(self.model.modalities,
                                                         self.precision, strict=True))},
            "observations": [obs.describe(self.model) for obs in self.observations],
        }
        if self.prior_precision is not None:
            out["prior_precision"] = self.prior_precision
        return out
