r"""The "spiking" row of ``pcsim bench`` (issue 25, point 7): the spiking hierarchy against the
same network built by hand in Brian2 (``sim.bench.spiking_reference``).

The model: ``perception/hierarchy`` (64-16-4, tanh, one trial of 400 ms, dt 0.1 ms) with
``model.neurons = "spiking"`` and the default ``[model.spiking]`` (N = 50 neurons per pool,
fan-in K = 20): 12,400 Poisson neurons. pcsim runs it through ``sim.run`` (scenario to closed
result file, spikes and the default recording on); the reference builds the same groups,
synapses (same fan-in rule, same connection values) and monitors with the same dt, code target
and device, and runs one ``Network.run`` with no network operation. Both sides run once warm
(Brian2's code cache), then alternate ``REPEATS`` times; the row shows medians:

- *loop*: the time inside ``Network.run`` less its ``before_run`` (the step loop; Brian2
  builds every code object again in ``before_run``, shown apart), process CPU time and wall;
  the target is pcsim's loop CPU <= ``LOOP_RATIO`` x the reference's;
- *whole*: pcsim's ``sim.run`` wall and CPU, and simulated seconds per wall second;
- *scaling*: pcsim at N, 2N, 4N (``SCALING``), each for ``SCALING_MS``: the synapse count
  (fixed fan-in: 2 K per target neuron per non-zero connection value, so ~ N) and the loop's
  CPU per simulated second; the target is at most ``DOUBLING`` x per doubling of N.

Both networks are counted from the objects that ran: they must have the same neurons and
synapses, and their spike counts must agree to ``SPIKE_TOLERANCE`` (relative; their wiring
and spikes are different draws of the same rule, so they agree in distribution, not spike
for spike).
"""

from __future__ import annotations

import gc
import statistics
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

SCENARIO = "perception/hierarchy"
OVERRIDES = {"model.neurons": "spiking"}
REPEATS = {False: 5, True: 3}  # full suite, --quick
QUICK_MS = 100.0  # --quick: the trial's length
SCALING = (1, 2, 4)  # x the default N
SCALING_MS = {False: 100.0, True: 50.0}
SCALING_REPEATS = {False: 3, True: 1}
LOOP_RATIO = 1.2
DOUBLING = 2.2
SPIKE_TOLERANCE = 0.1  # |pcsim - reference| / reference, all spikes of the run


@dataclass
class Timing:
    """One ``Network.run``: wall and CPU seconds, and those of its ``before_run``."""

    wall: float = 0.0
    cpu: float = 0.0
    before_wall: float = 0.0
    before_cpu: float = 0.0

    @property
    def loop_wall(self) -> float:
        return self.wall - self.before_wall

    @property
    def loop_cpu(self) -> float:
        return self.cpu - self.before_cpu


class NetworkTimer:
    """Times every ``brian2.Network.run`` (and its ``before_run``) while ``watching``, and
    counts what the last one ran (``counts``: neurons, synapses, spikes; the network itself is
    not kept, so that it is freed with its run)."""

    def __init__(self) -> None:
        self.timings: list[Timing] = []
        self.counted: tuple[int, int, int] = (0, 0, 0)

    @contextmanager
    def watching(self) -> Iterator[NetworkTimer]:
        from brian2 import Network

        run, before = Network.run, Network.before_run
        timer = self

        def timed_before(network, *args, **kwargs):
            wall, cpu = time.perf_counter(), time.process_time()
            try:
                return before(network, *args, **kwargs)
            finally:
                timer.timings[-1].before_wall += time.perf_counter() - wall
                timer.timings[-1].before_cpu += time.process_time() - cpu

        def timed_run(network, *args, **kwargs):
            timer.timings.append(Timing())
            wall, cpu = time.perf_counter(), time.process_time()
            try:
                return run(network, *args, **kwargs)
            finally:
                timer.timings[-1].wall += time.perf_counter() - wall
                timer.timings[-1].cpu += time.process_time() - cpu
                timer.counted = counts(network.objects)

        Network.run, Network.before_run = timed_run, timed_before
        try:
            yield self
        finally:
            Network.run, Network.before_run = run, before


def counts(objects: Any) -> tuple[int, int, int]:
    """Spiking neurons (groups with a threshold), synapses and recorded spikes of a network."""
    from brian2 import NeuronGroup, SpikeMonitor, Synapses

    objects = list(objects)
    neurons = sum(len(o) for o in objects if isinstance(o, NeuronGroup) and o.thresholder)
    synapses = sum(len(o) for o in objects if isinstance(o, Synapses))
    spikes = sum(int(o.num_spikes) for o in objects if isinstance(o, SpikeMonitor))
    return neurons, synapses, spikes


@dataclass
class Scaled:
    """pcsim at one N of the scaling series."""

    neurons_per_unit: int
    neurons: int = 0
    synapses: int = 0
    loop_cpu_per_s: float = 0.0  # loop CPU seconds per simulated second (median)
    loop_wall_per_s: float = 0.0


@dataclass
class SpikingRecord:
    """The row: medians of pcsim and the reference, the whole run, the scaling series."""

    name: str = "spiking"
    label: str = ""
    duration_ms: float = 0.0
    repeats: int = 0
    neurons: int = 0
    synapses: int = 0
    reference_synapses: int = 0
    reference_neurons: int = 0
    spikes: int = 0
    reference_spikes: int = 0
    pcsim: dict[str, float] = field(default_factory=dict)  # loop/network/before/whole, wall/cpu
    reference: dict[str, float] = field(default_factory=dict)
    scaling: list[Scaled] = field(default_factory=list)
    load: tuple[float, float] = (0.0, 0.0)  # 1-minute load average before and after
    tolerance: float = SPIKE_TOLERANCE

    @property
    def loop_ratio(self) -> float | None:
        if not self.reference.get("loop_cpu"):
            return None
        return self.pcsim["loop_cpu"] / self.reference["loop_cpu"]

    @property
    def growth(self) -> list[float]:
        """Loop CPU per simulated second, each N's over the one before."""
        return [b.loop_cpu_per_s / a.loop_cpu_per_s
                for a, b in zip(self.scaling[:-1], self.scaling[1:], strict=True)
                if a.loop_cpu_per_s]

    @property
    def max_abs_diff(self) -> float | None:
        """The spike counts' relative difference (the row's check that both did the same work;
        inf where their neurons or synapses differ)."""
        if not self.reference_spikes:
            return None
        if (self.neurons, self.synapses) != (self.reference_neurons, self.reference_synapses):
            return float("inf")
        return abs(self.spikes - self.reference_spikes) / self.reference_spikes

    @property
    def agrees(self) -> bool | None:
        if self.max_abs_diff is None:
            return None
        return self.max_abs_diff <= self.tolerance

    def met(self) -> bool | None:
        ratio = self.loop_ratio
        if ratio is None:
            return None
        return (ratio <= LOOP_RATIO and all(g <= DOUBLING for g in self.growth)
                and self.agrees is not False)

    def row(self) -> dict:
        row = {key: value for key, value in self.__dict__.items() if key != "scaling"}
        row["scaling"] = [s.__dict__ for s in self.scaling]
        row.update(loop_ratio=self.loop_ratio, growth=self.growth,
                   max_abs_diff=self.max_abs_diff, within_tolerance=self.agrees,
                   target_met=self.met(), target_loop_ratio=LOOP_RATIO,
                   target_growth=DOUBLING)
        return row

    def lines(self) -> list[str]:
        p, r = self.pcsim, self.reference
        seconds = self.duration_ms * 1e-3
        flag = {None: "", True: " ok", False: " MISSED"}
        ratio = self.loop_ratio
        out = ["", f"spiking: {self.label}, {self.duration_ms:g} ms; {self.neurons} neurons, "
                   f"{self.synapses} synapses; median of {self.repeats}, pcsim and the "
                   f"hand-built Brian2 network alternated (load {self.load[0]:.1f} -> "
                   f"{self.load[1]:.1f})",
               f"{'':24s} {'loop CPU':>9s} {'loop wall':>9s} {'before_run':>10s} "
               f"{'spikes':>9s}",
               f"{'pcsim (sim.run)':24s} {p['loop_cpu']:9.3f} {p['loop_wall']:9.3f} "
               f"{p['before_wall']:10.3f} {self.spikes:9d}",
               f"{'reference (by hand)':24s} {r['loop_cpu']:9.3f} {r['loop_wall']:9.3f} "
               f"{r['before_wall']:10.3f} {self.reference_spikes:9d}"]
        if ratio is not None:
            out.append(f"loop ratio (CPU) {ratio:.2f} (wall "
                       f"{p['loop_wall'] / r['loop_wall']:.2f}), target <= {LOOP_RATIO:g}"
                       + flag[ratio <= LOOP_RATIO])
        out.append(f"whole sim.run: {p['whole_wall']:.2f} s wall, {p['whole_cpu']:.2f} s CPU: "
                   f"{seconds / p['whole_wall']:.3f} simulated s per wall s, "
                   f"{seconds / p['whole_cpu']:.3f} per CPU s (loop alone "
                   f"{seconds / p['loop_wall']:.3f} / {seconds / p['loop_cpu']:.3f}); outside "
                   f"Network.run (build, writing) {p['whole_wall'] - p['network_wall']:.2f} s "
                   f"wall, {p['whole_cpu'] - p['network_cpu']:.2f} s CPU")
        if self.agrees is not None:
            out.append(f"same work: neurons {self.neurons} / {self.reference_neurons}, "
                       f"synapses {self.synapses} / {self.reference_synapses}, spikes differ "
                       f"by {100 * self.max_abs_diff:.1f}% (<= {100 * self.tolerance:g}%)"
                       + flag[self.agrees])
        if self.scaling:
            out.append(f"{'N':>6s} {'neurons':>8s} {'synapses':>9s} {'syn/N':>7s} "
                       f"{'loop CPU s per sim s':>21s} {'growth':>7s}")
            growth = [None, *self.growth]
            for scaled, grew in zip(self.scaling, growth, strict=True):
                out.append(f"{scaled.neurons_per_unit:6d} {scaled.neurons:8d} "
                           f"{scaled.synapses:9d} {scaled.synapses / scaled.neurons_per_unit:7.0f} "
                           f"{scaled.loop_cpu_per_s:21.2f} "
                           + ("" if grew is None else f"{grew:7.2f} (<= {DOUBLING:g})"
                              + flag[grew <= DOUBLING]))
        return out


def _median(timings: list[Timing], wholes: list[tuple[float, float]] | None = None
            ) -> dict[str, float]:
    found = {name: statistics.median(getattr(t, name) for t in timings)
             for name in ("loop_cpu", "loop_wall", "before_wall", "before_cpu")}
    found["network_wall"] = statistics.median(t.wall for t in timings)
    found["network_cpu"] = statistics.median(t.cpu for t in timings)
    if wholes:
        found["whole_wall"] = statistics.median(w for w, _ in wholes)
        found["whole_cpu"] = statistics.median(c for _, c in wholes)
    return found


def _run_pcsim(timer: NetworkTimer, output: Path, overrides: dict) -> tuple[float, float]:
    """One ``sim.run`` (wall, CPU); its ``Network.run`` lands in ``timer``."""
    import sim

    gc.collect()
    wall, cpu = time.perf_counter(), time.process_time()
    with timer.watching():
        sim.run(SCENARIO, output=output, overwrite=True, overrides=overrides)
    return time.perf_counter() - wall, time.process_time() - cpu


def measure(workdir: Path, quick: bool) -> SpikingRecord:
    """The row (module doc): the default N against the reference, then the scaling series."""
    import os

    from sim.bench import spiking_reference
    from sim.scenario import load_scenario

    overrides = dict(OVERRIDES)
    if quick:
        overrides["protocol.trials.0.duration_ms"] = QUICK_MS
    scenario = load_scenario(SCENARIO, overrides)
    settings = scenario.model.spiking
    record = SpikingRecord(label=f"{SCENARIO} as spikes, N = {settings.neurons_per_unit}, "
                                 f"K = {settings.fan_in_used()}",
                           duration_ms=scenario.duration_ms, repeats=REPEATS[quick],
                           load=(os.getloadavg()[0], 0.0))
    output = workdir / "spiking.h5"
    ours, theirs = NetworkTimer(), NetworkTimer()
    wholes = []
    for repeat in range(REPEATS[quick] + 1):  # the first of each: warm, not counted
        whole = _run_pcsim(ours, output, overrides)
        if repeat:
            wholes.append(whole)
        record.neurons, record.synapses, record.spikes = ours.counted
        gc.collect()
        with theirs.watching():
            spiking_reference.run(spiking_reference.build(scenario))
        record.reference_neurons, record.reference_synapses, record.reference_spikes = \
            theirs.counted
    record.pcsim = _median(ours.timings[1:], wholes)
    record.reference = _median(theirs.timings[1:])
    for factor in SCALING:
        record.scaling.append(scaled(workdir, settings.neurons_per_unit * factor, quick))
    record.load = (record.load[0], os.getloadavg()[0])
    return record


def scaled(workdir: Path, neurons_per_unit: int, quick: bool) -> Scaled:
    """pcsim at ``neurons_per_unit`` for ``SCALING_MS``: counts and loop CPU per simulated s."""
    duration = SCALING_MS[quick]
    overrides = {**OVERRIDES, "model.spiking.neurons_per_unit": neurons_per_unit,
                 "protocol.trials.0.duration_ms": duration}
    timer = NetworkTimer()
    found = Scaled(neurons_per_unit)
    for _ in range(SCALING_REPEATS[quick] + 1):
        _run_pcsim(timer, workdir / "spiking_scaled.h5", overrides)
        found.neurons, found.synapses, _ = timer.counted
    timings = timer.timings[1:]
    found.loop_cpu_per_s = statistics.median(t.loop_cpu for t in timings) / (duration * 1e-3)
    found.loop_wall_per_s = statistics.median(t.loop_wall for t in timings) / (duration * 1e-3)
    return found
