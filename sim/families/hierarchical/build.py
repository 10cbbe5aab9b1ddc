"""The running hierarchical network: belief and error populations (``circuits.belief``,
``circuits.error``) with the mechanisms' equation pieces, their coupling
(``circuits.coupling``), the mechanisms' objects, the stimulus, and the streams it records
(beliefs, errors, precisions, free energy)."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
from brian2 import NetworkOperation

from circuits import schedule
from circuits.belief import belief_population
from circuits.coupling import build_coupling
from circuits.error import error_population
from circuits.mechanism import BuildContext, Population, Stream
from circuits.precision import configured_variable
from sim.families.hierarchical.free_energy import FreeEnergy, GramCache, free_energy
from sim.families.hierarchical.model import HierarchicalModel, TrialSettings
from sim.families.hierarchical.stimulus import DRAWN_STREAM
from sim.io.writer import ResultWriter, write_matrix
from sim.scenario import Scenario, Trial
from sim.simulation import Simulation

STIMULUS_BLOCK = 1024
STIMULUS_BLOCK_BYTES = 1 << 20
LAPLACE_FULL_UNITS = 256  # "auto": the Laplace term at every sample up to this many beliefs
LAPLACE_BUDGET = 0.15  # "auto", larger models: the Laplace term's share of the simulation
FLOOR_FLOPS = 1e5  # a step's (and a Laplace term's) fixed cost, in multiply-adds (~37 us)


def laplace_cadence(setting: str | int, model: HierarchicalModel, every_steps: int) -> int:
    """Every how many recorded samples F's Laplace term is computed; 0: only at trial ends.

    ``auto``: every sample up to ``LAPLACE_FULL_UNITS`` belief units (a small Hessian costs
    little in absolute terms); beyond, it estimates both costs in multiply-adds: the Laplace
    term builds J' Pi J per level
    (sum n_{l-1} n_l^2) and factors the N x N Hessian (N^3 / 3); a step does two products per
    level (2 sum n_{l-1} n_l); each has a fixed cost (``FLOOR_FLOPS``, Brian2's per-step
    floor). It computes the term every k-th sample with k the smallest that keeps it within
    ``LAPLACE_BUDGET`` of the steps between: every 182nd sample at 1000-500-100 recorded every
    10 steps (measured there: taken at every sample, the term made the whole run 6.5x longer).
    """
    if setting == "every":
        return 1
    if setting == "trial_end":
        return 0
    if setting != "auto":
        return int(setting)
    if model.n_beliefs <= LAPLACE_FULL_UNITS:
        return 1
    shapes = [level.generative.shape for level in model.belief_levels]
    laplace = sum(below * here**2 for below, here in shapes) + model.n_beliefs**3 / 3
    step = 2 * sum(below * here for below, here in shapes)
    ratio = (laplace + FLOOR_FLOPS) / (LAPLACE_BUDGET * every_steps * (step + FLOOR_FLOPS))
    return max(1, math.ceil(ratio - 1e-9))


class HierarchicalSimulation(Simulation):
    """The Brian2 objects of one run, plus what happens at trial boundaries."""

    def __init__(self, scenario: Scenario, writer: ResultWriter) -> None:
        super().__init__(scenario, writer, schedule.record_order(scenario.model.errors))
        model: HierarchicalModel = scenario.model
        self.model = model
        self.initial_beliefs = model.top_down_beliefs()
        self.beliefs = [
            belief_population(level.name, initial, model.tau_belief_ms, self.clock,
                              scenario.method, self.pieces(Population("belief", index, level.name)))
            for index, (level, initial) in enumerate(
                zip(model.belief_levels, self.initial_beliefs, strict=True), start=1)
        ]
        self.errors = [
            error_population(level.name, level.precision, model.errors, model.tau_error_ms,
                             self.clock, scenario.method,
                             self.pieces(Population("error", index, level.name,
                                                    top=index == len(model.levels) - 1)))
            for index, level in enumerate(model.levels)
        ]
        self.errors[-1].prediction = model.prior_mean
        self.coupling = build_coupling(
            model.coupling, [level.generative for level in model.belief_levels], self.beliefs,
            self.errors, self.clock, self.changed_at_run_time("weights"), self.pieces)
        mechanism_objects = self.build_mechanisms(BuildContext(
            scenario, model, self.clock, self.beliefs, self.errors, self.coupling))
        self.stimulus_operation = NetworkOperation(
            self._deliver_stimulus, when=schedule.SLOT, order=schedule.STIMULUS,
            clock=self.clock, name="stimulus")
        self.schedule_operation = NetworkOperation(
            self._change_precision, when=schedule.SLOT, order=schedule.STIMULUS,
            clock=self.clock, name="precision_schedule")
        self.objects = [*self.beliefs, *self.errors, *self.coupling.objects, *mechanism_objects,
                        *self.readout_objects(), self.stimulus_operation,
                        self.schedule_operation, self.record_operation]
        self.sensory = self.errors[0].variables["signal"].get_value()
        self.precisions = [group.variables["precision"].get_value() for group in self.errors]
        self.configured = [group.variables[configured_variable(group)].get_value()
                           for group in self.errors]
        self.prior_mean = self.errors[-1].variables["prediction"].get_value()  # m in force
        # levels where a mechanism puts a full precision matrix in force (circuits.covariance)
        self.precision_matrices = {index: matrix for mechanism, settings in self.mechanisms
                                   for index, matrix in mechanism.precision_matrices(
                                       settings, self.context).items()}
        self.prior_overridden = False
        self.laplace_every = laplace_cadence(scenario.record.laplace, model,
                                             scenario.record.every_steps)
        self.samples = 0
        self.gram_cache = GramCache()
        self.sampled_energy = self.sampled_free_energy = math.nan
        self.sampled_predictions = ([group.variables["prediction"].get_value()
                                     for group in self.errors[:-1]]
                                    if self.coupling.kind in ("dense", "sparse") else None)
        self._describe_levels()
        self.record([*self.streams(), *self.mechanism_streams()])
        self.overridden: set[str] = set()

    # recording -------------------------------------------------------------------------------
    def _describe_levels(self) -> None:
        """Each level's group in the result, with its initial weights."""
        model = self.model
        initial_weights = [None, *self.coupling.weights(copy=False)]
        for index, level in enumerate(model.levels):
            group = self.writer.file.require_group(f"levels/{level.name}")
            group.attrs["index"] = index
            group.attrs["size"] = level.size
            group.attrs["role"] = ("input" if index == 0 else
                                   "top" if index == len(model.levels) - 1 else "hidden")
            if level.generative is not None:
                write_matrix(group, "weights_initial", initial_weights[index])

    def streams(self) -> list[Stream]:
        """What the family can record: per level its input or beliefs, errors and precisions
        (samples x units), then F and its energy part (nat)."""
        contributions = np.array(["configured", *self.contributors("precision")], dtype=object)
        found = []
        for index, (level, errors) in enumerate(zip(self.model.levels, self.errors, strict=True)):
            where = f"levels/{level.name}"
            if index == 0:
                found.append(Stream(f"{where}/input", level.size, lambda: self.sensory))
            else:
                state = self.beliefs[index - 1].variables["belief"].get_value()
                found.append(Stream(f"{where}/belief", level.size, lambda s=state: s,
                                    variable="belief"))
            state = errors.variables["error"].get_value()
            found.append(Stream(f"{where}/error", level.size, lambda s=state: s,
                                variable="error"))
            found.append(Stream(f"{where}/precision", level.size,
                                lambda s=self.precisions[index]: s, variable="precision",
                                attrs={"contributions": contributions}))
        found.append(Stream("free_energy", None, lambda: self.sampled_free_energy, units="nat",
                            variable="free_energy",
                            attrs={"approximation": "Laplace", "laplace_every": self.laplace_every,
                                   "laplace": str(self.scenario.record.laplace)}))
        found.append(Stream("energy", None, lambda: self.sampled_energy, units="nat",
                            variable="free_energy"))
        return found

    def precisions_in_force(self) -> list[np.ndarray]:
        """Pi_l of every level now: the error units' precisions, or the full matrix a
        mechanism puts in force on a level."""
        return [self.precision_matrices[index]() if index in self.precision_matrices
                else precision for index, precision in enumerate(self.precisions)]

    def _show_precision_matrices(self) -> None:
        """Where a level carries a full precision matrix, its diagonal is what the level's
        ``precision`` (recorded, and in the trial table) shows."""
        for index, matrix in self.precision_matrices.items():
            self.precisions[index][:] = np.diag(matrix())

    def end_trial(self, trial: Trial) -> None:
        self._show_precision_matrices()
        super().end_trial(trial)

    def before_sample(self) -> None:
        """F for the recorder: the energy at every sample, the Laplace term every
        ``laplace_every``-th (NaN in ``free_energy`` between; 0: only at trial ends, in the
        trial table)."""
        self._show_precision_matrices()
        if "free_energy" not in self.scenario.record.variables:
            return
        due = self.laplace_every and self.samples % self.laplace_every == 0
        self.samples += 1
        # the NumPy couplings left g(mu(t)) in the error units this step (the recorder samples
        # after DELIVER_TO_ERRORS): the same products, not computed twice
        found = self._free_energy(laplace=bool(due), predictions=self.sampled_predictions)
        self.sampled_energy = found.energy
        self.sampled_free_energy = found.total if due else math.nan

    def _free_energy(self, laplace: bool = True, predictions=None) -> FreeEnergy:
        beliefs = [group.variables["belief"].get_value() for group in self.beliefs]
        found = free_energy(self.model, self.sensory, beliefs, self.precisions_in_force(),
                            laplace=laplace, prior_mean=self.prior_mean, cache=self.gram_cache,
                            curvature=self.mechanism_curvature() if laplace else None,
                            predictions=predictions)
        extra = self.mechanism_energy()
        if extra:
            found = FreeEnergy(found.energy + extra, found.laplace, found.total + extra)
        return found

    # for the readouts ---------------------------------------------------------------------------
    def free_energy_now(self) -> float:
        return self._free_energy().total

    def final_beliefs(self) -> dict[str, Any]:
        return {f"final_belief/{level.name}": np.array(group.belief[:])
                for group, level in zip(self.beliefs, self.model.belief_levels, strict=True)}

    # stimulus --------------------------------------------------------------------------------
    def _deliver_stimulus(self) -> None:
        if self.block_row == len(self.block):
            self._next_block()
        self.sensory[:] = self.block[self.block_row]
        self.block_row += 1

    def _next_block(self) -> None:
        stimulus = self.stimulus
        start = self.steps_done
        rows = max(1, min(STIMULUS_BLOCK, STIMULUS_BLOCK_BYTES // (8 * len(self.sensory))))
        count = min(rows, self.trial_steps - start) or 1
        t_ms = (start + np.arange(count)) * self.scenario.dt_ms
        block = stimulus.at(t_ms)
        if np.any(stimulus.noise_std):
            block = block + stimulus.noise_std * self.noise.standard_normal(block.shape)
        self.block, self.block_row = block, 0
        self.steps_done += count

    def _change_precision(self) -> None:
        """At a scheduled time the trial's configured precisions in force change, in place:
        from this step on the error units use them."""
        self.steps_to_change -= 1
        if self.steps_to_change:
            return
        step = self.changes.pop(0)
        in_force = self.model.in_force(self.trial.settings, step * self.scenario.dt_ms)
        for index, level in enumerate(self.model.levels):
            if level.name in self.trial.settings.precision_schedule:
                self.configured[index][:] = in_force.precisions[index]
        if self.changes:
            self.steps_to_change = self.changes[0] - step
        else:
            self.schedule_operation.active = False

    # trials ----------------------------------------------------------------------------------
    def start_trial(self, trial: Trial) -> None:
        """Reset beliefs if asked, and put the trial's configured values in force: a level's
        precision (and the prior mean) is set where this trial or the one before overrides it,
        and at the first trial (elsewhere a learned value carries over)."""
        settings: TrialSettings = trial.settings
        in_force = self.model.in_force(settings)
        for index, level in enumerate(self.model.levels):
            if level.name in settings.overridden or level.name in self.overridden:
                self.configured[index][:] = in_force.precisions[index]
        self.overridden = settings.overridden
        if not self.trial_rows or settings.prior_mean is not None or self.prior_overridden:
            self.errors[-1].prediction = in_force.prior_mean  # else a learned one carries over
        self.prior_overridden = settings.prior_mean is not None
        if trial.reset:  # to the prediction of the prior in force (a learned one, too)
            initial_beliefs = (self.initial_beliefs if not self.changed_at_run_time("prior")
                               else self.model.top_down_beliefs(np.array(self.prior_mean)))
            for group, initial in zip(self.beliefs, initial_beliefs, strict=True):
                group.belief = initial
            for group in self.errors:
                group.error = 0.0
        self.changes = [round(t / self.scenario.dt_ms) for t in settings.change_times_ms()[1:]]
        self.steps_to_change = self.changes[0] + 1 if self.changes else 0
        self.schedule_operation.active = bool(self.changes)
        super().start_trial(trial)
        self.trial_steps = self.scenario.steps(trial.duration_ms)
        self.noise = np.random.default_rng([self.scenario.seed, 2, trial.index])
        self.stimulus = settings.stimulus.for_trial(
            np.random.default_rng([self.scenario.seed, DRAWN_STREAM, trial.index]))
        self.steps_done = 0
        self._next_block()
        self.sensory[:] = self.block[0]
        self.stimulus_operation.active = not self.stimulus.is_constant
