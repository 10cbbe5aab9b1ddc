"""The figure of a discrete result: Q over time, F above the surprise, final Q against Bayes."""

from __future__ import annotations

import numpy as np

from sim.report.figures import mark_trials, register

MAX_SHOWN = 12


def observation_labels(result) -> dict[float, list[str]]:
    """``modality: outcome`` labels of every observation, by time (ms)."""
    labels: dict[float, list[str]] = {}
    for path in sorted(p for p in result.datasets if p.startswith("observations/")
                       and p.endswith("/time")):
        modality = path.split("/")[1]
        outcomes = result.group_attrs[f"observations/{modality}"]["outcomes"]
        for t, outcome in zip(result[path] * 1e3, result[f"observations/{modality}/outcome"],
                              strict=True):
            label = (str(outcomes[int(np.argmax(outcome))]) if outcome.max() == 1.0
                     else "p=" + ",".join(f"{x:.2g}" for x in outcome))
            labels.setdefault(float(t), []).append(f"{modality}: {label}")
    return labels


@register("discrete")
def plot_discrete(result):
    """Q over time as stacked areas, F above the surprise, final Q beside the exact posterior."""
    import matplotlib.pyplot as plt

    names = [str(n) for n in result.group_attrs["causes"]["names"]]
    trials = result.trials
    exact = trials.get("exact_posterior")
    if len(names) > MAX_SHOWN and exact is not None:
        keep = np.sort(np.argsort(-exact.max(axis=0))[: MAX_SHOWN - 1])
    else:
        keep = np.arange(min(len(names), MAX_SHOWN))
    colors = plt.get_cmap("tab20" if len(keep) > 10 else "tab10").colors
    figure = plt.figure(figsize=(12, 8))
    grid = figure.add_gridspec(3, 2, width_ratios=[3, 1.2], height_ratios=[1.5, 1, 0.6])
    time_ms = result.time * 1e3

    axis_q = figure.add_subplot(grid[0, 0])
    if "causes/belief" in result:
        beliefs = result["causes/belief"]
        layers = [beliefs[:, k] for k in keep]
        labels = [names[k] for k in keep]
        if len(keep) < len(names):
            layers.append(np.clip(1.0 - np.sum(layers, axis=0), 0.0, 1.0))
            labels.append(f"{len(names) - len(keep)} others")
        stack = axis_q.stackplot(time_ms, layers, labels=labels, colors=colors, alpha=0.9)
        axis_q.set_ylim(0, 1)
        axis_q.legend(stack[::-1], labels[::-1], loc="upper left", bbox_to_anchor=(1.01, 1.0),
                      fontsize=8, frameon=False)
    marks = observation_labels(result)
    for t, texts in marks.items():
        axis_q.axvline(t, color="black", lw=0.6, alpha=0.5)
        if len(marks) <= 40:
            axis_q.text(t, 1.01, "\n".join(texts), rotation=60, fontsize=7, ha="left",
                        va="bottom", transform=axis_q.get_xaxis_transform())
    axis_q.set_ylabel("belief Q over causes")
    mark_trials(axis_q, result)

    axis_f = figure.add_subplot(grid[1, 0], sharex=axis_q)
    axis_gap = figure.add_subplot(grid[2, 0], sharex=axis_q)
    if "free_energy" in result:
        axis_f.plot(time_ms, result.free_energy, color="black", lw=1.4, label="F")
    if "surprise" in result:
        axis_f.plot(time_ms, result["surprise"], color="tab:red", lw=1.2, ls="--",
                    label="surprise -ln p(o)")
        if "free_energy" in result:
            gap = result.free_energy - result["surprise"]
            axis_gap.semilogy(time_ms, np.maximum(gap, 1e-16), color="tab:purple", lw=1.0)
    axis_f.set_ylabel("nat")
    axis_f.legend(fontsize=8, loc="upper left")
    axis_gap.set_ylabel("F - surprise\n= KL (nat)", fontsize=8)
    axis_gap.set_xlabel("time (ms)")
    for axis in (axis_f, axis_gap):
        mark_trials(axis, result)

    shown_trials = list(range(len(trials.get("name", []))))[-4:]
    if shown_trials and exact is not None:
        bars = grid[:, 1].subgridspec(len(shown_trials), 1, hspace=0.5)
        y = np.arange(len(keep))
        for row, trial in enumerate(shown_trials):
            axis = figure.add_subplot(bars[row, 0])
            axis.barh(y - 0.2, trials["final_belief"][trial][keep], height=0.4,
                      color="tab:blue", label="final Q")
            axis.barh(y + 0.2, exact[trial][keep], height=0.4, color="0.6",
                      label="exact posterior")
            axis.set_yticks(y, [names[k] for k in keep], fontsize=7)
            axis.invert_yaxis()
            axis.set_xlim(0, min(1.0, 1.15 * max(exact[trial][keep].max(),
                                                 trials["final_belief"][trial][keep].max())))
            axis.locator_params(axis="x", nbins=4)
            axis.tick_params(axis="x", labelsize=7)
            axis.set_title(str(trials["name"][trial]), fontsize=9)
            if row == 0:
                axis.legend(fontsize=7, loc="lower right")
    figure.suptitle(f"{result.attrs['scenario_name']} (seed {result.seed})")
    figure.tight_layout()
    return figure
