r"""Simulated event-related potentials: each level's summed prediction-error activity per trial.

EEG records the summed field of many pyramidal cells, which predictive coding casts as the
superficial cells that report precision-weighted prediction errors (Garrido et al. 2009, Clin
Neurophysiol 120:453). The ERP of level l is the signed sum of its error units' rates,

.. math::

    \mathrm{ERP}_l(t_k) = \sum_i \varepsilon_{l,i}(t_k),
    \qquad \varepsilon_{l,i} = \Pi_{l,i}\,(s_{l,i} - p_{l,i})\ \text{(at its fixed point)},

every unit weighted alike (a lead field that sees each unit equally), sampled at
t_k = k Delta from each trial's start, k = 0, 1, ..., ceil(T / Delta) - 1, with Delta the
recorder's interval (``[record] every_ms``) and T the trial's duration: the same state a
recorded sample of ``levels/<l>/error`` shows at that time (after the error units with
instantaneous errors, before them with relaxing ones; ``circuits.schedule``), so where trials
last a multiple of Delta the ERP is the recorded errors summed over units. The sign is that of
signal minus prediction. The sampler is a Brian2 operation of its own: the ERP needs no
``error`` in ``[record] variables``.

``[readouts.erp]`` switches it on: ``levels`` (default every level, the input's included),
``window_ms = [start, stop]`` (default the whole trial), where each trial's peak is sought, and
``field``: ``signed`` (default, the sum above) or ``rectified``, sum_i |eps_{l,i}|: the field
of separate populations for positive and negative errors, each firing at a rate >= 0 and each
a dipole of the same orientation (as error neurons in cortex; Keller & Mrsic-Flogel 2018,
Neuron 100:424). With a signed code, a change up and a change down give fields of opposite
sign, which cancel in a mean over both (a roving oddball); rectified, both add.

Columns: ``erp_peak/<level>``, max_k |ERP_l(t_k)| over the samples in the window (NaN if none),
in the ERP's units, and ``erp_latency/<level>`` (ms from the trial's start), when it was
reached. Beside the table,
``/erp``: ``time`` (s from a trial's start), ``trials/<level>`` (trials x samples, NaN after a
shorter trial's end) and, where the trials form a sequence (``sim.sequence``: each has a kind),
``<kind>/<level>``, the mean over the trials of each kind present (``standard``, ``deviant``,
``first``; attribute ``count``), and ``mismatch/<level>`` = mean of the deviants - mean of the
standards, the mismatch wave (when both kinds occur). Each trace is declared as every recorded
variable is (``circuits.variables.ERP``: its label, symbol, role ``error`` and plot, in the
level's errors' units, ``units`` 1/level), so figures, ``pcsim show`` and the NWB export read
what it is from the file.
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np

from circuits import schedule
from circuits.variables import ERP as DECLARED_ERP
from circuits.variables import declaration_attrs
from sim.io.writer import write_array
from sim.readouts import Readout
from sim.sequence import KINDS

FIELDS = ("signed", "rectified")
BEYOND_KIND = "a sample after the end of every trial of the kind (shorter than the longest)"


@dataclass(frozen=True)
class Settings:
    levels: tuple[str, ...]
    window_ms: tuple[float, float] | None
    field: str = "signed"


class Sampler:
    """The run's ERP sampler: each level's summed error every ``every`` steps from the start
    of the trial, and the traces of the trials done."""

    def __init__(self, simulation: Any, settings: Settings) -> None:
        names = [level.name for level in simulation.model.levels]
        self.errors = [simulation.errors[names.index(name)].variables["error"].get_value()
                       for name in settings.levels]
        self.every = simulation.scenario.record.every_steps
        self.rectified = settings.field == "rectified"
        self.countdown = 1
        self.samples: list[list[float]] = []  # this trial's, each one value per level
        self.traces: list[np.ndarray] = []  # per trial done: samples x levels
        self.kinds: list[str | None] = []

    def sample(self) -> None:
        self.countdown -= 1
        if self.countdown:
            return
        self.countdown = self.every
        self.samples.append([float(np.sum(np.abs(error) if self.rectified else error))
                             for error in self.errors])

    def end_trial(self, kind: str | None) -> np.ndarray:
        """This trial's traces (samples x levels); the next trial samples from its start."""
        trace = np.array(self.samples, dtype=float).reshape(-1, len(self.errors))
        self.traces.append(trace)
        self.kinds.append(kind)
        self.samples, self.countdown = [], 1
        return trace


def parse_window(fields: Any) -> tuple[float, float] | None:
    """``window_ms = [start, stop]`` (ms from a trial's start, 0 <= start < stop), or None when
    absent (the whole trial); a readout's setting, one line when wrong."""
    window = fields.raw("window_ms", default=None)
    if window is None:
        return None
    if (not isinstance(window, list) or len(window) != 2
            or not all(isinstance(v, int | float) and not isinstance(v, bool)
                       and math.isfinite(v) for v in window)
            or not 0 <= window[0] < window[1]):
        raise fields.error("window_ms", f"got {window!r}, expected [start, stop] in ms "
                                        "from the trial's start, 0 <= start < stop")
    return float(window[0]), float(window[1])


def peak(trace: np.ndarray, times_ms: np.ndarray, window_ms: tuple[float, float] | None
         ) -> tuple[float, float]:
    """max |trace| over the samples within the window (inclusive), and its time (ms)."""
    inside = (np.ones(len(times_ms), dtype=bool) if window_ms is None else
              (times_ms >= window_ms[0] - 1e-9) & (times_ms <= window_ms[1] + 1e-9))
    if not inside.any():
        return math.nan, math.nan
    magnitude = np.abs(trace[inside])
    at = int(np.argmax(magnitude))
    return float(magnitude[at]), float(times_ms[inside][at])


def kind_means(traces: np.ndarray, kinds: list[str | None]) -> dict[str, tuple[np.ndarray, int]]:
    """The mean trace (over axis 0, ignoring NaN padding) and the count of each kind present,
    in ``KINDS`` order."""
    out = {}
    labels = np.array([kind or "" for kind in kinds])
    for kind in KINDS:
        chosen = traces[labels == kind]
        if len(chosen):
            with warnings.catch_warnings():  # a sample no trial of the kind reached: NaN
                warnings.simplefilter("ignore", RuntimeWarning)
                out[kind] = (np.nanmean(chosen, axis=0), len(chosen))
    return out


class ERP(Readout):
    name = "erp"
    family = "hierarchical"
    takes_settings = True
    units: ClassVar[dict[str, str]] = {"erp_latency": "ms"}  # the peaks: ``column_units``
    nan_means: ClassVar[dict[str, str]] = dict.fromkeys(
        ("erp_peak/", "erp_latency/"), "the trial has no ERP sample within window_ms")

    def parse(self, fields: Any, model: Any) -> Settings:
        names = tuple(level.name for level in model.levels)
        levels = fields.names("levels", default=names, choices=names)
        window = parse_window(fields)
        field = fields.text("field", default="signed", choices=FIELDS)
        fields.close()
        return Settings(levels, window, field)

    def describe(self, settings: Settings) -> dict:
        out: dict[str, Any] = {"levels": list(settings.levels), "field": settings.field}
        if settings.window_ms is not None:
            out["window_ms"] = list(settings.window_ms)
        return out

    def objects(self, simulation: Any, settings: Settings) -> list:
        from brian2 import NetworkOperation

        sampler = simulation.readout_state[self.name] = Sampler(simulation, settings)
        order = schedule.record_order(simulation.model.errors) + 1  # the recorder's state
        return [NetworkOperation(sampler.sample, when=schedule.SLOT, order=order,
                                 clock=simulation.clock, name="erp")]

    def compiled(self, simulation: Any, settings: Settings, context: Any) -> list:
        """The sampler in compiled code. Each level's summed error (``erp_total``: ``(summed)``
        synapses from its error units, updated at the runtime sampler's slot) is copied, at
        the k-th sample step of a trial (decided ahead, as ``Sampler.sample`` counts), into
        unit k of the level's row of ``erp_trace``; at a trial's end that group holds the
        trial's trace, which ``replayed`` hands to the sampler. The copy is a blend with a
        flag in {0, 1}: exact."""
        from brian2 import NeuronGroup, Synapses, TimedArray, linked_var

        from sim.compiled.trial_starts import blend

        timeline = context.timeline
        every = timeline.every_steps
        trial_steps = np.diff([*timeline.first_steps, timeline.total_steps])
        count = int(max(-(-trial_steps // every)))  # the longest trial's samples
        since_start = np.arange(timeline.total_steps) - timeline.trial_first_step()
        sample = np.where(since_start % every == 0, since_start // every, -1).astype(float)
        order = schedule.record_order(simulation.model.errors) + 1  # as ``objects``
        levels = len(settings.levels)
        totals = NeuronGroup(levels, "total : 1", clock=context.clock, name="erp_total")
        names = [level.name for level in simulation.model.levels]
        term = "abs(error_pre)" if settings.field == "rectified" else "error_pre"
        objects: list = [totals]
        for row, name in enumerate(settings.levels):
            errors = context.clone(simulation.errors[names.index(name)])
            summed = Synapses(errors, totals[row:row + 1], f"total_post = {term} : 1 (summed)",
                              clock=context.clock, name=f"erp_sum_{row}")
            summed.connect(True)  # every error unit of the level to its total
            schedule.summed_at(summed, order)
            objects.append(summed)
        trace = NeuronGroup(levels * count, "value : 1\nslot : 1 (constant)\n"
                            "total : 1 (linked)", clock=context.clock, name="erp_trace",
                            namespace={"erp_sample": TimedArray(sample, dt=context.clock.dt,
                                                                name="erp_sample")})
        trace.total = linked_var(totals, "total", index=np.repeat(np.arange(levels), count))
        trace.slot = np.tile(np.arange(count, dtype=float), levels)
        trace.run_regularly(blend("value", "total", "int(erp_sample(t) == slot)"),
                            when=schedule.SLOT, order=order + 1, name="erp_trace_sample")
        context.readout_state[self.name] = trace
        return [*objects, trace]

    def replayed(self, simulation: Any, settings: Settings, recorded: Any,
                 position: int) -> None:
        """The trial's samples from ``erp_trace`` at its end (``compiled``)."""
        sampler: Sampler = simulation.readout_state[self.name]
        timeline = simulation.compiled_timeline
        steps = timeline.end_step(position) - int(timeline.first_steps[position])
        values = recorded["value"].reshape(len(settings.levels), -1)
        sampler.samples = values[:, :len(range(0, steps, sampler.every))].T.tolist()

    def column_units(self, simulation: Any) -> dict[str, str]:
        """The latencies in ms, each level's peaks in its ERP's units (its errors')."""
        settings: Settings = simulation.scenario.readouts[self.name]
        units = trace_units(simulation, settings.field)
        return {**self.units, **{f"erp_peak/{name}": units[name] for name in settings.levels}}

    def row(self, simulation: Any, trial: Any) -> dict[str, Any]:
        sampler: Sampler = simulation.readout_state[self.name]
        settings: Settings = simulation.scenario.readouts[self.name]
        trace = sampler.end_trial(trial.kind)
        times_ms = np.arange(len(trace)) * sampler.every * simulation.scenario.dt_ms
        row: dict[str, Any] = {}
        for column, name in enumerate(settings.levels):
            height, latency = peak(trace[:, column], times_ms, settings.window_ms)
            row[f"erp_peak/{name}"] = height
            row[f"erp_latency/{name}"] = latency
        return row

    def checkpoint(self, simulation: Any) -> dict[str, Any]:
        """The traces and kinds of the trials done (a trial boundary: no samples pending)."""
        sampler: Sampler = simulation.readout_state[self.name]
        return {"traces": sampler.traces, "kinds": sampler.kinds}

    def resume(self, simulation: Any, kept: dict[str, Any]) -> None:
        sampler: Sampler = simulation.readout_state[self.name]
        sampler.traces, sampler.kinds = list(kept["traces"]), list(kept["kinds"])

    def finish(self, simulation: Any, settings: Settings) -> None:
        sampler: Sampler = simulation.readout_state[self.name]
        if not sampler.traces:
            return
        length = max(len(trace) for trace in sampler.traces)
        declared = declaration_attrs(DECLARED_ERP[settings.field])  # what each trace is
        units = trace_units(simulation, settings.field)
        group = simulation.writer.file.require_group("erp")
        every_s = sampler.every * simulation.scenario.dt_ms * 1e-3
        group.attrs["every"] = every_s
        group.attrs["field"] = settings.field
        group.attrs["levels"] = np.array(settings.levels, dtype=object)
        write_array(group, "time", np.arange(length) * every_s, units="s")
        for column, name in enumerate(settings.levels):
            traces = np.full((len(sampler.traces), length), np.nan)
            for row, trace in enumerate(sampler.traces):
                traces[row, :len(trace)] = trace[:, column]
            write_array(group.require_group("trials"), name, traces, units=units[name],
                        nan_means="after the end of a trial shorter than the longest",
                        **declared)
            means = kind_means(traces, sampler.kinds)
            for kind, (mean, count) in means.items():
                write_array(group.require_group(kind), name, mean, units=units[name],
                            count=count, nan_means=BEYOND_KIND, **declared)
            if "standard" in means and "deviant" in means:
                write_array(group.require_group("mismatch"), name,
                            means["deviant"][0] - means["standard"][0], units=units[name],
                            nan_means=BEYOND_KIND, **declared)


def trace_units(simulation: Any, field: str) -> dict[str, str]:
    """Each level's ERP units (its errors' units: ``circuits.variables.ERP``) for the ERP of
    ``field``, by level name."""
    return {level.name: DECLARED_ERP[field].units_for(level.units)
            for level in simulation.model.levels}


READOUT = ERP()
