"""``pcsim show``: a readable summary of a result file, read lazily (h5py and NumPy only).

Shapes and units come from the file's metadata; of the datasets only the last sample time and
the small per-trial columns are read (of a long trial table, only the rows shown, or the
``condition`` and ``index`` columns when the trials were generated from conditions).
"""

from __future__ import annotations

import numpy as np

from sim.io.reader import Result

LISTED = 20  # more trials than this are summarised: per condition, or the first and last few
ENDS = 3


def show_lines(result: Result) -> list[str]:
    """What ``pcsim show`` prints: the run, its software, its trials and its datasets."""
    attrs = result.attrs
    samples = result.shape("time")[0]
    end_ms = result.read("time", samples - 1) * 1e3 if samples else 0
    lines = [
        f"{result.path}: pcsim result (schema {attrs['schema_version']}), "
        f"status {attrs.get('status')}",
        f"  scenario {attrs.get('scenario_name')} ({attrs.get('model_kind')}), seed "
        f"{attrs.get('seed')}, dt {float(attrs['dt']) * 1e3:g} ms, "
        f"{samples} samples to {end_ms:g} ms",
    ]
    if "failure" in attrs:
        lines.append(f"  {attrs.get('status')}: {attrs['failure']}")
    for note in str(attrs.get("readouts_off", "")).splitlines():  # sim.memory
        lines.append(f"  readout off: {note}")
    lines.append(f"  pcsim {attrs['pcsim_version']}, brian2 {attrs['brian2_version']}, "
                 f"numpy {attrs['numpy_version']}, written {attrs.get('created_utc')}")
    lines += trial_lines(result)
    lines.append("  datasets:")
    for path in sorted(result.datasets):
        if not path.startswith("scenario/"):
            lines.append(f"    /{path:40s} {result.shape(path)!s:14s} {result.units(path)}")
    return lines


def trial_lines(result: Result) -> list[str]:
    """One line per trial; more than ``LISTED``: the count per condition, or the first and
    last ``ENDS`` trials."""
    if "name" not in result.trials:
        return []
    count = result.shape("trials/name")[0]
    if count <= LISTED:
        return [trial_line(result, index) for index in range(count)]
    groups = condition_rows(result)
    if groups:
        return [f"  {count} trials in {len(groups)} conditions: "
                + ", ".join(f"{name} {len(rows)}" for name, rows in groups.items())]
    return [*(trial_line(result, index) for index in range(ENDS)),
            f"  ... {count - 2 * ENDS} more trials",
            *(trial_line(result, index) for index in range(count - ENDS, count))]


def trial_line(result: Result, index: int) -> str:
    """Row ``index`` of the trial table (reads that row only)."""
    line = (f"  trial {index} {result.read('trials/name', index)}: "
            f"{result.read('trials/t_start', index) * 1e3:g}-"
            f"{result.read('trials/t_stop', index) * 1e3:g} ms")
    if "final_free_energy" in result.trials:
        line += f", final F {result.read('trials/final_free_energy', index):.4f} nat"
    return line


def condition_rows(result: Result) -> dict[str, np.ndarray]:
    """The rows of each condition, conditions in their scenario's order (that of the trials'
    ``index``); empty when the trials were not generated from conditions."""
    if "condition" not in result.trials:
        return {}
    conditions = result.trials["condition"]
    first = np.argsort(result.trials["index"], kind="stable")
    return {str(name): np.flatnonzero(conditions == name)
            for name in dict.fromkeys(conditions[first])}
