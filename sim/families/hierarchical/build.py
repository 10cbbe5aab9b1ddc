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
from circuits.coupling import build_coupling, keeps_activation
from circuits.error import error_population
from circuits.mechanism import BuildContext, Population, Stream, state_array
from circuits.naming import level_key
from circuits.variables import BELIEF, ENERGY, ERROR, FREE_ENERGY, INPUT, PRECISION
from sim.families.hierarchical.free_energy import (
    FreeEnergy,
    GramCache,
    free_energy,
    row_energies,
)
from sim.families.hierarchical.free_energy_samples import mechanism_terms, recorded_free_energy
from sim.families.hierarchical.inputs import Inputs
from sim.families.hierarchical.lanes import Lane, tiled
from sim.families.hierarchical.model import HierarchicalModel
from sim.io.finite import NAN_MEANS
from sim.io.writer import ResultWriter, write_matrix
from sim.scenario import Scenario, Trial
from sim.simulation import Simulation

LAPLACE_FULL_UNITS = 256  # "auto": the Laplace term at every sample up to this many beliefs
LAPLACE_BUDGET = 0.15  # "auto", larger models: the Laplace term's share of the simulation
GRAM_CACHE_SIZE = 16  # W' Pi W kept for this many trial precisions (free_energy.GramCache)
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
    """The Brian2 objects of one run, plus what happens at trial boundaries.

    ``lanes`` holds each copy's arrays and trial (one in a serial run, B in a batched one,
    ``sim.batch``); ``lane`` is the copy the streams, F and the readouts see now.
    """

    def __init__(self, scenario: Scenario, writer: ResultWriter,
                 readouts_off: dict[str, str] | None = None) -> None:
        super().__init__(scenario, writer, schedule.record_order(scenario.model.errors),
                         readouts_off)
        model: HierarchicalModel = scenario.model
        self.model = model
        copies = self.copies
        self.initial_beliefs = model.top_down_beliefs()
        self.build_network()
        mechanism_objects = self.build_mechanisms(BuildContext(
            scenario, model, self.clock, self.beliefs, self.errors, self.coupling))
        self.inputs = Inputs(state_array(self.errors[0], "signal").reshape(copies, -1),
                             scenario.dt_ms)
        self.stimulus_operation = NetworkOperation(
            self.inputs.deliver, when=schedule.SLOT, order=schedule.STIMULUS,
            clock=self.clock, name="stimulus")
        self.schedule_operation = NetworkOperation(
            self._change_precision, when=schedule.SLOT, order=schedule.STIMULUS,
            clock=self.clock, name="precision_schedule")
        # in the network when some trial needs them (their ``active`` is read once a run, and
        # the serial trials share one: ``sim.trial_sequence``); a trial without leaves them idle
        trials = [trial.settings for trial in scenario.trials]
        self.stimulus_operation.active = any(settings.stimulus.varies for settings in trials)
        self.schedule_operation.active = any(settings.change_times_ms()[1:]
                                             for settings in trials)
        self.objects = [*self.beliefs, *self.errors, *self.coupling.objects, *mechanism_objects,
                        *self.readout_objects(), self.stimulus_operation,
                        self.schedule_operation, self.record_operation]
        gram_cache = GramCache(GRAM_CACHE_SIZE)
        self.lanes = [Lane(copy, copies, scenario, self.beliefs, self.errors, gram_cache)
                      for copy in range(copies)]
        self.lane = self.lanes[0]
        # levels where a mechanism puts a full precision matrix in force (circuits.covariance)
        self.precision_matrices = {index: matrix for mechanism, settings in self.mechanisms
                                   for index, matrix in mechanism.precision_matrices(
                                       settings, self.context).items()}
        # NumPy couplings leave g(mu(t)) in the error units before the recorder samples (it
        # samples after DELIVER_TO_ERRORS): F reuses them instead of computing them again
        self.predictions_kept = self.coupling.kind in ("dense", "sparse")
        self.sampled_predictions = ([state_array(group, "prediction") for group in self.errors[:-1]]
                                    if copies == 1 and self.predictions_kept else None)
        self.scheduled: list[Lane] = []  # lanes with precision changes still to come
        self.laplace_every = laplace_cadence(scenario.record.laplace, model,
                                             scenario.record.every_steps)
        self.samples = 0
        self._describe_levels()
        self.record([*self.streams(), *self.mechanism_streams()])

    def build_network(self) -> None:
        """The populations the lanes, F and the streams read (``beliefs``, ``errors``) and
        their ``coupling``: the rate model's units here (``spiking_build`` replaces them)."""
        scenario, model, copies = self.scenario, self.model, self.copies
        self.level_names = [level.name for level in model.levels]  # Brian2 names: level_key
        self.beliefs = [
            belief_population(level_key(index), tiled(initial, level.size, copies),
                              model.tau_belief_ms, self.clock, scenario.method,
                              self.pieces(Population("belief", index, level.name)),
                              keeps_activation(level.generative))
            for index, (level, initial) in enumerate(
                zip(model.belief_levels, self.initial_beliefs, strict=True), start=1)
        ]
        self.errors = [
            error_population(level_key(index), tiled(level.precision, level.size, copies),
                             model.errors, model.tau_error_ms, self.clock, scenario.method,
                             self.pieces(Population("error", index, level.name,
                                                    top=index == len(model.levels) - 1)))
            for index, level in enumerate(model.levels)
        ]
        self.errors[-1].prediction = tiled(model.prior_mean, model.levels[-1].size, copies)
        self.coupling = build_coupling(
            model.coupling, [level.generative for level in model.belief_levels], self.beliefs,
            self.errors, self.clock, self.changed_at_run_time("weights"), self.pieces, copies)

    @property
    def sensory(self) -> np.ndarray:
        return self.lane.sensory

    @property
    def precisions(self) -> list[np.ndarray]:
        return self.lane.precisions

    @property
    def prior_mean(self) -> np.ndarray:
        return self.lane.prior_mean

    def use_lane(self, copy: int) -> None:
        self.lane = self.lanes[copy]

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
            if level.units != "1":  # the scenario's units for the level ([[model.levels]] units)
                group.attrs["units"] = level.units
            if level.generative is not None:
                write_matrix(group, "weights_initial", initial_weights[index])

    def streams(self) -> list[Stream]:
        """What the family can record: per level its input or beliefs, errors and precisions
        (samples x units), then F and its energy part (nat); each read from ``lane`` (a batched
        run reads the copies' rows at once)."""
        contributions = np.array(["configured", *self.contributors("precision")], dtype=object)

        def rows(group: Any, name: str) -> Any:
            return lambda copies: self.copy_rows(group, name, copies)

        def sampled(name: str) -> Any:
            return lambda copies: np.array([getattr(self.lanes[c], name) for c in copies])

        found = []
        for index, level in enumerate(self.model.levels):
            where, errors = f"levels/{level.name}", self.errors[index]
            if index == 0:
                found.append(Stream(f"{where}/input", level.size, lambda: self.lane.sensory,
                                    rows=rows(errors, "signal"), state=(errors.name, "signal"),
                                    units=INPUT.units_for(level.units), declares=INPUT))
            else:
                found.append(Stream(f"{where}/belief", level.size,
                                    lambda i=index - 1: self.lane.beliefs[i],
                                    variable="belief", rows=rows(self.beliefs[index - 1],
                                                                 "belief"),
                                    state=(self.beliefs[index - 1].name, "belief"),
                                    units=BELIEF.units_for(level.units), declares=BELIEF))
            found.append(Stream(f"{where}/error", level.size,
                                lambda i=index: self.lane.errors[i], variable="error",
                                rows=rows(errors, "error"), state=(errors.name, "error"),
                                units=ERROR.units_for(level.units), declares=ERROR))
            found.append(Stream(f"{where}/precision", level.size,
                                lambda i=index: self.lane.precisions[i], variable="precision",
                                attrs={"contributions": contributions},
                                rows=rows(errors, "precision"),
                                state=(errors.name, "precision"),
                                units=PRECISION.units_for(level.units), declares=PRECISION))
        skipped = ({} if self.laplace_every == 1 else  # sim.io.finite
                   {NAN_MEANS: "a sample where the Laplace term was not computed "
                               "(laplace_every)"})
        found.append(Stream("free_energy", None, lambda: self.lane.sampled_free_energy,
                            units="nat",
                            variable="free_energy",
                            attrs={"approximation": "Laplace", "laplace_every": self.laplace_every,
                                   "laplace": str(self.scenario.record.laplace), **skipped},
                            rows=sampled("sampled_free_energy"), declares=FREE_ENERGY))
        found.append(Stream("energy", None, lambda: self.lane.sampled_energy, units="nat",
                            variable="free_energy", rows=sampled("sampled_energy"),
                            declares=ENERGY))
        return found

    def copy_rows(self, group: Any, name: str, copies: Any) -> np.ndarray:
        """A batched run's state variable ``name`` of ``group`` in the ``copies`` (sorted, as
        the batch samples them), a row each: the state array's own (copies, n) view when they
        are all of them (callers only read it, then let it go)."""
        values = state_array(group, name, self.copies)
        return values if len(copies) == self.copies else values[copies]

    def before_sample(self) -> None:
        """F for the recorder: the energy at every sample, the Laplace term every
        ``laplace_every``-th (NaN in ``free_energy`` between; 0: only at trial ends, in the
        trial table)."""
        self.show_state()
        if "free_energy" not in self.scenario.record.variables:
            return
        due = self.laplace_every and self.samples % self.laplace_every == 0
        self.samples += 1
        found = self._free_energy(laplace=bool(due), predictions=self.sampled_predictions)
        self.lane.sampled_energy = found.energy
        self.lane.sampled_free_energy = found.total if due else math.nan

    def before_samples(self, copies: list[int], samples: list[int]) -> None:
        """``before_sample`` for the ``copies`` of a batched run sampled at this step, whose
        sample indices in the file are ``samples``: their energies at once (one product per
        level, ``row_energies``), the Laplace term copy by copy where it is due."""
        if "free_energy" not in self.scenario.record.variables:
            return
        def rows(group: Any, name: str) -> np.ndarray:
            return self.copy_rows(group, name, copies)

        energies = row_energies(self.model, rows(self.errors[0], "signal"),
                                [rows(group, "belief") for group in self.beliefs],
                                [rows(group, "precision") for group in self.errors],
                                rows(self.errors[-1], "prediction"),
                                [rows(group, "prediction") for group in self.errors[:-1]]
                                if self.predictions_kept else None)
        for copy, sample, energy in zip(copies, samples, energies, strict=True):
            self.use_lane(copy)
            if self.laplace_every and sample % self.laplace_every == 0:
                found = self._free_energy()
                self.lane.sampled_energy, self.lane.sampled_free_energy = found.energy, found.total
            else:
                self.lane.sampled_energy, self.lane.sampled_free_energy = float(energy), math.nan

    def family_samples(self, paths: list[str], recorded: dict) -> dict[str, np.ndarray] | None:
        """F and its energy part for a compiled run's samples of one trial at once
        (``free_energy_samples``), with the Laplace term at the samples the per-sample path
        computes it and the mechanisms' parts of F at once (``Mechanism.sampled_terms``);
        where a level carries a full precision matrix, also the diagonal its ``precision``
        stream shows (``show_state``). None where a mechanism cannot give its part that way,
        the weights learn (each sample's F then with the weights the replay puts in force),
        or another stream is asked for."""
        parts = (mechanism_terms(self, recorded)
                 if set(paths) <= {"free_energy", "energy"} else None)
        if parts is None:
            return None
        terms, matrices = parts
        found = {f"levels/{self.model.levels[index].name}/precision":
                 np.diagonal(stack, axis1=1, axis2=2) for index, stack in matrices.items()}
        if not paths:
            return found
        count = len(recorded[self.errors[0].name]["signal"])
        index = self.samples + np.arange(count)
        due = (index % self.laplace_every == 0) if self.laplace_every else False
        self.samples += count  # the Laplace term's cadence, as before_sample counts it
        energy, total = recorded_free_energy(self, recorded, terms, matrices, due)
        if count:
            self.lane.sampled_energy, self.lane.sampled_free_energy = energy[-1], total[-1]
        return {**found, "energy": energy, "free_energy": total}

    def free_energies(self, recorded: dict) -> np.ndarray | None:
        """F, Laplace term included, of each recorded state at once (``free_energy_now`` of
        each; a compiled run's trial ends); None where ``family_samples`` would refuse."""
        parts = mechanism_terms(self, recorded)
        return None if parts is None else recorded_free_energy(self, recorded, *parts, True)[1]

    def precisions_in_force(self) -> list[np.ndarray]:
        """Pi_l of every level now: the error units' precisions, or the full matrix a
        mechanism puts in force on a level."""
        return [self.precision_matrices[index]() if index in self.precision_matrices
                else precision for index, precision in enumerate(self.lane.precisions)]

    def show_state(self) -> None:
        """Where a level carries a full precision matrix, its diagonal is what the level's
        ``precision`` (recorded, and in the trial table) shows."""
        for index, matrix in self.precision_matrices.items():
            self.lane.precisions[index][:] = np.diag(matrix())

    def _free_energy(self, laplace: bool = True, predictions=None) -> FreeEnergy:
        lane = self.lane
        found = free_energy(self.model, lane.sensory, lane.beliefs, self.precisions_in_force(),
                            laplace=laplace, prior_mean=lane.prior_mean, cache=lane.gram_cache,
                            curvature=self.mechanism_curvature() if laplace else None,
                            predictions=predictions)
        extra = self.mechanism_energy()
        if extra:
            found = FreeEnergy(found.energy + extra, found.laplace, found.total + extra)
        return found

    # for the readouts ---------------------------------------------------------------------------
    def free_energy_now(self) -> float:
        if self.free_energy_at_end is not None:  # computed at once (a compiled run's replay)
            return self.free_energy_at_end
        return self._free_energy().total

    def final_beliefs(self) -> dict[str, Any]:
        return self.lane.final_beliefs()

    # checkpoints (sim.checkpoint) ----------------------------------------------------------------
    def family_checkpoint(self) -> dict[str, Any]:
        """The NumPy couplings' weights (learning changes them in place, outside Brian2), the
        Laplace term's sample count and what each lane carries from one trial to the next."""
        return {"weights": [link.gmap.weights.data if link.sparse else link.gmap.weights
                            for link in self.coupling.links],
                "samples": self.samples,
                "lanes": [{"started": lane.started, "overridden": lane.overridden,
                           "prior_overridden": lane.prior_overridden} for lane in self.lanes]}

    def family_resume(self, kept: dict[str, Any]) -> None:
        for link, weights in zip(self.coupling.links, kept["weights"], strict=True):
            (link.gmap.weights.data if link.sparse else link.gmap.weights)[...] = weights
        self.samples = kept["samples"]
        for lane, saved in zip(self.lanes, kept["lanes"], strict=True):
            lane.started, lane.prior_overridden = saved["started"], saved["prior_overridden"]
            lane.overridden = set(saved["overridden"])

    # the compiled device (sim.compiled) -----------------------------------------------------
    def compiled_objects(self, context: Any) -> list:
        from sim.families.hierarchical.compiled import compiled_objects

        return compiled_objects(self, context)

    def compiled_replaced(self) -> list:
        return [*self.coupling.objects, self.stimulus_operation, self.schedule_operation,
                self.record_operation]

    # every step ----------------------------------------------------------------------------------
    def _change_precision(self) -> None:
        if self.scheduled:
            self.scheduled = [lane for lane in self.scheduled if lane.change_precision()]

    # trials ----------------------------------------------------------------------------------
    def start_trial(self, trial: Trial) -> None:
        self.start_lanes([trial])

    def end_trial(self, trial: Trial) -> None:
        self.show_state()
        super().end_trial(trial)

    def start_lanes(self, trials: list[Trial]) -> None:
        """Start ``trials[b]`` in lane b (``Lane.start``): beliefs reset to the prediction of
        the prior in force (a learned one, too) where a trial resets them."""
        def initial_beliefs(prior_mean: np.ndarray) -> list[np.ndarray]:
            if not self.changed_at_run_time("prior"):
                return self.initial_beliefs
            return self.model.top_down_beliefs(np.array(prior_mean))

        for lane, trial in zip(self.lanes, trials, strict=True):
            lane.start(trial, initial_beliefs)
        self.scheduled = [lane for lane in self.lanes if lane.changes]
        super().start_trial(trials[0])
        for lane in self.lanes:
            lane.start_stimulus()
        self.inputs.start(self.lanes)
