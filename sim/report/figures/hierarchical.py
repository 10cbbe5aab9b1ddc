"""The figure of a hierarchical result: beliefs and errors per level, and F, over time.

Per level one panel of lines (a colour per unit, named in a legend; belief solid, error
dashed) where it has at most ``MAX_LINES`` units, an image per quantity (units over time, a
colour map) where it has more; precisions that change over the run (log scale) and a learned
prior mean below; mean reaction times per condition where the readout is on.

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
from sim.report.figures.traces import MAX_LINES, MAX_POINTS, draw_series, sampled, with_units

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
    panels = _panels(result)
    rows = max(1, len(panels))
    trials = result.trials
    if "surprise" not in trials:
        times = "reaction_time/mean_ms" in result
        curves = has_learning_curves(result)
        covariance = bool(covariance_paths(result))
        below = curves + covariance + times  # per-trial panels under the time series
        figure = plt.figure(figsize=(10, 2.2 * (rows + below) + 0.6))
        grid = figure.add_gridspec(rows + below, 1)
        axes = [figure.add_subplot(grid[0, 0])]
        axes += [figure.add_subplot(grid[row, 0], sharex=axes[0]) for row in range(1, rows)]
        _time_series(result, panels, axes)
        if curves:
            learning_curves(result, figure, grid[rows, 0])
        if covariance:
            draw_covariance(result, figure.add_subplot(grid[rows + curves, 0]))
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
    _time_series(result, panels, axes)
    if "free_energy" in result:
        _surprise_under_f(result, axes[-1])
    if posteriors:
        _posteriors(result, figure, grid[rows, 0])
    _gap(result, figure.add_subplot(grid[-1, 0]))
    figure.suptitle(f"{result.attrs['scenario_name']} (seed {result.seed})")
    figure.tight_layout()
    return figure


def _panels(result: Result) -> list[tuple[str, list[str], bool]]:
    """(level, time series, log scale) per panel, top to bottom: per level its input or belief
    with its error (one panel of lines for few units, an image each for many), the precisions
    that change over the run, a learned prior mean; then F (level "")."""
    panels: list[tuple[str, list[str], bool]] = []
    for name in result.level_names:
        traces = result.level(name)
        shown = [f"levels/{name}/{key}" for key in ("input", "belief", "error") if key in traces]
        if not shown:
            continue
        if max(_width(result, path) for path in shown) <= MAX_LINES:
            panels.append((name, shown, False))
        else:
            panels += [(name, [path], False) for path in shown]
    panels += [(name, [f"levels/{name}/precision"], True) for name in _varying_precision(result)]
    panels += [(path.split("/")[1], [path], False) for path in result.datasets
               if path.endswith("/prior_mean")]
    if "free_energy" in result:
        panels.append(("", ["free_energy"], False))
    return panels


def _width(result: Result, path: str) -> int:
    shape = result.shape(path)
    return shape[1] if len(shape) > 1 else 1


def _time_series(result: Result, panels: list[tuple[str, list[str], bool]],
                 axes: list[plt.Axes]) -> None:
    if not panels:
        axes[0].text(0.5, 0.5, "no time series recorded ([record] variables)", ha="center",
                     transform=axes[0].transAxes)
    for axis, (level, paths, log) in zip(axes, panels, strict=False):
        if level:
            draw_series(axis, result, level, paths, log=log)
        else:
            _free_energy(result, axis)
        mark_trials(axis, result)
        if axis is not axes[-1]:
            axis.tick_params(labelbottom=False)
    axes[-1].set_xlabel("time (ms)")


def _free_energy(result: Result, axis: plt.Axes) -> None:
    """F over time; where its Laplace term was computed at some samples only ([record]
    laplace), its points over the energy line (no line through the gaps)."""
    time_ms, free_energy = sampled(result, "free_energy", MAX_POINTS)
    known = np.isfinite(free_energy)
    if known.all():
        axis.plot(time_ms, free_energy, color="black")
    else:
        if "energy" in result:
            axis.plot(*sampled(result, "energy", MAX_POINTS), color="0.6", lw=0.8,
                      label="energy part (every sample)")
        axis.plot(time_ms[known], free_energy[known], "o", color="black", ms=3,
                  label="F (where its Laplace term was computed)")
        axis.legend(fontsize=7, loc="best")
    axis.set_ylabel(with_units("free energy F", result.units("free_energy")), fontsize=8)


def _varying_precision(result: Result) -> list[str]:
    """The levels whose recorded precision changes over the run (scheduled, inferred,
    learned), read a block of samples at a time."""
    found = []
    for name in result.level_names:
        traces = result.level(name)
        if "precision" in traces and len(traces["precision"]):
            precision = traces["precision"]
            first = precision[0]
            if any(np.any(block != first) for _, block in precision.blocks()):
                found.append(name)
    return found


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
    axis.set_ylabel("variational gap\n(nat)", fontsize=8)
    axis.legend(fontsize=7, loc="upper right")
