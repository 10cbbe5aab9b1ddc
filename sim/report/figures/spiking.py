"""The figure of a spiking result (``[model] neurons = "spiking"``): per level, a raster of its
belief and positive/negative error neurons, and of its precision-error neurons where a top-down
precision has them (the first ``RASTER_UNITS`` units), the populations' rates in Hz (the
precision-error neurons', which have no decoder, filtered from their spikes as a decoder
filters them: ``SpikeTrains.rate``), and per belief level its decoded beliefs over time, over
the rate model's where the file holds its run (``[readouts.rate_reference]``,
``sim.readouts.rate_reference``). Trials are named above the first panel. No Brian2."""

from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np
from matplotlib import colormaps

from sim.io.reader import Result
from sim.readouts.rate_reference import GROUP as RATE_REFERENCE
from sim.report.figures import DECORATION, MAX_TRIAL_MARKS, mark_trials, register

RASTER_UNITS = 4  # units per level whose neurons the raster shows, and whose beliefs are drawn
# each population's colour family; a level's shade within it (the top level darkest)
COLOUR_MAPS = {"belief_positive": "Blues", "belief_negative": "Purples",
               "error_positive": "Reds", "error_negative": "Greens",
               "precision_error_positive": "Greys", "precision_error_negative": "YlOrBr"}
RASTER_ORDER = tuple(COLOUR_MAPS)


def colour(population: str, level: int, levels: int) -> tuple:
    """``population``'s colour on level ``level`` of ``levels`` (0 the top): a shade of its
    family, so no two levels share one."""
    shade = 0.85 - (0.45 * level / (levels - 1) if levels > 1 else 0.0)
    return colormaps[COLOUR_MAPS[population]](shade)


@register("hierarchical_spiking")
def plot_spiking(result: Result) -> plt.Figure:
    """Rasters per level (top level first), rates in Hz, decoded beliefs per belief level."""
    spikes = result.spikes(RASTER_ORDER)
    levels = list(reversed(result.level_names))
    believing = [level for level in levels if f"levels/{level}/belief" in result]
    panels = len(levels) + 1 + len(believing)
    figure, axes = plt.subplots(panels, 1, figsize=(10, 1.9 * panels + 0.6), sharex=True)
    for axis, level in zip(axes, levels, strict=False):
        _raster(axis, level, levels.index(level), len(levels),
                {name.split("/")[1]: trains for name, trains in spikes.items()
                 if name.split("/")[0] == level})
    time = np.asarray(result.time[:])
    time_ms = time * 1e3
    rates = axes[len(levels)]
    for index, level in enumerate(levels):
        for population in RASTER_ORDER:
            path, trains = f"levels/{level}/rate_{population}", spikes.get(f"{level}/{population}")
            if path in result:
                rate, label = np.asarray(result[path][:]).mean(axis=1), f"{level} {population}"
            elif trains is not None:  # no decoded rate stored (a precision-error pool has no
                # decoder; other pools when [record] left them out): filtered from its spikes
                rate = trains.rate(time, result.dt)
                label = f"{level} {population} (from spikes)"
            else:
                continue
            rates.plot(time_ms, rate, lw=0.8, color=colour(population, index, len(levels)),
                       label=label)
    rates.set_ylabel("rate (Hz)\nmean over units")
    rates.legend(fontsize=6, ncol=4, loc="upper right")
    for axis, level in zip(axes[len(levels) + 1:], believing, strict=True):
        _beliefs(axis, result, level, time_ms)
    axes[-1].set_xlabel("time (ms)")
    for axis in axes:
        mark_trials(axis, result)
    _name_trials(axes[0], result)
    figure.suptitle(f"{result.attrs['scenario_name']} as spiking neurons (seed {result.seed})")
    return figure  # laid out by draw


def _raster(axis: plt.Axes, level: str, index: int, levels: int, populations: dict) -> None:
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
                     linewidths=0.5, color=colour(population, index, levels), label=population,
                     rasterized=True)
        row += units * per_unit
    axis.set_ylabel(f"{level}\nneuron")
    if row:
        axis.set_ylim(-0.5, row - 0.5)
        axis.legend(fontsize=6, ncol=4, loc="upper right", markerscale=8)


def _beliefs(axis: plt.Axes, result: Result, level: str, time_ms: np.ndarray) -> None:
    """The level's first units' decoded beliefs, each over the rate model's (dashed) where
    the file holds it."""
    decoded = np.asarray(result[f"levels/{level}/belief"][:, :RASTER_UNITS])
    reference = f"{RATE_REFERENCE}/levels/{level}/belief"
    rate = np.asarray(result[reference][:, :RASTER_UNITS]) if reference in result else None
    for unit in range(decoded.shape[1]):
        shade = plt.get_cmap("tab10")(unit % 10)
        axis.plot(time_ms, decoded[:, unit], lw=0.7, color=shade, label=f"{level}[{unit}]")
        if rate is not None:
            axis.plot(time_ms, rate[:, unit], lw=1.6, ls="--", color=shade,
                      label="rate model" if unit == 0 else None)
    axis.set_ylabel(f"{level}\ndecoded belief")
    axis.legend(fontsize=6, ncol=5, loc="upper right")


def _name_trials(axis: plt.Axes, result: Result) -> None:
    """Each trial's name above the first panel, at its start."""
    starts = np.ravel(result.trials.get("t_start", []))
    if not len(starts) or len(starts) > MAX_TRIAL_MARKS:
        return
    names = [str(name) for name in np.ravel(result.trials["name"])]
    for start, name in zip(starts, names, strict=True):
        axis.text(start * 1e3, 1.02, name, transform=axis.get_xaxis_transform(), fontsize=7,
                  ha="left", va="bottom", gid=DECORATION)
