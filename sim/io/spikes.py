"""Spikes in a result file: ``/spikes/<level>/<population>/`` (layout in docs/results.md).

One group per spiking population (``belief_positive``, ``error_negative``, ...), with ``time``
(float64 seconds, sorted) and ``neuron`` (uint32, the neuron's index within its population:
neuron i belongs to unit i // neurons_per_unit), ragged, chunked and resizable, appended at each
trial's end. The group's attributes say what it is (``level``, ``role``, ``sign``,
``neurons_per_unit``, ``unit_count``, ``neuron_model``) and carry the ``[model.spiking]``
settings. A spiking network's pool group holds both pools of a population, positive first
(``circuits.spiking.wiring``): ``SpikeWriter`` splits it. No Brian2 here.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import h5py
import numpy as np

SIGNS = ("positive", "negative")
# spikes per chunk: 64 kB of times. An HDF5 chunk is allocated whole, so a population of a
# few thousand spikes (a top level's) takes one chunk; 65536 took 0.5 MB each, 22 MB for
# neurons/hierarchy_spiking's 6.5 MB of spikes
CHUNK = 8192


def population_attrs(role: str, level: str, units: int, settings: Any) -> dict[str, Any]:
    """What the writer needs to split and label one pool group (both signs): its role,
    level and units, and the ``[model.spiking]`` settings, ``neurons_per_unit`` and
    ``neuron_model`` under their own names, the others as ``spiking_<key>``."""
    own = ("neurons_per_unit", "neuron_model")
    return {"role": role, "level": level, "unit_count": units,
            **{key: getattr(settings, key) for key in own},
            **{f"spiking_{key}": value for key, value in settings.describe().items()
               if value is not None and key not in own}}


def _dataset(group: h5py.Group, name: str, dtype: Any) -> h5py.Dataset:
    return group.create_dataset(name, shape=(0,), maxshape=(None,), dtype=dtype, chunks=(CHUNK,))


class SpikeWriter:
    """Appends each pool group's new spikes to its two populations' datasets."""

    def __init__(self, file: h5py.File, pools: Sequence[dict[str, Any]]) -> None:
        self.pools = list(pools)
        self.written = [0] * len(self.pools)
        self.datasets: list[list[tuple[h5py.Dataset, h5py.Dataset]]] = []
        for pool in self.pools:
            pair = []
            for sign in SIGNS:
                group = file.require_group(f"spikes/{pool['level']}/{pool['role']}_{sign}")
                group.attrs.update({**pool, "sign": sign})
                time = _dataset(group, "time", np.float64)
                time.attrs["units"] = "s"
                pair.append((time, _dataset(group, "neuron", np.uint32)))
            self.datasets.append(pair)

    def append(self, monitors: Sequence[tuple[np.ndarray, np.ndarray]]) -> None:
        """``monitors``: each pool group's (neuron indices, times in s) of every spike so far,
        as views of a monitor's whole record (not copies); only what is new since the last
        call is read and written."""
        for index, (neurons, times) in enumerate(monitors):
            pool = self.pools[index]
            new = slice(self.written[index], len(neurons))
            self.written[index] = len(neurons)
            neurons, times = np.array(neurons[new]), np.array(times[new])
            size = pool["unit_count"] * pool["neurons_per_unit"]
            for sign, (time_set, neuron_set) in enumerate(self.datasets[index]):
                mine = (neurons // size) == sign
                _extend(time_set, times[mine])
                _extend(neuron_set, (neurons[mine] % size).astype(np.uint32))


def _extend(dataset: h5py.Dataset, values: np.ndarray) -> None:
    if not len(values):
        return
    start = dataset.shape[0]
    dataset.resize((start + len(values),))
    dataset[start:] = values


@dataclass
class SpikeTrains:
    """One population's spikes: ``time`` (s) and ``neuron`` arrays and its attributes."""

    time: np.ndarray
    neuron: np.ndarray
    attrs: dict[str, Any]

    @property
    def unit(self) -> np.ndarray:
        """The unit of each spike's neuron."""
        return self.neuron // int(self.attrs["neurons_per_unit"])

    def count(self) -> int:
        return len(self.time)

    def rate(self, times: np.ndarray, dt: float) -> np.ndarray:
        """The population's rate in Hz, mean over its units, at ``times`` (s, samples of a run
        of steps of ``dt`` s), filtered as a decoder filters the spikes
        (``circuits.spiking.network``: each step decays it by 1 - dt/tau_s, each spike adds
        1 / (N tau_s)) and sampled as the recorder samples the decoders (before a step's
        spikes: those of the steps before it). For a population with no decoder (activation,
        precision-error neurons). It starts from 0 at the run's start, where a decoder starts,
        and restarts at each trial's reset, at its rates' mean: within a few tau_s of those
        the two differ."""
        from scipy.signal import lfilter

        tau = float(self.attrs["spiking_tau_synapse_ms"]) * 1e-3
        neurons = int(self.attrs["neurons_per_unit"]) * int(self.attrs["unit_count"])
        steps = np.rint(np.asarray(times) / dt).astype(np.int64)
        if not len(steps):
            return np.zeros(0)
        counts = np.bincount(np.rint(self.time / dt).astype(np.int64),
                             minlength=steps.max())[:max(steps.max(), 1)]
        rate = lfilter([1.0 / (neurons * tau)], [1.0, -(1.0 - dt / tau)], counts)
        return np.where(steps > 0, rate[np.maximum(steps - 1, 0)], 0.0)


def population_paths(group_attrs: dict[str, dict[str, Any]]) -> list[str]:
    """``<level>/<population>`` of every spiking population in a file (from its groups)."""
    return [path.removeprefix("spikes/") for path, attrs in group_attrs.items()
            if path.startswith("spikes/") and "role" in attrs]
