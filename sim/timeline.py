"""Values that step within a trial (a precision schedule): what the scenario gives and how it
is read. Both model families use it: a hierarchical level's precision, a discrete modality's."""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from sim.validation import Fields, describe, to_vector


def first_step_at(time_ms: float, dt_ms: float) -> int:
    """The first step s (from 0) whose time s * dt_ms, as computed in floating point, is at or
    after ``time_ms``: where a change scheduled at that time takes effect (a stimulus's
    breakpoint, a precision schedule's step), so that a time between two steps acts from the
    later one and never before it is due."""
    step = max(0, math.ceil(time_ms / dt_ms))
    while step > 0 and (step - 1) * dt_ms >= time_ms:
        step -= 1
    while step * dt_ms < time_ms:
        step += 1
    return step


@dataclass(frozen=True)
class Schedule:
    """Piecewise-constant values within a trial: ``values[i]`` holds from ``times_ms[i]`` (the
    first is 0) until the next time."""

    times_ms: np.ndarray  # (k,), ascending, from 0
    values: np.ndarray  # (k, n)

    def at(self, t_ms: float) -> np.ndarray:
        return self.values[int(np.searchsorted(self.times_ms, t_ms, side="right")) - 1]

    def describe(self) -> dict:
        return {"times_ms": self.times_ms.tolist(), "values": self.values.tolist()}



def parse_schedule(fields: Fields, size: int, duration_ms: float) -> Schedule:
    """``{ times_ms = [0, ...], values = [...] }``: a precision that steps within the trial
    (each value a positive number, or one per unit when ``size`` > 1; the first time 0, all
    before the trial's end)."""
    raw_times = fields.raw("times_ms")
    if not isinstance(raw_times, list) or not raw_times:
        raise fields.error("times_ms", f"expected a list of times in ms, got "
                                       f"{describe(raw_times)}")
    times = to_vector(raw_times, len(raw_times), lambda msg: fields.error("times_ms", msg),
                      minimum=0.0)
    if times[0] != 0.0 or np.any(np.diff(times) <= 0) or times[-1] >= duration_ms:
        raise fields.error("times_ms", f"expected increasing times from 0 and before the "
                                       f"trial's end ({duration_ms:g} ms), got "
                                       f"{times.tolist()}")
    raw_values = fields.raw("values")
    if not isinstance(raw_values, list) or len(raw_values) != len(times):
        raise fields.error("values", f"expected a list of {len(times)} precisions, one per time "
                                     f"in times_ms, got {describe(raw_values)}")
    values = np.stack([to_vector(value, size, lambda msg, i=i: fields.error(f"values[{i}]", msg),
                                 positive=True) for i, value in enumerate(raw_values)])
    fields.close()
    return Schedule(times, values)
