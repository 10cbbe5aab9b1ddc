"""The hierarchical network as spiking populations (``[model] neurons = "spiking"``).

``SpikingSimulation`` is the rate model's ``HierarchicalSimulation`` with its populations
replaced by ``circuits.spiking``'s network: the lanes, F, the readouts and the recorder read the
network's decoders, which carry the rate model's names (``belief``, ``error``, ``precision``,
``signal``, ``prediction``), so every stream, readout and figure works unchanged. Added: each
population's rate in Hz per unit (``levels/<level>/rate_<population>``) and, unless
``record_spikes = false``, every spike (``/spikes``, ``sim.io.spikes``), written at each
trial's end.
"""

from __future__ import annotations

import numpy as np
from brian2 import seed

from circuits.coupling import Coupling
from circuits.mechanism import BuildContext, Stream
from circuits.spiking.network import build_spiking, start_values
from circuits.spiking.settings import rate_variable
from circuits.spiking.spike_record import spike_monitor
from circuits.spiking.topdown import TopDown
from sim.families.hierarchical.build import HierarchicalSimulation
from sim.io.spikes import SpikeWriter, population_attrs
from sim.scenario import Trial


class SpikingSimulation(HierarchicalSimulation):
    """The spiking network (``circuits.spiking``) under the rate model's recorder and lanes."""

    def build_network(self) -> None:
        scenario, model = self.scenario, self.model
        settings = model.spiking
        seed(settings.seed)  # spikes: the neurons' own randomness, apart from the stimulus
        self.network = build_spiking(
            settings, model.levels, self.initial_beliefs,
            [level.precision for level in model.levels], model.prior_mean, model.errors,
            model.tau_belief_ms, model.tau_error_ms, self.clock, scenario.method,
            self.topdown())
        self.beliefs, self.errors = self.network.beliefs, self.network.errors
        weights = [lambda gmap=gmap: gmap.weights for gmap in self.network.maps]
        self.monitors = ([spike_monitor(pool.group, f"spikes_{pool.group.name}")
                          for pool in self.network.pools] if settings.record_spikes else [])
        self.coupling = Coupling("spiking", [*self.network.objects, *self.monitors], weights)
        self.writer.file.attrs["neurons"] = "spiking"
        self.spike_writer = (SpikeWriter(self.writer.file, [
            population_attrs(pool.role, pool.level, pool.units, settings)
            for pool in self.network.pools]) if self.monitors else None)

    def topdown(self) -> TopDown | None:
        """``[model.attention]`` (the only mechanism a spiking scenario takes) as the
        network's top-down precision (``circuits.spiking.topdown``)."""
        attention = self.model.mechanisms.get("topdown_precision")
        if attention is None:
            return None
        names = [level.name for level in self.model.levels]
        return TopDown(names.index(attention.context), names.index(attention.target),
                       np.asarray(attention.mapping, dtype=float))

    def build_mechanisms(self, context: BuildContext) -> list:
        """The network built its mechanisms' objects itself, as spiking populations and
        synapses (already in ``coupling``): none of the rate model's are built."""
        self.context = context
        for mechanism, _ in self.mechanisms:
            self.stepping[mechanism.name] = self.network.topdown.objects
        return []

    def streams(self) -> list[Stream]:
        """The rate model's streams (read from the decoders), then each population's rate in
        Hz per unit, ``levels/<level>/rate_<role>_<sign>``."""
        found = super().streams()
        names = self.network.level_names  # the errors' levels: all; the beliefs': 1..L
        for decoders, role, levels in ((self.errors, "error", names),
                                       (self.beliefs, "belief", names[1:])):
            for decoder, level in zip(decoders, levels, strict=True):
                for sign in ("positive", "negative"):
                    values = decoder.variables[f"rate_{sign}"].get_value()
                    found.append(Stream(f"levels/{level}/rate_{role}_{sign}", len(values),
                                        lambda values=values: values, units="Hz",
                                        variable=role, state=(decoder.name, f"rate_{sign}"),
                                        declares=rate_variable(role, sign)))
        return found

    def start_lanes(self, trials: list[Trial]) -> None:
        """As the rate model; a trial that resets puts the whole network at its initial
        beliefs (``circuits.spiking.network.start_values``)."""
        super().start_lanes(trials)
        if trials[0].reset:
            start_values(self.network, [np.array(belief) for belief in self.lane.beliefs],
                         self.model.spiking)

    def end_trial(self, trial: Trial) -> None:
        if self.spike_writer is not None:  # views of the monitors' records (``monitor.i[:]``
            # copied each whole record at every trial's end: O(trials x spikes))
            self.spike_writer.append([(monitor.variables["i"].get_value(),
                                       monitor.variables["t"].get_value())
                                      for monitor in self.monitors])
        super().end_trial(trial)
