"""The hierarchical network's per-step Python work, as compiled code (``sim.compiled``).

On the runtime device three kinds of ``NetworkOperation`` run every step besides the recorder:
the NumPy coupling (``circuits.coupling``), the stimulus (``inputs.Inputs``) and the
mechanisms' and readouts' own. Here fixed dense maps of ``MIN_WEIGHTS`` weights or more are
BLAS calls from the program, or one pass over W a step where the errors are instantaneous
(``circuits.coupling_compiled``); otherwise the coupling is the ``synapses`` build of
``circuits.coupling`` (the same maps, as ``(summed)`` synapses between the cloned populations,
in the same slots; learned weights are the synapses' flow on ``w``, recorded and put back where
the runtime coupling keeps them for the replay), the stimulus is the input the runtime would
deliver at every step, computed ahead by the same ``Inputs`` (noiseless: each step's fraction
and its segment's two rows, multiplied out in the program, within 1e-12 of the runtime's;
noisy: every step's value) and read from ``TimedArray``s, and each mechanism and readout gives
its compiled form (``compiled``) or the run is refused with the reason.
"""

from __future__ import annotations

import numpy as np
from brian2 import NeuronGroup, TimedArray, second

from circuits import schedule
from circuits.coupling import _synaptic_coupling
from circuits.coupling_compiled import blas_coupling, dense_build, unsupported
from circuits.precision import configured_variable
from sim import learning
from sim.compiled.clone import owned_state
from sim.compiled.context import CompiledContext, Kept, NotCompiled
from sim.compiled.trial_starts import ORDER as START_ORDER
from sim.compiled.trial_starts import TRIAL, blend, starts_undone
from sim.families.hierarchical.stimulus import noisy_input

INPUT = "pcsim_input"
COUPLING_ATTR = "compiled_coupling"  # the result's note of the compiled dense coupling's build


def compiled_objects(simulation, context: CompiledContext) -> list:
    """Every per-step piece of ``simulation`` in compiled form (``NotCompiled`` if one has
    none)."""
    if simulation.batch is not None:
        raise NotCompiled("batched trials (protocol.batch > 1) run on the runtime device")
    objects = coupling(simulation, context)
    if simulation.schedule_operation.active:
        objects += precision_schedule(simulation, context)
    if simulation.stimulus_operation.active:
        objects += stimulus(simulation, context)
    for mechanism, settings in simulation.mechanisms:
        if all(isinstance(obj, NeuronGroup) for obj in simulation.stepping.get(mechanism.name, [])):
            continue  # its equations are in the cloned populations (and its own, cloned)
        built = mechanism.compiled(settings, context)
        if built is None:
            raise NotCompiled(f"the mechanism {mechanism.name!r} has no compiled form")
        objects += built
    for readout in simulation.readouts:
        settings = simulation.scenario.readouts.get(readout.name)
        if simulation.stepping.get(readout.name):  # it watches the run step by step
            built = readout.compiled(simulation, settings, context)
            if built is None:
                raise NotCompiled(f"the readout {readout.name!r} has no compiled form")
            objects += built
    return objects


def coupling(simulation, context: CompiledContext) -> list:
    """The maps as BLAS calls (``circuits.coupling_compiled``) where the runtime's coupling is
    ``dense`` and they allow it, else as ``(summed)`` synapses with the mechanisms' pieces (a
    learned ``w``'s flow); the result's ``compiled_coupling`` attribute says which, why not
    BLAS, and why instantaneous errors are not fused (``dense_build``). Learned weights
    (``learned_weights``) are kept for the replay and switched per trial where phases need it
    (``phase_switches``)."""
    maps = [level.generative for level in simulation.model.belief_levels]
    if any(gmap.site != "before" for gmap in maps):
        raise NotCompiled("g = f(W mu) (nonlinearity after the weights) has no compiled "
                          "coupling yet")
    runtime = simulation.coupling
    learned = simulation.changed_at_run_time("weights")
    beliefs = [context.clone(group) for group in simulation.beliefs]
    errors = [context.clone(group) for group in simulation.errors]
    if runtime.kind == "dense":  # BLAS, as the runtime, where this build allows it
        build = dense_build(errors)  # "fused": one pass over W, no BLAS
        fused = build == "fused"
        why_not = unsupported(maps, learned, fused)
        simulation.writer.file.attrs[COUPLING_ATTR] = (
            build if why_not is None else f"synapses: {why_not}")
        if why_not is None:
            context.coupling = blas_coupling(maps, beliefs, errors, context.clock, fused)
            return list(context.coupling.objects)
    built = context.coupling = _synaptic_coupling(
        maps, beliefs, errors, context.clock, simulation.pieces,
        every_entry=learned and runtime.kind == "dense")
    for compiled, twin in zip(built.synapses, runtime.synapses, strict=False):
        for name in owned_state(twin):  # the runtime synapses coupling: w and its constants
            compiled.variables[name].set_value(twin.variables[name].get_value().copy())
    objects = list(built.objects)
    for synapses in built.synapses:
        objects += phase_switches(simulation, synapses, context)
    if learned:
        context.kept += learned_weights(simulation, built)
    return objects


def learned_weights(simulation, built) -> list[Kept]:
    """Each level's compiled ``w``, recorded for the replay, which puts it where the runtime
    coupling keeps its weights (``link.gmap.weights``, in place: F, the snapshots and the
    final weights read them there; or the runtime synapses' ``w``), synapse k at its entry;
    checked every step under the runtime guard's name for that array."""
    runtime, kept = simulation.coupling, []
    watched = simulation.watched()
    for index, synapses in enumerate(built.synapses):
        if not runtime.links:  # the runtime synapses coupling: the same synapses, in order
            target = runtime.synapses[index].variables["w"].get_value()
            entries = slice(None)
        elif runtime.links[index].sparse:  # synapse k's place among the stored entries (CSR)
            weights = runtime.links[index].gmap.weights
            places = weights.copy()
            places.data = np.arange(weights.nnz, dtype=float)
            target = weights.data
            entries = np.asarray(places[synapse_entries(synapses)]).ravel().astype(np.int64)
        else:
            weights = runtime.links[index].gmap.weights
            target = weights.reshape(-1)
            rows, columns = synapse_entries(synapses)
            entries = rows * weights.shape[1] + columns
        name = next((item.population for item in watched
                     if item.variable == "w" and np.shares_memory(item.values, target)), None)
        kept.append(Kept(synapses, ["w"], lambda values, target=target, entries=entries:
                         target.__setitem__(entries, values["w"]), watched=name))
    return kept


def synapse_entries(synapses) -> tuple[np.ndarray, np.ndarray]:
    """The (row, column) of W each synapse stands for: its error unit and its belief unit."""
    return (synapses.variables["j"].get_value().astype(np.int64),
            synapses.variables["i"].get_value().astype(np.int64))


def phase_switches(simulation, synapses, context: CompiledContext) -> list:
    """The learning phases' switches the synapses hold (``learning_<parameter>``,
    ``sim.learning``), set at every step's start from a table over the trials, to the value
    the runtime's trial start sets (``Simulation.learns``)."""
    objects = []
    for parameter in simulation.phased:
        name = learning.switch(parameter)
        if name not in synapses.variables:
            continue
        table = f"pcsim_{synapses.name}_{name}"
        synapses.namespace[table] = TimedArray(
            [float(simulation.learns(trial, parameter)) for trial in simulation.scenario.trials],
            dt=1 * second, name=table)
        synapses.namespace[TRIAL] = context.namespace[TRIAL]
        objects.append(synapses.run_regularly(f"{name} = {table}({TRIAL}(t) * second)",
                                              when="start", order=START_ORDER,
                                              name=f"{synapses.name}_{name}"))
    return objects


def stimulus(simulation, context: CompiledContext) -> list:
    """The input of every step, from the runtime's ``Inputs``: where every trial's input is
    noiseless (``noisy_input``), computed in the program from each segment's base and delta
    and each step's fraction (``Inputs.affine_ahead``; within 1e-12 of the runtime's, not
    bitwise: a fused multiply-add may round once where NumPy rounds twice), else read from a
    table of every step's value, as the runtime computes it (a 3000-step run of 1000 inputs:
    24 MB read at the program's start)."""
    timeline = context.timeline
    group = context.clone(simulation.errors[0])
    if noisy_input(simulation.scenario.trials):
        table = np.empty((timeline.total_steps, simulation.model.levels[0].size))
        with starts_undone(simulation):
            for position in range(timeline.trials):
                simulation.start([position])
                simulation.inputs.ahead(table[timeline.first_steps[position]:
                                              timeline.end_step(position)])
        group.namespace[INPUT] = TimedArray(table, dt=context.clock.dt, name=INPUT)
        code = f"signal = {INPUT}(t, i)"
    else:
        fraction, which, base, delta = affine_input(simulation, timeline)
        names = {key: f"{INPUT}_{key}" for key in ("fraction", "segment", "base", "delta")}
        group.namespace.update({
            names["fraction"]: TimedArray(fraction, dt=context.clock.dt, name=names["fraction"]),
            names["segment"]: TimedArray(which, dt=context.clock.dt, name=names["segment"]),
            names["base"]: TimedArray(base, dt=1 * second, name=names["base"]),
            names["delta"]: TimedArray(delta, dt=1 * second, name=names["delta"])})
        segment = f"{names['segment']}(t) * second"
        code = (f"signal = {names['fraction']}(t) * {names['delta']}({segment}, i) "
                f"+ {names['base']}({segment}, i)")
    return [group.run_regularly(code, when=schedule.SLOT, order=schedule.STIMULUS,
                                name=f"{group.name}_stimulus")]


def affine_input(simulation, timeline) -> tuple[np.ndarray, ...]:
    """Every trial's noiseless input as (fraction of each step, its segment's row, the
    segments' bases, their deltas) over the whole timeline (``Inputs.affine_ahead``)."""
    fractions, which, bases, deltas = [], [], [], []
    with starts_undone(simulation):
        for position in range(timeline.trials):
            simulation.start([position])
            steps = timeline.end_step(position) - timeline.first_steps[position]
            piece = simulation.inputs.affine_ahead(steps)
            fractions.append(piece[0])
            which.append(piece[1] + len(bases))
            bases += piece[2]
            deltas += piece[3]
    return (np.concatenate(fractions), np.concatenate(which).astype(float),
            np.array(bases), np.array(deltas))


def precision_schedule(simulation, context: CompiledContext) -> list:
    """The configured precisions that schedules within trials put in force
    (``Lane.change_precision``), found by running the runtime's own operation step by step
    after each trial's start, on the runtime arrays filled with NaN before each step that
    ends a lane's countdown to its next change (what the step writes shows; the steps before
    it only count down), and played back at the operation's slot: on the step where the
    runtime writes a unit, ``v = v (1 - f) + value f`` with f = 1 (exact), else f = 0."""
    timeline = context.timeline
    arrays = simulation.lane.configured
    writes: dict[int, list[tuple[int, np.ndarray, np.ndarray]]] = {}
    with starts_undone(simulation, arrays):
        for position in range(timeline.trials):
            simulation.start([position])
            step = int(timeline.first_steps[position])
            while simulation.scheduled:  # changes left in this trial: one call a step
                quiet = min(lane.steps_to_change for lane in simulation.scheduled) - 1
                for _ in range(quiet):  # steps that only count down: they write nothing
                    simulation._change_precision()
                step += quiet
                assert step < timeline.end_step(position), "a change after the trial's end"
                for values in arrays:
                    values[...] = np.nan
                simulation._change_precision()
                for index, values in enumerate(arrays):
                    mask = ~np.isnan(values)
                    if mask.any():
                        writes.setdefault(index, []).append((step, values.copy(), mask))
                step += 1
    objects = []
    for index, written in writes.items():
        group = context.clone(simulation.errors[index])
        name, variable = group.name, configured_variable(group)
        change = np.zeros(timeline.total_steps)  # the number of the step's change
        flags = np.zeros(timeline.total_steps)  # 1.0 on a step with a change
        for number, (step, _, _) in enumerate(written):
            change[step], flags[step] = number, 1.0
        values = np.array([np.where(mask, values, 0.0) for _, values, mask in written])
        masks = np.array([mask.astype(float) for _, _, mask in written])
        tables = {f"pcsim_schedule_{name}_{what}": (table, dt) for what, table, dt in (
            ("change", change, context.clock.dt), ("flags", flags, context.clock.dt),
            ("values", values, 1 * second), ("mask", masks, 1 * second))}
        tables = {table: TimedArray(data, dt=dt, name=table)
                  for table, (data, dt) in tables.items()}
        group.namespace.update(tables)
        at = f"pcsim_schedule_{name}_change(t) * second, i"
        flag = (f"(pcsim_schedule_{name}_flags(t) * pcsim_schedule_{name}_mask({at}))")
        objects.append(group.run_regularly(
            blend(variable, f"pcsim_schedule_{name}_values({at})", flag),
            when=schedule.SLOT, order=schedule.STIMULUS, name=f"{name}_precision_schedule"))
    return objects
