"""Figures from result files, one drawing function per kind of result (``register``).

The report side: it reads results through ``sim.io`` and never imports Brian2."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt

from sim.errors import ResultError
from sim.io.reader import Result

PLOTTERS: dict[str, Callable[[Result], plt.Figure]] = {}


def register(kind: str):
    def decorate(function: Callable[[Result], plt.Figure]) -> Callable[[Result], plt.Figure]:
        PLOTTERS[kind] = function
        return function

    return decorate


MAX_TRIAL_MARKS = 100  # beyond this many trials, their boundaries would hide the traces


def mark_trials(axis: plt.Axes, result: Result) -> None:
    starts = result.trials.get("t_start", [])
    if len(starts) > MAX_TRIAL_MARKS:
        return
    for start in starts[1:]:
        axis.axvline(start * 1e3, color="0.6", lw=0.8, ls="--")


def draw(result: Result) -> plt.Figure:
    """The figure of ``result``'s kind (the caller closes it)."""
    if result.kind not in PLOTTERS:
        # each figure module registers its drawing function when imported
        import importlib

        try:
            importlib.import_module(f"sim.report.figures.{result.kind}")
        except ModuleNotFoundError:
            raise ResultError(f"{result.path}: no figure for results of kind "
                              f"{result.kind!r}") from None
    return PLOTTERS[result.kind](result)


def plot(result: Result, output: Path) -> Path:
    """Draw the figure of ``result``'s kind into ``output``, in the format its extension names
    (``.png``, ``.svg``, ``.pdf``, ...: matplotlib's)."""
    figure = draw(result)
    output.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(output, dpi=110)
    plt.close(figure)
    return output
