"""What a trial's start writes into the state, found from pcsim's own Python and played back
in compiled code.

On the runtime device a trial starts in Python (``Simulation.start``: a family's lanes reset
beliefs, put the trial's prior and precisions in force, switch learning phases; mechanisms
start their trial). The compiled program cannot call Python between steps, so before the build
every trial's start is run once here, in running order, on the runtime network's arrays: each
array is first filled with a sentinel, so whatever the start writes shows as a changed value.
It is done with several sentinels: a value that depends on the state it overwrites comes out
different between them and is refused, rather than played back wrong. The Python state the
starts change (lanes, readouts) is put back afterwards with ``Simulation.checkpoint`` /
``resume``, as between two trials of a resumed run (``starts_undone``).

Played back, each written variable gets a per-trial table (``TimedArray`` indexed by the trial's
running position) and one blend at the start of every step, ``v = v (1 - f) + new f`` with
``f`` 1 on the trial's first step where the trial writes that unit and 0 elsewhere: with
f in {0, 1} and finite values both sides are exact (no rounding), so the state after the start
is the runtime's bit for bit.

A start may also copy a value of the state it finds into another variable (a reset to the
prediction of a learned prior: the top belief takes the prior mean the last trial left). The
second and third passes fill each unit with a sentinel of its own, so such a copy shows as the
source unit's sentinel, in both; it is played back by a copier group (its target and source
linked) at the start of the step, before the written values, ``target = target (1 - f) +
source f``. Any other value that depends on the state is refused.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

import numpy as np
from brian2 import NeuronGroup, TimedArray, linked_var, second

from sim.compiled.clone import owned_state
from sim.compiled.timeline import Timeline

# no start writes these (its own values are finite); the second and third are scaled per unit
SENTINELS = (np.nan, -7.25e300, -3.5e299)
ORDER = -200  # Brian2's ``start`` slot, where ``sim.trial_sequence`` starts a trial
TRIAL = "pcsim_trial"  # the running position of the step's trial (a TimedArray over steps)
STARTS = "pcsim_trial_start"  # 1 on a trial's first step


def blend(target: str, value: str, flag: str) -> str:
    """Brian2 code that sets ``target`` to ``value`` where ``flag`` is 1 and leaves it where
    it is 0 (compiled code has no branch per unit): ``target * (1 - flag) + value * flag``,
    exact both ways for a flag in {0, 1} and finite numbers (x * 1 + y * 0 = x, no rounding)."""
    return f"{target} = {target} * (1 - {flag}) + {value} * {flag}"


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
class Copied:
    """One variable some trial's start sets to another variable's value (the state it
    finds): per trial, which units; ``index``: each unit's source unit."""

    group: str
    variable: str
    source_group: str
    source_variable: str
    index: np.ndarray  # (N,) int
    mask: np.ndarray  # (trials, N), 1.0 where copied

    @property
    def name(self) -> str:
        return f"pcsim_copy_{self.group}_{self.variable}"


@dataclass
class TrialStarts:
    written: list[Written] = field(default_factory=list)
    copied: list[Copied] = field(default_factory=list)

    def statements(self, group: str) -> str:
        """The blend of every variable of ``group`` that starts write, one line each."""
        lines = []
        for item in self.written:
            if item.group == group:
                at = f"{TRIAL}(t) * second, i"
                flag = f"({STARTS}(t) * {item.flags}({at}))"
                lines.append(blend(item.variable, f"{item.table}({at})", flag))
        return "\n".join(lines)

    def namespace(self, timeline: Timeline, dt) -> dict:
        """The TimedArrays the statements read."""
        found = {TRIAL: TimedArray(timeline.trial_of_step().astype(float), dt=dt, name=TRIAL),
                 STARTS: TimedArray(timeline.starts(), dt=dt, name=STARTS)}
        for item in self.written:
            found[item.table] = TimedArray(item.values, dt=1 * second, name=item.table)
            found[item.flags] = TimedArray(item.mask, dt=1 * second, name=item.flags)
        return found

    def add_to(self, clones: dict[str, NeuronGroup], namespace: dict) -> None:
        """The playback on each cloned group that a start writes into (a ``run_regularly``
        of the group, reading the TimedArrays of ``namespace``, ``TrialStarts.namespace``)."""
        for name, clone in clones.items():
            code = self.statements(name)
            if code:
                clone.run_regularly(code, when="start", order=ORDER, name=f"{name}_trial_start")
                clone.namespace.update(namespace)

    def copiers(self, clones: dict[str, NeuronGroup], namespace: dict) -> list:
        """A group per copied variable that copies the source into it, at the start of a
        trial's first step where the trial copies that unit (before the written values)."""
        groups = []
        for item in self.copied:
            flags = f"{item.name}_flags"
            group = NeuronGroup(len(item.index), "into : 1 (linked)\nsource_value : 1 (linked)",
                                clock=clones[item.group].clock, name=item.name,
                                namespace={**namespace, flags: TimedArray(
                                    item.mask, dt=1 * second, name=flags)})
            group.into = linked_var(clones[item.group], item.variable)
            group.source_value = linked_var(clones[item.source_group], item.source_variable,
                                      index=item.index)
            flag = f"({STARTS}(t) * {flags}({TRIAL}(t) * second, i))"
            group.run_regularly(blend("into", "source_value", flag),
                                when="start", order=ORDER - 1, name=f"{item.name}_start")
            groups.append(group)
        return groups


@contextmanager
def starts_undone(simulation, arrays: Iterable[np.ndarray] = ()) -> Iterator[dict]:
    """Run trial starts (``Simulation.start``) ahead of the compiled run, then put back what
    they change: the Python state (``Simulation.checkpoint``, given to the block, and
    ``resume``, as between two trials of a resumed run) and the values of ``arrays``."""
    arrays = list(arrays)
    saved = [values.copy() for values in arrays]
    kept = simulation.checkpoint()
    try:
        yield kept
    finally:
        for values, before in zip(arrays, saved, strict=True):
            values[...] = before
        simulation.resume(kept)


def probe(simulation, groups: list[NeuronGroup]) -> TrialStarts:
    """Run every trial's start on ``groups``' runtime arrays, find what each writes."""
    arrays = {(group.name, name): group.variables[name].get_value()
              for group in groups for name in owned_state(group)}
    trials = len(simulation.scenario.trials)
    units = np.cumsum([0, *[len(values) for values in arrays.values()]])
    backgrounds = [  # pass -> each array's sentinels: the second and third, one per unit
        {key: np.full(len(values), sentinel) if np.isnan(sentinel) else
         sentinel * (1 + np.arange(first, first + len(values)) * 2.0**-30)
         for (key, values), first in zip(arrays.items(), units, strict=False)}
        for sentinel in SENTINELS]
    seen = []
    with starts_undone(simulation, arrays.values()) as kept_python:
        for background in backgrounds:
            simulation.resume(kept_python)  # each pass from the run's first trial on
            after = {key: np.empty((trials, len(values)))
                     for key, values in arrays.items()}
            for position in range(trials):  # the per-trial work: fill, start, copy out
                for key, values in arrays.items():
                    values[...] = background[key]
                simulation.start([position])
                for key, values in arrays.items():
                    after[key][position] = values
            seen.append({key: written_by_starts(after[key], background[key])
                         for key in arrays})
    starts = TrialStarts()
    for key in arrays:
        (values, mask), *others = (passed[key] for passed in seen)
        if not mask.any() and not any(other_mask.any() for _, other_mask in others):
            continue
        if np.dtype(arrays[key].dtype).kind != "f":
            raise StateDependentStart(f"a trial's start writes {key[0]}.{key[1]}, not a float")
        copies = others[0][1] - mask  # written in the later passes only: copied sentinels
        if (copies < 0).any() or not all(np.array_equal(mask + copies, other_mask)
                   and np.array_equal(values[mask > 0], other_values[mask > 0])
                   for other_values, other_mask in others):
            raise StateDependentStart(
                f"a trial's start writes {key[0]}.{key[1]} from the state it finds")
        if mask.any():
            starts.written.append(Written(key[0], key[1], values, mask))
        if copies.any():
            starts.copied.append(copied(key, copies, [other for other, _ in others],
                                        backgrounds[1:]))
    return starts


def written_by_starts(after: np.ndarray, sentinels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """What the starts wrote into one array (``after``: trials x N, as each trial's start left
    it over ``sentinels``): the values written (0 elsewhere), and 1.0 where written."""
    changed = ~np.isnan(after) if np.isnan(sentinels).all() else after != sentinels
    return np.where(changed, after, 0.0), changed.astype(float)


def copied(key: tuple[str, str], copies: np.ndarray, passes: list[np.ndarray],
           backgrounds: list[dict]) -> Copied:
    """Where ``key``'s copied units (``copies``: trials x N) come from: the one source unit
    whose sentinel each holds in every pass (the same for every trial); else refused."""
    sources: list[tuple[tuple[str, str], int]] = []
    for unit in range(copies.shape[1]):
        found = None
        for trial in np.flatnonzero(copies[:, unit]):
            here = [(source, int(np.flatnonzero(sentinels == passes[0][trial, unit])[0]))
                    for source, sentinels in backgrounds[0].items()
                    if (sentinels == passes[0][trial, unit]).any()]
            if (len(here) != 1 or (found is not None and here[0] != found)
                    or any(background[here[0][0]][here[0][1]] != values[trial, unit]
                           for background, values in zip(backgrounds[1:], passes[1:],
                                                         strict=True))):
                raise StateDependentStart(
                    f"a trial's start writes {key[0]}.{key[1]} from the state it finds")
            found = here[0]
        sources.append(found if found is not None else (None, 0))
    named = {source for source, _ in sources if source is not None}
    if len(named) != 1:
        raise StateDependentStart(
            f"a trial's start copies {key[0]}.{key[1]} from more than one variable")
    (source_group, source_variable), = named
    return Copied(key[0], key[1], source_group, source_variable,
                  np.array([unit for _, unit in sources], dtype=np.int64), copies)
