"""The Brian2 objects of the spiking hierarchy (``circuits.spiking`` derives them).

``SpikingNetwork`` builds, per level, the error pool group (and, above the input, the belief
and activation pool groups), the fixed fan-in ``Synapses`` between them (``wiring``), and the
*decoders*: one group per level and role, named as the rate model's populations
(``belief_<index>``, ``error_<index>``: ``circuits.naming``), whose variables are the
populations' filtered spikes read out as the rate model's quantities (``belief``, ``error``)
and rates in Hz. A decoder is a probe: it listens to every neuron of its population through
synapses, and no population reads its decoded values. The error decoders also hold what reaches
the network from outside (``signal``: the stimulus at the input level; ``precision``;
``prediction``: the prior mean at the top), which the error neurons read as linked variables,
as the rate model's error units hold them as parameters.

Brian2 objects are named by level index (``circuits.naming``): pool groups
``<role>_neurons_<index>``, synapses ``<source>_to_<target>_<variable>``, decoders'
``decode_<source>``, so scenarios whose levels are named otherwise compile the same code once.
Brian2 runs the thresholders of one slot in the order of their names, and they draw their
spikes' random numbers from one stream, in that order: the pools' thresholders are given the
order of their names when pools were named by level (``draw_in_order``), so a seed fires the
same spikes as before.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
from brian2 import Clock, NeuronGroup, NumpyCodeObject, Synapses, linked_var, ms

from circuits.generative import GenerativeMap, dense
from circuits.naming import level_key
from circuits.precision import CONFIGURED
from circuits.spiking.settings import SpikingSettings
from circuits.spiking.topdown import TopDown, build_topdown, start_topdown
from circuits.spiking.wiring import fan_in, per_neuron, pool_signs, pool_units, synaptic

RATE = """
rate = (baseline_rate + clip(polarity * rate_per_unit * x, 0, max_rate - baseline_rate)) * Hz : Hz
polarity : 1 (constant)
baseline_rate : 1 (shared, constant)
max_rate : 1 (shared, constant)
rate_per_unit : 1 (shared, constant)
tau_synapse : second (shared, constant)
"""
THRESHOLD = "rand() < rate * dt"  # a Poisson neuron of rate ``rate`` (neuron_model "poisson")
# The filtered inputs decay after the neurons have fired on them and before this step's spikes
# arrive (``synapses`` slot): a neuron fires on S_n, then S decays by a = 1 - dt/tau_s and its
# spikes add (1 - a) x. A recurrent loop then has gain 1 in the mean. Decaying before firing
# (Brian2's default ``groups`` slot) gives a(2 - a) = 1 - (dt/tau_s)^2 per step: a leak of
# dt/tau_s per tau_s, which held single_cause's belief 0.06 below the mode at dt = 0.25 ms.
DECAY_SLOT, DECAY_ORDER = "thresholds", 1


ERROR_RELAXING = "dx/dt = (precision * (signal - prediction) - x) / tau_error : 1\n" \
                 "tau_error : second (shared, constant)\n"
ERROR_INSTANTANEOUS = "x = precision * (signal - prediction) : 1\n"
BELIEF = """
x = s_self + tau_recurrent / tau_belief * (fprime * s_up - s_own{drive}) : 1
fprime = {fprime} : 1
tau_belief : second (shared, constant)
tau_recurrent : second (shared, constant)
ds_self/dt = -s_self / tau_recurrent : 1
"""
ACTIVATION = "x = {f} : 1\n"
DECODER = """
d{value}/dt = -{value} / tau_synapse : 1
drate_positive/dt = -rate_positive / tau_synapse : 1
drate_negative/dt = -rate_negative / tau_synapse : 1
tau_synapse : second (shared, constant)
"""
ERROR_DECODER_INPUTS = "signal : 1\nprediction : 1\nprecision : 1\n"
DECODE = """{value}_post += w
rate_positive_post += positive
rate_negative_post += negative"""


@dataclass
class Pool:
    """One population's pool group: ``role`` belief, error or activation, on ``level`` (its
    name; ``index`` in the model's levels, input 0)."""

    role: str
    level: str
    index: int
    units: int
    group: NeuronGroup


@dataclass
class ErrorInputs:
    """What a level's error neurons read (its precision-error neurons read the same): the
    equations of ``signal`` and ``prediction``, the decoder variables linked into them (the
    stimulus at the input level, the prior mean at the top), and the filtered inputs' sources
    (name -> (pool, values)), recorded as the levels are connected."""

    equations: str
    linked: tuple[str, ...]
    sources: dict[str, tuple[Pool, np.ndarray]] = field(default_factory=dict)


@dataclass
class SpikingNetwork:
    """Pools, their synapses and the decoders; ``objects`` all of them, for the network."""

    pools: list[Pool] = field(default_factory=list)
    beliefs: list[NeuronGroup] = field(default_factory=list)  # decoders, levels 1..L
    errors: list[NeuronGroup] = field(default_factory=list)  # decoders, levels 0..L
    objects: list[Any] = field(default_factory=list)
    maps: list[GenerativeMap] = field(default_factory=list)  # g_1..g_L (level l predicts l-1)
    topdown: TopDown | None = None  # top-down precision (``circuits.spiking.topdown``)
    level_names: list[str] = field(default_factory=list)  # the model's levels, input first


def _pool(settings: SpikingSettings, name: str, units: int, equations: str, clock: Clock,
          method: str) -> NeuronGroup:
    group = NeuronGroup(2 * units * settings.neurons_per_unit, RATE + equations,
                        threshold=THRESHOLD, method=method, name=name, clock=clock)
    group.state_updater.when, group.state_updater.order = DECAY_SLOT, DECAY_ORDER
    group.polarity = pool_signs(units, settings.neurons_per_unit)
    group.baseline_rate = settings.baseline_rate_hz
    group.max_rate = settings.max_rate_hz
    group.rate_per_unit = settings.rate_per_unit_hz
    group.tau_synapse = settings.tau_synapse_ms * ms
    return group


def _decoder(settings: SpikingSettings, name: str, value: str, units: int, extra: str,
             clock: Clock) -> NeuronGroup:
    """A level's decoder of ``value``; its start is set with the pools' (``start_values``)."""
    # Euler decay, as the pools' (the only method a spiking scenario takes): its weights are
    # sized for a = 1 - dt/tau_s; exact decay read every value high by dt / (2 tau_s)
    group = NeuronGroup(units, DECODER.format(value=value) + extra, method="euler", name=name,
                        clock=clock)
    group.state_updater.when, group.state_updater.order = DECAY_SLOT, DECAY_ORDER
    group.tau_synapse = settings.tau_synapse_ms * ms
    return group


def wire(synapses: Synapses, pre: np.ndarray, post: np.ndarray) -> None:
    """``synapses.connect(i=pre, j=post)``, its code run by NumPy: that code only copies the
    indices, once per network, and Brian2 names it after the synapses object, so compiled
    (Cython) it is an extension of its own for every connection of every network, compiled to
    run once. The synapses' other code (their spikes' effect, every step) stays compiled."""
    synapses.codeobj_class = NumpyCodeObject
    try:
        synapses.connect(i=pre, j=post)
    finally:
        synapses.codeobj_class = None


class Builder:
    """Builds a ``SpikingNetwork`` level by level (``build_spiking``)."""

    def __init__(self, settings: SpikingSettings, clock: Clock, method: str) -> None:
        self.settings, self.clock, self.method = settings, clock, method
        self.net = SpikingNetwork()
        self.rng = np.random.default_rng([settings.seed, 25])
        self.scale = 1.0 / (settings.rate_per_unit_hz * settings.tau_synapse_ms * 1e-3)

    def connect(self, source: Pool, target: Pool | NeuronGroup, variable: str,
                values: np.ndarray, tau_ms: float | None = None, units: np.ndarray | None = None,
                fan: int | None = None) -> None:
        """``values`` (target units x source units) from ``source`` into ``target``'s
        synaptic variable ``variable`` (fixed fan-in ``fan``, default K: ``wiring.fan_in``),
        which decays with ``tau_ms`` (default tau_s). ``target`` a pool, or a group whose
        neurons' units are ``units`` (a decoder)."""
        n = self.settings.neurons_per_unit
        group = target.group if isinstance(target, Pool) else target
        if units is None:
            units = pool_units(target.units, n)
        pre, post, carried = fan_in(values, n, units, fan or self.settings.fan_in, self.rng)
        if not len(pre):  # all of values zero (posner's context predicts no target)
            return
        synapses = Synapses(source.group, group, "w : 1 (constant)",
                            on_pre=f"{variable}_post += w", clock=self.clock,
                            name=f"{source.group.name}_to_{group.name}_{variable}")
        wire(synapses, pre, post)
        synapses.w = carried * self.scale * self.settings.tau_synapse_ms / (
            tau_ms or self.settings.tau_synapse_ms)
        self.net.objects.append(synapses)

    def decode(self, source: Pool, decoder: NeuronGroup, value: str) -> None:
        """Every neuron of ``source`` into its unit's decoder: the value (mean of the pair's
        difference over N, divided by g) and each pool's mean rate in Hz."""
        n, tau = self.settings.neurons_per_unit, self.settings.tau_synapse_ms * 1e-3
        pre = np.arange(2 * source.units * n)
        synapses = Synapses(source.group, decoder, "w : 1 (constant)\npositive : 1 (constant)\n"
                            "negative : 1 (constant)", on_pre=DECODE.format(value=value),
                            clock=self.clock, name=f"decode_{source.group.name}")
        wire(synapses, pre, pool_units(source.units, n))
        signs = pool_signs(source.units, n)
        synapses.w = signs * self.scale / n
        synapses.positive = (signs > 0) / (n * tau)
        synapses.negative = (signs < 0) / (n * tau)
        self.net.objects.append(synapses)

    def pool(self, role: str, level: str, index: int, units: int, equations: str) -> Pool:
        """Level ``index``'s (named ``level``) pool group of ``role``."""
        group = _pool(self.settings, f"{role}_neurons_{level_key(index)}", units, equations,
                      self.clock, self.method)
        found = Pool(role, level, index, units, group)
        self.net.pools.append(found)
        self.net.objects.append(group)
        return found


def build_spiking(settings: SpikingSettings, levels: list[Any], initial_beliefs: list[np.ndarray],
                  precision: list[np.ndarray], prior_mean: np.ndarray, errors: str,
                  tau_belief_ms: float, tau_error_ms: float, clock: Clock,
                  method: str, topdown: TopDown | None = None) -> SpikingNetwork:
    """The spiking network of ``levels`` (the model's, input first; ``level.generative`` a
    ``GenerativeMap`` above the input) started at ``initial_beliefs`` (levels 1..L), with
    ``topdown`` precision if given."""
    build = Builder(settings, clock, method)
    net = build.net
    net.level_names = [level.name for level in levels]
    net.topdown = topdown
    shape = topdown or TopDown(-1, -1, np.zeros((0, 0)))  # none: no gain or drive changes
    top = len(levels) - 1
    n = settings.neurons_per_unit
    error_pools, belief_pools, activation_pools = [], [None], [None]
    error_inputs: list[ErrorInputs] = []
    for index, level in enumerate(levels):
        inputs = ERROR_DECODER_INPUTS + shape.decoder_equations(index)
        gain, configured, gain_inputs = shape.gain(index)
        decoder = _decoder(settings, f"error_{level_key(index)}", "error", level.size, inputs,
                           clock)
        decoder.precision = precision[index]
        if configured == CONFIGURED:
            decoder.precision_configured = precision[index]
        net.errors.append(decoder)
        signal = "signal : 1 (linked)\n" if index == 0 else "signal = s_signal : 1\n"
        prediction = ("prediction : 1 (linked)\n" if index == top
                      else "prediction = s_pred : 1\n")
        reads = ErrorInputs(signal + prediction, (("signal",) if index == 0 else ())
                            + (("prediction",) if index == top else ()))
        error_inputs.append(reads)
        own = [name for name, needed in (("s_signal", index > 0), ("s_pred", index < top))
               if needed]
        dynamics = ERROR_RELAXING if errors == "relaxing" else ERROR_INSTANTANEOUS
        pool = build.pool("error", level.name, index, level.size, dynamics + reads.equations
                          + gain + synaptic(*own, *gain_inputs))
        units = pool_units(level.size, n)
        if index == top:
            decoder.prediction = prior_mean
        for name in (configured, *reads.linked):
            setattr(pool.group, name, linked_var(decoder, name, index=units))
        if errors == "relaxing":
            pool.group.tau_error = tau_error_ms * ms
        error_pools.append(pool)
        build.decode(pool, decoder, "error")
        if index == 0:
            continue
        gmap: GenerativeMap = level.generative
        f = gmap.nonlinearity
        drive, drive_inputs = shape.drive(index)
        belief = build.pool("belief", level.name, index, level.size,
                            BELIEF.format(fprime=f.brian("s_self", 1) if not f.is_identity
                                          else "1", drive=drive)
                            + synaptic("s_up", "s_own", *drive_inputs))
        belief.group.tau_belief = tau_belief_ms * ms
        belief.group.tau_recurrent = settings.recurrent_ms() * ms
        belief_pools.append(belief)
        decoder = _decoder(settings, f"belief_{level_key(index)}", "belief", level.size, "",
                           clock)
        net.beliefs.append(decoder)
        build.decode(belief, decoder, "belief")
        activation = None
        if not f.is_identity:
            activation = build.pool("activation", level.name, index, level.size,
                                    ACTIVATION.format(f=f.brian("s_mu")) + synaptic("s_mu"))
        activation_pools.append(activation)
    identity = [np.eye(level.size) for level in levels]
    for index, level in enumerate(levels):
        if index == 0:
            continue
        weights = dense(level.generative.weights)
        belief, below = belief_pools[index], error_pools[index - 1]
        build.connect(belief, belief, "s_self", identity[index], settings.recurrent_ms())
        build.connect(error_pools[index], belief, "s_own", identity[index])
        build.connect(below, belief, "s_up", weights.T)
        for into, name, source, values in (
                (index, "s_signal", belief, identity[index]),
                (index - 1, "s_pred", activation_pools[index] or belief, weights)):
            error_inputs[into].sources[name] = source, values
            build.connect(source, error_pools[into], name, values)
        if activation_pools[index] is not None:
            build.connect(belief, activation_pools[index], "s_mu", identity[index])
    if topdown is not None:  # last: the wiring drawn before it stays the same
        target = topdown.target
        build_topdown(build, topdown, error_inputs[target], net.errors[target],
                      belief_pools[topdown.context], error_pools[target])
    net.objects += [*net.beliefs, *net.errors]
    draw_in_order(net.pools)
    net.maps = [level.generative for level in levels[1:]]
    start_values(net, initial_beliefs, settings)
    return net


def draw_in_order(pools: list[Pool]) -> None:
    """Give the pools' thresholders (Brian2's ``thresholds`` slot, order 0: ordered by name)
    the order of the names they had when pools were named by level, ``<role>_neurons_<level
    name>_spike_thresholder``, before every other object of the slot (the state updaters,
    ``DECAY_ORDER``; a spike monitor, made later, takes its thresholder's order + 1). The
    thresholders draw from Brian2's one stream of random numbers in turn, so this keeps each
    neuron's draws, and a seed's spikes, those of the level-named network."""
    by_name = sorted(pools, key=lambda pool: f"{pool.role}_neurons_{pool.level}_spike_thresholder")
    for rank, pool in enumerate(by_name):
        pool.group.thresholder["spike"].order = rank - len(by_name)


def start_values(net: SpikingNetwork, beliefs: list[np.ndarray], settings: SpikingSettings
                 ) -> None:
    """Put the network at ``beliefs`` (levels 1..L) with errors 0 (a trial's reset, and the
    start): every filtered synaptic input at its mean for that state (a belief pool's own
    s_self at mu, an error or precision-error pool's s_signal at mu and s_pred at g(mu above)),
    the decoders showing it."""
    n = settings.neurons_per_unit
    pools = {(pool.role, pool.level): pool.group for pool in net.pools}
    names = net.level_names
    for index, name in enumerate(names):
        error = pools["error", name]
        if "x" in error.variables and not error.variables["x"].read_only:
            error.x = 0.0
        if index > 0:
            mu = beliefs[index - 1]
            belief = pools["belief", name]
            belief.s_self, belief.s_up, belief.s_own = per_neuron(mu, n), 0.0, 0.0
            if ("activation", name) in pools:
                pools["activation", name].s_mu = per_neuron(mu, n)
            decoder = net.beliefs[index - 1]
            decoder.belief = mu
            _rates_at(decoder, mu, settings)
        below = index < len(names) - 1  # predicted from above
        prediction = net.maps[index].predict(beliefs[index]) if below else None
        for role in ("error", "precision_error"):  # the latter reads the same inputs
            reading = pools.get((role, name))
            if reading is None:
                continue
            if index > 0:
                reading.s_signal = per_neuron(beliefs[index - 1], n)
            if prediction is not None:
                reading.s_pred = per_neuron(prediction, n)
        net.errors[index].error = 0.0
        _rates_at(net.errors[index], np.zeros(len(net.errors[index])), settings)
    if net.topdown is not None:
        start_topdown(net.topdown, pools, net.errors, names, beliefs, n)


def _rates_at(decoder: NeuronGroup, values: np.ndarray, settings: SpikingSettings) -> None:
    g, r0, top = settings.rate_per_unit_hz, settings.baseline_rate_hz, settings.max_rate_hz
    decoder.rate_positive = r0 + np.clip(g * values, 0, top - r0)
    decoder.rate_negative = r0 + np.clip(-g * values, 0, top - r0)

