"""Where a serial protocol's trials, samples and per-step flags fall, in steps of the one run.

The compiled program runs every trial in one ``Network.run`` (as ``sim.trial_sequence`` does on
the runtime device) and switches trials inside compiled code, so what the runtime decides in
Python at each step is decided here, ahead, with the same arithmetic: which step starts which
trial, which steps the recorder samples (its countdown runs on across trials: every
``every_steps``-th step from step 0), and the network time of a step as Brian2's clock holds it
(``timestep * dt``), so that readouts computed from it after the run equal the runtime's bit for
bit.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import reduce

import numpy as np


@dataclass(frozen=True)
class Timeline:
    """``first_steps[k]``: the step trial k (running order) starts at; ``total_steps``."""

    first_steps: np.ndarray
    total_steps: int
    every_steps: int
    dt_s: float  # Brian2's clock dt (s), as its clock holds it

    @classmethod
    def of(cls, scenario, dt_s: float) -> Timeline:
        steps = [scenario.steps(trial.duration_ms) for trial in scenario.trials]
        first = np.concatenate([[0], np.cumsum(steps)[:-1]]).astype(np.int64)
        return cls(first, int(sum(steps)), scenario.record.every_steps, dt_s)

    @property
    def trials(self) -> int:
        return len(self.first_steps)

    def end_step(self, position: int) -> int:
        """The step after trial ``position``'s last (the next trial's first)."""
        return (int(self.first_steps[position + 1]) if position + 1 < self.trials
                else self.total_steps)

    def time(self, step: int | np.ndarray) -> float | np.ndarray:
        """The network time at the start of ``step`` (s), as the runtime clock computes it."""
        return step * self.dt_s

    @property
    def sample_steps(self) -> np.ndarray:
        return np.arange(0, self.total_steps, self.every_steps, dtype=np.int64)

    @property
    def boundary_every(self) -> int:
        """Every how many steps a monitor must look to see every trial boundary."""
        return int(reduce(math.gcd, [int(s) for s in self.first_steps[1:]], self.total_steps))

    def trial_of_step(self) -> np.ndarray:
        """The running position of the trial each step belongs to (total_steps,)."""
        marks = np.zeros(self.total_steps, dtype=np.int64)
        marks[self.first_steps[1:]] = 1
        return np.cumsum(marks)

    def trial_first_step(self) -> np.ndarray:
        """The first step of the trial each step belongs to (total_steps,): a step's time
        within its trial is ``time(step) - time(trial_first_step)``, as the runtime's
        ``clock_time() - t_start``."""
        return self.first_steps[self.trial_of_step()]

    def starts(self) -> np.ndarray:
        """1.0 at each trial's first step, else 0.0 (total_steps,)."""
        flags = np.zeros(self.total_steps)
        flags[self.first_steps] = 1.0
        return flags
