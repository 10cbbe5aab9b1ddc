"""Each spiking population's mean firing rate in a window of every trial (Hz per unit).

A spiking network (``[model] neurons = "spiking"``, docs/spiking.md) records each population's
filtered rate as a time series (``levels/<level>/rate_<role>_<sign>``); an experiment reports
a number per condition: the spikes counted in a window of the trial, over the neurons and the
window's length. This readout counts them in Brian2 (a counter per unit and sign, fed by a
synapse from every neuron of the pool, open from ``start`` to ``stop`` ms after the trial's
start), so the number is the count itself, not a sample of the filtered rate, and its
Poisson error is sqrt(count) / (N T).

``[readouts.spike_rates]`` switches it on: ``window_ms = [start, stop]`` (default the whole
trial; a trial shorter than ``stop`` counts to its end). Columns, per level and population
(``error``, ``belief``, ``activation``; ``positive`` or ``negative``):
``rate_<role>_<sign>/<level>``, one rate per unit of the level (Hz; NaN where the trial ends
before ``start``).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np

from sim.readouts import Readout
from sim.readouts.erp import parse_window

SIGNS = ("positive", "negative")
ROLES = ("error", "belief", "activation")
COUNTER = "count : 1\nopened : second (shared)\nclosed : second (shared)\n"
COUNT = "count_post += int(t >= opened_post and t < closed_post)"


@dataclass(frozen=True)
class Settings:
    window_ms: tuple[float, float] | None


class Counters:
    """One counter group per pool (its units' positive counters, then the negative ones) and
    the window of the trial now running."""

    def __init__(self, simulation: Any, settings: Settings) -> None:
        from brian2 import NeuronGroup, Synapses, second

        from circuits.spiking.network import wire

        self.second = second
        self.clock = simulation.clock
        self.neurons = simulation.model.spiking.neurons_per_unit
        self.start_s, self.stop_s = ((0.0, math.inf) if settings.window_ms is None else
                                     (settings.window_ms[0] * 1e-3, settings.window_ms[1] * 1e-3))
        self.pools = simulation.network.pools
        self.groups, self.objects = [], []
        for pool in self.pools:
            name = pool.group.name
            group = NeuronGroup(2 * pool.units, COUNTER, clock=self.clock,
                                name=f"spike_rates_{name}")
            feed = Synapses(pool.group, group, on_pre=COUNT, clock=self.clock,
                            name=f"spike_rates_feed_{name}")
            neurons = np.arange(2 * pool.units * self.neurons)
            wire(feed, neurons, neurons // self.neurons)  # a counter per unit and sign
            self.groups.append(group)
            self.objects += [group, feed]
        self.open(float(self.clock.t_[:]))

    def open(self, trial_start_s: float) -> None:
        """Count from ``start`` to ``stop`` after ``trial_start_s`` (half a step early: the
        steps' times are sums of dt)."""
        half = 0.5 * float(self.clock.dt_)
        for group in self.groups:
            group.count = 0.0
            group.opened = (trial_start_s + self.start_s - half) * self.second
            group.closed = (min(trial_start_s + self.stop_s, 1e9) - half) * self.second

    def rates(self, duration_s: float) -> dict[str, np.ndarray]:
        """The trial's columns (Hz per unit); then the next trial's window opens now."""
        length = min(self.stop_s, duration_s) - self.start_s
        row = {}
        for pool, group in zip(self.pools, self.groups, strict=True):
            counts = np.asarray(group.count[:], dtype=float).reshape(2, pool.units)
            for sign, count in zip(SIGNS, counts, strict=True):
                row[f"rate_{pool.role}_{sign}/{pool.level}"] = (
                    count / (self.neurons * length) if length > 0
                    else np.full(pool.units, math.nan))
        self.open(float(self.clock.t_[:]))
        return row


class SpikeRates(Readout):
    name = "spike_rates"
    family = "hierarchical"
    takes_settings = True
    units: ClassVar[dict[str, str]] = {f"rate_{role}_{sign}": "Hz" for role in ROLES
                                       for sign in SIGNS}
    nan_means: ClassVar[dict[str, str]] = {
        f"rate_{role}_{sign}/": "the trial ends before window_ms's start"
        for role in ROLES for sign in SIGNS}

    def parse(self, fields: Any, model: Any) -> Settings:
        if model.neurons != "spiking":
            raise fields.source.error(fields.path, "counts spikes: expected model.neurons = "
                                                   "\"spiking\" (docs/spiking.md)")
        window = parse_window(fields)
        fields.close()
        return Settings(window)

    def describe(self, settings: Settings) -> dict:
        return {} if settings.window_ms is None else {"window_ms": list(settings.window_ms)}

    def objects(self, simulation: Any, settings: Settings) -> list:
        counters = simulation.readout_state[self.name] = Counters(simulation, settings)
        return counters.objects

    def row(self, simulation: Any, trial: Any) -> dict[str, Any]:
        counters: Counters = simulation.readout_state[self.name]
        return counters.rates(trial.duration_ms * 1e-3)


READOUT = SpikeRates()
