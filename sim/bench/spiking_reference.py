r"""The spiking hierarchy built by hand in Brian2: the yardstick of the "spiking" row of
``pcsim bench`` (``sim.bench.spiking``).

Written from the equations of ``circuits/spiking/__init__.py``'s docstring and
``docs/spiking.md``, not from pcsim's builders (``circuits.spiking``): plain ``NeuronGroup``,
``Synapses``, ``SpikeMonitor`` and ``StateMonitor`` (the decoded values and rates, at the
scenario's recording period) on one clock, constants in the namespace, the input as a
``TimedArray``, no network operation, one ``Network.run``. The numbers (weights, the
configured precisions, the prior mean, the start, the input with its noise at every step) come
from the parsed scenario through the small-model reference's reading
(``sim.bench.small_models.from_scenario``), so both sides run the same model.

Per level l (0 the input, L the top), for n_l units of N neurons per pool (neuron k of a pool
group: sign + for k < n N, unit (k mod n N) // N):

- error pool: rate r = r_0 + clip(s g x, 0, r_max - r_0) (s the neuron's sign), Poisson
  (fires when rand() < r dt), x relaxing to Pi (signal - prediction) with tau_eps (or equal
  to it, instantaneous errors); signal = the input at l = 0, else the filtered spikes of the
  belief pool l; prediction = the filtered spikes of level l+1's activation pool through W
  (the prior mean at the top);
- belief pool (l >= 1): x = s_self + tau_rec / tau_mu (f'(s_self) s_up - s_own);
- activation pool (l >= 1, f not the identity): x = f(s_mu).

Every filtered input decays with its tau (tau_rec for s_self, else tau_s) by Euler, after the
neurons have fired on it (``thresholds`` slot, order 1). A connection c (target units x source
units) gives each target neuron of unit a, for each source unit b with c_ab != 0 and each sign,
K synapses from neurons drawn with replacement from that pool (all N when K >= N), each adding
+-c_ab / (K g tau) to the filtered input. The decoders (one group per level and role) take one
synapse from every neuron: the value +-1 / (N g tau_s) and each sign's rate 1 / (N tau_s).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

SYNAPTIC = "d{name}/dt = -{name} / {tau} : 1\n"
RATE = "rate = (r0 + clip(polarity * g * x, 0, rmax - r0)) * Hz : Hz\npolarity : 1 (constant)\n"
SLOT = ("thresholds", 1)  # the state update, after the neurons fire on their inputs


@dataclass
class Reference:
    """The hand-built network and what it counted."""

    network: Any
    pools: dict[str, Any]  # name -> NeuronGroup
    spikes: dict[str, Any]  # name -> SpikeMonitor
    decoders: dict[str, Any]  # name -> NeuronGroup
    duration_ms: float = 0.0
    objects: list[Any] = field(default_factory=list)

    def spike_counts(self) -> dict[str, int]:
        return {name: int(monitor.num_spikes) for name, monitor in self.spikes.items()}


def signs(units: int, n: int) -> np.ndarray:
    return np.where(np.arange(2 * units * n) < units * n, 1.0, -1.0)


def units_of(units: int, n: int) -> np.ndarray:
    return (np.arange(2 * units * n) % (units * n)) // n


def wiring(values: np.ndarray, n: int, k: int, rng: np.random.Generator
           ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(pre, post, +-c / K) of connection ``values`` (target units x source units) between
    pool groups of ``n`` neurons per pool, ``k`` drawn per source pool (all when k >= n)."""
    targets, sources = values.shape
    post_unit = units_of(targets, n)
    pre, post, carried = [], [], []
    for a, b in np.argwhere(values != 0):
        receivers = np.flatnonzero(post_unit == a)
        for sign in (0, 1):
            first = sign * sources * n + b * n
            if k >= n:
                drawn = np.tile(np.arange(n), (receivers.size, 1))
            else:
                drawn = rng.integers(0, n, (receivers.size, k))
            pre.append(first + drawn.ravel())
            post.append(np.repeat(receivers, drawn.shape[1]))
            carried.append(np.full(drawn.size, (1.0 - 2 * sign) * values[a, b] / drawn.shape[1]))
    return np.concatenate(pre), np.concatenate(post), np.concatenate(carried)


def build(scenario: Any) -> Reference:
    """The network of a parsed spiking hierarchical scenario (one trial, its precisions
    constant): ValueError for what the hand-built network does not cover."""
    from brian2 import (
        Clock,
        Hz,
        Network,
        NeuronGroup,
        SpikeMonitor,
        StateMonitor,
        Synapses,
        TimedArray,
        ms,
        seed,
    )

    from sim.bench.small_models import from_scenario

    model, settings = scenario.model, scenario.model.spiking
    if settings is None or len(scenario.trials) != 1:
        raise ValueError("the spiking reference runs one trial of a spiking scenario")
    if model.mechanisms:  # [model.attention]: from_scenario reads it, this network has none
        raise ValueError("the spiking reference has no top-down precision ([model.attention]) "
                         "or other mechanism")
    numbers = from_scenario(scenario)
    if (numbers.segment_start[0] > 0).any() or numbers.nonlinearity not in ("identity", "tanh"):
        raise ValueError("the spiking reference needs constant precisions and f tanh or identity")
    sizes, offsets = [int(s) for s in numbers.sizes], numbers.offsets
    top = len(sizes) - 1
    weights = [None] + [numbers.weights[numbers.weight_offsets[at]:numbers.weight_offsets[at + 1]]
                        .reshape(sizes[at - 1], sizes[at]) for at in range(1, top + 1)]
    precision = numbers.segment_precision[0, 0]
    mu = [numbers.initial[offsets[at]:offsets[at + 1]] for at in range(top + 1)]
    tanh = numbers.nonlinearity == "tanh"
    n, k = settings.neurons_per_unit, settings.fan_in
    tau_s, tau_rec = settings.tau_synapse_ms * ms, settings.recurrent_ms() * ms
    dt = scenario.dt_ms * ms
    clock = Clock(dt, name="ref_clock")  # one clock for every group, as pcsim's
    space = {"r0": settings.baseline_rate_hz, "rmax": settings.max_rate_hz,
             "g": settings.rate_per_unit_hz, "tau_s": tau_s, "tau_rec": tau_rec,
             "tau_mu": model.tau_belief_ms * ms, "tau_eps": model.tau_error_ms * ms,
             "stimulus": TimedArray(numbers.stimulus, dt=dt, name="ref_stimulus"), "Hz": Hz}
    seed(settings.seed)
    rng = np.random.default_rng([settings.seed, 7])
    pools: dict[str, Any] = {}
    decoders: dict[str, Any] = {}
    objects: list[Any] = []

    def pool(name: str, units: int, equations: str, method: str = "euler") -> Any:
        group = NeuronGroup(2 * units * n, RATE + equations, threshold="rand() < rate * dt",
                            method=method, namespace=space, clock=clock, name=f"ref_{name}")
        group.state_updater.when, group.state_updater.order = SLOT
        group.polarity = signs(units, n)
        pools[name] = group
        return group

    def each(values: np.ndarray) -> np.ndarray:  # a value per unit -> per neuron of its pools
        return np.tile(np.repeat(values, n), 2)

    relaxing = model.errors == "relaxing"
    for at in range(top + 1):
        signal = "signal = stimulus(t, unit) : 1\nunit : integer (constant)\n" if at == 0 else \
            "signal = s_signal : 1\n" + SYNAPTIC.format(name="s_signal", tau="tau_s")
        prediction = "prediction : 1 (constant)\n" if at == top else \
            "prediction = s_pred : 1\n" + SYNAPTIC.format(name="s_pred", tau="tau_s")
        error = ("dx/dt = (precision * (signal - prediction) - x) / tau_eps : 1\n" if relaxing
                 else "x = precision * (signal - prediction) : 1\n")
        group = pool(f"error_{at}", sizes[at], error + signal + prediction
                     + "precision : 1 (constant)\n")
        group.precision = each(precision[offsets[at]:offsets[at + 1]])
        if at == 0:
            group.unit = units_of(sizes[0], n)
        else:
            group.s_signal = each(mu[at])
        if at == top:
            group.prediction = each(numbers.prior_mean[0])
        if at == 0:
            continue
        fprime = "1 - tanh(s_self)**2" if tanh else "1"
        belief = pool(f"belief_{at}", sizes[at],
                      f"x = s_self + tau_rec / tau_mu * (({fprime}) * s_up - s_own) : 1\n"
                      + "".join(SYNAPTIC.format(name=name, tau="tau_s")
                                for name in ("s_up", "s_own"))
                      + SYNAPTIC.format(name="s_self", tau="tau_rec"))
        belief.s_self = each(mu[at])
        if tanh:
            activation = pool(f"activation_{at}", sizes[at], "x = tanh(s_mu) : 1\n"
                              + SYNAPTIC.format(name="s_mu", tau="tau_s"))
            activation.s_mu = each(mu[at])
    for at in range(top):  # the predictions start at W f(mu above)
        above = np.tanh(mu[at + 1]) if tanh else mu[at + 1]
        pools[f"error_{at}"].s_pred = each(weights[at + 1] @ above)

    def connect(source: str, target: str, variable: str, values: np.ndarray,
                tau: Any = tau_s) -> None:
        pre, post, carried = wiring(values, n, k, rng)
        synapses = Synapses(pools[source], pools[target], "w : 1 (constant)",
                            on_pre=f"{variable}_post += w", clock=clock,
                            name=f"ref_{source}_{target}_{variable}")
        synapses.connect(i=pre, j=post)
        synapses.w = carried / (settings.rate_per_unit_hz * float(tau))
        objects.append(synapses)

    for at in range(1, top + 1):
        eye = np.eye(sizes[at])
        connect(f"belief_{at}", f"belief_{at}", "s_self", eye, tau_rec)
        connect(f"error_{at}", f"belief_{at}", "s_own", eye)
        connect(f"error_{at - 1}", f"belief_{at}", "s_up", weights[at].T)
        connect(f"belief_{at}", f"error_{at}", "s_signal", eye)
        connect(f"activation_{at}" if tanh else f"belief_{at}", f"error_{at - 1}", "s_pred",
                weights[at])
        if tanh:
            connect(f"belief_{at}", f"activation_{at}", "s_mu", eye)

    decoding = ("dvalue/dt = -value / tau_s : 1\ndrate_positive/dt = -rate_positive / tau_s "
                ": 1\ndrate_negative/dt = -rate_negative / tau_s : 1\n")
    every = scenario.record.every_steps * dt
    monitors: list[Any] = []
    for name in [f"{role}_{at}" for at in range(top + 1) for role in ("error", "belief")
                 if role == "error" or at > 0]:
        role, level = name.split("_")
        units = sizes[int(level)]
        decoder = NeuronGroup(units, decoding, method="euler", namespace=space, clock=clock,
                              name=f"ref_decode_{name}")
        decoder.state_updater.when, decoder.state_updater.order = SLOT
        value = mu[int(level)] if role == "belief" else np.zeros(units)
        g, r0, rmax = settings.rate_per_unit_hz, settings.baseline_rate_hz, settings.max_rate_hz
        decoder.value = value
        decoder.rate_positive = r0 + np.clip(g * value, 0, rmax - r0)
        decoder.rate_negative = r0 + np.clip(-g * value, 0, rmax - r0)
        decode = Synapses(pools[name], decoder, on_pre=(
            "value_post += polarity_pre * per_spike\n"
            "rate_positive_post += int(polarity_pre > 0) * per_spike_hz\n"
            "rate_negative_post += int(polarity_pre < 0) * per_spike_hz"),
            namespace={"per_spike": 1.0 / (n * g * float(tau_s)),
                       "per_spike_hz": 1.0 / (n * float(tau_s))},
            clock=clock, name=f"ref_decode_{name}_synapses")
        decode.connect(i=np.arange(2 * units * n), j=units_of(units, n))
        objects.append(decode)
        decoders[name] = decoder
        monitors.append(StateMonitor(decoder, ["value", "rate_positive", "rate_negative"],
                                     record=True, dt=every, name=f"ref_record_{name}"))
    spikes = {name: SpikeMonitor(group, name=f"ref_spikes_{name}")
              for name, group in pools.items()} if settings.record_spikes else {}
    objects += [*pools.values(), *decoders.values(), *monitors, *spikes.values()]
    return Reference(Network(*objects), pools, spikes, decoders,
                     duration_ms=scenario.trials[0].duration_ms, objects=objects)


def run(reference: Reference) -> None:
    """The reference's one ``Network.run`` over its trial."""
    from brian2 import ms

    reference.network.run(reference.duration_ms * ms, namespace={})
