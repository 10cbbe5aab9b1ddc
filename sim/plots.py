"""Figures from result files. Each model family registers one ``plot`` function here."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt

from sim.results import Result

PLOTTERS: dict[str, Callable[[Result], plt.Figure]] = {}


def register(kind: str):
    def decorate(function: Callable[[Result], plt.Figure]) -> Callable[[Result], plt.Figure]:
        PLOTTERS[kind] = function
        return function

    return decorate


def mark_trials(axis: plt.Axes, result: Result) -> None:
    for start in result.trials.get("t_start", [])[1:]:
        axis.axvline(start * 1e3, color="0.6", lw=0.8, ls="--")


@register("hierarchical")
def plot_hierarchical(result: Result) -> plt.Figure:
    """Beliefs and errors per level, and free energy, over time (ms)."""
    names = result.level_names
    rows = len(names) + ("free_energy" in result)
    figure, axes = plt.subplots(rows, 1, figsize=(9, 2.2 * rows), sharex=True, squeeze=False)
    time_ms = result.time * 1e3
    for axis, name in zip(axes[:, 0], names, strict=False):
        traces = result.level(name)
        state_key = "input" if "input" in traces else "belief"
        if state_key in traces:
            axis.plot(time_ms, traces[state_key], lw=1.2, color="tab:blue", alpha=0.8)
        if "error" in traces:
            axis.plot(time_ms, traces["error"], lw=0.8, color="tab:red", alpha=0.6)
        axis.set_ylabel(f"{name}\n{state_key} (blue)\nerror (red)", fontsize=8)
        mark_trials(axis, result)
    if "free_energy" in result:
        axis = axes[-1, 0]
        axis.plot(time_ms, result.free_energy, color="black")
        axis.set_ylabel("F (nat)")
        mark_trials(axis, result)
    axes[-1, 0].set_xlabel("time (ms)")
    figure.suptitle(f"{result.attrs['scenario_name']} (seed {result.seed})")
    figure.tight_layout()
    return figure


def plot(result: Result, output: Path) -> Path:
    if result.kind not in PLOTTERS:
        # the family's module registers its plotter when imported
        import importlib

        from sim.scenario import MODEL_KINDS

        importlib.import_module(MODEL_KINDS[result.kind])
    figure = PLOTTERS[result.kind](result)
    output.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(output, dpi=110)
    plt.close(figure)
    return output
