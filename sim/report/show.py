"""``pcsim show``: a readable summary of a result file, read lazily (h5py and NumPy only).

Shapes and units come from the file's metadata; of the datasets only the last sample time and
the small per-trial columns are read.
"""

from __future__ import annotations

from sim.io.reader import Result


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
    lines.append(f"  pcsim {attrs['pcsim_version']}, brian2 {attrs['brian2_version']}, "
                 f"numpy {attrs['numpy_version']}, written {attrs.get('created_utc')}")
    trials = result.trials
    for index, name in enumerate(trials.get("name", [])):
        line = (f"  trial {index} {name}: {trials['t_start'][index] * 1e3:g}-"
                f"{trials['t_stop'][index] * 1e3:g} ms")
        if "final_free_energy" in trials:
            line += f", final F {trials['final_free_energy'][index]:.4f} nat"
        lines.append(line)
    lines.append("  datasets:")
    for path in sorted(result.datasets):
        if not path.startswith("scenario/"):
            lines.append(f"    /{path:40s} {result.shape(path)!s:14s} {result.units(path)}")
    return lines
