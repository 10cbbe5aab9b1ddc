"""A vector's value at each step, kept as rows in a block: what a readout that watches every
step reads afterwards, a block at a time, instead of a Python call of its own each step
(``sim.readouts.decision_watch``)."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np


class StepRows:
    """Up to ``rows`` rows of ``width`` values, one a step (``keep``); ``full()`` is called
    when the block is full, and must ``take`` them before the next step."""

    def __init__(self, rows: int, width: int, full: Callable[[], None] | None = None) -> None:
        self.rows = np.empty((rows, width))
        self.kept = 0
        self.full = full

    def keep(self, values: np.ndarray) -> None:
        self.rows[self.kept] = values
        self.kept += 1
        if self.kept == len(self.rows) and self.full is not None:
            self.full()

    def take(self) -> np.ndarray:
        """The rows kept since the last take, in order (a view, valid until the next
        ``keep``); the block emptied."""
        kept = self.rows[:self.kept]
        self.kept = 0
        return kept
