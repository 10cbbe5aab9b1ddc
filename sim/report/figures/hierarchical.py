"""The figure of a hierarchical result: beliefs and errors per level, and F, over time."""

from __future__ import annotations

import matplotlib.pyplot as plt

from sim.io.reader import Result
from sim.report.figures import mark_trials, register


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
