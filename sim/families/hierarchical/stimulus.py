"""Sensory input x(t) for continuous models: constant, steps, ramps and schedules, plus noise.

Kinds (``stimulus = { kind = ..., ... }`` in a trial; times in ms from the trial's start):

- ``constant``: ``value`` (a number or one per input unit) held for the trial.
- ``steps``: ``times_ms`` (starting at 0) and ``values``: piecewise constant.
- ``ramp``: linear from ``start`` to ``stop`` over the trial.
- ``schedule``: ``times_ms`` and ``values``, linearly interpolated between them (held outside).

Instead of input values, ``constant`` and ``steps`` may give ``cause`` / ``causes``: top-level
causes from which the model's own generative mapping produces the input pattern.
``noise_std`` adds Gaussian noise, redrawn every step, from the scenario's seeded generator;
``trial_covariance`` adds a Gaussian offset drawn once per trial and held for the whole trial
(its own stream, ``[seed, 6, trial index]``): a variance (every unit, independent), one per
unit, or an n x n covariance matrix (symmetric positive semi-definite).
A schedule's ``times_ms`` lie within the trial (steps after its end are never reached);
``noise_std`` is at most ``MAX_NOISE_STD``.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from sim.validation import Fields, describe, to_matrix, to_vector

KINDS = ("constant", "steps", "ramp", "schedule")
MAX_NOISE_STD = 1e6  # far beyond any meaningful input; larger only overflows (free energy ~ x^2)


@dataclass
class Stimulus:
    """Deterministic part: breakpoints and values; ``interpolate`` chooses steps or lines."""

    times_ms: np.ndarray  # (k,), ascending, first 0
    values: np.ndarray  # (k, n)
    interpolate: bool
    noise_std: np.ndarray  # (n,)
    trial_factor: np.ndarray | None = None  # (n, n), F F' = trial_covariance; None: no offset

    @property
    def is_constant(self) -> bool:
        return len(self.times_ms) == 1 and not np.any(self.noise_std)

    def at(self, t_ms: np.ndarray) -> np.ndarray:
        """The noiseless input at trial times ``t_ms`` (shape (len(t_ms), n))."""
        if self.interpolate:
            if len(self.times_ms) == 1:
                return np.repeat(self.values, len(t_ms), axis=0)
            # np.interp for every column at once (held outside the breakpoints)
            times = self.times_ms
            left = np.clip(np.searchsorted(times, t_ms, side="right") - 1, 0, len(times) - 2)
            span = times[left + 1] - times[left]
            fraction = np.clip((t_ms - times[left]) / span, 0.0, 1.0)[:, np.newaxis]
            return self.values[left] + fraction * (self.values[left + 1] - self.values[left])
        index = np.searchsorted(self.times_ms, t_ms, side="right") - 1
        return self.values[np.clip(index, 0, None)]

    def trial_offset(self, rng: np.random.Generator) -> np.ndarray:
        """The offset held for one trial, drawn from N(0, trial_covariance); 0 without one."""
        if self.trial_factor is None:
            return np.zeros(self.values.shape[1])
        return self.trial_factor @ rng.standard_normal(len(self.trial_factor))

    def describe(self) -> str:
        kind = ("schedule" if self.interpolate else
                "constant" if len(self.times_ms) == 1 else "steps")
        noise = f", noise_std<= {self.noise_std.max():g}" if np.any(self.noise_std) else ""
        drawn = ", drawn per trial" if self.trial_factor is not None else ""
        return f"{kind} ({len(self.times_ms)} breakpoint(s){noise}{drawn})"


def parse_stimulus(
    fields: Fields,
    n_inputs: int,
    duration_ms: float,
    generate: Callable[[np.ndarray], np.ndarray] | None,
    n_causes: int,
) -> Stimulus:
    """Read one trial's ``stimulus`` table."""
    kind = fields.text("kind", choices=KINDS)
    noise = fields.vector("noise_std", n_inputs, default=0.0, minimum=0.0)
    if np.any(noise > MAX_NOISE_STD):
        raise fields.error("noise_std", f"{float(noise.max()):g} is over the limit of "
                                        f"{MAX_NOISE_STD:g}; expected a standard deviation "
                                        f"in 0..{MAX_NOISE_STD:g}")

    def pattern(value, key: str) -> np.ndarray:
        if key.startswith("cause"):
            if generate is None:
                raise fields.error(key, "this model cannot generate inputs from causes")
            with np.errstate(all="ignore"):
                generated = generate(to_vector(value, n_causes,
                                               lambda msg: fields.error(key, msg)))
            if not np.all(np.isfinite(generated)):
                raise fields.error(key, f"the input the model generates from {describe(value)} "
                                        "is not finite")
            return generated
        return to_vector(value, n_inputs, lambda msg: fields.error(key, msg))

    def patterns(values_key: str, causes_key: str, count: int | None = None) -> np.ndarray:
        has_values, has_causes = fields.has(values_key), fields.has(causes_key)
        if has_values == has_causes:
            raise fields.error(values_key, f"give exactly one of {values_key!r} or {causes_key!r}")
        key = values_key if has_values else causes_key
        raw = fields.raw(key)
        if count is None:
            return pattern(raw, key)[np.newaxis, :]
        if not isinstance(raw, list) or len(raw) != count:
            raise fields.error(key, f"expected a list of {count} entries, one per time in times_ms")
        return np.stack([pattern(item, key) for item in raw])

    if kind == "constant":
        stimulus = Stimulus(np.zeros(1), patterns("value", "cause"), False, noise)
    elif kind == "ramp":
        start = to_vector(fields.raw("start"), n_inputs, lambda msg: fields.error("start", msg))
        stop = to_vector(fields.raw("stop"), n_inputs, lambda msg: fields.error("stop", msg))
        stimulus = Stimulus(np.array([0.0, duration_ms]), np.stack([start, stop]), True, noise)
    else:
        times = fields.raw("times_ms")
        if (
            not isinstance(times, list)
            or not times
            or not all(isinstance(t, int | float) and not isinstance(t, bool)
                       and math.isfinite(t) for t in times)
            or times[0] != 0
            or any(later <= earlier for earlier, later in itertools.pairwise(times))
        ):
            raise fields.error("times_ms", f"expected increasing times in ms starting at 0, "
                                           f"got {describe(times)}")
        # a schedule's breakpoint past the end would silently change the values inside the
        # trial; a step past it is never reached (so a trial can be shortened with --set)
        late = [t for t in times if t > duration_ms]
        if kind == "schedule" and late:
            raise fields.error("times_ms", f"{late[0]:g} ms is after the trial's end "
                                           f"(duration_ms = {duration_ms:g}); a schedule "
                                           f"expects times in [0, {duration_ms:g}] ms")
        values = patterns("values", "causes", count=len(times))
        stimulus = Stimulus(np.asarray(times, dtype=float), values, kind == "schedule", noise)
    stimulus.trial_factor = parse_trial_covariance(fields, n_inputs)
    fields.close()
    return stimulus


def parse_trial_covariance(fields: Fields, n_inputs: int) -> np.ndarray | None:
    """``trial_covariance`` as a factor F with F F' = C (None when absent)."""
    raw = fields.raw("trial_covariance", default=None)
    if raw is None:
        return None
    fail = fields.error("trial_covariance", f"expected a variance, {n_inputs} variances or a "
                                            f"symmetric positive semi-definite {n_inputs} x "
                                            f"{n_inputs} matrix (a list of rows)")
    if isinstance(raw, list) and raw and all(isinstance(row, list) for row in raw):
        covariance = to_matrix(raw, (n_inputs, n_inputs), lambda msg: fields.error(
            "trial_covariance", msg))
    else:
        covariance = np.diag(fields.vector("trial_covariance", n_inputs, minimum=0.0))
    if not np.array_equal(covariance, covariance.T) or np.any(covariance > MAX_NOISE_STD**2):
        raise fail
    values, vectors = np.linalg.eigh(covariance)
    if values[0] < -1e-12 * max(1.0, float(values[-1])):
        raise fail
    return vectors * np.sqrt(np.clip(values, 0.0, None))
