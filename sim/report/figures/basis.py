"""The figure of a network that learned basis images: the columns of its learned weights,
drawn on the grid of the level below (``shape``), before and after learning, and F at each
trial's end (the learning curve). ``plot_hierarchical`` draws it for a result with learned
weights (``levels/<name>/weights_final``) over a level laid out in 2-D (the bars problem,
``scenarios/learning/bars.toml``)."""

from __future__ import annotations

import itertools
import math

import matplotlib.pyplot as plt
import numpy as np

from sim.io.reader import Result

MAX_IMAGES = 64  # basis images drawn per panel (the first units)
SMOOTHING = 25  # trials in the learning curve's running mean


def learned_images(result: Result) -> list[tuple[str, tuple[int, int]]]:
    """(level name, grid of the level below) for each level whose learned weights predict a
    level laid out in 2-D."""
    levels = result.parameters["model"].get("levels")
    if not isinstance(levels, list) or not all(isinstance(level, dict) for level in levels):
        return []  # parameters that do not describe the levels (pcsim show says so)
    found = []
    for below, level in itertools.pairwise(levels):
        shape = below.get("shape")
        if (isinstance(shape, list) and len(shape) == 2
                and f"levels/{level.get('name')}/weights_final" in result):
            found.append((level["name"], tuple(shape)))
    return found


def plot_basis(result: Result, learned: list[tuple[str, tuple[int, int]]]) -> plt.Figure:
    """Per learning level: its initial and learned basis images (columns of W, on one colour
    scale per panel, up to the largest |w|: a faint image is a weak cause), then F at each
    trial's end."""
    columns = min(8, max(math.ceil(math.sqrt(MAX_IMAGES)), 1))
    panels = []  # (title, weights, grid)
    for name, grid in learned:
        for which in ("initial", "final"):
            weights = result.weights(name, which)
            weights = weights.toarray() if hasattr(weights, "toarray") else np.asarray(weights)
            panels.append((f"{name}: {'learned' if which == 'final' else 'initial'} basis "
                           "images (columns of W)", weights[:, :MAX_IMAGES], grid))
    rows = [math.ceil(weights.shape[1] / columns) for _, weights, _ in panels]
    curve = "final_free_energy" in result.trials
    heights = [*(r + 0.4 for r in rows), 2.4] if curve else [r + 0.4 for r in rows]
    figure = plt.figure(figsize=(columns * 1.1, sum(heights) * 1.1))
    outer = figure.add_gridspec(len(heights), 1, height_ratios=heights)
    for place, ((title, weights, grid), count) in enumerate(zip(panels, rows, strict=True)):
        top = float(np.max(np.abs(weights))) or 1.0
        signed = bool(np.any(weights < 0))  # signed: blue-red around 0; else white to black
        style = ({"cmap": "RdBu_r", "vmin": -top} if signed else {"cmap": "gray_r", "vmin": 0.0})
        inner = outer[place, 0].subgridspec(count, columns, wspace=0.08, hspace=0.08)
        for unit in range(count * columns):
            axis = figure.add_subplot(inner[unit // columns, unit % columns])
            axis.set_xticks([])
            axis.set_yticks([])
            if unit < weights.shape[1]:
                axis.imshow(weights[:, unit].reshape(grid), vmax=top, interpolation="nearest",
                            **style)
            else:
                axis.axis("off")
            if unit == 0:
                axis.set_title(title, fontsize=9, loc="left")
    if curve:
        axis = figure.add_subplot(outer[-1, 0])
        values = np.asarray(result.trials["final_free_energy"], dtype=float)
        trials = np.arange(1, len(values) + 1)
        axis.plot(trials, values, color="0.75", lw=0.6, label="each trial")
        if len(values) >= SMOOTHING:
            mean = np.convolve(values, np.ones(SMOOTHING) / SMOOTHING, mode="valid")
            axis.plot(trials[SMOOTHING - 1:], mean, color="tab:blue",
                      label=f"running mean ({SMOOTHING} trials)")
        axis.set_xlabel("trial")
        axis.set_ylabel("F at trial end (nat)", fontsize=8)
        axis.legend(fontsize=7, frameon=False)
    figure.suptitle(f"{result.attrs['scenario_name']} (seed {result.seed})")
    return figure
