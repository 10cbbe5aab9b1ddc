"""The figure of a spiking result (``[model] neurons = "spiking"``): per level, a raster of its
belief and positive/negative error neurons (the first ``RASTER_UNITS`` units), the
populations' rates in Hz, and the decoded beliefs over time (``sim.io.spikes`` for the
layout). No Brian2."""

from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np

from sim.io.reader import Result
from sim.report.figures import mark_trials, register

RASTER_UNITS = 4  # units per level whose neurons the raster shows
COLOURS = {"belief_positive": "tab:blue", "belief_negative": "tab:cyan",
           "error_positive": "tab:red", "error_negative": "tab:orange",
           "activation_positive": "tab:green", "activation_negative": "tab:olive"}
RASTER_ORDER = ("belief_positive", "belief_negative", "error_positive", "error_negative")


@register("hierarchical_spiking")
def plot_spiking(result: Result) -> plt.Figure:
    """Rasters per level (top level first), rates in Hz, decoded beliefs."""
    spikes = result.spikes()
    levels = list(reversed(result.level_names))
    figure, axes = plt.subplots(len(levels) + 2, 1, figsize=(10, 2.0 * (len(levels) + 2) + 0.6),
                                sharex=True)
    for axis, level in zip(axes, levels, strict=False):
        _raster(axis, level, {name.split("/")[1]: trains for name, trains in spikes.items()
                              if name.split("/")[0] == level})
    time_ms = np.asarray(result.time[:]) * 1e3
    rates, beliefs = axes[-2], axes[-1]
    for level in levels:
        for population in RASTER_ORDER:
            path = f"levels/{level}/rate_{population}"
            if path in result:
                rates.plot(time_ms, np.asarray(result[path][:]).mean(axis=1), lw=0.8,
                           color=COLOURS[population], label=f"{level} {population}")
        path = f"levels/{level}/belief"
        if path in result:
            shown = np.asarray(result[path][:, :RASTER_UNITS])
            beliefs.plot(time_ms, shown, lw=0.8, label=[f"{level}[{i}]"
                                                        for i in range(shown.shape[1])])
    rates.set_ylabel("rate (Hz)\nmean over units")
    rates.legend(fontsize=6, ncol=4, loc="upper right")
    beliefs.set_ylabel("decoded belief")
    beliefs.legend(fontsize=6, ncol=4, loc="upper right")
    beliefs.set_xlabel("time (ms)")
    for axis in axes:
        mark_trials(axis, result)
    figure.suptitle(f"{result.attrs['scenario_name']} as spiking neurons (seed {result.seed})")
    return figure  # laid out by draw


def _raster(axis: plt.Axes, level: str, populations: dict) -> None:
    """Each population's neurons of the first units, one row per neuron, populations stacked."""
    row = 0
    for population in RASTER_ORDER:
        trains = populations.get(population)
        if trains is None:
            continue
        per_unit = int(trains.attrs["neurons_per_unit"])
        units = min(RASTER_UNITS, int(trains.attrs["unit_count"]))
        shown = trains.neuron < units * per_unit
        axis.scatter(trains.time[shown] * 1e3, row + trains.neuron[shown], s=3, marker="|",
                     linewidths=0.5,
                     color=COLOURS[population], label=population, rasterized=True)
        row += units * per_unit
    axis.set_ylabel(f"{level}\nneuron")
    if row:
        axis.set_ylim(-0.5, row - 0.5)
        axis.legend(fontsize=6, ncol=4, loc="upper right", markerscale=8)
