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
from typing import Any, Literal

import numpy as np

from circuits.generative import GenerativeMap
from sim.families.hierarchical.stimulus import Stimulus
from sim.timeline import Schedule

ErrorMode = Literal["relaxing", "instantaneous"]
CouplingKind = Literal["auto", "dense", "sparse", "synapses"]


@dataclass
class Level:
    """One level of the hierarchy.

    ``precision`` is Pi_l, the precision of this level's prediction error (for the top level,
    the prior precision). ``generative`` is g_l, how this level predicts the one below (None
    for level 0). ``initial_belief`` of None means "start at the top-down prediction".
    ``shape`` (rows, columns) lays the units out on a 2-D grid, row-major (local weights).
    ``units``: what its values are measured in (deg/s; "1" dimensionless), for figures and
    ``pcsim show`` (the dynamics are unit-free: errors are in 1/units, precisions 1/units^2).
    """

    name: str
    size: int
    precision: np.ndarray
    generative: GenerativeMap | None = None
    initial_belief: np.ndarray | None = None
    shape: tuple[int, int] | None = None
    units: str = "1"  # what the level's values are measured in ("1": dimensionless)


@dataclass
class TrialSettings:
    """A trial's own part: its stimulus and what it overrides: precisions by level name (for
    the whole trial, or following a ``Schedule``), the prior mean."""

    stimulus: Stimulus
    precision: dict[str, np.ndarray] = field(default_factory=dict)
    prior_mean: np.ndarray | None = None
    precision_schedule: dict[str, Schedule] = field(default_factory=dict)

    @property
    def overridden(self) -> set[str]:
        """The levels whose precision this trial sets."""
        return set(self.precision) | set(self.precision_schedule)

    def change_times_ms(self) -> list[float]:
        """When a configured value changes within the trial (0 included)."""
        times = {0.0}
        for schedule in self.precision_schedule.values():
            times.update(float(t) for t in schedule.times_ms)
        return sorted(times)

    def describe(self) -> dict:
        out: dict = {"stimulus": self.stimulus.describe()}
        if self.precision or self.precision_schedule:
            out["precision"] = {
                **{name: value.tolist() for name, value in self.precision.items()},
                **{name: schedule.describe()
                   for name, schedule in self.precision_schedule.items()}}
        if self.prior_mean is not None:
            out["prior_mean"] = self.prior_mean.tolist()
        return out


@dataclass(frozen=True)
class InForce:
    """The configured parameters in force in a trial: the precision of every level (0..L, the
    top one the prior precision) and the prior mean."""

    precisions: list[np.ndarray]
    prior_mean: np.ndarray


@dataclass
class HierarchicalModel:
    """``mechanisms``: the settings of the mechanisms the scenario switched on, by name
    (``sim.registry``). ``neurons``: ``rate`` units, or ``spiking`` populations with the
    ``spiking`` settings (``circuits.spiking``)."""

    levels: list[Level]
    prior_mean: np.ndarray
    errors: ErrorMode = "relaxing"
    tau_belief_ms: float = 10.0
    tau_error_ms: float = 2.0
    coupling: CouplingKind = "auto"
    mechanisms: dict[str, Any] = field(default_factory=dict)
    neurons: Literal["rate", "spiking"] = "rate"
    spiking: Any = None  # circuits.spiking.settings.SpikingSettings where neurons = "spiking"

    def in_force(self, settings: TrialSettings | None, t_ms: float = 0.0) -> InForce:
        """The one answer to "which configured values hold in this trial at ``t_ms`` from its
        start" (None: the model's own), asked by the build, the stability preflight and the
        free energy. Values that mechanisms change while running (learned precision) are not
        predicted here."""
        overrides = dict(settings.precision) if settings is not None else {}
        if settings is not None:
            overrides.update({name: schedule.at(t_ms)
                              for name, schedule in settings.precision_schedule.items()})
        precisions = [overrides.get(level.name, level.precision) for level in self.levels]
        prior_mean = (settings.prior_mean if settings is not None
                      and settings.prior_mean is not None else self.prior_mean)
        return InForce(precisions, prior_mean)

    @property
    def belief_levels(self) -> list[Level]:
        return self.levels[1:]

    @property
    def n_beliefs(self) -> int:
        return sum(level.size for level in self.belief_levels)

    def top_down_beliefs(self, prior_mean: np.ndarray | None = None) -> list[np.ndarray]:
        """Initial beliefs for levels 1..L: given ones, else the prediction from above,
        starting from ``prior_mean`` (default the model's)."""
        beliefs: list[np.ndarray] = [np.zeros(0)] * len(self.levels)
        above = self.prior_mean if prior_mean is None else prior_mean
        for index in range(len(self.levels) - 1, 0, -1):
            level = self.levels[index]
            belief = level.initial_belief if level.initial_belief is not None else above
            beliefs[index] = np.array(np.broadcast_to(belief, level.size), dtype=float)
            above = level.generative.predict(beliefs[index])
        return beliefs[1:]
