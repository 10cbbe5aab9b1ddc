"""``[model.spiking]``: the settings of the spiking realisation (``circuits.spiking``), plain
values (no Brian2: the scenario side reads them)."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

NEURON_MODELS = ("poisson",)


@dataclass(frozen=True)
class SpikingSettings:
    """``neurons_per_unit`` N neurons in each pool (positive, negative) of each unit;
    ``neuron_model`` how a neuron turns its input into spikes; ``tau_synapse_ms`` the synaptic
    filter; ``baseline_rate_hz`` r_0, ``max_rate_hz`` r_max, ``rate_per_unit_hz`` g (the rate a
    represented value of 1 adds); ``fan_in`` K, synapses a neuron takes from each pool of each
    unit it listens to; ``seed`` the neurons' randomness (spikes and wiring), apart from the
    stimulus's noise; ``record_spikes`` whether every spike is stored (``/spikes``);
    ``tau_recurrent_ms`` the belief integrator's own recurrent filter (None: tau_s)."""

    neurons_per_unit: int = 50
    neuron_model: str = "poisson"
    tau_synapse_ms: float = 10.0
    baseline_rate_hz: float = 10.0
    max_rate_hz: float = 1000.0
    rate_per_unit_hz: float = 100.0
    fan_in: int = 20
    seed: int = 0
    record_spikes: bool = True
    tau_recurrent_ms: float | None = None

    def recurrent_ms(self) -> float:
        """The belief integrator's recurrent filter (default tau_s)."""
        return self.tau_recurrent_ms or self.tau_synapse_ms

    def describe(self) -> dict:
        return asdict(self)

    def fan_in_used(self) -> int:
        """K as wired: at most N (a pool of N neurons has N to give)."""
        return min(self.fan_in, self.neurons_per_unit)


def rate_variable(role: str, sign: str) -> Any:
    """The declaration of a population's recorded rate (``circuits.variables``): Hz, drawn by
    the spiking figure, not beside the level's beliefs."""
    from circuits.variables import Variable

    return Variable(f"rate_{role}_{sign}", f"r_{role[0]}{'+' if sign == 'positive' else '-'}",
                    f"{role} neurons' rate ({sign})", "error" if role == "error" else "state",
                    units="Hz", plot="none")
