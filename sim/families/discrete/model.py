"""The discrete model: named causes, prior D, modalities with likelihoods A and precisions
gamma; a trial's observations and precisions."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np


@dataclass
class Modality:
    name: str
    outcomes: list[str]
    likelihood: np.ndarray  # A: outcomes x causes, columns sum to 1
    precision: float  # gamma, the default for every trial


@dataclass
class DiscreteModel:
    causes: list[str]
    prior: np.ndarray  # D
    modalities: list[Modality]
    tau_belief_ms: float
    mechanisms: dict[str, Any] = field(default_factory=dict)  # by name (``sim.registry``)

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
    precision: np.ndarray  # gamma per modality during this trial
    model: DiscreteModel = field(repr=False)

    def describe(self) -> dict:
        return {
            "precision": {m.name: float(g) for m, g in zip(self.model.modalities,
                                                           self.precision, strict=True)},
            "observations": [obs.describe(self.model) for obs in self.observations],
        }
