"""A scenario's ``[protocol]``: its trials, listed one by one or generated from conditions.

``[[protocol.trials]]`` lists the trials. ``[[protocol.conditions]]`` instead declares trial
types, each with a ``name``, a ``count`` or a ``probability`` (then ``[protocol] trials = N`` is
the total), and every field a trial takes; at load time they are expanded into a trial list in
a seeded random order. The expanded list is the scenario's ``trials``, as if listed: the engine,
the families and the readouts see no difference, except that each trial knows its condition.

Random streams of a scenario's seed: weights ``[seed, 1, level]``, noise ``[seed, 2, trial]``,
discrete likelihoods ``[seed, 3, modality]``, the order of listed trials ``[seed, 4]``, the
order of generated ones ``[seed, 5]``, a trial's drawn input (bars) ``[seed, 6, trial]``;
``[protocol] seed`` replaces the scenario's seed in the two orders.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from fractions import Fraction
from typing import Any

import numpy as np

from sim import registry, sequence
from sim.validation import Fields, describe

MAX_STEPS = 10**9
MAX_TRIALS = 10**6  # of a generated protocol (every trial is a row and a Brian2 run)
RESETS = ("none", "beliefs")
MAX_BATCH = 4096  # copies of the network in one batched run (sim.batch)
PROBABILITY_TOLERANCE = 1e-9
LISTED_STREAM, GENERATED_STREAM = 4, 5


@dataclass(slots=True)
class Trial:
    index: int  # its place in the list as written (or as expanded), before any shuffle
    name: str
    duration_ms: float
    reset: bool
    settings: Any  # the model family's per-trial part: stimulus, overrides, observations
    condition: str | None = None  # the condition it was generated from
    kind: str | None = None  # in a sequence (sim.sequence): standard, deviant or first
    repetition: int | None = None  # in a sequence: its place in its run of one condition
    learn: frozenset[str] | None = None  # the parameters it learns (None: every one learned)


@dataclass
class Condition:
    """One ``[[protocol.conditions]]`` table: a trial type and how many trials it gives."""

    name: str
    count: int
    probability: float | None
    duration_ms: float
    reset: bool
    settings: Any  # shared by every trial of the condition (read-only while running)
    min_gap: int | None = None  # a rare condition of a spaced sequence (sim.sequence)
    learn: frozenset[str] | None = None

    def describe(self) -> dict:
        out: dict[str, Any] = {"name": self.name, "count": self.count}
        if self.probability is not None:
            out["probability"] = self.probability
        if self.min_gap is not None:
            out["min_gap"] = self.min_gap
        return out


@dataclass
class TrialProtocol:
    trials: list[Trial]
    shuffle: bool
    seed: int | None = None  # ``[protocol] seed``: the order's own seed
    conditions: list[Condition] | None = None  # None: the trials are listed
    total: int | None = None  # ``[protocol] trials = N`` (conditions with probabilities)
    structure: str | None = None  # sequence.SPACED or sequence.TRAINS; None: a plain order
    trains: tuple[int, int] | None = None  # ``[protocol] trains``: a train's lengths
    batch: int = 1  # ``[protocol] batch``: up to this many trials run at once (``sim.batch``)

    def describe(self) -> dict:
        """``protocol`` of ``scenario/parameters``; listed trials without a seed give exactly
        what they gave before conditions existed."""
        out: dict[str, Any] = {"shuffle": self.shuffle, "order": [t.index for t in self.trials]}
        if self.seed is not None:
            out["seed"] = self.seed
        if self.batch != 1:
            out["batch"] = self.batch
        if self.conditions is not None:
            if self.total is not None:
                out["trials"] = self.total
            out["conditions"] = [condition.describe() for condition in self.conditions]
        if self.structure is not None:
            out["sequence"] = self.structure
        if self.trains is not None:
            out["trains"] = list(self.trains)
        return out


def parse_protocol(
    fields: Fields, kind: Any, model: Any, seed: int, dt_ms: float
) -> TrialProtocol:
    """Read ``[protocol]`` (``fields``, closed here) into its trial list, in running order."""
    reset_default = fields.text("reset", default="none", choices=RESETS)
    generated = fields.has("conditions")
    if generated and isinstance(fields.table.get("trials"), list):
        raise fields.source.error(f"{fields.field('conditions')}[0]",
                                  "a protocol lists [[protocol.trials]] or declares "
                                  "[[protocol.conditions]], not both")
    if not generated and fields.has("trials") and not isinstance(fields.table["trials"], list):
        raise fields.error("trials", "a number of trials is the total of [[protocol.conditions]] "
                                     "with probabilities, and there are none; list the trials "
                                     "as [[protocol.trials]] tables")
    shuffle = fields.flag("shuffle", default=generated)
    order_seed = fields.number("seed", default=None, minimum=0, maximum=2**32 - 1, integer=True)
    batch = fields.number("batch", default=1, minimum=1, maximum=MAX_BATCH, integer=True)
    rng = np.random.default_rng([seed if order_seed is None else order_seed,
                                 GENERATED_STREAM if generated else LISTED_STREAM])
    structure, trains = None, None
    if generated:
        conditions, total = parse_conditions(fields, kind, model, dt_ms, reset_default)
        structure, trains = read_structure(fields, conditions)
        if structure == sequence.TRAINS:
            trials = train_trials(conditions, total, trains, rng)
        else:
            expanded = ((c, k) for c in conditions for k in range(c.count))
            trials = [Trial(index, f"{c.name}_{k}", c.duration_ms, c.reset, c.settings, c.name,
                            learn=c.learn)
                      for index, (c, k) in enumerate(expanded)]
    else:
        if fields.has("trains"):
            raise fields.error("trains", "trains are drawn from [[protocol.conditions]], and "
                                         "there are none")
        conditions, total = None, None
        trials = []
        for index, trial_fields in enumerate(fields.subs("trials")):
            name = trial_fields.text("name", default=f"trial_{index}")
            duration, reset, settings, learn = read_trial(trial_fields, kind, model, dt_ms,
                                                          reset_default)
            trial_fields.close()
            trials.append(Trial(index, name, duration, reset, settings, learn=learn))
    if structure is not None and fields.has("shuffle"):
        raise fields.error("shuffle", f"a {structure} sequence draws its own order; leave "
                                      "shuffle out")
    fields.close()
    if structure == sequence.SPACED:
        names = [c.name for c in conditions]
        order = sequence.spaced_order([names.index(t.condition) for t in trials],
                                      [c.min_gap for c in conditions], rng)
        trials = [trials[i] for i in order]
    elif shuffle and structure is None:
        trials = [trials[i] for i in rng.permutation(len(trials))]
    if structure is not None:
        label_sequence(trials, structure, {c.name for c in conditions if c.min_gap is not None})
    return TrialProtocol(trials, shuffle, order_seed, conditions, total, structure, trains,
                         batch)


def read_structure(fields: Fields, conditions: list[Condition]
                   ) -> tuple[str | None, tuple[int, int] | None]:
    """Whether the conditions make a spaced sequence (some give ``min_gap``), trains
    (``[protocol] trains``) or a plain order, checked against the conditions."""
    rare = [c for c in conditions if c.min_gap is not None]
    if fields.has("trains"):
        lengths = fields.raw("trains")
        if (not isinstance(lengths, list) or len(lengths) != 2
                or not all(isinstance(n, int) and not isinstance(n, bool) for n in lengths)
                or not 1 <= lengths[0] <= lengths[1] <= MAX_TRIALS):
            raise fields.error("trains", f"got {describe(lengths)}, expected [a, b]: the "
                                         "shortest and longest train, integers with "
                                         "1 <= a <= b")
        if rare:
            raise fields.error("trains", f"condition {describe(rare[0].name)} gives min_gap: a "
                                         "sequence is spaced or made of trains, not both")
        if conditions[0].probability is None:
            raise fields.error("trains", "trains draw each train's condition by probability: "
                                         "expected each condition to give a probability "
                                         "(and [protocol] trials = N)")
        if sum(1 for c in conditions if c.probability) < 2:
            raise fields.error("trains", "expected at least two conditions with a positive "
                                         "probability (each train differs from the one before)")
        return sequence.TRAINS, (lengths[0], lengths[1])
    if not rare:
        return None, None
    if len(rare) == len(conditions):
        raise fields.error("conditions", "every condition gives min_gap: expected some "
                                         "frequent conditions (without min_gap) to space the "
                                         "rare ones")
    frequent = sum(c.count for c in conditions if c.min_gap is None)
    needed = sum(c.count * c.min_gap for c in rare)
    if needed > frequent:
        raise fields.error("conditions", f"the rare trials need {needed} frequent trials "
                                         f"before them (count x min_gap), and there are "
                                         f"{frequent}; expected fewer rare trials or smaller "
                                         "gaps")
    return sequence.SPACED, None


def train_trials(conditions: list[Condition], total: int, lengths: tuple[int, int],
                 rng: np.random.Generator) -> list[Trial]:
    """The trials of a trains sequence in running order; each condition's ``count`` becomes
    the number of its trials drawn."""
    labels = sequence.train_sequence([c.probability or 0.0 for c in conditions], total,
                                     lengths, rng)
    counts = [0] * len(conditions)
    trials = []
    for index, label in enumerate(labels):
        c = conditions[label]
        trials.append(Trial(index, f"{c.name}_{counts[label]}", c.duration_ms, c.reset,
                            c.settings, c.name, learn=c.learn))
        counts[label] += 1
    for condition, count in zip(conditions, counts, strict=True):
        condition.count = count
    return trials


def label_sequence(trials: list[Trial], structure: str, rare: set[str]) -> None:
    """Each trial's repetition and kind (``sim.sequence``), in running order."""
    repetition = sequence.repetitions([t.condition for t in trials])
    kinds = sequence.kinds(structure, [t.condition in rare for t in trials], repetition)
    for trial, count, kind in zip(trials, repetition, kinds, strict=True):
        trial.repetition, trial.kind = count, kind


def read_trial(
    fields: Fields, kind: Any, model: Any, dt_ms: float, reset_default: str
) -> tuple[float, bool, Any, frozenset[str] | None]:
    """What a trial and a condition share: ``duration_ms``, ``reset``, ``learn`` and the model
    family's own fields (``kind.parse_trial``)."""
    duration = fields.number("duration_ms", positive=True)
    if duration / dt_ms > MAX_STEPS:
        raise fields.error("duration_ms", f"{duration} ms is over {MAX_STEPS} steps")
    if abs(round(duration / dt_ms) * dt_ms - duration) > 1e-9 * max(duration, 1.0):
        raise fields.error("duration_ms", f"expected a multiple of dt_ms = {dt_ms}")
    reset = fields.text("reset", default=reset_default, choices=RESETS) == "beliefs"
    learn = read_learn(fields, model)
    return duration, reset, kind.parse_trial(fields, model, duration), learn


def learned_parameters(model: Any) -> list[str]:
    """What the model's switched-on mechanisms learn (``Mechanism.learns``), in order."""
    found = (registry.mechanism(name).learns for name in getattr(model, "mechanisms", {}))
    return list(dict.fromkeys(name for name in found if name))


def read_learn(fields: Fields, model: Any) -> frozenset[str] | None:
    """A trial's ``learn``: ``true`` (the default: every parameter the model learns),
    ``false`` (none: a test phase) or a list of parameter names (``["weights", "prior"]``)."""
    raw = fields.raw("learn", default=True)
    if raw is True:
        return None
    if raw is False:
        return frozenset()
    learned = learned_parameters(model)
    known = ", ".join(learned) or "none (no [model.learning] mechanism is on)"
    if not isinstance(raw, list) or not all(isinstance(name, str) for name in raw):
        raise fields.error("learn", f"got {describe(raw)}, expected true, false or a list of "
                                    f"the parameters this trial learns ({known})")
    for name in raw:
        if name not in learned:
            raise fields.error("learn", f"{describe(name)} is not learned in this scenario; "
                                        f"expected some of: {known}")
    return frozenset(raw)


def parse_conditions(
    protocol: Fields, kind: Any, model: Any, dt_ms: float, reset_default: str
) -> tuple[list[Condition], int | None]:
    """The ``[[protocol.conditions]]`` with their counts (from ``[protocol] trials`` and the
    probabilities when they give probabilities), and that total."""
    conditions: list[Condition] = []
    first: Fields | None = None  # the first condition, which sets count or probability
    by_probability = False
    tables = protocol.subs("conditions")
    for table in tables:
        name = table.text("name")
        if not name:
            raise table.error("name", "expected a non-empty name")
        if any(c.name == name for c in conditions):
            raise table.error("name", f"{describe(name)} names an earlier condition too; expected "
                                      "distinct names")
        given = [key for key in ("count", "probability") if table.has(key)]
        if len(given) == 2:
            raise table.error("probability", "a condition gives a count or a probability, "
                                             "not both")
        if not given:
            raise table.error("count", "missing: expected a count (its number of trials) or "
                                       "a probability (with [protocol] trials = N)")
        if first is None:
            first, by_probability = table, given == ["probability"]
        elif by_probability != (given == ["probability"]):
            raise table.error(given[0], f"{first.path} gives a "
                                        f"{'probability' if by_probability else 'count'}: "
                                        "expected every condition to give the same")
        count, probability = 0, None
        if by_probability:
            probability = float(table.number("probability", minimum=0.0, maximum=1.0))
        else:
            count = table.number("count", minimum=0, maximum=MAX_TRIALS, integer=True)
        min_gap = table.number("min_gap", default=None, minimum=1, maximum=MAX_TRIALS,
                               integer=True)
        duration, reset, settings, learn = read_trial(table, kind, model, dt_ms, reset_default)
        table.close()
        conditions.append(Condition(name, count, probability, duration, reset, settings,
                                    min_gap, learn))

    last = tables[-1]
    if by_probability:
        total = protocol.number("trials", default=None, minimum=1, maximum=MAX_TRIALS,
                                integer=True)
        if total is None:
            raise tables[0].error("probability", "expected [protocol] trials = N, the total "
                                                 "number of trials the probabilities share")
        probabilities = [c.probability or 0.0 for c in conditions]
        found = math.fsum(probabilities)
        if abs(found - 1.0) > PROBABILITY_TOLERANCE:
            raise last.error("probability", f"the conditions' probabilities sum to {found!r}, "
                                            f"expected 1 (within {PROBABILITY_TOLERANCE:g})")
        for condition, count in zip(conditions, largest_remainder(probabilities, total),
                                    strict=True):
            condition.count = count
        return conditions, total
    if protocol.has("trials"):
        raise protocol.error("trials", "the total is for conditions with a probability; "
                                       "these give counts (leave trials out)")
    running = 0
    for condition, table in zip(conditions, tables, strict=True):
        running += condition.count
        if running > MAX_TRIALS:
            raise table.error("count", f"the conditions give more than {MAX_TRIALS} trials "
                                       f"({running} so far)")
    if running == 0:
        raise last.error("count", "the conditions give no trials; expected a positive count")
    return conditions, None


def largest_remainder(probabilities: list[float], total: int) -> list[int]:
    """Counts in proportion to ``probabilities`` that sum to ``total`` exactly.

    Each condition gets floor(N p_i / sum p) trials (p as the decimal written, computed
    exactly); the trials left over go one each to the conditions with the largest remainders,
    the earlier condition first on a tie (Hamilton's method).
    """
    exact = [Fraction(repr(p)) for p in probabilities]
    quotas = [total * p / sum(exact) for p in exact]
    counts = [math.floor(q) for q in quotas]
    left = total - sum(counts)
    ranked = sorted(range(len(quotas)), key=lambda i: -(quotas[i] - counts[i]))  # stable
    for i in ranked[:left]:
        counts[i] += 1
    return counts
