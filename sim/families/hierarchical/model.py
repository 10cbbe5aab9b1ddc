"""Declarative description of a continuous predictive-coding hierarchy (resolved, numeric).

Levels are numbered 0..L. Level 0 is the sensory input x; level l >= 1 holds beliefs mu_l.
Every level l has one error population of n_l units carrying

    e_l = mu_l - prediction_l,      prediction_l = g_{l+1}(mu_{l+1})  (l < L),  m  (l = L)

with mu_0 = x and m the prior mean, and a diagonal precision Pi_l (the gain of those error
units). The top level's precision is the prior precision. These objects hold parameters only;
``build`` makes Brian2 circuits (``circuits/``) from them and ``free_energy`` evaluates F.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

import numpy as np

from circuits.generative import GenerativeMap

ErrorMode = Literal["relaxing", "instantaneous"]
CouplingKind = Literal["auto", "dense", "sparse", "synapses"]


@dataclass
class Level:
    """One level of the hierarchy.

    ``precision`` is Pi_l, the precision of this level's prediction error (for the top level,
    the prior precision). ``generative`` is g_l, how this level predicts the one below (None
    for level 0). ``initial_belief`` of None means "start at the top-down prediction".
    ``shape`` (rows, columns) lays the units out on a 2-D grid, row-major (local weights).
    """

    name: str
    size: int
    precision: np.ndarray
    generative: GenerativeMap | None = None
    initial_belief: np.ndarray | None = None
    shape: tuple[int, int] | None = None


@dataclass
class Learning:
    """Slow learning: time constants (ms, None = off) of the parameter flows -dF/dtheta."""

    tau_weights_ms: float | None = None
    tau_precision_ms: float | None = None


@dataclass
class HierarchicalModel:
    levels: list[Level]
    prior_mean: np.ndarray
    errors: ErrorMode = "relaxing"
    tau_belief_ms: float = 10.0
    tau_error_ms: float = 2.0
    coupling: CouplingKind = "auto"
    learning: Learning = field(default_factory=Learning)

    @property
    def belief_levels(self) -> list[Level]:
        return self.levels[1:]

    @property
    def n_beliefs(self) -> int:
        return sum(level.size for level in self.belief_levels)

    def top_down_beliefs(self) -> list[np.ndarray]:
        """Initial beliefs for levels 1..L: given ones, else the prediction from above."""
        beliefs: list[np.ndarray] = [np.zeros(0)] * len(self.levels)
        above = self.prior_mean
        for index in range(len(self.levels) - 1, 0, -1):
            level = self.levels[index]
            belief = level.initial_belief if level.initial_belief is not None else above
            beliefs[index] = np.array(np.broadcast_to(belief, level.size), dtype=float)
            above = level.generative.predict(beliefs[index])
        return beliefs[1:]
