"""The figure of a discrete result: Q over time, F above the surprise, final Q against Bayes."""

from __future__ import annotations

import numpy as np
from matplotlib.transforms import offset_copy

from sim.report.figures import mark_trials, register
from sim.report.figures.traces import draw_image, plain_log_ticks

MAX_SHOWN = 12
MAX_BAR_TRIALS = 8  # trials whose final Q is drawn beside the exact posterior (the last ones)


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


def factor_panels(result) -> list[dict]:
    """What to draw per factor: its name, causes, recorded Q, final Q and exact marginal
    (one factor: ``causes/``; several: ``factors/<name>/``)."""
    trials = result.trials
    if "causes" in result.group_attrs:
        return [{"name": "causes", "causes": result.group_attrs["causes"]["names"],
                 "belief": "causes/belief", "final": trials.get("final_belief"),
                 "exact": trials.get("exact_posterior")}]
    names = sorted({p.split("/")[1] for p in result.group_attrs if p.startswith("factors/")})
    return [{"name": name, "causes": result.group_attrs[f"factors/{name}"]["names"],
             "belief": f"factors/{name}/belief", "final": trials.get(f"final_belief/{name}"),
             "exact": trials.get(f"exact_marginal/{name}")} for name in names]


def shown_causes(panel: dict) -> np.ndarray:
    """At most ``MAX_SHOWN`` causes: the most probable ones, the rest summed."""
    count, exact = len(panel["causes"]), panel["exact"]
    if count > MAX_SHOWN and exact is not None:
        return np.sort(np.argsort(-exact.max(axis=0))[: MAX_SHOWN - 1])
    return np.arange(min(count, MAX_SHOWN))


def decision_marks(axis, result) -> list:
    """A dotted line at each trial's decision time (``[readouts.decision]``: from the trial's
    start plus ``onset_ms``; none where there was no decision), and its legend entry."""
    trials = result.trials
    if "decision_time" not in trials:
        return []
    settings = result.parameters["readouts"]["decision"]
    times = (np.asarray(trials["t_start"]) * 1e3 + settings["onset_ms"]
             + np.asarray(trials["decision_time"], dtype=float))
    what = "Q stable" if settings["rule"] == "stable" else "Q above threshold"
    lines = [axis.axvline(t, color="black", ls=":", lw=1.6) for t in times[np.isfinite(times)]]
    if lines:
        lines[0].set_label(f"decision ({what})")
    return lines[:1]


@register("discrete")
def plot_discrete(result):
    """Q over time as stacked areas named in a legend (one panel per factor; more than
    ``MAX_SHOWN`` causes: an image over causes and time, a colour map), F above the surprise
    and their gap KL, and each trial's final Q beside the exact posterior (marginal, for several
    factors; the most probable causes)."""
    import matplotlib.pyplot as plt

    panels = factor_panels(result)
    trials = result.trials
    rows = len(panels)
    shown_trials = list(range(len(trials.get("name", []))))[-MAX_BAR_TRIALS:]
    bars_for = [panel for panel in panels if panel["exact"] is not None
                and panel["final"] is not None]
    bar_rows = sum(min(len(panel["causes"]), MAX_SHOWN) * 0.22 + 0.75
                   for panel in bars_for) * len(shown_trials)
    figure = plt.figure(figsize=(12, max(5 + 3 * rows, bar_rows + 1.0)))
    grid = figure.add_gridspec(rows + 2, 2, width_ratios=[3, 1.2],
                               height_ratios=[1.5] * rows + [1, 0.6])
    time_ms = result.time * 1e3
    marks = observation_labels(result)
    first = None
    for row, panel in enumerate(panels):
        axis_q = figure.add_subplot(grid[row, 0], sharex=first)
        first = first or axis_q
        names = [str(n) for n in panel["causes"]]
        keep = shown_causes(panel)
        colors = plt.get_cmap("tab20" if len(keep) > 10 else "tab10").colors
        if panel["belief"] in result and len(names) > MAX_SHOWN:  # many: a colour map
            draw_image(axis_q, result, panel["name"], panel["belief"],
                       label="belief Q (probability)", vmin=0.0)
            axis_q.set_ylabel(f"Q({panel['name']})\ncause", fontsize=8)
        elif panel["belief"] in result:
            beliefs = result[panel["belief"]]
            layers = [beliefs[:, k] for k in keep]
            labels = [names[k] for k in keep]
            if len(keep) < len(names):
                layers.append(np.clip(1.0 - np.sum(layers, axis=0), 0.0, 1.0))
                labels.append(f"{len(names) - len(keep)} others")
            stack = axis_q.stackplot(time_ms, layers, labels=labels, colors=colors, alpha=0.9)
            axis_q.set_ylim(0, 1)
            handles = stack[::-1] + decision_marks(axis_q, result)
            axis_q.legend(handles, [h.get_label() for h in handles], loc="upper left",
                          bbox_to_anchor=(1.01, 1.0), fontsize=8, frameon=False)
            axis_q.set_ylabel("belief Q over causes\n(probability)" if rows == 1
                              else f"Q({panel['name']})\n(probability)")
        for t, texts in marks.items():
            axis_q.axvline(t, color="black", lw=0.6, alpha=0.5)
            if row == 0 and len(marks) <= 40:
                axis_q.text(t, 1.01, "\n".join(texts), rotation=60, fontsize=7, ha="left",
                            va="bottom", transform=axis_q.get_xaxis_transform())
        mark_trials(axis_q, result)
        axis_q.tick_params(labelbottom=False)  # the time axis is labelled once, at the bottom

    axis_f = figure.add_subplot(grid[rows, 0], sharex=first)
    axis_gap = figure.add_subplot(grid[rows + 1, 0], sharex=first)
    if "free_energy" in result:
        axis_f.plot(time_ms, np.asarray(result.free_energy), color="black", lw=1.4, label="F")
    if "surprise" in result:
        axis_f.plot(time_ms, np.asarray(result["surprise"]), color="tab:red", lw=1.2, ls="--",
                    label="surprise -ln p(o)")
        if "free_energy" in result:
            gap = result.free_energy - result["surprise"]
            axis_gap.semilogy(time_ms, np.maximum(gap, 1e-16), color="tab:purple", lw=1.0)
            plain_log_ticks(axis_gap)
    axis_f.set_ylabel("free energy F,\nsurprise (nat)", fontsize=8)
    axis_f.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.01, 1.0), frameon=False)
    axis_f.tick_params(labelbottom=False)
    axis_gap.set_ylabel("F - surprise\n= KL (nat)", fontsize=8)
    axis_gap.set_xlabel("time (ms)")
    for axis in (axis_f, axis_gap):
        mark_trials(axis, result)

    if shown_trials and bars_for:
        bars = grid[:, 1].subgridspec(len(shown_trials) * len(bars_for), 1, hspace=0.6)
        for row, (trial, panel) in enumerate(
                (t, p) for t in shown_trials for p in bars_for):
            keep = shown_causes(panel)
            final, exact = panel["final"][trial][keep], panel["exact"][trial][keep]
            names = [str(panel["causes"][k]) for k in keep]
            axis = figure.add_subplot(bars[row, 0])
            y = np.arange(len(keep))
            axis.barh(y - 0.2, final, height=0.4, color="tab:blue", label="final Q")
            axis.barh(y + 0.2, exact, height=0.4, color="0.6", label="exact posterior")
            axis.set_yticks(y, names, fontsize=7)
            axis.invert_yaxis()
            axis.set_xlim(0, 1.0)  # one probability scale for every trial, labelled once
            axis.locator_params(axis="x", nbins=4)
            axis.tick_params(axis="x", labelsize=7)
            axis.set_ylabel("cause" if len(bars_for) == 1 else panel["name"], fontsize=7)
            if row == len(shown_trials) * len(bars_for) - 1:
                axis.set_xlabel("probability", fontsize=8)
            else:
                axis.tick_params(axis="x", labelbottom=False)
            title = str(trials["name"][trial])
            axis.set_title(title if len(bars_for) == 1 else f"{title}: {panel['name']}",
                           fontsize=8)
            if row == 0:  # just above the first trial's title, however tall its bars
                axis.legend(fontsize=7, loc="lower left", bbox_to_anchor=(0.0, 1.0),
                            bbox_transform=offset_copy(axis.transAxes, fig=figure, y=20,
                                                       units="points"),
                            ncols=2, frameon=False, borderaxespad=0.0)
    figure.suptitle(f"{result.attrs['scenario_name']} (seed {result.seed})")
    return figure
