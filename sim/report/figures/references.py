"""Reference values drawn where a scenario's claim is a number (the report side: read from the
result, never recomputed with the model's code):

- on a belief panel, each trial's exact posterior mode (``reference_mode/<level>``, the
  ``reference_posterior`` readout): the belief descends F to it (Bogacz's exercise 2, the
  motion prior's closed-form speed, the precision-weighted percept);
- where a variable of the input level declares the reference ``noise_precision`` or
  ``log_noise_precision`` (``circuits.variables``; the inferred precision does), 1 / the
  noise variance the input is drawn with (every trial's ``stimulus.noise_std``, read from the
  scenario source the result stores with the overrides it stores), on that variable's panel
  and the precision's (Pi): the value inferred precisions settle near
  (``attention/unknown_noise``);
- ``draw_cue_weights``: per trial, the weight a one-unit belief puts on the first of two
  cues, ((mu - x_1) / (x_0 - x_1), the cues at the trial's end) against the Ernst-Banks
  weight Pi_0 / (Pi_0 + Pi_1) (``precision_share``), for a belief fed by two cues;
- ``draw_final_beliefs``: per trial, the final belief against the exact posterior mean (the
  closed form), the panel a linear model draws instead of a variational gap of zeros.
"""

from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np

from sim.io.reader import Result, declared
from sim.report.figures.traces import with_units

REFERENCE = {"color": "black", "ls": ":", "lw": 1.2}


def draw_references(axis: plt.Axes, result: Result, level: str, paths: list[str]) -> None:
    """The reference lines that belong on a panel of ``level`` drawing ``paths``."""
    trials = result.trials
    mode = f"reference_mode/{level}"
    beliefs = any(declared(result, path, "role") == "state" for path in paths)
    if beliefs and mode in trials and "t_start" in trials:
        values = np.asarray(trials[mode], dtype=float).reshape(len(trials["t_start"]), -1)
        start, stop = np.asarray(trials["t_start"]) * 1e3, np.asarray(trials["t_stop"]) * 1e3
        for unit in range(values.shape[1]):
            axis.hlines(values[:, unit], start, stop, **REFERENCE,
                        label="exact posterior mode" if unit == 0 else None)
    claimed = {declared(result, path, "reference") for path in result.datasets
               if path.startswith(f"levels/{level}/")} - {""}
    precision = noise_precision(result) if claimed and level == result.level_names[0] else None
    for path in paths if precision is not None else []:
        # the declaring variable's panel in its own terms; the precision's panel in Pi
        own = declared(result, path, "reference")
        log = own == "log_noise_precision"
        if own or declared(result, path, "symbol") == "Pi":  # the precision itself
            colours = plt.get_cmap("tab10").colors
            for unit, value in enumerate(np.log(precision) if log else precision):
                axis.axhline(value, color=colours[unit % len(colours)], ls=":", lw=1.2,
                             label=("ln(1 / noise variance)" if log else "1 / noise variance")
                             if unit == 0 else None)
    if axis.get_legend_handles_labels()[0]:
        axis.margins(y=0.12)  # a reference on the frame would hide it
        if axis.get_legend() is not None:
            _add_references_to_legend(axis)


def _add_references_to_legend(axis: plt.Axes) -> None:
    """Append the labelled references to the legend the panel already has."""
    legend = axis.get_legend()
    handles = list(legend.legend_handles)
    labels = [text.get_text() for text in legend.get_texts()]
    for handle, label in zip(*axis.get_legend_handles_labels(), strict=True):
        if label not in labels:
            handles.append(handle)
            labels.append(label)
    axis.legend(handles, labels, fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1.0),
                frameon=False)


def shared_stimulus(result: Result, key: str):
    """The value of ``key`` that every trial's stimulus of the scenario that ran gives, or None
    (trials that differ, none giving it, a source that does not parse). The scenario that ran
    is the stored source with the stored overrides (``--set``, a sweep's point) applied, as
    the run applied them (``sim.toml_input.apply_overrides``): the resolved parameters keep a
    stimulus only as words."""
    import tomllib

    from sim.errors import ResultError, ScenarioError
    from sim.toml_input import apply_overrides

    try:
        table = tomllib.loads(result.scenario_source)
        overrides = result.parameters.get("overrides") or {}
        apply_overrides(table, overrides, result.path)
    except (KeyError, AttributeError, tomllib.TOMLDecodeError, ResultError, ScenarioError):
        return None
    protocol = table.get("protocol", {})
    trials = protocol.get("trials", []) + protocol.get("conditions", [])
    found = {repr(trial.get("stimulus", {}).get(key)) for trial in trials}
    if len(found) != 1 or not trials:
        return None
    return trials[0].get("stimulus", {}).get(key)


def noise_precision(result: Result) -> np.ndarray | None:
    """1 / noise_std^2 of the input, where every trial of the stored scenario draws it with
    one ``noise_std`` (None otherwise, or where it is 0)."""
    value = shared_stimulus(result, "noise_std")
    if value is None:
        return None
    std = np.atleast_1d(np.asarray(value, dtype=float))
    size = int(result.group_attrs[f"levels/{result.level_names[0]}"]["size"])
    if np.any(std <= 0):
        return None
    return np.broadcast_to(1.0 / std ** 2, (size,)).copy()


def cue_weights(result: Result) -> tuple[np.ndarray, np.ndarray] | None:
    """(weight the belief puts on cue 0, Ernst-Banks weight Pi_0 / (Pi_0 + Pi_1)) per trial,
    for a one-unit top level fed by two input units; None for any other model."""
    names = result.level_names
    if len(names) != 2:
        return None
    below, top = names
    share, final = f"precision_share/{below}", f"final_belief/{top}"
    path = f"levels/{below}/input"
    trials = result.trials
    if share not in trials or final not in trials or path not in result:
        return None
    if result.shape(path)[1:] != (2,) or np.asarray(trials[final]).reshape(-1).size != len(
            trials["t_stop"]):
        return None
    last = np.clip(np.searchsorted(result.time, np.asarray(trials["t_stop"]) - 1e-12) - 1,
                   0, len(result.time) - 1)
    cues = np.asarray(result[path])[last]
    spread = cues[:, 0] - cues[:, 1]
    if np.any(np.abs(spread) < 1e-9):
        return None
    mu = np.asarray(trials[final], dtype=float).reshape(-1)
    return (mu - cues[:, 1]) / spread, np.asarray(trials[share], dtype=float)[:, 0]


def draw_cue_weights(result: Result, axis: plt.Axes, weights: tuple[np.ndarray, np.ndarray]
                     ) -> None:
    measured, closed_form = weights
    names = [str(name) for name in result.trials["name"]]
    x = np.arange(len(names))
    axis.plot(x, closed_form, "s", color="0.5", ms=9, mfc="none",
              label="Ernst-Banks: Pi_0 / (Pi_0 + Pi_1)")
    axis.plot(x, measured, "o", color="tab:blue", ms=4, label="the network's percept")
    axis.set_xticks(x, names, fontsize=7)
    axis.set_xlabel("trial")
    axis.margins(x=0.05)
    below = result.level_names[0]
    axis.set_ylabel(f"weight on {below}[0]", fontsize=8)
    axis.set_ylim(-0.05, 1.05)
    axis.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1.0), frameon=False)


def draw_final_beliefs(result: Result, axis: plt.Axes) -> None:
    """Per trial and top-level unit: the final belief against the exact posterior mean."""
    trials = result.trials
    top = result.level_names[-1]
    names = [str(name) for name in trials["name"]]
    x = np.arange(len(names))
    exact = np.asarray(trials[f"reference_mean/{top}"], dtype=float).reshape(len(x), -1)
    final = np.asarray(trials[f"final_belief/{top}"], dtype=float).reshape(len(x), -1)
    for unit in range(exact.shape[1]):
        axis.plot(x, exact[:, unit], "s", color="0.5", ms=9, mfc="none",
                  label="exact posterior mean (closed form)" if unit == 0 else None)
        axis.plot(x, final[:, unit], "o", color="tab:blue", ms=4,
                  label="final belief mu" if unit == 0 else None)
    axis.set_xticks(x, names, fontsize=7)
    axis.set_xlabel("trial")
    units = result.units(f"levels/{top}/belief") if f"levels/{top}/belief" in result else "1"
    axis.set_ylabel(with_units(f"{top} at trial end", units), fontsize=8)
    axis.margins(x=0.05, y=0.15)  # no marker on the frame
    axis.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1.0), frameon=False)
