"""F at a runtime run's samples, a stretch of samples at a time (``SampleStretch``).

A runtime run records a sample every ``record.every_steps`` steps (``Simulation.sample``). F
and its energy part are computed from the state, and one sample's F is ~100-500 us of Python
for a 2-5 unit model (a Hessian, its log-determinant, the mechanisms' parts): ~45% of
``perception/single_cause``'s warm run, ~29% of Posner's. A compiled run's replay computes
them for many samples at once (``Simulation.family_samples``: for the hierarchical family
``free_energy_samples``, a few stacked NumPy calls, each sample's F the per-sample function's
to the bit) from the state its monitors recorded.

The runtime device does the same: at each sample the stretch copies the state that call reads
(which variables of which populations: found once before the run by asking it,
``sim.compiled.reads.read_at_samples``) into rows of its own arrays; the streams that show the
state in place sample as before. When the stretch ends the rows of F (and of every stream the
family computes from the state) are computed at once and appended to their datasets: at each
trial's end (before its row, the guard's check and any checkpoint), when ``STRETCH_SAMPLES``
samples or ``STRETCH_BYTES`` of their state are held (a model of 10^6 units: one sample), and
when the run stops or finishes. Nothing reads those streams during a trial (a trial's row
computes F at its end anew; a stream's values are checked for non-finite ones when their band
is written, ``sim.io.finite``), so the file is the one sample-by-sample recording writes, to
the bit (``tests/golden.py compare`` on every bundled scenario).

Where the family cannot compute every such stream at once (a mechanism's part of F that is
not a function of the recorded state, weights that learn at every step, a family without the
method, a batched run), ``sample_in_stretches`` returns None and the samples go one by one.
"""

from __future__ import annotations

from typing import Any

import numpy as np

STRETCH_SAMPLES = 4096  # samples held at most before their rows are computed
# and at most this much of their state (a sample at least): left out of ``sim.memory``'s
# estimate, within its baseline's margin (200 MB estimated for a process with Brian2 and pcsim
# loaded, ~185 MB measured); a part of its own there moved tight limits set by tests and users
STRETCH_BYTES = 4 << 20


class SampleStretch:
    """The state F reads at each sample of a stretch, and the streams computed from it."""

    def __init__(self, simulation: Any, groups: list, reads: dict[str, list[str]],
                 computed: list[tuple[Any, Any]]) -> None:
        self.simulation, self.computed = simulation, computed
        mine = {id(streamed) for streamed, _ in computed}
        # the streams that show the state in place: sampled at once, as before
        self.in_place = [streamed for streamed in simulation.writer.streams
                         if id(streamed) not in mine]
        state = {group.name: {var: group.variables[var].get_value() for var in reads[group.name]}
                 for group in groups if group.name in reads}
        sample_bytes = sum(values.nbytes for variables in state.values()
                           for values in variables.values())
        self.capacity = max(1, min(STRETCH_SAMPLES, STRETCH_BYTES // max(1, sample_bytes)))
        # population -> variable -> (capacity, units): the rows the family is handed
        self.rows = {name: {var: np.empty((self.capacity, *values.shape), dtype=values.dtype)
                            for var, values in variables.items()}
                     for name, variables in state.items()}
        self.live = [(values, self.rows[name][var]) for name, variables in state.items()
                     for var, values in variables.items()]  # (the state array, its rows)
        self.taken = 0

    def take(self) -> None:
        """This sample's state, copied into the stretch's rows."""
        for values, rows in self.live:
            rows[self.taken] = values
        self.taken += 1
        if self.taken == self.capacity:
            self.flush()

    def flush(self) -> None:
        """The computed streams' rows for the samples held, appended to their datasets."""
        if not self.taken:
            return
        recorded = {name: {var: rows[:self.taken] for var, rows in variables.items()}
                    for name, variables in self.rows.items()}
        found = self.simulation.family_samples([stream.path for _, stream in self.computed],
                                               recorded)
        if found is None:  # it answered before the run; a refusal now is a bug here
            raise RuntimeError("the family refused the samples it computed before the run")
        for streamed, stream in self.computed:
            streamed.extend(np.asarray(found[stream.path]))
        self.taken = 0


def sample_in_stretches(simulation: Any) -> SampleStretch | None:
    """A ``SampleStretch`` for ``simulation``'s run on the runtime device, or None where its
    samples go one by one (module docstring). Called before the network runs, at a trial
    boundary: the question is asked on the state then and its effects put back."""
    from sim.compiled.program import runtime_groups
    from sim.compiled.reads import read_at_samples

    computed = [(streamed, stream) for streamed, stream in simulation.recorded
                if stream.state is None]
    if simulation.batch is not None or not computed:
        return None
    groups = runtime_groups(simulation)
    reads = read_at_samples(simulation, groups)
    if reads is None:
        return None
    return SampleStretch(simulation, groups, reads, computed)
