"""The summary numbers of one point, from its result file (h5py and NumPy only).

Columns (all floats; NaN where a point has no such number):

- ``final_free_energy``: F at the end of the last trial (nat);
- ``final_belief/<top level>`` (hierarchical) or every ``final_belief...`` column (discrete):
  the last trial's final beliefs, one column per unit (``[i]`` after the name when a level has
  several units);
- ``mean[<condition>]/<column>``: the mean over a condition's trials of every numeric column
  of the trial table with at most ``MAX_UNITS`` numbers per trial (booleans as fractions, NaN
  rows left out; a posterior density on a grid is left to the point's file). Trials generated from
  ``[[protocol.conditions]]`` group by their condition; listed trials each by their name;
  groups in the scenario's order (that of the trials' ``index``).
"""

from __future__ import annotations

import warnings

import numpy as np

from sim.io.reader import Result

SKIPPED = ("t_start", "t_stop", "index")
MAX_UNITS = 16


def unit_columns(name: str, values: np.ndarray) -> dict[str, float]:
    """One column per unit: ``name`` for a single number, ``name[i]`` for several."""
    flat = np.asarray(values, dtype=float).ravel()
    if flat.size == 1:
        return {name: float(flat[0])}
    return {f"{name}[{i}]": float(x) for i, x in enumerate(flat)}


def top_belief_columns(result: Result) -> list[str]:
    trials = result.trials
    if result.kind == "hierarchical" and result.level_names:
        name = f"final_belief/{result.level_names[-1]}"
        return [name] if name in trials else []
    return sorted(c for c in trials if c.startswith("final_belief"))


def summarize(result: Result) -> dict[str, float]:
    """The summary numbers of a finished (or diverged) result."""
    trials = result.trials
    if "name" not in trials or not result.shape("trials/name")[0]:
        return {}
    out: dict[str, float] = {}
    if "final_free_energy" in trials:
        out["final_free_energy"] = float(result.read("trials/final_free_energy", -1))
    for column in top_belief_columns(result):
        out.update(unit_columns(column, result.read(f"trials/{column}", -1)))
    groups = np.asarray(trials["condition"] if "condition" in trials else trials["name"])
    order = (np.argsort(np.asarray(trials["index"]), kind="stable") if "index" in trials
             else np.arange(len(groups)))  # the scenario's order, not the running order
    numeric = [c for c in trials if c not in SKIPPED
               and int(np.prod(result.shape(f"trials/{c}")[1:])) <= MAX_UNITS
               and np.asarray(trials[c]).dtype.kind in "biuf"]
    for group in dict.fromkeys(groups[order]):
        rows = np.flatnonzero(groups == group)
        for column in numeric:
            values = np.asarray(trials[column][rows], dtype=float)
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", RuntimeWarning)  # every row NaN: NaN
                mean = np.nanmean(values, axis=0)
            out.update(unit_columns(f"mean[{group}]/{column}", mean))
    return out
