"""Figures from result files, one drawing function per kind of result (``register``).

The report side: it reads results through ``sim.io`` and never imports Brian2."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np

from sim.errors import ResultError
from sim.io.reader import Result

PLOTTERS: dict[str, Callable[[Result], plt.Figure]] = {}


def register(kind: str):
    def decorate(function: Callable[[Result], plt.Figure]) -> Callable[[Result], plt.Figure]:
        PLOTTERS[kind] = function
        return function

    return decorate


DECORATION = "decoration"  # the gid of what is not data (sim.report.figure_lint)
MAX_TRIAL_MARKS = 100  # beyond this many trials, their boundaries would hide the traces


def mark_trials(axis: plt.Axes, result: Result) -> None:
    starts = result.trials.get("t_start", [])
    if len(starts) > MAX_TRIAL_MARKS:
        return
    for start in starts[1:]:
        axis.axvline(start * 1e3, color="0.6", lw=0.8, ls="--", gid=DECORATION)


def draw(result: Result) -> plt.Figure:
    """The figure of ``result``'s kind (the caller closes it); a spiking result's is
    ``<kind>_spiking`` (``sim.report.figures.spiking``)."""
    kind = result.kind + ("_spiking" if result.neurons == "spiking" else "")
    if kind not in PLOTTERS:
        # each figure module registers its drawing function when imported
        import importlib

        try:
            importlib.import_module(f"sim.report.figures.{result.kind}")
            if result.neurons == "spiking":
                importlib.import_module("sim.report.figures.spiking")
        except ModuleNotFoundError:
            raise ResultError(f"{result.path}: no figure for results of kind "
                              f"{result.kind!r}") from None
    figure = PLOTTERS[kind](result)
    lay_out(figure)
    settle_legends(figure)
    return figure


def lay_out(figure: plt.Figure) -> None:
    """Lay the figure out, once (its drawing functions leave that to ``draw``): the panels,
    labels and legends included, below the figure's title (``tight_layout`` alone may draw
    the title across the first panel's frame)."""
    title = figure._suptitle
    if title is None:
        figure.tight_layout()
        return
    box = title.get_window_extent(figure.canvas.get_renderer())
    figure.tight_layout(rect=(0.0, 0.0, 1.0, box.y0 / figure.bbox.height - 0.005))


def plot(result: Result, output: Path) -> Path:
    """Draw the figure of ``result``'s kind into ``output``, in the format its extension names
    (``.png``, ``.svg``, ``.pdf``, ...: matplotlib's)."""
    figure = draw(result)
    output.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(output, dpi=110)
    plt.close(figure)
    return output


INSIDE = ("upper right", "upper left", "lower right", "lower left", "center right",
          "center left", "upper center", "lower center", "center")
HEADROOM = 0.05  # of the axes' height, kept between the data and a legend moved above it


def settle_legends(figure: plt.Figure) -> None:
    """Move every legend that covers data (``sim.report.figure_lint``) to the first place
    inside its panel where it covers none; where there is none, make room above the data (the
    y range grows by the legend's height) and put it there."""
    from sim.report.figure_lint import legend_covers

    renderer = figure.canvas.get_renderer()
    for axis in figure.axes:
        legend = axis.get_legend()
        if legend is None or (legend.get_bbox_to_anchor() is not axis.bbox and \
                _outside(legend, axis, renderer)):
            continue
        shapes: dict = {}  # the data in pixels, read once for every place tried
        if not legend_covers(legend, figure, renderer, shapes):
            continue
        for place in INSIDE:
            legend.set_loc(place)
            if not legend_covers(legend, figure, renderer, shapes):
                break
        else:
            height = legend.get_window_extent(renderer).height / axis.bbox.height
            low, high = axis.get_ylim()
            if axis.get_yscale() == "log":
                span = np.log10(high / low)
                axis.set_ylim(low, high * 10 ** (span * (height + HEADROOM) / (1 - height)))
            else:
                axis.set_ylim(low, high + (high - low) * (height + HEADROOM) / (1 - height))
            legend.set_loc("upper right")


def _outside(legend, axis, renderer) -> bool:
    """A legend placed outside its panel (``bbox_to_anchor`` beyond the axes)."""
    box, panel = legend.get_window_extent(renderer), axis.get_window_extent(renderer)
    return box.x0 >= panel.x1 - 1 or box.x1 <= panel.x0 + 1 or box.y0 >= panel.y1 - 1 \
        or box.y1 <= panel.y0 + 1
