"""A step's sensory input for every lane whose input varies within its trial, all at once.

Within a segment of its breakpoints a lane's noiseless input is affine in time (``Stimulus.
segment``): x(t) = base + fraction(t) delta, fraction = clip((t - t0) / span, 0, 1), delta = 0
where the input is held. The lanes' bases and deltas sit in (lanes, n) rows, so one step of all
of them is two operations, fraction * delta + base, written into the sensory units (rounded
once to the run's float, as a copy of the float64 value would be). A lane's rows change at the
steps where it enters a new segment (``Stimulus.segment_starts``). Noise comes from each
lane's stream ``[seed, 2, trial]`` in blocks, and is added after the base, so a lane's input
is the number its trial gets when it runs alone, in every bit. A batch whose lanes all vary,
none noisy, runs the two operations as one compiled pass with NumPy's roundings
(``circuits.lane_elementwise.affine_call``: 19 -> 7 us a step at 16 lanes of 1000 inputs).

This replaced blocks of whole input computed ahead (16 MB for all lanes, 131 steps a refill at
16 lanes of 1000 inputs): measured on one core, float64, 1000-500-100, they pushed the weights
out of the cache and the products took 545 against 320 us a step; smaller blocks paid their
refills, lane by lane, at every few steps.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from circuits import lane_elementwise

FRACTION_BLOCK = 256  # steps whose fractions (time along the segments) are computed at once
NOISE_BLOCK = 1024  # steps of a lane's noise drawn at once, at most
NOISE_BLOCKS_BYTES = 4 << 20  # every noisy lane's block together, at most


class Inputs:
    """Delivers the varying lanes' input at each step into ``rows`` (the sensory units' (B, n)
    view, a row per copy). ``start`` a batch's lanes (their ``trial_steps``, ``stimulus``
    and ``noise`` stream set: ``Lane.start``, ``Lane.start_stimulus``), then ``deliver`` once
    a step."""

    def __init__(self, rows: np.ndarray, dt_ms: float) -> None:
        self.rows = rows
        self.dt_ms = dt_ms
        self.lanes: list[Any] = []  # the varying ones

    def start(self, lanes: Sequence[Any]) -> None:
        """Every lane's input at its trial's start into its row; the varying lanes' segment 0
        and their first noise block."""
        for copy, lane in enumerate(lanes):
            if not lane.stimulus.varies:  # one breakpoint, held
                self.rows[copy] = lane.stimulus.segment(0)[0]
        copies = [copy for copy, lane in enumerate(lanes) if lane.stimulus.varies]
        self.lanes = [lanes[copy] for copy in copies]
        if not self.lanes:
            return
        self.copies = slice(None) if len(copies) == len(lanes) else np.array(copies)
        shape = (len(copies), self.rows.shape[1])
        self.base, self.delta, self.work = np.empty(shape), np.empty(shape), np.empty(shape)
        self.t0, self.span = np.empty((len(copies), 1)), np.empty((len(copies), 1))
        # each lane's segments to come, the next last; the step the first of them starts
        self.starts = [lane.stimulus.segment_starts(lane.trial_steps, self.dt_ms)[::-1]
                       for lane in self.lanes]
        self.step = self.fractions_to = 0
        self.next_start = 0
        # a batch's noiseless lanes, all varying: one compiled pass, NumPy's bits
        # (``circuits.lane_elementwise.affine_call``); a serial run keeps NumPy's operations
        self.affine = (lane_elementwise.affine_call(self.delta, self.base, self.rows)
                       if len(lanes) > 1 and len(copies) == len(lanes)
                       and not any(lane.stimulus.noisy for lane in self.lanes) else None)
        noisy = [index for index, lane in enumerate(self.lanes)
                 if lane.stimulus.noisy]
        self.noisy = (None if not noisy else slice(None) if len(noisy) == len(self.lanes)
                      else np.array(noisy))
        if noisy:
            size = 8 * shape[1] * len(noisy)
            steps = max(1, min(NOISE_BLOCK, NOISE_BLOCKS_BYTES // size))
            self.noise = np.empty((len(noisy), steps, shape[1]))
            self.noise_std = [lane.stimulus.noise_std for lane in self.lanes]
            self.noise_from = self.noise_to = 0  # the steps the block holds
        self.deliver()
        self.step = 0  # the first step delivers x(0) again, as the trial's own first input

    def deliver(self) -> None:
        if not self.lanes:  # this batch's input is constant (another batch's is not)
            return
        step = self.step
        if step >= self.fractions_to:
            self._fractions()
        if self.affine is not None:
            self.affine(self.fractions[step - self.fractions_from])
            self.step += 1
            return
        work = np.multiply(self.fractions[step - self.fractions_from], self.delta, out=self.work)
        if self.noisy is None and isinstance(self.copies, slice):
            np.add(work, self.base, out=self.rows)
        else:
            work += self.base
            if self.noisy is not None:
                if step >= self.noise_to:
                    self._draw_noise()
                noise = self.noise[:, step - self.noise_from]
                if isinstance(self.noisy, slice):
                    work += noise
                else:
                    work[self.noisy] += noise
            self.rows[self.copies] = work
        self.step += 1

    def ahead(self, out: np.ndarray) -> None:
        """The next ``len(out)`` steps' input of a serial run's one lane into ``out`` (steps,
        n), as ``deliver`` would write them step by step, in every bit (the same operations
        on the same numbers, a stretch of steps at a time): a compiled run's stimulus
        (``sim.families.hierarchical.compiled``)."""
        if not self.lanes:  # held: the value ``start`` wrote
            out[...] = self.rows[0]
            return
        for filled, fractions, noise, _ in self._stretches(len(out)):
            work = np.multiply(fractions, self.delta)
            work += self.base
            if noise is not None:
                work += noise
            out[filled:filled + len(work)] = work[:, 0]

    def affine_ahead(self, count: int) -> tuple[np.ndarray, np.ndarray, list, list]:
        """The next ``count`` steps of a serial run's one noiseless lane as ``ahead`` computes
        them, but not multiplied out: (fraction of each step, the index of its segment,
        the segments' bases, their deltas), x = fraction * delta + base. A compiled program
        computes x from these (a few rows, not a row a step; within 1e-12 of ``ahead``'s,
        not bitwise: compiled under -ffast-math, fraction * delta + base may be one fused
        multiply-add, one rounding where NumPy makes two). A noisy lane
        (``stimulus.noisy_input``) has no such form: ``ahead``."""
        fractions, which = np.zeros(count), np.zeros(count, dtype=int)
        if not self.lanes:  # held
            return fractions, which, [self.rows[0].copy()], [np.zeros_like(self.rows[0])]
        if self.noisy is not None:
            raise ValueError("Inputs.affine_ahead: a noisy lane (its input needs ahead)")
        bases: list[np.ndarray] = []
        deltas: list[np.ndarray] = []
        for filled, stretch, _, entered in self._stretches(count):
            if entered or not bases:  # a row a segment, whatever its values (a shape)
                bases.append(self.base[0].copy())
                deltas.append(self.delta[0].copy())
            fractions[filled:filled + len(stretch)] = stretch[:, 0, 0]
            which[filled:filled + len(stretch)] = len(bases) - 1
        return fractions, which, bases, deltas

    def _stretches(self, count: int):
        """The next ``count`` steps of a serial run's one lane, a stretch of steps at a time
        within one segment: (steps filled before it, its fractions (steps, 1, 1), its noise
        (steps, 1, n) or None, whether it starts a segment); ``base`` and ``delta`` hold its
        segment's."""
        if len(self.lanes) != 1 or not isinstance(self.copies, slice):
            raise ValueError("Inputs.ahead: one lane of a serial run only")
        filled = 0
        while filled < count:
            entered = self.step == self.next_start
            if self.step >= self.fractions_to:
                self._fractions()
            end = min(self.fractions_to, self.step + count - filled)
            noise = None
            if self.noisy is not None:
                if self.step >= self.noise_to:
                    self._draw_noise()
                end = min(end, self.noise_to)
                noise = self.noise[:, self.step - self.noise_from:end - self.noise_from
                                   ].transpose(1, 0, 2)
            yield filled, self.fractions[self.step - self.fractions_from:
                                         end - self.fractions_from], noise, entered
            filled += end - self.step
            self.step = end

    def _fractions(self) -> None:
        """Every lane's fraction for the next steps, up to where a lane enters a segment."""
        if self.step == self.next_start:
            self._enter_segments()
        end = self.step + FRACTION_BLOCK
        if self.next_start >= 0:
            end = min(end, self.next_start)
        t_ms = (self.step + np.arange(end - self.step))[:, np.newaxis, np.newaxis] * self.dt_ms
        self.fractions = np.clip((t_ms - self.t0) / self.span, 0.0, 1.0)
        self.fractions_from, self.fractions_to = self.step, end

    def _enter_segments(self) -> None:
        """The segments that start at this step, lane by lane (the last one, where several
        breakpoints fall within one step)."""
        for index, (lane, starts) in enumerate(zip(self.lanes, self.starts, strict=True)):
            while starts and starts[-1][0] == self.step:
                base, delta, t0, span = lane.stimulus.segment(starts.pop()[1])
                self.base[index], self.delta[index] = base, delta
                self.t0[index], self.span[index] = t0, span
        self.next_start = min((starts[-1][0] for starts in self.starts if starts), default=-1)

    def _draw_noise(self) -> None:
        """The noisy lanes' noise for the next steps, from each lane's own stream."""
        noisy = (range(len(self.lanes)) if isinstance(self.noisy, slice) else self.noisy)
        count = max(1, min(len(self.noise[0]), self.lanes[0].trial_steps - self.step))
        for block, index in zip(self.noise, noisy, strict=True):
            rows = self.lanes[index].noise.standard_normal(out=block[:count])
            rows *= self.noise_std[index]
        self.noise_from, self.noise_to = self.step, self.step + count
