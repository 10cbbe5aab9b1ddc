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

import textwrap

import matplotlib.pyplot as plt
import numpy as np

from sim.io.reader import Result, declared
from sim.report.figures import DECORATION, mark_trials, register
from sim.report.figures.basis import learned_images, plot_basis
from sim.report.figures.covariance import covariance_paths, draw_covariance
from sim.report.figures.erp import plot_erp
from sim.report.figures.learning import has_learning_curves, learning_curves
from sim.report.figures.references import (
    cue_weights,
    draw_cue_weights,
    draw_final_beliefs,
    draw_references,
)
from sim.report.figures.traces import (
    MAX_POINTS,
    declared_panels,
    draw_series,
    drawn,
    sampled,
    with_units,
)

MAX_POSTERIORS = 8  # posterior panels shown (the first trials)
MIN_GAP_RANGE = 0.05  # nat: the gap panel's smallest half-range
NO_GAP = 1e-9  # nat: a largest |KL| and |F_L - surprise| below this is rounding (linear models)
TITLE_CHARACTERS = 24  # of a trial's name in a posterior panel's title


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
        times = "decision/mean_ms" in result
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
        return figure

    posteriors = "reference_density" in trials
    weights = cue_weights(result)
    extra = [2.6] * posteriors + [2.2] + [2.2] * (weights is not None)
    figure = plt.figure(figsize=(12, 2.2 * rows + sum(extra) + 0.4))
    grid = figure.add_gridspec(rows + len(extra), 1, height_ratios=[2.2] * rows + extra)
    axes = [figure.add_subplot(grid[0, 0])]
    axes += [figure.add_subplot(grid[row, 0], sharex=axes[0]) for row in range(1, rows)]
    _time_series(result, panels, axes)
    if "free_energy" in result:
        _surprise_under_f(result, axes[-1])
    if posteriors:
        _posteriors(result, figure, grid[rows, 0])
    below = figure.add_subplot(grid[rows + posteriors, 0])
    if _has_gap(result):
        _gap(result, below)
    else:  # a linear model: Q is the exact posterior; its mean is the claim
        draw_final_beliefs(result, below)
    if weights is not None:
        draw_cue_weights(result, figure.add_subplot(grid[-1, 0]), weights)
    figure.suptitle(f"{result.attrs['scenario_name']} (seed {result.seed})")
    return figure


def _panels(result: Result) -> list[tuple[str, list[str], bool]]:
    """(level, time series, log scale) per panel, top to bottom, from the recorded variables'
    declarations (``circuits.variables``, read from each dataset's ``declared_*``
    attributes): per level the variables that share a ``panel`` (input or belief with its
    error: one panel of lines for few units, an image each for many), then each other drawn
    variable in a panel of its own (log scale where it is declared ``log``; one declared
    ``varying`` only where it changes over the run); then F (level "")."""
    first: list[tuple[str, list[str], bool]] = []
    later: list[tuple[str, list[str], bool]] = []
    for name in result.level_names:
        for paths, plot, shared in declared_panels(result, drawn(result, f"levels/{name}/")):
            into = first if shared or declared(result, paths[0], "role") in SHARED else later
            into.append((name, paths, plot == "log"))
    panels = first + later
    if "free_energy" in result:
        panels.append(("", ["free_energy"], False))
    return panels


SHARED = ("input", "state", "error")  # roles drawn at the top, per level


def _time_series(result: Result, panels: list[tuple[str, list[str], bool]],
                 axes: list[plt.Axes]) -> None:
    if not panels:
        axes[0].text(0.5, 0.5, "no time series recorded ([record] variables)", ha="center",
                     transform=axes[0].transAxes)
    for axis, (level, paths, log) in zip(axes, panels, strict=False):
        if level:
            draw_series(axis, result, level, paths, log=log)
            draw_references(axis, result, level, paths)
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


def _reaction_times(result: Result, axis: plt.Axes) -> None:
    """Mean reaction time of correct trials per condition, with 1 s.d. over those trials;
    conditions named ``<kind>_<rest>`` (``valid_left``) grouped by kind, the groups in order of
    their mean (valid, neutral, invalid); misses noted on the bars."""
    conditions = [str(c) for c in result["decision/condition"]]
    means = np.asarray(result["decision/mean_ms"], dtype=float)
    misses, counts = result["decision/misses"], result["decision/count"]
    spreads = _spreads(result, conditions)
    kinds = [c.split("_", 1)[0] for c in conditions]
    groups = sorted(dict.fromkeys(kinds), key=lambda k: np.nanmean(
        [m for m, kind in zip(means, kinds, strict=True) if kind == k] or [np.nan]))
    order = sorted(range(len(conditions)), key=lambda i: (groups.index(kinds[i]),
                                                          conditions[i]))
    colours = plt.get_cmap("tab10").colors
    places = np.array([i + 0.5 * groups.index(kinds[c]) for i, c in enumerate(order)])
    for place, index in zip(places, order, strict=True):
        mean, spread = means[index], spreads[index]
        colour = colours[groups.index(kinds[index]) % len(colours)]
        axis.bar(place, np.nan_to_num(mean), color=colour, alpha=0.85,
                 label=kinds[index] if conditions[index] == min(
                     c for c in conditions if c.split("_", 1)[0] == kinds[index]) else None)
        if np.isfinite(spread):
            axis.errorbar(place, mean, yerr=spread, color="black", capsize=3, lw=1)
        label = f"{mean:.1f}" if np.isfinite(mean) else "all missed"
        if misses[index]:
            label += f"\n{misses[index]}/{counts[index]} missed"
        top = np.nan_to_num(mean) + (spread if np.isfinite(spread) else 0.0)
        axis.text(place + 0.3, top, label, ha="left", va="bottom", fontsize=7)
    axis.set_xticks(places, [conditions[i].replace("_", " ") for i in order], fontsize=8)
    axis.set_xlabel("condition (error bars: 1 s.d. over its correct trials)", fontsize=8)
    axis.set_ylabel("mean reaction\ntime (ms)", fontsize=8)
    axis.set_ylim(0, 1.25 * max(float(np.nanmax(means + np.nan_to_num(spreads))), 1e-9))
    axis.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1.0), frameon=False)


def _spreads(result: Result, conditions: list[str]) -> np.ndarray:
    """1 s.d. of the reaction times of each condition's correct trials (NaN: unknown)."""
    trials = result.trials
    if not {"condition", "decision_time"} <= set(trials):
        return np.full(len(conditions), np.nan)
    kinds = np.asarray(trials["condition"]).astype(str)
    times = np.asarray(trials["decision_time"], dtype=float)
    correct = (np.asarray(trials["correct"], bool) if "correct" in trials
               else np.ones(len(times), bool))
    out = []
    for condition in conditions:
        chosen = times[(kinds == condition) & correct & np.isfinite(times)]
        out.append(float(np.std(chosen)) if chosen.size > 1 else np.nan)
    return np.array(out)


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
    axis.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1.0), frameon=False)


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
    panels = cell.subgridspec(1, len(shown), wspace=0.55)
    for column, index in enumerate(shown):
        axis = figure.add_subplot(panels[0, column])
        grid = trials["reference_grid"][index]
        density = trials["reference_density"][index]
        m = _stacked(result, "final_belief", index)
        if len(grid) == 1:
            _posterior_1d(axis, result, index, grid[0], density, m[0])
        else:
            _posterior_2d(axis, result, index, grid, density, m)
        name = textwrap.shorten(str(trials["name"][index]), TITLE_CHARACTERS, placeholder="...")
        axis.set_title(f"{name}\nKL {trials['kl'][index]:.3g} nat", fontsize=8)
        axis.tick_params(labelsize=7)
        if column == len(shown) - 1:
            axis.legend(fontsize=6, loc="upper left", bbox_to_anchor=(1.02, 1.0),
                        frameon=False)


def _posterior_1d(axis: plt.Axes, result: Result, index: int, grid: np.ndarray,
                  density: np.ndarray, m: float) -> None:
    variance = _stacked(result, "laplace_variance", index)[0]
    mean = _stacked(result, "reference_mean", index)[0]
    axis.fill_between(grid, density, color="0.75", label="exact posterior")
    if np.isfinite(variance) and variance > 0:
        laplace = np.exp(-0.5 * (grid - m) ** 2 / variance) / np.sqrt(2 * np.pi * variance)
        axis.plot(grid, laplace, color="tab:blue", lw=1.2, label="Laplace Q")
    axis.axvline(mean, color="black", ls=":", lw=1.0, label="exact mean")
    if "reference_mode/" + result.level_names[-1] in result.trials:  # the claim: mu -> mode
        mode = _stacked(result, "reference_mode", index)[0]
        if abs(mode - mean) > 1e-3 * (grid[-1] - grid[0]):  # else the mean's line is it
            axis.axvline(mode, color="tab:red", ls="--", lw=1.0, label="exact mode")
    top = result.level_names[-1]
    units = result.units(f"levels/{top}/belief") if f"levels/{top}/belief" in result else "1"
    axis.set_xlabel(with_units(top, units), fontsize=7)
    axis.set_ylabel("density", fontsize=7)


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


def _gap_sizes(result: Result) -> np.ndarray:
    """|KL| and |Laplace error| of every trial where they are finite."""
    values = np.concatenate([np.ravel(result.trials["kl"]),
                             np.ravel(result.trials["laplace_error"])])
    return np.abs(values[np.isfinite(values)])


def _has_gap(result: Result) -> bool:
    """Whether the variational gap is more than rounding in some trial."""
    sizes = _gap_sizes(result)
    return bool(sizes.size) and float(np.max(sizes)) > NO_GAP


def _gap(result: Result, axis: plt.Axes) -> None:
    """Per trial: KL[Q || posterior] >= 0 and the Laplace error F_L - surprise (either sign)."""
    trials = result.trials
    x = np.arange(len(trials["name"]))
    axis.bar(x - 0.2, trials["kl"], width=0.4, color="tab:purple",
             label="KL[Q || posterior] = F[Q] - surprise")
    axis.bar(x + 0.2, trials["laplace_error"], width=0.4, color="0.5",
             label="Laplace F - surprise")
    axis.axhline(0.0, color="black", lw=0.8, gid=DECORATION)
    sizes = _gap_sizes(result)
    if sizes.size and np.max(sizes) < MIN_GAP_RANGE:  # rounding, not a gap
        axis.set_ylim(-MIN_GAP_RANGE, MIN_GAP_RANGE)
    axis.set_xticks(x, [str(name) for name in trials["name"]], fontsize=7)
    axis.set_xlabel("trial")
    axis.set_ylabel("variational gap\n(nat)", fontsize=8)
    axis.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1.0), frameon=False)
