r"""Orders of generated trials with a structure over time: spaced rare trials and trains.

Beside the plain seeded shuffle of ``sim.protocol``, a ``[protocol]`` with conditions may ask
for one of two sequences, the fixed and the roving oddball of mismatch-negativity experiments
(Garrido et al. 2009, Clin Neurophysiol 120:453):

- **spaced** (a condition gives ``min_gap = k``): the conditions with a ``min_gap`` are rare;
  each of their trials comes after at least k trials of the frequent conditions (those
  without one), counted from the sequence's start or from the rare trial before. The order is
  drawn uniformly among all such orders (``spaced_order``): the rare trials in a random order,
  the frequent ones in a random order, and the frequent trials left over once every gap has
  its k go into the R + 1 places around the R rare trials by a uniformly drawn composition
  (stars and bars). Each labelled valid order comes from exactly one such triple.
- **trains** (``[protocol] trains = [a, b]``): the trials come in trains of one condition, each
  train's length drawn uniformly from a..b, each train's condition drawn by the conditions'
  probabilities among those other than the previous train's (``train_sequence``); the last
  train is cut to make the ``[protocol] trials = N`` total.

Every trial of such a sequence knows its **repetition** (1 for a trial whose condition differs
from the trial before, else one more than that trial's: its place in the run of identical
trials it belongs to) and its **kind** (``kinds``): spaced, ``deviant`` for a rare trial and
``standard`` for a frequent one; trains, ``deviant`` for the first trial of every train after
the first (the stimulus changed: the old deviant becomes the new standard), ``standard`` for
the others, and ``first`` for the sequence's very first trial (no standard before it).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

SPACED, TRAINS = "spaced", "trains"
KINDS = ("standard", "deviant", "first")


def spaced_order(labels: Sequence[int], gaps: Sequence[int | None],
                 rng: np.random.Generator) -> list[int]:
    """A permutation of ``range(len(labels))`` (trial ``i`` of condition ``labels[i]``) in
    which each trial of a condition ``c`` with ``gaps[c] = k`` follows at least k trials of
    conditions without a gap since the start or the last such trial. Raises ValueError when
    the frequent trials are too few for the gaps."""
    rare = [i for i, label in enumerate(labels) if gaps[label] is not None]
    frequent = [i for i, label in enumerate(labels) if gaps[label] is None]
    rare = [rare[j] for j in rng.permutation(len(rare))]
    frequent = [frequent[j] for j in rng.permutation(len(frequent))]
    needed = [int(gaps[labels[i]]) for i in rare]
    spare = len(frequent) - sum(needed)
    if spare < 0:
        raise ValueError(f"{len(rare)} rare trials need {sum(needed)} frequent trials before "
                         f"them, and there are {len(frequent)}")
    # a uniform composition of ``spare`` into len(rare) + 1 parts: bars among spare + R places
    bars = np.sort(rng.choice(spare + len(rare), size=len(rare), replace=False))
    extra = np.diff(np.concatenate([[-1], bars, [spare + len(rare)]])) - 1
    order: list[int] = []
    taken = 0
    for place, trial in enumerate(rare):
        count = needed[place] + int(extra[place])
        order += [*frequent[taken:taken + count], trial]
        taken += count
    return order + frequent[taken:]


def train_sequence(probabilities: Sequence[float], total: int, lengths: tuple[int, int],
                   rng: np.random.Generator) -> list[int]:
    """``total`` condition indices in trains: each train's length uniform in ``lengths``
    (inclusive), its condition drawn by ``probabilities`` among the conditions other than the
    previous train's (renormalised); the last train cut to fit."""
    weights = np.asarray(probabilities, dtype=float)
    out: list[int] = []
    previous = None
    while len(out) < total:
        allowed = weights.copy()
        if previous is not None:
            allowed[previous] = 0.0
        condition = int(rng.choice(len(allowed), p=allowed / allowed.sum()))
        length = int(rng.integers(lengths[0], lengths[1] + 1))
        out += [condition] * min(length, total - len(out))
        previous = condition
    return out


def repetitions(labels: Sequence[object]) -> list[int]:
    """Each trial's place in its run of identical labels (1 where the label changes)."""
    out: list[int] = []
    for index, label in enumerate(labels):
        out.append(out[-1] + 1 if index and labels[index - 1] == label else 1)
    return out


def kinds(structure: str, rare: Sequence[bool], repetition: Sequence[int]) -> list[str]:
    """``standard`` / ``deviant`` (/ ``first``) of each trial of a ``spaced`` or ``trains``
    sequence (``rare``: whether a trial's condition has a ``min_gap``)."""
    if structure == SPACED:
        return ["deviant" if is_rare else "standard" for is_rare in rare]
    return ["first" if index == 0 else "deviant" if count == 1 else "standard"
            for index, count in enumerate(repetition)]
