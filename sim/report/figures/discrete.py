"""The figure of a discrete result: each factor's recorded variables over time as their
declarations say (``circuits.variables``: Q, declared ``stacked``, as areas stacked to 1; a
mechanism's variable recorded in a factor's group in a panel of its own), F above the surprise,
final Q against Bayes."""

from __future__ import annotations

import numpy as np

from circuits.variables import FREE_ENERGY, POSTERIOR, SURPRISE
from sim.io.reader import declared
from sim.report.figures import mark_trials, register
from sim.report.figures.traces import (
    MAX_POINTS,
    declared_panels,
    draw_image,
    draw_series,
    drawn,
    plain_log_ticks,
    quantity,
    sampled,
    width,
    with_units,
)

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
    """What to draw per factor: its name, causes, the group its time series are recorded in
    (``prefix``), its final Q and exact marginal (one factor: ``causes/``; several:
    ``factors/<name>/``)."""
    trials = result.trials
    if "causes" in result.group_attrs:
        return [{"name": "causes", "causes": result.group_attrs["causes"]["names"],
                 "prefix": "causes/", "final": trials.get("final_belief"),
                 "exact": trials.get("exact_posterior")}]
    names = sorted({p.split("/")[1] for p in result.group_attrs if p.startswith("factors/")})
    return [{"name": name, "causes": result.group_attrs[f"factors/{name}"]["names"],
             "prefix": f"factors/{name}/", "final": trials.get(f"final_belief/{name}"),
             "exact": trials.get(f"exact_marginal/{name}")} for name in names]


def series_panels(result, factors: list[dict]) -> list[tuple[dict, list[str], str]]:
    """(factor, time series, plot) per panel, top to bottom, from the recorded variables'
    declarations (``circuits.variables``, read from each dataset's ``declared_*``
    attributes), factor by factor: a variable declared ``stacked`` (Q, a distribution over the
    causes) in a panel of its own; variables that share a ``panel`` name in one panel of lines
    (log scale where one is declared ``log``; an image each where a variable has more than
    ``MAX_LINES`` units); each other drawn variable in a panel of its own. A mechanism's
    variable recorded in a factor's group gets its panel so; F and the surprise are drawn below
    (``draw_energy``)."""
    return [(factor, paths, plot) for factor in factors
            for paths, plot, _ in declared_panels(result, drawn(result, factor["prefix"]))]


def shown_causes(panel: dict) -> np.ndarray:
    """At most ``MAX_SHOWN`` causes: the most probable ones (by the exact posterior)."""
    count, exact = len(panel["causes"]), panel["exact"]
    if count > MAX_SHOWN and exact is not None:
        return np.sort(np.argsort(-exact.max(axis=0))[: MAX_SHOWN - 1])
    return np.arange(min(count, MAX_SHOWN))


def belief_symbol(result, factor: dict) -> str:
    """The symbol the factor's belief is declared with (``Q``)."""
    return declared(result, factor["prefix"] + "belief", "symbol", POSTERIOR.symbol)


def decision_marks(axis, result, symbol: str) -> list:
    """A dotted line at each trial's decision time (``[readouts.decision]``: from the trial's
    start plus ``onset_ms``; none where there was no decision), and its legend entry."""
    trials = result.trials
    if "decision_time" not in trials:
        return []
    settings = result.parameters["readouts"]["decision"]
    times = (np.asarray(trials["t_start"]) * 1e3 + settings["onset_ms"]
             + np.asarray(trials["decision_time"], dtype=float))
    what = f"{symbol} stable" if settings["rule"] == "stable" else f"{symbol} above threshold"
    lines = [axis.axvline(t, color="black", ls=":", lw=1.6) for t in times[np.isfinite(times)]]
    if lines:
        lines[0].set_label(f"decision ({what})")
    return lines[:1]


def draw_distribution(axis, result, factor: dict, path: str, several: bool) -> None:
    """A variable declared ``stacked``, a distribution over the factor's causes: areas
    stacked to 1, named in a legend (with the decisions' marks); more than ``MAX_SHOWN``
    causes: an image over causes and time, a colour map. Labelled with its declared label and
    symbol."""
    import matplotlib.pyplot as plt

    symbol = declared(result, path, "symbol")
    names = [str(n) for n in factor["causes"]]
    if len(names) > MAX_SHOWN:
        draw_image(axis, result, factor["name"], path,
                   label=f"{quantity(result, path)} (probability)", vmin=0.0)
        axis.set_ylabel(f"{symbol}({factor['name']})\ncause", fontsize=8)
        return
    time_ms, values = sampled(result, path, MAX_POINTS)
    colors = plt.get_cmap("tab20" if len(names) > 10 else "tab10").colors
    stack = axis.stackplot(time_ms, values.T, labels=names, colors=colors, alpha=0.9)
    axis.set_ylim(0, 1)
    handles = stack[::-1] + decision_marks(axis, result, symbol)
    axis.legend(handles, [h.get_label() for h in handles], loc="upper left",
                bbox_to_anchor=(1.01, 1.0), fontsize=8, frameon=False)
    axis.set_ylabel(f"{symbol}({factor['name']})\n(probability)" if several
                    else f"{quantity(result, path)} over causes\n(probability)")


def draw_energy(result, axis_f, axis_gap) -> None:
    """F above the surprise -ln p(o) it bounds, and their gap F - surprise = KL[Q || exact
    posterior] on a log scale; labels, symbols and units from their declarations."""
    time_ms = result.time * 1e3
    f_label = declared(result, "free_energy", "label", FREE_ENERGY.label)
    f_symbol = declared(result, "free_energy", "symbol", FREE_ENERGY.symbol)
    s_label = declared(result, "surprise", "label", SURPRISE.label)
    s_symbol = declared(result, "surprise", "symbol", SURPRISE.symbol)
    units = result.units("free_energy") if "free_energy" in result else FREE_ENERGY.units
    if "free_energy" in result:
        axis_f.plot(time_ms, np.asarray(result.free_energy), color="black", lw=1.4,
                    label=f_symbol)
    if "surprise" in result:
        axis_f.plot(time_ms, np.asarray(result["surprise"]), color="tab:red", lw=1.2, ls="--",
                    label=f"{s_label} {s_symbol}")
        if "free_energy" in result:
            gap = result.free_energy - result["surprise"]
            axis_gap.semilogy(time_ms, np.maximum(gap, 1e-16), color="tab:purple", lw=1.0)
            plain_log_ticks(axis_gap)
    axis_f.set_ylabel(with_units(f"{f_label} {f_symbol},\n{s_label}", units), fontsize=8)
    axis_f.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.01, 1.0), frameon=False)
    axis_f.tick_params(labelbottom=False)
    axis_gap.set_ylabel(with_units(f"{f_symbol} - {s_label}\n= KL", units), fontsize=8)
    axis_gap.set_xlabel("time (ms)")


@register("discrete")
def plot_discrete(result):
    """The time series of each factor as their declarations say (``series_panels``: Q as
    stacked areas), F above the surprise and their gap KL, and each trial's final Q beside the
    exact posterior (marginal, for several factors; the most probable causes)."""
    import matplotlib.pyplot as plt

    factors = factor_panels(result)
    panels = series_panels(result, factors)
    trials = result.trials
    rows = len(panels)
    shown_trials = list(range(len(trials.get("name", []))))[-MAX_BAR_TRIALS:]
    bars_for = [factor for factor in factors if factor["exact"] is not None
                and factor["final"] is not None]
    bar_rows = sum(min(len(factor["causes"]), MAX_SHOWN) * 0.22 + 0.75
                   for factor in bars_for) * len(shown_trials)
    figure = plt.figure(figsize=(12, max(5 + 3 * rows, bar_rows + 1.0)))
    grid = figure.add_gridspec(rows + 2, 2, width_ratios=[3, 1.2],
                               height_ratios=[1.5] * rows + [1, 0.6])
    marks = observation_labels(result)
    first = None
    for row, (factor, paths, plot) in enumerate(panels):
        axis = figure.add_subplot(grid[row, 0], sharex=first)
        first = first or axis
        if plot == "stacked":
            draw_distribution(axis, result, factor, paths[0], several=len(factors) > 1)
        else:
            names = [str(n) for n in factor["causes"]]
            draw_series(axis, result, factor["name"], paths, log=plot == "log",
                        names=names if width(result, paths[0]) == len(names) else None)
        for t, texts in marks.items():
            axis.axvline(t, color="black", lw=0.6, alpha=0.5)
            if row == 0 and len(marks) <= 40:
                axis.text(t, 1.01, "\n".join(texts), rotation=60, fontsize=7, ha="left",
                          va="bottom", transform=axis.get_xaxis_transform())
        mark_trials(axis, result)
        axis.tick_params(labelbottom=False)  # the time axis is labelled once, at the bottom

    axis_f = figure.add_subplot(grid[rows, 0], sharex=first)
    axis_gap = figure.add_subplot(grid[rows + 1, 0], sharex=first)
    draw_energy(result, axis_f, axis_gap)
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
            axis.barh(y - 0.2, final, height=0.4, color="tab:blue",
                      label=f"final {belief_symbol(result, panel)}")
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
            if row == 0:  # by the first trial's bars, where it covers none (settle_legends)
                axis.legend(fontsize=7, loc="lower right", frameon=False)
    figure.suptitle(f"{result.attrs['scenario_name']} (seed {result.seed})")
    return figure
