"""``[model] neurons`` and ``[model.spiking]``: reading, checking and sizing the spiking
realisation of a hierarchical scenario (``circuits.spiking``; no Brian2 here).

``neurons = "rate"`` (the default) is the rate model; ``"spiking"`` runs the same scenario as
spiking populations. What the spiking form does not support yet is refused with one line at the
field that asks for it: mechanisms other than top-down precision (``[model.attention]``,
``circuits.spiking.topdown``), ``apply = "after"`` with a nonlinearity, batched trials,
the compiled device.
"""

from __future__ import annotations

from typing import Any

from circuits.mechanism import MemoryPart
from circuits.spiking.settings import NEURON_MODELS, SpikingSettings
from sim.validation import Fields

NEURONS = ("rate", "spiking")
SPIKING_MECHANISMS = ("topdown_precision",)  # built as spiking pools (circuits.spiking.topdown)
MAX_NEURONS_PER_UNIT = 100_000
MAX_FAN_IN = 10_000
MAX_SPIKE_PROBABILITY = 0.5  # a Poisson neuron fires at most once a step: rate * dt well below 1
# bytes, for the memory preflight: a recorded spike is a float64 time and an int32 index in
# Brian2's monitor, then the same in the file's datasets; a synapse's and a neuron's storage
# in Brian2's runtime device are estimates (its index arrays, weight and bookkeeping; state
# variables and spike arrays), not measured yet
SPIKE_BYTES = 12
SYNAPSE_BYTES = 60
NEURON_BYTES = 120


def parse_neurons(fields: Fields, model_name: str = "hierarchical") -> tuple[str, Any]:
    """``neurons`` and, for spiking, the ``[model.spiking]`` settings (None for rate)."""
    neurons = fields.text("neurons", default="rate", choices=NEURONS)
    table = fields.sub("spiking", default={})
    defaults = SpikingSettings()
    settings = SpikingSettings(
        neurons_per_unit=table.number("neurons_per_unit", default=defaults.neurons_per_unit,
                                      minimum=1, maximum=MAX_NEURONS_PER_UNIT, integer=True),
        neuron_model=table.text("neuron_model", default=defaults.neuron_model,
                                choices=NEURON_MODELS),
        tau_synapse_ms=table.number("tau_synapse_ms", default=defaults.tau_synapse_ms,
                                    positive=True, maximum=1e4),
        baseline_rate_hz=table.number("baseline_rate_hz", default=defaults.baseline_rate_hz,
                                      minimum=0.0, maximum=1e4),
        max_rate_hz=table.number("max_rate_hz", default=defaults.max_rate_hz, positive=True,
                                 maximum=1e5),
        rate_per_unit_hz=table.number("rate_per_unit_hz", default=defaults.rate_per_unit_hz,
                                      positive=True, maximum=1e5),
        fan_in=table.number("fan_in", default=defaults.fan_in, minimum=1, maximum=MAX_FAN_IN,
                            integer=True),
        seed=table.number("seed", default=defaults.seed, minimum=0, integer=True),
        record_spikes=table.flag("record_spikes", default=defaults.record_spikes),
        tau_recurrent_ms=table.number("tau_recurrent_ms", default=None, positive=True,
                                      maximum=1e5),
    )
    if settings.max_rate_hz <= settings.baseline_rate_hz:
        raise table.error("max_rate_hz", f"{settings.max_rate_hz:g} Hz is not above "
                                         f"baseline_rate_hz = {settings.baseline_rate_hz:g} Hz; "
                                         "expected max_rate_hz > baseline_rate_hz")
    table.close()
    if neurons == "rate" and table.table:
        raise fields.error("spiking", "[model.spiking] is read only with neurons = \"spiking\"; "
                                      "expected neurons = \"spiking\" or no [model.spiking]")
    return neurons, settings if neurons == "spiking" else None


def check_model(fields: Fields, model: Any) -> None:
    """Refuse, at ``model.neurons``, what the spiking form cannot run yet."""
    if model.neurons != "spiking":
        return
    for name in [name for name in model.mechanisms if name not in SPIKING_MECHANISMS]:
        raise fields.error("neurons", f"spiking neurons do not support the mechanism {name!r} "
                                      f"yet; expected neurons = \"rate\", or {name} off")
    if model.coupling != "auto":  # the spiking network has its own: fixed fan-in synapses
        raise fields.error("coupling", f"coupling = {model.coupling!r} is the rate model's; "
                                       "spiking neurons connect through their own synapses "
                                       "(docs/spiking.md); expected no coupling (\"auto\")")
    for level in model.belief_levels:
        gmap = level.generative
        if gmap.site == "after" and not gmap.nonlinearity.is_identity:
            raise fields.error("neurons", f"spiking neurons support g = W f(mu) (apply = "
                                          f"\"before\") only; level {level.name!r} has apply = "
                                          "\"after\"; expected neurons = \"rate\"")


def check_scenario(scenario: Any, source: Any) -> None:
    """What needs the whole scenario: the step against the neurons' highest rate, the
    state-update method, checkpoints, the compiled device (batched trials: ``sim.batch``)."""
    model = scenario.model
    settings: SpikingSettings | None = getattr(model, "spiking", None)
    if settings is None:
        return
    if settings.max_rate_hz * scenario.dt_ms * 1e-3 > MAX_SPIKE_PROBABILITY:
        most = MAX_SPIKE_PROBABILITY / (scenario.dt_ms * 1e-3)
        raise source.error("model.spiking.max_rate_hz",
                           f"{settings.max_rate_hz:g} Hz at dt_ms = {scenario.dt_ms:g} fires in "
                           f"more than {MAX_SPIKE_PROBABILITY:g} of the steps; expected at most "
                           f"{most:g} Hz (or a smaller dt_ms)")
    if scenario.method != "euler":
        raise source.error("method", f"method = {scenario.method!r}: the spiking network's "
                                     "filtered inputs decay by 1 - dt/tau_s a step, the decay "
                                     "its weights and its integrators' loop gain of 1 are "
                                     "sized for (circuits/spiking/network.py); expected "
                                     "method = \"euler\"")
    if scenario.record.checkpoint_every:
        raise source.error("record.checkpoint_every", "a spiking run keeps its spikes until it "
                                                      "ends and cannot resume yet; expected 0")
    if scenario.numerics.device == "standalone":
        raise source.error("numerics.device", "spiking neurons have no compiled form yet; "
                                              "expected device = \"runtime\" (or \"auto\")")


def _attention_target(model: Any) -> Any:
    """The level whose errors a top-down precision ([model.attention]) scales; None without."""
    attention = model.mechanisms.get("topdown_precision")
    if attention is None:
        return None
    return next(level for level in model.levels if level.name == attention.target)


def neuron_count(model: Any) -> int:
    """Neurons of the spiking network: error pools on every level, belief pools above the
    input, activation pools where f is not the identity, precision-error pools on a top-down
    precision's target; each pool pair 2 N per unit."""
    n = model.spiking.neurons_per_unit
    units = sum(level.size for level in model.levels)
    target = _attention_target(model)
    if target is not None:
        units += target.size
    units += sum(level.size * (1 if level.generative.nonlinearity.is_identity else 2)
                 for level in model.belief_levels)
    return 2 * n * units


def synapse_count(model: Any) -> int:
    """Synapses, from the fan-in (``circuits.spiking.wiring``): 2 K per target neuron per
    non-zero entry of each connection, plus the decoders' one per error and belief neuron
    (the activation pools have no decoder)."""
    from circuits.generative import dense

    settings = model.spiking
    n, k = settings.neurons_per_unit, settings.fan_in_used()
    count = 0
    for level in model.belief_levels:
        nonzero = int((dense(level.generative.weights) != 0).sum())
        nonlinear = not level.generative.nonlinearity.is_identity
        # self, own error, signal (+ activation's input): one-to-one; up and prediction: W
        count += (3 + nonlinear) * level.size * 2 * n * 2 * k + 2 * nonzero * 2 * n * 2 * k
    target = _attention_target(model)
    if target is not None:  # C into the error and precision-error neurons, C' back, the
        # precision-error neurons' signal and prediction (as the error neurons'), C's decoder
        nonzero = int((model.mechanisms["topdown_precision"].mapping != 0).sum())
        count += 3 * nonzero * 2 * n * 2 * k + nonzero * 2 * n + (
            target.size * 2 * n * 2 * k if target.generative is not None else 0)
        above = model.levels[model.levels.index(target) + 1]
        count += int((dense(above.generative.weights) != 0).sum()) * 2 * n * 2 * k
    decoded = sum(level.size for level in model.levels) + sum(
        level.size for level in model.belief_levels)
    return count + 2 * n * decoded


def spike_count(scenario: Any) -> float:
    """Spikes the run records at most (every neuron at ``max_rate_hz`` throughout)."""
    seconds = sum(trial.duration_ms for trial in scenario.trials) * 1e-3
    return neuron_count(scenario.model) * scenario.model.spiking.max_rate_hz * seconds


def memory_parts(scenario: Any) -> list[MemoryPart]:
    """The spiking network's neurons and synapses (shrunk by ``model.spiking.
    neurons_per_unit``) and the spikes it records, all held until the run's end (none with
    ``model.spiking.record_spikes = false``)."""
    model = scenario.model
    if getattr(model, "spiking", None) is None:
        return []
    key = "model.spiking.neurons_per_unit"
    neurons, synapses = neuron_count(model), synapse_count(model)
    parts = [MemoryPart(f"the {neurons} spiking neurons", NEURON_BYTES * neurons, key),
             MemoryPart(f"their {synapses} synapses", SYNAPSE_BYTES * synapses, key)]
    if model.spiking.record_spikes:
        spikes = spike_count(scenario)
        parts.append(MemoryPart(f"up to {spikes:.3g} recorded spikes (every neuron at "
                                "max_rate_hz; record_spikes = false records none)",
                                SPIKE_BYTES * spikes, key))
    return parts


def describe(model: Any) -> dict:
    """``neurons`` and ``spiking`` for ``scenario/parameters``; nothing for a rate model (its
    description stays as it was)."""
    if model.neurons != "spiking":
        return {}
    return {"neurons": "spiking", "spiking": model.spiking.describe()}
