"""The figure of an ERP experiment (``sim.readouts.erp``; the oddball scenarios).

Per ERP level: the standards' mean ERP by repetition (the first five repetitions present) with
the deviants' mean, and the mismatch wave (deviants minus standards); below, each trial's peak
|ERP| over the sequence, marked by kind, and the standards' mean peak by repetition (repetition
suppression) against the deviants' mean. Everything is read from the result. What an ERP sums
and its units follow the traces' own declaration (``circuits.variables.ERP``, written beside
each ``erp/trials/<level>``; ``summed``), not the figure.
"""

from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np

from circuits.variables import ERP
from sim.io.reader import Result, declared
from sim.report.figures import DECORATION
from sim.report.figures.traces import quantity, with_units

REPETITIONS = 5  # standards' repetitions drawn
KIND_STYLE = {"standard": ("tab:blue", "o"), "deviant": ("tab:red", "s"),
              "first": ("0.4", "^")}


def plot_erp(result: Result) -> plt.Figure:
    attrs = result.group_attrs["erp"]
    levels = [name.decode() if isinstance(name, bytes) else str(name) for name in attrs["levels"]]
    trials = result.trials
    kinds = np.asarray(trials["kind"]) if "kind" in trials else None
    repetition = np.asarray(trials["repetition"]) if "repetition" in trials else None
    time_ms = result["erp/time"] * 1e3
    field = str(attrs.get("field", "signed"))
    sums = {level: summed(result, level, field) for level in levels}
    figure, axes = plt.subplots(len(levels) + 1, 2, figsize=(11, 2.6 * (len(levels) + 1)),
                                squeeze=False)
    for row, level in enumerate(levels):
        traces = result[f"erp/trials/{level}"]
        what, units = sums[level]
        _by_repetition(axes[row, 0], time_ms, traces, kinds, repetition)
        axes[row, 0].set_ylabel(with_units(f"ERP {level}\n({what})", units), fontsize=8)
        if f"erp/mismatch/{level}" in result:
            axes[row, 1].plot(time_ms, result[f"erp/mismatch/{level}"], color="k")
            axes[row, 1].axhline(0.0, color="0.7", lw=0.8, gid=DECORATION)
            axes[row, 1].set_ylabel(with_units(f"mismatch wave {level}\n(deviant - standard)",
                                               units), fontsize=8)
        else:
            axes[row, 1].plot(time_ms, np.nanmean(traces, axis=0), color="k")
            axes[row, 1].set_ylabel(with_units(f"mean ERP {level}", units), fontsize=8)
    for axis in axes[:-1].ravel():
        axis.set_xlabel("time from the tone's onset (ms)", fontsize=8)
    _peaks(axes[-1, 0], trials, levels[0], kinds, sums[levels[0]][1])
    shared = {units for _, units in sums.values()}  # the levels' units, if one for all
    _suppression(axes[-1, 1], trials, levels, kinds, repetition,
                 shared.pop() if len(shared) == 1 else "")
    figure.suptitle(f"{result.attrs['scenario_name']} (seed {result.seed})")
    return figure


def summed(result: Result, level: str, field: str) -> tuple[str, str]:
    """What the ERP of ``level`` is, in words (its declared label and symbol: ``signed sum of
    error eps``), and its units, as declared beside ``erp/trials/<level>``; a file written
    before the ERP declared its traces: ``circuits.variables.ERP`` on the level's units."""
    path = f"erp/trials/{level}"
    if declared(result, path, "label"):
        return quantity(result, path), result.units(path)
    variable = ERP.get(field, ERP["signed"])
    levels = result.parameters["model"]["levels"]
    units = next((str(item.get("units", "1")) for item in levels if item["name"] == level), "1")
    return f"{variable.label} {variable.symbol}", variable.units_for(units)


def _by_repetition(axis: plt.Axes, time_ms: np.ndarray, traces: np.ndarray,
                   kinds: np.ndarray | None, repetition: np.ndarray | None) -> None:
    if kinds is None or repetition is None:
        axis.plot(time_ms, traces.T, color="0.6", lw=0.6)
        return
    standard = kinds == "standard"
    shown = sorted(set(repetition[standard].tolist()))[:REPETITIONS]
    colours = plt.cm.Blues(np.linspace(0.9, 0.35, max(len(shown), 1)))
    for colour, count in zip(colours, shown, strict=False):
        chosen = standard & (repetition == count)
        axis.plot(time_ms, np.nanmean(traces[chosen], axis=0), color=colour,
                  label=f"standard, repetition {count} ({chosen.sum()})")
    deviant = kinds == "deviant"
    if deviant.any():
        axis.plot(time_ms, np.nanmean(traces[deviant], axis=0), color="tab:red", lw=1.8,
                  label=f"deviant ({deviant.sum()})")
    axis.axhline(0.0, color="0.7", lw=0.8, gid=DECORATION)
    axis.legend(fontsize=6, loc="upper right")  # moved off the data by settle_legends


def _peaks(axis: plt.Axes, trials, level: str, kinds: np.ndarray | None, units: str) -> None:
    peaks = np.asarray(trials[f"erp_peak/{level}"])
    number = np.arange(len(peaks))
    axis.plot(number, peaks, color="0.8", lw=0.8)
    for kind, (colour, marker) in KIND_STYLE.items():
        chosen = np.ones(len(peaks), bool) if kinds is None else kinds == kind
        if chosen.any():
            axis.plot(number[chosen], peaks[chosen], marker, color=colour, ms=3, ls="none",
                      label=kind if kinds is not None else None)
        if kinds is None:
            break
    axis.set_xlabel("trial")
    axis.set_ylabel(with_units(f"peak |ERP| {level}", units), fontsize=8)
    if kinds is not None:
        axis.legend(fontsize=6)


def _suppression(axis: plt.Axes, trials, levels: list[str], kinds: np.ndarray | None,
                 repetition: np.ndarray | None, units: str) -> None:
    if kinds is None or repetition is None:
        axis.set_visible(False)
        return
    standard = kinds == "standard"
    shown = sorted(set(repetition[standard].tolist()))
    for level in levels:
        peaks = np.asarray(trials[f"erp_peak/{level}"])
        means = [peaks[standard & (repetition == count)].mean() for count in shown]
        line, = axis.plot(shown, means, "o-", ms=3, label=f"{level}: standards")
        if (kinds == "deviant").any():
            axis.axhline(peaks[kinds == "deviant"].mean(), color=line.get_color(), ls="--",
                         lw=1, label=f"{level}: deviants")
    axis.set_xlabel("repetition of the standard (1: the first tone after a change)")
    axis.set_ylabel(with_units("mean peak |ERP|", units), fontsize=8)
    axis.legend(fontsize=6)
