"""Learning curves of a result whose trial table has them (``sim.readouts.learning_curve``):
per trial the reconstruction error, F at the trial's end and, where the world's weights are
known, the largest principal angle between the learned and the true column spaces. Trials
that learn nothing (a test phase) are shaded; a line shows the mean of the last ``SMOOTH``
trials."""

from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np

from sim.io.reader import Result

SMOOTH = 10  # trials in the running mean drawn over the points
CURVES = (("reconstruction_error", "reconstruction\nerror", "tab:blue", True),
          ("final_free_energy", "F at trial end\n(nat)", "tab:red", False),
          ("weight_angle", "angle to true W\n(degrees)", "tab:green", True))


def has_learning_curves(result: Result) -> bool:
    return "reconstruction_error" in result.trials


def learning_curves(result: Result, figure: plt.Figure, cell) -> None:
    """One small panel per curve, side by side in ``cell`` (a gridspec cell)."""
    trials = result.trials
    shown = [curve for curve in CURVES if curve[0] in trials]
    grid = cell.subgridspec(1, len(shown), wspace=0.35)
    number = np.arange(len(trials["reconstruction_error"]))
    frozen = np.array([not text for text in trials["learned"]]) if "learned" in trials else None
    for column, (key, label, color, log) in enumerate(shown):
        axis = figure.add_subplot(grid[0, column])
        values = np.asarray(trials[key], dtype=float)
        axis.plot(number, values, ".", color=color, ms=3, alpha=0.5)
        if len(values) >= 2 * SMOOTH:  # single trials are noisy: their running mean too
            kernel = np.ones(SMOOTH) / SMOOTH
            axis.plot(number[SMOOTH - 1:], np.convolve(values, kernel, mode="valid"),
                      color=color, lw=1.5)
        if log and np.any(values > 0):
            axis.set_yscale("log")
        if frozen is not None and frozen.any():
            for index in np.flatnonzero(frozen):
                axis.axvspan(index - 0.5, index + 0.5, color="0.9", lw=0)
        axis.set_xlabel("trial", fontsize=8)
        axis.set_ylabel(label, fontsize=8)
        axis.tick_params(labelsize=7)
    if frozen is not None and frozen.any():
        figure.axes[-len(shown)].set_title("shaded: trials that learn nothing", fontsize=7,
                                           loc="left")
