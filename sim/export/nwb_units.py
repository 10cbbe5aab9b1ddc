"""The spikes of a spiking run as NWB's ``units`` table (``sim.export.nwb``).

A spiking result keeps, per population, ``/spikes/<level>/<population>/time`` (s, sorted) and
``neuron`` (the neuron's index in the population), with group attributes ``level``, ``role``,
``sign``, ``neurons_per_unit``, ``unit_count`` and ``neuron_model`` (docs/results.md, "Spikes").
Each neuron becomes one row of ``units``: its spike times (sorted), ``level``, ``population``,
``role``, ``sign``, ``unit`` (neuron // ``neurons_per_unit``: the belief or error unit whose rate
the population carries), ``neuron`` and ``neuron_model``. Neurons that never fired have a row
with no spikes. The table is built from whole columns (a ragged ``spike_times`` with its index),
not row by row: a run has tens of thousands of neurons.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from sim.errors import ResultError
from sim.io.reader import Result
from sim.io.spikes import population_paths

TEXT_COLUMNS = {"level": "the model level the population belongs to",
                "population": "the population's name in the result (/spikes/<level>/"
                              "<population>)",
                "role": "what the population carries: belief, error, activation (f of the "
                        "belief, where the level predicts through a nonlinearity), or "
                        "precision_error (-dF/dlambda, top-down precision's feedback)",
                "sign": "the sign it carries: positive or negative (a pair of pools per "
                        "unit)",
                "neuron_model": "the neuron model of the population"}
NUMBER_COLUMNS = {"unit": "the unit (belief or error unit of its level) the neuron belongs "
                          "to: neuron // neurons_per_unit",
                  "neuron": "the neuron's index within its population"}


def add_units(nwbfile: Any, result: Result) -> None:
    """Every spiking population's neurons as rows of ``nwbfile.units`` (none: no table)."""
    populations = _populations(result)
    if not populations:
        return
    from hdmf.common import VectorData, VectorIndex
    from pynwb.misc import Units

    times, ends, rows = [], [], {name: [] for name in (*TEXT_COLUMNS, *NUMBER_COLUMNS)}
    total = 0
    for path, (spikes, neuron, attrs) in populations.items():
        per_unit, units = int(attrs["neurons_per_unit"]), int(attrs["unit_count"])
        count = per_unit * units
        order = np.argsort(neuron, kind="stable")  # by neuron, each neuron's times in order
        times.append(spikes[order])
        total += len(spikes)
        ends.append(total - len(spikes) + np.cumsum(np.bincount(neuron, minlength=count)))
        level, population = path.split("/")
        for key, value in (("level", attrs.get("level", level)), ("population", population),
                           ("role", attrs.get("role", "")), ("sign", attrs.get("sign", "")),
                           ("neuron_model", attrs.get("neuron_model", ""))):
            rows[key] += [str(value)] * count
        rows["neuron"].append(np.arange(count))
        rows["unit"].append(np.arange(count) // per_unit)
    spike_times = VectorData(name="spike_times", description="spike times of each neuron (s)",
                             data=np.concatenate(times))
    columns = [spike_times, VectorIndex(name="spike_times_index", data=np.concatenate(ends),
                                        target=spike_times)]
    columns += [VectorData(name=name, description=TEXT_COLUMNS[name], data=rows[name])
                for name in TEXT_COLUMNS]
    columns += [VectorData(name=name, description=NUMBER_COLUMNS[name],
                           data=np.concatenate(rows[name]))
                for name in NUMBER_COLUMNS]
    nwbfile.units = Units(
        name="units", id=np.arange(len(rows["level"])), columns=columns,
        resolution=float(result.attrs["dt"]),
        description="the simulated spiking neurons, one row each, by population and unit "
                    "(pcsim /spikes)")


def _populations(result: Result) -> dict[str, tuple[np.ndarray, np.ndarray, dict[str, Any]]]:
    """Each population's spike times, neuron indices and attributes by ``<level>/
    <population>`` (``Result.spikes``, read once), in file order, checked."""
    paths = population_paths(result.group_attrs)
    for group in (f"spikes/{path}" for path in paths):
        attrs = result.group_attrs[group]
        for path in (f"{group}/time", f"{group}/neuron"):
            if path not in result:
                raise ResultError(f"{result.path}: damaged pcsim result: /{path}: missing")
        for key in ("neurons_per_unit", "unit_count"):
            if not isinstance(attrs.get(key), int | np.integer) or int(attrs[key]) < 1:
                raise ResultError(f"{result.path}: damaged pcsim result: /{group}: attribute "
                                  f"{key} is {attrs.get(key)!r}, expected a whole number >= 1")
    found = {}
    for path, trains in sorted(result.spikes().items()):
        spikes = np.asarray(trains.time, dtype=float)
        neuron = np.asarray(trains.neuron).astype(np.int64)
        count = int(trains.attrs["neurons_per_unit"]) * int(trains.attrs["unit_count"])
        if spikes.shape != neuron.shape or (len(neuron) and (neuron.min() < 0
                                                             or neuron.max() >= count)):
            raise ResultError(f"{result.path}: damaged pcsim result: /spikes/{path}: time "
                              f"{spikes.shape} and neuron {neuron.shape} differ, or a neuron "
                              f"index is outside 0..{count - 1}")
        found[path] = spikes, neuron, trains.attrs
    return found
