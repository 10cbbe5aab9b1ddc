"""What a compiled run's replay reads of the state recorded at each sample, found by asking the
readers themselves.

Brian2's standalone ``StateMonitor`` grows a table per recorded variable at every sample (a
row allocated on the heap, written to a file when the program ends, then freed; Brian2 2.9
cannot reserve a run's length ahead), so a variable recorded but never read costs time and
memory for nothing (attention/posner recorded 21 variables a sample and the replay read 10;
the program's loop took 0.085 s, then 0.044 s with fewer monitors on fewer clocks,
``sim.compiled.program.every_steps``). What is read depends on the run: which
streams ``[record] variables`` switches on, whether F is recorded, what the mechanisms' parts
of F read. So the monitors record what the replay's readers read, found by calling them:

- **At once** (``Simulation.samples_at_once``, ``sim.compiled.replay``): the replay hands the
  family each sample's state as a mapping (population -> variable -> (samples, units)); the
  streams that show a recorded variable, F and the mechanisms' parts of it read what they need
  of it. Before the build, ``read_at_samples`` makes that call once, on the runtime arrays as
  one sample, through a mapping that notes each (population, variable) read (iterating a
  population's variables reads every one of them), and puts back the Python state the call
  changed (the Laplace term's sample count: ``starts_undone``).
- **One by one** (that call gives None: some stream needs ``Simulation.sample``): the replay
  puts every per-unit variable back into the runtime arrays, which pcsim's Python reads in
  place, and what compiled forms keep outside the populations (``CompiledContext.kept``):
  all of them are recorded.

A trial's end is recorded whole (``sim.compiled.program``): there the readouts, the guard, the
snapshots, the next trial's start and the run's outputs read the runtime arrays in place.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from typing import Any

import numpy as np

from sim.compiled.clone import per_unit_state
from sim.compiled.trial_starts import starts_undone


class Noted(Mapping):
    """``values`` as a read-only mapping that calls ``noted(key)`` for each value read."""

    def __init__(self, values: Mapping, noted: Callable[[Any], None]) -> None:
        self._values, self._noted = values, noted  # not ``values``: Mapping's method

    def __getitem__(self, key: Any) -> Any:
        found = self._values[key]
        self._noted(key)
        return found

    def __iter__(self) -> Iterator:
        return iter(self._values)

    def __len__(self) -> int:
        return len(self._values)


def read_at_samples(simulation: Any, groups: list) -> dict[str, list[str]] | None:
    """The per-unit variables (``per_unit_state``) of each of ``groups`` (the runtime
    populations) that the replay reads at every sample, by group name (in the group's order of
    variables; a group none of whose variables is read: absent); None where the replay takes
    the samples one by one (it then reads every variable)."""
    candidates = {group.name: per_unit_state(group) for group in groups}
    read: dict[str, dict[str, None]] = {}

    def population(name: str, group: Any) -> Noted:
        values = {var: np.array(group.variables[var].get_value())[None]
                  for var in candidates[name]}
        return Noted(values, lambda var: read.setdefault(name, {}).setdefault(var))

    state = Noted({group.name: population(group.name, group) for group in groups},
                  lambda name: None)
    with starts_undone(simulation):
        rows = simulation.samples_at_once(state, np.zeros(1))
    if rows is None:
        return None
    return {name: [var for var in variables if var in read[name]]
            for name, variables in candidates.items() if name in read}
