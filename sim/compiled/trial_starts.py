"""What a trial's start writes into the state, found from pcsim's own Python and played back
in compiled code.

On the runtime device a trial starts in Python (``Simulation.start``: a family's lanes reset
beliefs, put the trial's prior and precisions in force, switch learning phases; mechanisms
start their trial). The compiled program cannot call Python between steps, so before the build
every trial's start is run once here, in running order, on the runtime network's arrays, each
unit first filled with a sentinel of its own (a huge negative number, different in every
unit): a unit the start leaves alone keeps its sentinel, a value it writes shows as itself,
and a value it copies from the state it finds shows as the source unit's sentinel. A value
computed from the state (scaled, summed, overflowed: huge but no sentinel, NaN or Inf) is
refused, rather than played back wrong. The Python state the starts change (lanes, readouts)
is put back afterwards with ``Simulation.checkpoint`` / ``resume``, as between two trials of a
resumed run (``starts_undone``).

One run of each start cannot see every dependence on the state: a comparison, a clip or a
product with 0 gives a plain value from a sentinel too. The replay runs each start again,
as on the runtime device, on the state the program's start found (the previous trial's end,
recorded); ``StartsSeen`` then checks that every start wrote exactly what the program played
back, and the run is refused (nothing written) where one did not.

Played back, each written variable gets a per-trial table (``TimedArray`` indexed by the trial's
running position) and one blend at the start of every step, ``v = v (1 - f) + new f`` with
``f`` 1 on the trial's first step where the trial writes that unit and 0 elsewhere: with
f in {0, 1} and finite values both sides are exact (no rounding), so the state after the start
is the runtime's bit for bit.

A start may also copy a value of the state it finds into another variable (a reset to the
prediction of a learned prior: the top belief takes the prior mean the last trial left). It
is played back by a copier group (its target and source linked) at the start of the step,
before the written values, ``target = target (1 - f) + source f``.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

import numpy as np
from brian2 import NeuronGroup, TimedArray, linked_var, second

from sim.compiled.clone import owned_state
from sim.compiled.timeline import Timeline

# no start writes it: unit k of all probed arrays gets SENTINEL (1 + k 2^-30), each its own
SENTINEL = -7.25e300
# float32 state (``float = "float32"``): -7.25e300 is -inf there, and 2^-30 below its resolution
SENTINEL32, SPACING32 = -7.25e30, 2.0**-20
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


class StartsSeen:
    """What pcsim's own starts left in the replay's arrays (``arrays``: by group and variable)
    trial by trial, for the variables the program plays back (``TrialStarts``): ``before``
    and ``after`` each start, then ``differs`` compares all trials at once."""

    def __init__(self, starts: TrialStarts, arrays: dict[str, dict[str, np.ndarray]]) -> None:
        def held(group: str, variable: str) -> np.ndarray | None:
            return arrays.get(group, {}).get(variable)

        self.written = [(item, values, np.zeros_like(item.values)) for item in starts.written
                        if (values := held(item.group, item.variable)) is not None]
        self.copied = [(item, values, source, np.zeros_like(item.mask), np.zeros_like(item.mask))
                       for item in starts.copied
                       if (values := held(item.group, item.variable)) is not None
                       and (source := held(item.source_group, item.source_variable)) is not None]

    def before(self, position: int) -> None:
        """Each copy's source before trial ``position``'s start."""
        for item, _, source, found, _ in self.copied:
            found[position] = source[item.index]

    def after(self, position: int) -> None:
        """What trial ``position``'s start left."""
        for _, values, after in self.written:
            after[position] = values
        for _, values, _, _, after in self.copied:
            after[position] = values

    def differs(self, trials: int) -> tuple[int, str, str] | None:
        """The first of the first ``trials`` trials whose start wrote other values than the
        program played back, with the (group, variable); None where all match."""
        found = []
        for item, _, after in self.written:
            mask = item.mask[:trials] > 0
            wrong = (mask & (after[:trials] != item.values[:trials])).any(axis=1)
            found += [(int(np.argmax(wrong)), item.group, item.variable)] if wrong.any() else []
        for item, _, _, source, after in self.copied:
            mask = item.mask[:trials] > 0
            wrong = (mask & (after[:trials] != source[:trials])).any(axis=1)
            found += [(int(np.argmax(wrong)), item.group, item.variable)] if wrong.any() else []
        return min(found) if found else None


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
    """Run every trial's start once on ``groups``' runtime arrays, each unit filled first with
    its own sentinel, and find what each start writes (module doc)."""
    arrays = {(group.name, name): group.variables[name].get_value()
              for group in groups for name in owned_state(group)}
    trials = len(simulation.scenario.trials)
    sentinels = Sentinels([len(values) for values in arrays.values()],
                          single=any(values.dtype == np.float32 for values in arrays.values()))
    background = dict(zip(arrays, sentinels.of_arrays(), strict=True))
    after = {key: np.empty((trials, len(values))) for key, values in arrays.items()}
    with starts_undone(simulation, arrays.values()):
        for position in range(trials):  # the per-trial work: fill, start, copy out
            for key, values in arrays.items():
                values[...] = background[key]
            simulation.start([position])
            for key, values in arrays.items():
                after[key][position] = values
    keys = list(arrays)
    starts = TrialStarts()
    for key, found in after.items():
        changed = found != background[key]
        if not changed.any():
            continue
        what = f"{simulation.shown_name(key[0])}.{key[1]}"
        if np.dtype(arrays[key].dtype).kind != "f":
            raise StateDependentStart(f"a trial's start writes {what}, not a float")
        # a sentinel of another unit: copied; any other value this large, NaN or Inf: computed
        # from a sentinel (scaled, added to, overflowed)
        from_state = changed & ~(np.abs(found) < sentinels.limit)
        sources = sentinels.decode(found[from_state])
        if sources is None:
            raise StateDependentStart(f"a trial's start writes {what} from the state it finds")
        written = changed & ~from_state
        if written.any():
            starts.written.append(Written(key[0], key[1], np.where(written, found, 0.0),
                                          written.astype(float)))
        if len(sources[0]):
            starts.copied.append(copied(key, what, from_state, keys, *sources))
    return starts


class Sentinels:
    """Every probed unit's sentinel, numbered across the arrays in order (unit u of the
    array with ``sizes`` before it totalling U is number U + u): ``SENTINEL (1 + k 2^-30)``,
    strictly decreasing in k, so a value is decoded back to its unit by a binary search of
    one array of all sentinels (8 bytes a unit), not a lookup table of Python objects."""

    def __init__(self, sizes: list[int], single: bool = False) -> None:
        """``single``: some array is float32, and every sentinel is made exact in float32
        (``SENTINEL32 (1 + k SPACING32)``; in a float64 array too)."""
        self.firsts = np.cumsum([0, *sizes])
        base, spacing = (SENTINEL32, SPACING32) if single else (SENTINEL, 2.0**-30)
        values = base * (1 + np.arange(self.firsts[-1]) * spacing)
        self.values = values.astype(np.float32).astype(float) if single else values
        self.limit = abs(base) * 1e-10  # a written value this large was computed from a sentinel
        self.ascending = self.values[::-1]
        if (np.diff(self.values) >= 0).any():  # each unit's own, or a copy reads as another's
            raise RuntimeError(f"{self.firsts[-1]} probed units: more than the sentinels tell "
                               "apart")

    def of_arrays(self) -> list[np.ndarray]:
        """Each array's sentinels, in the order of ``sizes``."""
        return [self.values[first:last]
                for first, last in zip(self.firsts[:-1], self.firsts[1:], strict=True)]

    def decode(self, found: np.ndarray) -> tuple[np.ndarray, np.ndarray] | None:
        """Each value's (array number, unit in that array), or None where some value is no
        unit's sentinel (NaN and Inf included)."""
        found = np.asarray(found, dtype=float)
        position = np.searchsorted(self.ascending, found)
        inside = position < len(self.ascending)
        if not inside.all() or not (self.ascending[position] == found).all():
            return None
        number = len(self.ascending) - 1 - position
        array = np.searchsorted(self.firsts, number, side="right") - 1
        return array, number - self.firsts[array]


def copied(key: tuple[str, str], what: str, copies: np.ndarray, keys: list[tuple[str, str]],
           source_array: np.ndarray, source_unit: np.ndarray) -> Copied:
    """``key``'s copies (``copies``: trials x N, True where a start copied into the unit; the
    source of each, in ``copies``' order: its array's number in ``keys`` and its unit): one
    source unit per unit for every trial, all of one variable; else refused."""
    _, unit = np.nonzero(copies)
    source = np.zeros(copies.shape[1], dtype=np.int64)
    array = np.full(copies.shape[1], -1, dtype=np.int64)
    source[unit], array[unit] = source_unit, source_array  # any of each unit's copies
    if (source[unit] != source_unit).any() or (array[unit] != source_array).any():
        raise StateDependentStart(f"a trial's start writes {what} from the state it finds")
    named = np.unique(array[unit])
    if len(named) != 1:
        raise StateDependentStart(f"a trial's start copies {what} from more than one variable")
    source_group, source_variable = keys[int(named[0])]
    return Copied(key[0], key[1], source_group, source_variable, source, copies.astype(float))
