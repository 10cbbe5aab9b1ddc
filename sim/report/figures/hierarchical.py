"""The figure of a hierarchical result: beliefs and errors per level, and F, over time.

Where the trial table holds the exact reference (``reference_posterior`` readout: columns
``surprise``, ``kl``, ...), the figure adds the variational gap: the surprise -ln p(x) of
each trial under F, the exact F of the circuit's Gaussian Q at each trial's end, per trial the
exact posterior density (stored on its grid, ``reference_grid`` / ``reference_density``, with
<= 2 belief units) against the Laplace Q, and per trial KL[Q || posterior] and the Laplace
error F_L - surprise. Everything is read from the result: the report side never imports Brian2
nor the model's code.
"""

from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np

from sim.io.reader import Result
from sim.report.figures import mark_trials, register
from sim.report.figures.basis import learned_images, plot_basis
from sim.report.figures.covariance import covariance_paths, draw_covariance
from sim.report.figures.erp import plot_erp
from sim.report.figures.learning import has_learning_curves, learning_curves

MAX_POSTERIORS = 6  # posterior panels shown (the first trials)
MIN_GAP_RANGE = 0.05  # nat: the gap panel's smallest half-range


@register("hierarchical")
def plot_hierarchical(result: Result) -> plt.Figure:
    """Beliefs and errors per level, and free energy, over time (ms); the gap if stored."""
    if "erp/time" in result:  # an ERP experiment (sim.readouts.erp): its own figure
        return plot_erp(result)
    learned = learned_images(result)
    if learned:  # basis images learned over a 2-D level (sim.report.figures.basis)
        return plot_basis(result, learned)
    names = result.level_names
    rows = len(names) + ("free_energy" in result)
    trials = result.trials
    if "surprise" not in trials:
        varying = _varying_precision(result)
        times = "reaction_time/mean_ms" in result
        learned = [p for p in result.datasets if p.endswith("/prior_mean")]
        curves = has_learning_curves(result)
        covariance = bool(covariance_paths(result))
        extra = bool(varying) + times + bool(learned) + curves + covariance
        figure = plt.figure(figsize=(9, 2.2 * (rows + extra)))
        grid = figure.add_gridspec(rows + extra, 1)
        axes = [figure.add_subplot(grid[0, 0])]
        axes += [figure.add_subplot(grid[row, 0], sharex=axes[0])
                 for row in range(1, rows + bool(varying))]
        _time_series(result, axes[:rows])
        if varying:
            axes[rows - 1].set_xlabel("")
            _precision(result, axes[rows], varying)
        if learned:
            axes[-1].set_xlabel("")
            axis = figure.add_subplot(grid[rows + bool(varying), 0], sharex=axes[0])
            for path in learned:
                axis.plot(result.time * 1e3, result[path], color="tab:green")
            axis.set_ylabel("learned prior\nmean m", fontsize=8)
            axis.set_xlabel("time (ms)")
            mark_trials(axis, result)
        if curves:
            learning_curves(result, figure, grid[rows + bool(varying) + bool(learned), 0])
        if covariance:
            draw_covariance(result, figure.add_subplot(grid[rows + extra - 1 - times, 0]))
        if times:
            _reaction_times(result, figure.add_subplot(grid[-1, 0]))
        figure.suptitle(f"{result.attrs['scenario_name']} (seed {result.seed})")
        figure.tight_layout()
        return figure

    posteriors = "reference_density" in trials
    extra = [2.6] * posteriors + [2.2]
    figure = plt.figure(figsize=(12, 2.2 * rows + sum(extra) + 0.4))
    grid = figure.add_gridspec(rows + len(extra), 1, height_ratios=[2.2] * rows + extra)
    axes = [figure.add_subplot(grid[0, 0])]
    axes += [figure.add_subplot(grid[row, 0], sharex=axes[0]) for row in range(1, rows)]
    _time_series(result, axes)
    for axis in axes[:-1]:
        axis.tick_params(labelbottom=False)
    if "free_energy" in result:
        _surprise_under_f(result, axes[-1])
    if posteriors:
        _posteriors(result, figure, grid[rows, 0])
    _gap(result, figure.add_subplot(grid[-1, 0]))
    figure.suptitle(f"{result.attrs['scenario_name']} (seed {result.seed})")
    figure.tight_layout()
    return figure


def _time_series(result: Result, axes: list[plt.Axes]) -> None:
    time_ms = result.time * 1e3
    for axis, name in zip(axes, result.level_names, strict=False):
        traces = result.level(name)
        state_key = "input" if "input" in traces else "belief"
        if state_key in traces:
            axis.plot(time_ms, traces[state_key], lw=1.2, color="tab:blue", alpha=0.8)
        if "error" in traces:
            axis.plot(time_ms, traces["error"], lw=0.8, color="tab:red", alpha=0.6)
        axis.set_ylabel(f"{name}\n{state_key} (blue)\nerror (red)", fontsize=8)
        mark_trials(axis, result)
    if "free_energy" in result:
        axis = axes[-1]
        free_energy = result.free_energy
        known = np.isfinite(free_energy)
        if known.all():
            axis.plot(time_ms, free_energy, color="black")
        else:  # the Laplace term at some samples only ([record] laplace): no line through gaps
            if "energy" in result:
                axis.plot(time_ms, result["energy"], color="0.6", lw=0.8,
                          label="energy part (every sample)")
            axis.plot(time_ms[known], free_energy[known], "o", color="black", ms=3,
                      label="F (where its Laplace term was computed)")
            axis.legend(fontsize=7, loc="best")
        axis.set_ylabel("F (nat)")
        mark_trials(axis, result)
    axes[-1].set_xlabel("time (ms)")


def _varying_precision(result: Result) -> dict[str, np.ndarray]:
    """The recorded precisions that change over the run (scheduled, inferred, learned)."""
    found = {}
    for name in result.level_names:
        traces = result.level(name)
        if "precision" in traces:
            precision = traces["precision"]
            if len(precision) and np.any(precision != precision[0]):
                found[name] = precision
    return found


def _precision(result: Result, axis: plt.Axes, varying: dict[str, np.ndarray]) -> None:
    """Precision over time, log scale, one line per unit (labelled where few)."""
    time_ms = result.time * 1e3
    for name, precision in varying.items():
        units = precision.shape[1]
        for unit in range(units):
            axis.semilogy(time_ms, precision[:, unit], lw=1.0,
                          label=f"{name}[{unit}]" if units <= 8 else None)
    axis.set_ylabel("precision Pi", fontsize=8)
    if sum(p.shape[1] for p in varying.values()) <= 8:
        axis.legend(fontsize=7, loc="best")
    mark_trials(axis, result)
    axis.set_xlabel("time (ms)")


def _reaction_times(result: Result, axis: plt.Axes) -> None:
    """Mean reaction time of correct trials per condition, misses noted on the bars."""
    conditions = [str(c) for c in result["reaction_time/condition"]]
    means = result["reaction_time/mean_ms"]
    misses, counts = result["reaction_time/misses"], result["reaction_time/count"]
    places = np.arange(len(conditions))
    axis.bar(places, np.nan_to_num(means), color="tab:blue", alpha=0.8)
    for place, mean, missed, count in zip(places, means, misses, counts, strict=True):
        label = f"{mean:.1f}" if np.isfinite(mean) else "all missed"
        if missed:
            label += f"\n{missed}/{count} missed"
        axis.text(place, np.nan_to_num(mean), label, ha="center", va="bottom", fontsize=7)
    axis.set_xticks(places, conditions, fontsize=8, rotation=20)
    axis.set_ylabel("mean reaction\ntime (ms)", fontsize=8)


def _surprise_under_f(result: Result, axis: plt.Axes) -> None:
    """Each trial's surprise as a line over the trial; F[Q] of its final Q over its last
    fifth."""
    trials = result.trials
    start, stop = trials["t_start"] * 1e3, trials["t_stop"] * 1e3
    axis.hlines(trials["surprise"], start, stop, color="tab:red", ls="--", lw=1.2,
                label="surprise -ln p(x)")
    axis.hlines(trials["gaussian_free_energy"], stop - 0.2 * (stop - start), stop,
                color="tab:purple", lw=2.0, label="F[Q] of the final Gaussian Q (exact)")
    axis.plot([], [], color="black", label="F (Laplace), descended")
    axis.legend(fontsize=7, loc="upper right")


def _stacked(result: Result, prefix: str, index: int) -> np.ndarray:
    """A per-level column of one trial, stacked over the belief levels (level 1 first)."""
    return np.concatenate([np.atleast_1d(result.trials[f"{prefix}/{name}"][index])
                           for name in result.level_names[1:]])


def _posteriors(result: Result, figure: plt.Figure, cell) -> None:
    """Per trial: the exact posterior density on its grid and the Laplace Q."""
    trials = result.trials
    shown = [i for i in range(len(trials["name"]))
             if np.all(np.isfinite(trials["reference_density"][i]))][:MAX_POSTERIORS]
    if not shown:
        return
    panels = cell.subgridspec(1, len(shown), wspace=0.3)
    for column, index in enumerate(shown):
        axis = figure.add_subplot(panels[0, column])
        grid = trials["reference_grid"][index]
        density = trials["reference_density"][index]
        m = _stacked(result, "final_belief", index)
        if len(grid) == 1:
            _posterior_1d(axis, result, index, grid[0], density, m[0])
        else:
            _posterior_2d(axis, result, index, grid, density, m)
        axis.set_title(f"{trials['name'][index]}: KL {trials['kl'][index]:.3g} nat", fontsize=8)
        axis.tick_params(labelsize=7)
        if column == 0:
            axis.legend(fontsize=6, loc="upper left")


def _posterior_1d(axis: plt.Axes, result: Result, index: int, grid: np.ndarray,
                  density: np.ndarray, m: float) -> None:
    variance = _stacked(result, "laplace_variance", index)[0]
    mean = _stacked(result, "reference_mean", index)[0]
    axis.fill_between(grid, density, color="0.75", label="exact posterior")
    if np.isfinite(variance) and variance > 0:
        laplace = np.exp(-0.5 * (grid - m) ** 2 / variance) / np.sqrt(2 * np.pi * variance)
        axis.plot(grid, laplace, color="tab:blue", lw=1.2, label="Laplace Q")
    axis.axvline(mean, color="black", ls=":", lw=1.0, label="exact mean")
    axis.set_xlabel(result.level_names[-1], fontsize=7)


def _posterior_2d(axis: plt.Axes, result: Result, index: int, grid: np.ndarray,
                  density: np.ndarray, m: np.ndarray) -> None:
    axis.contourf(grid[0], grid[1], density.T, levels=12, cmap="Greys")
    covariance = result.trials["laplace_covariance"][index]
    if np.all(np.isfinite(covariance)):
        values, vectors = np.linalg.eigh(covariance)
        if np.all(values > 0):
            angle = np.linspace(0, 2 * np.pi, 200)
            circle = np.stack([np.cos(angle), np.sin(angle)])
            for radius in (1.0, 2.0):
                ellipse = m[:, None] + radius * vectors @ (np.sqrt(values)[:, None] * circle)
                axis.plot(ellipse[0], ellipse[1], color="tab:blue", lw=1.0,
                          label="Laplace Q (1, 2 sd)" if radius == 1.0 else None)
    mean = _stacked(result, "reference_mean", index)
    axis.plot(mean[0], mean[1], "x", color="black", label="exact mean")
    labels = [f"{name}[{unit}]" for name in result.level_names[1:]
              for unit in range(int(result.group_attrs[f"levels/{name}"]["size"]))]
    axis.set_xlabel(labels[0], fontsize=7)
    axis.set_ylabel(labels[1], fontsize=7)


def _gap(result: Result, axis: plt.Axes) -> None:
    """Per trial: KL[Q || posterior] >= 0 and the Laplace error F_L - surprise (either sign)."""
    trials = result.trials
    x = np.arange(len(trials["name"]))
    axis.bar(x - 0.2, trials["kl"], width=0.4, color="tab:purple",
             label="KL[Q || posterior] = F[Q] - surprise")
    axis.bar(x + 0.2, trials["laplace_error"], width=0.4, color="0.5",
             label="Laplace F - surprise")
    axis.axhline(0.0, color="black", lw=0.8)
    values = np.concatenate([trials["kl"], trials["laplace_error"]])
    values = values[np.isfinite(values)]
    if values.size and np.max(np.abs(values)) < MIN_GAP_RANGE:  # rounding, not a gap
        axis.set_ylim(-MIN_GAP_RANGE, MIN_GAP_RANGE)
    axis.set_xticks(x, [str(name) for name in trials["name"]], fontsize=7)
    axis.set_ylabel("nat")
    axis.legend(fontsize=7, loc="upper right")
