"""Sensory input x(t) for continuous models: constant, steps, ramps and schedules, plus noise.

Kinds (``stimulus = { kind = ..., ... }`` in a trial; times in ms from the trial's start):

- ``constant``: ``value`` (a number or one per input unit) held for the trial.
- ``steps``: ``times_ms`` (starting at 0) and ``values``: piecewise constant.
- ``ramp``: linear from ``start`` to ``stop`` over the trial.
- ``schedule``: ``times_ms`` and ``values``, linearly interpolated between them (held outside).
- ``bars``: Foldiak's (1990) bars, drawn anew for every trial and held for it: on a ``size`` x
  ``size`` grid (the input level, row-major) each of the 2 ``size`` bars (rows, then columns) is
  present with ``probability`` (default 1/8), independently; a pixel is ``value`` (default 1)
  where any present bar covers it (a superposition by OR, not a sum), else 0. The draw comes
  from the seeded stream ``[seed, 6, trial index]`` (``sim.protocol``), so a run repeats.

Instead of input values, ``constant`` and ``steps`` may give ``cause`` / ``causes``: top-level
causes from which the model's own generative mapping produces the input pattern.

- ``linear_gaussian``: data from a known linear generative model, the world's rather than the
  network's: ``weights`` (W_true, n_inputs x k, a list of rows), ``cause_std`` (sigma_v, one
  or k numbers, default 1) and ``sample_noise_std`` (sigma_n, one or n_inputs numbers,
  default 0): each trial draws v ~ N(0, diag sigma_v^2) and holds x = W_true v + sigma_n n,
  n ~ N(0, I), for the whole trial, from the seeded stream ``[seed, 6, trial]``. The learning
  curves compare learned weights with W_true (``sim.readouts.learning_curve``).

``noise_std`` adds Gaussian noise, redrawn every step, from the scenario's seeded generator;
``trial_covariance`` (any kind) adds a Gaussian offset drawn once per trial and held for the
whole trial (from the same stream ``[seed, 6, trial index]``, after a drawn kind's values): a
variance (every unit, independent), one per unit, or an n x n covariance matrix (symmetric
positive semi-definite).
A schedule's ``times_ms`` lie within the trial (steps after its end are never reached);
``noise_std`` is at most ``MAX_NOISE_STD``.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from typing import Any

import numpy as np

from sim.timeline import first_step_at
from sim.validation import Fields, describe, to_matrix, to_vector

KINDS = ("constant", "steps", "ramp", "schedule", "bars", "linear_gaussian")
DRAWN_STREAM = 6  # the random stream of a trial's drawn input: [seed, 6, trial index]
MAX_NOISE_STD = 1e6  # far beyond any meaningful input; larger only overflows (free energy ~ x^2)


@dataclass(frozen=True)
class LinearGaussian:
    """x = W v + sigma_n n, v ~ N(0, diag sigma_v^2), n ~ N(0, I): drawn once per trial."""

    weights: np.ndarray  # W_true (n_inputs, k)
    cause_std: np.ndarray  # (k,)
    sample_noise_std: np.ndarray  # (n_inputs,)

    def draw(self, rng: np.random.Generator) -> np.ndarray:
        causes = self.cause_std * rng.standard_normal(self.weights.shape[1])
        noise = self.sample_noise_std * rng.standard_normal(self.weights.shape[0])
        return self.weights @ causes + noise

    def describe(self) -> str:
        n, k = self.weights.shape
        return f"linear_gaussian ({n} x {k} weights, drawn per trial)"


@dataclass
class Stimulus:
    """Deterministic part: breakpoints and values; ``interpolate`` chooses steps or lines.
    ``generator``: what draws each trial's input (``for_trial``): bars or a linear-Gaussian
    model."""

    times_ms: np.ndarray  # (k,), ascending, first 0
    values: np.ndarray  # (k, n)
    interpolate: bool
    noise_std: np.ndarray  # (n,)
    generator: Bars | LinearGaussian | None = None  # values drawn anew for each trial
    trial_factor: np.ndarray | None = None  # (n, n), F F' = trial_covariance; None: no offset

    @property
    def noisy(self) -> bool:
        """Noise is drawn at every step (``noise_std``)."""
        return bool(np.any(self.noise_std))

    @property
    def varies(self) -> bool:
        """The input changes within a trial (breakpoints or noise; a drawn one is fixed)."""
        return len(self.times_ms) > 1 or self.noisy

    @property
    def is_constant(self) -> bool:
        """The same input at every step, known before the run (not drawn per trial)."""
        return self.generator is None and self.trial_factor is None and not self.varies

    def for_trial(self, rng: np.random.Generator) -> Stimulus:
        """The stimulus one trial sees: a drawn kind's values drawn from ``rng``, then the
        trial's offset from N(0, trial_covariance) added to every breakpoint; else itself."""
        if self.generator is None and self.trial_factor is None:
            return self
        values = (self.values if self.generator is None
                  else self.generator.draw(rng)[np.newaxis, :])
        if self.trial_factor is not None:
            values = values + self.trial_factor @ rng.standard_normal(len(self.trial_factor))
        return replace(self, values=values, generator=None, trial_factor=None)

    def segment_starts(self, steps: int, dt_ms: float) -> list[tuple[int, int]]:
        """(first step, segment) of each segment that steps 0..steps-1 (time s dt_ms) enter,
        in order, segment 0 at step 0 (segment k from ``first_step_at`` its breakpoint): at
        step s the input is ``segment(k)``'s affine value for the last k started. A line's
        segment k lies between breakpoints k and k + 1 (held outside them, as ``numpy.interp``
        does); a step's segment k holds value k (from breakpoint k on, the last breakpoint at
        or before t)."""
        last = len(self.times_ms) - (2 if self.interpolate else 1)
        starts = [(0, 0)]
        for k in range(1, last + 1):
            step = first_step_at(float(self.times_ms[k]), dt_ms)
            if step >= steps:
                break
            starts.append((step, k))
        return starts

    def segment(self, k: int) -> tuple[np.ndarray, np.ndarray, float, float]:
        """Segment k's (base, delta, t0, span): within it x(t) = base + fraction delta with
        fraction = clip((t - t0) / span, 0, 1); delta is zero where the input is held (steps,
        a constant)."""
        if self.interpolate and len(self.times_ms) > 1:
            times, values = self.times_ms, self.values
            return (values[k], values[k + 1] - values[k], float(times[k]),
                    float(times[k + 1] - times[k]))
        return self.values[k], np.zeros(self.values.shape[1]), 0.0, 1.0

    def describe(self) -> str:
        if self.generator is not None:
            return self.generator.describe()
        kind = ("schedule" if self.interpolate else
                "constant" if len(self.times_ms) == 1 else "steps")
        noise = f", noise_std<= {self.noise_std.max():g}" if self.noisy else ""
        drawn = ", drawn per trial" if self.trial_factor is not None else ""
        return f"{kind} ({len(self.times_ms)} breakpoint(s){noise}{drawn})"


def noisy_input(trials: Sequence[Any]) -> bool:
    """Whether any of these trials draws input noise at every step: a compiled run then reads
    every step's input from a table (``sim.families.hierarchical.compiled.stimulus``) and
    ``sim.compiled.choice.tables_mb`` counts it; else the program computes the input from
    each segment's rows."""
    return any(trial.settings.stimulus.noisy for trial in trials)


@dataclass(frozen=True)
class Bars:
    """Foldiak's bars on a ``size`` x ``size`` grid: bar k < size is row k, bar size + k
    column k; each present with ``probability``; pixels ``value`` where any bar covers them."""

    size: int
    probability: float
    value: float

    def draw(self, rng: np.random.Generator) -> np.ndarray:
        present = rng.random(2 * self.size) < self.probability
        image = present[:self.size, np.newaxis] | present[np.newaxis, self.size:]
        return self.value * image.ravel().astype(float)

    def describe(self) -> str:
        return f"bars ({self.size}x{self.size}, p = {self.probability:g}, drawn per trial)"


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

    if kind == "bars":
        size = fields.number("size", minimum=1, integer=True)
        if size * size != n_inputs:
            raise fields.error("size", f"{size} x {size} = {size * size} pixels, but the input "
                                       f"level has {n_inputs} units; expected a size whose "
                                       "square is the input level's size")
        bars = Bars(size, float(fields.number("probability", default=0.125, minimum=0.0,
                                              maximum=1.0)),
                    float(fields.number("value", default=1.0)))
        stimulus = Stimulus(np.zeros(1), np.zeros((1, n_inputs)), False, noise, bars)
    elif kind == "constant":
        stimulus = Stimulus(np.zeros(1), patterns("value", "cause"), False, noise)
    elif kind == "linear_gaussian":
        raw = fields.raw("weights")
        causes = len(raw[0]) if isinstance(raw, list) and raw and isinstance(raw[0], list) else 1
        weights = to_matrix(raw, (n_inputs, max(causes, 1)),
                            lambda msg: fields.error("weights", msg))
        source = LinearGaussian(weights, fields.vector("cause_std", weights.shape[1], default=1.0,
                                                       minimum=0.0),
                                fields.vector("sample_noise_std", n_inputs, default=0.0,
                                              minimum=0.0))
        stimulus = Stimulus(np.zeros(1), np.zeros((1, n_inputs)), False, noise, source)
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
