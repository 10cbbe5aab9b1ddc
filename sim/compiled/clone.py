"""A runtime network's populations, built again on the device in force (``cpp_standalone``).

pcsim builds every run on Brian2's runtime device first (``scenario.kind.build``): that network
holds the model's equations, once, as the circuits wrote them (``circuits.belief``,
``circuits.error`` and the mechanisms' pieces). A compiled run does not write them again: each
``NeuronGroup`` is cloned from its runtime twin (its user equations, integration method, name,
slot and order, its ``run_regularly`` statements and every state value it holds now), so the
compiled program integrates the same equations by construction. What the runtime network does in
Python (``NetworkOperation``s) has no clone: the compiled build gives each its compiled form
(``sim.compiled.program``) or refuses the run.
"""

from __future__ import annotations

from brian2 import Clock, NeuronGroup, linked_var
from brian2.core.variables import ArrayVariable
from brian2.groups.group import CodeRunner
from brian2.groups.neurongroup import StateUpdater

from circuits.belief import ACTIVATION_VARIABLES


def owned_state(group: NeuronGroup) -> list[str]:
    """The names of the state variables ``group`` owns and may change (not ``i``, ``N``, the
    clock's ``t`` and ``dt``)."""
    return [name for name, variable in group.variables.items()
            if isinstance(variable, ArrayVariable) and variable.owner.name == group.name
            and not variable.read_only and not name.startswith("_")]


def per_unit_state(group: NeuronGroup) -> list[str]:
    """``owned_state`` without the shared values (constants, switches that trial starts set,
    ``sim.compiled.trial_starts``) and the belief units' f(mu) (computed from mu at every
    step, ``circuits.belief``): what changes unit by unit while the network runs."""
    return [name for name in owned_state(group) if not group.variables[name].scalar
            and not (name in ACTIVATION_VARIABLES and "belief" in group.variables)]


def clone_group(group: NeuronGroup, clock: Clock) -> NeuronGroup:
    """``group`` again, on the current device and ``clock``, with its state values."""
    clone = NeuronGroup(group.N, group.user_equations, method=group.method_choice,
                        name=group.name, clock=clock, order=group.order,
                        namespace=dict(group.namespace) if group.namespace else None)
    for contained in group.contained_objects:
        if isinstance(contained, StateUpdater):
            clone.state_updater.order = contained.order  # as the runtime group's
            clone.state_updater.when = contained.when
        elif isinstance(contained, CodeRunner) and contained.template == "stateupdate":
            # on the group's clock where the runtime's is (each clock of its own costs the
            # program's loop a look every step, ``sim.compiled.program``), else its own dt
            on = ({"clock": clock} if contained.clock is group.clock
                  else {"dt": contained.clock.dt})
            clone.run_regularly(contained.abstract_code, when=contained.when,
                                order=contained.order, name=contained.name, **on)
        elif type(contained).__name__ not in ("Thresholder", "Resetter"):
            raise ValueError(f"{group.name}: cannot clone {type(contained).__name__} "
                             f"{contained.name}")
    for name in owned_state(group):
        clone.variables[name].set_value(group.variables[name].get_value().copy())
    return clone


def link(groups: list[NeuronGroup], clones: dict[str, NeuronGroup]) -> None:
    """The runtime groups' linked variables (``(linked)`` in their equations), linked again
    between the clones, to the same variable of the same source (one to one, or by the same
    index array)."""
    for group in groups:
        for name in group.user_equations.names:
            if "linked" not in group.user_equations[name].flags:
                continue
            source = group.variables[name]
            index = group.variables.indices[name]
            target = clones[source.owner.name]
            if index == "_idx":
                setattr(clones[group.name], name, linked_var(target, source.name))
            else:
                indices = group.variables[index].get_value().copy()
                setattr(clones[group.name], name,
                        linked_var(target, source.name, index=indices))
