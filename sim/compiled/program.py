"""A run on Brian2's ``cpp_standalone`` device: the whole protocol as one compiled program.

pcsim builds the run on the runtime device as always (``scenario.kind.build``); that network is
not run. Its populations are cloned onto the standalone device (``sim.compiled.clone``), every
trial's start becomes tables played back at each trial's first step
(``sim.compiled.trial_starts``), the family, its mechanisms and readouts give their per-step
Python work in compiled form (``Simulation.compiled_objects``), and two kinds of monitors
record the state: at every recorded sample (the recorder's slot and cadence) what the replay
reads there (``sim.compiled.reads``), and at every trial boundary (Brian2's ``start`` slot,
before the next trial's start) every per-unit variable of the populations and what compiled
forms keep outside them (``CompiledContext.kept``: learned weights). The
program runs once; then ``sim.compiled.replay`` feeds the recorded state through pcsim's own
Python recorder, F and readouts, trial by trial, so the result file is written by the same
code as on the runtime device.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
from brian2 import Clock, Network, NeuronGroup, StateMonitor, ms
from brian2.core.base import BrianObject

from sim.compiled.clone import clone_group, link, per_unit_state
from sim.compiled.context import CompiledContext, NotCompiled
from sim.compiled.reads import read_at_samples
from sim.compiled.timeline import Timeline
from sim.compiled.trial_starts import ORDER as START_ORDER
from sim.compiled.trial_starts import StateDependentStart, probe

BOUNDARY_ORDER = START_ORDER - 100  # the state a trial ends with, before the next one starts


@dataclass
class Recording:
    """What the program recorded, by group name and variable: ``samples`` (S, N) at the
    timeline's first S sample steps (``taken``: those the run reached; only what the replay
    reads, ``sim.compiled.reads``), ``boundaries`` (trials, N) at each trial's end,
    ``finals`` (N,) where the run stopped."""

    samples: dict[str, dict[str, np.ndarray]]
    boundaries: dict[str, dict[str, np.ndarray]]
    finals: dict[str, dict[str, np.ndarray]]
    taken: int


def runtime_groups(simulation: Any) -> list[NeuronGroup]:
    return [obj for obj in simulation.objects if isinstance(obj, NeuronGroup)]


def not_run(objects: list, marked: bool = True) -> None:
    """Objects built but never run (the runtime network a compiled run stands in for, or a
    compiled build refused): Brian2 warns when deleting an object that no network ran
    (``BrianObject.__del__`` checks ``_network is None``). ``marked=False`` takes the mark
    back, where the runtime device runs them after all (``auto``, a build refused): Brian2
    refuses to add an object marked as run by another network."""
    for obj in objects:
        for part in [obj, *getattr(obj, "contained_objects", [])]:
            part._network = "sim.compiled" if marked else None


def check_compilable(simulation: Any) -> None:
    """Every object of the runtime network is a population or has a compiled form."""
    known = {id(obj) for objects in simulation.stepping.values() for obj in objects}
    known |= {id(obj) for obj in simulation.compiled_replaced()}
    for obj in simulation.objects:
        if not isinstance(obj, NeuronGroup) and id(obj) not in known:
            raise NotCompiled(f"{type(obj).__name__} {simulation.shown_name(obj.name)!r} has "
                              "no compiled form")


def every_steps(clock: Clock) -> Callable[[int], Clock]:
    """One clock per period, in steps of ``clock`` (1: ``clock`` itself), shared by the
    monitors that record at that period. Brian2's program loop looks at every clock of the
    network at every step (``Network::next_clocks`` in ``network.cpp``: which clocks tick
    now, a ``std::set`` built anew), and each object looks its clock up in that set: with a
    clock per monitor (17 clocks in attention/posner's program, 4 now) that was about a
    fifth of the program's time (perf)."""
    @functools.cache
    def at(steps: int) -> Clock:
        return clock if steps == 1 else Clock(steps * clock.dt, name=f"pcsim_every_{steps}")

    return at


def build(simulation: Any, timeline: Timeline) -> tuple[Network, dict, dict]:
    """The program's network on the current (standalone) device, its monitors, and the
    groups the guard can check, by the runtime guard's names (``sim.guard.Watched``): the
    cloned populations and what compiled forms keep outside them (learned weights)."""
    check_compilable(simulation)
    groups = runtime_groups(simulation)
    try:
        starts = probe(simulation, groups)
    except StateDependentStart as err:
        raise NotCompiled(str(err)) from None
    clock = Clock(timeline.dt_s * 1e3 * ms, name="pcsim_clock")
    clones = {group.name: clone_group(group, clock) for group in groups}
    link(groups, clones)
    context = CompiledContext(simulation, clones, clock, timeline)
    context.namespace = starts.namespace(timeline, clock.dt)  # made once, read by all
    starts.add_to(clones, context.namespace)
    copiers = starts.copiers(clones, context.namespace)
    try:
        objects = simulation.compiled_objects(context)
    except NotCompiled:  # what was built will never run: no warning from Brian2 for it
        not_run([obj for ref in BrianObject.__instances__() if (obj := ref()) is not None
                 and getattr(obj, "_network", "") is None])
        raise
    simulation.compiled_timeline = timeline
    simulation.compiled_starts = starts  # the replay confirms them (TrialStarts.confirm)
    simulation.compiled_readouts = {name: group.name
                                    for name, group in context.readout_state.items()}
    simulation.compiled_kept = {kept.group.name: kept.put for kept in context.kept}
    monitored = {group.name: group
                 for group in [*clones.values(), *context.readout_state.values(),
                               *[kept.group for kept in context.kept]]}
    variables = {name: per_unit_state(group) for name, group in monitored.items()}
    variables.update({kept.group.name: kept.variables for kept in context.kept})
    readouts = {group.name for group in context.readout_state.values()}
    sampled = read_at_samples(simulation, groups)  # what the replay reads at samples
    if sampled is None:  # one by one: every variable, and the kept state (readouts': at ends)
        sampled = {name: variables[name] for name in monitored if name not in readouts}
    order = simulation.record_operation.order
    every = every_steps(clock)
    monitors = {
        "samples": {name: StateMonitor(monitored[name], recorded, record=True,
                                       clock=every(timeline.every_steps), when="groups",
                                       order=order, name=f"pcsim_samples_{name}")
                    for name, recorded in sampled.items()},
        "boundaries": {name: StateMonitor(group, variables[name], record=True,
                                          clock=every(timeline.boundary_every), when="start",
                                          order=BOUNDARY_ORDER, name=f"pcsim_ends_{name}")
                       for name, group in monitored.items()},
    }
    network = Network(*clones.values(), *copiers,
                      *[obj for obj in objects if obj.name not in monitored],
                      *[group for name, group in monitored.items() if name not in clones],
                      *monitors["samples"].values(), *monitors["boundaries"].values(),
                      name="pcsim_network")
    checked = {**clones, **{kept.watched: kept.group for kept in context.kept if kept.watched}}
    return network, monitors, checked


def read(monitors: dict, timeline: Timeline) -> Recording:
    """The monitors' arrays by group and variable; each trial's end state from the boundary
    monitor (the last trial's: the groups' final state). Read without units (``mu_``, not
    ``mu``): the same array the program wrote, where Brian2's ``mu`` copies it into a
    ``Quantity`` first (the same values, dtype and layout; ~7 ms of a warm 64-16-4 run)."""
    samples = {name: {var: _recorded(monitor, var) for var in monitor.record_variables}
               for name, monitor in monitors["samples"].items()}
    taken = min((len(monitor.t_) for monitor in monitors["samples"].values()),
                default=len(timeline.sample_steps))  # none read: the replay stops at its end
    every = timeline.boundary_every
    rows = [timeline.end_step(position) // every for position in range(timeline.trials)]
    boundaries, finals = {}, {}
    for name, monitor in monitors["boundaries"].items():
        group = monitor.source
        boundaries[name], finals[name] = {}, {}
        for var in monitor.record_variables:
            recorded = _recorded(monitor, var)
            final = finals[name][var] = np.array(group.variables[var].get_value())
            boundaries[name][var] = np.array([recorded[row] if row < len(recorded) else final
                                              for row in rows])
    return Recording(samples, boundaries, finals, taken)


def _recorded(monitor: StateMonitor, var: str) -> np.ndarray:
    """(ticks, units) as the program wrote ``monitor``'s ``var``: the file's array itself."""
    return np.asarray(getattr(monitor, f"{var}_")).T
