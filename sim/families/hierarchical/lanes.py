"""One copy of the hierarchical network's state and the trial it runs: a ``Lane``.

A serial run has one lane, whose arrays are the populations' whole state arrays. A batched run
(``sim.batch``) has B copies of every population, copy after copy, and one lane per copy, whose
arrays are that copy's row of the (B, n) view: each lane runs its own trial (its stimulus and
noise, the precisions in force and their schedule, its reset), so what a trial does at its
start and at each step is written once, here, for both.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
from brian2 import NeuronGroup

from circuits.mechanism import state_array
from circuits.precision import configured_variable
from sim.families.hierarchical.free_energy import GramCache
from sim.families.hierarchical.model import HierarchicalModel, TrialSettings
from sim.families.hierarchical.stimulus import DRAWN_STREAM
from sim.timeline import first_step_at


def tiled(values: Any, size: int, copies: int) -> Any:
    """A level's initial values for ``copies`` copies of its ``size`` units (as given for one)."""
    return values if copies == 1 else np.tile(np.broadcast_to(values, (size,)), copies)


class LazyGenerator:
    """``numpy.random.default_rng(seed)``, made when first drawn from: making one costs
    30-80 us, and most trial starts draw nothing from their stimulus's stream, while those
    that the compiled device runs ahead of the program (``sim.compiled.trial_starts``) draw
    no noise either. Its draws are the generator's own."""

    def __init__(self, seed: list[int]) -> None:
        self.seed = seed
        self.generator: np.random.Generator | None = None

    def __getattr__(self, name: str) -> Any:
        if name.startswith("__") or name in ("seed", "generator"):  # copies, pickles
            raise AttributeError(name)
        if self.generator is None:
            self.generator = np.random.default_rng(self.seed)
        return getattr(self.generator, name)


class Lane:
    """Copy ``copy``'s arrays (``sensory``, ``beliefs``, ``errors``, ``precisions``,
    ``configured``, ``prior_mean``: the one in force) and its trial's running state."""

    def __init__(self, copy: int, copies: int, scenario: Any, beliefs: Sequence[NeuronGroup],
                 errors: Sequence[NeuronGroup], gram_cache: GramCache) -> None:
        def rows(group: NeuronGroup, name: str) -> np.ndarray:
            values = state_array(group, name, copies)
            return values if copies == 1 else values[copy]

        self.scenario = scenario
        self.model: HierarchicalModel = scenario.model
        self.sensory = rows(errors[0], "signal")
        self.beliefs = [rows(group, "belief") for group in beliefs]
        self.errors = [rows(group, "error") for group in errors]
        self.precisions = [rows(group, "precision") for group in errors]
        self.configured = [rows(group, configured_variable(group)) for group in errors]
        self.prior_mean = rows(errors[-1], "prediction")
        self.gram_cache = gram_cache  # shared by the lanes (free_energy.GramCache)
        self.started = False  # a trial ran in this lane
        self.overridden: set[str] = set()
        self.prior_overridden = False
        self.trial: Any = None
        self.sampled_energy = self.sampled_free_energy = math.nan  # F at the last sample

    def start(self, trial: Any,
              initial_beliefs: Callable[[np.ndarray], Sequence[np.ndarray]]) -> None:
        """Put ``trial``'s configured values in force: a level's precision (and the prior
        mean) is set where this trial or the one before overrides it, and at the first trial
        (elsewhere a learned value carries over); if the trial resets, beliefs go to
        ``initial_beliefs(prior mean in force)`` and errors to 0."""
        settings: TrialSettings = trial.settings
        in_force = self.model.in_force(settings)
        for index, level in enumerate(self.model.levels):
            if level.name in settings.overridden or level.name in self.overridden:
                self.configured[index][:] = in_force.precisions[index]
        self.overridden = settings.overridden
        if not self.started or settings.prior_mean is not None or self.prior_overridden:
            self.prior_mean[:] = in_force.prior_mean  # else a learned one carries over
        self.prior_overridden = settings.prior_mean is not None
        self.started = True
        if trial.reset:
            for belief, initial in zip(self.beliefs, initial_beliefs(self.prior_mean),
                                       strict=True):
                belief[:] = initial
            for error in self.errors:
                error[:] = 0.0
        self.trial = trial
        self.trial_steps = self.scenario.steps(trial.duration_ms)
        # the steps where a scheduled precision changes, each from the first step at or after
        # its time (as a stimulus's breakpoints); times within one step change it once
        self.changes = sorted({step for t in settings.change_times_ms()[1:]
                               if (step := first_step_at(t, self.scenario.dt_ms))
                               < self.trial_steps})
        self.steps_to_change = self.changes[0] + 1 if self.changes else 0

    def start_stimulus(self) -> None:
        """The trial's input (``sim.families.hierarchical.inputs`` delivers it): drawn ones
        drawn from the stream ``[seed, 6, trial]`` (``Stimulus.for_trial``); its noise stream
        ``[seed, 2, trial]``."""
        self.stimulus = self.trial.settings.stimulus.for_trial(
            LazyGenerator([self.scenario.seed, DRAWN_STREAM, self.trial.index]))
        self.noise = LazyGenerator([self.scenario.seed, 2, self.trial.index])

    def change_precision(self) -> bool:
        """At a scheduled time the trial's configured precisions in force change, in place:
        from this step on the error units use them. False once no change is left."""
        self.steps_to_change -= 1
        if self.steps_to_change:
            return True
        step = self.changes.pop(0)
        settings = self.trial.settings
        in_force = self.model.in_force(settings, step * self.scenario.dt_ms)
        for index, level in enumerate(self.model.levels):
            if level.name in settings.precision_schedule:
                self.configured[index][:] = in_force.precisions[index]
        if self.changes:
            self.steps_to_change = self.changes[0] - step
        return bool(self.changes)

    # read at the end of a trial ----------------------------------------------------------------
    def final_beliefs(self) -> dict[str, Any]:
        return {f"final_belief/{level.name}": np.array(belief)
                for belief, level in zip(self.beliefs, self.model.belief_levels, strict=True)}
