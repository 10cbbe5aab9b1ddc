"""What a trial's start writes into the state, found from pcsim's own Python and played back
in compiled code.

On the runtime device a trial starts in Python (``Simulation.start``: a family's lanes reset
beliefs, put the trial's prior and precisions in force, switch learning phases; mechanisms
start their trial). The compiled program cannot call Python between steps, so before the build
every trial's start is run once here, in running order, on the runtime network's arrays: each
array is first filled with a sentinel, so whatever the start writes shows as a changed value.
It is done twice with two sentinels: a value that depends on the state it overwrites (a learned
prior carried over) comes out different and is refused, rather than played back wrong. The
Python state the starts change (lanes, readouts) is put back afterwards with
``Simulation.checkpoint`` / ``resume``, as between two trials of a resumed run.

Played back, each written variable gets a per-trial table (``TimedArray`` indexed by the trial's
running position) and one blend at the start of every step, ``v = v (1 - f) + new f`` with
``f`` 1 on the trial's first step where the trial writes that unit and 0 elsewhere: with
f in {0, 1} and finite values both sides are exact (no rounding), so the state after the start
is the runtime's bit for bit.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from brian2 import NeuronGroup, TimedArray, second

from sim.compiled.clone import owned_state
from sim.compiled.timeline import Timeline

SENTINELS = (np.nan, -7.25e300)  # no start writes either (a start's own values are finite)
ORDER = -200  # Brian2's ``start`` slot, where ``sim.trial_sequence`` starts a trial
TRIAL = "pcsim_trial"  # the running position of the step's trial (a TimedArray over steps)
STARTS = "pcsim_trial_start"  # 1 on a trial's first step


class StateDependentStart(ValueError):  # noqa: N818 - a refusal, turned into NotCompiled
    """A trial's start writes a value that depends on the state it finds."""


@dataclass
class Written:
    """One variable some trial's start writes: per trial, the values and which units."""

    group: str
    variable: str
    values: np.ndarray  # (trials, N)
    mask: np.ndarray  # (trials, N), 1.0 where written

    @property
    def table(self) -> str:
        return f"pcsim_start_{self.group}_{self.variable}"

    @property
    def flags(self) -> str:
        return f"pcsim_writes_{self.group}_{self.variable}"


@dataclass
class TrialStarts:
    written: list[Written] = field(default_factory=list)

    def statements(self, group: str) -> str:
        """The blend of every variable of ``group`` that starts write, one line each."""
        lines = []
        for item in self.written:
            if item.group == group:
                at = f"{TRIAL}(t) * second, i"
                flag = f"({STARTS}(t) * {item.flags}({at}))"
                lines.append(f"{item.variable} = {item.variable} * (1 - {flag}) + "
                             f"{item.table}({at}) * {flag}")
        return "\n".join(lines)

    def namespace(self, timeline: Timeline, dt) -> dict:
        """The TimedArrays the statements read."""
        found = {TRIAL: TimedArray(timeline.trial_of_step().astype(float), dt=dt, name=TRIAL),
                 STARTS: TimedArray(timeline.starts(), dt=dt, name=STARTS)}
        for item in self.written:
            found[item.table] = TimedArray(item.values, dt=1 * second, name=item.table)
            found[item.flags] = TimedArray(item.mask, dt=1 * second, name=item.flags)
        return found

    def add_to(self, clones: dict[str, NeuronGroup], timeline: Timeline, dt) -> list:
        """The playback on each cloned group that a start writes into."""
        namespace = self.namespace(timeline, dt)
        objects = []
        for name, clone in clones.items():
            code = self.statements(name)
            if code:
                objects.append(clone.run_regularly(code, when="start", order=ORDER,
                                                   name=f"{name}_trial_start"))
                clone.namespace.update(namespace)
        return objects


def probe(simulation, groups: list[NeuronGroup]) -> TrialStarts:
    """Run every trial's start on ``groups``' runtime arrays, find what each writes."""
    arrays = {(group.name, name): group.variables[name].get_value()
              for group in groups for name in owned_state(group)}
    kept_state = {key: values.copy() for key, values in arrays.items()}
    kept_python = simulation.checkpoint()
    trials = len(simulation.scenario.trials)
    seen = []
    try:
        for sentinel in SENTINELS:
            simulation.resume(kept_python)  # each pass from the run's first trial on
            found = {key: (np.zeros((trials, len(values))), np.zeros((trials, len(values))))
                     for key, values in arrays.items()}
            for position in range(trials):
                for values in arrays.values():
                    values[...] = sentinel
                simulation.start([position])
                for key, values in arrays.items():
                    changed = ~np.isnan(values) if np.isnan(sentinel) else values != sentinel
                    found[key][0][position][changed] = values[changed]
                    found[key][1][position][changed] = 1.0
            seen.append(found)
    finally:
        for key, values in arrays.items():
            values[...] = kept_state[key]
        simulation.resume(kept_python)
    starts = TrialStarts()
    for key in arrays:
        (values, mask), (other_values, other_mask) = seen[0][key], seen[1][key]
        if not mask.any() and not other_mask.any():
            continue
        if not (np.array_equal(mask, other_mask) and np.array_equal(values, other_values)):
            raise StateDependentStart(
                f"a trial's start writes {key[0]}.{key[1]} from the state it finds")
        if np.dtype(arrays[key].dtype).kind != "f":
            raise StateDependentStart(f"a trial's start writes {key[0]}.{key[1]}, not a float")
        starts.written.append(Written(key[0], key[1], values, mask))
    return starts
