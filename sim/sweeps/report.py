"""``pcsim show`` and ``pcsim plot`` on a sweep's index (h5py, NumPy, matplotlib; no Brian2).

The figure puts the first swept axis with several values on x (numbers on a numeric scale,
anything else as categories) and draws means with error bars over the seeds (one standard
deviation; none with one seed); the first two panels hold the other axes at their first value:

- the primary readout per condition: the mean decision time (a reaction time) when the
  scenario has one (RT against the swept value, one line per condition), else the top
  level's final belief (one line per condition);
- the psychometric curve: the same readout against the conditions in their scenario order
  (fog levels, cue types), one line per swept value;
- the final free energy against the swept value, one line per combination of the other axes.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

from sim.sweeps.index import STATUSES, SweepIndex, read_index

FAILURES_SHOWN = 10
MAX_LINES = 10
MEAN = re.compile(r"^mean\[(?P<group>.*)\]/(?P<column>.*)$")


def label(value: Any) -> str:
    return value if isinstance(value, str) else json.dumps(value)


def show_lines(path: str | Path) -> list[str]:
    """The grid, the count of each status, and the failures (first ``FAILURES_SHOWN``)."""
    index = read_index(path)
    counts = index.counts()
    lines = [f"{index.path}: pcsim sweep of {index.attrs.get('scenario_name')} "
             f"({index.attrs.get('scenario_path')}), {len(index.files)} points, written "
             f"{index.attrs.get('created_utc')}",
             "  grid:"]
    for key, values in index.axes.items():
        lines.append(f"    {key} = {', '.join(label(v) for v in values)} ({len(values)})")
    lines.append(f"    seed = {', '.join(map(str, index.seeds))} ({len(index.seeds)})")
    lines.append("  status: " + ", ".join(f"{counts.get(s, 0)} {s}" for s in STATUSES
                                          if counts.get(s) or s in ("done", "failed")))
    failed = [row for row, status in enumerate(index.status) if status in ("failed",
                                                                           "diverged")]
    for row in failed[:FAILURES_SHOWN]:
        values = ", ".join(f"{k}={label(v)}" for k, v in index.values(row).items())
        lines.append(f"  {index.status[row]} {index.files[row]} ({values}, seed "
                     f"{index.point_seeds[row]}): {index.errors[row]}")
    if len(failed) > FAILURES_SHOWN:
        lines.append(f"  ... {len(failed) - FAILURES_SHOWN} more")
    columns = index.summary_columns
    lines.append(f"  summary columns ({len(columns)}): "
                 + (", ".join(columns[:8]) + (", ..." if len(columns) > 8 else "")
                    if columns else "none yet"))
    return lines


def groups_and_column(index: SweepIndex) -> tuple[list[str], str]:
    """The conditions (scenario order) and the readout column the figure follows."""
    parsed = [MEAN.match(c) for c in index.summary_columns]
    found = [(m["group"], m["column"]) for m in parsed if m]
    groups = list(dict.fromkeys(group for group, _ in found))
    columns = list(dict.fromkeys(column for _, column in found))
    preferred = [c for c in columns if c == "decision_time"]
    top = [c for c in index.summary_columns if c.startswith("final_belief")]
    beliefs = [c for c in columns if top and c == top[0]]
    chosen = (preferred or beliefs or [c for c in columns if c.startswith("final_belief")]
              or columns or [""])[0]
    return groups, chosen


def statistics(index: SweepIndex, column: str, rows: np.ndarray) -> tuple[float, float]:
    """Mean and standard deviation over the done (or diverged) points ``rows``."""
    if column not in index.summary_columns:
        return np.nan, np.nan
    values = index.summary[rows, index.summary_columns.index(column)]
    values = values[np.isfinite(values)]
    if not values.size:
        return np.nan, np.nan
    return float(values.mean()), float(values.std()) if values.size > 1 else 0.0


def positions(values: list[Any]) -> tuple[np.ndarray, list[str] | None]:
    """x positions of an axis' values; tick labels when they are not numbers."""
    if all(isinstance(v, int | float) and not isinstance(v, bool) for v in values):
        return np.array(values, dtype=float), None
    return np.arange(len(values), dtype=float), [label(v) for v in values]


def changing_conditions(source: str) -> set[str]:
    """The trials and conditions of a scenario (its TOML ``source``) whose settings change
    within the trial (a schedule: a ``times_ms`` anywhere in them): not a point of a
    psychometric curve, whose points each hold one setting."""
    import tomllib

    try:
        protocol = tomllib.loads(source).get("protocol", {})
    except tomllib.TOMLDecodeError:
        return set()

    def scheduled(value: Any) -> bool:
        if isinstance(value, dict):
            return "times_ms" in value or any(scheduled(v) for v in value.values())
        return isinstance(value, list) and any(scheduled(v) for v in value)

    entries = protocol.get("trials", []) + protocol.get("conditions", [])
    return {str(entry.get("name")) for entry in entries
            if isinstance(entry, dict) and scheduled(entry)}


def x_axis(index: SweepIndex) -> int:
    """The axis on x: the first with more than one value (else the first)."""
    return next((a for a, values in enumerate(index.axes.values()) if len(values) > 1), 0)


def others(index: SweepIndex, on_x: int) -> Iterator[tuple[str, np.ndarray]]:
    """(label, mask) per combination of the axes other than ``on_x`` (at most ``MAX_LINES``)."""
    keys = list(index.axes)
    rest = [a for a in range(len(keys)) if a != on_x]
    combos = dict.fromkeys(tuple(row[rest]) for row in index.axis_index)
    for combo in list(combos)[:MAX_LINES]:
        mask = np.all(index.axis_index[:, rest] == np.array(combo, dtype=np.int64), axis=1)
        text = ", ".join(f"{keys[a].split('.')[-1]}={label(index.axes[keys[a]][i])}"
                         for a, i in zip(rest, combo, strict=True)
                         if len(index.axes[keys[a]]) > 1)
        yield text, mask


def plot_sweep(path: str | Path, output: Path) -> Path:
    """Draw the sweep's summary against its axes into ``output`` (any matplotlib format)."""
    import matplotlib.pyplot as plt

    figure = draw_sweep(path)
    output.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(output, dpi=110)
    plt.close(figure)
    return output


def draw_sweep(path: str | Path) -> Any:
    """The sweep's figure (a matplotlib Figure; the caller closes it)."""
    import matplotlib.pyplot as plt

    from sim.report.figures import lay_out, settle_legends

    index = read_index(path)
    finished = np.isin(np.array(index.status), ["done", "diverged"])
    figure, axes = plt.subplots(1, 3, figsize=(16, 4.8))
    if not index.axes:
        for axis in axes:
            axis.text(0.5, 0.5, "no swept axis (seeds only)", ha="center",
                      transform=axis.transAxes)
    else:
        draw_panels(index, finished, axes)
    figure.suptitle(f"sweep of {index.attrs.get('scenario_name')}: "
                    + ", ".join(f"{n} {s}" for s, n in index.counts().items())
                    + f"; error bars: 1 s.d. over {len(index.seeds)} seed(s)")
    lay_out(figure)
    settle_legends(figure)
    return figure


def draw_panels(index: SweepIndex, finished: np.ndarray, axes) -> None:
    """The readout and the psychometric curve at the other axes' first values; F for each
    combination of them."""
    on_x = x_axis(index)
    key = list(index.axes)[on_x]
    values = index.axes[key]
    x, ticks = positions(values)
    groups, column = groups_and_column(index)
    unit = " (ms)" if column == "decision_time" else ""
    first = np.all(np.delete(index.axis_index, on_x, axis=1) == 0, axis=1)
    at_x = [index.axis_index[:, on_x] == i for i in range(len(values))]
    by_value = [finished & first & rows for rows in at_x]

    def errorbars(axis, xs, stats, name):
        means, spreads = np.array(stats).T if stats else ([], [])
        axis.errorbar(xs, means, yerr=spreads, marker="o", capsize=3, label=name)

    readout, curve, energy = axes
    for group in groups[:MAX_LINES]:
        errorbars(readout, x, [statistics(index, f"mean[{group}]/{column}", rows)
                               for rows in by_value], group)
    held = ", ".join(f"{k.split('.')[-1]}={label(v[0])}" for k, v in index.axes.items()
                     if k != key and len(v) > 1)
    readout.set(xlabel=key, ylabel=f"mean {column}{unit}",
                title=f"{column} per condition" + (f" ({held})" if held else ""))
    changing = changing_conditions(index.source)
    levels = [g for g in groups if g not in changing]  # the curve's points
    group_x = np.arange(len(levels))
    for i, value in enumerate(values[:MAX_LINES]):
        errorbars(curve, group_x, [statistics(index, f"mean[{g}]/{column}", by_value[i])
                                   for g in levels], f"{key.split('.')[-1]}={label(value)}")
    curve.set_xticks(group_x, levels, rotation=30, ha="right")
    left_out = [g for g in groups if g in changing]
    curve.set(xlabel="condition (scenario order)" + (
        f"\nleft out, its settings change within the trial: {', '.join(left_out)}"
        if left_out else ""), ylabel=f"mean {column}{unit}",
        title="psychometric curve" + (f" ({held})" if held else ""))
    for text, mask in others(index, on_x):
        errorbars(energy, x, [statistics(index, "final_free_energy", finished & mask & rows)
                              for rows in at_x], text or None)
    energy.set(xlabel=key, ylabel="final F (nat)", title="free energy at the end")
    for axis in (readout, energy):
        if ticks is not None:
            axis.set_xticks(x, ticks, rotation=30, ha="right")
    for axis in axes:
        if axis.get_legend_handles_labels()[0] and len(axis.get_legend_handles_labels()[0]) \
                <= MAX_LINES:
            axis.legend(fontsize=8, frameon=False)
